//! Content-addressed entries in a directory: `ab/cd/<sha256>` holds the bytes and
//! `ab/cd/<sha256>.rec` the [`Record`](super::record::Record). The bottom of the persistent
//! and ephemeral caches.
//!
//! - The root and every level below it are held open as directory handles; every name is
//!   opened relative to one with `O_NOFOLLOW` ([`SecureDir`]).
//! - Writers fill a temporary file (`O_EXCL`, 0600, `flock`ed while alive), `fsync` it
//!   (durable stores), then rename the record and then the bytes into place: a reader never
//!   sees a half-written entry, and bytes without a record are never legitimate.
//! - A reader `fstat`s the handles it will read: regular file, one link, owned by this user,
//!   private mode, exactly the size the record gives, under the entry size limit. Anything
//!   else (planted symlink, hard link, FIFO, oversize or appended file) is removed and
//!   reported as a miss.
//! - [`EntryStore::maintain`] removes temporary files left by killed writers (no `flock`
//!   holder and idle for a grace period), orphans, expired entries, and evicts the least
//!   recently used entries (a hit sets the record's access time) beyond the size budget.
//!
//! This file holds the store, its options and its [`EntryStore`] implementation, which only
//! delegates. Each job lives in its own file so that each security check has one place:
//!
//! | file | job |
//! |---|---|
//! | `layout` | where an entry's files live, walking and emptying the tree |
//! | `open` | the validated open of an entry: record, then bytes, every handle `fstat`-checked |
//! | `publish` | writing an entry to a temporary file and renaming it into place |
//! | `maintain` | housekeeping: dead writers' temporary files, orphans, expiry, size budget |
//! | `fill_lock` | the cross-process lock that lets one process fill an entry at a time |
//! | `monitor_state` | what the integrity monitor needs: our own changes, invalidated entries |

mod fill_lock;
mod layout;
mod maintain;
mod monitor_state;
mod open;
mod publish;
#[cfg(test)]
mod test_support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::secure_fs::{Policy, SecureDir};
use super::store::{Entry, EntryStore, PendingEntry, Usage};
use super::{CacheInfo, FillLock, is_sha};
use crate::error::Result;

pub use fill_lock::LOCK_NAME;
pub use layout::RECORD_SUFFIX;
pub use monitor_state::OwnChanges;

/// How a [`DirStore`] behaves.
#[derive(Debug, Clone)]
pub struct DirStoreOptions {
    /// Ownership and mode checks (off only with `DG_UNSAFE_SHARED_CACHE`).
    pub policy: Policy,
    /// `fsync` entries before publishing them (persistent stores).
    pub durable: bool,
    /// Size budget; least recently used entries are evicted beyond it.
    pub max_bytes: Option<u64>,
    /// Largest entry accepted.
    pub max_entry_bytes: u64,
    /// A temporary file with no live writer is removed once idle this long; so is a record
    /// without bytes.
    pub stale_after: Duration,
    /// Serialize fills of one entry across processes (`flock` on `ab/cd/.lock`).
    pub fill_locks: bool,
}

impl Default for DirStoreOptions {
    fn default() -> Self {
        DirStoreOptions {
            policy: Policy { strict: true },
            durable: true,
            max_bytes: None,
            max_entry_bytes: 64 << 30,
            stale_after: Duration::from_secs(120),
            fill_locks: false,
        }
    }
}

/// A content-addressed directory of entries.
#[derive(Debug, Clone)]
pub struct DirStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: SecureDir,
    opts: DirStoreOptions,
    own: OwnChanges,
    invalidated: Mutex<HashSet<String>>,
    approx_bytes: AtomicU64,
    maintaining: Mutex<()>,
}

impl DirStore {
    /// Opens (creating if needed) the store rooted at `root`, refusing an unsafe root (see
    /// [`SecureDir::open_root`]), and runs [`EntryStore::maintain`] once.
    pub fn open(root: &Path, opts: DirStoreOptions) -> Result<DirStore> {
        let dir = SecureDir::open_root(root, opts.policy)?;
        let store = DirStore::from_dir(dir, opts);
        store.maintain()?;
        Ok(store)
    }

    /// A store over an already opened and checked directory.
    pub fn from_dir(root: SecureDir, mut opts: DirStoreOptions) -> DirStore {
        if let Some(max) = opts.max_bytes {
            opts.max_entry_bytes = opts.max_entry_bytes.min(max);
        }
        DirStore {
            inner: Arc::new(Inner {
                root,
                opts,
                own: OwnChanges::default(),
                invalidated: Mutex::new(HashSet::new()),
                approx_bytes: AtomicU64::new(0),
                maintaining: Mutex::new(()),
            }),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &DirStoreOptions {
        &self.inner.opts
    }
}

impl EntryStore for DirStore {
    fn describe(&self) -> String {
        format!("directory {}", self.root().display())
    }

    fn open(&self, sha256: &str) -> Result<Option<Entry>> {
        self.inner.open(sha256)
    }

    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>> {
        publish::create(&self.inner, sha256)
    }

    fn remove(&self, sha256: &str) {
        if is_sha(sha256) {
            self.inner.remove(sha256);
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self.inner.list())
    }

    fn clear(&self) -> Result<()> {
        self.inner.clear()
    }

    fn maintain(&self) -> Result<u64> {
        self.inner.maintain(None)
    }

    fn usage(&self) -> Result<Usage> {
        Ok(self.inner.usage())
    }

    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        Ok(self.inner.lock_for_fill(sha256))
    }

    fn fill_info(&self, info: &mut CacheInfo) {
        info.location = Some(self.root().to_path_buf());
        info.max_bytes = self.inner.opts.max_bytes;
        info.unsafe_shared = !self.inner.opts.policy.strict;
    }
}
