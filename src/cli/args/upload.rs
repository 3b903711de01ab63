//! Options of the commands that write objects or move many files.

use clap::Args;

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

/// How uploads store files: taken by every command that writes objects.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Storage")]
pub struct StorageArgs {
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
    /// Files transferred at once (default 16; encoding and decoding still run one per CPU).
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
