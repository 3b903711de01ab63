//! The reference-cache seam. A lookup hands back an open handle whose bytes were hashed and
//! matched the requested SHA-256 through that very handle (or were decrypted into a sealed
//! anonymous memory file while being hashed), never a path to open again.
//! Entries are addressed by the SHA-256 of their content, so two endpoints, buckets or
//! prefixes can never be served each other's reference.
//!
//! # Layers
//!
//! Every cache the library builds is a [`ReferenceCache`]. The ones that keep entries are one
//! adapter, [`store::StoreCache`], over a stack of [`store::EntryStore`]s, each wrapping the
//! next and never forking it:
//!
//! | cache | stack (top to bottom) |
//! | --- | --- |
//! | [`ephemeral::EphemeralCache`] (default) | `StoreCache` → (`Encrypted` →) `DirStore` in a private temp dir |
//! | [`persistent::PersistentCache`] (`DG_CACHE_DIR`) | `StoreCache` → (`Encrypted` →) `Signed` → `DirStore`, watched by [`monitor::IntegrityMonitor`] |
//! | [`memory::MemoryCache`] (`DG_CACHE_BACKEND=memory`) | `StoreCache` → `Encrypted` → `MemoryStore` |
//! | [`disabled::NoCache`] (`DG_NO_CACHE`) | none |
//!
//! [`dir_store::DirStore`] keeps each entry as `ab/cd/<sha256>` (the bytes, plaintext or
//! ciphertext) plus `ab/cd/<sha256>.rec` (a fixed-size [`record::Record`]: sha256, size,
//! created, expires, writer uid, flags, signing key id and MAC). [`signed::Signed`]
//! authenticates that record with HMAC-SHA-256; [`encrypted::Encrypted`] turns the bytes into
//! segmented XChaCha20-Poly1305 ([`segments`]) bound to the content hash.

pub mod dir_store;
pub mod disabled;
pub mod encrypted;
pub mod ephemeral;
pub mod keys;
pub mod memory;
pub mod migrate;
pub mod monitor;
pub mod persistent;
pub mod record;
pub mod secure_fs;
pub mod segments;
pub mod signed;
pub mod store;

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hashing::HashingWriter;

pub use keys::KeySource;

/// A store of verified reference files, keyed by content hash.
pub trait ReferenceCache: Send + Sync + std::fmt::Debug {
    /// Where and what the cache is, for `cache info` and logs.
    fn describe(&self) -> String;

    /// A handle on the reference whose SHA-256 is `sha256`, verified through this handle and
    /// rewound to its start; `None` on a miss. A corrupt entry is removed and reported as a
    /// miss.
    fn lookup(&self, sha256: &str) -> Result<Option<File>>;

    /// Starts an entry that must hash to `sha256`.
    fn writer(&self, sha256: &str) -> Result<Box<dyn CacheWriter>>;

    /// Removes every entry.
    fn clear(&self) -> Result<()>;

    /// What `cache info` prints: location, backend, entries, bytes, keys.
    fn info(&self) -> Result<CacheInfo> {
        Ok(CacheInfo {
            backend: "custom".into(),
            description: self.describe(),
            ..CacheInfo::default()
        })
    }

    /// Re-verifies every entry (record, signature, expiry, decryption, SHA-256), removing the
    /// bad ones.
    fn verify_all(&self) -> Result<VerifySummary> {
        Ok(VerifySummary::default())
    }

    /// Waits until no other process (or thread) is filling `sha256` and holds that right
    /// until the returned lock is dropped, so two processes sharing a persistent cache do not
    /// both download the same reference: after a miss, take the lock, look up again, and
    /// only then download and commit. Blocks (polling) for up to ten minutes, then gives up
    /// waiting and returns an unheld lock; call it from a blocking context. Caches that are
    /// not shared return an unheld lock at once.
    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        check_sha(sha256)?;
        Ok(FillLock::default())
    }
}

/// The right to fill one entry, released on drop (see [`ReferenceCache::lock_for_fill`]).
#[derive(Debug, Default)]
pub struct FillLock(Option<std::os::fd::OwnedFd>);

impl FillLock {
    /// True if a lock is actually held (false for caches that need none).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

/// An entry being filled; bytes are hashed as they are written.
pub trait CacheWriter: Write + Send {
    /// Checks the hash of what was written and publishes the entry. `what` names the source
    /// in the error if the bytes do not match. Returns a rewound handle on the verified bytes.
    fn commit(self: Box<Self>, what: &str) -> Result<File>;
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

/// Checks that a string is a hex SHA-256 before it becomes part of a path.
pub(crate) fn check_sha(sha256: &str) -> Result<()> {
    normalize_sha(sha256).map(drop)
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
