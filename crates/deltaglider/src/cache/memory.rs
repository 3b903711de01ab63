//! The memory backend (`DG_CACHE_BACKEND=memory`): entries live in this process's memory,
//! always encrypted with a per-process key (or `DG_CACHE_ENCRYPTION_KEY`), in an LRU with a
//! byte budget (`DG_CACHE_MEMORY_SIZE_MB`, default 100). A lookup decrypts into a sealed
//! anonymous memory file and checks its SHA-256 before handing it out. An entry larger than
//! the whole budget is simply not cached.
//!
//! Built as `StoreCache` → [`Encrypted`] → [`MemoryStore`]: the same encryption layer as the
//! encrypted disk cache, over a store that keeps ciphertext in RAM.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::encrypted::Encrypted;
use super::keys::CacheKey;
use super::record::Record;
use super::store::{Entry, EntryData, EntryStore, PendingEntry, StoreCache, Usage};
use super::{CacheInfo, FillLock};
use crate::error::Result;

/// Default budget: 100 MiB.
pub const DEFAULT_BUDGET: u64 = 100 << 20;

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<String, Slot>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Slot {
    data: Arc<[u8]>,
    record: Record,
    tick: u64,
}

impl Lru {
    fn touch(&mut self, sha: &str) -> Option<&Slot> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(sha)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, sha.to_string());
        Some(slot)
    }

    fn remove(&mut self, sha: &str) {
        if let Some(slot) = self.map.remove(sha) {
            self.order.remove(&slot.tick);
            self.bytes -= slot.data.len() as u64;
        }
    }

    fn insert(&mut self, sha: String, data: Arc<[u8]>, record: Record, budget: u64) {
        self.remove(&sha);
        let len = data.len() as u64;
        while self.bytes + len > budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&oldest) {
                self.bytes -= slot.data.len() as u64;
                tracing::debug!(sha256 = %oldest, "evicting memory cache entry");
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, sha.clone());
        self.bytes += len;
        self.map.insert(
            sha,
            Slot {
                data,
                record,
                tick: self.tick,
            },
        );
    }
}

/// Bytes and records in memory, least recently used evicted beyond a byte budget.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    lru: Arc<Mutex<Lru>>,
    budget: u64,
}

impl MemoryStore {
    /// An empty store holding at most `budget_bytes` of stored (ciphertext) bytes.
    pub fn new(budget_bytes: u64) -> MemoryStore {
        MemoryStore {
            lru: Arc::default(),
            budget: budget_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Test hook: the stored bytes of an entry.
    #[cfg(test)]
    fn raw(&self, sha: &str) -> Option<Arc<[u8]>> {
        self.lock().map.get(sha).map(|s| s.data.clone())
    }

    #[cfg(test)]
    fn replace_raw(&self, sha: &str, data: Vec<u8>) {
        if let Some(s) = self.lock().map.get_mut(sha) {
            s.data = data.into();
        }
    }
}

impl EntryStore for MemoryStore {
    fn describe(&self) -> String {
        format!("process memory, {} MiB budget", self.budget >> 20)
    }

    fn open(&self, sha256: &str) -> Result<Option<Entry>> {
        let mut lru = self.lock();
        Ok(lru.touch(sha256).map(|slot| Entry {
            data: EntryData::Bytes(slot.data.clone()),
            record: slot.record,
            hashed: None,
        }))
    }

    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>> {
        Ok(Box::new(MemoryPending {
            store: self.clone(),
            sha: sha256.to_string(),
            buf: Some(Vec::new()),
        }))
    }

    fn remove(&self, sha256: &str) {
        self.lock().remove(sha256)
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self.lock().map.keys().cloned().collect())
    }

    fn clear(&self) -> Result<()> {
        *self.lock() = Lru::default();
        Ok(())
    }

    fn usage(&self) -> Result<Usage> {
        let lru = self.lock();
        Ok(Usage {
            entries: lru.map.len() as u64,
            bytes: lru.bytes,
        })
    }

    fn maintain(&self) -> Result<u64> {
        // The budget is enforced on every insertion; nothing is left to tidy.
        Ok(0)
    }

    fn fill_info(&self, info: &mut CacheInfo) {
        info.max_bytes = Some(self.budget);
    }

    fn lock_for_fill(&self, _sha256: &str) -> Result<FillLock> {
        // Entries live in this process only: no other process can be filling them.
        Ok(FillLock::none())
    }
}

struct MemoryPending {
    store: MemoryStore,
    sha: String,
    /// `None` once the entry outgrew the whole budget.
    buf: Option<Vec<u8>>,
}

impl Write for MemoryPending {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(buf) = &mut self.buf {
            if (buf.len() + data.len()) as u64 > self.store.budget {
                self.buf = None;
            } else {
                buf.extend_from_slice(data);
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PendingEntry for MemoryPending {
    /// Keeps the bytes (if they fit); there is no file to hand back, so this store must be
    /// wrapped by a layer that keeps one ([`Encrypted`] does).
    fn publish(self: Box<Self>, record: Record) -> Result<Option<File>> {
        match self.buf {
            Some(buf) => {
                let budget = self.store.budget;
                self.store
                    .lock()
                    .insert(self.sha, buf.into(), record, budget)
            }
            None => tracing::debug!(sha256 = %self.sha, "larger than the memory cache; not cached"),
        }
        Ok(None)
    }
}

impl StoreCache {
    /// The memory cache: at most `budget_bytes` of ciphertext, encrypted under `key` (a
    /// fresh per-process key if `None`).
    pub fn memory(budget_bytes: u64, key: Option<CacheKey>) -> StoreCache {
        StoreCache::memory_over(MemoryStore::new(budget_bytes), key)
    }

    fn memory_over(store: MemoryStore, key: Option<CacheKey>) -> StoreCache {
        let encrypted = Encrypted::new(Arc::new(store), key.unwrap_or_else(CacheKey::per_process));
        StoreCache::new(Arc::new(encrypted), None, "memory", false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ReferenceCache;
    use crate::hashing::sha256_hex;
    use std::io::Read;

    /// The memory cache and a handle on its store, to tamper with.
    struct MemoryCache {
        cache: StoreCache,
        store: MemoryStore,
    }

    impl MemoryCache {
        fn new(budget_bytes: u64, key: Option<CacheKey>) -> MemoryCache {
            let store = MemoryStore::new(budget_bytes);
            MemoryCache {
                cache: StoreCache::memory_over(store.clone(), key),
                store,
            }
        }
    }

    impl std::ops::Deref for MemoryCache {
        type Target = StoreCache;
        fn deref(&self) -> &StoreCache {
            &self.cache
        }
    }

    fn fill(c: &MemoryCache, bytes: &[u8]) -> (String, Vec<u8>) {
        let sha = sha256_hex(bytes);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(bytes).unwrap();
        let mut out = Vec::new();
        w.commit("t").unwrap().read_to_end(&mut out).unwrap();
        (sha, out)
    }

    fn get(c: &MemoryCache, sha: &str) -> Option<Vec<u8>> {
        c.lookup(sha).unwrap().map(|mut f| {
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        })
    }

    #[test]
    fn hits_are_verified_plaintext_and_storage_is_ciphertext() {
        let c = MemoryCache::new(1 << 20, None);
        let (sha, out) = fill(&c, b"memory reference bytes");
        assert_eq!(out, b"memory reference bytes");
        assert_eq!(get(&c, &sha).unwrap(), b"memory reference bytes");
        let raw = c.store.raw(&sha).unwrap();
        assert!(!raw.windows(9).any(|w| w == b"reference"));
        let info = c.info().unwrap();
        assert_eq!((info.backend.as_str(), info.entries), ("memory", 1));
        assert_eq!(
            info.encryption_key,
            Some(crate::cache::KeySource::PerProcess)
        );
    }

    #[test]
    fn budget_evicts_least_recently_used_and_skips_oversize() {
        // Each 300-byte entry is 300 + 32 + 16 bytes of ciphertext.
        let c = MemoryCache::new(1100, None);
        let (a, _) = fill(&c, &[1u8; 300]);
        let (b, _) = fill(&c, &[2u8; 300]);
        let (d, _) = fill(&c, &[3u8; 300]);
        assert!(get(&c, &a).is_some()); // a is now the most recent
        let (e, _) = fill(&c, &[4u8; 300]);
        assert!(get(&c, &b).is_none(), "least recently used evicted");
        assert!(get(&c, &a).is_some() && get(&c, &d).is_some() && get(&c, &e).is_some());
        assert!(c.info().unwrap().bytes <= 1100);
        let (big, out) = fill(&c, &[5u8; 2000]);
        assert_eq!(out.len(), 2000, "still served");
        assert!(get(&c, &big).is_none(), "not cached");
        assert!(get(&c, &a).is_some(), "and did not flush the cache");
    }

    #[test]
    fn tampered_memory_is_a_miss() {
        let c = MemoryCache::new(1 << 20, None);
        let (sha, _) = fill(&c, b"abc");
        let mut raw = c.store.raw(&sha).unwrap().to_vec();
        let n = raw.len();
        raw[n - 1] ^= 1;
        c.store.replace_raw(&sha, raw);
        assert!(get(&c, &sha).is_none());
        assert_eq!(c.info().unwrap().entries, 0);
        fill(&c, b"x");
        c.clear().unwrap();
        assert_eq!(c.info().unwrap().entries, 0);
    }
}
