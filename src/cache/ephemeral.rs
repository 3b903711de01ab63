//! The default cache: a directory private to this process (mode 0700, in `$TMPDIR`), content
//! addressed (`ab/cd/<sha256>`), removed when the cache is dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use super::{CacheWriter, ReferenceCache, VerifyingFile, check_sha, handle_matches};
use crate::error::{Error, IoContext, Result};

/// Process-private reference cache.
#[derive(Debug)]
pub struct EphemeralCache {
    dir: tempfile::TempDir,
}

impl EphemeralCache {
    /// Creates a fresh private directory under the system temp dir (`$TMPDIR` honoured).
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("deltaglider-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| Error::io("cannot create the private cache directory", e))?;
        Ok(EphemeralCache { dir })
    }

    /// The private directory (for diagnostics and tests).
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .path()
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }
}

struct EphemeralEntry {
    inner: VerifyingFile,
    temp: tempfile::TempPath,
    final_path: PathBuf,
}

impl Write for EphemeralEntry {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl CacheWriter for EphemeralEntry {
    fn commit(self: Box<Self>, what: &str) -> Result<File> {
        let EphemeralEntry {
            inner,
            temp,
            final_path,
        } = *self;
        // On a mismatch `temp` is dropped here and the partial entry deleted.
        let file = inner.finish(what)?;
        temp.persist(&final_path).map_err(|e| {
            Error::io(
                format!("cannot publish cache entry {}", final_path.display()),
                e.error,
            )
        })?;
        Ok(file)
    }
}

impl ReferenceCache for EphemeralCache {
    fn describe(&self) -> String {
        format!(
            "process-private directory {} (removed on exit)",
            self.dir.path().display()
        )
    }

    fn lookup(&self, sha256: &str) -> Result<Option<File>> {
        check_sha(sha256)?;
        let path = self.entry_path(sha256);
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::warn!(path = %path.display(), "unusable cache entry removed: {e}");
                let _ = fs::remove_file(&path);
                return Ok(None);
            }
        };
        let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !is_file
            || !handle_matches(&mut file, sha256)
                .ctx(|| format!("cannot read cache entry {}", path.display()))?
        {
            tracing::warn!(path = %path.display(), "security: cache entry does not match its hash; removed");
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(file))
    }

    fn writer(&self, sha256: &str) -> Result<Box<dyn CacheWriter>> {
        check_sha(sha256)?;
        let final_path = self.entry_path(sha256);
        let parent = final_path.parent().expect("entry has a parent");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .ctx(|| format!("cannot create {}", parent.display()))?;
        // tempfile creates with O_EXCL and mode 0600.
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(parent)
            .ctx(|| format!("cannot create a cache entry in {}", parent.display()))?;
        let (file, temp) = temp.into_parts();
        Ok(Box::new(EphemeralEntry {
            inner: VerifyingFile::new(sha256, file),
            temp,
            final_path,
        }))
    }

    fn clear(&self) -> Result<()> {
        for entry in fs::read_dir(self.dir.path()).ctx(|| "cannot list the cache".into())? {
            let entry = entry.ctx(|| "cannot list the cache".into())?;
            fs::remove_dir_all(entry.path())
                .ctx(|| format!("cannot remove {}", entry.path().display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::sha256_hex;
    use std::io::Read;

    fn fill(cache: &EphemeralCache, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        let mut w = cache.writer(&sha).unwrap();
        w.write_all(bytes).unwrap();
        w.commit("test").unwrap();
        sha
    }

    #[test]
    fn private_directory_is_0700_and_removed_on_drop() {
        let cache = EphemeralCache::new().unwrap();
        let path = cache.path().to_path_buf();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fill(&cache, b"x");
        drop(cache);
        assert!(!path.exists());
    }

    #[test]
    fn hit_returns_verified_bytes() {
        let cache = EphemeralCache::new().unwrap();
        let sha = fill(&cache, b"reference bytes");
        let mut f = cache.lookup(&sha).unwrap().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "reference bytes");
    }

    #[test]
    fn wrong_bytes_are_rejected_and_not_published() {
        let cache = EphemeralCache::new().unwrap();
        let sha = sha256_hex(b"good");
        let mut w = cache.writer(&sha).unwrap();
        w.write_all(b"evil").unwrap();
        let err = w.commit("s3://b/reference.bin").unwrap_err();
        assert!(err.to_string().contains("s3://b/reference.bin"), "{err}");
        assert!(cache.lookup(&sha).unwrap().is_none());
    }

    #[test]
    fn tampered_entry_is_a_miss_and_removed() {
        let cache = EphemeralCache::new().unwrap();
        let sha = fill(&cache, b"original");
        let path = cache.entry_path(&sha);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(cache.lookup(&sha).unwrap().is_none());
        assert!(!path.exists());
    }

    #[test]
    fn symlinked_entry_is_not_followed() {
        let cache = EphemeralCache::new().unwrap();
        let target = cache.path().join("elsewhere");
        fs::write(&target, b"planted").unwrap();
        let sha = sha256_hex(b"planted");
        let path = cache.entry_path(&sha);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(cache.lookup(&sha).unwrap().is_none());
    }
}
