//! Content-addressed entries in a directory: `ab/cd/<sha256>` holds the bytes and
//! `ab/cd/<sha256>.rec` the [`Record`]. The bottom of the persistent and ephemeral caches.
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
//!   recently used entries (a hit touches the record's mtime) beyond the size budget.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::record::{RECORD_LEN, Record};
use super::secure_fs::{self, Policy, SecureDir, TEMP_PREFIX};
use super::store::{Entry, EntryData, EntryStore, PendingEntry, Usage};
use super::{CacheInfo, FillLock, is_sha};
use crate::error::{Error, IoContext, Result};

/// Suffix of record files.
pub const RECORD_SUFFIX: &str = ".rec";
/// Per-leaf lock file serializing fills ([`DirStoreOptions::fill_locks`]).
pub const LOCK_NAME: &str = ".lock";
/// Longest wait for another process's fill.
pub const FILL_LOCK_WAIT: Duration = Duration::from_secs(600);

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

/// Names this process touched recently, so the integrity monitor can tell its own changes
/// from anyone else's.
#[derive(Debug, Default)]
pub struct OwnChanges {
    recent: Mutex<HashMap<String, Instant>>,
}

/// How long after noting a change its events count as ours.
pub const OWN_WINDOW: Duration = Duration::from_secs(3);

impl OwnChanges {
    /// Notes that this process is about to change `name`.
    pub fn note(&self, name: &str) {
        let mut m = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 4096 {
            m.retain(|_, t| t.elapsed() < OWN_WINDOW);
        }
        m.insert(name.to_string(), Instant::now());
    }

    /// True if this process changed `name` within [`OWN_WINDOW`].
    pub fn is_ours(&self, name: &str) -> bool {
        let m = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name).is_some_and(|t| t.elapsed() < OWN_WINDOW)
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

fn is_pair(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Errors opening an entry that mean something other than our file is there (a symlink,
/// someone else's file, a socket); transient errors (out of descriptors, I/O) do not remove.
fn planted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP | libc::EACCES | libc::EPERM | libc::ENXIO | libc::ENOTDIR | libc::EISDIR)
    )
}

fn mtime(st: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn atime(st: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(st.st_atime).unwrap_or(0);
    let nanos = u32::try_from(st.st_atime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos.min(999_999_999))
}

fn idle_for(st: &rustix::fs::Stat) -> Duration {
    SystemTime::now()
        .duration_since(mtime(st))
        .unwrap_or(Duration::ZERO)
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

    /// Path of the bytes of an entry (for diagnostics and tests; never opened by name).
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.root()
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    /// Path of the record of an entry.
    pub fn record_path(&self, sha256: &str) -> PathBuf {
        let mut p = self.entry_path(sha256).into_os_string();
        p.push(RECORD_SUFFIX);
        PathBuf::from(p)
    }

    /// Changes this process made recently (read by the integrity monitor).
    pub fn own_changes(&self) -> &OwnChanges {
        &self.inner.own
    }

    /// Marks an entry bad (it is a miss in this process until rewritten here) and removes it.
    pub fn invalidate(&self, sha256: &str) {
        if !is_sha(sha256) {
            return;
        }
        self.inner
            .invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_string());
        self.inner.remove(sha256);
    }

    /// True if the monitor invalidated the entry and it was not rewritten since.
    pub fn is_invalidated(&self, sha256: &str) -> bool {
        self.inner
            .invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sha256)
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &DirStoreOptions {
        &self.inner.opts
    }
}

impl Inner {
    fn leaf(&self, sha: &str, create: bool) -> io::Result<Option<SecureDir>> {
        let Some(a) = self.root.subdir(&sha[..2], create)? else {
            return Ok(None);
        };
        a.subdir(&sha[2..4], create)
    }

    fn remove_in(&self, leaf: &SecureDir, sha: &str) {
        let rec = format!("{sha}{RECORD_SUFFIX}");
        self.own.note(sha);
        self.own.note(&rec);
        for name in [sha, rec.as_str()] {
            if let Err(e) = leaf.unlink(name) {
                tracing::warn!(path = %leaf.display(name).display(), "cannot remove cache file: {}", crate::error::chain(&e));
            }
        }
    }

    fn remove(&self, sha: &str) {
        match self.leaf(sha, false) {
            Ok(Some(leaf)) => self.remove_in(&leaf, sha),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot reach cache entry to remove it: {}", crate::error::chain(&e))
            }
        }
    }

    fn reject(&self, leaf: &SecureDir, sha: &str, name: &str, why: &str) -> Result<Option<Entry>> {
        tracing::warn!(
            target: "security",
            path = %leaf.display(name).display(),
            "cache entry rejected and removed: {why}"
        );
        self.remove_in(leaf, sha);
        Ok(None)
    }

    /// Reads and checks the record `name` in `leaf`; `Err(reason)` if it is unusable.
    fn read_record(&self, file: &mut File) -> std::result::Result<Record, String> {
        let st = rustix::fs::fstat(&*file).map_err(|e| e.to_string())?;
        secure_fs::check_file_stat(
            &st,
            self.opts.policy,
            Some(RECORD_LEN as u64),
            RECORD_LEN as u64,
        )?;
        let mut buf = [0u8; RECORD_LEN];
        file.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Record::decode(&buf).map_err(|e| e.to_string())
    }

    fn open(&self, sha: &str) -> Result<Option<Entry>> {
        if self
            .invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sha)
        {
            return Ok(None);
        }
        let leaf = match self.leaf(sha, false) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(target: "security", sha256 = %sha, "cache directory unusable: {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let rec_name = format!("{sha}{RECORD_SUFFIX}");
        let mut rec_file = match leaf.open_read(&rec_name) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // Records are published before bytes, so bytes alone were planted.
                if leaf.stat(sha).ok().flatten().is_some() {
                    return self.reject(&leaf, sha, sha, "bytes without a record");
                }
                return Ok(None);
            }
            Err(e) if planted(&e) => {
                return self.reject(
                    &leaf,
                    sha,
                    &rec_name,
                    &format!("cannot open record: {}", crate::error::chain(&e)),
                );
            }
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot open cache record (treated as a miss): {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let record = match self.read_record(&mut rec_file) {
            Ok(r) => r,
            Err(why) => return self.reject(&leaf, sha, &rec_name, &format!("bad record: {why}")),
        };
        if record.sha256_hex() != sha {
            return self.reject(&leaf, sha, &rec_name, "record names another hash");
        }
        if record.is_expired(super::now_secs()) {
            tracing::debug!(sha256 = %sha, "cache entry expired; removed");
            self.remove_in(&leaf, sha);
            return Ok(None);
        }
        let data = match leaf.open_read(sha) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) if planted(&e) => {
                return self.reject(
                    &leaf,
                    sha,
                    sha,
                    &format!("cannot open: {}", crate::error::chain(&e)),
                );
            }
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot open cache entry (treated as a miss): {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let st = rustix::fs::fstat(&data)
            .map_err(std::io::Error::from)
            .ctx(|| format!("cannot stat cache entry {sha}"))?;
        if let Err(why) = secure_fs::check_file_stat(
            &st,
            self.opts.policy,
            Some(record.size),
            self.opts.max_entry_bytes,
        ) {
            return self.reject(&leaf, sha, sha, &why);
        }
        // Least-recently-used bookkeeping: a hit sets the record's access time. Reads never
        // move it (files are opened with O_NOATIME), and changing the access time alone is
        // not an attribute change, so the integrity monitor of another process sharing the
        // cache does not take a hit for tampering.
        let _ = rec_file.set_times(std::fs::FileTimes::new().set_accessed(SystemTime::now()));
        Ok(Some(Entry {
            data: EntryData::File(data),
            record,
            hashed: None,
        }))
    }

    /// Every leaf directory with the names in it.
    fn leaves(&self) -> Vec<(SecureDir, Vec<String>)> {
        self.walk(false)
    }

    /// Every leaf directory with the names in it. With `repair`, a symlink or file planted
    /// where a level directory belongs is removed.
    fn walk(&self, repair: bool) -> Vec<(SecureDir, Vec<String>)> {
        let mut out = Vec::new();
        let top = match self.root.names() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(root = %self.root.path().display(), "cannot list the cache: {}", crate::error::chain(&e));
                return out;
            }
        };
        let open = |parent: &SecureDir, name: &str| match parent.subdir(name, false) {
            Ok(d) => d,
            Err(e) => {
                let planted = parent.stat(name).ok().flatten().is_some_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        != rustix::fs::FileType::Directory
                });
                if repair && planted {
                    tracing::warn!(target: "security", "removing {}: {}", crate::error::chain(&e), parent.display(name).display());
                    let _ = parent.unlink(name);
                } else {
                    tracing::warn!(target: "security", "skipping cache directory: {}", crate::error::chain(&e));
                }
                None
            }
        };
        for a in top.iter().filter(|n| is_pair(n)) {
            let Some(sub) = open(&self.root, a) else {
                continue;
            };
            for b in sub
                .names()
                .unwrap_or_default()
                .iter()
                .filter(|n| is_pair(n))
            {
                if let Some(leaf) = open(&sub, b) {
                    let names = leaf.names().unwrap_or_default();
                    out.push((leaf, names));
                }
            }
        }
        out
    }

    fn maintain(&self, keep: Option<&str>) -> Result<u64> {
        let _guard = self.maintaining.lock().unwrap_or_else(|p| p.into_inner());
        let now = super::now_secs();
        let mut removed = 0u64;
        // (last use, size, sha, leaf index)
        let mut live: Vec<(SystemTime, u64, String, usize)> = Vec::new();
        let leaves = self.walk(true);
        for (i, (leaf, names)) in leaves.iter().enumerate() {
            let prefix = leaf.path().iter().rev().take(2).collect::<Vec<_>>();
            let expected_prefix = format!(
                "{}{}",
                prefix
                    .get(1)
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default(),
                prefix
                    .first()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let names: HashSet<&str> = names.iter().map(String::as_str).collect();
            for name in &names {
                if name.starts_with(TEMP_PREFIX) {
                    removed += u64::from(self.clean_temp(leaf, name));
                } else if *name == LOCK_NAME
                    || is_sha(name)
                    || name.strip_suffix(RECORD_SUFFIX).is_some_and(is_sha)
                {
                    continue;
                } else {
                    tracing::warn!(path = %leaf.display(name).display(), "unexpected file in the cache (left alone)");
                }
            }
            for name in &names {
                let (sha, has_data, has_rec) = if is_sha(name) {
                    let rec = format!("{name}{RECORD_SUFFIX}");
                    (*name, true, names.contains(rec.as_str()))
                } else if let Some(sha) = name.strip_suffix(RECORD_SUFFIX).filter(|s| is_sha(s)) {
                    if names.contains(sha) {
                        continue; // handled with its bytes
                    }
                    (sha, false, true)
                } else {
                    continue;
                };
                if !sha.starts_with(&expected_prefix) {
                    tracing::warn!(target: "security", path = %leaf.display(name).display(), "cache entry in the wrong directory; removed");
                    self.remove_in(leaf, sha);
                    removed += 1;
                    continue;
                }
                if !has_rec {
                    tracing::warn!(target: "security", path = %leaf.display(sha).display(), "cache bytes without a record; removed");
                    self.remove_in(leaf, sha);
                    removed += 1;
                    continue;
                }
                let rec_name = format!("{sha}{RECORD_SUFFIX}");
                let rec_st = match leaf.stat(&rec_name) {
                    Ok(Some(st)) => st,
                    _ => continue,
                };
                if !has_data {
                    if idle_for(&rec_st) > self.opts.stale_after {
                        self.remove_in(leaf, sha);
                        removed += 1;
                    }
                    continue;
                }
                let record = match leaf.open_read(&rec_name) {
                    Ok(Some(mut f)) => self.read_record(&mut f),
                    Ok(None) => continue,
                    Err(e) => Err(e.to_string()),
                };
                let data_st = leaf.stat(sha).ok().flatten();
                let verdict = match (&record, &data_st) {
                    (Err(why), _) => Err(format!("bad record: {why}")),
                    (_, None) => continue,
                    (Ok(r), Some(st)) if r.sha256_hex() != sha => {
                        let _ = st;
                        Err("record names another hash".to_string())
                    }
                    (Ok(r), Some(st)) => secure_fs::check_file_stat(
                        st,
                        self.opts.policy,
                        Some(r.size),
                        self.opts.max_entry_bytes,
                    ),
                };
                match verdict {
                    Err(why) => {
                        tracing::warn!(target: "security", path = %leaf.display(sha).display(), "cache entry rejected and removed: {why}");
                        self.remove_in(leaf, sha);
                        removed += 1;
                    }
                    Ok(()) => {
                        let r = record.expect("checked");
                        if r.is_expired(now) {
                            self.remove_in(leaf, sha);
                            removed += 1;
                        } else {
                            live.push((atime(&rec_st), r.size, sha.to_string(), i));
                        }
                    }
                }
            }
        }
        let mut total: u64 = live.iter().map(|e| e.1).sum();
        if let Some(max) = self.opts.max_bytes
            && total > max
        {
            live.sort_by_key(|e| e.0);
            for (_, size, sha, i) in &live {
                if total <= max {
                    break;
                }
                if Some(sha.as_str()) == keep {
                    continue;
                }
                tracing::debug!(sha256 = %sha, "evicting cache entry (size budget)");
                self.remove_in(&leaves[*i].0, sha);
                total -= size;
                removed += 1;
            }
        }
        self.approx_bytes.store(total, Ordering::Relaxed);
        Ok(removed)
    }

    /// Removes a temporary file if no live writer holds its lock and it has been idle for
    /// the grace period. True if removed.
    fn clean_temp(&self, leaf: &SecureDir, name: &str) -> bool {
        let Ok(Some(st)) = leaf.stat(name) else {
            return false;
        };
        if idle_for(&st) < self.opts.stale_after {
            return false;
        }
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
            match leaf.open_read(name) {
                Ok(Some(f)) if !secure_fs::try_lock_exclusive(&f) => return false,
                _ => {}
            }
        }
        tracing::info!(path = %leaf.display(name).display(), "removing a temporary cache file left by an interrupted writer");
        self.own.note(name);
        leaf.unlink(name).is_ok()
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
        let leaf = self
            .inner
            .leaf(sha256, true)
            .ctx(|| {
                format!(
                    "cannot create a cache directory in {}",
                    self.root().display()
                )
            })?
            .ok_or_else(|| Error::io("cache directory vanished", io::ErrorKind::NotFound.into()))?;
        let (file, temp) = leaf
            .create_temp()
            .ctx(|| format!("cannot create a cache entry in {}", leaf.path().display()))?;
        Ok(Box::new(DirPending {
            store: self.inner.clone(),
            sha: sha256.to_string(),
            out: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            leaf,
            temp,
            written: 0,
        }))
    }

    fn remove(&self, sha256: &str) {
        if is_sha(sha256) {
            self.inner.remove(sha256);
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (_, names) in self.inner.leaves() {
            out.extend(names.into_iter().filter(|n| is_sha(n)));
        }
        Ok(out)
    }

    fn clear(&self) -> Result<()> {
        let root = &self.inner.root;
        for (leaf, names) in self.inner.leaves() {
            for name in names {
                self.inner.own.note(&name);
                leaf.unlink(&name)
                    .ctx(|| format!("cannot remove {}", leaf.display(&name).display()))?;
            }
        }
        for a in root.names().ctx(|| "cannot list the cache".into())? {
            if is_pair(&a) {
                root.remove_tree(&a)
                    .ctx(|| format!("cannot remove {}", root.display(&a).display()))?;
            }
        }
        self.inner.approx_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn maintain(&self) -> Result<u64> {
        self.inner.maintain(None)
    }

    fn usage(&self) -> Result<Usage> {
        let mut u = Usage::default();
        for (leaf, names) in self.inner.leaves() {
            for name in names.iter().filter(|n| is_sha(n)) {
                if let Ok(Some(st)) = leaf.stat(name) {
                    u.entries += 1;
                    u.bytes += u64::try_from(st.st_size).unwrap_or(0);
                }
            }
        }
        Ok(u)
    }

    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        if !self.inner.opts.fill_locks || !is_sha(sha256) {
            return Ok(FillLock::none());
        }
        let fd = match self.inner.leaf(sha256, true).and_then(|leaf| match leaf {
            Some(leaf) => leaf.open_lock(LOCK_NAME),
            None => Err(io::ErrorKind::NotFound.into()),
        }) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(target: "security", sha256, "cannot use the cache fill lock: {}", crate::error::chain(&e));
                return Ok(FillLock::none());
            }
        };
        let start = Instant::now();
        let mut told = false;
        loop {
            match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(FillLock::held(fd)),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => {
                    tracing::warn!(
                        sha256,
                        "cannot take the cache fill lock: {}",
                        crate::error::chain(&e)
                    );
                    return Ok(FillLock::none());
                }
            }
            if start.elapsed() > FILL_LOCK_WAIT {
                tracing::warn!(
                    sha256,
                    "gave up waiting for another process filling the same cache entry"
                );
                return Ok(FillLock::none());
            }
            if !told {
                tracing::info!(
                    sha256,
                    "waiting for another process filling the same cache entry"
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fill_info(&self, info: &mut CacheInfo) {
        info.location = Some(self.root().to_path_buf());
        info.max_bytes = self.inner.opts.max_bytes;
        info.unsafe_shared = !self.inner.opts.policy.strict;
    }
}

struct DirPending {
    store: Arc<Inner>,
    sha: String,
    out: Option<io::BufWriter<File>>,
    leaf: SecureDir,
    temp: String,
    written: u64,
}

impl Write for DirPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self.out.as_mut().expect("not yet published");
        let n = out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().expect("not yet published").flush()
    }
}

impl Drop for DirPending {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = self.leaf.unlink(&self.temp);
        }
    }
}

impl DirPending {
    /// Writes the record to a temporary file and renames record, then bytes, into place.
    fn place(&self, file: &File, record: &Record) -> io::Result<()> {
        if self.store.opts.durable {
            file.sync_data()?;
        }
        let (mut rec, rec_temp) = self.leaf.create_temp()?;
        let result = (|| {
            rec.write_all(&record.encode())?;
            if self.store.opts.durable {
                rec.sync_data()?;
            }
            let rec_name = format!("{}{RECORD_SUFFIX}", self.sha);
            self.store.own.note(&rec_name);
            self.leaf.rename(&rec_temp, &rec_name)?;
            self.store.own.note(&self.sha);
            self.leaf.rename(&self.temp, &self.sha)
        })();
        if result.is_err() {
            let _ = self.leaf.unlink(&rec_temp);
        }
        result
    }
}

impl PendingEntry for DirPending {
    fn publish(mut self: Box<Self>, record: Record) -> Result<Option<File>> {
        let out = self.out.take().expect("published once");
        let file = out
            .into_inner()
            .map_err(|e| Error::io("cannot write the cache entry", e.into_error()))?;
        if record.size != self.written || record.sha256_hex() != self.sha {
            let _ = self.leaf.unlink(&self.temp);
            return Err(Error::io(
                "cache record does not describe the entry",
                io::Error::other(format!(
                    "record says {} bytes of {}, wrote {} of {}",
                    record.size,
                    record.sha256_hex(),
                    self.written,
                    self.sha
                )),
            ));
        }
        if record.size > self.store.opts.max_entry_bytes {
            tracing::debug!(sha256 = %self.sha, size = record.size, "too large for the cache; used uncached");
            let _ = self.leaf.unlink(&self.temp);
            return Ok(Some(file));
        }
        match self.place(&file, &record) {
            Ok(()) => {
                self.store
                    .invalidated
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.sha);
                let total = self
                    .store
                    .approx_bytes
                    .fetch_add(record.size, Ordering::Relaxed)
                    + record.size;
                if self.store.opts.max_bytes.is_some_and(|max| total > max)
                    && let Err(e) = self.store.maintain(Some(&self.sha))
                {
                    tracing::warn!("cannot trim the cache: {}", crate::error::chain(&e));
                }
            }
            Err(e) => {
                // The bytes were verified by the layer above; serve them unnamed.
                tracing::warn!(path = %self.leaf.display(&self.sha).display(), "cannot publish cache entry ({}); using it uncached", crate::error::chain(&e));
                let _ = self.leaf.unlink(&self.temp);
            }
        }
        Ok(Some(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ReferenceCache;
    use crate::cache::store::StoreCache;
    use crate::hashing::sha256_hex;
    use std::os::unix::fs::PermissionsExt;

    fn store(dir: &Path, opts: DirStoreOptions) -> (DirStore, StoreCache) {
        let s = DirStore::open(dir, opts).unwrap();
        let c = StoreCache::new(Arc::new(s.clone()), None, "persistent", true);
        (s, c)
    }

    fn fill(c: &StoreCache, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(bytes).unwrap();
        w.commit("test").unwrap();
        sha
    }

    fn read(mut f: File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn entries_are_0600_in_0700_dirs_with_records() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(&t.path().join("c"), DirStoreOptions::default());
        let sha = fill(&c, b"hello");
        let p = s.entry_path(&sha);
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
        let rec = Record::decode(&std::fs::read(s.record_path(&sha)).unwrap()).unwrap();
        assert_eq!((rec.sha256_hex(), rec.size), (sha.clone(), 5));
        assert_eq!(read(c.lookup(&sha).unwrap().unwrap()), b"hello");
    }

    #[test]
    fn appended_flipped_and_swapped_entries_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        // Appended: size no longer matches the record.
        let sha = fill(&c, b"original");
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.entry_path(&sha))
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists() && !s.record_path(&sha).exists());
        // Flipped: same size, wrong hash.
        let sha = fill(&c, b"original");
        std::fs::write(s.entry_path(&sha), b"0riginal").unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
        // Swapped: another valid entry's bytes and record moved over this one.
        let a = fill(&c, b"aaaa");
        let b = fill(&c, b"bbbb");
        std::fs::copy(s.entry_path(&b), s.entry_path(&a)).unwrap();
        assert!(c.lookup(&a).unwrap().is_none());
        std::fs::copy(s.record_path(&b), s.record_path(&a)).unwrap();
        let a2 = fill(&c, b"aaaa");
        assert_eq!(a, a2);
        std::fs::copy(s.record_path(&b), s.record_path(&a)).unwrap();
        assert!(
            c.lookup(&a).unwrap().is_none(),
            "record naming another hash"
        );
        assert_eq!(read(c.lookup(&b).unwrap().unwrap()), b"bbbb");
    }

    #[test]
    fn planted_symlink_hardlink_fifo_and_oversize_are_rejected_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (s, c) = store(
            &t.path().join("c"),
            DirStoreOptions {
                max_entry_bytes: 100,
                ..Default::default()
            },
        );
        let bytes = b"planted bytes";
        let sha = fill(&c, bytes);
        let target = outside.path().join("t");
        std::fs::write(&target, bytes).unwrap();
        // Symlink at the entry path.
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        std::os::unix::fs::symlink(&target, s.entry_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(
            std::fs::symlink_metadata(s.entry_path(&sha)).is_err(),
            "symlink removed"
        );
        assert!(target.exists(), "its target untouched");
        // Hard link to a file elsewhere.
        let sha = fill(&c, bytes);
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        std::fs::hard_link(&target, s.entry_path(&sha)).unwrap();
        std::fs::set_permissions(s.entry_path(&sha), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
        assert_eq!(std::fs::read(&target).unwrap(), bytes);
        // FIFO.
        let sha = fill(&c, bytes);
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            s.entry_path(&sha),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(std::fs::symlink_metadata(s.entry_path(&sha)).is_err());
        // Symlinked record.
        let sha = fill(&c, bytes);
        let rec = std::fs::read(s.record_path(&sha)).unwrap();
        std::fs::write(outside.path().join("rec"), rec).unwrap();
        std::fs::remove_file(s.record_path(&sha)).unwrap();
        std::os::unix::fs::symlink(outside.path().join("rec"), s.record_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        // Oversize: over the entry limit even if the record agrees.
        let big = vec![7u8; 101];
        let sha = sha256_hex(&big);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(&big).unwrap();
        assert_eq!(read(w.commit("t").unwrap()), big, "served, just not cached");
        assert!(!s.entry_path(&sha).exists());
        assert!(c.lookup(&sha).unwrap().is_none());
        let small = fill(&c, b"x");
        let mut rec = Record::decode(&std::fs::read(s.record_path(&small)).unwrap()).unwrap();
        rec.size = 101;
        std::fs::write(s.record_path(&small), rec.encode()).unwrap();
        std::fs::write(s.entry_path(&small), &big).unwrap();
        assert!(c.lookup(&small).unwrap().is_none());
        assert!(!s.entry_path(&small).exists());
    }

    #[test]
    fn symlink_planted_at_a_level_directory_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (s, c) = store(&t.path().join("c"), DirStoreOptions::default());
        let sha = sha256_hex(b"z");
        std::os::unix::fs::symlink(outside.path(), s.root().join(&sha[..2])).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        // Filling falls back to an uncached handle instead of writing through the link.
        let mut slot = c.reference(&sha).unwrap().miss().unwrap();
        let mut w = slot.writer().unwrap();
        assert!(!w.is_cached());
        w.write_all(b"z").unwrap();
        assert_eq!(read(w.commit("t").unwrap()), b"z");
        drop(slot);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Housekeeping removes the planted link; the level works again.
        s.maintain().unwrap();
        assert!(std::fs::symlink_metadata(s.root().join(&sha[..2])).is_err());
        let mut slot = c.reference(&sha).unwrap().miss().unwrap();
        let mut w = slot.writer().unwrap();
        assert!(w.is_cached());
        w.write_all(b"z").unwrap();
        w.commit("t").unwrap();
        assert!(c.lookup(&sha).unwrap().is_some());
    }

    #[test]
    fn bytes_without_record_are_planted() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        let sha = fill(&c, b"abc");
        std::fs::remove_file(s.record_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
    }

    #[test]
    fn expired_entries_are_misses_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStore::open(t.path(), DirStoreOptions::default()).unwrap();
        let c = StoreCache::new(
            Arc::new(s.clone()),
            Some(Duration::from_secs(3600)),
            "persistent",
            true,
        );
        let sha = fill(&c, b"ttl");
        assert!(c.lookup(&sha).unwrap().is_some());
        let mut rec = Record::decode(&std::fs::read(s.record_path(&sha)).unwrap()).unwrap();
        assert!(rec.expires >= rec.created + 3600);
        rec.expires = crate::cache::now_secs() - 1;
        std::fs::write(s.record_path(&sha), rec.encode()).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
    }

    fn temps(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                temps(&p, out);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(TEMP_PREFIX)
            {
                out.push(p);
            }
        }
    }

    #[test]
    fn temp_left_by_killed_writer_is_cleaned_but_live_writer_kept() {
        let t = tempfile::tempdir().unwrap();
        let opts = DirStoreOptions {
            stale_after: Duration::from_secs(60),
            ..Default::default()
        };
        let (s, c) = store(t.path(), opts.clone());
        let sha = fill(&c, b"abc");
        let leaf = s.entry_path(&sha).parent().unwrap().to_path_buf();
        // A killed writer: a truncated temp file, nobody holds its lock, idle for 10 minutes.
        let dead = leaf.join(".tmp-deadbeefdeadbeef");
        std::fs::write(&dead, b"trunc").unwrap();
        let old = SystemTime::now() - Duration::from_secs(600);
        File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A live writer whose temp file is just as old, but whose lock is held.
        let mut w = c.writer(&sha256_hex(b"live")).unwrap();
        w.write_all(b"li").unwrap();
        w.flush().unwrap();
        let mut all = Vec::new();
        temps(t.path(), &mut all);
        let live: Vec<_> = all.into_iter().filter(|p| *p != dead).collect();
        assert_eq!(live.len(), 1, "{live:?}");
        File::options()
            .write(true)
            .open(&live[0])
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A fresh unlocked temp (a writer between create and lock) is kept too.
        let fresh = leaf.join(".tmp-0000000000000000");
        std::fs::write(&fresh, b"").unwrap();
        assert_eq!(s.maintain().unwrap(), 1);
        assert!(!dead.exists(), "dead writer's temp removed");
        assert!(live[0].exists(), "live writer's temp kept");
        assert!(fresh.exists(), "recent temp kept");
        w.write_all(b"ve").unwrap();
        w.commit("t").unwrap();
        assert!(c.lookup(&sha256_hex(b"live")).unwrap().is_some());
        // Opening the store again (a new process) cleans as well.
        std::fs::write(&dead, b"x").unwrap();
        File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let _ = DirStore::open(t.path(), opts).unwrap();
        assert!(!dead.exists());
    }

    #[test]
    fn size_budget_evicts_least_recently_used() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(
            t.path(),
            DirStoreOptions {
                max_bytes: Some(2500),
                ..Default::default()
            },
        );
        let a = fill(&c, &[1u8; 1000]);
        let b = fill(&c, &[2u8; 1000]);
        // Make `a` the most recently used.
        let old = SystemTime::now() - Duration::from_secs(100);
        for sha in [&a, &b] {
            File::options()
                .write(true)
                .open(s.record_path(sha))
                .unwrap()
                .set_times(std::fs::FileTimes::new().set_accessed(old))
                .unwrap();
        }
        // Housekeeping reads records without moving their access times.
        s.maintain().unwrap();
        let atime = std::fs::metadata(s.record_path(&b))
            .unwrap()
            .accessed()
            .unwrap();
        assert!(atime < SystemTime::now() - Duration::from_secs(50));
        assert!(c.lookup(&a).unwrap().is_some());
        let cc = fill(&c, &[3u8; 1000]);
        assert!(s.entry_path(&a).exists() && s.entry_path(&cc).exists());
        assert!(!s.entry_path(&b).exists(), "least recently used evicted");
        assert!(s.usage().unwrap().bytes <= 2500);
    }

    #[test]
    fn clear_and_info() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        fill(&c, b"1");
        fill(&c, b"22");
        let info = c.info().unwrap();
        assert_eq!((info.entries, info.bytes), (2, 3));
        assert_eq!(info.location.as_deref(), Some(s.root()));
        c.clear().unwrap();
        assert_eq!(c.info().unwrap().entries, 0);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn verify_all_counts_and_removes() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        fill(&c, b"good");
        let bad = fill(&c, b"bad!");
        std::fs::write(s.entry_path(&bad), b"BAD!").unwrap();
        let v = c.verify_all().unwrap();
        assert_eq!((v.checked, v.valid, v.removed), (2, 1, 1));
        assert!(!s.entry_path(&bad).exists());
    }

    #[test]
    fn concurrent_writers_of_one_entry_never_expose_partial_bytes() {
        let t = tempfile::tempdir().unwrap();
        let (_s, c) = store(t.path(), DirStoreOptions::default());
        let c = Arc::new(c);
        let bytes: Arc<Vec<u8>> = Arc::new((0..300_000u32).map(|i| (i * 7) as u8).collect());
        let sha = sha256_hex(&bytes);
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (c, bytes, sha) = (c.clone(), bytes.clone(), sha.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..5 {
                    let mut w = c.writer(&sha).unwrap();
                    for chunk in bytes.chunks(10_000) {
                        w.write_all(chunk).unwrap();
                    }
                    w.commit("t").unwrap();
                    if let Some(f) = c.lookup(&sha).unwrap() {
                        assert_eq!(read(f), *bytes);
                    }
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read(c.lookup(&sha).unwrap().unwrap()), *bytes);
    }
}
