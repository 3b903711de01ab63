//! The library's tree operations as an application calls them through `Client`: moves of
//! files, objects and trees, planned migrations, and deletes under a prefix.

mod support;

use std::path::Path;
use std::sync::Mutex;

use deltaglider::{Client, Error, ListObjectsOptions, S3Url};
use deltaglider::{DeleteTreeOptions, Location, MigrateOptions, MoveOptions, TransferEvent};
use deltaglider::{FilterKind, Filters};
use support::{client_over, edited, local_engine, noise, write_file};

async fn client() -> (tempfile::TempDir, Client) {
    let (dir, store, _engine) = local_engine().await;
    (dir, client_over(store).await)
}

async fn keys(client: &Client, prefix: &str) -> Vec<String> {
    let listing = client
        .list_all_objects(
            "bkt",
            prefix,
            &ListObjectsOptions::default().recursive(true),
        )
        .await
        .unwrap();
    listing.objects.into_iter().map(|o| o.key).collect()
}

fn filters(rules: &[(FilterKind, &str)]) -> Filters {
    Filters::new(rules.iter().map(|(k, p)| (*k, p.to_string()))).unwrap()
}

fn s3(key: &str) -> Location {
    Location::S3(S3Url::new("bkt", key))
}

#[tokio::test(flavor = "multi_thread")]
async fn move_tree_moves_each_way_and_a_dry_run_changes_nothing() {
    let (dir, client) = client().await;
    let src = dir.path().join("src");
    let base = noise(200_000, 1);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    write_file(&src, "a.zip", &base);
    write_file(&src, "sub/b.zip", &edited(&base, 2));
    write_file(&src, "build.log", b"log\n");
    let no_logs = filters(&[(FilterKind::Exclude, "*.log")]);
    let events = Mutex::new(Vec::new());
    let record = |e: &TransferEvent| events.lock().unwrap().push(e.clone());

    let options = MoveOptions::default()
        .filters(no_logs.clone())
        .dry_run(true);
    let local = Location::Local(src.clone());
    let summary = client
        .move_tree(&local, &s3("t/"), &options, &record)
        .await
        .unwrap();
    assert_eq!(summary.copied, 2);
    assert!(src.join("a.zip").exists() && src.join("sub/b.zip").exists());
    assert!(
        keys(&client, "").await.is_empty(),
        "a dry run stores nothing"
    );
    let would = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, TransferEvent::WouldCopy { .. }))
        .count();
    assert_eq!(would, 2);

    let options = MoveOptions::default().filters(no_logs);
    let summary = client
        .move_tree(&local, &s3("t/"), &options, &|_| {})
        .await
        .unwrap();
    assert_eq!((summary.copied, summary.failed), (2, 0));
    assert!(!src.join("a.zip").exists() && !src.join("sub/b.zip").exists());
    assert!(src.join("build.log").exists(), "the excluded file stays");
    assert_eq!(keys(&client, "").await, ["t/a.zip", "t/sub/b.zip"]);

    let options = MoveOptions::default();
    client
        .move_tree(&s3("t/"), &s3("u/"), &options, &|_| {})
        .await
        .unwrap();
    assert_eq!(keys(&client, "").await, ["u/a.zip", "u/sub/b.zip"]);

    let back = dir.path().join("back");
    client
        .move_tree(&s3("u/"), &Location::Local(back.clone()), &options, &|_| {})
        .await
        .unwrap();
    assert!(keys(&client, "").await.is_empty());
    assert_eq!(std::fs::read(back.join("a.zip")).unwrap(), base);
    assert_eq!(
        std::fs::read(back.join("sub/b.zip")).unwrap(),
        edited(&base, 2)
    );

    let err = client
        .move_tree(&Location::Local(back.clone()), &local, &options, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn single_moves_remove_the_source_once_the_copy_is_stored() {
    let (dir, client) = client().await;
    let bytes = noise(100_000, 3);
    let file = write_file(dir.path(), "app.zip", &bytes);
    let put = Default::default();

    let moved = client
        .move_file(&file, "bkt", "a/app.zip", &put)
        .await
        .unwrap();
    assert!(moved.source_kept.is_none(), "{:?}", moved.source_kept);
    assert_eq!(moved.copy.original_size, bytes.len() as u64);
    assert!(!file.exists());

    let moved = client
        .move_object("bkt", "a/app.zip", "bkt", "b/app.zip", &put)
        .await
        .unwrap();
    assert!(moved.source_kept.is_none());
    assert_eq!(keys(&client, "").await, ["b/app.zip"]);

    let back = dir.path().join("back.zip");
    let moved = client
        .move_to_file("bkt", "b/app.zip", &back)
        .await
        .unwrap();
    assert!(moved.copy.verified && moved.source_kept.is_none());
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    assert!(keys(&client, "").await.is_empty());

    // Nothing to copy: an error, and nothing is removed or stored.
    let missing = dir.path().join("missing.zip");
    assert!(
        client
            .move_file(&missing, "bkt", "c/x.zip", &put)
            .await
            .is_err()
    );
    let err = client
        .move_to_file("bkt", "b/app.zip", Path::new(&back))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(std::fs::read(&back).unwrap(), bytes, "the file stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_is_planned_then_run_and_resumes() {
    let (_dir, client) = client().await;
    let base = noise(150_000, 4);
    for (i, name) in ["a.zip", "b.zip", "c.zip"].iter().enumerate() {
        let body = edited(&base, i as u64);
        client
            .put_object(
                "bkt",
                &format!("old/data/{name}"),
                body,
                &Default::default(),
            )
            .await
            .unwrap();
    }
    let (from, to) = (S3Url::new("bkt", "old/data"), S3Url::new("bkt", "new"));
    let options = MigrateOptions::default();
    let plan = client.plan_migration(&from, &to, &options).await.unwrap();
    assert_eq!(plan.source.to_string(), "s3://bkt/old/data/");
    assert_eq!(plan.destination.to_string(), "s3://bkt/new/data/");
    assert_eq!((plan.to_copy, plan.already_there), (3, 0));
    assert!(
        keys(&client, "new/").await.is_empty(),
        "planning writes nothing"
    );

    let dry = options.clone().dry_run(true);
    let summary = client.migrate(&plan, &dry, &|_| {}).await.unwrap();
    assert_eq!(summary.copied, 3);
    assert!(
        keys(&client, "new/").await.is_empty(),
        "a dry run writes nothing"
    );

    let summary = client.migrate(&plan, &options, &|_| {}).await.unwrap();
    assert_eq!((summary.copied, summary.failed), (3, 0));
    assert_eq!(
        keys(&client, "new/").await,
        ["new/data/a.zip", "new/data/b.zip", "new/data/c.zip"]
    );
    let again = client.plan_migration(&from, &to, &options).await.unwrap();
    assert_eq!((again.to_copy, again.already_there), (0, 3));

    let flat = MigrateOptions::default().preserve_prefix(false);
    let plan = client.plan_migration(&from, &to, &flat).await.unwrap();
    assert_eq!(plan.destination.to_string(), "s3://bkt/new/");
    assert_eq!(plan.to_copy, 3, "new/a.zip and the others are not there");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_tree_takes_filters_and_delete_prefix_counts_what_it_deleted() {
    let (_dir, client) = client().await;
    let base = noise(120_000, 5);
    for (i, key) in ["p/a.zip", "p/sub/b.zip", "p/notes.txt", "q/keep.zip"]
        .iter()
        .enumerate()
    {
        client
            .put_object("bkt", key, edited(&base, i as u64), &Default::default())
            .await
            .unwrap();
    }
    let zips = filters(&[(FilterKind::Exclude, "*"), (FilterKind::Include, "*.zip")]);
    let events = Mutex::new(Vec::new());
    let record = |e: &TransferEvent| events.lock().unwrap().push(e.clone());
    let dry = DeleteTreeOptions::default()
        .filters(zips.clone())
        .dry_run(true);
    let report = client
        .delete_tree("bkt", "p/", &dry, &record)
        .await
        .unwrap();
    assert_eq!((report.summary.deleted, report.summary.failed), (2, 0));
    assert_eq!(events.lock().unwrap().len(), 2, "one event per key");
    assert_eq!(
        keys(&client, "p/").await.len(),
        3,
        "a dry run deletes nothing"
    );

    let real = DeleteTreeOptions::default().filters(zips);
    let report = client
        .delete_tree("bkt", "p/", &real, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.deleted, 2);
    assert!(report.errors.is_empty());
    assert_eq!(keys(&client, "").await, ["p/notes.txt", "q/keep.zip"]);

    assert_eq!(client.delete_prefix("bkt", "p/").await.unwrap(), 1);
    assert_eq!(keys(&client, "").await, ["q/keep.zip"]);
    let err = client
        .delete_prefix("no-such-bucket", "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchBucket(_)), "{err}");
}
