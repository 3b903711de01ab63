//! The persistent, shared-between-runs cache (opt-in): a content-addressed directory whose
//! entry records are HMAC-signed and expire, optionally encrypted at rest, watched by the
//! integrity monitor.
//!
//! Location: `DG_CACHE_DIR` (or `--cache-dir`, or `cache_dir` in the config file). When
//! persistence is asked for without a directory (`DG_EPHEMERAL_CACHE=false`, or
//! `DG_UNSAFE_SHARED_CACHE=true`), the default is `$XDG_CACHE_HOME/deltaglider/v2`, falling
//! back to `~/.cache/deltaglider/v2` — never `/tmp`.
//!
//! The root, and every directory created for it, must be owned by this user, not writable by
//! group or others, and not a symlink; otherwise opening fails with an error naming the
//! directory. `DG_UNSAFE_SHARED_CACHE=true` skips the ownership and mode refusals (only
//! those), with a loud warning; entries written by other users still fail their signature
//! check, since every user has their own key.
//!
//! Stack: `StoreCache` → (`Encrypted` →) `Signed` → `DirStore`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::dir_store::{DirStore, DirStoreOptions};
use super::encrypted::Encrypted;
use super::keys::CacheKey;
use super::monitor::IntegrityMonitor;
use super::secure_fs::Policy;
use super::signed::Signed;
use super::store::{EntryStore, StoreCache};
use super::{CacheInfo, CacheWriter, FillLock, ReferenceCache, VerifySummary};
use crate::error::Result;

/// Default size budget: 2 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// Default entry lifetime: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default persistent location: `$XDG_CACHE_HOME/deltaglider/v2`, else
/// `$HOME/.cache/deltaglider/v2`.
pub fn default_root(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .or_else(dirs::cache_dir)
        .map(|d| d.join("deltaglider").join("v2"))
}

/// Everything a persistent cache needs.
#[derive(Debug, Clone)]
pub struct PersistentOptions {
    /// The cache directory; it and every directory created for it must pass the ownership
    /// and mode checks unless `unsafe_shared`.
    pub root: PathBuf,
    /// Size budget in bytes (least recently used entries are evicted beyond it); `None`:
    /// unbounded.
    pub max_bytes: Option<u64>,
    /// Lifetime of new entries; `None`: they never expire.
    pub ttl: Option<Duration>,
    /// `DG_UNSAFE_SHARED_CACHE`: skip ownership and mode refusals.
    pub unsafe_shared: bool,
    /// Signs entry records.
    pub signing_key: CacheKey,
    /// Encrypts entries at rest, if set.
    pub encryption_key: Option<CacheKey>,
    /// Run the inotify integrity monitor.
    pub monitor: bool,
}

/// The persistent reference cache.
#[derive(Debug)]
pub struct PersistentCache {
    cache: StoreCache,
    store: DirStore,
    monitor: Option<IntegrityMonitor>,
}

impl PersistentCache {
    /// Opens (creating if needed) the cache, refusing an unsafe directory, and cleans what
    /// killed writers and time left behind.
    pub fn open(opts: PersistentOptions) -> Result<PersistentCache> {
        if opts.unsafe_shared {
            tracing::warn!(
                target: "security",
                root = %opts.root.display(),
                "DG_UNSAFE_SHARED_CACHE=true: ownership and permission checks of the cache directory are OFF. \
                 Anyone who can write there can delete or plant entries (entries are still verified before use). \
                 Unset it to get the safe per-user cache."
            );
        }
        let policy = Policy {
            strict: !opts.unsafe_shared,
        };
        let store = DirStore::open(
            &opts.root,
            DirStoreOptions {
                policy,
                durable: true,
                max_bytes: opts.max_bytes,
                fill_locks: true,
                ..DirStoreOptions::default()
            },
        )?;
        let signed: Arc<dyn EntryStore> =
            Arc::new(Signed::new(Arc::new(store.clone()), opts.signing_key));
        let stack: Arc<dyn EntryStore> = match opts.encryption_key {
            Some(k) => Arc::new(Encrypted::new(signed, k)),
            None => signed,
        };
        let monitor = if opts.monitor {
            match IntegrityMonitor::start(store.clone()) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(
                        "cache integrity monitor not running: {}",
                        crate::error::chain(&e)
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(PersistentCache {
            cache: StoreCache::new(stack, opts.ttl, "persistent", true),
            store,
            monitor,
        })
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// The directory store at the bottom (paths, invalidation state).
    pub fn dir_store(&self) -> &DirStore {
        &self.store
    }

    /// The integrity monitor, if running.
    pub fn monitor(&self) -> Option<&IntegrityMonitor> {
        self.monitor.as_ref()
    }
}

impl ReferenceCache for PersistentCache {
    fn describe(&self) -> String {
        format!("persistent {}", self.cache.describe())
    }
    fn lookup(&self, sha256: &str) -> Result<Option<File>> {
        self.cache.lookup(sha256)
    }
    fn writer(&self, sha256: &str) -> Result<Box<dyn CacheWriter>> {
        self.cache.writer(sha256)
    }
    fn clear(&self) -> Result<()> {
        self.cache.clear()
    }
    fn info(&self) -> Result<CacheInfo> {
        let mut info = self.cache.info()?;
        info.description = self.describe();
        info.monitored = self.monitor.is_some();
        Ok(info)
    }
    fn verify_all(&self) -> Result<VerifySummary> {
        self.cache.verify_all()
    }
    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        self.cache.lock_for_fill(sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::sha256_hex;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    fn options(root: &Path) -> PersistentOptions {
        PersistentOptions {
            root: root.to_path_buf(),
            max_bytes: Some(DEFAULT_MAX_BYTES),
            ttl: Some(DEFAULT_TTL),
            unsafe_shared: false,
            signing_key: CacheKey::per_process(),
            encryption_key: None,
            monitor: false,
        }
    }

    fn fill(c: &dyn ReferenceCache, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(bytes).unwrap();
        w.commit("t").unwrap();
        sha
    }

    fn read(mut f: File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn entries_survive_across_instances_with_the_same_key() {
        let t = tempfile::tempdir().unwrap();
        let opts = options(&t.path().join("v2"));
        let sha = fill(&PersistentCache::open(opts.clone()).unwrap(), b"kept");
        let again = PersistentCache::open(opts).unwrap();
        assert_eq!(read(again.lookup(&sha).unwrap().unwrap()), b"kept");
        let info = again.info().unwrap();
        assert!(info.persistent && info.entries == 1 && info.signing_key.is_some());
        assert_eq!(info.ttl_seconds, Some(DEFAULT_TTL.as_secs()));
    }

    #[test]
    fn unsafe_roots_are_refused_with_a_clear_error_unless_unsafe_shared() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("shared");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PersistentCache::open(options(&root))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&root.display().to_string()) && e.contains("writable"),
            "{e}"
        );
        assert!(e.contains("DG_UNSAFE_SHARED_CACHE"), "{e}");
        let c = PersistentCache::open(PersistentOptions {
            unsafe_shared: true,
            ..options(&root)
        })
        .unwrap();
        assert!(c.info().unwrap().unsafe_shared);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let e = PersistentCache::open(PersistentOptions {
            unsafe_shared: true,
            ..options(&link)
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        if crate::cache::secure_fs::euid() == 0 {
            let foreign = t.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let e = PersistentCache::open(options(&foreign))
                .unwrap_err()
                .to_string();
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn encrypted_persistent_cache_needs_the_same_key_next_time() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let opts = PersistentOptions {
            encryption_key: Some(key),
            ..options(t.path())
        };
        let sha = fill(&PersistentCache::open(opts.clone()).unwrap(), b"secret ref");
        let same = PersistentCache::open(opts.clone()).unwrap();
        assert_eq!(read(same.lookup(&sha).unwrap().unwrap()), b"secret ref");
        let other = PersistentCache::open(PersistentOptions {
            encryption_key: Some(CacheKey::per_process()),
            ..opts
        })
        .unwrap();
        assert!(other.lookup(&sha).unwrap().is_none());
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn monitor_invalidates_foreign_changes_and_ignores_our_own() {
        let t = tempfile::tempdir().unwrap();
        let opts = PersistentOptions {
            monitor: true,
            ..options(t.path())
        };
        let c = PersistentCache::open(opts.clone()).unwrap();
        let m = c.monitor().expect("monitor running");
        // Our own writes, hits (record touches), removals and clears never fire.
        let a = fill(&c, b"entry a");
        let b = fill(&c, b"entry b");
        let d = fill(&c, b"entry d");
        let gone = fill(&c, b"to be removed by us");
        assert!(c.lookup(&a).unwrap().is_some());
        c.dir_store().invalidate(&gone); // our own removal
        let again = fill(&c, b"entry a");
        assert_eq!(again, a);
        // Another run sharing the cache publishing and hitting entries is not tampering.
        let sibling = PersistentCache::open(PersistentOptions {
            monitor: false,
            ..opts
        })
        .unwrap();
        let sib = fill(&sibling, b"from a sibling process");
        assert!(sibling.lookup(&a).unwrap().is_some() && sibling.lookup(&sib).unwrap().is_some());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(m.invalidations(), 0, "fired for our own changes");
        assert!(
            c.lookup(&sib).unwrap().is_some(),
            "same user and key: shared"
        );
        assert!(c.lookup(&a).unwrap().is_some() && c.lookup(&b).unwrap().is_some());

        // Appending to an entry: invalidated and removed without waiting for a lookup.
        let path_a = c.dir_store().entry_path(&a);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path_a)
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(wait_for(|| !path_a.exists()), "modified entry not removed");
        assert!(c.dir_store().is_invalidated(&a));
        assert!(c.lookup(&a).unwrap().is_none());
        // Attribute change.
        let path_b = c.dir_store().entry_path(&b);
        std::fs::set_permissions(&path_b, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(wait_for(|| !path_b.exists()), "chmod not noticed");
        // Deletion of a record by someone else, once our own changes are out of the window.
        std::thread::sleep(OWN_WINDOW_FOR_TESTS);
        std::fs::remove_file(c.dir_store().record_path(&d)).unwrap();
        assert!(
            wait_for(|| c.dir_store().is_invalidated(&d)),
            "deletion not noticed"
        );
        // The monitor marks the entry first and removes its file right after.
        assert!(
            wait_for(|| !c.dir_store().entry_path(&d).exists()),
            "entry of a deleted record not removed"
        );
        assert!(m.invalidations() >= 3);
        // Rewriting an invalidated entry here makes it usable again.
        fill(&c, b"entry a");
        assert!(c.lookup(&a).unwrap().is_some());
    }

    #[test]
    fn a_second_filler_waits_for_the_first_and_then_hits() {
        let t = tempfile::tempdir().unwrap();
        let c = Arc::new(PersistentCache::open(options(t.path())).unwrap());
        let bytes = b"filled once".to_vec();
        let sha = sha256_hex(&bytes);
        let first = c.lock_for_fill(&sha).unwrap();
        assert!(first.is_held());
        let (c2, sha2) = (c.clone(), sha.clone());
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let lock = c2.lock_for_fill(&sha2).unwrap();
            assert!(lock.is_held());
            (start.elapsed(), c2.lookup(&sha2).unwrap().map(read))
        });
        std::thread::sleep(Duration::from_millis(300));
        let mut w = c.writer(&sha).unwrap();
        w.write_all(&bytes).unwrap();
        w.commit("t").unwrap();
        drop(first);
        let (waited, found) = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(250),
            "did not wait: {waited:?}"
        );
        assert_eq!(found, Some(bytes), "found the first filler's entry");
        // Caches that are not shared never block.
        let e = crate::cache::ephemeral::EphemeralCache::new().unwrap();
        assert!(!e.lock_for_fill(&sha).unwrap().is_held());
    }

    const OWN_WINDOW_FOR_TESTS: Duration = Duration::from_millis(3100);
}
