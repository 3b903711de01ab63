//! Configuration, resolved in one place: command-line flags (or an SDK caller's
//! settings), then environment (`DG_*`, `AWS_*`), then the config file, then defaults.
//!
//! Each source is one [`Settings`] value (`settings.rs`); [`Settings::layered`] stacks
//! them, and [`Config::resolve`] validates the stack into a [`Config`] whose parts carry
//! what they need (`cache.rs` chooses the cache). `values.rs` parses single values;
//! `open.rs` turns a [`Config`] into the store, codec and cache it names.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{CacheKey, NoCache, PersistentOptions, ReferenceCache, StoreCache};
use crate::client::Client;
use crate::codec::{DeltaCodec, Xdelta3Codec};
use crate::engine::{Engine, EngineSettings};
use crate::error::{Error, Result};
use crate::storage::ObjectStore;
use crate::storage::local::LocalStore;
#[cfg(feature = "s3")]
use crate::storage::s3::{S3Settings, S3Store};

mod cache;
mod open;
mod settings;
mod values;

pub use crate::deltaspace::DeltaPolicy;
pub use cache::{CacheConfig, PersistentCacheConfig, SigningKey};
pub use settings::Settings;
use values::non_empty;
pub use values::parse_ttl;

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS S3 (`None`) or an S3-compatible server at a URL.
    S3(Option<String>),
    /// A local directory (`file:///path`).
    Local(PathBuf),
}

/// The delta codec in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// The `xdelta3` program: the reference implementation, kept as an alternative and as
    /// the test oracle.
    Xdelta3,
    /// The built-in VCDIFF codec (default): reads every delta `xdelta3` writes (including
    /// its LZMA secondary compression and its external gzip/xz mode) and writes deltas
    /// `xdelta3 -d` reads; needs no external program.
    Native,
}

/// The reference cache's storage, when it is not disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    /// A directory: process-private, or the persistent cache.
    Filesystem,
    /// Encrypted LRU in this process's memory.
    Memory,
}

/// How the S3 client connects: the connection options of `aws s3`. The local store has no
/// use for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3ClientSettings {
    /// Keys per listing request (`--page-size`, 1 to 1000); `None` for 1000.
    pub page_size: Option<usize>,
    /// Accept any TLS certificate (`--no-verify-ssl`).
    pub no_verify_ssl: bool,
    /// Trust only the CA certificates of this PEM file (`--ca-bundle`, `AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// Longest wait for data on a connection (`--cli-read-timeout`); zero for none, `None`
    /// for the SDK's default (none).
    pub read_timeout: Option<std::time::Duration>,
    /// Longest wait to connect (`--cli-connect-timeout`); zero for none, `None` for the
    /// SDK's default (3.1 s).
    pub connect_timeout: Option<std::time::Duration>,
    /// Send requests unsigned and load no credentials (`--no-sign-request`).
    pub no_sign_request: bool,
}

/// Fully resolved configuration, made only by [`Config::load`] and [`Config::resolve`]
/// (which validate it); its fields are there to be read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where objects live (`DG_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`).
    pub endpoint: Endpoint,
    /// AWS region (`AWS_REGION`, `AWS_DEFAULT_REGION`); `None`: the SDK's default chain.
    pub region: Option<String>,
    /// AWS profile (`AWS_PROFILE`); `None`: the SDK's default.
    pub profile: Option<String>,
    /// Largest delta/file size ratio worth keeping, in (0, 1] (`DG_MAX_RATIO`, default 0.5).
    pub max_ratio: f64,
    /// The storage format of new deltaspaces (`DG_FORMAT`, `format`; default compatible).
    pub format: crate::engine::StorageFormat,
    /// Which file extensions are stored as deltas (`DG_DELTA_EXTENSIONS`).
    pub policy: DeltaPolicy,
    /// The `xdelta3` binary (`DG_XDELTA3`, default `xdelta3` on `PATH`).
    pub xdelta3: PathBuf,
    /// Which delta codec encodes and decodes (`DG_CODEC`, `codec`; default the native
    /// codec).
    pub codec: CodecChoice,
    /// Which reference cache, with its settings.
    pub cache: CacheConfig,
    /// Log filter (`DG_LOG_LEVEL`); `None`: the CLI default, `warn`.
    pub log_level: Option<String>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// TLS, timeouts, signing and page size of the S3 client (flags or the caller;
    /// `AWS_CA_BUNDLE`).
    pub s3_client: S3ClientSettings,
}

impl Config {
    /// The process environment and config file under `flags` (an SDK caller's settings, or
    /// the command line's), resolved.
    pub fn load(flags: Settings) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        Config::resolve_in(flags.layered(&env)?, &env)
    }

    /// Validates layered settings (see [`Settings::layered`]) and fills in the defaults;
    /// the default cache directory and key file follow the process environment.
    pub fn resolve(settings: Settings) -> Result<Self> {
        Config::resolve_in(settings, &|k| std::env::var(k).ok())
    }

    /// [`Config::resolve`], with the default locations (`XDG_CACHE_HOME`,
    /// `XDG_CONFIG_HOME`, `HOME`) looked up in `env` (tests pass a map).
    pub fn resolve_in(settings: Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        // Each source was checked as it was read: what is still out of range is the
        // caller's own, named by its flag.
        settings.check(settings::Origin::Flags)?;
        let s = settings;
        let cache = CacheConfig::resolve(&s, env)?;
        Ok(Config {
            endpoint: Endpoint::parse(non_empty(s.endpoint_url))?,
            region: s.region,
            profile: s.profile,
            max_ratio: s.max_ratio.unwrap_or(0.5),
            format: s.format.unwrap_or_default(),
            policy: s
                .delta_extensions
                .map(|l| DeltaPolicy::parse(&l))
                .unwrap_or_default(),
            xdelta3: s.xdelta3.unwrap_or_else(|| PathBuf::from("xdelta3")),
            codec: s.codec.unwrap_or(CodecChoice::Native),
            cache,
            log_level: s.log_level,
            config_file: s.config_file,
            s3_client: S3ClientSettings {
                page_size: s.page_size,
                no_verify_ssl: s.no_verify_ssl.unwrap_or(false),
                ca_bundle: s.ca_bundle,
                read_timeout: s.read_timeout,
                connect_timeout: s.connect_timeout,
                no_sign_request: s.no_sign_request.unwrap_or(false),
            },
        })
    }
}

impl Endpoint {
    /// `http(s)://` or `file:///absolute/path`; `None` for AWS S3.
    fn parse(url: Option<String>) -> Result<Self> {
        Ok(match url {
            Some(u) if u.starts_with("file://") => {
                let path = u.trim_start_matches("file://");
                if path.is_empty() {
                    return Err(Error::Config(format!("endpoint '{u}' names no directory")));
                }
                // `file://relative` and `file://~/x` would silently land in whatever the
                // current directory is: only absolute paths, with the form to use shown.
                if !path.starts_with('/') {
                    let absolute = match path.strip_prefix('~') {
                        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                            dirs::home_dir().map(|h| format!("{}{rest}", h.display()))
                        }
                        _ => std::env::current_dir()
                            .ok()
                            .map(|d| d.join(path).display().to_string()),
                    };
                    return Err(Error::Config(format!(
                        "endpoint '{u}' is not an absolute path{}",
                        absolute
                            .map(|a| format!("; write file://{a}"))
                            .unwrap_or_default()
                    )));
                }
                Endpoint::Local(PathBuf::from(path))
            }
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Endpoint::S3(Some(u))
            }
            Some(u) => {
                return Err(Error::Config(format!(
                    "endpoint '{u}' must start with http://, https:// or file://"
                )));
            }
            None => Endpoint::S3(None),
        })
    }
}

#[cfg(test)]
mod tests;
