//! Command-line syntax: the command line, its commands, and the options they share.

mod global;
mod inspect;
#[cfg(feature = "serve")]
mod serve;
mod transfer;
mod upload;

use clap::{Parser, Subcommand};

pub use global::GlobalArgs;
pub use inspect::{
    AnalyzeArgs, BucketArgs, CacheCommand, CompletionsArgs, HeadArgs, LsArgs, PresignArgs,
    PurgeArgs, RbArgs, StatsArgs, VerifyArgs,
};
#[cfg(feature = "serve")]
pub use serve::ServeArgs;
pub use transfer::{CpArgs, MigrateArgs, MvArgs, RmArgs, SyncArgs};
pub use upload::{FilterArgs, ObjectArgs, StorageArgs, TransferArgs, parse_concurrency};

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
    Serve(ServeArgs),
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
