//! Publishing an entry: the only way bytes get into the directory.
//!
//! A writer fills a temporary file in the entry's leaf (`O_EXCL`, 0600, `flock`ed while the
//! writer lives, so housekeeping can tell a live writer from a dead one). On publish the
//! record must describe exactly what was written; the bytes (and then the record, in its
//! own temporary file) are `fsync`ed if the store is durable, and the record is renamed into
//! place before the bytes. A reader therefore never sees half-written bytes, and bytes
//! without a record are never ours (the validated open removes them). Each rename is noted
//! first as our own change for the integrity monitor. A publication that takes the store
//! over its size budget runs housekeeping at once, sparing the entry just published.
//!
//! The layer above has already verified the bytes by hash, so if they cannot be published
//! (too large for the cache, a rename fails) the written file is still handed back, unnamed,
//! for this one use. Dropping a writer without publishing removes its temporary file.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, RECORD_SUFFIX};
use crate::cache::record::Record;
use crate::cache::secure_fs::SecureDir;
use crate::cache::store::PendingEntry;
use crate::error::{Error, IoContext, Result};

/// Starts writing the entry `sha256`: creates its leaf if needed and a temporary file in it.
pub(super) fn create(store: &Arc<Inner>, sha256: &str) -> Result<Box<dyn PendingEntry>> {
    let leaf = store
        .leaf(sha256, true)
        .ctx(|| {
            format!(
                "cannot create a cache directory in {}",
                store.root.path().display()
            )
        })?
        .ok_or_else(|| Error::io("cache directory vanished", io::ErrorKind::NotFound.into()))?;
    let (file, temp) = leaf
        .create_temp()
        .ctx(|| format!("cannot create a cache entry in {}", leaf.path().display()))?;
    Ok(Box::new(DirPending {
        store: store.clone(),
        sha: sha256.to_string(),
        out: Some(io::BufWriter::with_capacity(256 * 1024, file)),
        leaf,
        temp,
        written: 0,
    }))
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
                self.store.revalidate(&self.sha);
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
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::super::DirStoreOptions;
    use super::super::test_support::{fill, read, store};
    use crate::cache::record::Record;
    use crate::hashing::sha256_hex;

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
