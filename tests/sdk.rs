//! The library as an application embeds it: `Client` on the local store and on S3.

mod support;

use std::time::Duration;

use deltaglider::PutRequestOptions;
use deltaglider::StatsMode;
use deltaglider::storage::ObjectStore;
use deltaglider::{Client, ListObjectsOptions, StoredAs};
use support::{edited, noise};
use tokio::io::AsyncReadExt;

async fn local_client() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .endpoint_url(format!("file://{}", dir.path().display()))
        .config_file("/dev/null")
        .build()
        .await
        .unwrap();
    client.create_bucket("bkt").await.unwrap();
    (dir, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_head_list_delete_with_metadata() {
    let (_dir, client) = local_client().await;
    let v1 = noise(300_000, 1);
    let v2 = edited(&v1, 2);
    let options = PutRequestOptions::default()
        .content_type("application/zip")
        .user_metadata("build-id", "42 ✓");
    let first = client
        .put_object("bkt", "p/a.zip", v1.clone(), &options)
        .await
        .unwrap();
    assert_eq!(first.stored_as, StoredAs::Delta);
    let second = client
        .put_object("bkt", "p/b.zip", v2.clone(), &options)
        .await
        .unwrap();
    assert!(
        second.stored_size < 20_000 && second.stored_size * 10 < second.original_size,
        "{second:?}"
    );
    assert_eq!(second.original_size, v2.len() as u64);
    assert!(first.created_reference && !second.created_reference);

    let head = client.head_object("bkt", "p/b.zip").await.unwrap();
    assert_eq!(head.user_metadata["build-id"], "42 ✓");
    assert_eq!(head.content_type.as_deref(), Some("application/zip"));

    let mut got = client.get_object("bkt", "p/b.zip").await.unwrap();
    let mut bytes = Vec::new();
    got.body.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes, v2);

    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> =
        Box::new(std::io::Cursor::new(b"streamed".to_vec()));
    client
        .put_object(
            "bkt",
            "p/s.txt",
            deltaglider::Body::Reader(reader),
            &Default::default(),
        )
        .await
        .unwrap();
    let listing = client
        .list_all_objects("bkt", "p/", &ListObjectsOptions::default().recursive(true))
        .await
        .unwrap();
    let keys: Vec<_> = listing
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    assert_eq!(
        keys,
        [
            ("p/a.zip", v1.len() as u64),
            ("p/b.zip", v2.len() as u64),
            ("p/s.txt", 8)
        ]
    );

    let stats = client.stats("bkt", "", StatsMode::Exact).await.unwrap();
    assert_eq!(stats.objects, 3);
    let copied = client
        .copy_object("bkt", "p/b.zip", "bkt", "q/b.zip", &Default::default())
        .await
        .unwrap();
    assert!(
        copied.created_reference,
        "a delta is rebuilt in its new deltaspace"
    );

    let results = client
        .delete_objects("bkt", &["p/a.zip", "p/missing.zip"])
        .await;
    let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["p/a.zip", "p/missing.zip"]);
    // As S3's DeleteObjects: an absent key is not an error.
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    assert!(matches!(
        client.head_object("bkt", "p/a.zip").await,
        Err(deltaglider::Error::NotFound { .. })
    ));
    assert_eq!(client.delete_prefix("bkt", "").await.unwrap(), 3);
    client.clear_cache().unwrap();
    client.delete_bucket("bkt").await.unwrap();
    assert!(client.list_buckets().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_metadata_keys_and_local_presign_are_clear_errors() {
    let (_dir, client) = local_client().await;
    let options = PutRequestOptions::default().user_metadata("bad key", "v");
    let err = client
        .put_object("bkt", "x.txt", b"x".to_vec(), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad key"), "{err}");
    client
        .put_object("bkt", "x.txt", b"x".to_vec(), &Default::default())
        .await
        .unwrap();
    let err = client
        .presigned_get_url("bkt", "x.txt", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("S3 endpoint"), "{err}");
    assert!(
        matches!(err, deltaglider::Error::Unsupported { .. }),
        "{err:?}"
    );
    // Capabilities are asked for, not faked: the local store has buckets, and no URLs.
    assert!(client.list_buckets().await.is_ok());
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_serve_verified_originals_and_purge_removes_expired_copies() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let client = Client::builder()
        .endpoint_url(&endpoint)
        .config_file("/dev/null")
        .build()
        .await
        .unwrap();
    let bucket = support::unique_bucket("sdk");
    client.create_bucket(&bucket).await.unwrap();
    let v1 = noise(500_000, 5);
    let v2 = edited(&v1, 6);
    client
        .put_object(&bucket, "r/a.zip", v1, &Default::default())
        .await
        .unwrap();
    client
        .put_object(&bucket, "r/b.zip", v2.clone(), &Default::default())
        .await
        .unwrap();
    client
        .put_object(&bucket, "r/n.txt", b"notes".to_vec(), &Default::default())
        .await
        .unwrap();

    let fetch = |url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sf", url])
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET {url} failed");
        out.stdout
    };
    let signed = client
        .presigned_get_url(&bucket, "r/b.zip", Duration::from_secs(120))
        .await
        .unwrap();
    assert!(signed.rehydrated && signed.served_key.starts_with(".deltaglider/tmp/"));
    assert_eq!(fetch(&signed.url), v2);
    let again = client
        .presigned_get_url(&bucket, "r/b.zip", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!again.rehydrated, "a still-valid rehydrated copy is reused");
    let direct = client
        .presigned_get_url(&bucket, "r/n.txt", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(fetch(&direct.url), b"notes");
    // Hidden from listings.
    let listing = client
        .list_all_objects(&bucket, "", &ListObjectsOptions::default().recursive(true))
        .await
        .unwrap();
    assert_eq!(listing.objects.len(), 3);

    // Nothing is expired yet; make the copy expire and purge it.
    assert!(client.purge(&bucket).await.unwrap().deleted.is_empty());
    let store = support::s3_store(&endpoint).await;
    let mut meta = client
        .head_stored_object(&bucket, &signed.served_key)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .unwrap();
    meta.insert("dg-expires-at".into(), "2000-01-01T00:00:00Z".into());
    let body = client
        .get_object(&bucket, &signed.served_key)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut reader = body.body;
    reader.read_to_end(&mut bytes).await.unwrap();
    store
        .put_object(
            &bucket,
            &signed.served_key,
            deltaglider::storage::PutSource::Bytes(bytes.into()),
            deltaglider::storage::PutOptions {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let purged = client.purge(&bucket).await.unwrap();
    assert_eq!(purged.deleted, std::slice::from_ref(&signed.served_key));
    client.delete_prefix(&bucket, "").await.unwrap();
    client.delete_bucket(&bucket).await.unwrap();
}

/// A caller's own AWS SDK configuration, and a caller's own SDK client, against the server:
/// uploads store deltas and downloads come back verified.
#[tokio::test(flavor = "multi_thread")]
async fn clients_over_a_callers_sdk_config_and_sdk_client_store_and_verify() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    let clients = [
        Client::builder().config_file("/dev/null").sdk_config(&sdk),
        Client::builder().config_file("/dev/null").s3_client(s3),
    ];
    for (i, builder) in clients.into_iter().enumerate() {
        let client = builder.build().await.unwrap();
        let bucket = support::unique_bucket(&format!("sdkcfg{i}"));
        client.create_bucket(&bucket).await.unwrap();
        let v1 = noise(300_000, 21);
        let v2 = edited(&v1, 22);
        client
            .put_object(&bucket, "a/v1.zip", v1, &Default::default())
            .await
            .unwrap();
        let second = client
            .put_object(&bucket, "a/v2.zip", v2.clone(), &Default::default())
            .await
            .unwrap();
        assert_eq!(second.stored_as, StoredAs::Delta, "client {i}");
        let mut got = client.get_object(&bucket, "a/v2.zip").await.unwrap();
        let mut bytes = Vec::new();
        got.body.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes == v2, "client {i}: rebuilt bytes differ");
        client.delete_prefix(&bucket, "").await.unwrap();
        client.delete_bucket(&bucket).await.unwrap();
    }
}

/// Ranged reads of objects stored whole come from the backend by range, on the local store
/// and on S3; a delta has no stored bytes to read by range, and a range past the end fails.
#[tokio::test(flavor = "multi_thread")]
async fn ranges_of_whole_objects_are_read_from_the_backend() {
    let (_dir, local) = local_client().await;
    let mut clients = vec![("local", "bkt".to_string(), local)];
    if let Some(endpoint) = support::s3_endpoint() {
        let s3 = Client::builder()
            .endpoint_url(endpoint)
            .config_file("/dev/null")
            .build()
            .await
            .unwrap();
        let bucket = support::unique_bucket("ranges");
        s3.create_bucket(&bucket).await.unwrap();
        clients.push(("s3", bucket, s3));
    }
    for (name, bucket, client) in clients {
        let data = noise(1_000_003, 31);
        client
            .put_object(&bucket, "r/whole.txt", data.clone(), &Default::default())
            .await
            .unwrap();
        let details = client.head_object(&bucket, "r/whole.txt").await.unwrap();
        assert_ne!(details.stored_as, StoredAs::Delta, "{name}");
        for (start, end) in [
            (0u64, 1u64),
            (0, 1_000_003),
            (999_999, 1_000_003),
            (4096, 700_001),
        ] {
            let mut body = client
                .get_whole_object_range(&details, start..end)
                .await
                .unwrap();
            let mut got = Vec::new();
            body.read_to_end(&mut got).await.unwrap();
            assert!(
                got == data[start as usize..end as usize],
                "{name} {start}..{end}"
            );
        }
        assert!(
            client
                .get_whole_object_range(&details, 5..1_000_004)
                .await
                .is_err(),
            "{name}: past the end"
        );
        // Replaced since it was described (by as many other bytes, or fewer): its bytes are
        // not read under the old description, and a range past the new end is no bad range.
        for (replacement, range) in [(noise(1_000_003, 33), 0..10), (noise(1000, 34), 5000..6000)] {
            let before = client.head_object(&bucket, "r/whole.txt").await.unwrap();
            client
                .put_object(&bucket, "r/whole.txt", replacement, &Default::default())
                .await
                .unwrap();
            let e = client
                .get_whole_object_range(&before, range)
                .await
                .err()
                .unwrap();
            assert!(
                matches!(e, deltaglider::Error::ObjectChanged { .. }),
                "{name}: {e}"
            );
        }
        let now = client.head_object(&bucket, "r/whole.txt").await.unwrap();
        assert!(
            client.get_whole_object_range(&now, 0..10).await.is_ok(),
            "{name}"
        );
        client
            .put_object(&bucket, "d/a.zip", noise(100_000, 32), &Default::default())
            .await
            .unwrap();
        let delta = client.head_object(&bucket, "d/a.zip").await.unwrap();
        assert_eq!(delta.stored_as, StoredAs::Delta, "{name}");
        let e = client
            .get_whole_object_range(&delta, 0..10)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, deltaglider::Error::Unsupported { .. }),
            "{name}: {e}"
        );
    }
}
