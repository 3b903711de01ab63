//! Encryption at rest: a wrapper over any [`EntryStore`] that stores entries as segmented
//! XChaCha20-Poly1305 ciphertext ([`super::segments`]) bound to the entry's content hash.
//!
//! Writes go to the inner store as ciphertext while the plaintext goes to an anonymous memory
//! file; lookups decrypt, one segment at a time, into a fresh anonymous memory file while
//! hashing, check the SHA-256, then seal it (no further writes, growth or shrinking) before
//! handing it out. No decrypted byte is ever written to a named file or to disk.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;

use super::keys::CacheKey;
use super::record::{FLAG_ENCRYPTED, Record};
use super::secure_fs;
use super::segments::{self, Sealer};
use super::store::{Entry, EntryData, EntryStore, PendingEntry, Usage};
use super::{CacheInfo, FillLock};
use crate::error::{IoContext, Result};
use crate::hashing::HashingWriter;

/// AEAD-encrypted entries over an inner store.
#[derive(Debug)]
pub struct Encrypted {
    inner: Arc<dyn EntryStore>,
    key: Arc<CacheKey>,
}

impl Encrypted {
    /// Wraps `inner`: entries are sealed under `key` on write and opened, then hashed, on lookup.
    pub fn new(inner: Arc<dyn EntryStore>, key: CacheKey) -> Encrypted {
        Encrypted {
            inner,
            key: Arc::new(key),
        }
    }

    fn reject(&self, sha256: &str, why: impl std::fmt::Display) -> Result<Option<Entry>> {
        tracing::warn!(target: "security", sha256, "encrypted cache entry rejected and removed: {why}");
        self.inner.remove(sha256);
        Ok(None)
    }
}

// A wrapper states every method: a forgotten one would silently drop what the layer below
// does (its fill lock, its housekeeping).
#[deny(clippy::missing_trait_methods)]
impl EntryStore for Encrypted {
    fn describe(&self) -> String {
        format!("{} (encrypted, XChaCha20-Poly1305)", self.inner.describe())
    }

    fn open(&self, sha256: &str) -> Result<Option<Entry>> {
        let Some(mut entry) = self.inner.open(sha256)? else {
            return Ok(None);
        };
        if !entry.record.has(FLAG_ENCRYPTED) {
            return self.reject(sha256, "stored in plaintext");
        }
        let mut plain =
            secure_fs::memfd("dg-reference").ctx(|| "cannot create a memory file".into())?;
        let mut hashing = HashingWriter::new(&mut plain);
        let reader = entry
            .data
            .reader()
            .ctx(|| format!("cannot read cache entry {sha256}"))?;
        if let Err(e) =
            segments::open_to(&self.key.bytes, &entry.record.sha256, reader, &mut hashing)
        {
            return match e {
                segments::SegmentError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => Err(
                    crate::error::Error::io(format!("cannot read cache entry {sha256}"), e),
                ),
                e => self.reject(sha256, e),
            };
        }
        let (hash, len, _) = hashing.into_parts();
        if hash != sha256 {
            return self.reject(sha256, "decrypted bytes do not hash to the entry's name");
        }
        secure_fs::seal(&plain)
            .and_then(|()| plain.seek(SeekFrom::Start(0)).map(drop))
            .ctx(|| "cannot seal a memory file".into())?;
        entry.record.flags &= !FLAG_ENCRYPTED;
        entry.record.size = len;
        Ok(Some(Entry {
            data: EntryData::File(plain),
            record: entry.record,
            hashed: Some(hash),
        }))
    }

    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>> {
        let mut sha = [0u8; 32];
        hex::decode_to_slice(sha256, &mut sha).map_err(|_| {
            crate::error::Error::invalid(format!("content hash '{sha256}'"), "not a SHA-256")
        })?;
        let inner = self.inner.create(sha256)?;
        let plain =
            secure_fs::memfd("dg-reference").ctx(|| "cannot create a memory file".into())?;
        let sealer = Sealer::new(&self.key.bytes, &sha, inner)
            .ctx(|| "cannot start an encrypted cache entry".into())?;
        Ok(Box::new(EncryptedPending { sealer, plain }))
    }

    fn remove(&self, sha256: &str) {
        self.inner.remove(sha256)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.inner.list()
    }

    fn clear(&self) -> Result<()> {
        self.inner.clear()
    }

    fn maintain(&self) -> Result<u64> {
        self.inner.maintain()
    }

    fn usage(&self) -> Result<Usage> {
        self.inner.usage()
    }

    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        self.inner.lock_for_fill(sha256)
    }

    fn fill_info(&self, info: &mut CacheInfo) {
        info.encryption_key = Some(self.key.source.clone());
        self.inner.fill_info(info)
    }
}

struct EncryptedPending {
    sealer: Sealer<Box<dyn PendingEntry>>,
    plain: File,
}

impl Write for EncryptedPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.plain.write_all(buf)?;
        self.sealer.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sealer.flush()
    }
}

impl PendingEntry for EncryptedPending {
    fn publish(self: Box<Self>, mut record: Record) -> Result<Option<File>> {
        let EncryptedPending { sealer, mut plain } = *self;
        let (inner, len) = sealer
            .finish()
            .ctx(|| "cannot finish an encrypted cache entry".into())?;
        record.flags |= FLAG_ENCRYPTED;
        record.size = len;
        drop(inner.publish(record)?);
        secure_fs::seal(&plain)
            .and_then(|()| plain.seek(SeekFrom::Start(0)).map(drop))
            .ctx(|| "cannot seal a memory file".into())?;
        Ok(Some(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::dir_store::{DirStore, DirStoreOptions};
    use crate::cache::signed::Signed;
    use crate::cache::store::StoreCache;
    use crate::hashing::sha256_hex;
    use std::io::Read;

    fn stack(root: &std::path::Path, key: &CacheKey) -> (DirStore, StoreCache) {
        let dir = DirStore::open(root, DirStoreOptions::default()).unwrap();
        let signed = Signed::new(Arc::new(dir.clone()), CacheKey::per_process());
        let enc = Encrypted::new(Arc::new(signed), key.clone());
        (
            dir,
            StoreCache::new(Arc::new(enc), None, "persistent", true),
        )
    }

    fn fill(c: &StoreCache, bytes: &[u8]) -> (String, File) {
        let sha = sha256_hex(bytes);
        let mut w = c.writer(&sha).unwrap();
        for chunk in bytes.chunks(100_000) {
            w.write_all(chunk).unwrap();
        }
        let f = w.commit("t").unwrap();
        (sha, f)
    }

    fn read(mut f: File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    fn is_memfd(f: &File) -> bool {
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(f)
        ))
        .map(|p| p.to_string_lossy().starts_with("/memfd:"))
        .unwrap_or(false)
    }

    #[test]
    fn nothing_readable_on_disk_and_lookups_are_sealed_memfds() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = stack(t.path(), &key);
        let secret: Vec<u8> = b"TOP-SECRET-REFERENCE ".repeat(150_000);
        let (sha, f) = fill(&c, &secret);
        assert!(is_memfd(&f));
        assert_eq!(read(f), secret);
        let on_disk = std::fs::read(dir.entry_path(&sha)).unwrap();
        assert!(!on_disk.windows(21).any(|w| w == b"TOP-SECRET-REFERENCE "));
        assert_eq!(
            on_disk.len() as u64,
            segments::ciphertext_len(secret.len() as u64, 20)
        );
        let mut hit = c.lookup(&sha).unwrap().unwrap();
        assert!(is_memfd(&hit));
        assert!(hit.write_all(b"x").is_err(), "sealed");
        hit.seek(SeekFrom::Start(0)).unwrap();
        assert_eq!(read(hit), secret);
    }

    #[test]
    fn xdelta3_reads_the_sealed_memfd_reference() {
        use crate::codec::DeltaCodec;
        let codec = crate::codec::Xdelta3Codec::default();
        if codec.check_available().is_err() {
            eprintln!("xdelta3 not installed; skipped");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (_, c) = stack(t.path(), &CacheKey::per_process());
        let reference: Vec<u8> = (0..700_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut target = reference.clone();
        target[1000..1100].fill(9);
        let (sha, _) = fill(&c, &reference);
        let hit = c.lookup(&sha).unwrap().unwrap();
        assert!(is_memfd(&hit));
        let mut target_file = tempfile::tempfile().unwrap();
        target_file.write_all(&target).unwrap();
        let mut delta = Vec::new();
        codec.encode(&hit, &target_file, &mut delta).unwrap();
        assert!(delta.len() < 10_000, "delta of {} bytes", delta.len());
        let mut delta_file = tempfile::tempfile().unwrap();
        delta_file.write_all(&delta).unwrap();
        let mut out = Vec::new();
        codec.decode(&hit, &delta_file, &mut out).unwrap();
        assert_eq!(out, target);
    }

    #[test]
    fn ciphertexts_swapped_between_entries_do_not_decrypt() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = stack(t.path(), &key);
        let (a, _) = fill(&c, b"entry a, same length");
        let (b, _) = fill(&c, b"entry b, same length");
        std::fs::copy(dir.entry_path(&b), dir.entry_path(&a)).unwrap();
        assert!(c.lookup(&a).unwrap().is_none());
        assert!(!dir.entry_path(&a).exists(), "removed");
        assert!(c.lookup(&b).unwrap().is_some());
    }

    #[test]
    fn flipped_truncated_or_other_key_ciphertexts_are_rejected() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = stack(t.path(), &key);
        let (sha, _) = fill(&c, &vec![5u8; 3 << 20]);
        let mut bytes = std::fs::read(dir.entry_path(&sha)).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        std::fs::write(dir.entry_path(&sha), &bytes).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        // Under another encryption key: never decrypted, removed.
        let (_, other) = stack(t.path(), &CacheKey::per_process());
        let (sha2, _) = fill(&other, b"other key");
        assert!(c.lookup(&sha2).unwrap().is_none());
    }

    #[test]
    fn plaintext_entries_are_refused_by_the_encrypted_stack() {
        let t = tempfile::tempdir().unwrap();
        let dir = DirStore::open(t.path(), DirStoreOptions::default()).unwrap();
        let plain = StoreCache::new(Arc::new(dir.clone()), None, "persistent", true);
        let (sha, _) = fill(&plain, b"plain");
        let enc = StoreCache::new(
            Arc::new(Encrypted::new(
                Arc::new(dir.clone()),
                CacheKey::per_process(),
            )),
            None,
            "persistent",
            true,
        );
        assert!(enc.lookup(&sha).unwrap().is_none());
        // And encrypted entries are refused by a plain stack.
        let (sha, _) = fill(&enc, b"secret");
        assert!(plain.lookup(&sha).unwrap().is_none());
    }
}
