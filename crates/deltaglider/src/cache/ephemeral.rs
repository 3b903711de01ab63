//! The default cache: a directory private to this process (`$TMPDIR/deltaglider-rs-XXXXXX`,
//! mode 0700, checked by handle after creation), content addressed (`ab/cd/<sha256>` plus a
//! record), removed when the cache is dropped — which the CLI does on normal exit, on error,
//! on Ctrl-C/SIGTERM, and unwinding does on panic.
//!
//! It is the same [`DirStore`] as the persistent cache (dir-relative `O_NOFOLLOW` opens,
//! `O_EXCL` 0600 temp files, `fstat` checks, hashing through the handle), without `fsync`
//! (nothing here outlives the process), optionally encrypted at rest.
//!
//! The process holds a shared `flock` on its directory while it lives. A directory left by a
//! process that was killed (`SIGKILL`, power loss) has no lock holder: the next cache created
//! removes such directories of ours once they have been idle for a minute.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::dir_store::{DirStore, DirStoreOptions};
use super::encrypted::Encrypted;
use super::keys::CacheKey;
use super::secure_fs::{self, Policy, SecureDir};
use super::store::{EntryStore, StoreCache};
use crate::error::{Error, Result};

/// Name prefix of private cache directories in the temp dir.
pub const EPHEMERAL_PREFIX: &str = "deltaglider-rs-";
/// A private directory nobody holds a lock on is removed after this much idleness.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A private cache's directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct PrivateDir(tempfile::TempDir);

impl StoreCache {
    /// The default cache: a fresh private directory under the system temp dir (`$TMPDIR`
    /// honoured), removed when the cache is dropped; entries are encrypted under `key` if
    /// given.
    pub fn private(key: Option<CacheKey>) -> Result<StoreCache> {
        remove_stale_dirs(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(EPHEMERAL_PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| Error::io("cannot create the private cache directory", e))?;
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open the private cache directory", e.into()))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat the private cache directory", e.into()))?;
        if st.st_mode & 0o777 != 0o700 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
                .map_err(|e| Error::io("cannot protect the private cache directory", e.into()))?;
        }
        let policy = Policy { strict: true };
        secure_fs::check_dir_stat(
            &rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot stat", e.into()))?,
            policy,
        )
        .map_err(|why| {
            Error::Config(format!(
                "private cache directory {} is unsafe: {why}",
                dir.path().display()
            ))
        })?;
        rustix::fs::flock(&fd, FlockOperation::LockShared)
            .map_err(|e| Error::io("cannot lock the private cache directory", e.into()))?;
        let store = DirStore::from_dir(
            SecureDir::from_parts(fd, dir.path().to_path_buf(), policy),
            DirStoreOptions {
                policy,
                durable: false,
                ..DirStoreOptions::default()
            },
        );
        let stack: Arc<dyn EntryStore> = match key {
            Some(k) => Arc::new(Encrypted::new(Arc::new(store.clone()), k)),
            None => Arc::new(store.clone()),
        };
        let description = format!(
            "process-private directory {} (removed on exit)",
            dir.path().display()
        );
        Ok(StoreCache::new(stack, None, "ephemeral", false)
            .described(description)
            .with_dir(store)
            .with_private_dir(PrivateDir(dir)))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Another process of this user writing into the directory while it is removed can
        // make one pass fail (a file appears after its directory was listed); a few more
        // passes win that race. The `TempDir` field then finds nothing left to remove.
        for _ in 0..20 {
            match std::fs::remove_dir_all(self.0.path()) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        tracing::warn!(
            "could not remove the private cache directory {}",
            self.0.path().display()
        );
    }
}

/// Removes private cache directories of ours in `tmp` whose process is gone (nobody holds
/// their lock) and that have been idle for a minute. Best effort; never fails.
fn remove_stale_dirs(tmp: &Path) {
    let Ok(read) = std::fs::read_dir(tmp) else {
        return;
    };
    let mut parent: Option<SecureDir> = None;
    for entry in read.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(EPHEMERAL_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(fd) = secure_fs::open_nofollow(&path) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        let idle = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64))
            .unwrap_or_default();
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory
            || st.st_uid != secure_fs::euid()
            || idle < STALE_AFTER
            || !secure_fs::try_lock_exclusive(&fd)
        {
            continue;
        }
        if parent.is_none() {
            parent = rustix::fs::open(
                tmp,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .map(|fd| SecureDir::from_parts(fd, tmp.to_path_buf(), Policy { strict: false }));
        }
        if let Some(p) = &parent {
            match p.remove_tree(name) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a private cache left by a killed process")
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), "cannot remove stale private cache: {}", crate::error::chain(&e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::sha256_hex;
    use std::fs;
    use std::io::{Read, Write};

    use crate::cache::ReferenceCache;
    use std::fs::File;
    use std::path::PathBuf;

    fn fill(cache: &StoreCache, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        let mut slot = cache.reference(&sha).unwrap().miss().expect("a miss");
        let mut w = slot.writer().unwrap();
        assert!(w.is_cached());
        w.write_all(bytes).unwrap();
        w.commit("test").unwrap();
        sha
    }

    fn lookup(cache: &StoreCache, sha: &str) -> Option<File> {
        cache.reference(sha).unwrap().hit()
    }

    fn path(cache: &StoreCache) -> PathBuf {
        cache.root().unwrap().to_path_buf()
    }

    fn entry_path(cache: &StoreCache, sha: &str) -> PathBuf {
        cache.dir_store().unwrap().entry_path(sha)
    }

    #[test]
    fn private_directory_is_0700_and_removed_on_drop() {
        let cache = StoreCache::private(None).unwrap();
        let path = path(&cache);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let sha = fill(&cache, b"x");
        assert_eq!(
            fs::metadata(entry_path(&cache, &sha))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        drop(cache);
        assert!(!path.exists());
    }

    #[test]
    fn directory_lives_under_tmpdir() {
        let cache = StoreCache::private(None).unwrap();
        assert!(path(&cache).starts_with(std::env::temp_dir()));
        assert!(
            path(&cache)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(EPHEMERAL_PREFIX)
        );
    }

    #[test]
    fn hit_returns_verified_bytes() {
        let cache = StoreCache::private(None).unwrap();
        let sha = fill(&cache, b"reference bytes");
        let mut f = lookup(&cache, &sha).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "reference bytes");
        // Upper-case hex from foreign metadata names the same entry.
        assert!(lookup(&cache, &sha.to_uppercase()).is_some());
    }

    #[test]
    fn wrong_bytes_are_rejected_and_not_published() {
        let cache = StoreCache::private(None).unwrap();
        let sha = sha256_hex(b"good");
        let mut slot = cache.reference(&sha).unwrap().miss().unwrap();
        let mut w = slot.writer().unwrap();
        w.write_all(b"evil").unwrap();
        let err = w.commit("s3://b/reference.bin").unwrap_err();
        assert!(err.to_string().contains("s3://b/reference.bin"), "{err}");
        assert!(
            slot.is_cached(),
            "wrong bytes are not a failure of the cache"
        );
        drop(slot);
        assert!(lookup(&cache, &sha).is_none());
        let leaf = entry_path(&cache, &sha).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(leaf).unwrap().count(), 0, "no temp file left");
    }

    #[test]
    fn tampered_entry_is_a_miss_and_removed() {
        let cache = StoreCache::private(None).unwrap();
        let sha = fill(&cache, b"original");
        let path = entry_path(&cache, &sha);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(lookup(&cache, &sha).is_none());
        assert!(!path.exists());
    }

    /// A lookup that found an entry valid lets later lookups of the same, unchanged file
    /// skip hashing; any change to it since, in place or by replacement, is still caught,
    /// whether it comes right after the check or later.
    #[test]
    fn remembered_verification_never_hides_a_change() {
        use std::os::unix::fs::FileExt;
        let cache = StoreCache::private(None).unwrap();
        let bytes = vec![7u8; 64 << 10];
        for settle in [Duration::ZERO, Duration::from_millis(120)] {
            for attack in ["flip", "replace"] {
                let sha = fill(&cache, &bytes);
                std::thread::sleep(settle);
                for _ in 0..2 {
                    let mut back = Vec::new();
                    cache
                        .lookup(&sha)
                        .unwrap()
                        .unwrap()
                        .read_to_end(&mut back)
                        .unwrap();
                    assert_eq!(back, bytes);
                }
                let entry = entry_path(&cache, &sha);
                match attack {
                    "flip" => {
                        let f = fs::OpenOptions::new().write(true).open(&entry).unwrap();
                        f.write_all_at(b"\x08", 1000).unwrap();
                    }
                    _ => {
                        let mut evil = bytes.clone();
                        evil[1000] = 8;
                        let stage = path(&cache).join("stage");
                        fs::write(&stage, &evil).unwrap();
                        fs::set_permissions(&stage, fs::Permissions::from_mode(0o600)).unwrap();
                        fs::rename(&stage, &entry).unwrap();
                    }
                }
                assert!(
                    lookup(&cache, &sha).is_none(),
                    "{attack} after {settle:?}: a changed entry was handed out"
                );
            }
        }
    }

    #[test]
    fn symlinked_entry_is_not_followed() {
        let cache = StoreCache::private(None).unwrap();
        let target = path(&cache).join("elsewhere");
        fs::write(&target, b"planted").unwrap();
        let sha = sha256_hex(b"planted");
        let path = entry_path(&cache, &sha);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(lookup(&cache, &sha).is_none());
        assert!(fs::symlink_metadata(&path).is_err(), "planted link removed");
        assert!(target.exists());
    }

    #[test]
    fn encrypted_ephemeral_cache_keeps_only_ciphertext() {
        let cache = StoreCache::private(Some(CacheKey::per_process())).unwrap();
        let sha = fill(&cache, b"plaintext reference");
        let on_disk = fs::read(entry_path(&cache, &sha)).unwrap();
        assert!(!on_disk.windows(9).any(|w| w == b"plaintext"));
        let mut s = String::new();
        cache
            .lookup(&sha)
            .unwrap()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "plaintext reference");
        assert!(cache.info().unwrap().encryption_key.is_some());
    }

    #[test]
    fn directories_of_killed_processes_are_removed_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(600);
        let touch_old = |p: &Path| {
            File::open(p).unwrap().set_modified(old).unwrap();
        };
        // Left by a killed process: nobody holds its lock.
        let dead = tmp.path().join(format!("{EPHEMERAL_PREFIX}dead01"));
        fs::create_dir_all(dead.join("ab/cd")).unwrap();
        fs::write(dead.join("ab/cd/x"), b"x").unwrap();
        touch_old(&dead);
        // A live process's: locked.
        let live = tmp.path().join(format!("{EPHEMERAL_PREFIX}live01"));
        fs::create_dir(&live).unwrap();
        touch_old(&live);
        let held = File::open(&live).unwrap();
        rustix::fs::flock(&held, FlockOperation::LockShared).unwrap();
        // Recent, unlocked: maybe a process between mkdir and flock.
        let fresh = tmp.path().join(format!("{EPHEMERAL_PREFIX}new001"));
        fs::create_dir(&fresh).unwrap();
        // Not ours by name (the Python tool's, say): untouched.
        let python = tmp.path().join("deltaglider-abcd1234");
        fs::create_dir(&python).unwrap();
        touch_old(&python);
        remove_stale_dirs(tmp.path());
        assert!(!dead.exists());
        assert!(live.exists() && fresh.exists() && python.exists());
    }
}
