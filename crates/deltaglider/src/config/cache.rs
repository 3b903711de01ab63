//! Which reference cache, with everything it needs, from layered [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use super::settings::{MAX_SIZE, MEMORY_SIZE};
use super::values::mib_to_bytes;
use super::{CacheBackend, Settings};
use crate::cache::keys::{CacheKey, default_key_file};
use crate::cache::persistent;
use crate::error::{Error, Result};

/// The reference cache, chosen in this order:
/// 1. `DG_NO_CACHE=true` (`--no-cache`, `no_cache`): [`CacheConfig::Disabled`];
/// 2. `DG_CACHE_BACKEND=memory`: [`CacheConfig::Memory`];
/// 3. `DG_EPHEMERAL_CACHE=true`: [`CacheConfig::Ephemeral`], even if a directory is set;
/// 4. `DG_CACHE_DIR` set, `DG_EPHEMERAL_CACHE=false`, or `DG_UNSAFE_SHARED_CACHE=true`:
///    [`CacheConfig::Persistent`], in `DG_CACHE_DIR` or else `$XDG_CACHE_HOME/deltaglider/v2`;
/// 5. otherwise [`CacheConfig::Ephemeral`].
#[derive(Debug, Clone)]
pub enum CacheConfig {
    /// No cache.
    Disabled,
    /// Process-private directory, removed on exit.
    Ephemeral {
        /// Encrypt entries (`DG_CACHE_ENCRYPT`, or implied by `DG_CACHE_ENCRYPTION_KEY`).
        encrypt: bool,
        /// `DG_CACHE_ENCRYPTION_KEY`; a per-process random key when `None`.
        encryption_key: Option<CacheKey>,
    },
    /// Encrypted LRU in this process's memory.
    Memory {
        /// Budget in bytes (`DG_CACHE_MEMORY_SIZE_MB`, default 100 MiB).
        budget_bytes: u64,
        /// `DG_CACHE_ENCRYPTION_KEY`; a per-process random key when `None`.
        encryption_key: Option<CacheKey>,
    },
    /// Signed, expiring, content-addressed directory shared between runs.
    Persistent(PersistentCacheConfig),
}

/// Everything the persistent cache needs.
#[derive(Debug, Clone)]
pub struct PersistentCacheConfig {
    /// The directory (absolute).
    pub dir: PathBuf,
    /// Budget in bytes (`DG_CACHE_MAX_SIZE_MB`, default 2048 MiB).
    pub max_bytes: u64,
    /// Lifetime of entries (`DG_CACHE_TTL`, default 7 days); `None`: no expiry.
    pub ttl: Option<Duration>,
    /// The key entries are encrypted with, when they are (an encrypted persistent cache
    /// needs `DG_CACHE_ENCRYPTION_KEY`: a per-process key could never read them back).
    pub encryption_key: Option<CacheKey>,
    /// What signs entry records.
    pub signing_key: SigningKey,
    /// `DG_UNSAFE_SHARED_CACHE`: skip ownership/mode refusals of the directory.
    pub unsafe_shared: bool,
    /// Run the inotify integrity monitor (`DG_CACHE_MONITOR`, default true).
    pub monitor: bool,
}

/// Where the persistent cache's signing key comes from.
#[derive(Debug, Clone)]
pub enum SigningKey {
    /// `DG_CACHE_KEY` (base64, 32+ bytes).
    Key(CacheKey),
    /// A key file, created on first use (`DG_CACHE_KEY_FILE`, default
    /// `$XDG_CONFIG_HOME/deltaglider/cache.key`).
    File(PathBuf),
}

impl CacheConfig {
    /// Chooses and validates the cache; `env` locates the default directory and key file.
    pub(super) fn resolve(s: &Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let encrypt = s.cache_encrypt.unwrap_or(s.cache_encryption_key.is_some());
        let unsafe_shared = s.unsafe_shared_cache.unwrap_or(false);
        if s.no_cache == Some(true) {
            return Ok(CacheConfig::Disabled);
        }
        if s.cache_backend == Some(CacheBackend::Memory) {
            return Ok(CacheConfig::Memory {
                budget_bytes: match s.cache_memory_size_mb {
                    Some(n) => mib_to_bytes(MEMORY_SIZE.0, n)?,
                    None => crate::cache::memory::DEFAULT_BUDGET,
                },
                encryption_key: s.cache_encryption_key.clone(),
            });
        }
        let persistent = match s.ephemeral_cache {
            Some(ephemeral) => !ephemeral,
            None => s.cache_dir.is_some() || unsafe_shared,
        };
        if !persistent {
            return Ok(CacheConfig::Ephemeral {
                encrypt,
                encryption_key: s.cache_encryption_key.clone(),
            });
        }
        let dir = s
            .cache_dir
            .clone()
            .or_else(|| persistent::default_root(env))
            .ok_or_else(|| {
                Error::Config(
                    "cannot tell where the persistent cache goes: set DG_CACHE_DIR or XDG_CACHE_HOME"
                        .into(),
                )
            })?;
        let dir = std::path::absolute(&dir)
            .map_err(|e| Error::io(format!("DG_CACHE_DIR: cannot resolve {}", dir.display()), e))?;
        if encrypt && s.cache_encryption_key.is_none() {
            return Err(Error::Config(
                "DG_CACHE_ENCRYPT: a persistent cache needs DG_CACHE_ENCRYPTION_KEY (base64 of 32 bytes); a per-process key could never read its entries back".into(),
            ));
        }
        let signing_key = match (&s.cache_key, &s.cache_key_file) {
            (Some(k), _) => SigningKey::Key(k.clone()),
            (None, Some(path)) => SigningKey::File(path.clone()),
            (None, None) => SigningKey::File(default_key_file(env).ok_or_else(|| {
                Error::Config(
                    "no place for the cache signing key: set DG_CACHE_KEY or DG_CACHE_KEY_FILE"
                        .into(),
                )
            })?),
        };
        Ok(CacheConfig::Persistent(PersistentCacheConfig {
            dir,
            max_bytes: match s.cache_max_size_mb {
                Some(n) => mib_to_bytes(MAX_SIZE.0, n)?,
                None => persistent::DEFAULT_MAX_BYTES,
            },
            ttl: s.cache_ttl.unwrap_or(Some(persistent::DEFAULT_TTL)),
            encryption_key: s.cache_encryption_key.clone().filter(|_| encrypt),
            signing_key,
            unsafe_shared,
            monitor: s.cache_monitor.unwrap_or(true),
        }))
    }
}
