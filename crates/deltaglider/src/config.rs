//! Configuration, resolved in one place: command-line flags, then environment (`DG_*`,
//! `AWS_*`), then the config file, then defaults.

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

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(Error::Config(format!(
            "{name}: expected true or false, got '{other}'"
        ))),
    }
}

fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("deltaglider").join("config.toml"))
}

fn read_file_config(path: &Path, explicit: bool) -> Result<Option<FileConfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(Error::io(
            format!("cannot read config file {}", path.display()),
            e,
        )),
    }
}

/// Parses a duration: whole seconds, or humantime (`90s`, `12h`, `7d`); `0`, `never` or
/// `none` for no expiry.
fn parse_ttl(source: &str, v: &str) -> Result<Option<Duration>> {
    let v = v.trim();
    if matches!(v.to_ascii_lowercase().as_str(), "0" | "never" | "none") {
        return Ok(None);
    }
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Some(Duration::from_secs(secs)));
    }
    humantime::parse_duration(v).map(Some).map_err(|_| {
        Error::Config(format!(
            "{source}: '{v}' is not a duration (seconds, or e.g. 30m, 12h, 7d; never for no expiry)"
        ))
    })
}

fn parse_mb(source: &str, v: &str) -> Result<u64> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(1 << 20)
            .ok_or_else(|| Error::Config(format!("{source}: {n} MiB is too large"))),
        _ => Err(Error::Config(format!(
            "{source}: expected a whole number of MiB greater than 0, got '{v}'"
        ))),
    }
}

/// A setting from a flag, then an environment variable, then the config file; with the name
/// of where it came from, for error messages.
fn pick<T>(
    flag: Option<T>,
    flag_name: &str,
    env_value: Option<String>,
    var: &str,
    parse: impl Fn(&str, &str) -> Result<T>,
    file: Option<T>,
    file_key: &str,
) -> Result<Option<(T, String)>> {
    if let Some(v) = flag {
        return Ok(Some((v, flag_name.to_string())));
    }
    if let Some(v) = env_value {
        return Ok(Some((parse(var, &v)?, var.to_string())));
    }
    Ok(file.map(|v| (v, format!("{file_key} in the config file"))))
}

fn resolve_cache(
    overrides: &Overrides,
    flags: &CacheOverrides,
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<(CacheMode, CacheSettings)> {
    let boolean =
        |flag: Option<bool>, flag_name: &str, var: &str, file_v: Option<bool>, key: &str| {
            pick(flag, flag_name, env(var), var, parse_bool, file_v, key).map(|o| o.map(|(v, _)| v))
        };
    let no_cache = boolean(
        overrides.no_cache.then_some(true),
        "--no-cache",
        "DG_NO_CACHE",
        file.no_cache,
        "no_cache",
    )?
    .unwrap_or(false);
    let ephemeral = boolean(
        flags.ephemeral,
        "--ephemeral-cache",
        "DG_EPHEMERAL_CACHE",
        file.ephemeral_cache,
        "ephemeral_cache",
    )?;
    let unsafe_shared = boolean(
        flags.unsafe_shared,
        "--unsafe-shared-cache",
        "DG_UNSAFE_SHARED_CACHE",
        file.unsafe_shared_cache,
        "unsafe_shared_cache",
    )?
    .unwrap_or(false);
    let encrypt_flag = boolean(
        None,
        "",
        "DG_CACHE_ENCRYPT",
        file.cache_encrypt,
        "cache_encrypt",
    )?;
    let monitor = boolean(
        None,
        "",
        "DG_CACHE_MONITOR",
        file.cache_monitor,
        "cache_monitor",
    )?
    .unwrap_or(true);

    let backend = pick(
        flags.backend.clone(),
        "--cache-backend",
        env("DG_CACHE_BACKEND"),
        "DG_CACHE_BACKEND",
        |_, v| Ok(v.to_string()),
        file.cache_backend.clone(),
        "cache_backend",
    )?;
    let memory = match backend {
        None => false,
        Some((b, source)) => match b.trim().to_ascii_lowercase().as_str() {
            "memory" => true,
            "filesystem" | "fs" | "disk" => false,
            other => {
                return Err(Error::Config(format!(
                    "{source}: expected filesystem or memory, got '{other}'"
                )));
            }
        },
    };
    let dir = pick(
        flags.cache_dir.clone(),
        "--cache-dir",
        env("DG_CACHE_DIR"),
        "DG_CACHE_DIR",
        |_, v| Ok(PathBuf::from(v)),
        file.cache_dir.clone(),
        "cache_dir",
    )?
    .map(|(p, _)| p);
    let memory_budget_bytes = match pick(
        flags.memory_size_mb.map(|n| n.to_string()),
        "--cache-memory-size-mb",
        env("DG_CACHE_MEMORY_SIZE_MB"),
        "DG_CACHE_MEMORY_SIZE_MB",
        |_, v| Ok(v.to_string()),
        file.cache_memory_size_mb.map(|n| n.to_string()),
        "cache_memory_size_mb",
    )? {
        Some((v, source)) => parse_mb(&source, &v)?,
        None => crate::cache::memory::DEFAULT_BUDGET,
    };
    let max_bytes = match pick(
        flags.max_size_mb.map(|n| n.to_string()),
        "--cache-max-size-mb",
        env("DG_CACHE_MAX_SIZE_MB"),
        "DG_CACHE_MAX_SIZE_MB",
        |_, v| Ok(v.to_string()),
        file.cache_max_size_mb.map(|n| n.to_string()),
        "cache_max_size_mb",
    )? {
        Some((v, source)) => parse_mb(&source, &v)?,
        None => persistent::DEFAULT_MAX_BYTES,
    };
    let file_ttl = match &file.cache_ttl {
        None => None,
        Some(toml::Value::Integer(n)) => Some(n.to_string()),
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(Error::Config(format!(
                "cache_ttl in the config file: expected seconds or a duration string, got {other}"
            )));
        }
    };
    let ttl = match pick(
        flags.ttl.clone(),
        "--cache-ttl",
        env("DG_CACHE_TTL"),
        "DG_CACHE_TTL",
        |_, v| Ok(v.to_string()),
        file_ttl,
        "cache_ttl",
    )? {
        Some((v, source)) => parse_ttl(&source, &v)?,
        None => Some(persistent::DEFAULT_TTL),
    };
    let encryption_key = env("DG_CACHE_ENCRYPTION_KEY")
        .map(|v| CacheKey::aead_from_env("DG_CACHE_ENCRYPTION_KEY", &v))
        .transpose()?;
    let signing_key = env("DG_CACHE_KEY")
        .map(|v| CacheKey::hmac_from_env("DG_CACHE_KEY", &v))
        .transpose()?;
    let key_file = env("DG_CACHE_KEY_FILE")
        .map(PathBuf::from)
        .or_else(|| file.cache_key_file.clone())
        .or_else(|| default_key_file(env));
    let encrypt = encrypt_flag.unwrap_or(encryption_key.is_some());

    let mode = if no_cache {
        CacheMode::Disabled
    } else if memory {
        CacheMode::Memory
    } else if ephemeral == Some(true) {
        CacheMode::Ephemeral
    } else if dir.is_some() || ephemeral == Some(false) || unsafe_shared {
        CacheMode::Persistent
    } else {
        CacheMode::Ephemeral
    };
    let dir =
        if mode == CacheMode::Persistent {
            let d = dir
                .or_else(|| persistent::default_root(env))
                .ok_or_else(|| {
                    Error::Config(
                "cannot tell where the persistent cache goes: set DG_CACHE_DIR or XDG_CACHE_HOME"
                    .into(),
            )
                })?;
            Some(std::path::absolute(&d).map_err(|e| {
                Error::io(format!("DG_CACHE_DIR: cannot resolve {}", d.display()), e)
            })?)
        } else {
            None
        };
    if mode == CacheMode::Persistent && encrypt && encryption_key.is_none() {
        return Err(Error::Config(
            "DG_CACHE_ENCRYPT: a persistent cache needs DG_CACHE_ENCRYPTION_KEY (base64 of 32 bytes); a per-process key could never read its entries back".into(),
        ));
    }
    Ok((
        mode,
        CacheSettings {
            dir,
            memory_budget_bytes,
            max_bytes,
            ttl,
            encrypt,
            encryption_key,
            signing_key,
            key_file,
            unsafe_shared,
            monitor,
        },
    ))
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

    /// Connects to the configured store.
    pub async fn open_store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(match &self.endpoint {
            Endpoint::Local(path) => Arc::new(LocalStore::new(path.clone())?),
            #[cfg(feature = "s3")]
            Endpoint::S3(url) => Arc::new(
                S3Store::connect_with(
                    S3Settings {
                        endpoint_url: url.clone(),
                        region: self.region.clone(),
                        profile: self.profile.clone(),
                        limits: None,
                    },
                    &self.s3_client,
                )
                .await?,
            ),
            #[cfg(not(feature = "s3"))]
            Endpoint::S3(_) => {
                return Err(Error::Config(
                    "this deltaglider was built without S3 support (cargo feature `s3`); \
                     use a local store (--endpoint-url file:///path) or rebuild with the feature"
                        .into(),
                ));
            }
        })
    }

    /// Creates the configured reference cache. For the persistent cache this loads (or
    /// creates) the signing key and refuses an unsafe directory.
    pub fn open_cache(&self) -> Result<Arc<dyn ReferenceCache>> {
        let s = &self.cache_settings;
        Ok(match self.cache {
            CacheMode::Disabled => Arc::new(NoCache),
            CacheMode::Ephemeral => Arc::new(StoreCache::private(s.encrypt.then(|| {
                s.encryption_key
                    .clone()
                    .unwrap_or_else(CacheKey::per_process)
            }))?),
            CacheMode::Memory => Arc::new(StoreCache::memory(
                s.memory_budget_bytes,
                s.encryption_key.clone(),
            )),
            CacheMode::Persistent => {
                let signing_key = match (&s.signing_key, &s.key_file) {
                    (Some(k), _) => k.clone(),
                    (None, Some(path)) => CacheKey::hmac_from_file(path)?,
                    (None, None) => {
                        return Err(Error::Config(
                            "no place for the cache signing key: set DG_CACHE_KEY or DG_CACHE_KEY_FILE".into(),
                        ));
                    }
                };
                Arc::new(StoreCache::persistent(PersistentOptions {
                    root: s.dir.clone().expect("resolved for persistent mode"),
                    max_bytes: Some(s.max_bytes),
                    ttl: s.ttl,
                    unsafe_shared: s.unsafe_shared,
                    signing_key,
                    encryption_key: s.encrypt.then(|| s.encryption_key.clone()).flatten(),
                    monitor: s.monitor,
                })?)
            }
        })
    }

    /// The configured delta codec.
    pub fn open_codec(&self) -> Arc<dyn DeltaCodec> {
        match self.codec {
            CodecChoice::Xdelta3 => Arc::new(Xdelta3Codec::new(self.xdelta3.clone())),
            CodecChoice::Native => Arc::new(crate::codec::native::NativeCodec::default()),
        }
    }

    /// The engine's settings from this configuration.
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            policy: self.policy.clone(),
            max_ratio: self.max_ratio,
            ..EngineSettings::default()
        }
    }

    /// Builds an engine from this configuration.
    pub async fn build_engine(&self) -> Result<Engine> {
        Ok(Engine::new(
            self.open_store().await?,
            self.open_codec(),
            self.open_cache()?,
            self.engine_settings(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flags: &Overrides, env: &[(&str, &str)]) -> Result<Config> {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("DG_CONFIG".into())
            .or_insert_with(|| "/nonexistent-dg-config-for-tests.toml".into());
        let explicit_missing = map["DG_CONFIG"] == "/nonexistent-dg-config-for-tests.toml";
        if explicit_missing {
            map.remove("DG_CONFIG");
        }
        let flags = Overrides {
            config_file: flags
                .config_file
                .clone()
                .or_else(|| Some(PathBuf::from("/dev/null"))),
            ..flags.clone()
        };
        Config::resolve(&flags, &|k| map.get(k).cloned())
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "max_ratio = 0.3\nendpoint_url = \"file:///from-file\"\n",
        )
        .unwrap();
        let with_file = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let c = resolve(&with_file, &[]).unwrap();
        assert_eq!(c.max_ratio, 0.3);
        assert_eq!(c.endpoint, Endpoint::Local("/from-file".into()));
        let c = resolve(
            &with_file,
            &[
                ("DG_MAX_RATIO", "0.2"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ],
        )
        .unwrap();
        assert_eq!(c.max_ratio, 0.2);
        assert_eq!(c.endpoint, Endpoint::S3(Some("http://127.0.0.1:1".into())));
        let flags = Overrides {
            max_ratio: Some(0.1),
            endpoint_url: Some("file:///flag".into()),
            ..with_file
        };
        let c = resolve(
            &flags,
            &[("DG_MAX_RATIO", "0.2"), ("DG_ENDPOINT_URL", "file:///env")],
        )
        .unwrap();
        assert_eq!(c.max_ratio, 0.1);
        assert_eq!(c.endpoint, Endpoint::Local("/flag".into()));
        let c = resolve(&Overrides::default(), &[]).unwrap();
        assert_eq!(c.max_ratio, 0.5);
        assert_eq!(c.endpoint, Endpoint::S3(None));
        assert_eq!(c.cache, CacheMode::Ephemeral);
    }

    #[cfg(not(feature = "s3"))]
    #[tokio::test]
    async fn an_s3_endpoint_without_the_s3_feature_is_a_clear_error() {
        let c = resolve(
            &Overrides::default(),
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
        )
        .unwrap();
        let Err(err) = c.open_store().await else {
            panic!("an S3 store opened in a build without the S3 backend");
        };
        assert!(err.to_string().contains("without S3 support"), "{err}");
        let c = resolve(&Overrides::default(), &[("DG_ENDPOINT_URL", "file:///x")]).unwrap();
        assert_eq!(c.endpoint, Endpoint::Local("/x".into()));
    }

    #[test]
    fn dg_endpoint_beats_aws_endpoint() {
        let c = resolve(
            &Overrides::default(),
            &[
                ("DG_ENDPOINT_URL", "file:///x"),
                ("AWS_ENDPOINT_URL", "http://h"),
            ],
        )
        .unwrap();
        assert_eq!(c.endpoint, Endpoint::Local("/x".into()));
    }

    #[test]
    fn bad_values_name_their_source() {
        let e = resolve(&Overrides::default(), &[("DG_MAX_RATIO", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("DG_MAX_RATIO"), "{e}");
        let e = resolve(
            &Overrides {
                max_ratio: Some(2.0),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--max-ratio"), "{e}");
        let e = resolve(
            &Overrides {
                endpoint_url: Some("ftp://x".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ftp://x"), "{e}");
        let e = resolve(&Overrides::default(), &[("DG_NO_CACHE", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("DG_NO_CACHE"), "{e}");
    }

    #[test]
    fn broken_config_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "max_ratoi = 0.3\n").unwrap();
        let e = resolve(
            &Overrides {
                config_file: Some(file.clone()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml") && e.contains("max_ratoi"), "{e}");
    }

    fn resolve_cache(flags: &CacheOverrides, env: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let o = Overrides {
            config_file: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        };
        Config::resolve_with(&o, flags, &|k| map.get(k).cloned())
    }

    const KEY32: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn cache_mode_selection() {
        let none = CacheOverrides::default();
        let mode = |env: &[(&str, &str)]| resolve_cache(&none, env).unwrap().cache;
        assert_eq!(mode(&[]), CacheMode::Ephemeral);
        assert_eq!(
            mode(&[("DG_NO_CACHE", "true"), ("DG_CACHE_DIR", "/x")]),
            CacheMode::Disabled
        );
        assert_eq!(mode(&[("DG_CACHE_BACKEND", "memory")]), CacheMode::Memory);
        assert_eq!(
            mode(&[("DG_CACHE_BACKEND", "filesystem")]),
            CacheMode::Ephemeral
        );
        assert_eq!(mode(&[("DG_CACHE_DIR", "/x")]), CacheMode::Persistent);
        assert_eq!(
            mode(&[("DG_CACHE_DIR", "/x"), ("DG_EPHEMERAL_CACHE", "true")]),
            CacheMode::Ephemeral
        );
        let c = resolve_cache(
            &none,
            &[("DG_EPHEMERAL_CACHE", "false"), ("XDG_CACHE_HOME", "/xdg")],
        )
        .unwrap();
        assert_eq!(c.cache, CacheMode::Persistent);
        assert_eq!(
            c.cache_settings.dir,
            Some(PathBuf::from("/xdg/deltaglider/v2"))
        );
        let c = resolve_cache(
            &none,
            &[("DG_UNSAFE_SHARED_CACHE", "true"), ("HOME", "/home/u")],
        )
        .unwrap();
        assert_eq!(c.cache, CacheMode::Persistent);
        assert!(c.cache_settings.unsafe_shared);
        assert_eq!(
            c.cache_settings.dir,
            Some(PathBuf::from("/home/u/.cache/deltaglider/v2"))
        );
        // Defaults.
        let s = resolve_cache(&none, &[]).unwrap().cache_settings;
        assert_eq!(s.memory_budget_bytes, 100 << 20);
        assert_eq!(s.ttl, Some(Duration::from_secs(7 * 24 * 3600)));
        assert!(!s.encrypt && s.monitor && !s.unsafe_shared);
    }

    #[test]
    fn cache_settings_precedence_flag_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "cache_dir = \"/from-file\"\ncache_ttl = 60\ncache_memory_size_mb = 7\n",
        )
        .unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let run = |flags: &CacheOverrides, env: &[(&str, &str)]| {
            let map: HashMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::resolve_with(&o, flags, &|k| map.get(k).cloned()).unwrap()
        };
        let c = run(&CacheOverrides::default(), &[]);
        assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-file")));
        assert_eq!(c.cache_settings.ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.cache_settings.memory_budget_bytes, 7 << 20);
        let env = [
            ("DG_CACHE_DIR", "/from-env"),
            ("DG_CACHE_TTL", "2h"),
            ("DG_CACHE_MEMORY_SIZE_MB", "8"),
        ];
        let c = run(&CacheOverrides::default(), &env);
        assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-env")));
        assert_eq!(c.cache_settings.ttl, Some(Duration::from_secs(7200)));
        assert_eq!(c.cache_settings.memory_budget_bytes, 8 << 20);
        let flags = CacheOverrides {
            cache_dir: Some("/from-flag".into()),
            ttl: Some("never".into()),
            memory_size_mb: Some(9),
            ..Default::default()
        };
        let c = run(&flags, &env);
        assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-flag")));
        assert_eq!(c.cache_settings.ttl, None);
        assert_eq!(c.cache_settings.memory_budget_bytes, 9 << 20);
        let c = run(
            &CacheOverrides {
                ephemeral: Some(true),
                ..Default::default()
            },
            &env,
        );
        assert_eq!(c.cache, CacheMode::Ephemeral);
    }

    #[test]
    fn bad_cache_values_name_their_variable() {
        let none = CacheOverrides::default();
        for (var, value, needle) in [
            ("DG_CACHE_BACKEND", "disk-ish", "filesystem or memory"),
            ("DG_CACHE_MEMORY_SIZE_MB", "lots", "MiB"),
            ("DG_CACHE_MEMORY_SIZE_MB", "0", "greater than 0"),
            ("DG_CACHE_MAX_SIZE_MB", "-1", "MiB"),
            ("DG_CACHE_TTL", "soon", "duration"),
            ("DG_CACHE_ENCRYPTION_KEY", "c2hvcnQ=", "exactly 32"),
            ("DG_CACHE_ENCRYPTION_KEY", "not base64!", "base64"),
            ("DG_CACHE_KEY", "c2hvcnQ=", "at least 32"),
            ("DG_EPHEMERAL_CACHE", "maybe", "true or false"),
            ("DG_UNSAFE_SHARED_CACHE", "perhaps", "true or false"),
            ("DG_CACHE_ENCRYPT", "sure", "true or false"),
        ] {
            let e = resolve_cache(&none, &[(var, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains(needle), "{var}={value}: {e}");
        }
        let e = resolve_cache(
            &CacheOverrides {
                backend: Some("tape".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--cache-backend"), "{e}");
        let e = resolve_cache(
            &none,
            &[("DG_CACHE_DIR", "/x"), ("DG_CACHE_ENCRYPT", "true")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("DG_CACHE_ENCRYPTION_KEY"), "{e}");
        // Secrets never show up in Debug output.
        let c = resolve_cache(
            &none,
            &[("DG_CACHE_ENCRYPTION_KEY", KEY32), ("DG_CACHE_KEY", KEY32)],
        )
        .unwrap();
        assert!(c.cache_settings.encrypt);
        assert!(!format!("{c:?}").contains("AQEB"));
        assert!(!format!("{c:?}").contains("1, 1, 1"));
    }

    #[test]
    fn open_cache_builds_each_backend() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let key_file = t.path().join("cfg/cache.key");
        let info = |env: &[(&str, &str)]| {
            resolve_cache(&CacheOverrides::default(), env)
                .unwrap()
                .open_cache()
                .unwrap()
                .info()
                .unwrap()
        };
        let d = dir.to_str().unwrap();
        let k = key_file.to_str().unwrap();
        let i = info(&[
            ("DG_CACHE_DIR", d),
            ("DG_CACHE_KEY_FILE", k),
            ("DG_CACHE_MONITOR", "false"),
        ]);
        assert_eq!(i.backend, "persistent");
        assert_eq!(i.location.as_deref(), Some(dir.as_path()));
        assert_eq!(
            i.signing_key,
            Some(crate::cache::KeySource::File {
                path: key_file.clone()
            })
        );
        assert!(key_file.exists() && i.encryption_key.is_none() && !i.monitored);
        let i = info(&[
            ("DG_CACHE_DIR", d),
            ("DG_CACHE_KEY", KEY32),
            ("DG_CACHE_ENCRYPTION_KEY", KEY32),
        ]);
        assert!(matches!(
            i.signing_key,
            Some(crate::cache::KeySource::Environment { .. })
        ));
        assert!(matches!(
            i.encryption_key,
            Some(crate::cache::KeySource::Environment { .. })
        ));
        assert_eq!(info(&[("DG_CACHE_BACKEND", "memory")]).backend, "memory");
        assert_eq!(info(&[]).backend, "ephemeral");
        let i = info(&[("DG_CACHE_ENCRYPT", "true")]);
        assert_eq!(
            (i.backend.as_str(), i.encryption_key),
            ("ephemeral", Some(crate::cache::KeySource::PerProcess))
        );
        assert_eq!(info(&[("DG_NO_CACHE", "1")]).backend, "disabled");
        // A world-writable directory is refused when the cache opens.
        std::fs::create_dir(t.path().join("open")).unwrap();
        std::fs::set_permissions(
            t.path().join("open"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let e = resolve_cache(
            &CacheOverrides::default(),
            &[
                ("DG_CACHE_DIR", t.path().join("open").to_str().unwrap()),
                ("DG_CACHE_KEY", KEY32),
            ],
        )
        .unwrap()
        .open_cache()
        .unwrap_err()
        .to_string();
        assert!(e.contains("refusing cache directory"), "{e}");
    }
}
