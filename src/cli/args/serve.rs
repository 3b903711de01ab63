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
    /// Also listen on this address for `GET /metrics` (Prometheus) and `GET /health`; its
    /// address is printed on start, after the endpoint's.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM or ctrl-c.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub grace: u64,
    /// Directory for the parts of multipart uploads until they are completed (the server
    /// makes a private subdirectory, removed when it stops) [default: the system's
    /// temporary directory, TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Requests served at once; more wait their turn.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests: u32,
    /// Seconds a request waits for its turn before it is answered 503 SlowDown (which S3
    /// clients retry).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub queue_timeout: u64,
    /// The largest object a PUT or a multipart upload may store, in bytes (suffixes K, M,
    /// G, T: powers of 1024); larger ones are refused with EntityTooLarge [default: no
    /// limit].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_object_size: Option<u64>,
    /// Space for verified rebuilt copies of delta-stored objects, kept in the spool
    /// directory so that their ranged GETs rebuild them once (0: none) [suffixes as for
    /// --max-object-size].
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub range_cache_size: u64,
    /// Seconds a multipart upload may go without a new part before it is aborted and its
    /// parts removed, so that abandoned uploads do not fill the spool (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub abort_idle_uploads: u64,
}

/// `123`, `64K`, `512M`, `5G`, `1T` (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: the suffix must be K, M, G or T")),
            };
            (&t[..at], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (such as 5G or 1048576)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("5g"), Ok(5 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("5X").unwrap_err().contains("suffix"));
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
