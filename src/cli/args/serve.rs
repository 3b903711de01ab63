//! The arguments of `deltaglider serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `deltaglider serve`: an S3 endpoint over the configured backend.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Serve without authentication: every request, signed or not, may read and write.
    #[arg(long)]
    pub anonymous: bool,
    /// The keys (each read-only or read-write, over every bucket or some buckets and
    /// prefixes) and what unsigned requests may read, as TOML; the file must be readable by
    /// its owner only (see docs/serve.md).
    #[arg(long, value_name = "FILE", conflicts_with = "anonymous")]
    pub access_file: Option<PathBuf>,
    /// Seconds in-flight requests get to finish after SIGTERM or ctrl-c.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub grace: u64,
    /// Directory for the parts of multipart uploads until they are completed (the server
    /// makes a private subdirectory, removed when it stops) [default: the system's
    /// temporary directory, TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
}
