//! `Client::get_object` streams: a large object flows through in bounded memory, and a
//! rebuilt object whose bytes do not match its recorded SHA-256 ends in an error, never in
//! a clean end of stream.
//!
//! The memory test resets and reads this process's peak RSS (`/proc/self/clear_refs`,
//! `VmHWM`), so it lives alone in this test binary, and the tests here run one at a time.

mod support;

use std::io::Write;

use deltaglider::{Client, StoredAs};
use sha2::{Digest, Sha256};
use support::{edited, noise};
use tokio::io::AsyncReadExt;

/// One test at a time: the peak-RSS reading must not see another test's memory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn local_client(dir: &std::path::Path) -> Client {
    let client = Client::builder()
        .endpoint_url(format!("file://{}", dir.display()))
        .config_file("/dev/null")
        .build()
        .await
        .unwrap();
    client.create_bucket("bkt").await.unwrap();
    client
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

fn current_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_object_streams_in_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = local_client(&dir.path().join("store")).await;
    // 1 GiB of pseudo-random 1 MiB blocks, written without holding it in memory.
    let path = dir.path().join("big.bin");
    let mut expected = Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..1024u64 {
            let block = noise(1 << 20, i);
            expected.update(&block);
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    let expected = hex::encode(expected.finalize());
    client
        .put_object("bkt", "big/big.bin", path.as_path(), &Default::default())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();

    let before = current_rss();
    reset_peak_rss();
    let mut object = client.get_object("bkt", "big/big.bin").await.unwrap();
    assert_eq!(object.details.size, 1 << 30);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = object.body.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(total, 1 << 30);
    assert_eq!(hex::encode(hasher.finalize()), expected);
    assert!(
        grew < 64 << 20,
        "streaming 1 GiB grew the peak RSS by {} MiB",
        grew >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_whose_bytes_do_not_match_ends_in_an_error_after_its_bytes() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let client = local_client(&dir.path().join("store")).await;
    let v1 = noise(3 << 20, 7);
    let v2 = edited(&v1, 8);
    for (key, body) in [("p/app-1.zip", v1), ("p/app-2.zip", v2.clone())] {
        client
            .put_object("bkt", key, body, &Default::default())
            .await
            .unwrap();
    }
    assert_eq!(
        client
            .head_object("bkt", "p/app-2.zip")
            .await
            .unwrap()
            .stored_as,
        StoredAs::Delta
    );

    // The good one streams to a clean end with the right bytes.
    let mut good = client.get_object("bkt", "p/app-2.zip").await.unwrap();
    let mut bytes = Vec::new();
    good.body.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes, v2);

    // Record another SHA-256 on the delta: the bytes rebuilt are then not "the object".
    let store: std::sync::Arc<dyn deltaglider::storage::ObjectStore> = std::sync::Arc::new(
        deltaglider::storage::local::LocalStore::new(dir.path().join("store")).unwrap(),
    );
    let stored = "p/app-2.zip.delta";
    let info = store.head_object("bkt", stored).await.unwrap().unwrap();
    let mut meta = info.metadata.unwrap();
    meta.insert("dg-file-sha256".into(), "0".repeat(64));
    let mut delta = Vec::new();
    store
        .get_object("bkt", stored)
        .await
        .unwrap()
        .body
        .read_to_end(&mut delta)
        .await
        .unwrap();
    store
        .put_object(
            "bkt",
            stored,
            deltaglider::storage::PutSource::Bytes(delta.into()),
            deltaglider::storage::PutOptions {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let mut bad = client.get_object("bkt", "p/app-2.zip").await.unwrap();
    let mut got = Vec::new();
    let err = bad
        .body
        .read_to_end(&mut got)
        .await
        .expect_err("a mismatch must not read as a clean end of stream");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let inner = err.into_inner().unwrap();
    assert!(
        matches!(
            inner.downcast_ref::<deltaglider::Error>(),
            Some(deltaglider::Error::IntegrityMismatch { .. })
        ),
        "{inner}"
    );
    assert!(
        got.len() as u64 >= (3 << 20) - (256 << 10),
        "bytes flowed before the check: {}",
        got.len()
    );
}
