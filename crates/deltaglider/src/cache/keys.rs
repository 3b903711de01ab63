//! Cache keys: the per-user HMAC key that signs persistent entry records, and the AEAD keys
//! that encrypt entries. Key bytes live in [`Zeroizing`] buffers, wiped on drop, and never
//! appear in `Debug` output.
//!
//! The signing key comes from `DG_CACHE_KEY` (base64, at least 32 bytes) or from the key
//! file `$XDG_CONFIG_HOME/deltaglider/cache.key` (default `~/.config/deltaglider/cache.key`),
//! created on first use with 32 random bytes, mode 0600, and refused if it is a symlink, not
//! ours, or readable by others. It lives outside the cache directory, so whoever can write
//! the cache cannot read the key, and `cache clear` does not rotate it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Where a key came from (shown by `cache info`; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeySource {
    /// An environment variable.
    Environment {
        /// Its name, e.g. `DG_CACHE_KEY`.
        variable: String,
    },
    /// A key file.
    File {
        /// Where the key file is.
        path: PathBuf,
    },
    /// Random, for this process only.
    PerProcess,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment { variable } => write!(f, "${variable}"),
            KeySource::File { path } => write!(f, "key file {}", path.display()),
            KeySource::PerProcess => f.write_str("random per-process key"),
        }
    }
}

/// Secret bytes, wiped on drop.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time for equal lengths.
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }
}

impl SecretBytes {
    /// `len` bytes from the operating system's CSPRNG.
    pub fn random(len: usize) -> SecretBytes {
        let mut v = Zeroizing::new(vec![0u8; len]);
        super::secure_fs::fill_random(&mut v);
        SecretBytes(v)
    }

    /// Decodes base64 `text` given by `source` (named in errors): exactly `exact` bytes if
    /// given, else at least `min`.
    pub fn from_base64(
        source: &str,
        text: &str,
        exact: Option<usize>,
        min: usize,
    ) -> Result<SecretBytes> {
        let text = Zeroizing::new(text.trim().to_string());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.as_bytes()))
            .map_err(|_| Error::Config(format!("{source}: not valid base64")))?;
        let decoded = Zeroizing::new(decoded);
        match exact {
            Some(n) if decoded.len() != n => Err(Error::Config(format!(
                "{source}: must decode to exactly {n} bytes, got {} (generate one with `head -c {n} /dev/urandom | base64`)",
                decoded.len()
            ))),
            None if decoded.len() < min => Err(Error::Config(format!(
                "{source}: must decode to at least {min} bytes, got {} (generate one with `head -c 32 /dev/urandom | base64`)",
                decoded.len()
            ))),
            _ => Ok(SecretBytes(decoded)),
        }
    }

    /// The raw key bytes; do not copy them into a buffer that is not wiped.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A public 8-byte identifier of the key for `purpose` (HMAC of a fixed label), so
    /// entries written under another key can be told from tampered ones.
    pub fn id(&self, purpose: &str) -> [u8; 8] {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes any key length");
        mac.update(b"deltaglider cache key id\0");
        mac.update(purpose.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag[..8].try_into().expect("8 bytes")
    }
}

/// A key with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheKey {
    /// The key material (32 bytes for AEAD keys, at least 32 for HMAC keys).
    pub bytes: SecretBytes,
    /// Where it came from, for `cache info` and error messages.
    pub source: KeySource,
}

impl CacheKey {
    /// A fresh random 32-byte key for this process only.
    pub fn per_process() -> CacheKey {
        CacheKey {
            bytes: SecretBytes::random(32),
            source: KeySource::PerProcess,
        }
    }

    /// A 32-byte AEAD key from base64 in the environment variable `variable`.
    pub fn aead_from_env(variable: &str, text: &str) -> Result<CacheKey> {
        Ok(CacheKey {
            bytes: SecretBytes::from_base64(variable, text, Some(32), 32)?,
            source: KeySource::Environment {
                variable: variable.into(),
            },
        })
    }

    /// An HMAC key (at least 32 bytes) from base64 in the environment variable `variable`.
    pub fn hmac_from_env(variable: &str, text: &str) -> Result<CacheKey> {
        Ok(CacheKey {
            bytes: SecretBytes::from_base64(variable, text, None, 32)?,
            source: KeySource::Environment {
                variable: variable.into(),
            },
        })
    }

    /// The HMAC key in the key file `path`, created (32 random bytes, base64, mode 0600, in
    /// a 0700 directory) if it does not exist. A key file that is a symlink, not a regular
    /// file, owned by someone else or accessible to others is refused.
    pub fn hmac_from_file(path: &Path) -> Result<CacheKey> {
        let bytes = match read_key_file(path)? {
            Some(k) => k,
            None => create_key_file(path)?,
        };
        Ok(CacheKey {
            bytes,
            source: KeySource::File {
                path: path.to_path_buf(),
            },
        })
    }
}

/// The default key file: `$XDG_CONFIG_HOME/deltaglider/cache.key`.
pub fn default_key_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
        .or_else(dirs::config_dir)
        .map(|d| d.join("deltaglider").join("cache.key"))
}

fn key_file_error(path: &Path, why: impl fmt::Display) -> Error {
    Error::Config(format!("cache key file {}: {why}", path.display()))
}

fn read_key_file(path: &Path) -> Result<Option<SecretBytes>> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(key_file_error(path, "is a symbolic link; refusing it"));
        }
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    check_key_handle(path, &f)?;
    let mut text = Zeroizing::new(String::new());
    Read::by_ref(&mut f)
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    SecretBytes::from_base64(&path.display().to_string(), &text, None, 32).map(Some)
}

fn check_key_handle(path: &Path, f: &File) -> Result<()> {
    let m = f
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
    if !m.file_type().is_file() {
        return Err(key_file_error(path, "is not a regular file"));
    }
    if m.uid() != super::secure_fs::euid() {
        return Err(key_file_error(
            path,
            format!("is owned by uid {}, not by you", m.uid()),
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(key_file_error(
            path,
            format!(
                "mode {:04o} lets others read it; run chmod 600 on it",
                m.mode() & 0o7777
            ),
        ));
    }
    if m.len() > 4096 {
        return Err(key_file_error(path, "is too large to be a key"));
    }
    Ok(())
}

fn create_key_file(path: &Path) -> Result<SecretBytes> {
    let dir = path
        .parent()
        .ok_or_else(|| key_file_error(path, "has no parent directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let key = SecretBytes::random(32);
    let text = Zeroizing::new(format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
    ));
    let temp = dir.join(format!(".cache.key.{}", super::secure_fs::random_hex(8)));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        // A hard link never replaces an existing file: two processes creating the key at
        // once agree on whichever landed first.
        std::fs::hard_link(&temp, path)
    })();
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the cache signing key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key_file(path)?.ok_or_else(|| key_file_error(path, "vanished while being created"))
        }
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("cfg/deltaglider/cache.key");
        let a = CacheKey::hmac_from_file(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let b = CacheKey::hmac_from_file(&p).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.bytes.as_bytes().len(), 32);
        assert!(!format!("{a:?}").contains(&format!("{:?}", &a.bytes.as_bytes()[..4])));
    }

    #[test]
    fn unsafe_key_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("cache.key");
        CacheKey::hmac_from_file(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = CacheKey::hmac_from_file(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let link = t.path().join("link.key");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = CacheKey::hmac_from_file(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        if super::super::secure_fs::euid() == 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = CacheKey::hmac_from_file(&p).unwrap_err().to_string();
            assert!(e.contains("uid 65534"), "{e}");
        }
    }

    #[test]
    fn env_keys_are_validated_and_named() {
        let e = CacheKey::aead_from_env("DG_CACHE_ENCRYPTION_KEY", "!!!")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DG_CACHE_ENCRYPTION_KEY") && e.contains("base64"),
            "{e}"
        );
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let e = CacheKey::aead_from_env("DG_CACHE_ENCRYPTION_KEY", &short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly 32"), "{e}");
        let e = CacheKey::hmac_from_env("DG_CACHE_KEY", &short)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DG_CACHE_KEY") && e.contains("at least 32"),
            "{e}"
        );
        let ok = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(CacheKey::aead_from_env("X", &ok).is_ok());
        assert!(CacheKey::hmac_from_env("X", &ok).is_ok());
    }

    #[test]
    fn key_ids_differ_per_key_and_purpose() {
        let a = SecretBytes::random(32);
        let b = SecretBytes::random(32);
        assert_ne!(a.id("sign"), b.id("sign"));
        assert_ne!(a.id("sign"), a.id("encrypt"));
        assert_eq!(a.id("sign"), a.clone().id("sign"));
    }
}
