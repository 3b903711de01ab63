//! Randomized soak: processes of the real binary upload, overwrite (as deltas and whole),
//! delete and get killed (SIGKILL at random moments) in one deltaspace for a bounded time,
//! on the local store and on the S3 server. Afterwards every key is downloaded by a fresh
//! process: each must be in a state its history allows (an acknowledged upload not followed
//! by another operation must come back byte for byte; a killed operation may or may not have
//! happened), and nothing may fail to rebuild. The counts are printed.
//!
//! `DG_SOAK_SECONDS` sets the time per store (default 12), `DG_SOAK_SEED` the random seed
//! (printed, so a failing run can be repeated).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{dg_bin, edited, noise, unique_bucket};

const WORKERS: usize = 6;
const KEYS_PER_WORKER: usize = 3;

/// A small deterministic generator (xorshift64*), one per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Absent,
    Content(String),
}

#[derive(Debug, Clone)]
enum Op {
    Put(String),
    Rm,
}

/// Per key of a worker, its operations and how each ended.
type History = Vec<Vec<(Op, Option<bool>)>>;

#[derive(Debug, Default)]
struct Counts {
    puts_acked: u64,
    rms_acked: u64,
    killed: u64,
    failed: u64,
}

/// Where the binary's processes point: a local store directory, or the S3 server.
#[derive(Clone)]
struct Target {
    endpoint: Option<String>,
    bucket: String,
}

impl Target {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(dg_bin());
        cmd.args(args)
            .env("DG_CONFIG", "/dev/null")
            .env_remove("DG_ENDPOINT_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(e) = &self.endpoint {
            cmd.env("DG_ENDPOINT_URL", e);
        }
        cmd
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/soak/{key}", self.bucket)
    }
}

fn sha256(bytes: &[u8]) -> String {
    deltaglider::testing::hashing::sha256_hex(bytes)
}

/// Runs `child` to its end, killing it after `kill_after` if given. `Some(true)` exit 0,
/// `Some(false)` another exit, `None` killed.
fn finish(mut child: Child, kill_after: Option<Duration>) -> (Option<bool>, String) {
    if let Some(d) = kill_after {
        let start = Instant::now();
        while start.elapsed() < d {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (Some(out.status.success()), stderr)
}

fn worker(
    target: &Target,
    dir: &Path,
    id: usize,
    seed: u64,
    deadline: Instant,
    base: &[u8],
    serial: &AtomicU64,
) -> (History, Counts, Vec<String>) {
    let mut rng = Rng(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut history = vec![Vec::new(); KEYS_PER_WORKER];
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let k = rng.below(KEYS_PER_WORKER as u64) as usize;
        let key = format!("w{id}-k{k}.zip");
        let url = target.url(&key);
        let roll = rng.below(100);
        let (op, child) = if roll < 75 {
            let n = serial.fetch_add(1, Ordering::Relaxed);
            let bytes = edited(base, n + 1000);
            let path: PathBuf = dir.join(format!("w{id}-{n}.zip"));
            std::fs::write(&path, &bytes).unwrap();
            let mut args = vec!["cp", path.to_str().unwrap(), url.as_str()];
            if roll < 15 {
                args.push("--no-delta");
            }
            let child = target.command(&args).spawn().unwrap();
            (Op::Put(sha256(&bytes)), child)
        } else {
            (
                Op::Rm,
                target.command(&["rm", url.as_str()]).spawn().unwrap(),
            )
        };
        let kill_after = (rng.below(100) < 25).then(|| Duration::from_millis(rng.below(250)));
        let (outcome, stderr) = finish(child, kill_after);
        match (&op, outcome) {
            (_, None) => counts.killed += 1,
            (Op::Put(_), Some(true)) => counts.puts_acked += 1,
            (Op::Rm, Some(true)) => counts.rms_acked += 1,
            // removing a key that is not there is not a failure of the store
            (Op::Rm, Some(false)) if stderr.contains("does not exist") => {}
            (_, Some(false)) => {
                counts.failed += 1;
                failures.push(format!("{op:?} {url}: {}", stderr.trim()));
            }
        }
        let outcome = match (&op, outcome) {
            (Op::Rm, Some(false)) if stderr.contains("does not exist") => Some(true),
            (_, o) => o,
        };
        history[k].push((op, outcome));
    }
    (history, counts, failures)
}

/// The states a key may be in after its history: an acknowledged operation fixes the state,
/// one that was killed or failed may or may not have taken effect.
fn allowed(history: &[(Op, Option<bool>)]) -> BTreeSet<State> {
    let mut states = BTreeSet::from([State::Absent]);
    for (op, outcome) in history {
        let state = match op {
            Op::Put(h) => State::Content(h.clone()),
            Op::Rm => State::Absent,
        };
        if *outcome == Some(true) {
            states.clear();
        }
        states.insert(state);
    }
    states
}

fn soak(target: Target, work: &Path) {
    let seconds = std::env::var("DG_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12u64);
    let seed = std::env::var("DG_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let where_ = target
        .endpoint
        .clone()
        .unwrap_or_else(|| "the S3 server".into());
    eprintln!("soak on {where_}: {WORKERS} workers for {seconds} s, DG_SOAK_SEED={seed}");
    let out = target
        .command(&["mb", &format!("s3://{}", target.bucket)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = noise(200_000, 77);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let serial = AtomicU64::new(0);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|id| {
                let (target, base, serial) = (&target, &base, &serial);
                s.spawn(move || worker(target, work, id, seed, deadline, base, serial))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut total = Counts::default();
    let (mut verified, mut absent, mut mismatches) = (0, 0, Vec::new());
    let out_path = work.join("downloaded");
    for (id, (histories, counts, failures)) in results.iter().enumerate() {
        total.puts_acked += counts.puts_acked;
        total.rms_acked += counts.rms_acked;
        total.killed += counts.killed;
        total.failed += counts.failed;
        for f in failures {
            eprintln!("  failed operation: {f}");
        }
        for (k, history) in histories.iter().enumerate() {
            let key = format!("w{id}-k{k}.zip");
            let _ = std::fs::remove_file(&out_path);
            let out = target
                .command(&["cp", &target.url(&key), out_path.to_str().unwrap()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let state = if out.status.success() {
                State::Content(sha256(&std::fs::read(&out_path).unwrap()))
            } else if out.status.code() == Some(3) && stderr.contains("does not exist") {
                State::Absent
            } else {
                mismatches.push(format!("{key}: download failed: {}", stderr.trim()));
                continue;
            };
            let ok = allowed(history);
            if !ok.contains(&state) {
                mismatches.push(format!(
                    "{key}: {state:?} is not one of {ok:?} after {history:?}"
                ));
            } else if state == State::Absent {
                absent += 1;
            } else {
                verified += 1;
            }
        }
    }
    eprintln!(
        "soak on {where_}: {} uploads and {} deletes acknowledged, {} processes killed, {} failed; \
         afterwards {verified} keys rebuilt byte-exact, {absent} absent as allowed, {} wrong",
        total.puts_acked,
        total.rms_acked,
        total.killed,
        total.failed,
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(total.puts_acked > 0, "no upload was acknowledged");
}

#[test]
fn soak_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        endpoint: Some(format!("file://{}", dir.path().join("store").display())),
        bucket: "soak".into(),
    };
    soak(target, dir.path());
}

#[test]
fn soak_s3_server() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        endpoint: Some(endpoint),
        bucket: unique_bucket("soak"),
    };
    soak(target, dir.path());
}
