//! The reference-cache seam. A lookup hands back an open handle whose bytes were hashed and
//! matched the requested SHA-256 through that very handle (or were decrypted into a sealed
//! anonymous memory file while being hashed), never a path to open again.
//! Entries are addressed by the SHA-256 of their content, so two endpoints, buckets or
//! prefixes can never be served each other's reference.
//!
//! # Layers
//!
//! The engine sees a [`ReferenceCache`] and makes one call per reference,
//! [`ReferenceCache::reference`]: a [`Lookup::Hit`] (verified bytes) or a [`Lookup::Miss`]
//! with a [`FillSlot`] that holds the cross-process fill lock and publishes only bytes that
//! hash right. Every cache that keeps entries is one type, [`store::StoreCache`], over a stack
//! of [`store::EntryStore`]s, each wrapping the next and never forking it:
//!
//! | constructor | stack (top to bottom) |
//! | --- | --- |
//! | `StoreCache::private` (default) | `StoreCache` → (`Encrypted` →) `DirStore` in a private temp dir |
//! | `StoreCache::persistent` (`DG_CACHE_DIR`) | `StoreCache` → (`Encrypted` →) `Signed` → `DirStore`, watched by `monitor::IntegrityMonitor` |
//! | `StoreCache::memory` (`DG_CACHE_BACKEND=memory`) | `StoreCache` → `Encrypted` → `MemoryStore` |
//! | [`disabled::NoCache`] (`DG_NO_CACHE`) | none |
//!
//! [`dir_store::DirStore`] keeps each entry as `ab/cd/<sha256>` (the bytes, plaintext or
//! ciphertext) plus `ab/cd/<sha256>.rec` (a fixed-size [`record::Record`]: sha256, size,
//! created, expires, writer uid, flags, signing key id and MAC). [`signed::Signed`]
//! authenticates that record with HMAC-SHA-256; [`encrypted::Encrypted`] turns the bytes into
//! segmented XChaCha20-Poly1305 (`segments`) bound to the content hash. The wrappers are
//! compiled with `#[deny(clippy::missing_trait_methods)]` and the traits have no default
//! methods, so a layer cannot silently drop what the layer below does (its fill lock, say).
//! docs/cache.md says which threat each layer stops.

pub(crate) mod dir_store;
pub(crate) mod disabled;
pub(crate) mod encrypted;
pub(crate) mod ephemeral;
pub(crate) mod keys;
pub(crate) mod memory;
pub mod migrate;
pub(crate) mod monitor;
pub(crate) mod persistent;
pub(crate) mod record;
pub(crate) mod secure_fs;
pub(crate) mod segments;
pub(crate) mod signed;
pub(crate) mod store;

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hashing::HashingWriter;

pub use disabled::NoCache;
pub use keys::{CacheKey, KeySource};
pub use persistent::PersistentOptions;
pub use store::StoreCache;

/// A store of verified reference files, keyed by content hash: the seam the engine sees.
///
/// The engine makes one call, [`ReferenceCache::reference`], and gets either verified bytes
/// or a [`FillSlot`] to fill from storage. No method has a default: a cache (or a wrapper
/// around one) states every behaviour, so none silently loses a guarantee.
pub trait ReferenceCache: Send + Sync + std::fmt::Debug {
    /// Where and what the cache is, for `cache info` and logs.
    fn describe(&self) -> String;

    /// The reference whose SHA-256 is `sha256`: [`Lookup::Hit`] with a handle whose bytes
    /// were verified through that same handle, rewound to its start, or [`Lookup::Miss`]
    /// with the slot to fill. A cache shared between processes waits, inside this call, for
    /// another process filling the same entry and looks again before reporting a miss; the
    /// slot then holds the fill lock until it is dropped. Blocks (hashing, waiting for that
    /// lock): call it from a blocking context.
    ///
    /// A cache problem (a corrupt or planted entry, an unreadable directory, a lock that
    /// cannot be taken) is logged and reported as a miss, never as an error; an error means
    /// `sha256` is not a SHA-256.
    fn reference(&self, sha256: &str) -> Result<Lookup>;

    /// Removes every entry.
    fn clear(&self) -> Result<()>;

    /// What `cache info` prints: location, backend, entries, bytes, keys.
    fn info(&self) -> Result<CacheInfo>;

    /// Re-verifies every entry (record, signature, expiry, decryption, SHA-256), removing the
    /// bad ones.
    fn verify_all(&self) -> Result<VerifySummary>;
}

/// The answer to [`ReferenceCache::reference`].
#[derive(Debug)]
pub enum Lookup {
    /// A handle on verified bytes, rewound to the start.
    Hit(File),
    /// Not cached: fill the slot (it hashes what is written and publishes only a match).
    Miss(FillSlot),
}

impl Lookup {
    /// The handle of a hit.
    pub fn hit(self) -> Option<File> {
        match self {
            Lookup::Hit(f) => Some(f),
            Lookup::Miss(_) => None,
        }
    }

    /// The slot of a miss.
    pub fn miss(self) -> Option<FillSlot> {
        match self {
            Lookup::Hit(_) => None,
            Lookup::Miss(slot) => Some(slot),
        }
    }
}

/// The right to fill one entry of a cache shared between processes, released on drop.
#[derive(Debug)]
pub struct FillLock(Option<std::os::fd::OwnedFd>);

impl FillLock {
    /// No lock: the cache is not shared between processes, or the lock could not be taken
    /// (which the cache logs). Said explicitly, never a default.
    pub fn none() -> FillLock {
        FillLock(None)
    }

    pub(crate) fn held(fd: std::os::fd::OwnedFd) -> FillLock {
        FillLock(Some(fd))
    }

    /// True if a lock is actually held.
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

/// Starts a writer into the cache for one slot; called again for each new attempt.
pub type StartWriter = Box<dyn FnMut() -> Result<Box<dyn CacheWriter>> + Send>;

/// A missing entry, to be filled: hands out writers that hash what they are given, and
/// publishes only bytes that match. Holds the cross-process fill lock (if the cache has one)
/// until dropped; dropping it without a commit leaves nothing behind.
///
/// When the cache fails (cannot create the entry, a write or the publication fails), the
/// slot logs it and from then on hands out uncached writers (an anonymous temporary file,
/// or an anonymous memory file if the cache promised to keep plaintext off the disk): the
/// cache can make a download faster, never make it fail.
pub struct FillSlot {
    sha: String,
    /// `None` once the cache failed (or for an uncached slot).
    start: Option<StartWriter>,
    /// Uncached writers use anonymous memory, never a file.
    in_memory: bool,
    // Last: released after everything else is dropped.
    lock: FillLock,
}

impl std::fmt::Debug for FillSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillSlot")
            .field("sha", &self.sha)
            .field("cached", &self.is_cached())
            .field("in_memory", &self.in_memory)
            .field("lock", &self.lock)
            .finish()
    }
}

impl FillSlot {
    /// A slot for `sha256` whose writers come from `start`, holding `lock`. `in_memory`:
    /// if the cache fails, fall back to anonymous memory rather than a temporary file.
    pub fn new(
        sha256: &str,
        lock: FillLock,
        in_memory: bool,
        start: impl FnMut() -> Result<Box<dyn CacheWriter>> + Send + 'static,
    ) -> Result<FillSlot> {
        Ok(FillSlot {
            sha: normalize_sha(sha256)?,
            start: Some(Box::new(start)),
            in_memory,
            lock,
        })
    }

    /// A slot that caches nothing: writers go to anonymous files (memory if `in_memory`).
    pub fn uncached(sha256: &str, in_memory: bool) -> Result<FillSlot> {
        Ok(FillSlot {
            sha: normalize_sha(sha256)?,
            start: None,
            in_memory,
            lock: FillLock::none(),
        })
    }

    /// The lowercase SHA-256 the bytes must match.
    pub fn sha256(&self) -> &str {
        &self.sha
    }

    /// True while writers still go into the cache.
    pub fn is_cached(&self) -> bool {
        self.start.is_some()
    }

    /// True if this slot holds the cross-process fill lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_held()
    }

    /// Starts writing the reference from its first byte (each call starts over).
    pub fn writer(&mut self) -> Result<SlotWriter<'_>> {
        if let Some(start) = &mut self.start {
            match start() {
                Ok(inner) => {
                    return Ok(SlotWriter {
                        inner,
                        cached: true,
                        slot: self,
                    });
                }
                Err(e) => self.fail(&e),
            }
        }
        let file = if self.in_memory {
            secure_fs::memfd("dg-reference")
        } else {
            tempfile::tempfile()
        }
        .map_err(|e| Error::io("cannot create a temporary file", e))?;
        Ok(SlotWriter {
            inner: Box::new(Uncached(VerifyingFile::new(&self.sha, file))),
            cached: false,
            slot: self,
        })
    }

    /// The cache failed: log it, and stop using it for this slot.
    fn fail(&mut self, why: &(dyn std::error::Error + 'static)) {
        if self.start.take().is_some() {
            tracing::warn!(
                sha256 = %self.sha,
                "reference cache failed ({}); using the reference uncached",
                crate::error::chain(why)
            );
        }
    }
}

/// Bytes going into a [`FillSlot`], hashed as written.
pub struct SlotWriter<'a> {
    inner: Box<dyn CacheWriter>,
    cached: bool,
    slot: &'a mut FillSlot,
}

impl SlotWriter<'_> {
    /// True if the bytes go into the cache (false: an uncached anonymous file).
    pub fn is_cached(&self) -> bool {
        self.cached
    }

    /// Checks the hash of what was written and, for a cached writer, publishes the entry.
    /// `what` names the source in the error if the bytes do not match. Returns a rewound
    /// handle on the verified bytes. A failure of the cache (not a mismatch) leaves the slot
    /// uncached, so that the caller can start again.
    pub fn commit(self, what: &str) -> Result<File> {
        let SlotWriter {
            inner,
            cached,
            slot,
        } = self;
        match inner.commit(what) {
            Err(e) if cached && !matches!(e, Error::IntegrityMismatch { .. }) => {
                slot.fail(&e);
                Err(e)
            }
            other => other,
        }
    }
}

impl Write for SlotWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        if let (Err(e), true) = (&r, self.cached) {
            self.slot.fail(e);
        }
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        if let (Err(e), true) = (&r, self.cached) {
            self.slot.fail(e);
        }
        r
    }
}

/// An entry being filled; bytes are hashed as they are written.
pub trait CacheWriter: Write + Send {
    /// Checks the hash of what was written and publishes the entry. `what` names the source
    /// in the error if the bytes do not match. Returns a rewound handle on the verified bytes.
    fn commit(self: Box<Self>, what: &str) -> Result<File>;
}

/// A writer that caches nothing: an anonymous file, verified the same way.
struct Uncached(VerifyingFile);

impl Write for Uncached {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl CacheWriter for Uncached {
    fn commit(self: Box<Self>, what: &str) -> Result<File> {
        self.0.finish(what)
    }
}

/// What a cache is and holds, for `deltaglider cache info`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheInfo {
    /// `disabled`, `ephemeral`, `persistent` or `memory`.
    pub backend: String,
    /// One line for humans (the same as [`ReferenceCache::describe`]).
    pub description: String,
    /// The directory, for the file-system backends.
    pub location: Option<PathBuf>,
    /// Whether entries outlive the process.
    pub persistent: bool,
    /// Number of entries.
    pub entries: u64,
    /// Bytes they take (on disk, or in memory for the memory backend).
    pub bytes: u64,
    /// Size budget, if any.
    pub max_bytes: Option<u64>,
    /// Entry lifetime in seconds, if entries expire.
    pub ttl_seconds: Option<u64>,
    /// Where the HMAC key signing entry records comes from (persistent cache).
    pub signing_key: Option<KeySource>,
    /// Where the encryption key comes from, if entries are encrypted.
    pub encryption_key: Option<KeySource>,
    /// Whether the inotify integrity monitor is running.
    pub monitored: bool,
    /// Ownership and mode checks are off (`DG_UNSAFE_SHARED_CACHE`).
    pub unsafe_shared: bool,
}

/// Outcome of [`ReferenceCache::verify_all`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    /// Entries examined.
    pub checked: u64,
    /// Entries that passed every check.
    pub valid: u64,
    /// Entries removed (corrupt, tampered, expired, under another key, planted).
    pub removed: u64,
}

/// Writes into an open file while hashing; shared by the file-backed caches.
pub(crate) struct VerifyingFile {
    expected: String,
    inner: HashingWriter<io::BufWriter<File>>,
}

impl VerifyingFile {
    pub(crate) fn new(expected: &str, file: File) -> Self {
        VerifyingFile {
            expected: expected.to_ascii_lowercase(),
            inner: HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file)),
        }
    }

    /// Flushes, checks the hash and returns the rewound file.
    pub(crate) fn finish(self, what: &str) -> Result<File> {
        let (actual, _, buffered) = self.inner.into_parts();
        let mut file = buffered
            .into_inner()
            .map_err(|e| Error::io("cannot write the cache entry", e.into_error()))?;
        if actual != self.expected {
            return Err(Error::IntegrityMismatch {
                what: what.to_string(),
                expected: self.expected,
                actual,
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot rewind the cache entry", e))?;
        Ok(file)
    }
}

impl Write for VerifyingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes an open file from its start and rewinds it; true if it matches `sha256`.
pub(crate) fn handle_matches(file: &mut File, sha256: &str) -> io::Result<bool> {
    file.seek(SeekFrom::Start(0))?;
    let (actual, _) =
        crate::hashing::sha256_reader(io::BufReader::with_capacity(1 << 20, &mut *file))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(actual == sha256.to_ascii_lowercase())
}

/// The lowercase form of a hex SHA-256 (the only form entry names take), or an error.
pub(crate) fn normalize_sha(sha256: &str) -> Result<String> {
    let lower = sha256.to_ascii_lowercase();
    if is_sha(&lower) {
        Ok(lower)
    } else {
        Err(Error::Config(format!(
            "'{sha256}' is not a SHA-256 hex digest"
        )))
    }
}

/// True for exactly 64 lowercase hex digits (the only names entries have).
pub(crate) fn is_sha(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
