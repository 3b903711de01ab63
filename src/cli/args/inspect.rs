//! The commands that list, inspect and administer.

use clap::{Args, Subcommand};

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
    /// Unfinished multipart uploads begun at least this many seconds ago are aborted (of any
    /// key, whichever tool began them); 0 aborts every one.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub uploads_older_than: u64,
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
