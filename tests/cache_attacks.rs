//! The attack suite of `spec/cache.md`: every attack on the reference cache the spec lists,
//! run against the built binary on the local store (`file://` endpoint, no server needed) and,
//! for in-process races, against the library.
//!
//! Each attack accepts exactly two outcomes: the byte-exact original (the reference fetched
//! again from storage and verified) or a clear error (non-zero exit, a `deltaglider: error:`
//! line, nothing written at the destination). Wrong bytes, a plaintext copy of an encrypted
//! reference, or a private cache directory left behind fail the test.
//!
//! To prove that a cache entry was *not used*, the reference object is moved out of the store
//! before the download: a usable entry makes the download succeed from the cache, a refused one
//! makes it fail with "reference ... is missing". Control runs show that good entries are used.
//!
//! Parts that switch users need root (CI runs as root); otherwise they print a loud SKIPPED
//! line and the rest is simulated with foreign keys.

mod support;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deltaglider::Error;
use deltaglider::PutRequestOptions;
use deltaglider::cache::CacheKey;
use deltaglider::cache::PersistentOptions;
use deltaglider::cache::StoreCache;
use deltaglider::cache::{FillSlot, Lookup, ReferenceCache};
use deltaglider::codec::Xdelta3Codec;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::local::LocalStore;
use deltaglider::testing::cache::Record;
use deltaglider::testing::cache::RecordSigner;
use deltaglider::testing::hashing::sha256_hex;
use deltaglider::testing::{Engine, EngineSettings};
use support::{edited, noise};

/// Signing keys of two users (base64 of 32 bytes).
const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
/// An encryption key (base64 of 32 bytes).
const ENC_KEY: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
/// The other user of the multi-user tests.
const NOBODY: u32 = 65534;
const MIB: usize = 1 << 20;
/// Prefix of the default private cache directories.
const PRIVATE_PREFIX: &str = "deltaglider-rs-";

// ---------------------------------------------------------------------------------------------
// The lab: a local store, per-user directories, the binary.
// ---------------------------------------------------------------------------------------------

struct Lab {
    dir: tempfile::TempDir,
    endpoint: String,
    n: AtomicUsize,
}

/// The directories a user's environment points at, under `base`.
const USER_DIRS: [&str; 5] = ["home", "config", "xdg-cache", "tmp", "out"];

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("dg-attack-")
            .tempdir()
            .unwrap();
        for d in USER_DIRS.iter().chain(&["src", "stage"]) {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let endpoint = format!("file://{}", dir.path().join("store").display());
        let lab = Lab {
            dir,
            endpoint,
            n: AtomicUsize::new(0),
        };
        lab.ok(&["mb", "s3://bkt"], &[]);
        lab
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A new unique path under the lab, not created (a cache root the binary creates).
    fn fresh_path(&self, tag: &str) -> PathBuf {
        self.path(&format!("{tag}-{}", self.n.fetch_add(1, Ordering::Relaxed)))
    }

    /// A new unique directory under the lab.
    fn fresh_dir(&self, tag: &str) -> PathBuf {
        let p = self.fresh_path(tag);
        fs::create_dir(&p).unwrap();
        p
    }

    /// `program` with a clean environment: the user's directories under `user` (HOME,
    /// XDG_CONFIG_HOME, XDG_CACHE_HOME, TMPDIR), the lab's store, signing key A, then `env`
    /// (an empty value removes the variable).
    fn command_of(
        &self,
        program: &Path,
        user: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", user.join("home"))
            .env("XDG_CONFIG_HOME", user.join("config"))
            .env("XDG_CACHE_HOME", user.join("xdg-cache"))
            .env("TMPDIR", user.join("tmp"))
            .env("DG_CONFIG", "/dev/null")
            .env("DG_ENDPOINT_URL", &self.endpoint)
            .env("DG_CACHE_KEY", KEY_A)
            .stdin(Stdio::null());
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        self.command_of(&support::dg_bin(), self.dir.path(), args, env)
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("run deltaglider")
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn upload(&self, key: &str, bytes: &[u8], env: &[(&str, &str)]) -> String {
        let src = self.path("src").join(format!(
            "{}-{}",
            self.n.fetch_add(1, Ordering::Relaxed),
            key.replace('/', "_")
        ));
        fs::write(&src, bytes).unwrap();
        let out = self.ok(
            &["cp", src.to_str().unwrap(), &format!("s3://bkt/{key}")],
            env,
        );
        fs::remove_file(src).unwrap();
        out
    }

    /// A fresh destination path in the lab's output directory.
    fn dest(&self, key: &str) -> PathBuf {
        self.path("out").join(format!(
            "{}-{}",
            self.n.fetch_add(1, Ordering::Relaxed),
            key.replace('/', "_")
        ))
    }

    fn get(&self, key: &str, env: &[(&str, &str)]) -> (Output, PathBuf) {
        let dest = self.dest(key);
        let out = output_within(
            self.command(
                &["cp", &format!("s3://bkt/{key}"), dest.to_str().unwrap()],
                env,
            ),
            Duration::from_secs(60),
            key,
        );
        (out, dest)
    }

    fn get_exact(&self, key: &str, expected: &[u8], env: &[(&str, &str)], what: &str) {
        let (out, dest) = self.get(key, env);
        assert_exact(&out, &dest, expected, what);
        fs::remove_file(dest).unwrap();
    }

    fn get_fails(&self, key: &str, env: &[(&str, &str)], what: &str) -> String {
        let (out, dest) = self.get(key, env);
        assert_clear_error(&out, Some(&dest), what)
    }

    fn spawn_get(&self, key: &str, env: &[(&str, &str)]) -> (Proc, PathBuf) {
        let dest = self.dest(key);
        let child = self
            .command(
                &["cp", &format!("s3://bkt/{key}"), dest.to_str().unwrap()],
                env,
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (Proc(Some(child)), dest)
    }

    fn verify_cache(&self, env: &[(&str, &str)]) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["cache", "verify", "--json"], env)).unwrap()
    }

    /// The file holding object `key` in the local store.
    fn object_file(&self, key: &str) -> PathBuf {
        let mut p = self.path("store").join("bkt");
        let segs: Vec<&str> = key.split('/').collect();
        for s in &segs[..segs.len() - 1] {
            p.push(format!("{s}.d"));
        }
        p.push(format!("{}.o", segs[segs.len() - 1]));
        p
    }

    /// Moves object `key` out of the store until the guard is dropped.
    fn hide(&self, key: &str) -> Hidden {
        let from = self.object_file(key);
        let to = self.fresh_path("stage/hidden");
        fs::rename(&from, &to).unwrap();
        Hidden { from, to }
    }
}

/// An object moved out of the store; put back on drop.
struct Hidden {
    from: PathBuf,
    to: PathBuf,
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = fs::rename(&self.to, &self.from);
    }
}

/// A running child, killed if the test fails before waiting for it.
struct Proc(Option<Child>);

impl Proc {
    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
    fn running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }
    fn output(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd`, killing it and failing if it takes longer than `limit` (a hang is a bug).
fn output_within(mut cmd: Command, limit: Duration, what: &str) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run deltaglider");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what}: deltaglider hung for {limit:?}");
        }
    }
}

fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn skipped(what: &str) {
    eprintln!("\n*** SKIPPED: {what} (needs root to switch users or chown). ***\n");
}

// ---------------------------------------------------------------------------------------------
// Outcomes.
// ---------------------------------------------------------------------------------------------

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The download succeeded and wrote exactly `expected`.
fn assert_exact(out: &Output, dest: &Path, expected: &[u8], what: &str) {
    assert!(
        out.status.success(),
        "{what}: the download failed: {}",
        stderr(out)
    );
    let got =
        fs::read(dest).unwrap_or_else(|e| panic!("{what}: no output at {}: {e}", dest.display()));
    assert!(
        got == expected,
        "{what}: WRONG BYTES written: sha256 {} ({} bytes), expected {} ({} bytes)",
        sha256_hex(&got),
        got.len(),
        sha256_hex(expected),
        expected.len()
    );
}

/// The command failed with a `deltaglider: error:` line (not a crash) and left nothing at
/// `dest`, not even its temporary file. Returns stderr.
fn assert_clear_error(out: &Output, dest: Option<&Path>, what: &str) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "{what}: expected a clear error, but it succeeded; stderr: {err}"
    );
    assert!(
        out.status.code().is_some(),
        "{what}: died from a signal ({:?}): {err}",
        out.status
    );
    assert!(
        err.lines().any(|l| l.starts_with("deltaglider: error: ")),
        "{what}: no `deltaglider: error:` line: {err}"
    );
    if let Some(dest) = dest {
        assert_nothing_at(dest, what);
    }
    err
}

fn assert_nothing_at(dest: &Path, what: &str) {
    assert!(
        !dest.exists(),
        "{what}: {} was written although the command failed",
        dest.display()
    );
    let prefix = format!(".{}.", dest.file_name().unwrap().to_string_lossy());
    let stray: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(stray.is_empty(), "{what}: temporary output left: {stray:?}");
}

/// Byte-exact or a clear error; true if it succeeded.
fn exact_or_clear_error(out: &Output, dest: &Path, expected: &[u8], what: &str) -> bool {
    if out.status.success() {
        assert_exact(out, dest, expected, what);
        true
    } else {
        assert_clear_error(out, Some(dest), what);
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Data, cache layout, store layout.
// ---------------------------------------------------------------------------------------------

/// A deltaspace `prefix/` holding `v1.zip` (which becomes the reference) and `v2.zip` (a delta).
struct Space {
    prefix: String,
    reference: Vec<u8>,
    v2: Vec<u8>,
    sha: String,
}

impl Space {
    fn v2_key(&self) -> String {
        format!("{}/v2.zip", self.prefix)
    }
    fn ref_key(&self) -> String {
        format!("{}/reference.bin", self.prefix)
    }
}

fn space(lab: &Lab, prefix: &str, len: usize, seed: u64) -> Space {
    space_in(lab, prefix, len, seed, &[])
}

fn space_in(lab: &Lab, prefix: &str, len: usize, seed: u64, env: &[(&str, &str)]) -> Space {
    let reference = noise(len, seed);
    let v2 = edited(&reference, seed + 1000);
    let out = lab.upload(&format!("{prefix}/v1.zip"), &reference, env);
    assert!(out.contains("new reference"), "{out}");
    let out = lab.upload(&format!("{prefix}/v2.zip"), &v2, env);
    assert!(out.contains("(delta "), "{out}");
    Space {
        prefix: prefix.to_string(),
        sha: sha256_hex(&reference),
        reference,
        v2,
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn entry_path(root: &Path, sha: &str) -> PathBuf {
    root.join(&sha[..2]).join(&sha[2..4]).join(sha)
}

fn record_path(root: &Path, sha: &str) -> PathBuf {
    let mut p = entry_path(root, sha).into_os_string();
    p.push(".rec");
    p.into()
}

/// Regular files below `dir` (symlinks not followed); empty if `dir` does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn named_under(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| pred(&p.file_name().unwrap().to_string_lossy()))
        .collect()
}

fn temps_under(dir: &Path) -> Vec<PathBuf> {
    named_under(dir, |n| n.starts_with(".tmp-"))
}

fn entries_under(dir: &Path) -> Vec<PathBuf> {
    named_under(dir, is_hex64)
}

/// The default private cache directories in `tmp`.
fn private_dirs(tmp: &Path) -> Vec<PathBuf> {
    fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PRIVATE_PREFIX))
        .map(|e| e.path())
        .collect()
}

/// Creates `path` afresh with mode 0600 and `bytes` (what a same-user attacker can plant).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// `bytes` with every 4096th byte flipped: same size, another hash.
fn corrupted(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    for b in v.iter_mut().step_by(4096) {
        *b ^= 0x5a;
    }
    v
}

fn set_mtime(path: &Path, ago: Duration) {
    File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

/// Replaces an object's bytes in the local store, keeping its header (metadata): what an
/// attacker with write access to the bucket does.
fn replace_object_bytes(file: &Path, bytes: &[u8]) {
    let old = fs::read(file).unwrap();
    assert_eq!(&old[..8], b"DGLOBJ1\n", "local store object layout changed");
    let header = u32::from_le_bytes(old[8..12].try_into().unwrap()) as usize;
    let mut new = old[..12 + header].to_vec();
    new.extend_from_slice(bytes);
    let tmp = file.with_extension("t");
    fs::write(&tmp, &new).unwrap();
    fs::rename(&tmp, file).unwrap();
}

/// Writes `bytes` into `slot` and commits them: the handle on what was committed.
fn commit_into(slot: &mut FillSlot, bytes: &[u8]) -> File {
    let mut w = slot.writer().unwrap();
    w.write_all(bytes).unwrap();
    w.commit("attack test").unwrap()
}

/// Fills the (missing) entry of `bytes` as the engine does.
fn fill(cache: &dyn ReferenceCache, bytes: &[u8]) -> File {
    let mut slot = cache
        .reference(&sha256_hex(bytes))
        .unwrap()
        .miss()
        .expect("not cached yet");
    commit_into(&mut slot, bytes)
}

fn read_all(mut f: File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// A second process attacking a cache entry while deltaglider runs: for every existing path
/// matching `pattern` (a shell glob), `swap` renames a poisoned copy over it (a new inode),
/// `rewrite` overwrites its first bytes in place (the same inode). Stops on drop.
struct Attacker {
    child: Option<Child>,
    stop: PathBuf,
}

const ATTACKER_SH: &str = r#"
pattern="$1"; mode="$2"; poison="$3"; stage="$4"; stop="$5"; n=0
while [ ! -e "$stop" ]; do
  hit=0
  for p in $pattern; do
    [ -f "$p" ] || continue
    hit=1
    if [ "$mode" = swap ]; then
      cp "$poison" "$stage" 2>/dev/null && mv -f "$stage" "$p" 2>/dev/null && n=$((n+1))
    else
      printf 'EVIL-IN-PLACE-REWRITE' 1<>"$p" 2>/dev/null && n=$((n+1))
    fi
  done
  [ "$hit" = 1 ] || sleep 0.005
done
echo "$n"
"#;

impl Attacker {
    fn start(lab: &Lab, pattern: &str, mode: &str, poison: &Path) -> Attacker {
        let stop = lab.fresh_path("stage/stop");
        let stage = lab.fresh_path("stage/swap");
        let child = Command::new("sh")
            .arg("-c")
            .arg(ATTACKER_SH)
            .arg("attacker")
            .arg(pattern)
            .arg(mode)
            .arg(poison)
            .arg(stage)
            .arg(&stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        Attacker {
            child: Some(child),
            stop,
        }
    }

    /// Stops the attacker; how many times it struck.
    fn stop(mut self) -> u64 {
        File::create(&self.stop).unwrap();
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = File::create(&self.stop);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TOCTOU.
// ---------------------------------------------------------------------------------------------

/// A racing thread renames poisoned (and valid) files over an entry while this thread looks
/// it up and reads the handle only after a pause: the bytes read must be the ones verified.
#[test]
fn toctou_racing_thread_swapping_the_entry_never_changes_handed_out_bytes() {
    let t = tempfile::tempdir().unwrap();
    let original = noise(512 << 10, 11);
    let sha = sha256_hex(&original);
    let persistent = |name: &str, encryption_key: Option<CacheKey>| {
        StoreCache::persistent(
            PersistentOptions::new(t.path().join(name), CacheKey::per_process())
                .encryption_key(encryption_key),
        )
        .unwrap()
    };
    let ephemeral = StoreCache::private(None).unwrap();
    let ephemeral_entry = deltaglider::testing::cache::dir_store(&ephemeral)
        .unwrap()
        .entry_path(&sha);
    let plain = persistent("plain", None);
    let plain_entry = deltaglider::testing::cache::dir_store(&plain)
        .unwrap()
        .entry_path(&sha);
    let encrypted = persistent("encrypted", Some(CacheKey::per_process()));
    let encrypted_entry = deltaglider::testing::cache::dir_store(&encrypted)
        .unwrap()
        .entry_path(&sha);
    let cases: Vec<(&str, Box<dyn ReferenceCache>, PathBuf)> = vec![
        ("ephemeral", Box::new(ephemeral), ephemeral_entry),
        ("persistent", Box::new(plain), plain_entry),
        ("persistent encrypted", Box::new(encrypted), encrypted_entry),
    ];
    for (name, cache, entry) in cases {
        fill(&*cache, &original);
        // The stored form (ciphertext when encrypted): a valid copy and a poisoned one of the
        // same size, so only the hash (or the AEAD tag) can tell them apart.
        let valid = fs::read(&entry).unwrap();
        let poison = corrupted(&valid);
        let stage = entry
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("attack-stage");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, entry) = (stop.clone(), entry.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for v in [&poison, &valid] {
                        if write_private(&stage, v).is_ok() && fs::rename(&stage, &entry).is_ok() {
                            swaps += 1;
                        }
                    }
                }
                swaps
            })
        };
        let start = Instant::now();
        let (mut hits, mut refills) = (0u32, 0u32);
        while start.elapsed() < Duration::from_secs(10)
            && (start.elapsed() < Duration::from_millis(700) || hits == 0 || refills == 0)
        {
            match cache.reference(&sha).unwrap() {
                Lookup::Hit(f) => {
                    std::thread::sleep(Duration::from_millis(2));
                    assert!(
                        read_all(f) == original,
                        "{name}: bytes behind a handle from a hit changed after verification"
                    );
                    hits += 1;
                }
                Lookup::Miss(mut slot) => {
                    let f = commit_into(&mut slot, &original);
                    std::thread::sleep(Duration::from_millis(2));
                    assert!(
                        read_all(f) == original,
                        "{name}: bytes behind the handle from commit() changed after verification"
                    );
                    refills += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        eprintln!("{name}: {swaps} swaps, {hits} verified hits, {refills} refused and refilled");
        assert!(
            swaps > 0 && hits > 0 && refills > 0,
            "{name}: the race was not exercised ({swaps} swaps, {hits} hits, {refills} refills)"
        );
    }
}

/// A racing thread overwrites the entry's bytes in place (same inode) while the engine
/// downloads: every download is byte-exact or fails with an integrity/codec error.
#[test]
fn toctou_racing_thread_rewriting_the_entry_in_place_never_yields_wrong_bytes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::new(t.path().join("store")).unwrap());
    rt.block_on(store.create_bucket("bkt")).unwrap();
    let cache = Arc::new(
        StoreCache::persistent(
            PersistentOptions::new(t.path().join("cache"), CacheKey::per_process()).monitor(true),
        )
        .unwrap(),
    );
    let engine = Engine::new(
        store,
        Arc::new(Xdelta3Codec::default()),
        cache.clone(),
        EngineSettings::default(),
    );
    let v1 = noise(MIB, 21);
    let v2 = edited(&v1, 22);
    for (name, bytes) in [("v1.zip", &v1), ("v2.zip", &v2)] {
        let p = t.path().join(name);
        fs::write(&p, bytes).unwrap();
        rt.block_on(engine.put_file(
            &p,
            "bkt",
            &format!("rel/{name}"),
            &PutRequestOptions::default(),
        ))
        .unwrap();
    }
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    rt.block_on(engine.get_to_file("bkt", "rel/v2.zip", &out.join("warm")))
        .unwrap();
    let entry = deltaglider::testing::cache::dir_store(&cache)
        .unwrap()
        .entry_path(&sha256_hex(&v1));
    assert!(entry.exists());

    let stop = Arc::new(AtomicBool::new(false));
    let rewriter = {
        let (stop, entry) = (stop.clone(), entry.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut f) = OpenOptions::new().write(true).open(&entry) {
                    let _ = f.seek(SeekFrom::Start(4096));
                    if f.write_all(b"EVIL BYTES WRITTEN IN PLACE").is_ok() {
                        n += 1;
                    }
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            n
        })
    };
    let (mut exact, mut refused) = (0u32, 0u32);
    let start = Instant::now();
    for i in 0.. {
        if i >= 6 && start.elapsed() > Duration::from_millis(1500) {
            break;
        }
        let dest = out.join(format!("v2-{i}"));
        match rt.block_on(engine.get_to_file("bkt", "rel/v2.zip", &dest)) {
            Ok(_) => {
                assert!(
                    fs::read(&dest).unwrap() == v2,
                    "download {i}: WRONG BYTES with the entry rewritten in place"
                );
                exact += 1;
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::IntegrityMismatch { .. } | Error::Codec { .. }),
                    "download {i}: unexpected error: {e}"
                );
                assert!(!dest.exists(), "download {i}: failed but wrote {dest:?}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rewrites = rewriter.join().unwrap();
    eprintln!(
        "in-place rewrite race: {rewrites} rewrites; {exact} downloads exact, {refused} failed with an integrity error"
    );
    assert!(rewrites > 0, "the race was not exercised");
    // Without the attacker the cache heals: the next download is exact.
    rt.block_on(engine.get_to_file("bkt", "rel/v2.zip", &out.join("after")))
        .unwrap();
    assert!(fs::read(out.join("after")).unwrap() == v2);
}

/// A second process keeps renaming a poisoned file over the persistent entry (then rewriting
/// it in place) while the binary downloads again and again.
#[test]
fn toctou_second_process_attacking_the_persistent_entry() {
    let lab = Lab::new();
    let s = space(&lab, "rel", 2 * MIB, 31);
    let root = lab.fresh_path("pc");
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    lab.get_exact(&s.v2_key(), &s.v2, &env, "populate");
    let entry = entry_path(&root, &s.sha);
    let poison = lab.path("stage/poison");
    write_private(&poison, &corrupted(&s.reference)).unwrap();

    let attacker = Attacker::start(&lab, entry.to_str().unwrap(), "swap", &poison);
    for i in 0..8 {
        lab.get_exact(
            &s.v2_key(),
            &s.v2,
            &env,
            &format!("download {i} while another process renames poison over the entry"),
        );
    }
    let swaps = attacker.stop();
    assert!(swaps > 0, "the attacker never struck");

    let attacker = Attacker::start(&lab, entry.to_str().unwrap(), "rewrite", &poison);
    let (mut exact, mut refused) = (0, 0);
    for i in 0..6 {
        let (out, dest) = lab.get(&s.v2_key(), &env);
        let what = format!("download {i} while another process rewrites the entry in place");
        if exact_or_clear_error(&out, &dest, &s.v2, &what) {
            exact += 1;
        } else {
            refused += 1;
        }
    }
    let rewrites = attacker.stop();
    eprintln!(
        "second process: {swaps} swaps (all downloads exact); {rewrites} in-place rewrites: {exact} exact, {refused} refused"
    );
    assert!(rewrites > 0, "the attacker never struck");
    lab.get_exact(&s.v2_key(), &s.v2, &env, "after the attack");
    let v = lab.verify_cache(&env);
    assert_eq!(
        (v["valid"].as_u64(), v["removed"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
}

/// A second process finds the private cache of a running download in TMPDIR and attacks
/// its entry while the binary decodes several versions from it.
#[test]
fn toctou_second_process_attacking_a_running_private_cache() {
    let lab = Lab::new();
    let reference = noise(2 * MIB, 41);
    let sha = sha256_hex(&reference);
    let mut versions = vec![reference.clone()];
    versions.extend((1..6).map(|i| edited(&reference, 41 + i)));
    for (i, v) in versions.iter().enumerate() {
        lab.upload(&format!("multi/v{i}.zip"), v, &[]);
    }
    let tmp = lab.fresh_dir("tmp");
    let pattern = format!(
        "{}/{PRIVATE_PREFIX}*/{}/{}/{sha}",
        tmp.display(),
        &sha[..2],
        &sha[2..4]
    );
    let poison = lab.path("stage/poison");
    write_private(&poison, &corrupted(&reference)).unwrap();
    for mode in ["swap", "rewrite"] {
        let attacker = Attacker::start(&lab, &pattern, mode, &poison);
        let out_dir = lab.fresh_dir("outdir");
        let out = output_within(
            lab.command(
                &["cp", "-r", "s3://bkt/multi/", out_dir.to_str().unwrap()],
                &[("TMPDIR", tmp.to_str().unwrap())],
            ),
            Duration::from_secs(60),
            mode,
        );
        let strikes = attacker.stop();
        let mut written = 0;
        for (i, v) in versions.iter().enumerate() {
            let p = out_dir.join(format!("v{i}.zip"));
            if p.exists() {
                assert!(
                    fs::read(&p).unwrap() == *v,
                    "{mode}: WRONG BYTES in {}",
                    p.display()
                );
                written += 1;
            }
        }
        eprintln!(
            "private cache, {mode}: {strikes} strikes, {written}/{} versions written",
            versions.len()
        );
        if mode == "swap" {
            assert!(
                out.status.success() && written == versions.len(),
                "a swapped entry must be refused and refetched: {}",
                stderr(&out)
            );
            assert!(strikes > 0, "the attacker never found the private entry");
        } else if !out.status.success() {
            assert_clear_error(&out, None, mode);
        }
        assert!(private_dirs(&tmp).is_empty(), "{mode}: private cache left");
    }
}

// ---------------------------------------------------------------------------------------------
// Poisoning and planted files.
// ---------------------------------------------------------------------------------------------

fn poison_entry(kind: &str, ea: &Path, ra: &Path, eb: &Path, rb: &Path) {
    match kind {
        "bytes appended" => OpenOptions::new()
            .append(true)
            .open(ea)
            .unwrap()
            .write_all(b"appended")
            .unwrap(),
        "a byte flipped" => {
            let mut f = OpenOptions::new().read(true).write(true).open(ea).unwrap();
            let mid = f.metadata().unwrap().len() / 2;
            let mut b = [0u8];
            f.seek(SeekFrom::Start(mid)).unwrap();
            f.read_exact(&mut b).unwrap();
            f.seek(SeekFrom::Start(mid)).unwrap();
            f.write_all(&[b[0] ^ 1]).unwrap();
        }
        "truncated by one byte" => {
            let f = OpenOptions::new().write(true).open(ea).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 1).unwrap();
        }
        "bytes of another valid entry" => {
            fs::copy(eb, ea).unwrap();
        }
        "bytes and record of another valid entry" => {
            fs::copy(eb, ea).unwrap();
            fs::copy(rb, ra).unwrap();
        }
        other => unreachable!("{other}"),
    }
}

#[test]
fn poisoned_entries_are_never_used_and_are_refetched() {
    let lab = Lab::new();
    // Two references of the same size: swapped bytes pass every size check.
    let a = space(&lab, "rel", MIB, 51);
    let b = space(&lab, "other", MIB, 52);
    for (mode, encryption) in [("signed", ""), ("signed+encrypted", ENC_KEY)] {
        let root = lab.fresh_path("pc");
        let env = [
            ("DG_CACHE_DIR", root.to_str().unwrap()),
            ("DG_CACHE_ENCRYPTION_KEY", encryption),
        ];
        lab.get_exact(&a.v2_key(), &a.v2, &env, "fill a");
        lab.get_exact(&b.v2_key(), &b.v2, &env, "fill b");
        let (ea, ra) = (entry_path(&root, &a.sha), record_path(&root, &a.sha));
        let (eb, rb) = (entry_path(&root, &b.sha), record_path(&root, &b.sha));
        for kind in [
            "bytes appended",
            "a byte flipped",
            "truncated by one byte",
            "bytes of another valid entry",
            "bytes and record of another valid entry",
        ] {
            let what = format!("{mode}, {kind}");
            assert!(ea.exists() && ra.exists(), "{what}: entry missing before");
            poison_entry(kind, &ea, &ra, &eb, &rb);
            {
                let _gone = lab.hide(&a.ref_key());
                let err = lab.get_fails(&a.v2_key(), &env, &format!("{what} (no reference)"));
                assert!(err.contains("missing"), "{what}: {err}");
            }
            assert!(
                !ea.exists() && !ra.exists(),
                "{what}: poisoned entry not removed"
            );
            lab.get_exact(&a.v2_key(), &a.v2, &env, &format!("{what}: refetched"));
        }
        // Control: the neighbour's entry was never disturbed and is used from the cache.
        {
            let _gone = lab.hide(&b.ref_key());
            lab.get_exact(&b.v2_key(), &b.v2, &env, "control: b from its entry");
        }
        let v = lab.verify_cache(&env);
        assert_eq!(
            (
                v["checked"].as_u64(),
                v["valid"].as_u64(),
                v["removed"].as_u64()
            ),
            (Some(2), Some(2), Some(0)),
            "{mode}: {v}"
        );
    }
}

#[test]
fn planted_symlinks_hardlinks_and_fifos_are_never_followed() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 61);
    let root = lab.fresh_path("pc");
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    lab.get_exact(&a.v2_key(), &a.v2, &env, "populate");
    let (ea, ra) = (entry_path(&root, &a.sha), record_path(&root, &a.sha));
    let outside = lab.fresh_dir("outside");
    let good = outside.join("good");
    let poison = outside.join("poison");
    let good_rec = outside.join("good.rec");
    write_private(&good, &a.reference).unwrap();
    write_private(&poison, &corrupted(&a.reference)).unwrap();
    write_private(&good_rec, &fs::read(&ra).unwrap()).unwrap();
    type Plant<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let plants: [Plant; 6] = [
        (
            "symlink at the entry to poisoned bytes",
            Box::new(|| {
                fs::remove_file(&ea).unwrap();
                std::os::unix::fs::symlink(&poison, &ea).unwrap();
            }),
        ),
        (
            "symlink at the entry to the right bytes",
            Box::new(|| {
                fs::remove_file(&ea).unwrap();
                std::os::unix::fs::symlink(&good, &ea).unwrap();
            }),
        ),
        (
            "hard link at the entry to the right bytes",
            Box::new(|| {
                fs::remove_file(&ea).unwrap();
                fs::hard_link(&good, &ea).unwrap();
            }),
        ),
        (
            "symlink at the record to a valid record",
            Box::new(|| {
                fs::remove_file(&ra).unwrap();
                std::os::unix::fs::symlink(&good_rec, &ra).unwrap();
            }),
        ),
        (
            "non-empty directory at the entry",
            Box::new(|| {
                fs::remove_file(&ea).unwrap();
                fs::create_dir(&ea).unwrap();
                fs::write(ea.join("inside"), b"x").unwrap();
            }),
        ),
        (
            "FIFO at the entry",
            Box::new(|| {
                fs::remove_file(&ea).unwrap();
                rustix::fs::mkfifoat(rustix::fs::CWD, &ea, rustix::fs::Mode::from_raw_mode(0o600))
                    .unwrap();
            }),
        ),
    ];
    for (what, plant) in &plants {
        plant();
        {
            let _gone = lab.hide(&a.ref_key());
            let err = lab.get_fails(&a.v2_key(), &env, &format!("{what} (no reference)"));
            assert!(err.contains("missing"), "{what}: {err}");
        }
        if ea.is_dir() {
            // A directory cannot be unlinked like a file: it stays, unused, and the entry is
            // served uncached (same-user denial of service only).
            fs::remove_dir_all(&ea).unwrap();
        }
        assert!(
            fs::symlink_metadata(&ea).is_err() && fs::symlink_metadata(&ra).is_err(),
            "{what}: the planted entry was not removed"
        );
        assert_eq!(
            fs::read(&good).unwrap(),
            a.reference,
            "{what}: target changed"
        );
        assert_eq!(fs::metadata(&good).unwrap().nlink(), 1, "{what}");
        assert_eq!(fs::read(&poison).unwrap(), corrupted(&a.reference));
        assert_eq!(fs::read(&good_rec).unwrap().len(), 108, "{what}");
        lab.get_exact(&a.v2_key(), &a.v2, &env, &format!("{what}: refetched"));
        let st = fs::symlink_metadata(&ea).unwrap();
        assert!(
            st.file_type().is_file() && st.nlink() == 1 && st.mode() & 0o777 == 0o600,
            "{what}: the refetched entry is not a private regular file: {st:?}"
        );
    }
}

#[test]
fn cache_root_symlink_or_file_is_refused_and_symlinked_levels_are_not_followed() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 71);
    // A symlink as the cache root.
    let real = lab.fresh_dir("real-root");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = lab.path("link-root");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = lab.get_fails(
        &a.v2_key(),
        &[("DG_CACHE_DIR", link.to_str().unwrap())],
        "symlinked cache root",
    );
    assert!(err.contains("symbolic link"), "{err}");
    assert!(files_under(&real).is_empty(), "written through the link");
    // A regular file (a hard link to someone's file) as the cache root.
    let victim = lab.path("stage/victim");
    fs::write(&victim, b"do not touch").unwrap();
    let file_root = lab.path("file-root");
    fs::hard_link(&victim, &file_root).unwrap();
    let err = lab.get_fails(
        &a.v2_key(),
        &[("DG_CACHE_DIR", file_root.to_str().unwrap())],
        "hard-linked file as cache root",
    );
    assert!(err.contains("refusing cache directory"), "{err}");
    assert_eq!(fs::read(&victim).unwrap(), b"do not touch");

    // A level directory (`ab/`) replaced by a symlink to another cache holding a valid entry:
    // never followed, neither to read nor to write.
    let other = lab.fresh_path("pc");
    let other_env = [("DG_CACHE_DIR", other.to_str().unwrap())];
    lab.get_exact(&a.v2_key(), &a.v2, &other_env, "fill the other cache");
    let other_files = files_under(&other);
    let root = lab.fresh_dir("pc");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(other.join(&a.sha[..2]), root.join(&a.sha[..2])).unwrap();
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    {
        let _gone = lab.hide(&a.ref_key());
        let err = lab.get_fails(&a.v2_key(), &env, "symlinked level (no reference)");
        assert!(err.contains("missing"), "{err}");
    }
    let level = root.join(&a.sha[..2]);
    assert!(
        !fs::symlink_metadata(&level).is_ok_and(|m| m.file_type().is_symlink()),
        "the planted level link should have been removed"
    );
    lab.get_exact(&a.v2_key(), &a.v2, &env, "symlinked level: refetched");
    assert_eq!(files_under(&other), other_files, "written through the link");
    assert!(fs::symlink_metadata(&level).unwrap().is_dir());
    let v = lab.verify_cache(&env);
    assert_eq!(v["valid"].as_u64(), Some(1), "{v}");
    assert_eq!(entries_under(&root).len(), 1);
}

#[test]
fn cache_root_owned_by_another_user_or_writable_by_others_is_refused() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 81);
    for mode in [0o777, 0o770, 0o1777, 0o702] {
        let dir = lab.fresh_dir("shared");
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        let err = lab.get_fails(
            &a.v2_key(),
            &[("DG_CACHE_DIR", dir.to_str().unwrap())],
            &format!("mode {mode:o}"),
        );
        assert!(
            err.contains("refusing cache directory") && err.contains("writable by group or others"),
            "mode {mode:o}: {err}"
        );
        assert!(files_under(&dir).is_empty());
    }
    if is_root() {
        let dir = lab.fresh_dir("foreign");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        let env = [("DG_CACHE_DIR", dir.to_str().unwrap())];
        let err = lab.get_fails(&a.v2_key(), &env, "root owned by uid 65534");
        assert!(
            err.contains("refusing cache directory") && err.contains("owned by uid 65534"),
            "{err}"
        );
        assert!(files_under(&dir).is_empty());
        // The legacy opt-out works, loudly.
        let (out, dest) = lab.get(
            &a.v2_key(),
            &[
                ("DG_CACHE_DIR", dir.to_str().unwrap()),
                ("DG_UNSAFE_SHARED_CACHE", "true"),
            ],
        );
        assert_exact(&out, &dest, &a.v2, "DG_UNSAFE_SHARED_CACHE=true");
        assert!(
            stderr(&out).contains("DG_UNSAFE_SHARED_CACHE"),
            "{}",
            stderr(&out)
        );
    } else {
        skipped("cache root owned by another uid");
    }
    // Persistence without a directory goes to $XDG_CACHE_HOME/deltaglider/v2, private.
    lab.get_exact(
        &a.v2_key(),
        &a.v2,
        &[("DG_EPHEMERAL_CACHE", "false")],
        "default persistent location",
    );
    let v2 = lab.path("xdg-cache/deltaglider/v2");
    assert_eq!(fs::metadata(&v2).unwrap().mode() & 0o777, 0o700);
    assert_eq!(entries_under(&v2).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Other users and other keys.
// ---------------------------------------------------------------------------------------------

/// The binary, or a copy of it that another user can run.
fn binary_for_others(lab: &Lab) -> PathBuf {
    let bin = support::dg_bin();
    let open_to_all = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    };
    if bin
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .all(open_to_all)
    {
        return bin;
    }
    let copy = lab.path("deltaglider-for-others");
    fs::copy(&bin, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn chown_tree(dir: &Path, uid: u32) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        std::os::unix::fs::lchown(e.path(), Some(uid), Some(uid)).unwrap();
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = files_under(dir)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn another_uid_can_neither_use_nor_poison_a_users_cache() {
    if !is_root() {
        skipped("multi-user cache attacks as uid 65534 (simulated by the foreign-key tests)");
        return;
    }
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 91);
    // Let uid 65534 reach the store and run the binary.
    fs::set_permissions(lab.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown_tree(&lab.path("store"), NOBODY);
    let bin = binary_for_others(&lab);
    let nobody = lab.path("nobody");
    fs::create_dir(&nobody).unwrap();
    for d in USER_DIRS {
        fs::create_dir(nobody.join(d)).unwrap();
    }
    chown_tree(&nobody, NOBODY);
    fs::set_permissions(&nobody, fs::Permissions::from_mode(0o700)).unwrap();
    let nobody_get = |key: &str, env: &[(&str, &str)]| {
        let dest = nobody
            .join("out")
            .join(format!("{}", lab.n.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = lab.command_of(
            &bin,
            &nobody,
            &["cp", &format!("s3://bkt/{key}"), dest.to_str().unwrap()],
            env,
        );
        cmd.uid(NOBODY).gid(NOBODY);
        (output_within(cmd, Duration::from_secs(60), key), dest)
    };
    // Sanity: uid 65534 can download with its own private cache.
    let (out, dest) = nobody_get(&a.v2_key(), &[]);
    assert_exact(&out, &dest, &a.v2, "uid 65534, private cache");

    // 1. Root's private persistent cache: refused to uid 65534, and left untouched.
    let root_cache = lab.fresh_path("root-cache");
    let rc = root_cache.to_str().unwrap();
    lab.get_exact(&a.v2_key(), &a.v2, &[("DG_CACHE_DIR", rc)], "root fills");
    let before = snapshot(&root_cache);
    let (out, dest) = nobody_get(&a.v2_key(), &[("DG_CACHE_DIR", rc)]);
    let err = assert_clear_error(&out, Some(&dest), "uid 65534 on root's cache");
    assert!(
        err.contains(rc),
        "the error should name the directory: {err}"
    );
    let (out, dest) = nobody_get(
        &a.v2_key(),
        &[("DG_CACHE_DIR", rc), ("DG_UNSAFE_SHARED_CACHE", "true")],
    );
    exact_or_clear_error(&out, &dest, &a.v2, "uid 65534 on root's cache, unsafe");
    assert_eq!(
        snapshot(&root_cache),
        before,
        "uid 65534 changed root's cache"
    );

    // 2. A cache made by uid 65534 in a shared sticky directory (like /tmp).
    let shared = lab.fresh_dir("shared");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let sc = shared.join("cache");
    let sc = sc.to_str().unwrap();
    let (out, dest) = nobody_get(&a.v2_key(), &[("DG_CACHE_DIR", sc)]);
    assert_exact(&out, &dest, &a.v2, "uid 65534 fills the shared cache");
    assert_eq!(fs::metadata(sc).unwrap().uid(), NOBODY);
    let err = lab.get_fails(
        &a.v2_key(),
        &[("DG_CACHE_DIR", sc)],
        "root on 65534's cache",
    );
    assert!(err.contains("owned by uid 65534"), "{err}");
    // Even with the checks off and the same signing key, root never uses 65534's entry.
    let unsafe_env = [("DG_CACHE_DIR", sc), ("DG_UNSAFE_SHARED_CACHE", "true")];
    {
        let _gone = lab.hide(&a.ref_key());
        let err = lab.get_fails(&a.v2_key(), &unsafe_env, "root, unsafe, 65534's entry");
        assert!(err.contains("missing"), "{err}");
    }
    lab.get_exact(&a.v2_key(), &a.v2, &unsafe_env, "root refetches");
    let entry = entry_path(Path::new(sc), &a.sha);
    assert_eq!(
        fs::metadata(&entry).unwrap().uid(),
        0,
        "root's own entry now"
    );
    // And 65534 never uses root's.
    {
        let _gone = lab.hide(&a.ref_key());
        let (out, dest) = nobody_get(&a.v2_key(), &unsafe_env);
        let err = assert_clear_error(&out, Some(&dest), "65534, unsafe, root's entry");
        assert!(err.contains("missing"), "{err}");
    }

    // 3. Private caches in a shared TMPDIR: traps planted by 65534 are not followed, and
    //    root's clean-up of stale private caches never touches another user's.
    let canary_dir = lab.fresh_dir("root-files");
    fs::write(canary_dir.join("canary"), b"root's file").unwrap();
    let trap = shared.join(format!("{PRIVATE_PREFIX}trap"));
    std::os::unix::fs::symlink(&canary_dir, &trap).unwrap();
    std::os::unix::fs::lchown(&trap, Some(NOBODY), Some(NOBODY)).unwrap();
    let theirs = shared.join(format!("{PRIVATE_PREFIX}theirs"));
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join("f"), b"65534's file").unwrap();
    chown_tree(&theirs, NOBODY);
    set_mtime(&theirs, Duration::from_secs(3600));
    let tmp_env = [("TMPDIR", shared.to_str().unwrap())];
    lab.get_exact(&a.v2_key(), &a.v2, &tmp_env, "root in a shared TMPDIR");
    assert_eq!(fs::read(canary_dir.join("canary")).unwrap(), b"root's file");
    assert_eq!(
        fs::read(theirs.join("f")).unwrap(),
        b"65534's file",
        "root's clean-up removed another user's private cache"
    );
    let (out, dest) = nobody_get(&a.v2_key(), &tmp_env);
    assert_exact(&out, &dest, &a.v2, "65534 in a shared TMPDIR");
    assert_eq!(fs::read(canary_dir.join("canary")).unwrap(), b"root's file");
    // 65534's own stale directory may go; nothing else of anyone's is left or removed.
    let left: BTreeSet<_> = private_dirs(&shared).into_iter().collect();
    assert!(
        left.contains(&trap) && left.len() <= 2,
        "private caches left: {left:?}"
    );
}

#[test]
fn entries_signed_under_another_users_key_are_never_used() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 101);
    let root = lab.fresh_path("pc");
    let rs = root.to_str().unwrap();
    let key_a = [("DG_CACHE_DIR", rs), ("DG_CACHE_KEY", KEY_A)];
    let key_b = [("DG_CACHE_DIR", rs), ("DG_CACHE_KEY", KEY_B)];
    lab.get_exact(&a.v2_key(), &a.v2, &key_a, "fill under key A");
    let rec_a = fs::read(record_path(&root, &a.sha)).unwrap();
    {
        let _gone = lab.hide(&a.ref_key());
        lab.get_exact(&a.v2_key(), &a.v2, &key_a, "control: key A uses its entry");
        let err = lab.get_fails(&a.v2_key(), &key_b, "key B on key A's entry");
        assert!(err.contains("missing"), "{err}");
        assert!(
            !entry_path(&root, &a.sha).exists(),
            "rejected entry removed"
        );
    }
    lab.get_exact(&a.v2_key(), &a.v2, &key_b, "key B refetches");
    let rec_b = fs::read(record_path(&root, &a.sha)).unwrap();
    assert_ne!(rec_a[68..76], rec_b[68..76], "record re-signed under key B");
    {
        let _gone = lab.hide(&a.ref_key());
        let err = lab.get_fails(&a.v2_key(), &key_a, "key A on key B's entry");
        assert!(err.contains("missing"), "{err}");
    }

    // The same with per-user key files instead of DG_CACHE_KEY.
    let root = lab.fresh_path("pc");
    let rs = root.to_str().unwrap();
    let (cfg_a, cfg_b) = (lab.fresh_dir("config"), lab.fresh_dir("config"));
    let user_a = [
        ("DG_CACHE_DIR", rs),
        ("DG_CACHE_KEY", ""),
        ("XDG_CONFIG_HOME", cfg_a.to_str().unwrap()),
    ];
    let user_b = [
        ("DG_CACHE_DIR", rs),
        ("DG_CACHE_KEY", ""),
        ("XDG_CONFIG_HOME", cfg_b.to_str().unwrap()),
    ];
    lab.get_exact(&a.v2_key(), &a.v2, &user_a, "user A (key file)");
    let key_file = cfg_a.join("deltaglider/cache.key");
    assert_eq!(
        fs::metadata(&key_file).unwrap().mode() & 0o077,
        0,
        "key file not private"
    );
    {
        let _gone = lab.hide(&a.ref_key());
        lab.get_exact(
            &a.v2_key(),
            &a.v2,
            &user_a,
            "control: user A uses its entry",
        );
        let err = lab.get_fails(&a.v2_key(), &user_b, "user B (key file) on A's entry");
        assert!(err.contains("missing"), "{err}");
    }
    assert_ne!(
        fs::read(&key_file).unwrap(),
        fs::read(cfg_b.join("deltaglider/cache.key")).unwrap()
    );
}

#[test]
fn expired_entries_are_never_used() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 111);
    // A real expiry: one-second TTL, then a wait.
    let root = lab.fresh_path("pc");
    let env = [
        ("DG_CACHE_DIR", root.to_str().unwrap()),
        ("DG_CACHE_TTL", "1"),
    ];
    lab.get_exact(&a.v2_key(), &a.v2, &env, "fill with a 1 s TTL");
    std::thread::sleep(Duration::from_millis(2100));
    {
        let _gone = lab.hide(&a.ref_key());
        let err = lab.get_fails(&a.v2_key(), &env, "expired entry");
        assert!(err.contains("missing"), "{err}");
    }
    assert!(
        !entry_path(&root, &a.sha).exists(),
        "expired entry not removed"
    );
    lab.get_exact(&a.v2_key(), &a.v2, &env, "refetched after expiry");

    // Records forged with the right key but a past expiry, and re-dated without the key.
    let root = lab.fresh_path("pc");
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    let signer = RecordSigner::new(CacheKey::hmac_from_env("DG_CACHE_KEY", KEY_A).unwrap());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rec = record_path(&root, &a.sha);
    type Forge = fn(&mut Record, &RecordSigner, u64);
    let forgeries: [(&str, Forge); 2] = [
        ("validly signed, expired 10 s ago", |r, s, now| {
            r.created = now - 100;
            r.expires = now - 10;
            s.sign(r);
        }),
        ("expiry moved forward without the key", |r, _, now| {
            r.created = now - 100;
            r.expires = now + 10 * 365 * 86400;
        }),
    ];
    for (what, forge) in forgeries {
        lab.get_exact(&a.v2_key(), &a.v2, &env, "fill");
        {
            let _gone = lab.hide(&a.ref_key());
            lab.get_exact(&a.v2_key(), &a.v2, &env, "control: fresh entry used");
        }
        let mut r = Record::decode(&fs::read(&rec).unwrap()).unwrap();
        forge(&mut r, &signer, now);
        fs::write(&rec, r.encode()).unwrap();
        {
            let _gone = lab.hide(&a.ref_key());
            let err = lab.get_fails(&a.v2_key(), &env, what);
            assert!(err.contains("missing"), "{what}: {err}");
        }
        assert!(!rec.exists(), "{what}: record not removed");
    }
}

// ---------------------------------------------------------------------------------------------
// Killed writers, signals, concurrent fillers.
// ---------------------------------------------------------------------------------------------

/// Waits for a temporary cache file of at least 2 MiB below `dir` while `p` runs.
fn wait_mid_write(p: &mut Proc, dir: &Path, what: &str) -> PathBuf {
    wait_for(Duration::from_secs(60), what, || {
        assert!(
            p.running(),
            "{what}: finished before it could be interrupted (make the reference bigger)"
        );
        temps_under(dir)
            .into_iter()
            .find(|t| fs::metadata(t).is_ok_and(|m| m.len() >= 2 * MIB as u64))
    })
}

#[test]
fn interrupted_and_killed_downloads_leave_nothing_usable_or_private_behind() {
    let lab = Lab::new();
    let big = noise(32 * MIB, 121);
    lab.upload("big/big.zip", &big, &[]);
    let key = "big/big.zip";

    // 1. SIGKILL in the middle of writing the persistent entry.
    let root = lab.fresh_path("pc");
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    let (mut p, _) = lab.spawn_get(key, &env);
    let temp = wait_mid_write(&mut p, &root, "persistent fill");
    p.signal(libc::SIGKILL);
    let status = p.output().status;
    assert!(!status.success());
    let partial = fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
    assert!(
        partial < big.len() as u64,
        "the kill landed after the write"
    );
    assert!(
        entries_under(&root).is_empty(),
        "a killed writer published an entry"
    );
    lab.get_exact(key, &big, &env, "after a writer was killed mid-write");
    // The truncated temp file is ignored while it might belong to a live writer, and removed
    // once idle (simulated by ageing it).
    if temp.exists() {
        set_mtime(&temp, Duration::from_secs(3600));
    }
    let v = lab.verify_cache(&env);
    assert!(!temp.exists(), "stale temp file not cleaned: {v}");
    assert!(temps_under(&root).is_empty());
    assert_eq!(v["valid"].as_u64(), Some(1), "{v}");

    // 2. SIGKILL of a process using the default private cache: its directory outlives it
    //    (nothing can run), and a later process removes it once it is idle.
    let tmp = lab.fresh_dir("tmp");
    let tmp_env = [("TMPDIR", tmp.to_str().unwrap())];
    let (mut p, _) = lab.spawn_get(key, &tmp_env);
    wait_mid_write(&mut p, &tmp, "private fill");
    let dirs = private_dirs(&tmp);
    assert_eq!(dirs.len(), 1);
    let st = fs::metadata(&dirs[0]).unwrap();
    assert_eq!(st.mode() & 0o777, 0o700, "private cache not private");
    assert_eq!(st.uid(), rustix::process::geteuid().as_raw());
    p.signal(libc::SIGKILL);
    p.output();
    assert_eq!(private_dirs(&tmp), dirs, "SIGKILL: the directory stays");
    lab.ok(&["ls", "s3://bkt"], &tmp_env);
    assert_eq!(
        private_dirs(&tmp),
        dirs,
        "removed while it could still be in use"
    );
    set_mtime(&dirs[0], Duration::from_secs(3600));
    lab.ok(&["ls", "s3://bkt"], &tmp_env);
    assert!(
        private_dirs(&tmp).is_empty(),
        "stale private cache not removed"
    );

    // 3. A live download's private directory survives another process's clean-up even if
    //    it looks idle.
    let (mut p, dest) = lab.spawn_get(key, &tmp_env);
    wait_mid_write(&mut p, &tmp, "live private fill");
    let dirs = private_dirs(&tmp);
    set_mtime(&dirs[0], Duration::from_secs(3600));
    lab.ok(&["ls", "s3://bkt"], &tmp_env);
    if p.running() {
        assert_eq!(private_dirs(&tmp), dirs, "a live private cache was removed");
    } else {
        eprintln!("note: the download finished before the clean-up check could run");
    }
    assert_exact(&p.output(), &dest, &big, "live download next to a clean-up");
    assert!(private_dirs(&tmp).is_empty());

    // 4. SIGTERM and SIGINT mid-download: private cache and partial output removed.
    for (sig, word) in [(libc::SIGTERM, "terminated"), (libc::SIGINT, "interrupted")] {
        let tmp = lab.fresh_dir("tmp");
        let tmp_env = [("TMPDIR", tmp.to_str().unwrap())];
        let (mut p, dest) = lab.spawn_get(key, &tmp_env);
        wait_mid_write(&mut p, &tmp, word);
        p.signal(sig);
        let out = p.output();
        let err = assert_clear_error(&out, Some(&dest), word);
        assert!(err.contains(word), "{err}");
        assert!(
            private_dirs(&tmp).is_empty(),
            "{word}: private cache left: {:?}",
            files_under(&tmp)
        );
    }
    // 5. SIGTERM while xdelta3 decodes from the published private entry.
    let tmp = lab.fresh_dir("tmp");
    let tmp_env = [("TMPDIR", tmp.to_str().unwrap())];
    let (mut p, dest) = lab.spawn_get(key, &tmp_env);
    wait_for(Duration::from_secs(60), "a published private entry", || {
        assert!(
            p.running(),
            "finished before the decode could be interrupted"
        );
        (!entries_under(&tmp).is_empty()).then_some(())
    });
    p.signal(libc::SIGTERM);
    let out = p.output();
    if out.status.success() {
        eprintln!("note: the decode finished before SIGTERM landed");
        assert_exact(&out, &dest, &big, "SIGTERM after the decode");
    } else {
        assert_clear_error(&out, Some(&dest), "SIGTERM during decode");
    }
    assert!(
        private_dirs(&tmp).is_empty(),
        "SIGTERM during decode: private cache left: {:?}",
        files_under(&tmp)
    );
}

#[test]
fn private_cache_directory_is_removed_after_success_and_after_errors() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 131);
    let b = space(&lab, "bad", MIB, 132);
    // Corrupt the delta of bad/v2.zip: the reference enters the private cache, then decoding
    // or verification fails.
    let delta = lab.object_file("bad/v2.zip.delta");
    let mut bytes = fs::read(&delta).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0xff;
    fs::write(&delta, bytes).unwrap();
    let tmp = lab.fresh_dir("tmp");
    let env = [("TMPDIR", tmp.to_str().unwrap())];
    lab.get_exact(&a.v2_key(), &a.v2, &env, "success");
    assert!(private_dirs(&tmp).is_empty(), "left after success");
    lab.get_fails("rel/missing.zip", &env, "missing object");
    assert!(private_dirs(&tmp).is_empty(), "left after a missing object");
    lab.get_fails(&b.v2_key(), &env, "corrupt delta");
    assert!(private_dirs(&tmp).is_empty(), "left after a failed decode");
    let blocker = lab.path("stage/a-file");
    fs::write(&blocker, b"").unwrap();
    let out = lab.run(
        &[
            "cp",
            "s3://bkt/rel/v2.zip",
            blocker.join("x").to_str().unwrap(),
        ],
        &env,
    );
    assert_clear_error(&out, None, "unwritable destination");
    assert!(
        private_dirs(&tmp).is_empty(),
        "left after an unwritable destination"
    );
}

#[test]
fn processes_filling_one_persistent_cache_concurrently_get_exact_bytes() {
    let lab = Lab::new();
    let a = space(&lab, "rel", 3 * MIB, 141);
    let v3 = edited(&a.reference, 142);
    lab.upload("rel/v3.zip", &v3, &[]);
    let root = lab.fresh_path("pc");
    let env = [("DG_CACHE_DIR", root.to_str().unwrap())];
    let jobs: [(&str, &[u8]); 3] = [
        ("rel/v1.zip", &a.reference),
        ("rel/v2.zip", &a.v2),
        ("rel/v3.zip", &v3),
    ];
    for round in 0..3 {
        let running: Vec<_> = jobs
            .iter()
            .map(|(key, _)| lab.spawn_get(key, &env))
            .collect();
        for ((p, dest), (key, expected)) in running.into_iter().zip(jobs) {
            assert_exact(
                &p.output(),
                &dest,
                expected,
                &format!("round {round}: {key}"),
            );
        }
        let v = lab.verify_cache(&env);
        assert_eq!(
            (
                v["checked"].as_u64(),
                v["valid"].as_u64(),
                v["removed"].as_u64()
            ),
            (Some(1), Some(1), Some(0)),
            "round {round}: {v}"
        );
        assert!(
            temps_under(&root).is_empty(),
            "round {round}: temp files left"
        );
        lab.ok(&["cache", "clear"], &env);
        assert!(entries_under(&root).is_empty(), "cache clear left entries");
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption, storage tampering, endpoints.
// ---------------------------------------------------------------------------------------------

/// Looks for `marker` in every regular file below `dirs` (with grep: fast even while the
/// tests are a debug build); counts sightings of entry files.
fn scan(dirs: &[&Path], marker: &str, found: &mut BTreeSet<PathBuf>, seen: &mut usize) {
    let dirs: Vec<&Path> = dirs.iter().copied().filter(|d| d.exists()).collect();
    for d in &dirs {
        *seen += entries_under(d).len();
    }
    let out = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", "--", marker])
        .args(&dirs)
        .stderr(Stdio::null())
        .output()
        .expect("grep");
    found.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from),
    );
}

#[test]
fn encrypted_caches_never_write_the_reference_in_plaintext() {
    let lab = Lab::new();
    let marker = format!(
        "DG-PLAINTEXT-MARKER-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut reference = noise(3 * MIB, 151);
    for off in (0..reference.len() - marker.len()).step_by(128 << 10) {
        reference[off..off + marker.len()].copy_from_slice(marker.as_bytes());
    }
    // The scanner works: it finds the marker in a plaintext copy.
    let probe = lab.fresh_dir("probe");
    fs::write(probe.join("plain"), &reference).unwrap();
    let (mut found, mut seen) = (BTreeSet::new(), 0usize);
    scan(&[&probe], &marker, &mut found, &mut seen);
    assert_eq!(found.len(), 1, "the plaintext scanner is broken");
    let mut versions = vec![reference.clone()];
    versions.extend((1..5).map(|i| edited(&reference, 151 + i)));
    for (i, v) in versions.iter().enumerate() {
        lab.upload(&format!("enc/v{i}.zip"), v, &[]);
    }
    for config in [
        "private, configured key",
        "private, per-process key",
        "persistent, configured key",
        "memory backend",
    ] {
        let tmp = lab.fresh_dir("tmp");
        let root = lab.fresh_path("pc");
        let mut env = vec![("TMPDIR", tmp.to_str().unwrap())];
        match config {
            "private, configured key" => env.push(("DG_CACHE_ENCRYPTION_KEY", ENC_KEY)),
            "private, per-process key" => env.push(("DG_CACHE_ENCRYPT", "true")),
            "persistent, configured key" => {
                env.push(("DG_CACHE_DIR", root.to_str().unwrap()));
                env.push(("DG_CACHE_ENCRYPTION_KEY", ENC_KEY));
            }
            _ => env.push(("DG_CACHE_BACKEND", "memory")),
        }
        let out_dir = lab.fresh_dir("plain-out");
        let mut p = Proc(Some(
            lab.command(
                &["cp", "-r", "s3://bkt/enc/", out_dir.to_str().unwrap()],
                &env,
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        ));
        let (mut found, mut seen) = (BTreeSet::new(), 0usize);
        while p.running() {
            scan(&[&tmp, &root], &marker, &mut found, &mut seen);
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = p.output();
        scan(&[&tmp, &root], &marker, &mut found, &mut seen);
        assert!(out.status.success(), "{config}: {}", stderr(&out));
        for (i, v) in versions.iter().enumerate() {
            assert!(
                fs::read(out_dir.join(format!("v{i}.zip"))).unwrap() == *v,
                "{config}: WRONG BYTES for v{i}"
            );
        }
        assert!(
            found.is_empty(),
            "{config}: PLAINTEXT of the reference written to {found:?}"
        );
        eprintln!("{config}: {seen} sightings of encrypted entries, no plaintext");
        match config {
            "memory backend" => assert_eq!(seen, 0, "{config}: entries on disk"),
            "persistent, configured key" => {
                let entries = entries_under(&root);
                assert_eq!(entries.len(), 1);
                assert!(fs::metadata(&entries[0]).unwrap().len() > reference.len() as u64);
            }
            _ => assert!(seen > 0, "{config}: the scan never saw the encrypted entry"),
        }
        assert!(
            private_dirs(&tmp).is_empty(),
            "{config}: private cache left"
        );
    }
}

#[test]
fn reference_replaced_in_storage_is_detected_by_dg_ref_sha256() {
    let lab = Lab::new();
    let a = space(&lab, "rel", 2 * MIB, 161);
    let kept = lab.fresh_path("pc");
    let kept_env = [("DG_CACHE_DIR", kept.to_str().unwrap())];
    lab.get_exact(&a.v2_key(), &a.v2, &kept_env, "fill before the replacement");
    // One flipped byte: plausible, same size, same metadata.
    let mut impostor = a.reference.clone();
    impostor[MIB] ^= 1;
    replace_object_bytes(&lab.object_file(&a.ref_key()), &impostor);

    let tmp = lab.fresh_dir("tmp");
    let fresh = lab.fresh_path("pc");
    let t = tmp.to_str().unwrap();
    let f = fresh.to_str().unwrap();
    let configs: [(&str, Vec<(&str, &str)>); 5] = [
        ("private cache", vec![("TMPDIR", t)]),
        (
            "encrypted private cache",
            vec![("TMPDIR", t), ("DG_CACHE_ENCRYPTION_KEY", ENC_KEY)],
        ),
        ("no cache", vec![("TMPDIR", t), ("DG_NO_CACHE", "true")]),
        (
            "memory backend",
            vec![("TMPDIR", t), ("DG_CACHE_BACKEND", "memory")],
        ),
        (
            "empty persistent cache",
            vec![("TMPDIR", t), ("DG_CACHE_DIR", f)],
        ),
    ];
    for (what, env) in &configs {
        let err = lab.get_fails(&a.v2_key(), env, what);
        assert!(
            err.contains("integrity check failed") && err.contains("rel/reference.bin"),
            "{what}: the error should name the reference and the hash mismatch: {err}"
        );
        assert!(private_dirs(&tmp).is_empty(), "{what}: private cache left");
        let out = lab.run(&["verify", &format!("s3://bkt/{}", a.v2_key())], env);
        assert!(
            !out.status.success(),
            "{what}: verify passed with a replaced reference"
        );
    }
    assert!(entries_under(&fresh).is_empty(), "the impostor was cached");
    assert!(temps_under(&fresh).is_empty());
    // The verified original already in a persistent cache may still be used.
    lab.get_exact(
        &a.v2_key(),
        &a.v2,
        &kept_env,
        "verified original from the cache",
    );
}

#[test]
fn endpoints_with_the_same_bucket_and_keys_never_share_a_reference() {
    let lab = Lab::new();
    let a = space(&lab, "rel", MIB, 171);
    let other = format!("file://{}", lab.path("store-b").display());
    let env_b = [("DG_ENDPOINT_URL", other.as_str())];
    lab.ok(&["mb", "s3://bkt"], &env_b);
    let b = space_in(&lab, "rel", MIB, 172, &env_b);
    assert_eq!(a.v2_key(), b.v2_key());
    let root = lab.fresh_path("pc");
    let rs = root.to_str().unwrap();
    let on_a = [("DG_CACHE_DIR", rs)];
    let on_b = [("DG_CACHE_DIR", rs), ("DG_ENDPOINT_URL", other.as_str())];
    for round in 0..2 {
        lab.get_exact(
            &a.v2_key(),
            &a.v2,
            &on_a,
            &format!("endpoint A, round {round}"),
        );
        lab.get_exact(
            &b.v2_key(),
            &b.v2,
            &on_b,
            &format!("endpoint B, round {round}"),
        );
    }
    assert_eq!(
        entries_under(&root).len(),
        2,
        "one entry per reference content"
    );
}
