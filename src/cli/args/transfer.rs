//! The commands that copy, move, synchronise or delete objects.

use clap::Args;

use super::{FilterArgs, ObjectArgs, StorageArgs, TransferArgs, parse_concurrency};

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
    /// With `cp - s3://bucket/key`: the number of bytes standard input will give; a stream
    /// of another length is refused and nothing is stored.
    #[arg(long, value_name = "BYTES")]
    pub expected_size: Option<u64>,
    #[command(flatten)]
    pub object: ObjectArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
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
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub object: ObjectArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
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
    #[command(flatten)]
    pub object: ObjectArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
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
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Files transferred at once (default 16; encoding and decoding still run one per CPU).
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub storage: StorageArgs,
}
