//! Options every command takes: where the store is, the cache, output, the connection.

use std::path::PathBuf;

use clap::Args;

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
