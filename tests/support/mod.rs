//! Shared helpers for integration tests: the real S3 server, the binary, test data.
//!
//! Tests that need the S3 server read the normal AWS configuration (`AWS_ENDPOINT_URL`,
//! keys). With `DG_REQUIRE_S3=1` (set by `scripts/test.sh`) a missing server is a failure;
//! otherwise those tests print a loud SKIPPED line and pass.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use deltaglider::cache::StoreCache;
use deltaglider::codec::Xdelta3Codec;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::ObjectStore;
use deltaglider::storage::local::LocalStore;
#[cfg(feature = "s3")]
use deltaglider::storage::s3::{S3Settings, S3Store, TransferLimits};
use deltaglider::testing::{Engine, EngineSettings};

pub mod counting;

fn required() -> bool {
    std::env::var("DG_REQUIRE_S3").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn skip(what: &str) {
    eprintln!(
        "\n*** SKIPPED: {what}. Run `scripts/test.sh` to start a local S3 server and run every test. ***\n"
    );
}

/// The S3 endpoint under test, or `None` (after a loud message) when there is none.
pub fn s3_endpoint() -> Option<String> {
    if !cfg!(feature = "s3") {
        assert!(
            !required(),
            "DG_REQUIRE_S3 is set but this build has no S3 support (cargo feature `s3`)"
        );
        skip("built without the `s3` feature");
        return None;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let reachable = endpoint.as_deref().is_some_and(|ep| {
        let hostport = ep
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        hostport
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
    });
    match (reachable, required()) {
        (true, _) => endpoint,
        (false, true) => {
            panic!("DG_REQUIRE_S3 is set but no S3 server answers at AWS_ENDPOINT_URL={endpoint:?}")
        }
        (false, false) => {
            skip("no S3 server (set AWS_ENDPOINT_URL and keys)");
            None
        }
    }
}

/// A fresh bucket name, unique per process and call.
pub fn unique_bucket(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dgt-{tag}-{}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// S3 store against the test server, with small multipart limits so tests exercise them.
#[cfg(feature = "s3")]
pub async fn s3_store(endpoint: &str) -> Arc<S3Store> {
    Arc::new(
        S3Store::connect(S3Settings {
            endpoint_url: Some(endpoint.to_string()),
            region: None,
            profile: None,
            limits: Some(TransferLimits {
                multipart_threshold: 8 << 20,
                part_size: 5 << 20,
                concurrency: 3,
            }),
        })
        .await
        .expect("S3 client"),
    )
}

/// An engine over any store with the xdelta3 codec and a private cache.
pub fn engine_over(store: Arc<dyn ObjectStore>) -> Engine {
    Engine::new(
        store,
        Arc::new(Xdelta3Codec::default()),
        Arc::new(StoreCache::private(None).expect("cache")),
        EngineSettings::default(),
    )
}

/// A client over any store, as an application assembles one: the xdelta3 codec and a
/// private cache, no config file.
pub async fn client_over(store: Arc<dyn ObjectStore>) -> deltaglider::Client {
    deltaglider::Client::builder()
        .config_file("/dev/null")
        .store(store)
        .codec(Arc::new(Xdelta3Codec::default()))
        .cache(Arc::new(StoreCache::private(None).expect("cache")))
        .build()
        .await
        .expect("client")
}

/// A local store in a fresh directory with bucket `bkt` created.
pub async fn local_engine() -> (tempfile::TempDir, Arc<LocalStore>, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(dir.path().join("store")).unwrap());
    store.create_bucket("bkt").await.unwrap();
    let engine = engine_over(store.clone());
    (dir, store, engine)
}

/// The built `deltaglider` binary.
pub fn dg_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deltaglider"))
}

/// Runs the binary with extra environment variables.
pub fn run_dg(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(dg_bin());
    cmd.args(args)
        .env_remove("DG_ENDPOINT_URL")
        .env("DG_CONFIG", "/dev/null");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run deltaglider")
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A version of `base` with a few scattered edits, like consecutive releases.
pub fn edited(base: &[u8], seed: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    let patch = noise(64, seed);
    for i in 0..8usize {
        let len = v.len();
        let at = (seed as usize * 7919 + i * len / 8) % len.saturating_sub(64).max(1);
        let n = 64.min(len - at);
        v[at..at + n].copy_from_slice(&patch[..n]);
    }
    v.extend_from_slice(&patch[..16]);
    v
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The corpus of real releases (`DG_CORPUS`), required when `DG_REQUIRE_S3` is set.
pub fn corpus() -> Option<PathBuf> {
    match std::env::var("DG_CORPUS")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
    {
        Some(p) => Some(p),
        None if required() => panic!("DG_REQUIRE_S3 is set but DG_CORPUS is not a directory"),
        None => {
            skip("no corpus (run scripts/corpus/fetch.sh and set DG_CORPUS)");
            None
        }
    }
}

/// The Python `deltaglider` CLI (`DG_PYTHON_DELTAGLIDER`), required when `DG_REQUIRE_S3` is set.
pub fn python_deltaglider() -> Option<PathBuf> {
    match std::env::var("DG_PYTHON_DELTAGLIDER")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        Some(p) => Some(p),
        None if required() => panic!("DG_REQUIRE_S3 is set but DG_PYTHON_DELTAGLIDER is not set"),
        None => {
            skip("no Python deltaglider (scripts/install-deps.sh installs it)");
            None
        }
    }
}
