//! Configuration, resolved in one place: command-line flags, then environment (`DG_*`,
//! `AWS_*`), then the config file, then defaults.

//!
//! `values.rs` parses single values and the file; `open.rs` turns a resolved [`Config`] into
//! the store, codec and cache it names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::cache::keys::{CacheKey, default_key_file};
use crate::cache::persistent::{self, PersistentOptions};
use crate::cache::store::StoreCache;
use crate::cache::{ReferenceCache, disabled::NoCache};
use crate::codec::DeltaCodec;
use crate::codec::xdelta3::Xdelta3Codec;
use crate::deltaspace::DeltaPolicy;
use crate::engine::{Engine, EngineSettings};
use crate::error::{Error, Result};
use crate::storage::ObjectStore;
use crate::storage::local::LocalStore;
#[cfg(feature = "s3")]
use crate::storage::s3::{S3Settings, S3Store};

mod open;
mod values;

use values::*;

/// Values given on the command line (or by an SDK caller); `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--endpoint-url`: `http(s)://` for an S3-compatible server, `file:///path` for a local
    /// directory.
    pub endpoint_url: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--profile`: AWS profile name.
    pub profile: Option<String>,
    /// `--max-ratio`: a delta is kept only if smaller than this fraction of the file (0..=1).
    pub max_ratio: Option<f64>,
    /// `--delta-extensions`: comma-separated; a leading `+` adds to the defaults.
    pub delta_extensions: Option<String>,
    /// `--config`: a config file that must exist.
    pub config_file: Option<PathBuf>,
    /// `--no-cache`; `false` means "not given" (`DG_NO_CACHE` or the file may still disable).
    pub no_cache: bool,
}

/// Cache settings given on the command line (or by an SDK caller), passed to
/// [`Config::from_env_with`]; `None` means "not given". They beat the `DG_*` variables,
/// which beat the config file, which beats the defaults.
#[derive(Debug, Clone, Default)]
pub struct CacheOverrides {
    /// `--cache-dir`: use the persistent cache in this directory.
    pub cache_dir: Option<PathBuf>,
    /// `--cache-backend filesystem|memory`.
    pub backend: Option<String>,
    /// `--ephemeral-cache` (true) / `--persistent-cache` (false).
    pub ephemeral: Option<bool>,
    /// `--cache-memory-size-mb`.
    pub memory_size_mb: Option<u64>,
    /// `--cache-max-size-mb`: persistent cache budget.
    pub max_size_mb: Option<u64>,
    /// `--cache-ttl` (seconds, or a duration such as `12h`, `7d`; `never`).
    pub ttl: Option<String>,
    /// `--unsafe-shared-cache`.
    pub unsafe_shared: Option<bool>,
}

/// The optional TOML config file (`$XDG_CONFIG_HOME/deltaglider/config.toml` or `DG_CONFIG`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    endpoint_url: Option<String>,
    region: Option<String>,
    profile: Option<String>,
    max_ratio: Option<f64>,
    delta_extensions: Option<String>,
    xdelta3: Option<PathBuf>,
    codec: Option<String>,
    no_cache: Option<bool>,
    log_level: Option<String>,
    ephemeral_cache: Option<bool>,
    cache_dir: Option<PathBuf>,
    cache_backend: Option<String>,
    cache_memory_size_mb: Option<u64>,
    cache_max_size_mb: Option<u64>,
    cache_ttl: Option<toml::Value>,
    cache_encrypt: Option<bool>,
    cache_monitor: Option<bool>,
    cache_key_file: Option<PathBuf>,
    unsafe_shared_cache: Option<bool>,
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS S3 (`None`) or an S3-compatible server at a URL.
    S3(Option<String>),
    /// A local directory (`file:///path`).
    Local(PathBuf),
}

/// Reference-cache selection, resolved in this order:
/// 1. `DG_NO_CACHE=true` (`--no-cache`, `no_cache`): [`CacheMode::Disabled`];
/// 2. `DG_CACHE_BACKEND=memory`: [`CacheMode::Memory`];
/// 3. `DG_EPHEMERAL_CACHE=true`: [`CacheMode::Ephemeral`], even if a directory is set;
/// 4. `DG_CACHE_DIR` set, `DG_EPHEMERAL_CACHE=false`, or `DG_UNSAFE_SHARED_CACHE=true`:
///    [`CacheMode::Persistent`], in `DG_CACHE_DIR` or else `$XDG_CACHE_HOME/deltaglider/v2`;
/// 5. otherwise [`CacheMode::Ephemeral`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Process-private directory, removed on exit.
    Ephemeral,
    /// No cache.
    Disabled,
    /// Signed, expiring, content-addressed directory shared between runs.
    Persistent,
    /// Encrypted LRU in this process's memory.
    Memory,
}

/// Every cache setting, resolved (see [`CacheMode`] for which cache is chosen).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// The persistent cache's directory (absolute), when [`CacheMode::Persistent`].
    pub dir: Option<PathBuf>,
    /// Memory backend budget (`DG_CACHE_MEMORY_SIZE_MB`, default 100 MiB).
    pub memory_budget_bytes: u64,
    /// Persistent cache budget (`DG_CACHE_MAX_SIZE_MB`, default 2048 MiB).
    pub max_bytes: u64,
    /// Lifetime of persistent entries (`DG_CACHE_TTL`, default 7 days; `never` for none).
    pub ttl: Option<Duration>,
    /// Encrypt entries at rest (`DG_CACHE_ENCRYPT`, or implied by `DG_CACHE_ENCRYPTION_KEY`).
    pub encrypt: bool,
    /// `DG_CACHE_ENCRYPTION_KEY` (base64 of 32 bytes); per-process random when `None` (an error for an encrypted persistent cache, whose entries must outlive the process).
    pub encryption_key: Option<CacheKey>,
    /// `DG_CACHE_KEY` (base64, 32+ bytes): signs persistent entry records.
    pub signing_key: Option<CacheKey>,
    /// Signing key file used when `DG_CACHE_KEY` is unset (`DG_CACHE_KEY_FILE`, default
    /// `$XDG_CONFIG_HOME/deltaglider/cache.key`).
    pub key_file: Option<PathBuf>,
    /// `DG_UNSAFE_SHARED_CACHE`: skip ownership/mode refusals of the persistent directory.
    pub unsafe_shared: bool,
    /// Run the inotify integrity monitor on the persistent cache (`DG_CACHE_MONITOR`,
    /// default true).
    pub monitor: bool,
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

impl CodecChoice {
    fn parse(source: &str, v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "xdelta3" => Ok(CodecChoice::Xdelta3),
            "native" => Ok(CodecChoice::Native),
            other => Err(Error::Config(format!(
                "{source}: expected xdelta3 or native, got '{other}'"
            ))),
        }
    }
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

/// Fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where objects live (`DG_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`).
    pub endpoint: Endpoint,
    /// AWS region (`AWS_REGION`, `AWS_DEFAULT_REGION`); `None`: the SDK's default chain.
    pub region: Option<String>,
    /// AWS profile (`AWS_PROFILE`); `None`: the SDK's default.
    pub profile: Option<String>,
    /// Largest delta/file size ratio worth keeping, in (0, 1] (`DG_MAX_RATIO`, default 0.5).
    pub max_ratio: f64,
    /// Which file extensions are stored as deltas (`DG_DELTA_EXTENSIONS`).
    pub policy: DeltaPolicy,
    /// The `xdelta3` binary (`DG_XDELTA3`, default `xdelta3` on `PATH`).
    pub xdelta3: PathBuf,
    /// Which delta codec encodes and decodes (`DG_CODEC`, `codec`; default the native
    /// codec).
    pub codec: CodecChoice,
    /// Which reference cache to use.
    pub cache: CacheMode,
    /// Every cache setting, resolved.
    pub cache_settings: CacheSettings,
    /// Log filter (`DG_LOG_LEVEL`); `None`: the CLI default, `warn`.
    pub log_level: Option<String>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// TLS, timeouts, signing and page size of the S3 client (set by the caller, not read
    /// from the environment or the config file).
    pub s3_client: S3ClientSettings,
}

impl Config {
    /// Resolves from the process environment.
    pub fn from_env(overrides: &Overrides) -> Result<Self> {
        Config::resolve(overrides, &|k| std::env::var(k).ok())
    }

    /// Resolves from the process environment, with cache flags.
    pub fn from_env_with(overrides: &Overrides, cache: &CacheOverrides) -> Result<Self> {
        Config::resolve_with(overrides, cache, &|k| std::env::var(k).ok())
    }

    /// Resolves with an explicit environment lookup (tests pass a map).
    pub fn resolve(overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Config::resolve_with(overrides, &CacheOverrides::default(), env)
    }

    /// Resolves with cache flags and an explicit environment lookup.
    pub fn resolve_with(
        overrides: &Overrides,
        cache_flags: &CacheOverrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let env = |k: &str| non_empty(env(k));
        let (file_path, explicit) = match (overrides.config_file.clone(), env("DG_CONFIG")) {
            (Some(p), _) => (Some(p), true),
            (None, Some(p)) => (Some(PathBuf::from(p)), true),
            (None, None) => (default_config_path(), false),
        };
        let file = match &file_path {
            Some(p) => read_file_config(p, explicit)?,
            None => None,
        };
        let config_file = file.as_ref().and(file_path);
        let file = file.unwrap_or_default();
        let (cache, cache_settings) = resolve_cache(overrides, cache_flags, &env, &file)?;

        let endpoint_url = non_empty(overrides.endpoint_url.clone())
            .or_else(|| env("DG_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(non_empty(file.endpoint_url));
        let endpoint = match endpoint_url {
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
        };

        let max_ratio = match overrides.max_ratio {
            Some(r) => (r, "--max-ratio".to_string()),
            None => match env("DG_MAX_RATIO") {
                Some(s) => (
                    s.trim().parse::<f64>().map_err(|_| {
                        Error::Config(format!("DG_MAX_RATIO: '{s}' is not a number"))
                    })?,
                    "DG_MAX_RATIO".to_string(),
                ),
                None => (
                    file.max_ratio.unwrap_or(0.5),
                    "max_ratio in the config file".to_string(),
                ),
            },
        };
        if !(max_ratio.0 > 0.0 && max_ratio.0 <= 1.0) {
            return Err(Error::Config(format!(
                "{}: must be greater than 0 and at most 1, got {}",
                max_ratio.1, max_ratio.0
            )));
        }

        let policy = non_empty(overrides.delta_extensions.clone())
            .or_else(|| env("DG_DELTA_EXTENSIONS"))
            .or(file.delta_extensions)
            .map(|s| DeltaPolicy::parse(&s))
            .unwrap_or_default();

        Ok(Config {
            endpoint,
            region: non_empty(overrides.region.clone())
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or(file.region),
            profile: non_empty(overrides.profile.clone())
                .or_else(|| env("AWS_PROFILE"))
                .or(file.profile),
            max_ratio: max_ratio.0,
            policy,
            codec: match (env("DG_CODEC"), file.codec.as_deref()) {
                (Some(v), _) => CodecChoice::parse("DG_CODEC", &v)?,
                (None, Some(v)) => CodecChoice::parse("codec in the config file", v)?,
                (None, None) => CodecChoice::Native,
            },
            xdelta3: env("DG_XDELTA3")
                .map(PathBuf::from)
                .or(file.xdelta3)
                .unwrap_or_else(|| PathBuf::from("xdelta3")),
            cache,
            cache_settings,
            log_level: env("DG_LOG_LEVEL").or(file.log_level),
            config_file,
            s3_client: S3ClientSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests;
