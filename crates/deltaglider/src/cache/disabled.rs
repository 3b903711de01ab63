//! No caching: every reference is fetched again, into an anonymous temporary file that has
//! no name on disk and disappears with its handle.

use std::fs::File;

use super::{CacheInfo, CacheWriter, ReferenceCache, VerifyingFile, check_sha};
use crate::error::{Error, Result};

/// A cache that never hits.
#[derive(Debug, Default)]
pub struct NoCache;

struct AnonymousEntry(VerifyingFile);

impl std::io::Write for AnonymousEntry {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl CacheWriter for AnonymousEntry {
    fn commit(self: Box<Self>, what: &str) -> Result<File> {
        self.0.finish(what)
    }
}

impl ReferenceCache for NoCache {
    fn describe(&self) -> String {
        "disabled (references are fetched for every operation)".into()
    }

    fn lookup(&self, sha256: &str) -> Result<Option<File>> {
        check_sha(sha256)?;
        Ok(None)
    }

    fn writer(&self, sha256: &str) -> Result<Box<dyn CacheWriter>> {
        check_sha(sha256)?;
        let file =
            tempfile::tempfile().map_err(|e| Error::io("cannot create a temporary file", e))?;
        Ok(Box::new(AnonymousEntry(VerifyingFile::new(sha256, file))))
    }

    fn clear(&self) -> Result<()> {
        Ok(())
    }

    fn info(&self) -> Result<CacheInfo> {
        Ok(CacheInfo {
            backend: "disabled".into(),
            description: self.describe(),
            ..CacheInfo::default()
        })
    }
}
