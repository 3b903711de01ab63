//! A hostile or damaged local store tree, through the binary: FIFOs and symlinks planted at
//! objects, references and directories, and writers killed at exact steps. Every command
//! runs under a watchdog, so a hang fails the test instead of stalling it.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{dg_bin, edited, noise, write_file};

/// Longest any single command may take before the test calls it a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

struct Env {
    dir: tempfile::TempDir,
    endpoint: String,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("file://{}", dir.path().join("store").display());
        let env = Env { dir, endpoint };
        env.ok(&["mb", "s3://bkt"]);
        fs::create_dir(env.dir.path().join("outside")).unwrap();
        env
    }

    /// The bucket's directory in the store.
    fn bucket(&self) -> PathBuf {
        self.dir.path().join("store/bkt")
    }

    /// A directory outside the store that nothing may touch.
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str], failpoints: Option<&str>) -> Command {
        let mut cmd = Command::new(dg_bin());
        cmd.args(args)
            .env("DG_CONFIG", "/dev/null")
            .env("DG_ENDPOINT_URL", &self.endpoint)
            .env("TMPDIR", self.dir.path())
            .env_remove("FAILPOINTS")
            .stdin(Stdio::null());
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        cmd
    }

    /// Runs the binary, failing the test if it does not finish within [`WATCHDOG`].
    fn run(&self, args: &[&str]) -> Run {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (out, err) = (
            self.path(&format!("out-{n}")),
            self.path(&format!("err-{n}")),
        );
        let mut child = self
            .command(args, None)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let status = wait_bounded(&mut child, args);
        Run {
            code: status,
            stdout: fs::read_to_string(&out).unwrap(),
            stderr: fs::read_to_string(&err).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.stderr);
        r.stdout
    }

    /// Runs a command that must fail, its message naming `key` and `what` was found.
    fn refused(&self, args: &[&str], key: &str, what: &str) {
        let r = self.run(args);
        assert_ne!(
            r.code,
            Some(0),
            "{args:?} should fail; stdout: {}",
            r.stdout
        );
        assert!(
            r.stderr.contains(key) && r.stderr.contains(what),
            "{args:?}: the error should name {key} and say {what}: {}",
            r.stderr
        );
    }
}

/// Waits for `child`; kills it and fails the test after [`WATCHDOG`].
fn wait_bounded(child: &mut Child, what: &[&str]) -> Option<i32> {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what:?} did not finish within {WATCHDOG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

/// Every name below `dir`, symlinks not followed, relative to `dir`.
fn tree(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(dir).unwrap().display().to_string()
        })
        .collect();
    out.sort();
    out
}

fn temp_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|n| n.rsplit('/').next().is_some_and(|f| f.starts_with(".put-")))
        .collect()
}

/// Uploads two releases into `rel/` and a plain file beside them; returns the releases.
fn populate(env: &Env) -> (Vec<u8>, Vec<u8>) {
    let v1 = noise(200_000, 7);
    let v2 = edited(&v1, 3);
    let f1 = write_file(env.dir.path(), "app-1.zip", &v1);
    let f2 = write_file(env.dir.path(), "app-2.zip", &v2);
    let notes = write_file(env.dir.path(), "notes.txt", b"release notes\n");
    env.ok(&["cp", f1.to_str().unwrap(), "s3://bkt/rel/app-1.zip"]);
    env.ok(&["cp", f2.to_str().unwrap(), "s3://bkt/rel/app-2.zip"]);
    env.ok(&[
        "cp",
        "--no-delta",
        notes.to_str().unwrap(),
        "s3://bkt/rel/notes.txt",
    ]);
    assert!(env.bucket().join("rel.d/reference.bin.o").is_file());
    assert!(env.bucket().join("rel.d/app-2.zip.delta.o").is_file());
    (v1, v2)
}

#[test]
fn fifo_at_an_object_is_refused_promptly_and_skipped_by_ls() {
    let env = Env::new();
    populate(&env);
    let obj = env.bucket().join("rel.d/notes.txt.o");
    fs::remove_file(&obj).unwrap();
    mkfifo(&obj);
    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/notes.txt", out],
        "rel/notes.txt",
        "FIFO",
    );
    assert!(!Path::new(out).exists());
    env.refused(
        &["verify", "s3://bkt/rel/notes.txt"],
        "rel/notes.txt",
        "FIFO",
    );
    let new = write_file(env.dir.path(), "new.txt", b"new notes\n");
    env.refused(
        &[
            "cp",
            "--no-delta",
            new.to_str().unwrap(),
            "s3://bkt/rel/notes.txt",
        ],
        "rel/notes.txt",
        "FIFO",
    );
    let listed = env.ok(&["ls", "s3://bkt/rel/"]);
    assert!(listed.contains("app-2.zip"), "{listed}");
    assert!(!listed.contains("notes.txt"), "{listed}");
    // The FIFO is still there: refused, not replaced.
    assert!(fs::symlink_metadata(&obj).unwrap().file_type().is_fifo());
}

#[test]
fn fifo_at_a_delta_is_refused_promptly_and_skipped_by_ls() {
    let env = Env::new();
    let (_, v2) = populate(&env);
    let delta = env.bucket().join("rel.d/app-2.zip.delta.o");
    fs::remove_file(&delta).unwrap();
    mkfifo(&delta);
    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/app-2.zip", out],
        "rel/app-2.zip.delta",
        "FIFO",
    );
    assert!(!Path::new(out).exists());
    env.refused(
        &["verify", "s3://bkt/rel/app-2.zip"],
        "rel/app-2.zip.delta",
        "FIFO",
    );
    let f2 = write_file(env.dir.path(), "again.zip", &v2);
    env.refused(
        &["cp", f2.to_str().unwrap(), "s3://bkt/rel/app-2.zip"],
        "rel/app-2.zip.delta",
        "FIFO",
    );
    let listed = env.ok(&["ls", "s3://bkt/rel/"]);
    assert!(listed.contains("app-1.zip"), "{listed}");
    assert!(!listed.contains("app-2.zip"), "{listed}");
    assert!(fs::symlink_metadata(&delta).unwrap().file_type().is_fifo());
}

#[test]
fn fifo_at_a_reference_is_refused_promptly() {
    let env = Env::new();
    let (v1, _) = populate(&env);
    let reference = env.bucket().join("rel.d/reference.bin.o");
    fs::remove_file(&reference).unwrap();
    mkfifo(&reference);
    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/app-2.zip", out],
        "rel/reference.bin",
        "FIFO",
    );
    env.refused(
        &["verify", "s3://bkt/rel/app-2.zip"],
        "rel/reference.bin",
        "FIFO",
    );
    let f3 = write_file(env.dir.path(), "app-3.zip", &edited(&v1, 9));
    env.refused(
        &["cp", f3.to_str().unwrap(), "s3://bkt/rel/app-3.zip"],
        "rel/reference.bin",
        "FIFO",
    );
    let listed = env.ok(&["ls", "s3://bkt/rel/"]);
    assert!(
        listed.contains("app-1.zip") && listed.contains("app-2.zip"),
        "{listed}"
    );
}

#[test]
fn fifo_in_place_of_a_directory_is_refused_promptly() {
    let env = Env::new();
    populate(&env);
    fs::rename(env.bucket().join("rel.d"), env.outside().join("rel.d")).unwrap();
    mkfifo(&env.bucket().join("rel.d"));
    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/app-2.zip", out],
        "rel/app-2.zip",
        "FIFO",
    );
    env.refused(
        &["verify", "s3://bkt/rel/notes.txt"],
        "rel/notes.txt",
        "FIFO",
    );
    let f = write_file(env.dir.path(), "app-9.zip", &noise(50_000, 9));
    env.refused(
        &["cp", f.to_str().unwrap(), "s3://bkt/rel/app-9.zip"],
        "rel/",
        "FIFO",
    );
    let r = env.run(&["ls", "-r", "s3://bkt/"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("app-"), "{}", r.stdout);
    let r = env.run(&["ls", "s3://bkt/rel/"]);
    assert!(!r.stdout.contains("app-"), "{}", r.stdout);
}

#[test]
fn symlinked_directory_pointing_outside_is_never_followed() {
    let env = Env::new();
    populate(&env);
    // The deltaspace moves outside the store and a symlink takes its place.
    let moved = env.outside().join("rel.d");
    fs::rename(env.bucket().join("rel.d"), &moved).unwrap();
    symlink(&moved, env.bucket().join("rel.d")).unwrap();
    let before = tree(&env.outside());

    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/notes.txt", out],
        "rel/notes.txt",
        "symbolic link",
    );
    assert!(!Path::new(out).exists(), "read through the symlink");
    env.refused(
        &["rm", "s3://bkt/rel/notes.txt"],
        "rel/notes.txt",
        "symbolic link",
    );
    env.refused(
        &["rm", "s3://bkt/rel/app-1.zip"],
        "rel/app-1.zip",
        "symbolic link",
    );
    let f = write_file(env.dir.path(), "new.txt", b"planted?\n");
    env.refused(
        &[
            "cp",
            "--no-delta",
            f.to_str().unwrap(),
            "s3://bkt/rel/new.txt",
        ],
        "rel/new.txt",
        "symbolic link",
    );
    env.refused(
        &["cp", f.to_str().unwrap(), "s3://bkt/rel/deeper/new.zip"],
        // The first object it needs is the deltaspace's reference.
        "rel/deeper/",
        "symbolic link",
    );
    assert_eq!(
        tree(&env.outside()),
        before,
        "something changed outside the store"
    );
    let r = env.run(&["ls", "-r", "s3://bkt/"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("notes.txt"), "{}", r.stdout);
    assert!(
        fs::symlink_metadata(env.bucket().join("rel.d"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn symlinked_object_pointing_outside_is_never_followed() {
    let env = Env::new();
    populate(&env);
    let secret = env.outside().join("secret.o");
    fs::rename(env.bucket().join("rel.d/notes.txt.o"), &secret).unwrap();
    symlink(&secret, env.bucket().join("rel.d/notes.txt.o")).unwrap();
    let secret_bytes = fs::read(&secret).unwrap();

    let out = env.path("got");
    let out = out.to_str().unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/notes.txt", out],
        "rel/notes.txt",
        "symbolic link",
    );
    assert!(!Path::new(out).exists(), "read through the symlink");
    env.refused(
        &["rm", "s3://bkt/rel/notes.txt"],
        "rel/notes.txt",
        "symbolic link",
    );
    let f = write_file(env.dir.path(), "new.txt", b"overwrite?\n");
    env.refused(
        &[
            "cp",
            "--no-delta",
            f.to_str().unwrap(),
            "s3://bkt/rel/notes.txt",
        ],
        "rel/notes.txt",
        "symbolic link",
    );
    assert_eq!(fs::read(&secret).unwrap(), secret_bytes);
    assert_eq!(tree(&env.outside()), ["secret.o"]);
    let listed = env.ok(&["ls", "s3://bkt/rel/"]);
    assert!(
        !listed.contains("notes.txt") && listed.contains("app-1.zip"),
        "{listed}"
    );
    // A symlinked reference is refused the same way.
    let reference = env.bucket().join("rel.d/reference.bin.o");
    fs::rename(&reference, env.outside().join("ref.o")).unwrap();
    symlink(env.outside().join("ref.o"), &reference).unwrap();
    env.refused(
        &["cp", "s3://bkt/rel/app-2.zip", out],
        "rel/reference.bin",
        "symbolic link",
    );
}

#[test]
fn symlinked_store_root_chosen_by_the_user_is_fine() {
    let env = Env::new();
    let link = env.path("store-link");
    symlink(env.path("store"), &link).unwrap();
    let endpoint = format!("file://{}", link.display());
    let f = write_file(env.dir.path(), "a.txt", b"through the user's link\n");
    let mut cmd = env.command(&["cp", f.to_str().unwrap(), "s3://bkt/a.txt"], None);
    cmd.env("DG_ENDPOINT_URL", &endpoint).stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert_eq!(wait_bounded(&mut child, &["cp"]), Some(0));
    assert!(env.bucket().join("a.txt.o").is_file());
}

/// Starts the binary with the crash point `point` armed, waits (bounded) until the writer
/// stands at it, and kills it with SIGKILL there.
fn kill_at(env: &Env, point: &str, args: &[&str]) {
    let marker = env.path(&format!("at-{point}"));
    let _ = fs::remove_file(&marker);
    let mut child = env
        .command(args, Some(&format!("{point}=return({})", marker.display())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} ended ({status}) without reaching the crash point {point}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not reach the crash point {point} within {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Child::kill sends SIGKILL: no destructor or handler runs.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn write_killed_before_publication_leaves_nothing() {
    let env = Env::new();
    let v1 = noise(200_000, 11);
    let f = write_file(env.dir.path(), "app-1.zip", &v1);
    let f = f.to_str().unwrap();
    kill_at(
        &env,
        "local-store-put-written",
        &["cp", f, "s3://bkt/rel/app-1.zip"],
    );
    assert!(
        temp_files(&env.bucket()).is_empty(),
        "a killed write left {:?}",
        tree(&env.bucket())
    );
    assert!(!tree(&env.bucket()).iter().any(|n| n.ends_with(".o")));
    let listed = env.ok(&["ls", "-r", "s3://bkt/"]);
    assert!(listed.trim().is_empty(), "{listed}");
    env.ok(&["cp", f, "s3://bkt/rel/app-1.zip"]);
    let out = env.path("got");
    env.ok(&["cp", "s3://bkt/rel/app-1.zip", out.to_str().unwrap()]);
    assert_eq!(fs::read(&out).unwrap(), v1);
    assert!(temp_files(&env.bucket()).is_empty());
}

#[test]
fn overwrite_killed_before_its_rename_leaves_a_temp_the_next_write_removes() {
    let env = Env::new();
    let old = write_file(env.dir.path(), "v1.txt", b"first version\n");
    let new = write_file(
        env.dir.path(),
        "v2.txt",
        b"second version, never acknowledged\n",
    );
    env.ok(&[
        "cp",
        "--no-delta",
        old.to_str().unwrap(),
        "s3://bkt/rel/notes.txt",
    ]);
    kill_at(
        &env,
        "local-store-put-linked",
        &[
            "cp",
            "--no-delta",
            new.to_str().unwrap(),
            "s3://bkt/rel/notes.txt",
        ],
    );
    // The window is real: the killed writer's file has a (temporary) name...
    let left = temp_files(&env.bucket());
    assert_eq!(left.len(), 1, "{:?}", tree(&env.bucket()));
    assert!(
        left[0].starts_with("rel.d/.put-") && left[0].ends_with(".t"),
        "{left:?}"
    );
    // ...which no listing shows, and the acknowledged object is intact.
    let listed = env.ok(&["ls", "-r", "s3://bkt/"]);
    assert!(
        !listed.contains(".put-") && !listed.contains(".t\n"),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let out = env.path("got");
    env.ok(&["cp", "s3://bkt/rel/notes.txt", out.to_str().unwrap()]);
    assert_eq!(fs::read(&out).unwrap(), b"first version\n");
    // The next write into that directory removes it: its writer is provably gone.
    let other = write_file(env.dir.path(), "other.txt", b"other\n");
    env.ok(&[
        "cp",
        "--no-delta",
        other.to_str().unwrap(),
        "s3://bkt/rel/other.txt",
    ]);
    assert!(
        temp_files(&env.bucket()).is_empty(),
        "{:?}",
        tree(&env.bucket())
    );
    // A delete into the directory sweeps as well.
    kill_at(
        &env,
        "local-store-put-linked",
        &[
            "cp",
            "--no-delta",
            new.to_str().unwrap(),
            "s3://bkt/rel/notes.txt",
        ],
    );
    assert_eq!(temp_files(&env.bucket()).len(), 1);
    env.ok(&["rm", "s3://bkt/rel/other.txt"]);
    assert!(
        temp_files(&env.bucket()).is_empty(),
        "{:?}",
        tree(&env.bucket())
    );
    env.ok(&["cp", "s3://bkt/rel/notes.txt", out.to_str().unwrap()]);
    assert_eq!(fs::read(&out).unwrap(), b"first version\n");
}
