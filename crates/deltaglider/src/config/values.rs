//! Parsing one configuration value (booleans, TTLs, sizes), the config file, and picking
//! each setting from flag, environment, file or default.

use super::*;

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

pub(super) fn read_file_config(path: &Path, explicit: bool) -> Result<Option<FileConfig>> {
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
pub(super) fn parse_ttl(source: &str, v: &str) -> Result<Option<Duration>> {
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

pub(super) fn parse_mb(source: &str, v: &str) -> Result<u64> {
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
pub(super) fn pick<T>(
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

pub(super) fn resolve_cache(
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
