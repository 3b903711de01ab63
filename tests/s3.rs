//! Against a real S3 server (Ceph RGW from `scripts/test.sh`): the corpus round trip, the
//! conditional creation of references, multipart transfers, pagination and failures.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use deltaglider::PutRequestOptions;
use deltaglider::StoredAs;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::{ListRequest, ObjectStore, PutOptions, PutOutcome, PutSource};
use deltaglider::testing::hashing::sha256_hex;
use support::{
    edited, engine_over, noise, run_dg, s3_endpoint, s3_store, unique_bucket, write_file,
};

async fn cleanup(store: &dyn ObjectStore, bucket: &str) {
    loop {
        let page = store
            .list_objects(bucket, &ListRequest::default())
            .await
            .unwrap();
        if page.objects.is_empty() {
            break;
        }
        for o in page.objects {
            store.delete_object(bucket, &o.key).await.unwrap();
        }
    }
    deltaglider::storage::bucket_admin(store)
        .unwrap()
        .delete_bucket(bucket)
        .await
        .unwrap();
}

fn corpus_files(dir: &std::path::Path, set: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(set))
        .unwrap_or_else(|e| panic!("{}/{set}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_round_trip_through_the_cli_is_byte_exact() {
    let Some(_endpoint) = s3_endpoint() else {
        return;
    };
    let Some(corpus) = support::corpus() else {
        return;
    };
    let bucket = unique_bucket("corpus");
    let dg = |args: &[&str]| {
        let out = run_dg(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    dg(&["mb", &format!("s3://{bucket}")]);
    let out_dir = tempfile::tempdir().unwrap();
    let mut original = 0u64;
    for set in ["botocore", "ansible"] {
        let files = corpus_files(&corpus, set);
        assert!(
            files.len() >= 4,
            "corpus set {set} is incomplete: {files:?}"
        );
        for f in &files {
            original += std::fs::metadata(f).unwrap().len();
            dg(&["cp", f.to_str().unwrap(), &format!("s3://{bucket}/{set}/")]);
        }
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            let dest = out_dir.path().join(name);
            dg(&[
                "cp",
                &format!("s3://{bucket}/{set}/{name}"),
                dest.to_str().unwrap(),
            ]);
            assert_eq!(
                sha256_hex(&std::fs::read(&dest).unwrap()),
                sha256_hex(&std::fs::read(f).unwrap()),
                "{set}/{name} must come back byte-exact"
            );
        }
    }
    let listing: serde_json::Value =
        serde_json::from_str(&dg(&["ls", "-r", "--json", &format!("s3://{bucket}")])).unwrap();
    assert_eq!(
        listing["total_size"].as_u64(),
        Some(original),
        "ls reports original sizes"
    );
    // Stored bytes, references included, straight from the store.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored: u64 = rt.block_on(async {
        let store = s3_store(&_endpoint).await;
        let mut total = 0;
        let mut req = ListRequest::default();
        loop {
            let page = store.list_objects(&bucket, &req).await.unwrap();
            total += page.objects.iter().map(|o| o.size).sum::<u64>();
            match page.next_token {
                Some(t) => req.continuation_token = Some(t),
                None => break total,
            }
        }
    });
    eprintln!(
        "corpus: {original} bytes stored as {stored} bytes ({:.1}%)",
        100.0 * stored as f64 / original as f64
    );
    assert!(
        stored < original / 2,
        "deltas must save space on consecutive releases"
    );
    rt.block_on(async { cleanup(&*s3_store(&_endpoint).await, &bucket).await });
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_is_honoured_by_the_server() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store = s3_store(&endpoint).await;
    let bucket = unique_bucket("inm");
    store.create_bucket(&bucket).await.unwrap();
    let create = || PutOptions {
        if_none_match: true,
        ..Default::default()
    };
    let first = store
        .put_object(
            &bucket,
            "k",
            PutSource::Bytes(Bytes::from_static(b"one")),
            create(),
        )
        .await
        .unwrap();
    assert!(matches!(first, PutOutcome::Stored { .. }));
    let second = store
        .put_object(
            &bucket,
            "k",
            PutSource::Bytes(Bytes::from_static(b"two")),
            create(),
        )
        .await
        .unwrap();
    assert_eq!(second, PutOutcome::AlreadyExists);
    assert_eq!(
        store.head_object(&bucket, "k").await.unwrap().unwrap().size,
        3
    );
    cleanup(&*store, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_uploads_share_one_reference_and_both_decode() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store = s3_store(&endpoint).await;
    let bucket = unique_bucket("race");
    store.create_bucket(&bucket).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = noise(2 << 20, 21);
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let bytes = edited(&base, 100 + i);
        let path = write_file(dir.path(), &format!("v{i}.zip"), &bytes);
        // Separate engines: separate caches, as separate processes would have.
        let engine = engine_over(store.clone());
        let bucket = bucket.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .put_file(
                    &path,
                    &bucket,
                    &format!("race/v{i}.zip"),
                    &PutRequestOptions::default(),
                )
                .await
                .unwrap();
            (i, bytes)
        }));
    }
    let reader = engine_over(store.clone());
    for t in tasks {
        let (i, bytes) = t.await.unwrap();
        let out = dir.path().join(format!("out{i}"));
        reader
            .get_to_file(&bucket, &format!("race/v{i}.zip"), &out)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "v{i}");
    }
    cleanup(&*store, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_uploads_for_large_files() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store = s3_store(&endpoint).await; // multipart from 8 MiB, 5 MiB parts
    let bucket = unique_bucket("mpu");
    store.create_bucket(&bucket).await.unwrap();
    let engine = engine_over(store.clone());
    let dir = tempfile::tempdir().unwrap();
    let big = noise(13 << 20, 31);
    let direct = write_file(dir.path(), "big.bin", &big);
    let r = engine
        .put_file(&direct, &bucket, "m/big.bin", &PutRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Direct);
    // A large first file: the reference goes up in parts (Ceph ignores If-None-Match on
    // multipart completion; the engine re-reads the reference to detect races).
    let zip = write_file(dir.path(), "big.zip", &big);
    let r = engine
        .put_file(&zip, &bucket, "m/big.zip", &PutRequestOptions::default())
        .await
        .unwrap();
    assert!(r.created_reference);
    let v2 = edited(&big, 32);
    let zip2 = write_file(dir.path(), "big2.zip", &v2);
    let r = engine
        .put_file(&zip2, &bucket, "m/big2.zip", &PutRequestOptions::default())
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Delta);
    let fresh = engine_over(store.clone());
    for (key, bytes) in [
        ("m/big.bin", &big),
        ("m/big.zip", &big),
        ("m/big2.zip", &v2),
    ] {
        let out = dir.path().join("out");
        fresh.get_to_file(&bucket, key, &out).await.unwrap();
        assert!(std::fs::read(&out).unwrap() == *bytes, "{key}");
    }
    cleanup(&*store, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_paginates_and_reports_original_sizes() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store = s3_store(&endpoint).await;
    let bucket = unique_bucket("page");
    store.create_bucket(&bucket).await.unwrap();
    for i in 0..7 {
        store
            .put_object(
                &bucket,
                &format!("p/k{i}"),
                PutSource::Bytes(Bytes::from(vec![0u8; i])),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut req = ListRequest {
        prefix: "p/".into(),
        max_keys: Some(2),
        ..Default::default()
    };
    loop {
        let page = store.list_objects(&bucket, &req).await.unwrap();
        assert!(page.objects.len() <= 2);
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_token {
            Some(t) => req.continuation_token = Some(t),
            None => break,
        }
    }
    assert_eq!(keys, (0..7).map(|i| format!("p/k{i}")).collect::<Vec<_>>());

    let engine = engine_over(store.clone());
    let dir = tempfile::tempdir().unwrap();
    let v1 = noise(1 << 20, 41);
    let v2 = edited(&v1, 42);
    engine
        .put_file(
            &write_file(dir.path(), "a.zip", &v1),
            &bucket,
            "d/a.zip",
            &Default::default(),
        )
        .await
        .unwrap();
    engine
        .put_file(
            &write_file(dir.path(), "b.zip", &v2),
            &bucket,
            "d/b.zip",
            &Default::default(),
        )
        .await
        .unwrap();
    let listing = engine.list(&bucket, "d/", false).await.unwrap();
    let sizes: Vec<_> = listing
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    assert_eq!(
        sizes,
        [("d/a.zip", v1.len() as u64), ("d/b.zip", v2.len() as u64)]
    );
    assert!(listing.objects[1].stored_size < 100_000);
    cleanup(&*store, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_against_the_server_are_clean() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store: Arc<deltaglider::storage::s3::S3Store> = s3_store(&endpoint).await;
    let bucket = unique_bucket("fail");
    store.create_bucket(&bucket).await.unwrap();
    let engine = engine_over(store.clone());
    let dir = tempfile::tempdir().unwrap();
    let v1 = noise(1 << 20, 51);
    engine
        .put_file(
            &write_file(dir.path(), "a.zip", &v1),
            &bucket,
            "f/a.zip",
            &Default::default(),
        )
        .await
        .unwrap();
    engine
        .put_file(
            &write_file(dir.path(), "b.zip", &edited(&v1, 52)),
            &bucket,
            "f/b.zip",
            &Default::default(),
        )
        .await
        .unwrap();

    // A corrupted delta, written behind our back.
    let info = store
        .head_object(&bucket, "f/b.zip.delta")
        .await
        .unwrap()
        .unwrap();
    let mut body = Vec::new();
    let mut r = store.get_object(&bucket, "f/b.zip.delta").await.unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut r.body, &mut body)
        .await
        .unwrap();
    let n = body.len();
    body[n / 2] ^= 0xff;
    store
        .put_object(
            &bucket,
            "f/b.zip.delta",
            PutSource::Bytes(body.into()),
            PutOptions {
                metadata: info.metadata.unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let out = dir.path().join("b-download.zip");
    assert!(engine.get_to_file(&bucket, "f/b.zip", &out).await.is_err());
    assert!(!out.exists());

    // Through the CLI: unknown bucket, missing key.
    let dest = dir.path().join("x.zip");
    let o = run_dg(
        &["cp", "s3://no-such-bucket-dg/x.zip", dest.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-bucket-dg"));
    let o = run_dg(
        &[
            "cp",
            &format!("s3://{bucket}/f/zzz.zip"),
            dest.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    assert!(!dest.exists());
    let o = run_dg(&["ls", "s3://no-such-bucket-dg/"], &[]);
    assert_eq!(o.status.code(), Some(3));
    cleanup(&*store, &bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_and_copies_on_the_server() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let store = s3_store(&endpoint).await;
    let bucket = unique_bucket("sync");
    store.create_bucket(&bucket).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let base = noise(1 << 20, 61);
    for i in 0..3u64 {
        write_file(&src, &format!("r{i}.zip"), &edited(&base, 62 + i));
    }
    write_file(&src.join("sub"), "notes.txt", b"notes");
    let dg = |args: &[&str]| {
        let out = run_dg(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let url = |k: &str| format!("s3://{bucket}/{k}");
    let ups = |s: &str| s.lines().filter(|l| l.starts_with("upload:")).count();
    assert_eq!(ups(&dg(&["sync", src.to_str().unwrap(), &url("t/")])), 4);
    assert_eq!(
        ups(&dg(&["sync", src.to_str().unwrap(), &url("t/")])),
        0,
        "nothing changed"
    );

    // A whole object copied server-side keeps its DeltaGlider metadata.
    dg(&["cp", &url("t/sub/notes.txt"), &url("copy/notes.txt")]);
    let meta = store
        .head_object(&bucket, "copy/notes.txt")
        .await
        .unwrap()
        .unwrap()
        .metadata
        .unwrap();
    assert_eq!(
        meta.get("dg-file-sha256").map(String::as_str),
        Some(sha256_hex(b"notes").as_str())
    );
    // A tree with deltas copied to another prefix, then brought back byte for byte.
    dg(&["cp", "-r", &url("t/"), &url("u/")]);
    assert!(
        store
            .head_object(&bucket, "u/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
    let down = dir.path().join("down");
    dg(&["sync", &url("u/"), down.to_str().unwrap()]);
    for name in ["r0.zip", "r1.zip", "r2.zip", "sub/notes.txt"] {
        assert_eq!(
            std::fs::read(down.join(name)).unwrap(),
            std::fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    let again = dg(&["sync", &url("u/"), down.to_str().unwrap()]);
    assert!(
        !again.contains("download:"),
        "an unchanged bucket downloads nothing: {again}"
    );
    cleanup(&*store, &bucket).await;
}
