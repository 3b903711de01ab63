//! The cache benchmark of `spec/cache.md` ("Performance bar"): `cargo bench --bench cache`.
//!
//! Writes and reads a realistic set of references (1, 4, 16, 64 and 100 MiB) through every
//! cache implementation and an unprotected plain-file cache (the baseline, implemented here:
//! write a file, open it by name, read it back), then downloads a delta of each reference
//! end to end through the engine with a warm cache (local store, native codec). Prints, from one
//! run, the median time of each and its ratio to the baseline:
//!
//! - write: ask the cache for a reference it does not have and fill the slot it hands out
//!   (fed in 256 KiB chunks, as a download does), then commit it;
//! - read: obtain the handle from a hit and consume every byte of it, as the codec would;
//! - e2e: `get_to_file` of a delta whose reference is in the cache (lookup, native decode,
//!   SHA-256 of the result, fsync and rename; into `/dev/shm` when it exists, so disk fsync
//!   latency does not drown the difference), the number the 10% bar is really about.
//!
//! Environment: `DG_BENCH_RUNS` (default 5) repetitions, `DG_BENCH_SIZES_MB` (default
//! `1,4,16,64,100`), `DG_BENCH_E2E=0` to skip the end-to-end part. Temporary files go to
//! `$TMPDIR`.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltaglider::PutRequestOptions;
use deltaglider::cache::CacheKey;
use deltaglider::cache::PersistentOptions;
use deltaglider::cache::StoreCache;
use deltaglider::cache::{
    CacheInfo, CacheWriter, FillLock, FillSlot, Lookup, ReferenceCache, VerifySummary,
};
use deltaglider::codec::NativeCodec;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::local::LocalStore;
use deltaglider::testing::cache::{DEFAULT_MAX_BYTES, DEFAULT_TTL};
use deltaglider::testing::hashing::sha256_hex;
use deltaglider::testing::{Engine, EngineSettings};
use deltaglider::{Error, Result};

const MIB: usize = 1 << 20;
const CHUNK: usize = 256 << 10;

/// The baseline: a plain file per reference, named by its hash, trusted blindly.
#[derive(Debug)]
struct PlainCache {
    dir: PathBuf,
    fsync: bool,
}

struct PlainWriter {
    file: File,
    fsync: bool,
}

impl Write for PlainWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl CacheWriter for PlainWriter {
    fn commit(mut self: Box<Self>, _what: &str) -> Result<File> {
        if self.fsync {
            self.file
                .sync_data()
                .map_err(|e| Error::io("cannot sync", e))?;
        }
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot rewind", e))?;
        Ok(self.file)
    }
}

impl ReferenceCache for PlainCache {
    fn describe(&self) -> String {
        format!("plain files in {}", self.dir.display())
    }

    fn reference(&self, sha256: &str) -> Result<Lookup> {
        let path = self.dir.join(sha256);
        match File::open(&path) {
            Ok(f) => return Ok(Lookup::Hit(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot open", e)),
        }
        let fsync = self.fsync;
        // Trusted blindly and never shared: no lock.
        Ok(Lookup::Miss(FillSlot::new(
            sha256,
            FillLock::none(),
            false,
            move || {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| Error::io("cannot create", e))?;
                Ok(Box::new(PlainWriter { file, fsync }) as Box<dyn CacheWriter>)
            },
        )?))
    }

    fn clear(&self) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io("cannot list", e))? {
            let entry = entry.map_err(|e| Error::io("cannot list", e))?;
            std::fs::remove_file(entry.path()).map_err(|e| Error::io("cannot remove", e))?;
        }
        Ok(())
    }

    fn info(&self) -> Result<CacheInfo> {
        Ok(CacheInfo {
            backend: "plain".into(),
            description: self.describe(),
            ..CacheInfo::default()
        })
    }

    fn verify_all(&self) -> Result<VerifySummary> {
        // The baseline trusts its files: nothing is checked.
        Ok(VerifySummary::default())
    }
}

/// Deterministic incompressible bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A next release: a few scattered small edits.
fn edited(base: &[u8], seed: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    let patch = data(256, seed);
    for i in 0..16 {
        let at = (i * v.len() / 16 + 4099) % (v.len() - 256);
        v[at..at + 256].copy_from_slice(&patch);
    }
    v
}

/// Reads everything and folds it, as a consumer that touches every byte.
fn consume(mut r: impl Read, buf: &mut [u8]) -> u64 {
    let mut acc = 0u64;
    loop {
        let n = r.read(buf).expect("read");
        if n == 0 {
            return acc;
        }
        for c in buf[..n].chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            acc = acc.rotate_left(5) ^ u64::from_le_bytes(w);
        }
    }
}

fn store_ref(cache: &dyn ReferenceCache, sha: &str, bytes: &[u8]) {
    let mut slot = cache
        .reference(sha)
        .expect("lookup")
        .miss()
        .expect("a miss after clear");
    let mut w = slot.writer().expect("writer");
    for c in bytes.chunks(CHUNK) {
        w.write_all(c).expect("write");
    }
    drop(black_box(w.commit("bench").expect("commit")));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Impl {
    name: &'static str,
    cache: Arc<dyn ReferenceCache>,
    write: Vec<Duration>,
    read: Vec<Duration>,
    e2e: Vec<Duration>,
}

fn persistent_cache(root: &Path, encrypted: bool) -> StoreCache {
    StoreCache::persistent(
        PersistentOptions::new(root.to_path_buf(), CacheKey::per_process())
            .max_bytes(Some(DEFAULT_MAX_BYTES))
            .ttl(Some(DEFAULT_TTL))
            .encryption_key(encrypted.then(CacheKey::per_process))
            .monitor(true),
    )
    .expect("persistent cache")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("cache benchmark: run it with `cargo bench --bench cache`");
        return;
    }
    let runs: usize = env_or("DG_BENCH_RUNS", 5).max(1);
    let sizes: Vec<usize> = std::env::var("DG_BENCH_SIZES_MB")
        .unwrap_or_else(|_| "1,4,16,64,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let e2e = std::env::var("DG_BENCH_E2E").map_or(true, |v| v != "0");
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("dg-cache-bench-")
        .tempdir()
        .expect("temp dir");
    let refs: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, mb)| {
            let d = data(mb * MIB, i as u64 + 1);
            (sha256_hex(&d), d)
        })
        .collect();
    let total: usize = refs.iter().map(|r| r.1.len()).sum();

    let plain_dir = tmp.path().join("plain");
    let plain_sync_dir = tmp.path().join("plain-fsync");
    std::fs::create_dir(&plain_dir).unwrap();
    std::fs::create_dir(&plain_sync_dir).unwrap();
    let caches: Vec<(&'static str, Arc<dyn ReferenceCache>)> = vec![
        (
            "plain file (baseline)",
            Arc::new(PlainCache {
                dir: plain_dir,
                fsync: false,
            }),
        ),
        (
            "plain file + fsync",
            Arc::new(PlainCache {
                dir: plain_sync_dir,
                fsync: true,
            }),
        ),
        (
            "ephemeral (default)",
            Arc::new(StoreCache::private(None).expect("private cache")),
        ),
        (
            "persistent (signed)",
            Arc::new(persistent_cache(&tmp.path().join("persistent"), false)),
        ),
        (
            "persistent + encrypted",
            Arc::new(persistent_cache(&tmp.path().join("encrypted"), true)),
        ),
        (
            "memory (encrypted LRU)",
            Arc::new(StoreCache::memory(2 * total as u64 + (64 << 20), None)),
        ),
    ];
    let mut impls: Vec<Impl> = caches
        .into_iter()
        .map(|(name, cache)| Impl {
            name,
            cache,
            write: Vec::new(),
            read: Vec::new(),
            e2e: Vec::new(),
        })
        .collect();

    let mut buf = vec![0u8; MIB];
    let mut sink = 0u64;
    let n = impls.len();
    for run in 0..runs {
        // Rotate the order each run so no implementation always follows the same neighbour
        // (page cache, writeback of the previous one's files).
        for k in 0..n {
            let imp = &mut impls[(run + k) % n];
            // Every write is of a reference the cache does not have, as after a download.
            imp.cache.clear().expect("clear");
            let t = Instant::now();
            for (sha, bytes) in &refs {
                store_ref(&*imp.cache, sha, bytes);
            }
            imp.write.push(t.elapsed());
            let t = Instant::now();
            for (sha, _) in &refs {
                let f = imp
                    .cache
                    .reference(sha)
                    .expect("lookup")
                    .hit()
                    .expect("hit");
                sink ^= consume(f, &mut buf);
            }
            imp.read.push(t.elapsed());
        }
    }
    black_box(sink);

    if e2e {
        run_e2e(tmp.path(), &refs, &mut impls, runs);
    }

    println!();
    println!(
        "deltaglider cache benchmark: {} references ({} MiB), {} MiB in all; median of {runs} runs",
        refs.len(),
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        total / MIB
    );
    println!(
        "write = miss + fill + commit; read = hit + consume every byte; e2e = warm-cache get_to_file of a delta per reference (native codec)"
    );
    println!();
    println!(
        "{:<24} {:>10} {:>7} {:>10} {:>7} {:>10} {:>7}",
        "implementation", "write", "ratio", "read", "ratio", "e2e", "ratio"
    );
    let base_w = median(impls[0].write.clone());
    let base_r = median(impls[0].read.clone());
    let base_e = (!impls[0].e2e.is_empty()).then(|| median(impls[0].e2e.clone()));
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let ratio =
        |d: Duration, base: Duration| format!("{:.2}x", d.as_secs_f64() / base.as_secs_f64());
    for imp in &impls {
        let w = median(imp.write.clone());
        let r = median(imp.read.clone());
        let (e, er) = match (base_e, imp.e2e.is_empty()) {
            (Some(b), false) => {
                let e = median(imp.e2e.clone());
                (ms(e), ratio(e, b))
            }
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<24} {:>10} {:>7} {:>10} {:>7} {:>10} {:>7}",
            imp.name,
            ms(w),
            ratio(w, base_w),
            ms(r),
            ratio(r, base_r),
            e,
            er
        );
    }
    println!();
    let mb_s = |d: Duration| total as f64 / MIB as f64 / d.as_secs_f64();
    println!(
        "baseline throughput: write {:.0} MiB/s, read {:.0} MiB/s",
        mb_s(base_w),
        mb_s(base_r)
    );
    if let Some(b) = base_e {
        for imp in impls.iter().skip(2) {
            let e = median(imp.e2e.clone());
            let over = (e.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0;
            println!(
                "e2e overhead, {:<24} {:+6.1}%  ({})",
                imp.name,
                over,
                if over < 10.0 {
                    "under the 10% bar"
                } else {
                    "OVER the 10% bar"
                }
            );
        }
    }
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}

/// Uploads each reference and a next release as a delta, then times warm-cache downloads of
/// the deltas through an engine over each cache.
fn run_e2e(dir: &Path, refs: &[(String, Vec<u8>)], impls: &mut [Impl], runs: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = Arc::new(LocalStore::new(dir.join("store")).expect("store"));
    rt.block_on(store.create_bucket("bkt")).expect("bucket");
    let codec = Arc::new(NativeCodec::default());
    let uploader = Engine::new(
        store.clone(),
        codec.clone(),
        impls[0].cache.clone(),
        EngineSettings::default(),
    );
    let src = dir.join("src");
    std::fs::create_dir(&src).unwrap();
    let t = Instant::now();
    for (i, (_, bytes)) in refs.iter().enumerate() {
        for (name, content) in [("v1.zip", bytes.clone()), ("v2.zip", edited(bytes, 99))] {
            let p = src.join(name);
            std::fs::write(&p, &content).unwrap();
            let r = rt
                .block_on(uploader.put_file(
                    &p,
                    "bkt",
                    &format!("r{i}/{name}"),
                    &PutRequestOptions::default(),
                ))
                .expect("upload");
            if name == "v2.zip" {
                assert_eq!(
                    r.stored_as,
                    deltaglider::StoredAs::Delta,
                    "v2 stored as delta"
                );
            }
        }
    }
    eprintln!(
        "e2e setup (uploads, native encodes): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The downloaded files go to tmpfs when there is one: get_to_file fsyncs its output, and
    // a disk's fsync latency would drown the differences being measured.
    let out_dir = tempfile::Builder::new()
        .prefix("dg-cache-bench-out-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            dir
        })
        .or_else(|_| tempfile::tempdir_in(dir))
        .expect("output dir");
    let out = out_dir.path();
    eprintln!("e2e downloads go to {}", out.display());
    let engines: Vec<Engine> = impls
        .iter()
        .map(|imp| {
            Engine::new(
                store.clone(),
                codec.clone(),
                imp.cache.clone(),
                EngineSettings::default(),
            )
        })
        .collect();
    let get_all = |engine: &Engine| {
        for i in 0..refs.len() {
            rt.block_on(engine.get_to_file("bkt", &format!("r{i}/v2.zip"), &out.join("x")))
                .expect("download");
        }
    };
    // Warm every cache (the references are in them already; this checks the keys match).
    for engine in &engines {
        get_all(engine);
    }
    let n = impls.len();
    for run in 0..runs {
        for k in 0..n {
            let i = (run + k) % n;
            let t = Instant::now();
            get_all(&engines[i]);
            impls[i].e2e.push(t.elapsed());
        }
    }
}
