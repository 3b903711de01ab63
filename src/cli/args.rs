//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  deltaglider mb s3://releases
  deltaglider cp app-1.2.zip s3://releases/app/         # stored as a delta when possible
  deltaglider sync ./dist s3://releases/app/ --dryrun   # what would move
  deltaglider ls -l s3://releases/app/
  deltaglider cp s3://releases/app/app-1.2.zip ./       # byte-exact original, verified
  deltaglider --endpoint-url file:///srv/artifacts ls   # a local directory store

Configuration precedence: flags > environment (DG_*, AWS_*) > config file > defaults.
Endpoints: --endpoint-url / DG_ENDPOINT_URL / AWS_ENDPOINT_URL take http(s):// for an
S3-compatible server or file:///some/dir for the local store (buckets are subdirectories).

Exit codes: 0 success, 1 failure, 2 bad arguments or configuration (or files that cannot be
read were skipped), 3 bucket or object not found, 4 integrity check failed, 130 interrupted.
With --json, stdout is JSON Lines (one document per line).";

/// Store versioned artifacts in S3 as a reference plus tiny binary deltas.
#[derive(Debug, Parser)]
#[command(name = "deltaglider", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// S3 endpoint (http[s]://host:port) or local store (file:///dir).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Config file (default: $XDG_CONFIG_HOME/deltaglider/config.toml, or DG_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not cache references, even for the duration of this command.
    #[arg(long, global = true, help_heading = "Cache options")]
    pub no_cache: bool,
    /// Keep verified references in this persistent cache directory (signed, expiring).
    #[arg(
        long,
        global = true,
        help_heading = "Cache options",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// Cache backend: filesystem (default) or memory (encrypted, in this process).
    #[arg(
        long,
        global = true,
        help_heading = "Cache options",
        value_name = "BACKEND"
    )]
    pub cache_backend: Option<String>,
    /// Use a private cache removed on exit, even if a cache directory is configured.
    #[arg(long, global = true, help_heading = "Cache options")]
    pub ephemeral_cache: bool,
    /// Lifetime of persistent cache entries (seconds, or 12h, 7d; `never`).
    #[arg(
        long,
        global = true,
        help_heading = "Cache options",
        value_name = "TTL"
    )]
    pub cache_ttl: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v info, -vv debug, -vvv trace); also DG_LOG_LEVEL.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print nothing but errors.
    #[arg(short, long, global = true, visible_alias = "only-show-errors")]
    pub quiet: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The `aws s3` connection and display options scripts pass; see docs/cli.md.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "S3 connection")]
pub struct ConnectionArgs {
    /// Do not show progress (results and errors are still printed).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Keys per listing request (1-1000, default 1000), for ls, rm -r, cp -r, mv -r, sync.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: Option<u64>,
    /// Do not verify the server's TLS certificate.
    #[arg(long, global = true)]
    pub no_verify_ssl: bool,
    /// Trust only the CA certificates in this PEM file (default: AWS_CA_BUNDLE).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Seconds to wait for data on a connection (0: no limit).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub cli_read_timeout: Option<u64>,
    /// Seconds to wait for a connection (0: no limit).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub cli_connect_timeout: Option<u64>,
    /// Send anonymous requests: load no credentials, sign nothing.
    #[arg(long, global = true)]
    pub no_sign_request: bool,
}

/// What `aws s3 cp` sets on the objects it writes; see docs/cli.md.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Object properties")]
pub struct ObjectArgs {
    /// Content-Type of the objects written (default: guessed from the name).
    #[arg(long, value_name = "MIME")]
    pub content_type: Option<String>,
    /// Do not guess a Content-Type from the file name.
    #[arg(long)]
    pub no_guess_mime_type: bool,
    /// User metadata: KEY=VALUE,KEY2=VALUE2 or JSON {"KEY":"VALUE"}.
    #[arg(long, value_name = "MAP")]
    pub metadata: Option<String>,
    /// Copies: keep the source's metadata and headers (COPY, the default without --metadata)
    /// or use only those given (REPLACE).
    #[arg(long, value_name = "COPY|REPLACE", ignore_case = true, value_parser = ["COPY", "REPLACE"])]
    pub metadata_directive: Option<String>,
    /// Cache-Control header.
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,
    /// Content-Disposition header.
    #[arg(long, value_name = "VALUE")]
    pub content_disposition: Option<String>,
    /// Content-Encoding header (recorded; the bytes are stored as given).
    #[arg(long, value_name = "VALUE")]
    pub content_encoding: Option<String>,
    /// Content-Language header.
    #[arg(long, value_name = "VALUE")]
    pub content_language: Option<String>,
    /// Expires header: 2030-01-31T12:00:00Z, 2030-01-31, an HTTP date or epoch seconds.
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    /// S3 storage class (STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER, ...).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Server-side encryption: AES256 (the default when no value is given) or aws:kms.
    #[arg(long, value_name = "AES256|aws:kms", num_args = 0..=1, default_missing_value = "AES256")]
    pub sse: Option<String>,
    /// KMS key for --sse aws:kms.
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,
    /// Canned ACL: private, public-read, public-read-write, authenticated-read,
    /// aws-exec-read, bucket-owner-read, bucket-owner-full-control.
    #[arg(long, value_name = "ACL")]
    pub acl: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy a file to or from S3.
    #[command(after_help = "\
Examples:
  deltaglider cp app-1.2.zip s3://releases/app/          # stored as a delta when possible
  deltaglider cp app-1.2.zip s3://releases/app/app.zip   # explicit key
  deltaglider cp s3://releases/app/app-1.2.zip ./        # byte-exact original back
  deltaglider cp s3://releases/app/app-1.2.zip s3://backup/app/")]
    Cp(CpArgs),
    /// List buckets, or objects under a prefix.
    #[command(
        after_help = "\
Examples:
  deltaglider ls
  deltaglider ls s3://releases/app/
  deltaglider ls -r -h --summarize s3://releases",
        disable_help_flag = true
    )]
    Ls(LsArgs),
    /// Delete an object (and the deltaspace's reference once nothing uses it).
    #[command(after_help = "Example:\n  deltaglider rm s3://releases/app/app-1.0.zip")]
    Rm(RmArgs),
    /// Make a directory and a prefix hold the same files (only what changed moves).
    #[command(after_help = "\
Examples:
  deltaglider sync ./releases s3://artifacts/releases/
  deltaglider sync --delete --exclude '*.tmp' ./releases s3://artifacts/releases/
  deltaglider sync s3://artifacts/releases/ ./restore/")]
    Sync(SyncArgs),
    /// Move a file or object: copy it, then delete the source.
    #[command(after_help = "\
Examples:
  deltaglider mv build/app.zip s3://releases/app/
  deltaglider mv s3://releases/app/old.zip s3://archive/app/
  deltaglider mv -r --exclude '*.tmp' --dryrun s3://releases/old/ s3://archive/old/")]
    Mv(MvArgs),
    /// What DeltaGlider stores and saves in a bucket or prefix.
    #[command(after_help = "\
Examples:
  deltaglider stats releases
  deltaglider stats --sampled --json s3://releases/app/
  deltaglider stats --detailed releases")]
    Stats(StatsArgs),
    /// Copy a bucket or prefix into DeltaGlider storage (resumable: present files are skipped).
    #[command(after_help = "\
The last segment of the source prefix is kept under the destination unless
--no-preserve-prefix is given:
  s3://src/prefix1/ -> s3://dest/      creates s3://dest/prefix1/...
  s3://src/a/b/c/   -> s3://dest/x/    creates s3://dest/x/c/...

Examples:
  deltaglider migrate --dry-run s3://old-bucket/ s3://new-bucket/
  deltaglider migrate --yes s3://old-bucket/data/ s3://new-bucket/")]
    Migrate(MigrateArgs),
    /// A URL to download an object without credentials, valid for a while.
    #[command(after_help = "\
Deltas are rebuilt once under .deltaglider/tmp/ and the URL points there; a still-valid
rebuilt copy is reused. `purge` removes expired ones.

Example:
  deltaglider presign --expires-in 3600 s3://releases/app/app-1.2.zip")]
    Presign(PresignArgs),
    /// Serve the backend as an S3 endpoint: any S3 client stores deltas and reads originals.
    #[cfg(feature = "serve")]
    #[command(after_help = "\
Clients sign with the key in DG_SERVE_ACCESS_KEY_ID and DG_SERVE_SECRET_ACCESS_KEY;
without them serve refuses to start unless --anonymous is given.

Examples:
  deltaglider serve                                   # the local store, on 127.0.0.1:9000
  deltaglider --endpoint-url http://s3:8080 serve --listen 0.0.0.0:9000
  aws --endpoint-url http://127.0.0.1:9000 s3 cp app-1.2.zip s3://releases/app/")]
    Serve(super::serve_args::ServeArgs),
    /// Delete expired rebuilt copies under .deltaglider/tmp/ (made by presign).
    #[command(after_help = "Example:\n  deltaglider purge releases")]
    Purge(PurgeArgs),
    /// Estimate what DeltaGlider would save on a local directory or a plain bucket.
    #[command(after_help = "\
Files are grouped into deltaspaces as uploads would group them; in each, a sample is
really delta-encoded against the first file and the rest extrapolated. Nothing is written.

Examples:
  deltaglider analyze ./releases
  deltaglider analyze --sample 10 --json s3://old-bucket/builds/")]
    Analyze(AnalyzeArgs),
    /// Show and manage the reference cache.
    #[command(
        subcommand,
        after_help = "\
Examples:
  deltaglider cache info
  DG_CACHE_DIR=~/.cache/deltaglider/v2 deltaglider cache verify
  deltaglider cache migrate --yes"
    )]
    Cache(CacheCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  deltaglider completions bash > /etc/bash_completion.d/deltaglider"
    )]
    Completions(CompletionsArgs),
    /// Show an object's properties: size, how it is stored, Content-Type, headers, metadata.
    #[command(after_help = "Example:\n  deltaglider head s3://releases/app/app-1.2.zip")]
    Head(HeadArgs),
    /// Rebuild an object and check it against its recorded SHA-256.
    #[command(after_help = "Example:\n  deltaglider verify s3://releases/app/app-1.2.zip")]
    Verify(VerifyArgs),
    /// Make a bucket.
    #[command(after_help = "Example:\n  deltaglider mb s3://releases")]
    Mb(BucketArgs),
    /// Remove an empty bucket (or, with --force, everything in it first).
    #[command(after_help = "Example:\n  deltaglider rb --force s3://scratch")]
    Rb(RbArgs),
}

/// `--include` / `--exclude`, applied in command-line order; the last match decides.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Include paths matching this pattern (after an --exclude).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Exclude paths matching this pattern (`*` matches across `/`).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

/// Options of multi-file transfers.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Show what would be done, change nothing.
    #[arg(long)]
    pub dryrun: bool,
    /// Files transferred at once (default: one per CPU, at least 2).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,
    /// Follow symbolic links in local trees (the default).
    #[arg(long, overrides_with = "no_follow_symlinks")]
    pub follow_symlinks: bool,
    /// Skip symbolic links in local trees, silently (as aws s3 does).
    #[arg(long, overrides_with = "follow_symlinks")]
    pub no_follow_symlinks: bool,
}

/// `--concurrency N`: at least one file must move at a time.
pub fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (the number of files transferred at once)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: a local file or s3://bucket/key (a directory or prefix with -r).
    pub source: String,
    /// Destination: s3://bucket/key, s3://bucket/prefix/, a local file or directory.
    pub destination: String,
    /// Copy every file below a directory or prefix.
    #[arg(short, long)]
    pub recursive: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Store the file whole, never as a delta.
    #[arg(long)]
    pub no_delta: bool,
    /// Store whole when the delta is at least this fraction of the file (default 0.5).
    #[arg(long, value_name = "RATIO")]
    pub max_ratio: Option<f64>,
    /// Storage format of new deltaspaces: compatible (read by the Python tool) or compact
    /// (deltas between expanded archives; default compatible). A deltaspace keeps its own.
    #[arg(long, value_name = "FORMAT", ignore_case = true, value_parser = ["compatible", "compact"])]
    pub format: Option<String>,
    /// Delta-eligible extensions, comma separated; a leading '+' adds to the defaults.
    #[arg(long, value_name = "LIST")]
    pub delta_extensions: Option<String>,
    /// With `cp - s3://bucket/key`: the number of bytes standard input will give; a stream
    /// of another length is refused and nothing is stored.
    #[arg(long, value_name = "BYTES")]
    pub expected_size: Option<u64>,
    #[command(flatten)]
    pub object: ObjectArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// s3://bucket[/prefix]; without it, lists buckets.
    pub target: Option<String>,
    /// List every object under the prefix.
    #[arg(short, long)]
    pub recursive: bool,
    /// Sizes in KiB/MiB/GiB.
    #[arg(short = 'h', long = "human-readable")]
    pub human_readable: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Print totals at the end, with what is stored and saved.
    #[arg(long)]
    pub summarize: bool,
    /// Also show each object's stored size, savings and how it is stored.
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A local directory or s3://bucket/prefix/.
    pub source: String,
    /// A local directory or s3://bucket/prefix/ (the other kind than the source).
    pub destination: String,
    /// Delete destination files that are not in the source (never references still needed).
    #[arg(long)]
    pub delete: bool,
    /// Compare sizes only, not modification times.
    #[arg(long)]
    pub size_only: bool,
    /// Downloads: copy same-sized files unless their times match exactly.
    #[arg(long)]
    pub exact_timestamps: bool,
    /// Store files whole, never as deltas.
    #[arg(long)]
    pub no_delta: bool,
    /// Store whole when the delta is at least this fraction of the file (default 0.5).
    #[arg(long, value_name = "RATIO")]
    pub max_ratio: Option<f64>,
    /// Storage format of new deltaspaces: compatible (read by the Python tool) or compact
    /// (deltas between expanded archives; default compatible). A deltaspace keeps its own.
    #[arg(long, value_name = "FORMAT", ignore_case = true, value_parser = ["compatible", "compact"])]
    pub format: Option<String>,
    /// Delta-eligible extensions, comma separated; a leading '+' adds to the defaults.
    #[arg(long, value_name = "LIST")]
    pub delta_extensions: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub object: ObjectArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// s3://bucket/key, or s3://bucket/prefix/ with -r
    pub target: String,
    /// Delete every object under the prefix.
    #[arg(short, long)]
    pub recursive: bool,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dryrun: bool,
    /// Exit 3 when the object does not exist (by default, like aws s3 rm, that succeeds).
    #[arg(long)]
    pub fail_if_missing: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// s3://bucket/key
    pub target: String,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// s3://bucket
    pub bucket: String,
}

#[derive(Debug, Args)]
pub struct RbArgs {
    /// s3://bucket
    pub bucket: String,
    /// Delete every object first.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct MvArgs {
    /// A local file or s3://bucket/key (a directory or prefix with -r).
    pub source: String,
    /// s3://bucket/key, s3://bucket/prefix/, a local file or directory.
    pub destination: String,
    /// Move every file below a directory or prefix.
    #[arg(short, long)]
    pub recursive: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Store the file whole, never as a delta.
    #[arg(long)]
    pub no_delta: bool,
    #[command(flatten)]
    pub object: ObjectArgs,
}

#[derive(Debug, Args)]
pub struct HeadArgs {
    /// s3://bucket/key
    pub target: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// BUCKET, s3://bucket or s3://bucket/prefix
    pub target: String,
    /// Read the metadata of a few deltas per deltaspace and extrapolate (fast on big buckets).
    #[arg(long)]
    pub sampled: bool,
    /// Show every deltaspace.
    #[arg(long)]
    pub detailed: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// s3://bucket[/prefix/] to read.
    pub source: String,
    /// s3://bucket[/prefix/] to write, stored as deltas.
    pub destination: String,
    /// Show what would be migrated, change nothing.
    #[arg(long, visible_alias = "dryrun")]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Put the files directly under the destination prefix.
    #[arg(long)]
    pub no_preserve_prefix: bool,
    /// Store files whole, never as deltas.
    #[arg(long)]
    pub no_delta: bool,
    /// Store whole when the delta is at least this fraction of the file (default 0.5).
    #[arg(long, value_name = "RATIO")]
    pub max_ratio: Option<f64>,
    /// Storage format of new deltaspaces: compatible (read by the Python tool) or compact
    /// (deltas between expanded archives; default compatible). A deltaspace keeps its own.
    #[arg(long, value_name = "FORMAT", ignore_case = true, value_parser = ["compatible", "compact"])]
    pub format: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Files transferred at once (default: one per CPU, at least 2).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PresignArgs {
    /// s3://bucket/key
    pub target: String,
    /// Seconds the URL stays valid (at most 7 days).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub expires_in: u64,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// BUCKET or s3://bucket
    pub bucket: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A local directory or s3://bucket[/prefix].
    pub target: String,
    /// Files encoded per deltaspace (besides the reference).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub sample: u64,
    /// Deltaspaces listed, those that would store the most first (`--json` has them all).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// List every deltaspace.
    #[arg(long, conflicts_with = "top")]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Where the cache is, which backend, how many entries and bytes, where its keys come from.
    Info,
    /// Remove every entry.
    Clear,
    /// Re-hash every entry and remove the bad ones.
    Verify,
    /// Find the Python tool's old shared caches and, with --yes, delete them (never read).
    Migrate {
        /// Delete what was found.
        #[arg(short, long)]
        yes: bool,
    },
}
