//! The harness of the `serve` tests: a running `deltaglider serve` and the real S3 clients
//! (the `aws` CLI, boto3 in the Python venv of `scripts/install-deps.sh`) pointed at it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use crate::cli_support::{Dg, support};

pub const KEY_ID: &str = "serve-test-key";
pub const SECRET: &str = "serve-test-secret-0123456789";

/// The S3 clients' directory: the Python venv of `scripts/install-deps.sh`, found beside
/// `DG_PYTHON_DELTAGLIDER`; `None` (after a loud line) without one, a failure when the
/// tests are required to run.
pub fn client_bin() -> Option<PathBuf> {
    let python_dg = support::python_deltaglider()?;
    let bin = python_dg.parent()?.to_path_buf();
    if bin.join("aws").exists() && bin.join("python3").exists() {
        return Some(bin);
    }
    let required = std::env::var("DG_REQUIRE_S3").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "DG_REQUIRE_S3 is set but {} has no aws CLI",
        bin.display()
    );
    eprintln!(
        "\n*** SKIPPED: no aws CLI in {} (scripts/install-deps.sh) ***\n",
        bin.display()
    );
    None
}

/// A running `deltaglider serve`, stopped with SIGTERM when dropped.
pub struct Serve {
    pub child: Child,
    pub endpoint: String,
    /// The metrics listener, when started with `--metrics-listen`.
    pub metrics: Option<String>,
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Serve {
    pub fn start(dg: &Dg, bin: &std::path::Path) -> Serve {
        Serve::start_with(dg, bin, &[])
    }

    /// Started with `extra` arguments after `serve --listen 127.0.0.1:0`, with the test
    /// key in the environment.
    pub fn start_with(dg: &Dg, bin: &std::path::Path, extra: &[&str]) -> Serve {
        Serve::launch(dg, bin, extra, true)
    }

    /// Started with `extra` arguments and no key in the environment (`--access-file`).
    pub fn start_without_key(dg: &Dg, bin: &std::path::Path, extra: &[&str]) -> Serve {
        Serve::launch(dg, bin, extra, false)
    }

    fn launch(dg: &Dg, bin: &std::path::Path, extra: &[&str], env_key: bool) -> Serve {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = dg.command(&args);
        if env_key {
            cmd.env("DG_SERVE_ACCESS_KEY_ID", KEY_ID)
                .env("DG_SERVE_SECRET_ACCESS_KEY", SECRET);
        } else {
            cmd.env_remove("DG_SERVE_ACCESS_KEY_ID")
                .env_remove("DG_SERVE_SECRET_ACCESS_KEY");
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let metrics = extra.contains(&"--metrics-listen").then(|| {
            let mut second = String::new();
            stdout.read_line(&mut second).unwrap();
            second
                .trim()
                .strip_prefix("metrics on ")
                .unwrap_or_else(|| panic!("second line of serve: {second:?}"))
                .to_string()
        });
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line of serve: {line:?}"))
            .to_string();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        Serve {
            child,
            endpoint,
            metrics,
            bin: bin.to_path_buf(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// The clients' home directory (`config` in it is the aws CLI's config file).
    pub fn home_path(&self) -> &std::path::Path {
        self.home.path()
    }

    /// A client command with the serve key, no profile or endpoint from the environment.
    pub fn client(&self, program: &str, key: (&str, &str)) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_CA_BUNDLE",
            // The clients' own defaults (current SDKs send CRC checksums, as trailers of
            // aws-chunked bodies), not the ones the test run sets for the S3 server.
            "AWS_REQUEST_CHECKSUM_CALCULATION",
            "AWS_RESPONSE_CHECKSUM_VALIDATION",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.home.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("credentials"),
            )
            .env("HOME", self.home.path())
            .env("DG_ENDPOINT", &self.endpoint);
        cmd
    }

    pub fn aws_as(&self, key: (&str, &str), args: &[&str]) -> Output {
        self.client("aws", key)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .output()
            .expect("run aws")
    }

    pub fn aws(&self, args: &[&str]) -> Output {
        self.aws_as((KEY_ID, SECRET), args)
    }

    /// An aws command that must succeed; its stdout.
    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a Python script with boto3 against the endpoint (`DG_ENDPOINT`); its stdout.
    pub fn python_ok(&self, script: &str, args: &[&str]) -> String {
        let out = self
            .client("python3", (KEY_ID, SECRET))
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "python failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// SIGKILL (a crash: nothing is cleaned up), then waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // Dropped, it would signal a PID that may be another process's by now.
        let home = std::mem::replace(&mut self.home, tempfile::tempdir().unwrap());
        std::mem::forget(self);
        drop(home);
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

/// The stored keys of the bucket (references and deltas as they are).
pub fn stored_keys(dg: &Dg) -> Vec<String> {
    use deltaglider::storage::ListRequest;
    dg.runtime.block_on(async {
        let mut keys = Vec::new();
        let mut request = ListRequest::default();
        loop {
            let page = dg.store.list_objects(&dg.bucket, &request).await.unwrap();
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_token {
                Some(t) => request.continuation_token = Some(t),
                None => break,
            }
        }
        keys
    })
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
