//! `cp -r`, `sync` and `rm -r` as a user runs them: only what changed moves, trees come back
//! byte for byte, filters and `--delete` behave like `aws s3`.

mod support;

use std::path::Path;

use support::{edited, noise, run_dg, write_file};

struct Session {
    dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Session {
    /// A session on the local store.
    fn local() -> Session {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("file://{}", dir.path().join("store").display());
        Session {
            dir,
            envs: vec![("DG_ENDPOINT_URL".into(), endpoint)],
        }
    }
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out = run_dg(args, &envs);
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "{args:?}: {stderr}");
        stdout
    }
    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
}

fn releases(root: &Path) {
    let base = noise(400_000, 1);
    std::fs::create_dir_all(root.join("app/sub")).unwrap();
    for i in 0..3u64 {
        write_file(
            &root.join("app"),
            &format!("app-1.{i}.zip"),
            &edited(&base, i),
        );
    }
    write_file(&root.join("app/sub"), "notes.txt", b"release notes");
    write_file(&root.join("app"), "build.log", b"noise");
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.push((rel, std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

fn uploads(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with("upload:")).count()
}

#[test]
fn sync_moves_only_what_changed_and_comes_back_byte_exact() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    releases(&s.dir.path().join("src"));
    let src = s.path("src/app");

    let out = s.ok(&["sync", &src, "s3://bkt/app/", "--exclude", "*.log"]);
    assert_eq!(uploads(&out), 4, "{out}");
    assert!(!s.ok(&["ls", "-r", "s3://bkt"]).contains("build.log"));

    let out = s.ok(&["sync", &src, "s3://bkt/app/", "--exclude", "*.log"]);
    assert_eq!(uploads(&out), 0, "an unchanged tree uploads nothing: {out}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_file(
        &s.dir.path().join("src/app"),
        "app-1.2.zip",
        &edited(&noise(400_000, 1), 99),
    );
    let out = s.ok(&["sync", &src, "s3://bkt/app/", "--exclude", "*.log"]);
    assert_eq!(uploads(&out), 1, "only the changed file moves: {out}");
    assert!(out.contains("app-1.2.zip"));

    let down = s.path("down");
    let out = s.ok(&["sync", "s3://bkt/app/", &down]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("download:")).count(),
        4
    );
    let out = s.ok(&["sync", "s3://bkt/app/", &down]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("download:")).count(),
        0,
        "unchanged bucket downloads nothing: {out}"
    );
    let mut expected = tree(&s.dir.path().join("src/app"));
    expected.retain(|(p, _)| !p.ends_with(".log"));
    assert_eq!(tree(Path::new(&down)), expected);
}

#[test]
fn sync_delete_removes_only_what_the_source_lost_and_keeps_needed_references() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    releases(&s.dir.path().join("src"));
    let src = s.path("src/app");
    s.ok(&["sync", &src, "s3://bkt/"]);
    std::fs::remove_file(s.dir.path().join("src/app/app-1.0.zip")).unwrap();

    let dry = s.ok(&["sync", "--delete", "--dryrun", &src, "s3://bkt/"]);
    assert!(
        dry.contains("(dryrun) delete: s3://bkt/app-1.0.zip"),
        "{dry}"
    );
    assert!(
        s.ok(&["ls", "s3://bkt"]).contains("app-1.0.zip"),
        "dry run changes nothing"
    );

    let out = s.ok(&["sync", "--delete", &src, "s3://bkt/"]);
    assert!(out.contains("delete: s3://bkt/app-1.0.zip"), "{out}");
    // app-1.0.zip was the reference's source; the reference stays for the other deltas.
    let down = s.path("down");
    s.ok(&["sync", "s3://bkt/", &down]);
    assert_eq!(tree(Path::new(&down)), tree(&s.dir.path().join("src/app")));

    std::fs::remove_file(s.dir.path().join("src/app/sub/notes.txt")).unwrap();
    s.ok(&["sync", "--delete", &src, "s3://bkt/"]);
    let out = s.ok(&["sync", "--delete", "s3://bkt/", &down]);
    assert!(out.contains("delete:"), "{out}");
    assert!(
        !Path::new(&down).join("sub/notes.txt").exists(),
        "download --delete removes local files"
    );
    assert_eq!(tree(Path::new(&down)), tree(&s.dir.path().join("src/app")));
}

#[test]
fn recursive_copy_filters_and_recursive_delete() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    releases(&s.dir.path().join("src"));
    let out = s.ok(&[
        "cp",
        "-r",
        &s.path("src/app"),
        "s3://bkt/r/",
        "--exclude",
        "*",
        "--include",
        "*.zip",
    ]);
    assert_eq!(uploads(&out), 3, "{out}");
    let out = s.ok(&[
        "cp",
        "--recursive",
        &s.path("src/app"),
        "s3://bkt/r/",
        "--exclude",
        "*",
        "--include",
        "*.zip",
    ]);
    assert_eq!(uploads(&out), 3, "cp copies again, unlike sync: {out}");
    let down = s.path("down");
    s.ok(&["cp", "-r", "s3://bkt/r/", &down]);
    let mut zips = tree(&s.dir.path().join("src/app"));
    zips.retain(|(p, _)| p.ends_with(".zip"));
    assert_eq!(tree(Path::new(&down)), zips);

    let out = s.ok(&["rm", "-r", "--dryrun", "s3://bkt/r/"]);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("(dryrun) delete:"))
            .count(),
        3
    );
    s.ok(&["rm", "-r", "s3://bkt/r/", "--exclude", "*1.0.zip"]);
    assert_eq!(s.ok(&["ls", "-r", "s3://bkt"]).lines().count(), 1);
    s.ok(&["rm", "-r", "s3://bkt/r/"]);
    assert!(s.ok(&["ls", "-r", "s3://bkt"]).is_empty());
    s.ok(&["rb", "s3://bkt"]);
}

#[test]
fn tree_transfer_errors_are_clear() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    let (ok, _, err) = s.run(&["sync", &s.path("missing-dir"), "s3://bkt/"]);
    assert!(!ok && err.contains("missing-dir"), "{err}");
    let (ok, _, err) = s.run(&["sync", &s.path("."), "s3://nobucket/"]);
    assert!(!ok && err.contains("nobucket"), "{err}");
    let (ok, _, err) = s.run(&["cp", &s.path("."), "s3://bkt/"]);
    assert!(!ok && err.contains("--recursive"), "{err}");
    let (ok, _, err) = s.run(&["sync", "s3://bkt/", "s3://nobucket2/x/"]);
    assert!(!ok && err.contains("nobucket2"), "{err}");
    let (ok, _, err) = s.run(&["sync", &s.path("."), &s.path("other")]);
    assert!(!ok && err.contains("s3:// URL"), "{err}");
    let (ok, _, err) = s.run(&["sync", &s.path("."), "s3://bkt/", "--include", "a["]);
    assert!(!ok && err.contains("a["), "{err}");
}

#[test]
fn migrate_copies_a_plain_prefix_resumably_and_stats_report_it() {
    let s = Session::local();
    s.ok(&["mb", "s3://old-bkt"]);
    s.ok(&["mb", "s3://new-bkt"]);
    releases(&s.dir.path().join("src"));
    s.ok(&[
        "cp",
        "-r",
        "--no-delta",
        &s.path("src/app"),
        "s3://old-bkt/data/",
    ]);

    let (ok, _, err) = s.run(&["migrate", "s3://old-bkt/data/", "s3://new-bkt/"]);
    assert!(
        !ok && err.contains("--yes"),
        "no terminal: must ask for --yes: {err}"
    );
    let dry = s.ok(&[
        "migrate",
        "--dry-run",
        "s3://old-bkt/data/",
        "s3://new-bkt/",
    ]);
    assert!(
        dry.contains("5 to copy") && dry.contains("(dryrun) copy:"),
        "{dry}"
    );
    assert!(s.ok(&["ls", "-r", "s3://new-bkt"]).is_empty());

    s.ok(&["migrate", "--yes", "s3://old-bkt/data/", "s3://new-bkt/"]);
    let again = s.ok(&["migrate", "--yes", "s3://old-bkt/data/", "s3://new-bkt/"]);
    assert!(
        again.contains("0 to copy, 5 already there"),
        "resumable: {again}"
    );

    let back = s.path("back");
    s.ok(&["sync", "s3://new-bkt/data/", &back]);
    assert_eq!(
        tree(Path::new(&back)),
        tree(&s.dir.path().join("src/app")),
        "prefix preserved, bytes exact"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&s.ok(&["stats", "--json", "new-bkt"])).unwrap();
    assert_eq!(stats["objects"], 5);
    assert_eq!(stats["deltas"], 3);
    let original: u64 = tree(&s.dir.path().join("src/app"))
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!(stats["original_bytes"].as_u64(), Some(original));
    assert!(
        stats["stored_bytes"].as_u64().unwrap() < original,
        "{stats}"
    );
    assert_eq!(stats["estimated"], false);
    let sampled: serde_json::Value =
        serde_json::from_str(&s.ok(&["stats", "--json", "--sampled", "s3://new-bkt/data/"]))
            .unwrap();
    assert_eq!(sampled["objects"], 5);
    let detailed = s.ok(&["stats", "--detailed", "new-bkt"]);
    assert!(detailed.contains("data/sub"), "{detailed}");

    s.ok(&[
        "migrate",
        "--yes",
        "--no-preserve-prefix",
        "s3://old-bkt/data/",
        "s3://new-bkt/flat/",
    ]);
    assert!(s.ok(&["ls", "s3://new-bkt/flat/"]).contains("app-1.0.zip"));
}

#[test]
fn stats_report_orphaned_references() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    let store = deltaglider::storage::local::LocalStore::new(s.dir.path().join("store")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    use deltaglider::storage::{ObjectStore, PutOptions, PutSource};
    rt.block_on(store.put_object(
        "bkt",
        "old/reference.bin",
        PutSource::Bytes("x".into()),
        PutOptions::default(),
    ))
    .unwrap();
    let stats: serde_json::Value =
        serde_json::from_str(&s.ok(&["stats", "--json", "bkt"])).unwrap();
    assert_eq!(
        stats["orphaned_references"],
        serde_json::json!(["old/reference.bin"])
    );
}

#[test]
fn copies_between_prefixes_rebuild_deltas_and_mv_removes_the_source() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    releases(&s.dir.path().join("src"));
    s.ok(&["sync", &s.path("src/app"), "s3://bkt/a/"]);
    s.ok(&["cp", "-r", "s3://bkt/a/", "s3://bkt/b/"]);
    let out = s.ok(&["cp", "s3://bkt/a/app-1.1.zip", "s3://bkt/c/"]);
    assert!(
        out.contains("new reference for s3://bkt/c/reference.bin"),
        "{out}"
    );
    let down = s.path("down");
    s.ok(&["sync", "s3://bkt/b/", &down]);
    assert_eq!(tree(Path::new(&down)), tree(&s.dir.path().join("src/app")));

    s.ok(&["mv", "s3://bkt/c/app-1.1.zip", "s3://bkt/d/moved.zip"]);
    assert!(!s.ok(&["ls", "-r", "s3://bkt/c/"]).contains("app-1.1.zip"));
    let local = s.path("moved.zip");
    s.ok(&["mv", "s3://bkt/d/moved.zip", &local]);
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(s.dir.path().join("src/app/app-1.1.zip")).unwrap()
    );
    s.ok(&["mv", &local, "s3://bkt/e/"]);
    assert!(!Path::new(&local).exists());
    assert!(s.ok(&["ls", "s3://bkt/e/"]).contains("moved.zip"));
    let (ok, _, err) = s.run(&["mv", "s3://bkt/nope.zip", &local]);
    assert!(!ok && err.contains("nope.zip"), "{err}");
}

#[test]
fn analyze_estimates_what_a_sync_then_stores() {
    let s = Session::local();
    s.ok(&["mb", "s3://bkt"]);
    releases(&s.dir.path().join("src"));
    let src = s.path("src/app");
    let local: serde_json::Value =
        serde_json::from_str(&s.ok(&["analyze", "--json", "--sample", "10", &src])).unwrap();
    s.ok(&["sync", &src, "s3://bkt/app/"]);
    let stats: serde_json::Value =
        serde_json::from_str(&s.ok(&["stats", "--json", "bkt"])).unwrap();
    // Every file was encoded (sample >= files): the estimate is what the upload stored.
    assert_eq!(
        local["original_bytes"], stats["original_bytes"],
        "{local} vs {stats}"
    );
    assert_eq!(
        local["estimated_stored_bytes"], stats["stored_bytes"],
        "{local} vs {stats}"
    );
    let remote: serde_json::Value =
        serde_json::from_str(&s.ok(&["analyze", "--json", "s3://bkt/app/"])).unwrap();
    assert_eq!(remote["files"], 5);
    let (ok, _, err) = s.run(&["analyze", &s.path("nowhere")]);
    assert!(!ok && err.contains("nowhere"), "{err}");
}
