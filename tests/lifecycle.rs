//! Every acknowledged upload stays recoverable under the interleavings of writers, deleters
//! and crashes that docs/format.md ("Lifecycle") is written for. Each test drives one
//! interleaving deterministically with failpoints (compiled into test builds only): a task
//! is held at a named step until the test lets it go, or fails there as a crash would. Each
//! runs on the local store and on the S3 server.
//!
//! Two engines over one store stand for two processes: each has its own private cache.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deltaglider::StorageFormat;
use deltaglider::cache::StoreCache;
use deltaglider::codec::NativeCodec;
use deltaglider::storage::ObjectStore;
use deltaglider::storage::bucket_admin;
use deltaglider::storage::local::LocalStore;
use deltaglider::testing::{Engine, EngineSettings};
use deltaglider::{Error, StoredAs};
use support::{edited, noise, unique_bucket, write_file};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Holds the first `count` tasks that reach failpoint `name`, each until it is released by
/// the number of its arrival (0 for the first).
struct Gate {
    reached: Receiver<usize>,
    releases: Vec<Sender<()>>,
}

impl Gate {
    fn new(name: &str, count: usize) -> Gate {
        let (reached_tx, reached) = channel();
        let (releases, waits): (Vec<_>, Vec<_>) = (0..count).map(|_| channel::<()>()).unzip();
        let waits = Mutex::new(waits.into_iter().map(Some).collect::<Vec<_>>());
        let reached_tx = Mutex::new(reached_tx);
        let arrivals = AtomicUsize::new(0);
        fail::cfg_callback(name, move || {
            let i = arrivals.fetch_add(1, Ordering::SeqCst);
            let Some(wait) = waits.lock().unwrap().get_mut(i).and_then(Option::take) else {
                return;
            };
            reached_tx.lock().unwrap().send(i).unwrap();
            // a test that never releases fails by its watchdog, not by hanging here
            let _ = wait.recv_timeout(WATCHDOG);
        })
        .unwrap();
        Gate { reached, releases }
    }

    /// Waits until one more task is held at the gate.
    fn wait(&self) {
        self.reached
            .recv_timeout(WATCHDOG)
            .expect("no task reached the failpoint");
    }

    /// Lets the `i`-th arrival go on.
    fn release(&self, i: usize) {
        self.releases[i].send(()).unwrap();
    }
}

/// Ends a test's interleaving: every failpoint back to doing nothing, while the test still
/// holds its scenario (the lock that runs one scenario at a time) until its iteration ends.
/// Dropping the scenario here instead would let the test's later sweeps and reads hit the
/// failpoints another test has just set up (a gate taken by the wrong deleter).
fn settle(_scenario: &fail::FailScenario<'_>) {
    for (name, _) in fail::list() {
        fail::remove(name);
    }
}

/// Two engines ("processes") over the same store, with a bucket made for the test.
struct World {
    a: Engine,
    b: Engine,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    dir: tempfile::TempDir,
    _local: Option<tempfile::TempDir>,
}

fn engine(store: Arc<dyn ObjectStore>) -> Engine {
    engine_in(store, StorageFormat::Compatible)
}

fn engine_in(store: Arc<dyn ObjectStore>, format: StorageFormat) -> Engine {
    Engine::new(
        store,
        Arc::new(NativeCodec::default()),
        Arc::new(StoreCache::private(None).unwrap()),
        EngineSettings {
            format,
            ..EngineSettings::default()
        },
    )
}

async fn worlds(tag: &str) -> Vec<World> {
    worlds_in(tag, StorageFormat::Compatible).await
}

/// The worlds of [`worlds`], their engines creating deltaspaces of `format`.
async fn worlds_in(tag: &str, format: StorageFormat) -> Vec<World> {
    let mut out = Vec::new();
    let local = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(local.path().join("s")).unwrap());
    out.push((store, Some(local)));
    if let Some(endpoint) = support::s3_endpoint() {
        let s3: Arc<dyn ObjectStore> = support::s3_store(&endpoint).await;
        out.push((s3, None));
    }
    let mut worlds = Vec::new();
    for (store, local) in out {
        let bucket = unique_bucket(tag);
        bucket_admin(&*store)
            .unwrap()
            .create_bucket(&bucket)
            .await
            .unwrap();
        worlds.push(World {
            a: engine_in(store.clone(), format),
            b: engine_in(store.clone(), format),
            store,
            bucket,
            dir: tempfile::tempdir().unwrap(),
            _local: local,
        });
    }
    worlds
}

impl World {
    fn file(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        write_file(self.dir.path(), name, bytes)
    }

    /// Downloads `key` with a third, fresh engine (no warm cache) and compares it.
    async fn assert_recoverable(&self, key: &str, expected: &[u8]) {
        let reader = engine(self.store.clone());
        let out = self.dir.path().join("check.out");
        reader
            .get_to_file(&self.bucket, key, &out)
            .await
            .unwrap_or_else(|e| {
                panic!("{} s3://{}/{key}: {e}", self.store.describe(), self.bucket)
            });
        assert_eq!(std::fs::read(&out).unwrap(), expected, "bytes of {key}");
    }

    /// Writes an empty object at `key`, as another process's deleter lease would be.
    async fn plant(&self, key: &str) {
        self.store
            .put_object(
                &self.bucket,
                key,
                deltaglider::storage::PutSource::Bytes(Default::default()),
                Default::default(),
            )
            .await
            .unwrap();
    }

    async fn exists(&self, key: &str) -> bool {
        self.store
            .head_object(&self.bucket, key)
            .await
            .unwrap()
            .is_some()
    }

    async fn keys(&self) -> Vec<String> {
        let page = self
            .store
            .list_objects(&self.bucket, &Default::default())
            .await
            .unwrap();
        page.objects.into_iter().map(|o| o.key).collect()
    }

    /// Internal objects left behind (retired copies, leases), the listing index aside: it
    /// stays while its deltaspace has deltas.
    async fn leftovers(&self) -> Vec<String> {
        self.keys()
            .await
            .into_iter()
            .filter(|k| k.starts_with(".deltaglider/") && !k.starts_with(".deltaglider/index/"))
            .collect()
    }
}

fn v1() -> Vec<u8> {
    noise(300_000, 1)
}

fn v2() -> Vec<u8> {
    edited(&v1(), 2)
}

fn v3() -> Vec<u8> {
    edited(&v1(), 3)
}

async fn put(e: &Engine, w: &World, path: &Path, key: &str) -> deltaglider::PutReport {
    e.put_file(path, &w.bucket, key, &Default::default())
        .await
        .unwrap_or_else(|err| panic!("upload {key}: {err}"))
}

type Task<T> = tokio::task::JoinHandle<deltaglider::Result<T>>;

/// Starts an upload by `e` that runs on while the test drives the others.
fn spawn_put(
    e: &Engine,
    w: &World,
    path: &Path,
    key: &str,
    options: deltaglider::PutRequestOptions,
) -> Task<deltaglider::PutReport> {
    let (e, path, bucket, key) = (
        e.clone(),
        path.to_path_buf(),
        w.bucket.clone(),
        key.to_string(),
    );
    tokio::spawn(async move { e.put_file(&path, &bucket, &key, &options).await })
}

/// Starts a delete by `e` that runs on while the test drives the others.
fn spawn_delete(e: &Engine, w: &World, key: &str) -> Task<deltaglider::DeleteReport> {
    let (e, bucket, key) = (e.clone(), w.bucket.clone(), key.to_string());
    tokio::spawn(async move { e.delete(&bucket, &key).await })
}

/// The two releases of the races below, the first already stored (so its deltaspace has a
/// reference and one delta).
async fn first_stored(w: &World) -> (std::path::PathBuf, std::path::PathBuf) {
    let (f1, f2) = (w.file("app-1.zip", &v1()), w.file("app-2.zip", &v2()));
    put(&w.a, w, &f1, "rel/app-1.zip").await;
    (f1, f2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_first_writer_never_deletes_the_reference_another_writer_uses() {
    for w in worlds("lc-first").await {
        let scenario = fail::FailScenario::setup();
        let (f1, f2) = (w.file("app-1.zip", &v1()), w.file("app-2.zip", &v2()));
        let gate = Gate::new("put::after_reference_create", 1);
        let first = spawn_put(&w.a, &w, &f1, "rel/app-1.zip", Default::default());
        gate.wait();
        // the second writer finds the reference and stores its delta against it: exit 0
        let second = put(&w.b, &w, &f2, "rel/app-2.zip").await;
        assert_eq!(second.stored_as, StoredAs::Delta);
        // then the first writer fails before writing its delta
        fail::cfg("put::before_delta_write", "return").unwrap();
        gate.release(0);
        let err = first.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("failpoint"), "{err}");
        settle(&scenario);
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        assert!(!w.exists("rel/app-1.zip.delta").await);
    }
}

/// The same race in a new compact deltaspace: its reference is `reference.dgx`, made and kept
/// by the same rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_first_uploads_racing_leave_both_recoverable() {
    for w in worlds_in("lc-compact", StorageFormat::Compact).await {
        let scenario = fail::FailScenario::setup();
        let (f1, f2) = (w.file("app-1.zip", &v1()), w.file("app-2.zip", &v2()));
        let gate = Gate::new("put::after_reference_create", 1);
        let first = spawn_put(&w.a, &w, &f1, "rel/app-1.zip", Default::default());
        gate.wait();
        let second = put(&w.b, &w, &f2, "rel/app-2.zip").await;
        assert_eq!(second.stored_as, StoredAs::Delta);
        assert!(
            !second.created_reference,
            "the first writer made the reference"
        );
        gate.release(0);
        let first = first.await.unwrap().unwrap();
        assert!(first.created_reference);
        settle(&scenario);
        w.assert_recoverable("rel/app-1.zip", &v1()).await;
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        let keys = w.keys().await;
        assert!(keys.contains(&"rel/reference.dgx".to_string()), "{keys:?}");
        assert!(!keys.contains(&"rel/reference.bin".to_string()), "{keys:?}");
        // the last delete removes the compact reference by the deleter's rule
        w.a.delete(&w.bucket, "rel/app-1.zip").await.unwrap();
        w.a.delete(&w.bucket, "rel/app-2.zip").await.unwrap();
        assert!(!w.exists("rel/reference.dgx").await, "{:?}", w.keys().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rm_of_the_last_delta_racing_a_new_upload_keeps_the_reference() {
    for w in worlds("lc-rm1").await {
        let scenario = fail::FailScenario::setup();
        let (_, f2) = first_stored(&w).await;
        // the deleter has seen no other delta and is about to remove the reference...
        let gate = Gate::new("delete::after_check", 1);
        let rm = spawn_delete(&w.a, &w, "rel/app-1.zip");
        gate.wait();
        // ...when an upload stores a delta against it and is acknowledged
        assert_eq!(
            put(&w.b, &w, &f2, "rel/app-2.zip").await.stored_as,
            StoredAs::Delta
        );
        gate.release(0);
        let report = rm.await.unwrap().unwrap();
        assert_eq!(report.reference_removed, None, "the reference is in use");
        settle(&scenario);
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        assert!(w.exists("rel/reference.bin").await);
        assert!(
            !w.keys()
                .await
                .iter()
                .any(|k| k.starts_with(".deltaglider/retired/")),
            "a retired copy was left behind: {:?}",
            w.keys().await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_delete_of_the_last_delta_racing_a_new_upload_keeps_the_reference() {
    for w in worlds("lc-rmb").await {
        let scenario = fail::FailScenario::setup();
        let (_, f2) = first_stored(&w).await;
        // the batch deleter (rm -r, sync --delete) has seen no other delta...
        let gate = Gate::new("delete::after_check", 1);
        let (e, bucket) = (w.a.clone(), w.bucket.clone());
        let rm =
            tokio::spawn(
                async move { e.delete_keys(&bucket, &["rel/app-1.zip".to_string()]).await },
            );
        gate.wait();
        // ...when an upload stores a delta against the reference and is acknowledged
        assert_eq!(
            put(&w.b, &w, &f2, "rel/app-2.zip").await.stored_as,
            StoredAs::Delta
        );
        gate.release(0);
        let results = rm.await.unwrap();
        assert!(results[0].error.is_none(), "{results:?}");
        settle(&scenario);
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        assert!(!w.exists("rel/app-1.zip.delta").await);
        assert!(w.exists("rel/reference.bin").await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reference_removed_under_a_delta_being_written_is_restored_by_the_writer() {
    reference_removed_under_a_delta_is_restored(
        "lc-rm2",
        StorageFormat::Compatible,
        "reference.bin",
    )
    .await;
}

/// The compact reference is held as its expanded form: the writer restores it as its xz.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compact_reference_removed_under_a_delta_being_written_is_restored_by_the_writer() {
    reference_removed_under_a_delta_is_restored("lc-rm2c", StorageFormat::Compact, "reference.dgx")
        .await;
}

async fn reference_removed_under_a_delta_is_restored(
    tag: &str,
    format: StorageFormat,
    reference: &str,
) {
    for w in worlds_in(tag, format).await {
        let scenario = fail::FailScenario::setup();
        let (_, f2) = first_stored(&w).await;
        // the writer holds the verified reference and has encoded its delta...
        let gate = Gate::new("put::before_delta_write", 1);
        let upload = spawn_put(&w.b, &w, &f2, "rel/app-2.zip", Default::default());
        gate.wait();
        // ...when the last other delta is deleted, and with it the reference
        let report = w.a.delete(&w.bucket, "rel/app-1.zip").await.unwrap();
        assert_eq!(
            report.reference_removed.as_deref(),
            Some(format!("rel/{reference}").as_str())
        );
        gate.release(0);
        let stored = upload.await.unwrap().unwrap();
        assert_eq!(stored.stored_as, StoredAs::Delta);
        settle(&scenario);
        assert!(
            w.exists(&format!("rel/{reference}")).await,
            "the writer restores the reference"
        );
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_into_a_space_whose_reference_was_just_deleted_makes_a_new_one() {
    for w in worlds("lc-rm3").await {
        let scenario = fail::FailScenario::setup();
        let (_, f2) = first_stored(&w).await;
        // the deleter has removed the reference and has not looked for deltas again yet...
        let gate = Gate::new("delete::after_reference_delete", 1);
        let rm = spawn_delete(&w.a, &w, "rel/app-1.zip");
        gate.wait();
        // ...when a new upload finds no reference and becomes the first of the deltaspace
        let stored = put(&w.b, &w, &f2, "rel/app-2.zip").await;
        assert!(stored.created_reference);
        gate.release(0);
        rm.await.unwrap().unwrap();
        settle(&scenario);
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        // the deleter could not put its reference back (another took the place); nothing
        // needs the retired copy, and a sweep collects it
        let sweep =
            w.a.sweep_references(&w.bucket, Duration::ZERO)
                .await
                .unwrap();
        assert!(sweep.retired_kept.is_empty(), "{sweep:?}");
        let left = w.leftovers().await;
        assert!(left.is_empty(), "left behind: {left:?}");
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_deleter_and_a_new_first_upload_cannot_make_a_deleter_remove_the_wrong_reference()
{
    for w in worlds("lc-2del").await {
        let scenario = fail::FailScenario::setup();
        first_stored(&w).await;
        // the first deleter has retired the reference, found it unchanged, and is one
        // request away from deleting it...
        let gate = Gate::new("delete::before_reference_delete", 1);
        let rm = spawn_delete(&w.a, &w, "rel/app-1.zip");
        gate.wait();
        // ...when a second deleter comes for the same reference: it must not remove it
        // (had it done so, the next upload would make a new reference, which the first
        // deleter would then delete with no retired copy of it anywhere)
        let sweep =
            w.b.sweep_references(&w.bucket, Duration::from_secs(3600))
                .await
                .unwrap();
        assert!(sweep.orphans_removed.is_empty(), "{sweep:?}");
        assert_eq!(sweep.retired_removed, 0, "{sweep:?}");
        let f3 = w.file("app-3.zip", &v3());
        put(&w.b, &w, &f3, "rel/app-3.zip").await;
        gate.release(0);
        let report = rm.await.unwrap().unwrap();
        assert_eq!(report.reference_removed, None, "the reference is in use");
        settle(&scenario);
        w.assert_recoverable("rel/app-3.zip", &v3()).await;
        let left = w.leftovers().await;
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleter_that_finds_another_at_work_leaves_the_reference_for_purge() {
    // Failpoints are global to the process: a deleter running while another test holds a
    // gate would be taken for that test's deleter. A scenario keeps the tests apart.
    let _scenario = fail::FailScenario::setup();
    for w in worlds("lc-lease").await {
        first_stored(&w).await;
        // another deleter's lease, live
        let lease = ".deltaglider/deleting/rel/reference.bin/0123456789abcdef";
        w.plant(lease).await;
        let report = w.a.delete(&w.bucket, "rel/app-1.zip").await.unwrap();
        assert_eq!(report.reference_removed, None);
        assert!(w.exists("rel/reference.bin").await);
        assert!(
            w.exists(lease).await,
            "a live lease is never taken for dead"
        );
        // once that deleter is gone, purge removes the orphan
        w.store.delete_object(&w.bucket, lease).await.unwrap();
        let sweep =
            w.b.sweep_references(&w.bucket, Duration::from_secs(3600))
                .await
                .unwrap();
        assert_eq!(sweep.orphans_removed, ["rel/reference.bin"], "{sweep:?}");
        assert!(w.keys().await.is_empty(), "{:?}", w.keys().await);
    }
}

/// A deleter that died left its lease: past its lifetime (by the store's clock, here a file
/// time on the local store, the one store whose clock a test can set) it no longer holds
/// anything up, and the next deleter or `purge` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_deleters_lease_is_ignored_and_removed() {
    // See `a_deleter_that_finds_another_at_work_leaves_the_reference_for_purge`.
    let _scenario = fail::FailScenario::setup();
    let w = worlds("lc-dead").await.remove(0);
    let root = w._local.as_ref().unwrap().path().join("s");
    first_stored(&w).await;
    let leases = [
        ".deltaglider/deleting/rel/reference.bin/00000000000000aa",
        ".deltaglider/deleting/gone/reference.bin/00000000000000bb",
    ];
    for lease in leases {
        w.plant(lease).await;
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(20 * 60);
    let mut backdated = 0;
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        if name.contains("00000000000000aa") || name.contains("00000000000000bb") {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap();
            file.set_modified(long_ago).unwrap();
            backdated += 1;
        }
    }
    assert_eq!(
        backdated,
        2,
        "lease files not found under {}",
        root.display()
    );
    let report = w.a.delete(&w.bucket, "rel/app-1.zip").await.unwrap();
    assert_eq!(
        report.reference_removed.as_deref(),
        Some("rel/reference.bin")
    );
    assert!(!w.exists(leases[0]).await, "the dead lease is removed");
    // a lease whose reference is gone is purge's to remove
    assert!(w.exists(leases[1]).await);
    w.b.sweep_references(&w.bucket, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(w.keys().await.is_empty(), "{:?}", w.keys().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleter_that_dies_after_removing_a_used_reference_loses_nothing() {
    for w in worlds("lc-crash").await {
        let scenario = fail::FailScenario::setup();
        let (_, f2) = first_stored(&w).await;
        let gate = Gate::new("delete::after_check", 1);
        let rm = spawn_delete(&w.a, &w, "rel/app-1.zip");
        gate.wait();
        assert_eq!(
            put(&w.b, &w, &f2, "rel/app-2.zip").await.stored_as,
            StoredAs::Delta
        );
        // the deleter dies right after deleting the reference, before it looks again
        fail::cfg("delete::after_reference_delete", "return").unwrap();
        gate.release(0);
        assert!(rm.await.unwrap().is_err());
        settle(&scenario);
        assert!(!w.exists("rel/reference.bin").await);
        // the acknowledged delta still rebuilds, from the retired copy
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
        // and a sweep puts the reference back
        let sweep =
            w.b.sweep_references(&w.bucket, Duration::ZERO)
                .await
                .unwrap();
        assert_eq!(sweep.restored, ["rel/reference.bin"], "{sweep:?}");
        assert!(w.exists("rel/reference.bin").await);
        let left = w.leftovers().await;
        assert!(left.is_empty(), "left behind: {left:?}");
        w.assert_recoverable("rel/app-2.zip", &v2()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_whole_and_delta_uploads_of_one_key_leave_exactly_one_object() {
    for w in worlds("lc-forms").await {
        for direct_first in [true, false] {
            let scenario = fail::FailScenario::setup();
            let key = format!("rel/app-{direct_first}.zip");
            let (f1, f2, f3) = (
                w.file("base.zip", &v1()),
                w.file("whole.zip", &v2()),
                w.file("delta.zip", &v3()),
            );
            put(&w.a, &w, &f1, "rel/base.zip").await;
            // both have stored their form and are about to remove the other one
            let gate = Gate::new("put::before_other_form", 2);
            let no_delta = deltaglider::PutRequestOptions::default().no_delta(true);
            let whole = spawn_put(&w.a, &w, &f2, &key, no_delta);
            gate.wait();
            let delta = spawn_put(&w.b, &w, &f3, &key, Default::default());
            gate.wait();
            // arrival 0 is the whole upload, 1 the delta
            let order = if direct_first { [0, 1] } else { [1, 0] };
            let mut tasks = [Some(whole), Some(delta)];
            let mut reports = Vec::new();
            for i in order {
                gate.release(i);
                reports.push(tasks[i].take().unwrap().await.unwrap().unwrap());
            }
            settle(&scenario);
            let forms = [
                w.exists(&key).await,
                w.exists(&format!("{key}.delta")).await,
            ];
            assert_eq!(
                forms.iter().filter(|x| **x).count(),
                1,
                "exactly one form of {key} must remain: {forms:?} ({reports:?})"
            );
            // the survivor is the delta (written later than the whole file)
            assert!(forms[1], "the newer write wins");
            w.assert_recoverable(&key, &v3()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_with_a_leading_slash_keeps_the_root_reference_alive() {
    for w in worlds("lc-slash").await {
        // failpoints are process-wide: hold the scenario lock so no other test's are armed
        let _scenario = fail::FailScenario::setup();
        let (f1, f2) = (w.file("app-1.zip", &v1()), w.file("app-2.zip", &v2()));
        put(&w.a, &w, &f1, "app-1.zip").await;
        assert_eq!(
            put(&w.a, &w, &f2, "/app-2.zip").await.stored_as,
            StoredAs::Delta
        );
        let report = w.a.delete(&w.bucket, "app-1.zip").await.unwrap();
        assert_eq!(report.reference_removed, None, "/app-2.zip still uses it");
        w.assert_recoverable("/app-2.zip", &v2()).await;
        let report = w.a.delete(&w.bucket, "/app-2.zip").await.unwrap();
        assert_eq!(report.reference_removed.as_deref(), Some("reference.bin"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_that_changes_while_it_is_read_is_refused_and_nothing_is_stored() {
    for w in worlds("lc-src").await {
        let scenario = fail::FailScenario::setup();
        let f = w.file("app-1.zip", &v1());
        let (path, original) = (f.clone(), v1());
        fail::cfg_callback("put::snapshot_first_chunk", move || {
            // same size, modification time put back: only the change time tells
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            let mut other = original.clone();
            other[0] ^= 0xff;
            std::fs::write(&path, &other).unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(mtime).unwrap();
        })
        .unwrap();
        let err =
            w.a.put_file(&f, &w.bucket, "rel/app-1.zip", &Default::default())
                .await
                .unwrap_err();
        assert!(matches!(err, Error::SourceChanged { .. }), "{err}");
        settle(&scenario);
        assert!(w.keys().await.is_empty(), "{:?}", w.keys().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_that_changes_after_it_was_read_is_stored_as_it_was_read() {
    for w in worlds("lc-src2").await {
        let scenario = fail::FailScenario::setup();
        let f = w.file("app-1.zip", &v1());
        let path = f.clone();
        fail::cfg_callback("put::before_reference_create", move || {
            std::fs::write(&path, b"something else entirely").unwrap();
        })
        .unwrap();
        let report = put(&w.a, &w, &f, "rel/app-1.zip").await;
        settle(&scenario);
        assert_eq!(report.original_size, v1().len() as u64);
        w.assert_recoverable("rel/app-1.zip", &v1()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_removes_an_orphaned_reference_and_never_one_in_use() {
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("file://{}", dir.path().join("store").display());
    let env = [("DG_ENDPOINT_URL", endpoint.as_str())];
    let f1 = write_file(dir.path(), "app-1.zip", &v1());
    let f2 = write_file(dir.path(), "app-2.zip", &v2());
    let run = |args: &[&str]| {
        let out = support::run_dg(args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["mb", "s3://bkt"]);
    run(&["cp", f1.to_str().unwrap(), "s3://bkt/orphan/app-1.zip"]);
    run(&["cp", f1.to_str().unwrap(), "s3://bkt/used/app-1.zip"]);
    run(&["cp", f2.to_str().unwrap(), "s3://bkt/used/app-2.zip"]);
    // a writer that died after its reference appeared leaves one without a delta
    let store = LocalStore::new(dir.path().join("store")).unwrap();
    store
        .delete_object("bkt", "orphan/app-1.zip.delta")
        .await
        .unwrap();
    let printed = run(&["purge", "s3://bkt"]);
    assert!(
        printed.contains("delete: s3://bkt/orphan/reference.bin"),
        "{printed}"
    );
    assert!(
        store
            .head_object("bkt", "orphan/reference.bin")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .head_object("bkt", "used/reference.bin")
            .await
            .unwrap()
            .is_some()
    );
    let out = dir.path().join("back.zip");
    run(&["cp", "s3://bkt/used/app-1.zip", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v1());
}
