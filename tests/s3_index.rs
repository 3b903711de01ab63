//! The listing index on the S3 server (docs/format.md, "Listing index"): a listing gives
//! every delta's original size without a HEAD per delta, and a delta changed behind the
//! index (other bytes, or the same bytes with new metadata) is described by its HEAD, never
//! by a stale entry. Concurrent writers and interrupted merges lose no entry.
//!
//! Every test holds the failpoint scenario: failpoints are global to the process, so the
//! tests of this file run one at a time.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use deltaglider::cache::StoreCache;
use deltaglider::codec::NativeCodec;
use deltaglider::storage::{
    CopyOptions, ListRequest, ObjectStore, PutOptions, PutSource, ReplacedMetadata, bucket_admin,
};
use deltaglider::testing::{Engine, EngineSettings};
use deltaglider::{ListObjectsOptions, PutRequestOptions, StatsMode, StoredAs};
use support::counting::Counting;
use support::{edited, noise, unique_bucket, write_file};

const SPACE: &str = "rel";
const SEGMENTS: &str = ".deltaglider/index/ds-rel/";

fn engine(store: Arc<dyn ObjectStore>) -> Engine {
    Engine::new(
        store,
        Arc::new(NativeCodec::default()),
        Arc::new(StoreCache::private(None).unwrap()),
        EngineSettings::default(),
    )
}

/// A bucket on the S3 server and a store over it, or `None` without a server.
async fn s3(tag: &str) -> Option<(Arc<dyn ObjectStore>, String)> {
    let endpoint = support::s3_endpoint()?;
    let store: Arc<dyn ObjectStore> = support::s3_store(&endpoint).await;
    let bucket = unique_bucket(tag);
    bucket_admin(store.as_ref())
        .unwrap()
        .create_bucket(&bucket)
        .await
        .unwrap();
    Some((store, bucket))
}

/// Runs `work` to its end as another process would, from inside a failpoint callback
/// (which holds the task that reached it): on a thread of its own, with its own runtime
/// and its own connection to the server.
fn as_another_process<F, Fut>(work: F)
where
    F: FnOnce(Arc<dyn ObjectStore>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let endpoint = support::s3_endpoint().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store: Arc<dyn ObjectStore> = support::s3_store(&endpoint).await;
            work(store).await
        })
    })
    .join()
    .unwrap();
}

/// Version `i` of the artifact: one base, edited, and `i * 7` bytes longer than version 0
/// so that every version's original size is its own.
fn version(i: u64) -> Vec<u8> {
    let mut v = edited(&noise(96 << 10, 7), i);
    v.extend(std::iter::repeat_n(i as u8, i as usize * 7));
    v
}

/// Uploads versions `range` as `rel/app-<i>.zip`; returns their original sizes by key.
async fn upload(
    engine: &Engine,
    dir: &Path,
    bucket: &str,
    range: std::ops::Range<u64>,
) -> BTreeMap<String, u64> {
    let mut sizes = BTreeMap::new();
    for i in range {
        let key = format!("{SPACE}/app-{i}.zip");
        let bytes = version(i);
        let path = write_file(dir, &format!("app-{i}.zip"), &bytes);
        let report = engine
            .put_file(&path, bucket, &key, &PutRequestOptions::default())
            .await
            .unwrap();
        assert_eq!(report.stored_as, StoredAs::Delta, "{key}");
        sizes.insert(key, bytes.len() as u64);
    }
    sizes
}

/// The segment objects of `rel`'s index.
async fn segments(store: &dyn ObjectStore, bucket: &str) -> Vec<String> {
    let page = store
        .list_objects(
            bucket,
            &ListRequest {
                prefix: SEGMENTS.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

/// Lists `rel/` through a counting store: the original sizes by key, and the HEADs made.
async fn listed(store: &Arc<dyn ObjectStore>, bucket: &str) -> (BTreeMap<String, u64>, u64, u64) {
    let (counting, counts) = Counting::over(store.clone());
    let listing = engine(counting)
        .list(bucket, &format!("{SPACE}/"), true)
        .await
        .unwrap();
    let sizes = listing
        .objects
        .iter()
        .map(|o| {
            assert_eq!(o.stored_as, StoredAs::Delta, "{}", o.key);
            (o.key.clone(), o.size)
        })
        .collect();
    (sizes, counts.heads(), counts.total())
}

#[tokio::test]
async fn listings_and_stats_take_original_sizes_from_the_index() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-sizes").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let sizes = upload(&writer, dir.path(), &bucket, 0..20).await;

    // one segment per upload, merged whenever a writer sees more than eight
    let stored = segments(store.as_ref(), &bucket).await;
    assert!(
        (1..=9).contains(&stored.len()),
        "20 uploads left {} segments: {stored:?}",
        stored.len()
    );

    let (got, heads, total) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(heads, 0, "the index describes every delta");
    // the listing, the index's listing, and one GET per segment
    assert!(total <= 2 + stored.len() as u64, "{total} requests");

    // The SDK's listing, which `serve` answers ListObjects with, page by page: the index is
    // read once for the whole listing, not once per page.
    let (counting, counts) = Counting::over(store.clone());
    let client = support::client_over(counting).await;
    let options = ListObjectsOptions::default().recursive(true).page_size(6);
    let mut pages = client.list_objects(&bucket, &format!("{SPACE}/"), &options);
    let mut paged = BTreeMap::new();
    while let Some(page) = pages.try_next().await.unwrap() {
        paged.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
    }
    assert_eq!(paged, sizes);
    assert_eq!(counts.heads(), 0);
    // 21 keys (the reference among them) in pages of 6, and the index's listing
    assert_eq!(counts.lists(), 4 + 1);
    assert!(
        counts.gets() <= stored.len() as u64,
        "{} GETs",
        counts.gets()
    );

    let (counting, counts) = Counting::over(store.clone());
    let stats = engine(counting)
        .stats(&bucket, "", StatsMode::Exact)
        .await
        .unwrap();
    assert_eq!(stats.original_bytes, sizes.values().sum::<u64>());
    assert!(!stats.estimated);
    assert_eq!(counts.heads(), 1, "only the bucket's existence is asked");

    // the index is internal: neither a prefix of the bucket's listing nor an object
    let root = writer.list(&bucket, "", false).await.unwrap();
    assert_eq!(root.prefixes, [format!("{SPACE}/")]);
    assert!(root.objects.is_empty());

    // the deltaspace deleted, its index goes with it
    for key in sizes.keys() {
        writer.delete(&bucket, key).await.unwrap();
    }
    assert_eq!(
        segments(store.as_ref(), &bucket).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_delta_changed_behind_the_index_is_described_by_its_head() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-stale").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let mut sizes = upload(&writer, dir.path(), &bucket, 0..6).await;
    // S3 times objects to the second: what changes next is visibly later than the index
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // other bytes under a delta's key, as another tool would write them
    let other = format!("{SPACE}/app-1.zip.delta");
    let mut metadata = store
        .head_object(&bucket, &other)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .unwrap();
    metadata.insert("dg-file-size".into(), "777".into());
    store
        .put_object(
            &bucket,
            &other,
            PutSource::Bytes(b"not the delta that was indexed".to_vec().into()),
            PutOptions {
                metadata,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sizes.insert(format!("{SPACE}/app-1.zip"), 777);

    // the same bytes with new metadata: same tag and size, only the time tells
    let copied = format!("{SPACE}/app-2.zip.delta");
    let mut metadata = store
        .head_object(&bucket, &copied)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .unwrap();
    metadata.insert("dg-file-size".into(), "888".into());
    store
        .copy_object(
            &bucket,
            &copied,
            &bucket,
            &copied,
            CopyOptions {
                replace: Some(ReplacedMetadata {
                    metadata,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sizes.insert(format!("{SPACE}/app-2.zip"), 888);

    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(heads, 2, "exactly the two changed deltas are asked for");

    // a version written again is indexed again
    let again = upload(&writer, dir.path(), &bucket, 2..3).await;
    sizes.extend(again);
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(heads, 1, "only the delta rewritten by another tool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_right_after_our_write_is_not_indexed_as_ours() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-rewrite").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let mut sizes = upload(&writer, dir.path(), &bucket, 0..3).await;
    // Between the delta's PUT and the HEAD that describes it for the index, another tool
    // rewrites its metadata (same bytes, same tag).
    let b = bucket.clone();
    fail::cfg_callback("index::before_head", move || {
        let b = b.clone();
        as_another_process(move |store| async move {
            let key = format!("{SPACE}/app-3.zip.delta");
            let mut metadata = store
                .head_object(&b, &key)
                .await
                .unwrap()
                .unwrap()
                .metadata
                .unwrap();
            metadata.insert("dg-file-size".into(), "999".into());
            let replace = CopyOptions {
                replace: Some(ReplacedMetadata {
                    metadata,
                    ..Default::default()
                }),
                ..Default::default()
            };
            store
                .copy_object(&b, &key, &b, &key, replace)
                .await
                .unwrap();
        });
    })
    .unwrap();
    upload(&writer, dir.path(), &bucket, 3..4).await;
    fail::remove("index::before_head");
    sizes.insert(format!("{SPACE}/app-3.zip"), 999);
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(
        heads, 1,
        "the rewritten delta is asked for, the others are not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_no_entry() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-writers").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = upload(&engine(store.clone()), dir.path(), &bucket, 0..1).await;
    // two processes, each uploading three at a time: segments of both, merges racing
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (store, bucket) = (store.clone(), bucket.clone());
            let dir = dir.path().join(format!("w{w}"));
            std::fs::create_dir_all(&dir).unwrap();
            tokio::spawn(async move {
                let engine = engine(store);
                let uploads = (0..12u64).map(|j| {
                    let (engine, bucket, dir) = (engine.clone(), bucket.clone(), dir.clone());
                    let i = 1 + w * 12 + j;
                    async move { upload(&engine, &dir, &bucket, i..i + 1).await }
                });
                futures::stream::iter(uploads)
                    .buffer_unordered(3)
                    .collect::<Vec<_>>()
                    .await
            })
        })
        .collect();
    for w in writers {
        for s in w.await.unwrap() {
            sizes.extend(s);
        }
    }
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got.len(), 25);
    assert_eq!(got, sizes);
    assert_eq!(heads, 0, "every writer's entries are in the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_written_during_a_merge_is_kept() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-merge-race").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let mut sizes = upload(&writer, dir.path(), &bucket, 0..8).await;
    assert_eq!(segments(store.as_ref(), &bucket).await.len(), 8);

    // The ninth upload merges. While it holds the segments it read, another process
    // uploads (and merges what it sees, the merging one's segments included).
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let held = AtomicBool::new(false);
    let (b, d) = (bucket.clone(), other_dir.clone());
    fail::cfg_callback("index::before_merge_write", move || {
        if held.swap(true, Ordering::SeqCst) {
            return;
        }
        let (b, d) = (b.clone(), d.clone());
        as_another_process(move |store| async move {
            upload(&engine(store), &d, &b, 20..21).await;
        });
    })
    .unwrap();
    sizes.extend(upload(&writer, dir.path(), &bucket, 8..9).await);
    fail::remove("index::before_merge_write");
    sizes.insert(format!("{SPACE}/app-20.zip"), version(20).len() as u64);

    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(
        heads, 0,
        "the segment written during the merge was not deleted with it"
    );
}

/// Stores `dst` as a server-side copy of the delta `src`, and a segment of its own that
/// describes it, as a writer that never merges would (an older build, or one whose merges
/// fail): raw objects in the layout of docs/format.md.
async fn foreign_entry(store: &dyn ObjectStore, bucket: &str, src: &str, dst: &str) {
    store
        .copy_object(bucket, src, bucket, dst, CopyOptions::default())
        .await
        .unwrap();
    let request = ListRequest {
        prefix: dst.into(),
        ..Default::default()
    };
    let listed = store
        .list_objects(bucket, &request)
        .await
        .unwrap()
        .objects
        .remove(0);
    let mut metadata = store
        .head_object(bucket, dst)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .unwrap();
    metadata.retain(|k, _| k.starts_with("dg-file-") || k == "dg-created-at" || k == "dg-tool");
    let segment = serde_json::json!({
        "deltaglider-index": 1,
        "entries": [{
            "name": dst.rsplit('/').next().unwrap(),
            "etag": listed.etag.unwrap().trim_matches('"'),
            "size": listed.size,
            "modified": listed.last_modified.unwrap(),
            "metadata": metadata,
        }],
    });
    store
        .put_object(
            bucket,
            &format!("{SEGMENTS}0000000000001-00000000000000ff/reference.bin"),
            PutSource::Bytes(serde_json::to_vec(&segment).unwrap().into()),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_deletes_only_the_segments_it_read() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-merge-foreign").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let mut sizes = upload(&writer, dir.path(), &bucket, 0..8).await;

    // While the ninth upload merges what it read, a writer that does not merge adds a
    // segment: the merge must leave it.
    let b = bucket.clone();
    fail::cfg_callback("index::before_merge_write", move || {
        let b = b.clone();
        as_another_process(move |store| async move {
            let (src, dst) = (
                format!("{SPACE}/app-0.zip.delta"),
                format!("{SPACE}/app-20.zip.delta"),
            );
            foreign_entry(store.as_ref(), &b, &src, &dst).await;
        });
    })
    .unwrap();
    sizes.extend(upload(&writer, dir.path(), &bucket, 8..9).await);
    fail::remove("index::before_merge_write");
    sizes.insert(format!("{SPACE}/app-20.zip"), version(0).len() as u64);

    // the merged segment and the foreign one
    assert_eq!(segments(store.as_ref(), &bucket).await.len(), 2);
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(
        heads, 0,
        "the segment written during the merge was deleted with it"
    );
}

#[tokio::test]
async fn an_interrupted_merge_loses_nothing_and_is_finished_by_the_next_writer() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-merge-crash").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = engine(store.clone());
    let mut sizes = upload(&writer, dir.path(), &bucket, 0..8).await;
    // the merging writer stops after storing the merged segment, before deleting the rest
    fail::cfg("index::after_merge_write", "return").unwrap();
    sizes.extend(upload(&writer, dir.path(), &bucket, 8..9).await);
    fail::remove("index::after_merge_write");
    assert_eq!(segments(store.as_ref(), &bucket).await.len(), 10);
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(heads, 0);

    // the upload itself succeeded; the next writer merges everything left
    sizes.extend(upload(&writer, dir.path(), &bucket, 9..10).await);
    assert_eq!(segments(store.as_ref(), &bucket).await.len(), 1);
    let (got, heads, _) = listed(&store, &bucket).await;
    assert_eq!(got, sizes);
    assert_eq!(heads, 0);
}

/// A tree upload asks the store little per file: the bucket once, the deltaspace's format
/// and reference once (then from what the last upload's checks saw), and per file the PUT,
/// the reference's check after it, the other form and one HEAD of the delta written (which
/// is both the check that it is still there and its index entry); the index's segments are
/// shared by the uploads under way.
#[tokio::test(flavor = "multi_thread")]
async fn a_tree_upload_makes_few_requests_per_file() {
    let _scenario = fail::FailScenario::setup();
    let Some((store, bucket)) = s3("index-tree").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = 40u64;
    for i in 0..files {
        write_file(dir.path(), &format!("app-{i}.zip"), &version(i));
    }
    let (counting, counts) = Counting::over(store.clone());
    let client = support::client_over(counting).await;
    let options = deltaglider::TransferOptions::default();
    let summary = client
        .upload_dir(dir.path(), &bucket, &format!("{SPACE}/"), &options)
        .await
        .unwrap();
    assert_eq!(summary.failed, 0, "{summary:?}");
    let (heads, puts) = (counts.heads(), counts.puts.load(Ordering::SeqCst));
    // Per file: three HEADs, and a fourth for the reference while the first uploads (16
    // in flight) have seen none; before, seven (bucket, both references' keys, the
    // reference again after the write, the other form, the delta twice).
    eprintln!(
        "{heads} HEADs, {puts} PUTs, {} requests for {files} files",
        counts.total()
    );
    assert!(
        heads <= 3 * files + 16 + 2,
        "{heads} HEADs for {files} files"
    );
    // the deltas and the reference, and fewer segments than files
    assert!(
        puts <= files + 1 + files / 2,
        "{puts} PUTs for {files} files"
    );

    let (got, listing_heads, _) = listed(&store, &bucket).await;
    assert_eq!(got.len() as u64, files);
    assert_eq!(listing_heads, 0, "every delta of the tree is indexed");
}
