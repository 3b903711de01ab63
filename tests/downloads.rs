//! Downloads through the binary and the engine, on the local store and on the S3 server:
//! incomplete metadata is refused, the output never grows past its recorded size, special
//! destinations are written into, a killed download leaves nothing an upload would send,
//! modes follow the umask, `-` streams the verified bytes, and a failed presign leaves
//! nothing behind.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltaglider::Error;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::local::LocalStore;
use deltaglider::storage::{ObjectStore, PutOptions, PutSource};
use deltaglider::testing::hashing::sha256_hex;
use support::{dg_bin, edited, noise, write_file};
use tokio::io::AsyncReadExt;

type Meta = BTreeMap<String, String>;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A store (local directory or the S3 server) with a bucket, and a scratch directory.
struct Env {
    dir: tempfile::TempDir,
    /// `DG_ENDPOINT_URL` for the local store; `None` for S3 (the AWS environment).
    endpoint: Option<String>,
    bucket: String,
}

impl Env {
    fn local() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("file://{}", dir.path().join("store").display());
        let env = Env {
            dir,
            endpoint: Some(endpoint),
            bucket: "bkt".into(),
        };
        env.ok(&["mb", "s3://bkt"]);
        env
    }

    fn s3() -> Option<Env> {
        support::s3_endpoint()?;
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            endpoint: None,
            bucket: support::unique_bucket("dl"),
        };
        env.ok(&["mb", &format!("s3://{}", env.bucket)]);
        Some(env)
    }

    fn both() -> Vec<Env> {
        let mut v = vec![Env::local()];
        v.extend(Env::s3());
        v
    }

    fn name(&self) -> &'static str {
        if self.endpoint.is_some() {
            "local"
        } else {
            "s3"
        }
    }

    /// The binary with this store's environment, run in the scratch directory.
    fn command(&self) -> Command {
        self.with_env(Command::new(dg_bin()))
    }

    fn with_env(&self, mut cmd: Command) -> Command {
        cmd.env_remove("DG_ENDPOINT_URL")
            .env("DG_CONFIG", "/dev/null")
            .env("TMPDIR", self.dir.path())
            .current_dir(self.dir.path());
        if let Some(ep) = &self.endpoint {
            cmd.env("DG_ENDPOINT_URL", ep);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs `sh -c script` with `$0` the binary and `"$@"` the arguments.
    fn shell(&self, script: &str, args: &[&str]) -> Output {
        let mut cmd = self.with_env(Command::new("sh"));
        cmd.arg("-c").arg(script).arg(dg_bin()).args(args);
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: {args:?} failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a command that must fail with exit `code` and one error line naming `needles`.
    fn fails(&self, args: &[&str], code: i32, needles: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: {args:?}: {stderr}",
            self.name()
        );
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one error line, got: {stderr}");
        for n in needles {
            assert!(lines[0].contains(n), "{args:?}: '{}' lacks '{n}'", lines[0]);
        }
        stderr
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stores `rel/v1.zip` (the reference) and `rel/v2.zip` (a delta); returns v2's bytes.
    fn two_versions(&self) -> Vec<u8> {
        let v1 = noise(300_000, 1);
        let v2 = edited(&v1, 2);
        let src = self.path("src");
        std::fs::create_dir_all(&src).unwrap();
        let p1 = write_file(&src, "v1.zip", &v1);
        let p2 = write_file(&src, "v2.zip", &v2);
        self.ok(&["cp", p1.to_str().unwrap(), &self.url("rel/v1.zip")]);
        self.ok(&["cp", p2.to_str().unwrap(), &self.url("rel/v2.zip")]);
        let meta = self.metadata("rel/v2.zip.delta");
        assert!(
            meta.contains_key("dg-file-sha256"),
            "v2 is a delta: {meta:?}"
        );
        v2
    }

    fn local_store(&self) -> LocalStore {
        LocalStore::new(self.dir.path().join("store")).unwrap()
    }

    fn metadata(&self, key: &str) -> Meta {
        rt().block_on(async {
            match &self.endpoint {
                Some(_) => self
                    .local_store()
                    .head_object(&self.bucket, key)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{key} missing"))
                    .metadata
                    .unwrap(),
                None => s3_client()
                    .await
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap()
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            }
        })
    }

    /// Replaces the user metadata of the stored object `key`, keeping its bytes: on the
    /// local store by rewriting the object file's header through the store, on S3 by a
    /// copy onto itself with `MetadataDirective: REPLACE`.
    fn rewrite_metadata(&self, key: &str, edit: impl FnOnce(&mut Meta)) {
        let mut meta = self.metadata(key);
        edit(&mut meta);
        rt().block_on(async {
            match &self.endpoint {
                Some(_) => {
                    let store = self.local_store();
                    let mut body = store.get_object(&self.bucket, key).await.unwrap().body;
                    let mut bytes = Vec::new();
                    body.read_to_end(&mut bytes).await.unwrap();
                    store
                        .put_object(
                            &self.bucket,
                            key,
                            PutSource::Bytes(bytes.into()),
                            PutOptions {
                                metadata: meta,
                                ..Default::default()
                            },
                        )
                        .await
                        .unwrap();
                }
                None => {
                    s3_client()
                        .await
                        .copy_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .copy_source(format!("{}/{key}", self.bucket))
                        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                        .set_metadata(Some(meta.into_iter().collect()))
                        .send()
                        .await
                        .unwrap();
                }
            }
        });
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.endpoint.is_none() {
            let _ = self.run(&["rb", "--force", &format!("s3://{}", self.bucket)]);
        }
    }
}

async fn s3_client() -> aws_sdk_s3::Client {
    let endpoint = support::s3_endpoint().expect("S3 server");
    support::s3_store(&endpoint).await.client().clone()
}

/// The entries of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_delta_with_missing_or_malformed_hashes_is_an_integrity_error_and_writes_nothing() {
    type Edit = fn(&mut Meta);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "removed",
            |m| {
                m.remove("dg-file-sha256");
            },
            "dg-file-sha256",
        ),
        (
            "misspelt",
            |m| {
                let v = m.remove("dg-file-sha256").unwrap();
                m.insert("dg-file-sha265".into(), v);
            },
            "dg-file-sha256",
        ),
        (
            "malformed",
            |m| {
                m.insert("dg-file-sha256".into(), "not-a-hash".into());
            },
            "not-a-hash",
        ),
        (
            "no reference hash",
            |m| {
                m.remove("dg-ref-sha256");
            },
            "dg-ref-sha256",
        ),
    ];
    for env in Env::both() {
        env.two_versions();
        let good = env.metadata("rel/v2.zip.delta");
        for (what, edit, needle) in cases {
            env.rewrite_metadata("rel/v2.zip.delta", |m| {
                *m = good.clone();
                edit(m);
            });
            let out = env.path(&format!("out-{}", what.replace(' ', "-")));
            std::fs::create_dir_all(&out).unwrap();
            let dest = out.join("v2.zip");
            let url = env.url("rel/v2.zip");
            env.fails(
                &["cp", &url, dest.to_str().unwrap()],
                4,
                &["rel/v2.zip.delta", needle],
            );
            assert!(
                entries(&out).is_empty(),
                "{what}: wrote {:?}",
                entries(&out)
            );
            env.fails(&["verify", &url], 4, &["rel/v2.zip.delta", needle]);
            let piped = env.run(&["cp", &url, "-"]);
            assert_eq!(piped.status.code(), Some(4), "{what}: cp to stdout");
            assert!(piped.stdout.is_empty(), "{what}: nothing on stdout");
        }
    }
}

#[test]
fn a_plain_object_named_delta_downloads_as_is_unless_it_stands_for_another_key() {
    let env = Env::local();
    let src = write_file(env.dir.path(), "x", b"someone else's bytes");
    rt().block_on(async {
        env.local_store()
            .put_object(
                "bkt",
                "other.bin.delta",
                PutSource::File(src.clone()),
                PutOptions::default(),
            )
            .await
            .unwrap();
    });
    let dest = env.path("got");
    env.ok(&["cp", &env.url("other.bin.delta"), dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's bytes");
    // Reached as the representation of `other.bin`, it must be a delta: it is not.
    env.fails(
        &[
            "cp",
            &env.url("other.bin"),
            env.path("got2").to_str().unwrap(),
        ],
        4,
        &["other.bin.delta", "dg-file-sha256"],
    );
    assert!(!env.path("got2").exists());
}

/// Counts bytes and keeps nothing.
#[derive(Clone, Default)]
struct Counter(Arc<std::sync::atomic::AtomicU64>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_forged_file_size_stops_the_output_at_that_size() {
    for env in Env::both() {
        // A tiny delta that decodes to 4 MiB more than its reference.
        let v1 = noise(200_000, 3);
        let mut v2 = edited(&v1, 4);
        v2.extend(std::iter::repeat_n(0u8, 4 << 20));
        let p1 = write_file(env.dir.path(), "a.zip", &v1);
        let p2 = write_file(env.dir.path(), "b.zip", &v2);
        env.ok(&["cp", p1.to_str().unwrap(), &env.url("big/a.zip")]);
        env.ok(&["cp", p2.to_str().unwrap(), &env.url("big/b.zip")]);
        env.rewrite_metadata("big/b.zip.delta", |m| {
            m.insert("dg-file-size".into(), "1000".into());
        });
        let url = env.url("big/b.zip");
        let out = env.run(&["cp", &url, "-"]);
        assert_eq!(out.status.code(), Some(4), "{}", env.name());
        assert!(
            out.stdout.len() <= 1000,
            "{}: {} bytes reached stdout past a recorded size of 1000",
            env.name(),
            out.stdout.len()
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("recorded size of 1000"), "{stderr}");
        let dest = env.path("b-out.zip");
        env.fails(
            &["cp", &url, dest.to_str().unwrap()],
            4,
            &["big/b.zip", "1000"],
        );
        assert!(!dest.exists());
        env.fails(&["verify", &url], 4, &["1000"]);
        // Larger than the real size: rebuilt whole, then refused.
        env.rewrite_metadata("big/b.zip.delta", |m| {
            m.insert("dg-file-size".into(), (v2.len() + 1).to_string());
        });
        env.fails(
            &["cp", &url, dest.to_str().unwrap()],
            4,
            &[&format!("rebuilt {} bytes", v2.len())],
        );
        assert!(!dest.exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_caps_what_it_writes_at_the_recorded_size() {
    let (dir, store, engine) = support::local_engine().await;
    let v1 = noise(200_000, 5);
    let mut v2 = edited(&v1, 6);
    v2.extend(std::iter::repeat_n(7u8, 2 << 20));
    let opts = Default::default();
    let p1 = write_file(dir.path(), "a.zip", &v1);
    let p2 = write_file(dir.path(), "b.zip", &v2);
    engine.put_file(&p1, "bkt", "r/a.zip", &opts).await.unwrap();
    engine.put_file(&p2, "bkt", "r/b.zip", &opts).await.unwrap();
    let info = store
        .head_object("bkt", "r/b.zip.delta")
        .await
        .unwrap()
        .unwrap();
    let mut meta = info.metadata.unwrap();
    meta.insert("dg-file-size".into(), "1000".into());
    let mut body = store.get_object("bkt", "r/b.zip.delta").await.unwrap().body;
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).await.unwrap();
    store
        .put_object(
            "bkt",
            "r/b.zip.delta",
            PutSource::Bytes(bytes.into()),
            PutOptions {
                metadata: meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let counter = Counter::default();
    let err = engine
        .get_to_writer("bkt", "r/b.zip", counter.clone(), "the counter")
        .await
        .unwrap_err();
    let written = counter.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(written <= 1000, "{written} bytes written past the cap");
    let inner = match &err {
        Error::OutputDiscarded {
            destination,
            source,
        } => {
            assert_eq!(destination, "the counter");
            &**source
        }
        other => other,
    };
    assert!(
        matches!(
            inner,
            Error::SizeMismatch {
                expected: 1000,
                actual: None,
                ..
            }
        ),
        "{err}"
    );
}

/// A FIFO at `path`, drained by a thread; the result arrives on the returned channel.
fn fifo_with_reader(path: &Path) -> std::sync::mpsc::Receiver<Vec<u8>> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::fs::File::open(&p)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let _ = tx.send(bytes);
    });
    rx
}

#[test]
fn device_nodes_and_fifos_are_written_into_never_replaced() {
    let env = Env::local();
    let v2 = env.two_versions();
    let url = env.url("rel/v2.zip");

    // A private null device first (root may create one), so that a regression replaces
    // it rather than the system's.
    let node = env.path("null");
    if rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .is_ok()
    {
        env.ok(&["cp", &url, node.to_str().unwrap()]);
        let m = std::fs::symlink_metadata(&node).unwrap();
        assert!(m.file_type().is_char_device(), "the node was replaced");
    }
    env.ok(&["cp", &url, "/dev/null"]);
    assert!(
        std::fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        entries(Path::new("/dev"))
            .iter()
            .all(|n| !n.ends_with(".dgtmp"))
    );

    let fifo = env.path("pipe");
    let rx = fifo_with_reader(&fifo);
    env.ok(&["cp", &url, fifo.to_str().unwrap()]);
    let got = rx.recv_timeout(Duration::from_secs(60)).expect("reader");
    assert!(got == v2, "the FIFO received other bytes");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        entries(env.dir.path())
            .iter()
            .filter(|n| n.ends_with(".dgtmp"))
            .count(),
        0
    );

    // Bytes that fail verification after they went into the FIFO: exit 4, one line.
    env.rewrite_metadata("rel/v2.zip.delta", |m| {
        m.insert("dg-file-sha256".into(), "0".repeat(64));
    });
    std::fs::remove_file(&fifo).unwrap();
    let rx = fifo_with_reader(&fifo);
    env.fails(
        &["cp", &url, fifo.to_str().unwrap()],
        4,
        &[
            "must be discarded",
            fifo.to_str().unwrap(),
            "integrity check failed",
        ],
    );
    let got = rx.recv_timeout(Duration::from_secs(60)).expect("reader");
    assert_eq!(
        got.len(),
        v2.len(),
        "the bytes were written as they were rebuilt"
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn new_files_follow_the_umask_and_replaced_files_keep_their_mode() {
    let env = Env::local();
    let v2 = env.two_versions();
    let url = env.url("rel/v2.zip");
    let sh = |umask: &str, dest: &Path| {
        let out = env.shell(
            &format!("umask {umask} && exec \"$0\" \"$@\""),
            &["cp", &url, dest.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let a = env.path("new-022.zip");
    sh("022", &a);
    assert_eq!(mode(&a), 0o644);
    let b = env.path("new-077.zip");
    sh("077", &b);
    assert_eq!(mode(&b), 0o600);
    let script = write_file(env.dir.path(), "tool.zip", b"old");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    sh("077", &script);
    assert_eq!(mode(&script), 0o755, "an overwritten file keeps its mode");
    assert!(std::fs::read(&script).unwrap() == v2);
    // Downloads of a tree too.
    let tree = env.path("tree");
    let out = env.shell(
        "umask 027 && exec \"$0\" \"$@\"",
        &["cp", "-r", &env.url("rel/"), tree.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&tree.join("v2.zip")), 0o640);
}

#[test]
fn cp_to_stdout_streams_only_the_verified_bytes() {
    for env in Env::both() {
        let v2 = env.two_versions();
        let url = env.url("rel/v2.zip");
        for flags in [&[][..], &["--json"][..]] {
            let mut args = vec!["cp"];
            args.extend_from_slice(flags);
            args.extend([url.as_str(), "-"]);
            let out = env.run(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(sha256_hex(&out.stdout), sha256_hex(&v2), "{flags:?}");
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(!env.path("-").exists() && !Path::new("-").exists());
        // Through a shell pipe into sha256sum, as scripts do.
        let piped = env.shell("\"$0\" \"$@\" | sha256sum", &["cp", &url, "-"]);
        let line = String::from_utf8_lossy(&piped.stdout);
        assert!(line.starts_with(&sha256_hex(&v2)), "{line}");

        // A corrupted delta (its recorded hash no longer matches): the bytes went out,
        // the exit is 4 with one line saying they must be discarded.
        env.rewrite_metadata("rel/v2.zip.delta", |m| {
            m.insert("dg-file-sha256".into(), "f".repeat(64));
        });
        let out = env.run(&["cp", &url, "-"]);
        assert_eq!(out.status.code(), Some(4), "{}", env.name());
        assert_eq!(out.stdout.len(), v2.len());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("integrity check failed") && stderr.contains("stdout"),
            "{stderr}"
        );
    }
}

/// Waits (at most 30 s) until `ready` holds, while `child` keeps running.
fn wait_for(child: &mut std::process::Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the download ended ({status}) before {what}: {err}");
        }
        assert!(Instant::now() < deadline, "watchdog: no {what} after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The unnamed temporary file (`O_TMPFILE`) `pid` holds in `dir`, with its size.
fn unnamed_file_in(pid: u32, dir: &Path) -> Option<u64> {
    let prefix = format!("{}/#", dir.canonicalize().unwrap().display());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with(&prefix))
        })
        .and_then(|fd| std::fs::metadata(fd.path()).ok())
        .map(|m| m.len())
}

fn temp_names(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.ends_with(".dgtmp"))
        .collect()
}

#[test]
fn a_download_killed_mid_write_leaves_nothing_that_an_upload_would_send() {
    let env = Env::local();
    let v2 = env.two_versions();
    let url = env.url("rel/v2.zip");
    let kill = |failpoints: &str, dest: &Path, arrived: &mut dyn FnMut(u32) -> bool| {
        let mut child = env
            .command()
            .env("FAILPOINTS", failpoints)
            .args(["cp", &url, dest.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_for(&mut child, failpoints, || arrived(pid));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    };

    // 1. Unnamed temporary file: just created, then complete and verified.
    let out = env.path("out1");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("v2.zip");
    kill("download-temp-created=sleep(60000)", &dest, &mut |pid| {
        unnamed_file_in(pid, &out).is_some()
    });
    assert!(entries(&out).is_empty(), "left {:?}", entries(&out));
    kill("download-before-publish=sleep(60000)", &dest, &mut |pid| {
        unnamed_file_in(pid, &out) == Some(v2.len() as u64)
    });
    assert!(entries(&out).is_empty(), "left {:?}", entries(&out));

    // 2. Killed between naming the temporary file and renaming it over an existing
    //    destination: the name stays, the destination is untouched.
    std::fs::write(&dest, b"previous").unwrap();
    kill("download-temp-linked=sleep(60000)", &dest, &mut |_| {
        !temp_names(&out).is_empty()
    });
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous", "dest untouched");
    let linked = temp_names(&out);
    assert_eq!(linked.len(), 1, "{linked:?}");
    // 3. Named temporary files (where O_TMPFILE is unsupported): the next download
    //    first removes the stale one above, then leaves its own.
    let dest2 = out.join("w.zip");
    kill(
        "download-no-tmpfile=return;download-temp-created=sleep(60000)",
        &dest2,
        &mut |_| {
            let names = temp_names(&out);
            names.len() == 1 && names != linked
        },
    );
    let stale = temp_names(&out);
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with(".w.zip."), "{stale:?}");
    assert_eq!(
        mode(&out.join(&stale[0])),
        0o600,
        "temporary files are private"
    );
    // One written by another program (or an older release) is skipped as well.
    write_file(&out, ".notes.txt.Ab12Cd34.dgtmp", b"partial");

    // Uploads of the directory never send them.
    env.ok(&["sync", out.to_str().unwrap(), &env.url("up/")]);
    env.ok(&["cp", "-r", out.to_str().unwrap(), &env.url("up2/")]);
    let listed = String::from_utf8(env.ok(&["ls", "-r", &env.url("")])).unwrap();
    assert!(!listed.contains("dgtmp"), "{listed}");
    assert!(
        listed.contains("up/v2.zip") && listed.contains("up2/v2.zip"),
        "{listed}"
    );

    // The next download into the directory removes those whose writer is gone.
    env.ok(&[
        "cp",
        &env.url("rel/v1.zip"),
        out.join("v1.zip").to_str().unwrap(),
    ]);
    assert_eq!(entries(&out), ["v1.zip", "v2.zip"]);
}

#[test]
fn a_download_while_another_writes_into_the_same_directory_keeps_its_temporary_file() {
    let env = Env::local();
    env.two_versions();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut child = env
        .command()
        .env(
            "FAILPOINTS",
            "download-no-tmpfile=return;download-temp-created=sleep(60000)",
        )
        .args([
            "cp",
            &env.url("rel/v2.zip"),
            out.join("v2.zip").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "a temporary file", || {
        temp_names(&out).len() == 1
    });
    let live = temp_names(&out);
    env.ok(&[
        "cp",
        &env.url("rel/v1.zip"),
        out.join("v1.zip").to_str().unwrap(),
    ]);
    assert_eq!(temp_names(&out), live, "a live writer's file is left alone");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_failed_presign_on_the_local_store_leaves_nothing() {
    let env = Env::local();
    env.two_versions();
    let out = env.fails(
        &["presign", &env.url("rel/v2.zip")],
        2,
        &["rel/v2.zip", "S3 endpoint"],
    );
    assert!(out.contains("cannot presign"), "{out}");
    let tmp = env.dir.path().join("store/bkt/.deltaglider.d/tmp.d");
    let left: Vec<_> = walkdir::WalkDir::new(env.dir.path().join("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().to_string_lossy().contains(".deltaglider"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty() && !tmp.exists(), "left behind: {left:?}");
    // Nor anything in the scratch directory.
    assert!(temp_names(env.dir.path()).is_empty());
    let scratch: Vec<_> = entries(env.dir.path())
        .into_iter()
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rehydrated_copies_expire_with_their_urls() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let store = support::s3_store(&endpoint).await;
    let engine = support::engine_over(store.clone());
    let bucket = support::unique_bucket("dlp");
    store.create_bucket(&bucket).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v1 = noise(200_000, 8);
    let v2 = edited(&v1, 9);
    let opts = Default::default();
    let p1 = write_file(dir.path(), "a.zip", &v1);
    let p2 = write_file(dir.path(), "b.zip", &v2);
    engine
        .put_file(&p1, &bucket, "r/a.zip", &opts)
        .await
        .unwrap();
    engine
        .put_file(&p2, &bucket, "r/b.zip", &opts)
        .await
        .unwrap();
    let signed = engine
        .presign_get(&bucket, "r/b.zip", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(signed.rehydrated);
    let info = store
        .head_object(&bucket, &signed.served_key)
        .await
        .unwrap()
        .unwrap();
    let meta = info.metadata.unwrap();
    let expires = deltaglider::testing::metadata::parse_timestamp(&meta["dg-expires-at"]).unwrap();
    assert_eq!(
        expires.timestamp(),
        signed.expires_at.timestamp(),
        "the copy lives as long as its URL, no longer"
    );
    assert_eq!(meta["dg-file-sha256"], sha256_hex(&v2));
    // The copy itself is verified when read.
    let (_, mut f) = engine
        .get_verified(&bucket, &signed.served_key)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    assert!(bytes == v2);
    // Past the URL's expiry (the store's clock decides nothing here: purge compares with
    // the recorded time), purge removes it.
    let wait = (signed.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let purged = engine
        .purge(&bucket, &deltaglider::PurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged.deleted, std::slice::from_ref(&signed.served_key));
    for key in ["r/a.zip", "r/b.zip"] {
        engine.delete(&bucket, key).await.unwrap();
    }
    let _ = store.delete_bucket(&bucket).await;
}
