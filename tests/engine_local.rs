//! Engine semantics on the local store (no server needed): the on-bucket format, delta
//! decisions, deletion rules and every way a bad object must fail safely.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use deltaglider::PutRequestOptions;
use deltaglider::StoredAs;
use deltaglider::storage::{ObjectStore, PutOptions, PutSource};
use deltaglider::testing::hashing::sha256_hex;
use deltaglider::testing::metadata::DgMetadata;
use support::{edited, local_engine, noise, write_file};

fn opts() -> PutRequestOptions {
    PutRequestOptions::default()
}

async fn meta_of(store: &dyn ObjectStore, key: &str) -> DgMetadata {
    let info = store
        .head_object("bkt", key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} missing"));
    DgMetadata::parse(&info.metadata.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn first_file_becomes_reference_and_zero_diff_then_deltas() {
    let (dir, store, engine) = local_engine().await;
    let v1 = noise(3 << 20, 1);
    let v2 = edited(&v1, 2);
    let f1 = write_file(dir.path(), "app-1.zip", &v1);
    let f2 = write_file(dir.path(), "app-2.zip", &v2);

    let r1 = engine
        .put_file(&f1, "bkt", "rel/app-1.zip", &opts())
        .await
        .unwrap();
    assert_eq!(r1.stored_as, StoredAs::Delta);
    assert!(r1.created_reference);
    let reference = meta_of(&*store, "rel/reference.bin").await;
    assert_eq!(
        reference.file_sha256.as_deref(),
        Some(sha256_hex(&v1).as_str())
    );
    assert_eq!(reference.note.as_deref(), Some("reference"));
    assert_eq!(reference.source_name.as_deref(), Some("app-1.zip"));
    let zero = meta_of(&*store, "rel/app-1.zip.delta").await;
    assert_eq!(
        zero.note.as_deref(),
        Some("zero-diff (reference identical)")
    );
    assert_eq!(zero.ref_key.as_deref(), Some("rel/reference.bin"));
    assert_eq!(zero.ref_path.as_deref(), Some("reference.bin"));
    assert_eq!(zero.ref_sha256, reference.file_sha256);
    assert_eq!(zero.file_size, Some(v1.len() as u64));
    for field in [&zero.tool, &zero.original_name, &zero.delta_cmd] {
        assert!(field.is_some());
    }
    assert!(zero.created_at.is_some() && zero.delta_size.is_some());

    let r2 = engine
        .put_file(&f2, "bkt", "rel/app-2.zip", &opts())
        .await
        .unwrap();
    assert_eq!(r2.stored_as, StoredAs::Delta);
    assert!(!r2.created_reference);
    assert!(
        r2.stored_size < 64 * 1024,
        "delta of a small edit is {} bytes",
        r2.stored_size
    );
    let d2 = meta_of(&*store, "rel/app-2.zip.delta").await;
    assert_eq!(d2.note, None);
    assert_eq!(d2.file_sha256.as_deref(), Some(sha256_hex(&v2).as_str()));
    assert_eq!(d2.delta_size, Some(r2.stored_size));

    for (key, bytes) in [("rel/app-1.zip", &v1), ("rel/app-2.zip", &v2)] {
        let out = dir.path().join("out.bin");
        let g = engine.get_to_file("bkt", key, &out).await.unwrap();
        assert!(g.verified);
        assert_eq!(&std::fs::read(&out).unwrap(), bytes, "{key}");
    }

    let listing = engine.list("bkt", "rel/", false).await.unwrap();
    let names: Vec<_> = listing
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    assert_eq!(
        names,
        [
            ("rel/app-1.zip", v1.len() as u64),
            ("rel/app-2.zip", v2.len() as u64)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unrelated_content_is_stored_whole_when_the_delta_is_too_big() {
    let (dir, _store, engine) = local_engine().await;
    let f1 = write_file(dir.path(), "a.zip", &noise(1 << 20, 10));
    let f2 = write_file(dir.path(), "b.zip", &noise(1 << 20, 11));
    engine
        .put_file(&f1, "bkt", "x/a.zip", &opts())
        .await
        .unwrap();
    let r = engine
        .put_file(&f2, "bkt", "x/b.zip", &opts())
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Direct);
    assert!(r.direct_reason.unwrap().contains("max-ratio"));
    let out = dir.path().join("b.out");
    engine.get_to_file("bkt", "x/b.zip", &out).await.unwrap();
    assert_eq!(std::fs::read(out).unwrap(), std::fs::read(f2).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_delta_empty_and_ineligible_files_are_direct() {
    let (dir, store, engine) = local_engine().await;
    let empty = write_file(dir.path(), "empty.zip", b"");
    let txt = write_file(dir.path(), "notes.txt", b"hello");
    let zip = write_file(dir.path(), "c.zip", &noise(100_000, 3));
    let r = engine
        .put_file(&empty, "bkt", "p/empty.zip", &opts())
        .await
        .unwrap();
    assert_eq!((r.stored_as, r.original_size), (StoredAs::Direct, 0));
    let r = engine
        .put_file(&txt, "bkt", "p/notes.txt", &opts())
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Direct);
    let no_delta = opts().no_delta(true);
    let r = engine
        .put_file(&zip, "bkt", "p/c.zip", &no_delta)
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Direct);
    assert!(
        store
            .head_object("bkt", "p/reference.bin")
            .await
            .unwrap()
            .is_none()
    );
    let direct = meta_of(&*store, "p/notes.txt").await;
    assert_eq!(direct.compression.as_deref(), Some("none"));
    let out = dir.path().join("e");
    engine
        .get_to_file("bkt", "p/empty.zip", &out)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"");
}

#[tokio::test(flavor = "multi_thread")]
async fn reserved_names_are_refused_and_nothing_is_written() {
    let (dir, store, engine) = local_engine().await;
    let f = write_file(dir.path(), "reference.bin", b"user data");
    for key in ["p/reference.bin", "p/x.zip.delta", ".deltaglider/tmp/x"] {
        let err = engine.put_file(&f, "bkt", key, &opts()).await.unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }
    let listing = store
        .list_objects("bkt", &Default::default())
        .await
        .unwrap();
    assert!(listing.objects.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_names_round_trip_through_metadata() {
    let (dir, store, engine) = local_engine().await;
    let f = write_file(dir.path(), "x.zip", &noise(50_000, 4));
    let key = "téléchargements/версия-1.zip";
    engine.put_file(&f, "bkt", key, &opts()).await.unwrap();
    let raw = store
        .head_object("bkt", &format!("{key}.delta"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.metadata
            .as_ref()
            .unwrap()
            .values()
            .all(|v| v.is_ascii())
    );
    let meta = meta_of(&*store, &format!("{key}.delta")).await;
    assert_eq!(meta.original_name.as_deref(), Some("версия-1.zip"));
    let out = dir.path().join("o");
    engine.get_to_file("bkt", key, &out).await.unwrap();
    assert_eq!(std::fs::read(out).unwrap(), std::fs::read(f).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_last_delta_removes_the_reference_of_that_deltaspace_only() {
    let (dir, store, engine) = local_engine().await;
    let base = noise(200_000, 5);
    for (i, key) in ["a/1.zip", "a/2.zip", "a/b/3.zip"].iter().enumerate() {
        let f = write_file(dir.path(), "f.zip", &edited(&base, i as u64));
        engine.put_file(&f, "bkt", key, &opts()).await.unwrap();
    }
    let r = engine.delete("bkt", "a/1.zip").await.unwrap();
    assert_eq!(r.deleted, ["a/1.zip.delta"]);
    assert_eq!(
        r.reference_removed, None,
        "a/2.zip still needs a/reference.bin"
    );
    let r = engine.delete("bkt", "a/2.zip").await.unwrap();
    assert_eq!(r.reference_removed.as_deref(), Some("a/reference.bin"));
    assert!(
        store
            .head_object("bkt", "a/b/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
    let out = dir.path().join("3");
    engine.get_to_file("bkt", "a/b/3.zip", &out).await.unwrap();
    assert!(matches!(
        engine.delete("bkt", "a/1.zip").await,
        Err(deltaglider::Error::NotFound { .. })
    ));
    assert!(engine.delete("bkt", "a/b/reference.bin").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_delta_with_a_direct_upload_leaves_one_representation() {
    let (dir, store, engine) = local_engine().await;
    let v1 = noise(300_000, 6);
    let f = write_file(dir.path(), "v.zip", &v1);
    engine
        .put_file(&f, "bkt", "s/v.zip", &opts())
        .await
        .unwrap();
    let r = engine
        .put_file(&f, "bkt", "s/v.zip", &opts().no_delta(true))
        .await
        .unwrap();
    assert_eq!(r.stored_as, StoredAs::Direct);
    assert!(
        store
            .head_object("bkt", "s/v.zip.delta")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .head_object("bkt", "s/reference.bin")
            .await
            .unwrap()
            .is_none(),
        "the reference is unused once its only delta is gone"
    );
}

async fn tamper(
    store: &Arc<deltaglider::storage::local::LocalStore>,
    key: &str,
    edit: impl FnOnce(&mut Vec<u8>, &mut deltaglider::UserMetadata),
) {
    let info = store.head_object("bkt", key).await.unwrap().unwrap();
    let mut reader = store.get_object("bkt", key).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader.body, &mut bytes)
        .await
        .unwrap();
    let mut meta = info.metadata.unwrap();
    edit(&mut bytes, &mut meta);
    store
        .put_object(
            "bkt",
            key,
            PutSource::Bytes(Bytes::from(bytes)),
            PutOptions {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

/// Stores v1 (reference) and v2 (delta) and returns v2's bytes.
async fn two_versions(engine: &deltaglider::testing::Engine, dir: &std::path::Path) -> Vec<u8> {
    let v1 = noise(400_000, 7);
    let v2 = edited(&v1, 8);
    engine
        .put_file(&write_file(dir, "1.zip", &v1), "bkt", "t/1.zip", &opts())
        .await
        .unwrap();
    engine
        .put_file(&write_file(dir, "2.zip", &v2), "bkt", "t/2.zip", &opts())
        .await
        .unwrap();
    v2
}

async fn assert_download_fails(
    engine: &deltaglider::testing::Engine,
    dir: &std::path::Path,
    needle: &str,
) {
    let out = dir.join("must-not-exist.zip");
    let err = engine
        .get_to_file("bkt", "t/2.zip", &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(needle),
        "error '{err}' should mention '{needle}'"
    );
    assert!(!out.exists(), "no output file after a failed download");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".dgtmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_delta_fails_cleanly() {
    let (dir, store, engine) = local_engine().await;
    two_versions(&engine, dir.path()).await;
    tamper(&store, "t/2.zip.delta", |bytes, _| {
        let n = bytes.len();
        bytes[n / 2] ^= 0x55;
        bytes[n - 3] ^= 0x55;
    })
    .await;
    let out = dir.path().join("must-not-exist.zip");
    assert!(engine.get_to_file("bkt", "t/2.zip", &out).await.is_err());
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn replaced_reference_is_detected_by_its_hash() {
    let (dir, store, engine) = local_engine().await;
    two_versions(&engine, dir.path()).await;
    // Same metadata, other bytes: only the delta's dg-ref-sha256 can tell.
    tamper(&store, "t/reference.bin", |bytes, _| bytes[10] ^= 1).await;
    // The cache still holds the verified original, which is the right answer; a fresh
    // process (empty cache) must detect the swap.
    engine.cache().clear().unwrap();
    assert_download_fails(&engine, dir.path(), "t/reference.bin").await;
    engine.cache().clear().unwrap();
    let err = engine.verify("bkt", "t/2.zip").await.unwrap_err();
    assert!(
        matches!(err, deltaglider::Error::IntegrityMismatch { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_file_hash_in_metadata_is_detected() {
    let (dir, store, engine) = local_engine().await;
    two_versions(&engine, dir.path()).await;
    tamper(&store, "t/2.zip.delta", |_, meta| {
        meta.insert("dg-file-sha256".into(), "0".repeat(64));
    })
    .await;
    assert_download_fails(&engine, dir.path(), "integrity check failed").await;
    let report = engine.verify("bkt", "t/2.zip").await.unwrap();
    assert!(!report.valid);
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_without_reference_hash_is_rejected() {
    let (dir, store, engine) = local_engine().await;
    two_versions(&engine, dir.path()).await;
    tamper(&store, "t/2.zip.delta", |_, meta| {
        meta.remove("dg-ref-sha256");
    })
    .await;
    assert_download_fails(&engine, dir.path(), "dg-ref-sha256").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_object_with_wrong_bytes_is_rejected() {
    let (dir, store, engine) = local_engine().await;
    engine
        .put_file(
            &write_file(dir.path(), "n.txt", b"original text"),
            "bkt",
            "t/2.zip",
            &opts().no_delta(true),
        )
        .await
        .unwrap();
    tamper(&store, "t/2.zip", |bytes, _| bytes[0] = b'O').await;
    assert_download_fails(&engine, dir.path(), "integrity check failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_representations_resolve_by_creation_time() {
    let (dir, store, engine) = local_engine().await;
    let v2 = two_versions(&engine, dir.path()).await;
    // A direct object written later by another tool, with an older timestamp: the delta wins.
    let older = DgMetadata::for_direct(
        "2.zip",
        &sha256_hex(b"old"),
        3,
        chrono::DateTime::from_timestamp(1_000_000_000, 0).unwrap(),
    );
    store
        .put_object(
            "bkt",
            "t/2.zip",
            PutSource::Bytes(Bytes::from_static(b"old")),
            PutOptions {
                metadata: older.to_user_metadata(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let out = dir.path().join("o");
    engine.get_to_file("bkt", "t/2.zip", &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), v2);
    let listing = engine.list("bkt", "t/", false).await.unwrap();
    let two: Vec<_> = listing
        .objects
        .iter()
        .filter(|o| o.key == "t/2.zip")
        .collect();
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].stored_as, StoredAs::Delta);
    // Without a timestamp on the direct object, the direct object wins (as in the Python tool).
    store
        .put_object(
            "bkt",
            "t/2.zip",
            PutSource::Bytes(Bytes::from_static(b"plain")),
            PutOptions::default(),
        )
        .await
        .unwrap();
    engine.get_to_file("bkt", "t/2.zip", &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_and_object_errors_are_typed() {
    let (dir, _store, engine) = local_engine().await;
    let f = write_file(dir.path(), "a.zip", b"abc");
    assert!(matches!(
        engine.put_file(&f, "nope-bucket", "a.zip", &opts()).await,
        Err(deltaglider::Error::NoSuchBucket(_))
    ));
    assert!(matches!(
        engine
            .get_to_file("nope-bucket", "a.zip", &dir.path().join("x"))
            .await,
        Err(deltaglider::Error::NoSuchBucket(_))
    ));
    assert!(matches!(
        engine
            .get_to_file("bkt", "a.zip", &dir.path().join("x"))
            .await,
        Err(deltaglider::Error::NotFound { .. })
    ));
    let missing = dir.path().join("missing.zip");
    let err = engine
        .put_file(&missing, "bkt", "a.zip", &opts())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing.zip"), "{err}");
}
