//! The binary as a user runs it, on the local store and on the S3 server: one bucket per
//! test, a work directory for local files, and snapshots of both to prove that a command
//! changed nothing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use sha2::{Digest, Sha256};

#[path = "../support/mod.rs"]
pub mod support;

use deltaglider::storage::{ListRequest, ObjectStore};

/// Where the objects go.
pub enum Backend {
    /// `file://` store under the test's directory.
    Local(PathBuf),
    /// The S3 server.
    S3,
}

/// One test's bucket, work directory and backend, with the library's own client on the
/// same store for looking behind the binary's back.
pub struct Dg {
    pub dir: tempfile::TempDir,
    pub bucket: String,
    pub backend: Backend,
    pub store: Arc<dyn ObjectStore>,
    pub runtime: tokio::runtime::Runtime,
}

impl Dg {
    /// A local store with a fresh bucket.
    pub fn local() -> Dg {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Arc::new(deltaglider::storage::local::LocalStore::new(&path).unwrap());
        let dg = Dg {
            bucket: "bkt".into(),
            backend: Backend::Local(path),
            store,
            runtime: tokio::runtime::Runtime::new().unwrap(),
            dir,
        };
        dg.setup();
        dg
    }

    /// A fresh bucket on the S3 server, or `None` (after a loud SKIPPED line) without one.
    pub fn s3(tag: &str) -> Option<Dg> {
        let endpoint = support::s3_endpoint()?;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = runtime.block_on(support::s3_store(&endpoint));
        let dg = Dg {
            dir: tempfile::tempdir().unwrap(),
            bucket: support::unique_bucket(tag),
            backend: Backend::S3,
            store,
            runtime,
        };
        dg.setup();
        Some(dg)
    }

    /// The local store, then the S3 server when there is one.
    pub fn all(tag: &str) -> Vec<Dg> {
        let mut v = vec![Dg::local()];
        v.extend(Dg::s3(tag));
        v
    }

    fn setup(&self) {
        std::fs::create_dir_all(self.work()).unwrap();
        std::fs::create_dir_all(self.dir.path().join("tmp")).unwrap();
        self.ok(&["mb", &format!("s3://{}", self.bucket)]);
    }

    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "local",
            Backend::S3 => "s3",
        }
    }

    /// The directory for local files (the temp and cache files live elsewhere).
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `work/<rel>` as a string.
    pub fn path(&self, rel: &str) -> String {
        self.work().join(rel).display().to_string()
    }

    /// `s3://<bucket>/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The command, ready to run: endpoint, private temp directory, no config file.
    pub fn command(&self, args: &[&str]) -> Command {
        // DG_TEST_BIN runs these tests against another build (to see them fail on an
        // older one).
        let bin = std::env::var_os("DG_TEST_BIN").map_or_else(support::dg_bin, PathBuf::from);
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("DG_ENDPOINT_URL")
            .env_remove("NO_COLOR")
            .env("DG_CONFIG", "/dev/null")
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path());
        if let Backend::Local(store) = &self.backend {
            cmd.env("DG_ENDPOINT_URL", format!("file://{}", store.display()));
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run deltaglider")
    }

    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run deltaglider")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "[{}] {args:?} failed ({:?}): {}",
            self.name(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must exit with `code`; returns (stdout, stderr).
    pub fn exits(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "[{}] {args:?}: stdout {stdout} stderr {stderr}",
            self.name()
        );
        (stdout, stderr)
    }

    /// Every stored object of the bucket: key, size and (S3) ETag, times and metadata as a
    /// HEAD returns them; (local) the store's files with sizes, hashes, modes and times.
    pub fn snapshot_store(&self) -> BTreeMap<String, String> {
        match &self.backend {
            Backend::Local(store) => snapshot_dir(store),
            Backend::S3 => self.runtime.block_on(async {
                let store = &self.store;
                let mut out = BTreeMap::new();
                let mut request = ListRequest::default();
                loop {
                    let page = store.list_objects(&self.bucket, &request).await.unwrap();
                    for o in page.objects {
                        let head = store.head_object(&self.bucket, &o.key).await.unwrap();
                        out.insert(o.key.clone(), format!("{o:?} {head:?}"));
                    }
                    match page.next_token {
                        Some(t) => request.continuation_token = Some(t),
                        None => break,
                    }
                }
                out
            }),
        }
    }

    /// Rewrites a stored object's bytes behind the binary's back, keeping its metadata.
    pub fn tamper(&self, key: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>) {
        use tokio::io::AsyncReadExt;
        self.runtime.block_on(async {
            let mut reader = self.store.get_object(&self.bucket, key).await.unwrap();
            let mut bytes = Vec::new();
            reader.body.read_to_end(&mut bytes).await.unwrap();
            let options = deltaglider::storage::PutOptions {
                metadata: reader.info.metadata.clone().unwrap_or_default(),
                content_type: reader.info.content_type.clone(),
                if_none_match: false,
                ..Default::default()
            };
            let source = deltaglider::storage::PutSource::Bytes(change(bytes).into());
            self.store
                .put_object(&self.bucket, key, source, options)
                .await
                .unwrap();
        })
    }

    /// Deletes a stored object behind the binary's back.
    pub fn delete_stored(&self, key: &str) {
        self.runtime
            .block_on(self.store.delete_object(&self.bucket, key))
            .unwrap();
    }

    /// The store and the work directory together.
    pub fn snapshot(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (self.snapshot_store(), snapshot_dir(&self.work()))
    }
}

impl Drop for Dg {
    fn drop(&mut self) {
        if matches!(self.backend, Backend::S3) {
            let _ = self.run(&["rb", "--force", &format!("s3://{}", self.bucket)]);
        }
    }
}

/// Every entry below `root`: kind, size, SHA-256, mode and (files) modification time.
/// Directory times are left out: temp files created and removed inside change them.
pub fn snapshot_dir(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let meta = e.path().symlink_metadata().unwrap();
        let mode = meta.permissions().mode();
        let desc = if meta.is_file() {
            let hash = hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()));
            format!(
                "file {} {hash} {mode:o} {}.{}",
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            )
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!("other {mode:o} {:?}", std::fs::read_link(e.path()).ok())
        };
        out.insert(rel, desc);
    }
    out
}

/// The non-empty lines of `s`.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

/// A pseudo-terminal: (master, slave), 80x24.
pub fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on descriptors this function owns; each result is checked.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(master, libc::TIOCSWINSZ, &size), 0);
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    }
}

/// What a terminal shows after `bytes`: enough of VT100 for progress bars (CR, LF, cursor
/// up/down, erase line and screen).
pub fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        last = c;
                        break;
                    }
                    params.push(c);
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(0);
                match last {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => row += n.max(1),
                    'G' => col = n.saturating_sub(1),
                    'K' if n == 2 => rows[row].clear(),
                    'K' => rows[row].truncate(col),
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
                while rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut rows[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    rows.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}
