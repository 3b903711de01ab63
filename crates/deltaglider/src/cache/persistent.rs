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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::ReferenceCache;
use super::dir_store::{DirStore, DirStoreOptions};
use super::encrypted::Encrypted;
use super::keys::CacheKey;
use super::monitor::IntegrityMonitor;
use super::secure_fs::Policy;
use super::signed::Signed;
use super::store::{EntryStore, StoreCache};
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

/// Everything a persistent cache needs: [`PersistentOptions::new`] and its setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
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

impl PersistentOptions {
    /// A cache in `root` whose records `signing_key` signs: unbounded, entries never
    /// expire, not encrypted, no integrity monitor, unsafe directories refused.
    pub fn new(root: impl Into<PathBuf>, signing_key: CacheKey) -> Self {
        PersistentOptions {
            root: root.into(),
            max_bytes: None,
            ttl: None,
            unsafe_shared: false,
            signing_key,
            encryption_key: None,
            monitor: false,
        }
    }

    /// Evicts least recently used entries beyond `max_bytes` (`None`: unbounded).
    pub fn max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Gives new entries this lifetime (`None`: they never expire).
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Skips the ownership and mode refusals (`DG_UNSAFE_SHARED_CACHE`).
    pub fn unsafe_shared(mut self, unsafe_shared: bool) -> Self {
        self.unsafe_shared = unsafe_shared;
        self
    }

    /// Encrypts entries at rest with `key`.
    pub fn encryption_key(mut self, key: Option<CacheKey>) -> Self {
        self.encryption_key = key;
        self
    }

    /// Runs the inotify integrity monitor.
    pub fn monitor(mut self, monitor: bool) -> Self {
        self.monitor = monitor;
        self
    }
}

impl StoreCache {
    /// The persistent cache: opens (creating if needed) the directory, refusing an unsafe
    /// one, and cleans what killed writers and time left behind.
    pub fn persistent(opts: PersistentOptions) -> Result<StoreCache> {
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
        let cache = StoreCache::new(stack, opts.ttl, "persistent", true);
        let description = format!("persistent {}", cache.describe());
        Ok(cache
            .described(description)
            .with_dir(store)
            .with_monitor(monitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Lookup;
    use crate::hashing::sha256_hex;
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
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

    fn fill(c: &StoreCache, bytes: &[u8]) -> String {
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
        let sha = fill(&StoreCache::persistent(opts.clone()).unwrap(), b"kept");
        let again = StoreCache::persistent(opts).unwrap();
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
        let e = StoreCache::persistent(options(&root))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&root.display().to_string()) && e.contains("writable"),
            "{e}"
        );
        assert!(e.contains("DG_UNSAFE_SHARED_CACHE"), "{e}");
        let c = StoreCache::persistent(PersistentOptions {
            unsafe_shared: true,
            ..options(&root)
        })
        .unwrap();
        assert!(c.info().unwrap().unsafe_shared);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let e = StoreCache::persistent(PersistentOptions {
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
            let e = StoreCache::persistent(options(&foreign))
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
        let sha = fill(
            &StoreCache::persistent(opts.clone()).unwrap(),
            b"secret ref",
        );
        let same = StoreCache::persistent(opts.clone()).unwrap();
        assert_eq!(read(same.lookup(&sha).unwrap().unwrap()), b"secret ref");
        let other = StoreCache::persistent(PersistentOptions {
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
        let c = StoreCache::persistent(opts.clone()).unwrap();
        let m = c.monitor().expect("monitor running");
        // Our own writes, hits (record touches), removals and clears never fire.
        let a = fill(&c, b"entry a");
        let b = fill(&c, b"entry b");
        let d = fill(&c, b"entry d");
        let gone = fill(&c, b"to be removed by us");
        assert!(c.lookup(&a).unwrap().is_some());
        c.dir_store().unwrap().invalidate(&gone); // our own removal
        let again = fill(&c, b"entry a");
        assert_eq!(again, a);
        // Another run sharing the cache publishing and hitting entries is not tampering.
        let sibling = StoreCache::persistent(PersistentOptions {
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
        let path_a = c.dir_store().unwrap().entry_path(&a);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path_a)
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(wait_for(|| !path_a.exists()), "modified entry not removed");
        assert!(c.dir_store().unwrap().is_invalidated(&a));
        assert!(c.lookup(&a).unwrap().is_none());
        // Attribute change.
        let path_b = c.dir_store().unwrap().entry_path(&b);
        std::fs::set_permissions(&path_b, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(wait_for(|| !path_b.exists()), "chmod not noticed");
        // Deletion of a record by someone else, once our own changes are out of the window.
        std::thread::sleep(OWN_WINDOW_FOR_TESTS);
        std::fs::remove_file(c.dir_store().unwrap().record_path(&d)).unwrap();
        assert!(
            wait_for(|| c.dir_store().unwrap().is_invalidated(&d)),
            "deletion not noticed"
        );
        // The monitor marks the entry first and removes its file right after.
        assert!(
            wait_for(|| !c.dir_store().unwrap().entry_path(&d).exists()),
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
        let c = Arc::new(StoreCache::persistent(options(t.path())).unwrap());
        let bytes = b"filled once".to_vec();
        let sha = sha256_hex(&bytes);
        let Lookup::Miss(mut first) = c.reference(&sha).unwrap() else {
            panic!("an empty cache hit");
        };
        assert!(first.is_locked());
        let (c2, sha2) = (c.clone(), sha.clone());
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let found = c2.reference(&sha2).unwrap();
            (start.elapsed(), found.hit().map(read))
        });
        std::thread::sleep(Duration::from_millis(300));
        let mut w = first.writer().unwrap();
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
        let e = StoreCache::private(None).unwrap();
        assert!(!e.reference(&sha).unwrap().miss().unwrap().is_locked());
    }

    const OWN_WINDOW_FOR_TESTS: Duration = Duration::from_millis(3100);
}
