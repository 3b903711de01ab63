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
    let (ok, _, err) = s.run(&["sync", "s3://bkt/", "s3://bkt/x/"]);
    assert!(!ok && err.contains("not supported"), "{err}");
    let (ok, _, err) = s.run(&["sync", &s.path("."), "s3://bkt/", "--include", "a["]);
    assert!(!ok && err.contains("a["), "{err}");
}
