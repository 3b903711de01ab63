//! What an upload stores: a private snapshot of the source, hashed while it was copied.
//!
//! Every upload first copies its source once into a private temporary file and hashes the
//! bytes on the way. Everything after that (the reference, the delta, a direct object, the
//! recorded SHA-256) is made from that snapshot, so the bytes hashed are the bytes stored even
//! if the source changes underneath. A local file that changed while it was being copied
//! (its size, modification or change time moved) is refused before anything is written.
//!
//! The snapshot has no name on disk where the system allows it (`O_TMPFILE`), so a process
//! killed mid-upload leaves nothing behind; the stores read it through `/proc/self/fd`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;

/// A private temporary file that the stores can read by path.
#[derive(Debug)]
pub(crate) struct PrivateFile {
    file: File,
    /// Keeps a named fallback file alive (and removes it on drop); `None` when unnamed.
    named: Option<tempfile::TempPath>,
}

impl PrivateFile {
    /// A new empty private file in the temporary directory, unnamed where possible.
    pub(crate) fn new() -> Result<Self> {
        if Path::new("/proc/self/fd").is_dir()
            && let Ok(file) = tempfile::tempfile()
        {
            return Ok(PrivateFile { file, named: None });
        }
        let (file, path) = tempfile::Builder::new()
            .prefix("deltaglider-")
            .tempfile()
            .ctx(|| "cannot create a temporary file".into())?
            .into_parts();
        Ok(PrivateFile {
            file,
            named: Some(path),
        })
    }

    /// A path that opens this file (for unnamed files, its `/proc/self/fd` entry, valid while
    /// `self` lives).
    pub(crate) fn path(&self) -> PathBuf {
        match &self.named {
            Some(p) => p.to_path_buf(),
            None => Self::path_of(&self.file),
        }
    }

    /// A path that opens `file` anew while it stays open: its `/proc/self/fd` entry.
    pub(crate) fn path_of(file: &File) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// The upload's snapshot: what is stored, its hash and size, and the file name it goes by.
#[derive(Debug)]
pub(crate) struct Source {
    /// The last segment of the key, recorded as the original name.
    pub name: String,
    /// Lowercase hex SHA-256 of the snapshot.
    pub sha256: String,
    /// Size of the snapshot in bytes.
    pub size: u64,
    /// The snapshot itself.
    pub snapshot: PrivateFile,
}

/// The parts of a file's status that change whenever its content does (`ctime` cannot be
/// set back by a user, unlike `mtime`).
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn identity(m: &std::fs::Metadata) -> Identity {
    Identity {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    }
}

const CHUNK: usize = 1 << 20;

impl Source {
    /// Snapshots the local file `path` (blocking). Refuses anything but a regular file, and
    /// a file that changed while it was copied.
    pub(crate) fn from_file(
        path: &Path,
        name: &str,
        progress: &super::progress::KeyProgress,
    ) -> Result<Source> {
        let display = path.display().to_string();
        let mut file = File::open(path).ctx(|| format!("cannot read {display}"))?;
        let before = file.metadata().ctx(|| format!("cannot read {display}"))?;
        if !before.is_file() {
            return Err(Error::io(
                format!("{display} is not a regular file"),
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        }
        let snapshot = PrivateFile::new()?;
        progress.start(super::progress::Phase::Hashing, before.len());
        let mut out = HashingWriter::new(io::BufWriter::with_capacity(CHUNK, snapshot.file()));
        let mut buf = vec![0u8; CHUNK];
        let mut first = true;
        loop {
            let n = file
                .read(&mut buf)
                .ctx(|| format!("cannot read {display}"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .ctx(|| "cannot write the upload's snapshot".into())?;
            progress.advance(n as u64);
            if first {
                first = false;
                // Test builds: `return` makes the source change here, mid-read, as a writer
                // racing the upload would (other actions and callbacks as for any failpoint).
                #[cfg(feature = "failpoints")]
                fail::eval("put::snapshot_first_chunk", |_| {
                    let _ = std::fs::OpenOptions::new()
                        .append(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(b"changed during the upload"));
                });
            }
        }
        let (sha256, size, writer) = out.into_parts();
        writer
            .into_inner()
            .map_err(|e| Error::io("cannot write the upload's snapshot", e.into_error()))?;
        let after = file.metadata().ctx(|| format!("cannot read {display}"))?;
        if identity(&before) != identity(&after) {
            return Err(Error::SourceChanged { path: display });
        }
        Ok(Source {
            name: name.to_string(),
            sha256,
            size,
            snapshot,
        })
    }

    /// Snapshots everything `reader` yields (standard input, an SDK body). With
    /// `expected_size`, a stream of any other length is refused.
    pub(crate) async fn from_reader<R: AsyncRead + Unpin + Send>(
        mut reader: R,
        display: &str,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Source> {
        let snapshot = PrivateFile::new()?;
        // Writes go through tokio's file (its blocking pool), so a slow disk never stalls
        // the async threads; the clone shares the snapshot's open file.
        let clone = snapshot
            .file()
            .try_clone()
            .ctx(|| "cannot open the upload's snapshot".into())?;
        let mut out = tokio::io::BufWriter::with_capacity(CHUNK, tokio::fs::File::from_std(clone));
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .ctx(|| format!("cannot read {display}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n])
                .await
                .ctx(|| "cannot write the upload's snapshot".into())?;
        }
        // `flush` also waits for the write tokio still has in flight on the file.
        out.flush()
            .await
            .ctx(|| "cannot write the upload's snapshot".into())?;
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(Error::io(
                format!("{display} gave {size} bytes, not the {expected} expected"),
                io::Error::from(io::ErrorKind::UnexpectedEof),
            ));
        }
        Ok(Source {
            name: name.to_string(),
            sha256,
            size,
            snapshot,
        })
    }

    /// A source from bytes already verified into an unnamed temporary file (a copy's
    /// rebuilt object).
    pub(crate) fn from_verified(file: File, name: &str, sha256: String, size: u64) -> Source {
        Source {
            name: name.to_string(),
            sha256,
            size,
            snapshot: PrivateFile { file, named: None },
        }
    }

    /// A fresh handle on the snapshot, from its first byte.
    pub(crate) fn reopen(&self) -> Result<File> {
        File::open(self.snapshot.path()).ctx(|| "cannot reopen the upload's snapshot".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_hashes_and_reopens_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zip");
        std::fs::write(&path, b"hello world").unwrap();
        let s = Source::from_file(&path, "a.zip", &Default::default()).unwrap();
        assert_eq!(s.size, 11);
        assert_eq!(s.sha256, crate::hashing::sha256_hex(b"hello world"));
        // the source may change now: the snapshot does not
        std::fs::write(&path, b"changed!!!!").unwrap();
        let mut back = Vec::new();
        s.reopen().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello world");
        assert_eq!(std::fs::read(s.snapshot.path()).unwrap(), b"hello world");
    }

    #[test]
    fn a_directory_is_not_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = Source::from_file(dir.path(), "x", &Default::default()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[tokio::test]
    async fn a_stream_of_the_wrong_length_is_refused() {
        let s = Source::from_reader(&b"abc"[..], "stdin", "x", Some(3))
            .await
            .unwrap();
        assert_eq!(s.size, 3);
        let err = Source::from_reader(&b"abc"[..], "stdin", "x", Some(4))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not the 4 expected"), "{err}");
    }
}
