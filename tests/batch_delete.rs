//! Batch deletes (`rm -r`, `sync --delete`, `Client::delete_objects`) delete what a one-by-one
//! delete would, and nothing else: another tool's objects named like DeltaGlider's stored
//! forms are objects of their own name, and a reference is never deleted as a user key.

mod support;

use deltaglider::PutRequestOptions;
use deltaglider::StoredAs;
use deltaglider::storage::{ObjectStore, PutOptions, PutSource};
use support::{edited, local_engine, noise};
use tokio::io::AsyncReadExt;

/// An object written straight to the store, as another S3 client would.
async fn foreign(store: &dyn ObjectStore, key: &str) {
    let body = PutSource::Bytes(bytes::Bytes::from_static(b"another tool's bytes"));
    store
        .put_object("bkt", key, body, PutOptions::default())
        .await
        .unwrap();
}

async fn put(engine: &deltaglider::testing::Engine, key: &str, body: Vec<u8>) -> StoredAs {
    engine
        .put_reader(
            &body[..],
            key,
            None,
            "bkt",
            key,
            &PutRequestOptions::default(),
        )
        .await
        .unwrap()
        .stored_as
}

async fn bytes_of(engine: &deltaglider::testing::Engine, key: &str) -> Vec<u8> {
    let (_, mut reader) = engine.get_stream("bkt", key).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_dot_delta_object_is_deleted_alone() {
    let (_dir, store, engine) = local_engine().await;
    assert_eq!(
        put(&engine, "n/notes.txt", b"notes".to_vec()).await,
        StoredAs::Direct
    );
    foreign(&*store, "n/notes.txt.delta").await;
    let results = engine
        .delete_keys("bkt", &["n/notes.txt.delta".to_string()])
        .await;
    assert!(results[0].error.is_none(), "{results:?}");
    assert!(
        store
            .head_object("bkt", "n/notes.txt.delta")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(bytes_of(&engine, "n/notes.txt").await, b"notes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_looks_like_a_reference_delta_never_deletes_the_reference() {
    let (_dir, store, engine) = local_engine().await;
    let v1 = noise(400_000, 1);
    let v2 = edited(&v1, 2);
    put(&engine, "r/app-1.zip", v1).await;
    assert_eq!(
        put(&engine, "r/app-2.zip", v2.clone()).await,
        StoredAs::Delta
    );
    foreign(&*store, "r/reference.bin.delta").await;
    let results = engine
        .delete_keys(
            "bkt",
            &[
                "r/reference.bin.delta".to_string(),
                "r/reference.bin".to_string(),
            ],
        )
        .await;
    assert!(results[0].error.is_none(), "{results:?}");
    assert!(
        matches!(
            results[1].error,
            Some(deltaglider::Error::InvalidKey { .. })
        ),
        "{results:?}"
    );
    assert!(
        store
            .head_object("bkt", "r/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(bytes_of(&engine, "r/app-2.zip").await, v2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reference_that_cannot_be_checked_does_not_fail_the_deleted_keys() {
    let (_dir, store, engine) = local_engine().await;
    put(&engine, "w/readme.txt", b"read me".to_vec()).await;
    put(&engine, "w/notes.txt", b"notes".to_vec()).await;
    // Another tool's `reference.bin`: not a DeltaGlider reference, nothing to remove.
    foreign(&*store, "w/reference.bin").await;
    let keys = ["w/readme.txt".to_string(), "w/notes.txt".to_string()];
    let results = engine.delete_keys("bkt", &keys).await;
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    for k in &keys {
        assert!(store.head_object("bkt", k).await.unwrap().is_none());
    }
    assert!(
        store
            .head_object("bkt", "w/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_delta_of_a_batch_takes_its_reference_and_no_other() {
    let (_dir, store, engine) = local_engine().await;
    for space in ["a", "b"] {
        let v1 = noise(300_000, 3);
        put(&engine, &format!("{space}/x-1.zip"), v1.clone()).await;
        put(&engine, &format!("{space}/x-2.zip"), edited(&v1, 4)).await;
    }
    // Everything in `a/`, one object of `b/`, given twice and in both spellings.
    let keys: Vec<String> = ["a/x-1.zip", "a/x-2.zip", "b/x-1.zip", "b/x-1.zip"]
        .map(String::from)
        .to_vec();
    let results = engine.delete_keys("bkt", &keys).await;
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    assert!(
        store
            .head_object("bkt", "a/reference.bin")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .head_object("bkt", "b/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
    let left = engine.list("bkt", "", true).await.unwrap();
    let keys: Vec<&str> = left.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["b/x-2.zip"]);
}
