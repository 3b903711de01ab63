//! [`Settings`]: every setting, each perhaps unset. One value of it comes from each source
//! (flags or an SDK caller, the environment, the config file); they are layered once with
//! [`Settings::merge`] and validated by [`Config::resolve`](super::Config::resolve).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::values::*;
use super::{CacheBackend, CodecChoice};
use crate::cache::keys::CacheKey;
use crate::error::{Error, Result};

/// Settings from one source, or several layered; `None` means "not set here". Its serde
/// form is the config file (`$XDG_CONFIG_HOME/deltaglider/config.toml` or `DG_CONFIG`):
/// the same keys, minus the secrets and the connection options, which the file never holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// `http(s)://` for an S3-compatible server, `file:///path` for a local directory
    /// (`--endpoint-url`, `DG_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// AWS region (`--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// AWS profile (`--profile`, `AWS_PROFILE`).
    pub profile: Option<String>,
    /// A delta is kept only if smaller than this fraction of the file, in (0, 1]
    /// (`--max-ratio`, `DG_MAX_RATIO`; default 0.5).
    pub max_ratio: Option<f64>,
    /// The storage format of new deltaspaces: `compatible` (read by the Python tool) or
    /// `compact` (`--format`, `DG_FORMAT`, `format`; default compatible). A deltaspace
    /// keeps the format of its reference.
    pub format: Option<crate::engine::StorageFormat>,
    /// Delta-eligible extensions, comma separated; a leading `+` adds to the defaults
    /// (`--delta-extensions`, `DG_DELTA_EXTENSIONS`).
    pub delta_extensions: Option<String>,
    /// The `xdelta3` program (`DG_XDELTA3`; default `xdelta3` on `PATH`).
    pub xdelta3: Option<PathBuf>,
    /// The delta codec (`DG_CODEC`; default native).
    #[serde(default, deserialize_with = "file_codec")]
    pub codec: Option<CodecChoice>,
    /// No reference cache at all (`--no-cache`, `DG_NO_CACHE`).
    pub no_cache: Option<bool>,
    /// Log filter (`DG_LOG_LEVEL`).
    pub log_level: Option<String>,
    /// `true`: a private cache removed on exit, even with a cache directory; `false`: the
    /// persistent cache (`--ephemeral-cache`, `DG_EPHEMERAL_CACHE`).
    pub ephemeral_cache: Option<bool>,
    /// The persistent cache's directory; setting it chooses the persistent cache
    /// (`--cache-dir`, `DG_CACHE_DIR`).
    pub cache_dir: Option<PathBuf>,
    /// Filesystem or memory (`--cache-backend`, `DG_CACHE_BACKEND`).
    #[serde(default, deserialize_with = "file_backend")]
    pub cache_backend: Option<CacheBackend>,
    /// Memory cache budget in MiB (`--cache-memory-size-mb`, `DG_CACHE_MEMORY_SIZE_MB`;
    /// default 100).
    pub cache_memory_size_mb: Option<u64>,
    /// Persistent cache budget in MiB (`DG_CACHE_MAX_SIZE_MB`; default 2048).
    pub cache_max_size_mb: Option<u64>,
    /// Lifetime of persistent entries, `Some(None)` for no expiry (`--cache-ttl`,
    /// `DG_CACHE_TTL`; in the file seconds or a string such as `"12h"`; default 7 days).
    #[serde(default, deserialize_with = "file_ttl")]
    pub cache_ttl: Option<Option<Duration>>,
    /// Encrypt entries at rest (`DG_CACHE_ENCRYPT`; default: when an encryption key is
    /// set).
    pub cache_encrypt: Option<bool>,
    /// Watch the persistent cache for tampering (`DG_CACHE_MONITOR`; default true).
    pub cache_monitor: Option<bool>,
    /// Where the persistent cache's signing key is kept when `cache_key` is unset
    /// (`DG_CACHE_KEY_FILE`; default `$XDG_CONFIG_HOME/deltaglider/cache.key`).
    pub cache_key_file: Option<PathBuf>,
    /// Skip the ownership and mode refusals of the persistent directory
    /// (`--unsafe-shared-cache`, `DG_UNSAFE_SHARED_CACHE`).
    pub unsafe_shared_cache: Option<bool>,
    /// The cache encryption key (`DG_CACHE_ENCRYPTION_KEY`, base64 of 32 bytes).
    #[serde(skip)]
    pub cache_encryption_key: Option<CacheKey>,
    /// The persistent cache's signing key (`DG_CACHE_KEY`, base64 of 32 bytes or more).
    #[serde(skip)]
    pub cache_key: Option<CacheKey>,
    /// The config file, which must exist (`--config`, `DG_CONFIG`); after
    /// [`Settings::layered`], the file that was read, if any.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Keys per listing request, 1 to 1000 (`--page-size`).
    #[serde(skip)]
    pub page_size: Option<usize>,
    /// Accept any TLS certificate (`--no-verify-ssl`).
    #[serde(skip)]
    pub no_verify_ssl: Option<bool>,
    /// Trust only the CA certificates of this PEM file (`--ca-bundle`, `AWS_CA_BUNDLE`).
    #[serde(skip)]
    pub ca_bundle: Option<PathBuf>,
    /// Longest wait for data on a connection, zero for none (`--cli-read-timeout`).
    #[serde(skip)]
    pub read_timeout: Option<Duration>,
    /// Longest wait to connect, zero for none (`--cli-connect-timeout`).
    #[serde(skip)]
    pub connect_timeout: Option<Duration>,
    /// Send requests unsigned and load no credentials (`--no-sign-request`).
    #[serde(skip)]
    pub no_sign_request: Option<bool>,
}

/// Builder-style setters, for SDK callers (the fields are public too).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $t:ty => $e:expr;)*) => {
        impl Settings {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $t) -> Self {
                    self.$name = Some($e(value));
                    self
                }
            )*
        }
    };
}

fn id<T>(v: T) -> T {
    v
}

setters! {
    /// Sets [`Settings::endpoint_url`].
    endpoint_url: impl Into<String> => Into::into;
    /// Sets [`Settings::region`].
    region: impl Into<String> => Into::into;
    /// Sets [`Settings::profile`].
    profile: impl Into<String> => Into::into;
    /// Sets [`Settings::max_ratio`].
    max_ratio: f64 => id;
    /// Sets [`Settings::format`].
    format: crate::engine::StorageFormat => id;
    /// Sets [`Settings::delta_extensions`].
    delta_extensions: impl Into<String> => Into::into;
    /// Sets [`Settings::xdelta3`].
    xdelta3: impl Into<PathBuf> => Into::into;
    /// Sets [`Settings::codec`].
    codec: CodecChoice => id;
    /// Sets [`Settings::no_cache`].
    no_cache: bool => id;
    /// Sets [`Settings::log_level`].
    log_level: impl Into<String> => Into::into;
    /// Sets [`Settings::ephemeral_cache`].
    ephemeral_cache: bool => id;
    /// Sets [`Settings::cache_dir`].
    cache_dir: impl Into<PathBuf> => Into::into;
    /// Sets [`Settings::cache_backend`].
    cache_backend: CacheBackend => id;
    /// Sets [`Settings::cache_memory_size_mb`].
    cache_memory_size_mb: u64 => id;
    /// Sets [`Settings::cache_max_size_mb`].
    cache_max_size_mb: u64 => id;
    /// Sets [`Settings::cache_ttl`]: `None` for entries that never expire.
    cache_ttl: Option<Duration> => id;
    /// Sets [`Settings::cache_encrypt`].
    cache_encrypt: bool => id;
    /// Sets [`Settings::cache_monitor`].
    cache_monitor: bool => id;
    /// Sets [`Settings::cache_key_file`].
    cache_key_file: impl Into<PathBuf> => Into::into;
    /// Sets [`Settings::unsafe_shared_cache`].
    unsafe_shared_cache: bool => id;
    /// Sets [`Settings::cache_encryption_key`].
    cache_encryption_key: CacheKey => id;
    /// Sets [`Settings::cache_key`].
    cache_key: CacheKey => id;
    /// Sets [`Settings::config_file`].
    config_file: impl Into<PathBuf> => Into::into;
    /// Sets [`Settings::page_size`].
    page_size: usize => id;
    /// Sets [`Settings::no_verify_ssl`].
    no_verify_ssl: bool => id;
    /// Sets [`Settings::ca_bundle`].
    ca_bundle: impl Into<PathBuf> => Into::into;
    /// Sets [`Settings::read_timeout`].
    read_timeout: Duration => id;
    /// Sets [`Settings::connect_timeout`].
    connect_timeout: Duration => id;
    /// Sets [`Settings::no_sign_request`].
    no_sign_request: bool => id;
}

/// Which source a layer came from: the names its checked values are reported under.
#[derive(Clone, Copy)]
pub(super) enum Origin {
    Flags,
    Environment,
    File,
}

impl Origin {
    /// The flag, variable or file key of a setting: `(flag, variable, key)`.
    fn name(self, (flag, var, key): (&str, &str, &str)) -> String {
        match self {
            Origin::Flags => flag.to_string(),
            Origin::Environment => var.to_string(),
            Origin::File => format!("{key} in the config file"),
        }
    }
}

pub(super) const MAX_RATIO: (&str, &str, &str) = ("--max-ratio", "DG_MAX_RATIO", "max_ratio");
pub(super) const MEMORY_SIZE: (&str, &str, &str) = (
    "--cache-memory-size-mb",
    "DG_CACHE_MEMORY_SIZE_MB",
    "cache_memory_size_mb",
);
pub(super) const MAX_SIZE: (&str, &str, &str) = (
    "--cache-max-size-mb",
    "DG_CACHE_MAX_SIZE_MB",
    "cache_max_size_mb",
);

impl Settings {
    /// This layer over `lower`: each setting from `self` if set here, else from `lower`.
    /// An empty string is "not set", as an empty environment variable is.
    pub fn merge(self, lower: Settings) -> Settings {
        let text = |a: Option<String>, b: Option<String>| non_empty(a).or(b);
        Settings {
            endpoint_url: text(self.endpoint_url, lower.endpoint_url),
            region: text(self.region, lower.region),
            profile: text(self.profile, lower.profile),
            max_ratio: self.max_ratio.or(lower.max_ratio),
            format: self.format.or(lower.format),
            delta_extensions: text(self.delta_extensions, lower.delta_extensions),
            xdelta3: self.xdelta3.or(lower.xdelta3),
            codec: self.codec.or(lower.codec),
            no_cache: self.no_cache.or(lower.no_cache),
            log_level: text(self.log_level, lower.log_level),
            ephemeral_cache: self.ephemeral_cache.or(lower.ephemeral_cache),
            cache_dir: self.cache_dir.or(lower.cache_dir),
            cache_backend: self.cache_backend.or(lower.cache_backend),
            cache_memory_size_mb: self.cache_memory_size_mb.or(lower.cache_memory_size_mb),
            cache_max_size_mb: self.cache_max_size_mb.or(lower.cache_max_size_mb),
            cache_ttl: self.cache_ttl.or(lower.cache_ttl),
            cache_encrypt: self.cache_encrypt.or(lower.cache_encrypt),
            cache_monitor: self.cache_monitor.or(lower.cache_monitor),
            cache_key_file: self.cache_key_file.or(lower.cache_key_file),
            unsafe_shared_cache: self.unsafe_shared_cache.or(lower.unsafe_shared_cache),
            cache_encryption_key: self.cache_encryption_key.or(lower.cache_encryption_key),
            cache_key: self.cache_key.or(lower.cache_key),
            config_file: self.config_file.or(lower.config_file),
            page_size: self.page_size.or(lower.page_size),
            no_verify_ssl: self.no_verify_ssl.or(lower.no_verify_ssl),
            ca_bundle: self.ca_bundle.or(lower.ca_bundle),
            read_timeout: self.read_timeout.or(lower.read_timeout),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            no_sign_request: self.no_sign_request.or(lower.no_sign_request),
        }
    }

    /// The `DG_*` and `AWS_*` variables `env` holds (empty ones count as unset); a value
    /// that does not parse is an error naming its variable.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let var = |k: &str| non_empty(env(k));
        let path = |k: &str| var(k).map(PathBuf::from);
        let boolean = |k: &str| var(k).map(|v| parse_bool(k, &v)).transpose();
        let settings = Settings {
            endpoint_url: var("DG_ENDPOINT_URL")
                .or_else(|| var("AWS_ENDPOINT_URL_S3"))
                .or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            profile: var("AWS_PROFILE"),
            max_ratio: var("DG_MAX_RATIO")
                .map(|v| parse_ratio("DG_MAX_RATIO", &v))
                .transpose()?,
            format: var("DG_FORMAT")
                .map(|v| {
                    crate::engine::StorageFormat::parse(&v).ok_or_else(|| {
                        Error::Config(format!(
                            "DG_FORMAT: '{v}' is not a storage format (compatible or compact)"
                        ))
                    })
                })
                .transpose()?,
            delta_extensions: var("DG_DELTA_EXTENSIONS"),
            xdelta3: path("DG_XDELTA3"),
            codec: var("DG_CODEC")
                .map(|v| CodecChoice::parse("DG_CODEC", &v))
                .transpose()?,
            no_cache: boolean("DG_NO_CACHE")?,
            log_level: var("DG_LOG_LEVEL"),
            ephemeral_cache: boolean("DG_EPHEMERAL_CACHE")?,
            cache_dir: path("DG_CACHE_DIR"),
            cache_backend: var("DG_CACHE_BACKEND")
                .map(|v| CacheBackend::parse("DG_CACHE_BACKEND", &v))
                .transpose()?,
            cache_memory_size_mb: var(MEMORY_SIZE.1)
                .map(|v| parse_mb(MEMORY_SIZE.1, &v))
                .transpose()?,
            cache_max_size_mb: var(MAX_SIZE.1)
                .map(|v| parse_mb(MAX_SIZE.1, &v))
                .transpose()?,
            cache_ttl: var("DG_CACHE_TTL")
                .map(|v| parse_ttl("DG_CACHE_TTL", &v))
                .transpose()?,
            cache_encrypt: boolean("DG_CACHE_ENCRYPT")?,
            cache_monitor: boolean("DG_CACHE_MONITOR")?,
            cache_key_file: path("DG_CACHE_KEY_FILE"),
            unsafe_shared_cache: boolean("DG_UNSAFE_SHARED_CACHE")?,
            cache_encryption_key: var("DG_CACHE_ENCRYPTION_KEY")
                .map(|v| CacheKey::aead_from_env("DG_CACHE_ENCRYPTION_KEY", &v))
                .transpose()?,
            cache_key: var("DG_CACHE_KEY")
                .map(|v| CacheKey::hmac_from_env("DG_CACHE_KEY", &v))
                .transpose()?,
            config_file: path("DG_CONFIG"),
            ca_bundle: path("AWS_CA_BUNDLE"),
            ..Settings::default()
        };
        settings.check(Origin::Environment)?;
        Ok(settings)
    }

    /// The config file at `path`, which must exist.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read config file {}", path.display()), e))?;
        let settings: Settings = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))?;
        settings.check(Origin::File)?;
        Ok(settings)
    }

    /// The full stack: `self` (flags or an SDK caller's settings) over the environment
    /// `env` over the config file over nothing (defaults are [`Config::resolve`]'s). The
    /// file is `config_file` from `self` or `DG_CONFIG`, which must exist, or else the
    /// default file, if there is one; the result's `config_file` is the file read.
    ///
    /// [`Config::resolve`]: super::Config::resolve
    pub fn layered(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let upper = self.merge(Settings::from_env(env)?);
        let file = match &upper.config_file {
            Some(path) => Some((Settings::from_file(path)?, path.clone())),
            None => match default_config_path() {
                Some(path) if path.exists() => Some((Settings::from_file(&path)?, path)),
                _ => None,
            },
        };
        Ok(match file {
            Some((file, path)) => Settings {
                config_file: Some(path),
                ..upper.merge(file)
            },
            None => upper,
        })
    }

    /// Refuses values out of range, naming them as `origin` does: each source is checked
    /// as it is read, so at resolution a bad value can only be the caller's own.
    pub(super) fn check(&self, origin: Origin) -> Result<()> {
        if let Some(r) = self.max_ratio {
            check_ratio(&origin.name(MAX_RATIO), r)?;
        }
        if let Some(n) = self.cache_memory_size_mb {
            mib_to_bytes(&origin.name(MEMORY_SIZE), n)?;
        }
        if let Some(n) = self.cache_max_size_mb {
            mib_to_bytes(&origin.name(MAX_SIZE), n)?;
        }
        Ok(())
    }
}
