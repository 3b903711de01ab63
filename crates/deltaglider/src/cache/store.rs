//! The lower layer: an [`EntryStore`] keeps, per content hash, some bytes and a
//! [`Record`]. Stores stack: [`super::signed::Signed`] and [`super::encrypted::Encrypted`]
//! each wrap another store and transform the record or the bytes on the way through;
//! [`StoreCache`] sits on top and is the [`ReferenceCache`] the engine sees, hashing every
//! byte it hands out. It is the one cache type that keeps entries: `StoreCache::private`,
//! `StoreCache::persistent` and `StoreCache::memory` build its three stacks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dir_store::DirStore;
use super::monitor::IntegrityMonitor;
use super::record::{FLAG_ENCRYPTED, Record};
use super::{
    CacheInfo, CacheWriter, FillLock, FillSlot, Lookup, ReferenceCache, VerifySummary,
    normalize_sha, secure_fs,
};
use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;

/// The bytes of an opened entry.
#[derive(Debug)]
pub enum EntryData {
    /// An open, `fstat`-checked file (or a sealed memory file).
    File(File),
    /// Bytes held in memory.
    Bytes(Arc<[u8]>),
}

impl EntryData {
    /// A reader from the first byte.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            EntryData::File(f) => {
                f.seek(SeekFrom::Start(0))?;
                Box::new(io::BufReader::with_capacity(1 << 20, f))
            }
            EntryData::Bytes(b) => Box::new(&b[..]),
        })
    }
}

/// An opened entry: its bytes and its record, as the layer below left them.
#[derive(Debug)]
pub struct Entry {
    /// The stored bytes (plaintext once every transforming layer has run).
    pub data: EntryData,
    /// The record, with the fields of the layers already passed cleared.
    pub record: Record,
    /// Set by a layer that already hashed `data` while producing it into a sealed memory
    /// file, so the top does not hash it twice.
    pub hashed: Option<String>,
}

/// Totals for `cache info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Number of entries.
    pub entries: u64,
    /// Stored bytes (ciphertext size if encrypted), records not counted.
    pub bytes: u64,
}

/// Keeps bytes and a record per content hash. Every method takes a lowercase hex SHA-256.
pub trait EntryStore: Send + Sync + std::fmt::Debug {
    /// One line for humans.
    fn describe(&self) -> String;

    /// The entry, or `None` if absent. A store removes (and logs) what it finds invalid at
    /// its own level and reports a miss.
    fn open(&self, sha256: &str) -> Result<Option<Entry>>;

    /// Starts writing an entry.
    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>>;

    /// Removes an entry (best effort; a layer above found it bad).
    fn remove(&self, sha256: &str);

    /// The hashes of the entries present.
    fn list(&self) -> Result<Vec<String>>;

    /// Removes every entry.
    fn clear(&self) -> Result<()>;

    /// Housekeeping: stale temporary files, orphans, expired entries, size budget. Returns
    /// how many files were removed.
    fn maintain(&self) -> Result<u64>;

    /// Entry count and bytes.
    fn usage(&self) -> Result<Usage>;

    /// Adds what this layer knows to `info`, then asks the layer below.
    fn fill_info(&self, info: &mut CacheInfo);

    /// Waits until no other process (or thread) is filling `sha256` and holds that right
    /// until the returned lock is dropped, so that processes sharing a cache do not all
    /// download the same reference. Blocks (polling) for up to ten minutes, then gives up
    /// waiting and returns [`FillLock::none`], as a store that is not shared does at once.
    /// No default: a wrapper that forgot to pass this on would silently lose the locking.
    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock>;
}

/// An entry being written to a store.
pub trait PendingEntry: Write + Send {
    /// Makes the entry visible with `record` (whose `size` is the number of bytes written to
    /// this layer). Returns a rewound handle on the bytes as this layer holds them, when it
    /// has one. Dropping without publishing discards everything.
    fn publish(self: Box<Self>, record: Record) -> Result<Option<File>>;
}

/// The [`ReferenceCache`] over a stack of stores: verifies SHA-256 of everything it returns.
#[derive(Debug)]
pub struct StoreCache {
    store: Arc<dyn EntryStore>,
    ttl: Option<Duration>,
    backend: &'static str,
    persistent: bool,
    /// Plaintext must never touch the disk (some layer encrypts).
    encrypted: bool,
    /// Entry files this process hashed and found valid, by content hash: their identity
    /// then. A later lookup that opens the same, unchanged file skips hashing it again.
    verified: Mutex<HashMap<String, FileIdentity>>,
    /// What `describe` says.
    description: String,
    /// The directory store at the bottom, for the file-system stacks.
    dir: Option<DirStore>,
    /// The inotify watcher of a persistent cache.
    monitor: Option<IntegrityMonitor>,
    // Last: a private cache's directory, removed when the cache is dropped.
    private_dir: Option<super::ephemeral::PrivateDir>,
}

/// What `fstat` says identifies a file and its last change. Any write, truncation, chmod
/// or replacement changes `ctime` (which no user can set) or the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// A file's change time must be this much older than the start of the hash that verified
/// it before that verification is remembered: file timestamps come from a coarse clock, and
/// a change made in the same tick as the last one could otherwise keep the same `ctime`.
const SETTLED: Duration = Duration::from_millis(50);

impl FileIdentity {
    fn of(file: &File) -> Option<FileIdentity> {
        let st = rustix::fs::fstat(file).ok()?;
        Some(FileIdentity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as i64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        })
    }

    /// True if the file last changed more than [`SETTLED`] before `instant`.
    fn settled_before(&self, instant: SystemTime) -> bool {
        let Ok(at) = instant.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let (secs, nanos) = self.ctime;
        let (Ok(secs), Ok(nanos)) = (u64::try_from(secs), u32::try_from(nanos)) else {
            return false;
        };
        Duration::new(secs, nanos.min(999_999_999)) + SETTLED < at
    }
}

impl StoreCache {
    /// `backend` names the cache in `cache info`; `ttl` is written into each new record.
    pub(crate) fn new(
        store: Arc<dyn EntryStore>,
        ttl: Option<Duration>,
        backend: &'static str,
        persistent: bool,
    ) -> StoreCache {
        let mut info = CacheInfo::default();
        store.fill_info(&mut info);
        StoreCache {
            description: store.describe(),
            store,
            ttl,
            backend,
            persistent,
            encrypted: info.encryption_key.is_some(),
            verified: Mutex::default(),
            dir: None,
            monitor: None,
            private_dir: None,
        }
    }

    /// Names the cache `description` in `describe` and `cache info`.
    pub(crate) fn described(mut self, description: String) -> StoreCache {
        self.description = description;
        self
    }

    /// Keeps `dir`, the directory store at the bottom, for diagnostics, tests and the
    /// monitor.
    pub(crate) fn with_dir(mut self, dir: DirStore) -> StoreCache {
        self.dir = Some(dir);
        self
    }

    pub(crate) fn with_monitor(mut self, monitor: Option<IntegrityMonitor>) -> StoreCache {
        self.monitor = monitor;
        self
    }

    pub(crate) fn with_private_dir(mut self, dir: super::ephemeral::PrivateDir) -> StoreCache {
        self.private_dir = Some(dir);
        self
    }

    /// The directory store at the bottom (paths, invalidation state), for the file-system
    /// caches. Paths are for diagnostics and tests: the cache never opens an entry by name.
    pub(crate) fn dir_store(&self) -> Option<&DirStore> {
        self.dir.as_ref()
    }

    /// The cache directory, for the file-system caches.
    pub fn root(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(DirStore::root)
    }

    /// The integrity monitor, if running.
    #[cfg(test)]
    pub(crate) fn monitor(&self) -> Option<&IntegrityMonitor> {
        self.monitor.as_ref()
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, FileIdentity>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reject(&self, sha: &str, why: &str) -> Result<Option<File>> {
        tracing::warn!(target: "security", sha256 = %sha, "cache entry rejected and removed: {why}");
        self.verified().remove(sha);
        self.store.remove(sha);
        Ok(None)
    }

    /// A lookup whose failure is logged and counts as a miss: the reference is then fetched
    /// from storage, and the entry rewritten.
    fn lookup_or_miss(&self, sha: &str) -> Option<File> {
        match self.lookup(sha) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot read the reference cache ({}); fetching the reference from storage", crate::error::chain(&e));
                self.verified().remove(sha);
                None
            }
        }
    }

    /// The verified entry `sha256`, or `None`: one half of [`ReferenceCache::reference`],
    /// without its lock; errors are the store's.
    pub(crate) fn lookup(&self, sha256: &str) -> Result<Option<File>> {
        let sha = normalize_sha(sha256)?;
        let Some(entry) = self.store.open(&sha)? else {
            return Ok(None);
        };
        if entry.record.has(FLAG_ENCRYPTED) {
            return self.reject(&sha, "encrypted entry, but no encryption key is configured");
        }
        if entry.record.sha256_hex() != sha {
            return self.reject(&sha, "its record names another hash");
        }
        if entry.record.is_expired(super::now_secs()) {
            tracing::debug!(sha256 = %sha, "cache entry expired");
            self.store.remove(&sha);
            return Ok(None);
        }
        let file = match entry.data {
            EntryData::File(mut f) => {
                let identity = FileIdentity::of(&f);
                let unchanged =
                    identity.is_some() && self.verified().get(&sha) == identity.as_ref();
                if unchanged || entry.hashed.as_deref() == Some(sha.as_str()) {
                    f.seek(SeekFrom::Start(0))
                        .ctx(|| "cannot rewind the cache entry".into())?;
                } else {
                    let started = SystemTime::now();
                    if !super::handle_matches(&mut f, &sha)
                        .ctx(|| format!("cannot read cache entry {sha}"))?
                    {
                        return self.reject(&sha, "its bytes do not hash to its name");
                    }
                    match identity {
                        Some(id) if id.settled_before(started) => {
                            self.verified().insert(sha.clone(), id);
                        }
                        _ => {
                            self.verified().remove(&sha);
                        }
                    }
                }
                f
            }
            EntryData::Bytes(bytes) => {
                if crate::hashing::sha256_hex(&bytes) != sha {
                    return self.reject(&sha, "its bytes do not hash to its name");
                }
                let mut m = secure_fs::memfd("dg-reference")
                    .ctx(|| "cannot create a memory file".into())?;
                m.write_all(&bytes)
                    .and_then(|()| secure_fs::seal(&m))
                    .and_then(|()| m.seek(SeekFrom::Start(0)).map(drop))
                    .ctx(|| "cannot fill a memory file".into())?;
                m
            }
        };
        Ok(Some(file))
    }

    /// A writer of entry `sha256` that ignores the fill lock: the other half of
    /// [`ReferenceCache::reference`], for tests that race writers on purpose.
    #[cfg(test)]
    pub(crate) fn writer(&self, sha256: &str) -> Result<Box<dyn CacheWriter>> {
        start_writer(&self.store, &normalize_sha(sha256)?, self.ttl)
    }
}

/// A writer into `store` of entry `sha` (lowercase), hashing what it is given.
fn start_writer(
    store: &Arc<dyn EntryStore>,
    sha: &str,
    ttl: Option<Duration>,
) -> Result<Box<dyn CacheWriter>> {
    Ok(Box::new(StoreWriter {
        sha: sha.to_string(),
        ttl: ttl.map(|t| t.as_secs()),
        inner: HashingWriter::new(store.create(sha)?),
    }))
}

// Every method stated: a forgotten one must not fall back to a default.
#[deny(clippy::missing_trait_methods)]
impl ReferenceCache for StoreCache {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn reference(&self, sha256: &str) -> Result<Lookup> {
        let sha = normalize_sha(sha256)?;
        if let Some(f) = self.lookup_or_miss(&sha) {
            return Ok(Lookup::Hit(f));
        }
        // Another process sharing the cache may be filling this entry right now: wait for
        // it, then look again before anyone downloads.
        let lock = self.store.lock_for_fill(&sha).unwrap_or_else(|e| {
            tracing::warn!(sha256 = %sha, "cannot take the cache fill lock ({}); filling without it", crate::error::chain(&e));
            FillLock::none()
        });
        if lock.is_held()
            && let Some(f) = self.lookup_or_miss(&sha)
        {
            tracing::debug!(sha256 = %sha, "cache entry filled by another process");
            return Ok(Lookup::Hit(f));
        }
        let (store, ttl, name) = (self.store.clone(), self.ttl, sha.clone());
        Ok(Lookup::Miss(FillSlot::new(
            &sha,
            lock,
            // Plaintext must not reach the disk even when the cache fails.
            self.encrypted,
            move || start_writer(&store, &name, ttl),
        )?))
    }

    fn clear(&self) -> Result<()> {
        self.verified().clear();
        self.store.clear()
    }

    fn info(&self) -> Result<CacheInfo> {
        let usage = self.store.usage()?;
        let mut info = CacheInfo {
            backend: self.backend.into(),
            description: self.describe(),
            persistent: self.persistent,
            monitored: self.monitor.is_some(),
            entries: usage.entries,
            bytes: usage.bytes,
            ttl_seconds: self.ttl.map(|t| t.as_secs()),
            ..CacheInfo::default()
        };
        self.store.fill_info(&mut info);
        Ok(info)
    }

    fn verify_all(&self) -> Result<VerifySummary> {
        // Re-hash everything, even entries this process found valid before.
        self.verified().clear();
        let mut summary = VerifySummary {
            removed: self.store.maintain()?,
            ..VerifySummary::default()
        };
        for sha in self.store.list()? {
            summary.checked += 1;
            match self.lookup(&sha) {
                Ok(Some(_)) => summary.valid += 1,
                Ok(None) => summary.removed += 1,
                Err(e) => {
                    tracing::warn!(sha256 = %sha, "cannot verify cache entry: {}", crate::error::chain(&e));
                    self.store.remove(&sha);
                    summary.removed += 1;
                }
            }
        }
        Ok(summary)
    }
}

struct StoreWriter {
    sha: String,
    ttl: Option<u64>,
    inner: HashingWriter<Box<dyn PendingEntry>>,
}

impl Write for StoreWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl CacheWriter for StoreWriter {
    fn commit(self: Box<Self>, what: &str) -> Result<File> {
        let StoreWriter { sha, ttl, inner } = *self;
        let (actual, len, pending) = inner.into_parts();
        if actual != sha {
            // Dropping `pending` discards the partial entry.
            return Err(Error::IntegrityMismatch {
                what: what.to_string(),
                expected: sha,
                actual,
            });
        }
        match pending.publish(Record::new(&sha, len, ttl))? {
            Some(mut f) => {
                f.seek(SeekFrom::Start(0))
                    .ctx(|| "cannot rewind the cache entry".into())?;
                Ok(f)
            }
            None => Err(Error::io(
                "the cache store kept no readable copy of the entry",
                io::Error::other("store misconfigured: wrap a memory store in encryption"),
            )),
        }
    }
}
