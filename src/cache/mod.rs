//! The reference-cache seam. A lookup hands back an open handle whose bytes were hashed and
//! matched the requested SHA-256 through that very handle, never a path to open again.
//! Entries are addressed by the SHA-256 of their content, so two endpoints, buckets or
//! prefixes can never be served each other's reference.

pub mod disabled;
pub mod ephemeral;

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use crate::error::{Error, Result};
use crate::hashing::HashingWriter;

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
}

/// An entry being filled; bytes are hashed as they are written.
pub trait CacheWriter: Write + Send {
    /// Checks the hash of what was written and publishes the entry. `what` names the source
    /// in the error if the bytes do not match. Returns a rewound handle on the verified bytes.
    fn commit(self: Box<Self>, what: &str) -> Result<File>;
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

/// Checks that a string is a lowercase hex SHA-256 before it becomes part of a path.
pub(crate) fn check_sha(sha256: &str) -> Result<()> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "'{sha256}' is not a SHA-256 hex digest"
        )))
    }
}
