//! The cache can make a download faster, never make it fail (docs/cache.md, "fallback to
//! storage"): whatever goes wrong in it (an entry that cannot be read, a lock that cannot be
//! taken, a full disk, a vanished directory, garbage in an entry) is logged, and the
//! reference is fetched from storage. Real local store, real directory cache; the faults are
//! injected by a wrapper over the real store stack, the way a new layer would wrap it.

mod support;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use deltaglider::PutRequestOptions;
use deltaglider::cache::CacheKey;
use deltaglider::cache::PersistentOptions;
use deltaglider::cache::StoreCache;
use deltaglider::cache::{CacheInfo, FillLock, Lookup, NoCache, ReferenceCache, VerifySummary};
use deltaglider::codec::NativeCodec;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::ObjectStore;
use deltaglider::storage::local::LocalStore;
use deltaglider::testing::cache::Record;
use deltaglider::testing::cache::Signed;
use deltaglider::testing::cache::{DirStore, DirStoreOptions};
use deltaglider::testing::cache::{Entry, EntryStore, PendingEntry, Usage};
use deltaglider::testing::hashing::sha256_hex;
use deltaglider::testing::{Engine, EngineSettings};
use deltaglider::{Error, Result};
use support::{edited, noise};

const MIB: usize = 1 << 20;

/// Which operations of the store below fail.
#[derive(Debug)]
struct Faults {
    open: AtomicBool,
    lock: AtomicBool,
    create: AtomicBool,
    publish: AtomicBool,
    /// Writes fail once an entry has taken this many bytes (a full disk).
    write_budget: AtomicU64,
    /// Entries started.
    created: AtomicUsize,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            open: AtomicBool::new(false),
            lock: AtomicBool::new(false),
            create: AtomicBool::new(false),
            publish: AtomicBool::new(false),
            write_budget: AtomicU64::new(u64::MAX),
            created: AtomicUsize::new(0),
        }
    }
}

fn full_disk() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// A layer over a real store stack that fails where `faults` says.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn EntryStore>,
    faults: Arc<Faults>,
}

#[deny(clippy::missing_trait_methods)]
impl EntryStore for Faulty {
    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
    fn open(&self, sha256: &str) -> Result<Option<Entry>> {
        if self.faults.open.load(Ordering::SeqCst) {
            return Err(Error::io(
                format!("cannot read cache entry {sha256}"),
                io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        self.inner.open(sha256)
    }
    fn create(&self, sha256: &str) -> Result<Box<dyn PendingEntry>> {
        self.faults.created.fetch_add(1, Ordering::SeqCst);
        if self.faults.create.load(Ordering::SeqCst) {
            return Err(Error::io("cannot create a cache entry", full_disk()));
        }
        Ok(Box::new(FaultyPending {
            inner: self.inner.create(sha256)?,
            left: self.faults.write_budget.load(Ordering::SeqCst),
            fail_publish: self.faults.publish.load(Ordering::SeqCst),
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
    fn fill_info(&self, info: &mut CacheInfo) {
        self.inner.fill_info(info)
    }
    fn lock_for_fill(&self, sha256: &str) -> Result<FillLock> {
        if self.faults.lock.load(Ordering::SeqCst) {
            return Err(Error::io(
                "cannot open the fill lock",
                io::Error::from_raw_os_error(libc::EACCES),
            ));
        }
        self.inner.lock_for_fill(sha256)
    }
}

struct FaultyPending {
    inner: Box<dyn PendingEntry>,
    left: u64,
    fail_publish: bool,
}

impl Write for FaultyPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(full_disk());
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl PendingEntry for FaultyPending {
    fn publish(self: Box<Self>, record: Record) -> Result<Option<File>> {
        if self.fail_publish {
            return Err(Error::io("cannot publish the cache entry", full_disk()));
        }
        self.inner.publish(record)
    }
}

/// A persistent-cache stack (signed records, fill locks) with faults on top.
fn faulty_cache(root: &Path, encryption: bool) -> (Arc<StoreCache>, Arc<Faults>, DirStore) {
    let dir = DirStore::open(
        root,
        DirStoreOptions {
            fill_locks: true,
            ..DirStoreOptions::default()
        },
    )
    .unwrap();
    let signed: Arc<dyn EntryStore> =
        Arc::new(Signed::new(Arc::new(dir.clone()), CacheKey::per_process()));
    let below: Arc<dyn EntryStore> = if encryption {
        Arc::new(deltaglider::testing::cache::Encrypted::new(
            signed,
            CacheKey::per_process(),
        ))
    } else {
        signed
    };
    let faults = Arc::new(Faults::default());
    let faulty = Faulty {
        inner: below,
        faults: faults.clone(),
    };
    let cache =
        deltaglider::testing::cache::store_cache(Arc::new(faulty), None, "persistent", true);
    (Arc::new(cache), faults, dir)
}

fn read_all(mut f: File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

fn is_memfd(f: &File) -> bool {
    fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(f)
    ))
    .is_ok_and(|p| p.to_string_lossy().starts_with("/memfd:"))
}

/// A bucket holding `rel/v1.zip` (the reference) and `rel/v2.zip` (a delta against it).
struct Stored {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    store: Arc<LocalStore>,
    v1: Vec<u8>,
    v2: Vec<u8>,
    n: AtomicUsize,
}

impl Stored {
    fn new() -> Stored {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path().join("store")).unwrap());
        rt.block_on(store.create_bucket("bkt")).unwrap();
        let v1 = noise(2 * MIB, 41);
        let v2 = edited(&v1, 42);
        // Uploaded without a cache, so that the caches under test start empty.
        let uploader = Engine::new(
            store.clone(),
            Arc::new(NativeCodec::default()),
            Arc::new(NoCache),
            EngineSettings::default(),
        );
        for (name, bytes) in [("v1.zip", &v1), ("v2.zip", &v2)] {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            rt.block_on(uploader.put_file(
                &p,
                "bkt",
                &format!("rel/{name}"),
                &PutRequestOptions::default(),
            ))
            .unwrap();
        }
        let stored = Stored {
            rt,
            dir,
            store,
            v1,
            v2,
            n: AtomicUsize::new(0),
        };
        assert!(
            stored.exists("rel/v2.zip.delta"),
            "v2 must be stored as a delta"
        );
        stored
    }

    fn exists(&self, key: &str) -> bool {
        self.rt
            .block_on(self.store.head_object("bkt", key))
            .unwrap()
            .is_some()
    }

    fn ref_sha(&self) -> String {
        sha256_hex(&self.v1)
    }

    /// Downloads `rel/v2.zip` through `cache`: must succeed byte-exact.
    fn download_exact(&self, cache: Arc<dyn ReferenceCache>, what: &str) {
        let engine = Engine::new(
            self.store.clone(),
            Arc::new(NativeCodec::default()),
            cache,
            EngineSettings::default(),
        );
        let dest = self
            .dir
            .path()
            .join(format!("out-{}", self.n.fetch_add(1, Ordering::SeqCst)));
        if let Err(e) = self
            .rt
            .block_on(engine.get_to_file("bkt", "rel/v2.zip", &dest))
        {
            panic!("{what}: the download failed: {e}");
        }
        assert!(
            fs::read(&dest).unwrap() == self.v2,
            "{what}: wrong bytes downloaded"
        );
    }
}

#[test]
fn an_entry_that_cannot_be_read_is_fetched_from_storage() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, _) = faulty_cache(t.path(), false);
    s.download_exact(cache.clone(), "warm");
    assert!(cache.reference(&s.ref_sha()).unwrap().hit().is_some());
    faults.open.store(true, Ordering::SeqCst);
    assert!(
        cache.reference(&s.ref_sha()).unwrap().miss().is_some(),
        "an unreadable entry is a miss, not an error"
    );
    s.download_exact(cache.clone(), "entry unreadable (EIO)");
}

#[test]
fn a_fill_lock_that_cannot_be_taken_only_costs_the_lock() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, _) = faulty_cache(t.path(), false);
    faults.lock.store(true, Ordering::SeqCst);
    let slot = cache.reference(&s.ref_sha()).unwrap().miss().unwrap();
    assert!(!slot.is_locked() && slot.is_cached());
    drop(slot);
    s.download_exact(cache.clone(), "fill lock refused");
    faults.lock.store(false, Ordering::SeqCst);
    assert!(
        cache.reference(&s.ref_sha()).unwrap().hit().is_some(),
        "filled all the same"
    );
}

#[test]
fn a_cache_that_cannot_create_entries_serves_the_download_uncached() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, dir) = faulty_cache(t.path(), false);
    faults.create.store(true, Ordering::SeqCst);
    s.download_exact(cache.clone(), "cannot create entries");
    assert!(dir.list().unwrap().is_empty(), "nothing was cached");
    // With encryption, the uncached copy stays off the disk too.
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, _) = faulty_cache(t.path(), true);
    faults.create.store(true, Ordering::SeqCst);
    let mut slot = cache.reference(&s.ref_sha()).unwrap().miss().unwrap();
    let mut w = slot.writer().unwrap();
    assert!(!w.is_cached());
    w.write_all(&s.v1).unwrap();
    let f = w.commit("t").unwrap();
    assert!(
        is_memfd(&f),
        "an encrypted cache's fallback is anonymous memory"
    );
    assert!(read_all(f) == s.v1);
    // Released, or the download would wait for this slot's fill lock.
    drop(slot);
    s.download_exact(cache, "encrypted, cannot create entries");
}

#[test]
fn a_disk_that_fills_up_mid_download_restarts_it_uncached() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, dir) = faulty_cache(t.path(), false);
    faults.write_budget.store(300 << 10, Ordering::SeqCst);
    s.download_exact(cache.clone(), "disk full after 300 KiB");
    assert!(
        faults.created.load(Ordering::SeqCst) >= 1,
        "the cache was tried"
    );
    assert!(dir.list().unwrap().is_empty(), "no partial entry published");
    // The slot itself: a failed write turns it uncached; the next writer succeeds.
    let mut slot = cache.reference(&s.ref_sha()).unwrap().miss().unwrap();
    let mut w = slot.writer().unwrap();
    assert!(w.is_cached());
    assert!(w.write_all(&s.v1).is_err());
    drop(w);
    assert!(!slot.is_cached());
    let mut w = slot.writer().unwrap();
    w.write_all(&s.v1).unwrap();
    assert!(read_all(w.commit("t").unwrap()) == s.v1);
}

#[test]
fn an_entry_that_cannot_be_published_is_used_uncached() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let (cache, faults, dir) = faulty_cache(t.path(), false);
    faults.publish.store(true, Ordering::SeqCst);
    s.download_exact(cache.clone(), "publication fails");
    assert!(dir.list().unwrap().is_empty());
    // Wrong bytes are not a cache failure: the slot stays cached and says whose bytes.
    faults.publish.store(false, Ordering::SeqCst);
    let mut slot = cache.reference(&s.ref_sha()).unwrap().miss().unwrap();
    let mut w = slot.writer().unwrap();
    w.write_all(&s.v2).unwrap();
    let e = w.commit("s3://bkt/rel/reference.bin").unwrap_err();
    assert!(matches!(e, Error::IntegrityMismatch { .. }), "{e}");
    assert!(slot.is_cached());
    let mut w = slot.writer().unwrap();
    w.write_all(&s.v1).unwrap();
    w.commit("t").unwrap();
    drop(slot);
    assert!(cache.reference(&s.ref_sha()).unwrap().hit().is_some());
}

#[test]
fn garbage_in_an_entry_is_never_served_and_the_download_succeeds() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let cache = Arc::new(
        StoreCache::persistent(PersistentOptions::new(
            t.path().join("cache"),
            CacheKey::per_process(),
        ))
        .unwrap(),
    );
    s.download_exact(cache.clone(), "warm");
    let entry = deltaglider::testing::cache::dir_store(&cache)
        .unwrap()
        .entry_path(&s.ref_sha());
    let same_size = vec![0x5a; s.v1.len()];
    for (what, garbage) in [
        ("same-size garbage", same_size.as_slice()),
        ("short garbage", b"GARBAGE".as_slice()),
    ] {
        fs::write(&entry, garbage).unwrap();
        s.download_exact(cache.clone(), what);
        let hit = cache.reference(&s.ref_sha()).unwrap().hit();
        assert!(
            hit.is_some_and(|f| read_all(f) == s.v1),
            "{what}: the entry was refilled with the right bytes"
        );
        assert!(fs::read(&entry).unwrap() == s.v1, "{what}: garbage left");
    }
}

#[test]
fn a_cache_directory_removed_under_a_running_process_is_bypassed() {
    let s = Stored::new();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("cache");
    let cache = Arc::new(
        StoreCache::persistent(PersistentOptions::new(
            root.clone(),
            CacheKey::per_process(),
        ))
        .unwrap(),
    );
    s.download_exact(cache.clone(), "warm");
    fs::remove_dir_all(&root).unwrap();
    s.download_exact(cache.clone(), "cache directory removed");
    // And replaced by a file: still nothing but a log line.
    fs::write(&root, b"not a directory").unwrap();
    s.download_exact(cache, "cache directory replaced by a file");
}

/// A cache of someone else's making that fails outright.
#[derive(Debug)]
struct Broken;

impl ReferenceCache for Broken {
    fn describe(&self) -> String {
        "always fails".into()
    }
    fn reference(&self, _sha256: &str) -> Result<Lookup> {
        Err(Error::io(
            "cannot reach the cache",
            io::Error::from_raw_os_error(libc::EIO),
        ))
    }
    fn clear(&self) -> Result<()> {
        Ok(())
    }
    fn info(&self) -> Result<CacheInfo> {
        Ok(CacheInfo::default())
    }
    fn verify_all(&self) -> Result<VerifySummary> {
        Ok(VerifySummary::default())
    }
}

#[test]
fn a_cache_whose_lookups_fail_is_bypassed() {
    let s = Stored::new();
    s.download_exact(Arc::new(Broken), "lookups fail");
}
