//! Parsing one configuration value (booleans, TTLs, sizes, the codec and cache backend
//! names), from the environment, a flag or the config file; each error names where the value
//! came from.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{CacheBackend, CodecChoice};
use crate::error::{Error, Result};

pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

pub(super) fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(Error::Config(format!(
            "{name}: expected true or false, got '{other}'"
        ))),
    }
}

pub(super) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("deltaglider").join("config.toml"))
}

/// Parses a cache lifetime: whole seconds, or humantime (`90s`, `12h`, `7d`); `0`, `never`
/// or `none` for no expiry (`None`). `source` names the flag, variable or file key.
pub fn parse_ttl(source: &str, v: &str) -> Result<Option<Duration>> {
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

/// A size in MiB as given: a whole number (checked by [`mib_to_bytes`]).
pub(super) fn parse_mb(source: &str, v: &str) -> Result<u64> {
    v.trim().parse::<u64>().map_err(|_| mb_error(source, v))
}

/// Bytes of a size in MiB, which must be greater than 0.
pub(super) fn mib_to_bytes(source: &str, n: u64) -> Result<u64> {
    if n == 0 {
        return Err(mb_error(source, &n.to_string()));
    }
    n.checked_mul(1 << 20)
        .ok_or_else(|| Error::Config(format!("{source}: {n} MiB is too large")))
}

fn mb_error(source: &str, v: &str) -> Error {
    Error::Config(format!(
        "{source}: expected a whole number of MiB greater than 0, got '{v}'"
    ))
}

pub(super) fn parse_ratio(source: &str, v: &str) -> Result<f64> {
    v.trim()
        .parse::<f64>()
        .map_err(|_| Error::Config(format!("{source}: '{v}' is not a number")))
}

/// A delta/file ratio must be in (0, 1].
pub(super) fn check_ratio(source: &str, r: f64) -> Result<()> {
    if r > 0.0 && r <= 1.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{source}: must be greater than 0 and at most 1, got {r}"
        )))
    }
}

impl CodecChoice {
    /// `xdelta3` or `native`, any case; `source` names where the value came from.
    pub fn parse(source: &str, v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "xdelta3" => Ok(CodecChoice::Xdelta3),
            "native" => Ok(CodecChoice::Native),
            other => Err(Error::Config(format!(
                "{source}: expected xdelta3 or native, got '{other}'"
            ))),
        }
    }
}

impl CacheBackend {
    /// `filesystem` (also `fs`, `disk`) or `memory`, any case; `source` names where the
    /// value came from.
    pub fn parse(source: &str, v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(CacheBackend::Memory),
            "filesystem" | "fs" | "disk" => Ok(CacheBackend::Filesystem),
            other => Err(Error::Config(format!(
                "{source}: expected filesystem or memory, got '{other}'"
            ))),
        }
    }
}

/// A parse error as the file's own: serde prefixes nothing, `Settings::from_file` the path.
fn de_error<E: serde::de::Error>(e: Error) -> E {
    match e {
        Error::Config(m) => E::custom(m),
        other => E::custom(other),
    }
}

// The config file's values that are parsed as the environment's are, with the same
// messages: serde reports them as the file's own errors.

pub(super) fn file_codec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CodecChoice>, D::Error> {
    let v = String::deserialize(d)?;
    CodecChoice::parse("codec in the config file", &v)
        .map(Some)
        .map_err(de_error)
}

pub(super) fn file_backend<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<CacheBackend>, D::Error> {
    let v = String::deserialize(d)?;
    CacheBackend::parse("cache_backend in the config file", &v)
        .map(Some)
        .map_err(de_error)
}

/// `cache_ttl = 3600` or `cache_ttl = "12h"`.
pub(super) fn file_ttl<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Duration>>, D::Error> {
    const KEY: &str = "cache_ttl in the config file";
    let text = match toml::Value::deserialize(d)? {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => s,
        other => {
            return Err(serde::de::Error::custom(format!(
                "{KEY}: expected seconds or a duration string, got {other}"
            )));
        }
    };
    parse_ttl(KEY, &text).map(Some).map_err(de_error)
}
