//! Signed, expiring entries: a wrapper over any [`EntryStore`] that authenticates each
//! entry's [`Record`] (sha256, size, created, expires, writer uid, flags) with HMAC-SHA-256
//! under a per-user key. A record that does not verify (tampered, or written under another
//! key), names another writer, or has expired is deleted and the lookup is a miss.
//! The bytes themselves are covered by the SHA-256 check the top layer always makes.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::keys::CacheKey;
use super::record::{FLAG_SIGNED, Record};
use super::store::{Entry, EntryStore, PendingEntry, Usage};
use super::{CacheInfo, FillLock};
use crate::error::Result;

/// Purpose label of the key id stored in records.
pub const KEY_PURPOSE: &str = "sign";
const DOMAIN: &[u8] = b"deltaglider cache record v1\0";

/// Signs and checks records under one key.
#[derive(Debug, Clone)]
pub struct RecordSigner {
    key: CacheKey,
    key_id: [u8; 8],
}

impl RecordSigner {
    /// A signer for `key`; its key id is derived once here.
    pub fn new(key: CacheKey) -> RecordSigner {
        let key_id = key.bytes.id(KEY_PURPOSE);
        RecordSigner { key, key_id }
    }

    fn mac(&self, record: &Record) -> hmac::Hmac<Sha256> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(self.key.bytes.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(&record.signed_bytes());
        mac
    }

    /// Signs `record` in place.
    pub fn sign(&self, record: &mut Record) {
        record.flags |= FLAG_SIGNED;
        record.key_id = self.key_id;
        record.mac = self.mac(record).finalize().into_bytes().into();
    }

    /// Why `record` is not usable, or `Ok`.
    pub fn check(&self, record: &Record, now: u64) -> std::result::Result<(), &'static str> {
        if !record.has(FLAG_SIGNED) {
            return Err("unsigned record");
        }
        if record.key_id != self.key_id {
            return Err("signed under another key");
        }
        if self.mac(record).verify_slice(&record.mac).is_err() {
            return Err("record signature does not verify (tampered)");
        }
        if record.uid != super::secure_fs::euid() {
            return Err("written by another user");
        }
        if record.is_expired(now) {
            return Err("expired");
        }
        Ok(())
    }
}

/// HMAC-signed records over an inner store.
#[derive(Debug)]
pub struct Signed {
    inner: Arc<dyn EntryStore>,
    signer: Arc<RecordSigner>,
}

impl Signed {
    /// Wraps `inner`: records are signed under `key` on publish and checked on open.
    pub fn new(inner: Arc<dyn EntryStore>, key: CacheKey) -> Signed {
        Signed {
            inner,
            signer: Arc::new(RecordSigner::new(key)),
        }
    }

    /// The signer used by this layer.
    pub fn signer(&self) -> &RecordSigner {
        &self.signer
    }
}

// A wrapper states every method: a forgotten one would silently drop what the layer below
// does (its fill lock, its housekeeping).
#[deny(clippy::missing_trait_methods)]
impl EntryStore for Signed {
    fn describe(&self) -> String {
        format!("{} (HMAC-signed records)", self.inner.describe())
    }

    fn open(&self, sha256: &str) -> Result<Option<Entry>> {
        let Some(mut entry) = self.inner.open(sha256)? else {
            return Ok(None);
        };
        match self.signer.check(&entry.record, super::now_secs()) {
            Ok(()) => {
                // Hand the record up without this layer's fields.
                entry.record.flags &= !FLAG_SIGNED;
                entry.record.key_id = [0; 8];
                entry.record.mac = [0; 32];
                Ok(Some(entry))
            }
            Err("expired") => {
                tracing::debug!(sha256, "cache entry expired; removed");
                self.inner.remove(sha256);
                Ok(None)
            }
            Err(why) => {
                tracing::warn!(target: "security", sha256, "cache entry rejected and removed: {why}");
                self.inner.remove(sha256);
                Ok(None)
            }
        }
    }

    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>> {
        Ok(Box::new(SignedPending {
            inner: self.inner.create(sha256)?,
            signer: self.signer.clone(),
        }))
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
        info.signing_key = Some(self.signer.key.source.clone());
        self.inner.fill_info(info)
    }
}

struct SignedPending {
    inner: Box<dyn PendingEntry>,
    signer: Arc<RecordSigner>,
}

impl Write for SignedPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl PendingEntry for SignedPending {
    fn publish(self: Box<Self>, mut record: Record) -> Result<Option<File>> {
        self.signer.sign(&mut record);
        self.inner.publish(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::dir_store::{DirStore, DirStoreOptions};
    use crate::cache::store::StoreCache;
    use crate::hashing::sha256_hex;
    use std::time::Duration;

    fn cache(root: &std::path::Path, key: &CacheKey, ttl: Option<u64>) -> (DirStore, StoreCache) {
        let dir = DirStore::open(root, DirStoreOptions::default()).unwrap();
        let signed = Signed::new(Arc::new(dir.clone()), key.clone());
        (
            dir,
            StoreCache::new(
                Arc::new(signed),
                ttl.map(Duration::from_secs),
                "persistent",
                true,
            ),
        )
    }

    fn fill(c: &StoreCache, bytes: &[u8]) -> String {
        let sha = sha256_hex(bytes);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(bytes).unwrap();
        w.commit("t").unwrap();
        sha
    }

    fn record(dir: &DirStore, sha: &str) -> Record {
        Record::decode(&std::fs::read(dir.record_path(sha)).unwrap()).unwrap()
    }

    #[test]
    fn signed_entries_roundtrip_and_records_carry_the_mac() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = cache(t.path(), &key, Some(60));
        let sha = fill(&c, b"signed");
        let r = record(&dir, &sha);
        assert!(r.has(FLAG_SIGNED));
        assert_ne!(r.mac, [0; 32]);
        assert_eq!(r.uid, crate::cache::secure_fs::euid());
        assert!(c.lookup(&sha).unwrap().is_some());
    }

    #[test]
    fn tampered_record_fields_are_rejected_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = cache(t.path(), &key, Some(60));
        for tamper in [
            (|r: &mut Record| r.expires += 1_000_000) as fn(&mut Record),
            |r| r.created -= 1,
            |r| r.uid ^= 1,
            |r| r.mac[0] ^= 1,
            |r| r.flags &= !FLAG_SIGNED,
        ] {
            let sha = fill(&c, b"tamper me");
            let mut r = record(&dir, &sha);
            tamper(&mut r);
            std::fs::write(dir.record_path(&sha), r.encode()).unwrap();
            assert!(c.lookup(&sha).unwrap().is_none());
            assert!(!dir.entry_path(&sha).exists(), "removed");
        }
    }

    #[test]
    fn entries_under_another_key_are_never_used() {
        let t = tempfile::tempdir().unwrap();
        let (dir, mine) = cache(t.path(), &CacheKey::per_process(), None);
        let (_, theirs) = cache(t.path(), &CacheKey::per_process(), None);
        let sha = fill(&theirs, b"their entry");
        assert!(dir.entry_path(&sha).exists());
        assert!(mine.lookup(&sha).unwrap().is_none());
        // A forged record re-signed under yet another key is refused the same way.
        let sha = fill(&theirs, b"another");
        let mut r = record(&dir, &sha);
        RecordSigner::new(CacheKey::per_process()).sign(&mut r);
        std::fs::write(dir.record_path(&sha), r.encode()).unwrap();
        assert!(mine.lookup(&sha).unwrap().is_none());
    }

    #[test]
    fn expired_entries_are_misses_even_if_validly_signed() {
        let t = tempfile::tempdir().unwrap();
        let key = CacheKey::per_process();
        let (dir, c) = cache(t.path(), &key, Some(60));
        let sha = fill(&c, b"old");
        let mut r = record(&dir, &sha);
        let now = crate::cache::now_secs();
        r.created = now - 100;
        r.expires = now - 40;
        RecordSigner::new(key.clone()).sign(&mut r);
        std::fs::write(dir.record_path(&sha), r.encode()).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!dir.entry_path(&sha).exists());
    }

    #[test]
    fn unsigned_entries_from_a_plain_store_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = DirStore::open(t.path(), DirStoreOptions::default()).unwrap();
        let plain = StoreCache::new(Arc::new(dir.clone()), None, "persistent", true);
        let sha = fill(&plain, b"plain");
        let (_, signed) = cache(t.path(), &CacheKey::per_process(), None);
        assert!(signed.lookup(&sha).unwrap().is_none());
    }
}
