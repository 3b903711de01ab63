//! Interoperability with the Python `deltaglider` 6.2.0 tool and with the `xdelta3` program,
//! against a real S3 server.
//!
//! Each test uses its own bucket, removed at the end (best effort, also when the test fails).
//! The Python CLI (`DG_PYTHON_DELTAGLIDER`) runs as a subprocess with a private `TMPDIR`;
//! `xdelta3` is the third oracle for the deltas we write.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use bytes::Bytes;
use deltaglider::PutRequestOptions;
use deltaglider::StoredAs;
use deltaglider::UserMetadata;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::local::LocalStore;
use deltaglider::storage::s3::S3Store;
use deltaglider::storage::{ListRequest, ObjectStore, PutOptions, PutSource};
use serde_json::Value;
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `path` holds exactly `expected` (hash first, for a readable message).
fn assert_same_file(path: &Path, expected: &[u8], what: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{what}: cannot read {path:?}: {e}"));
    assert_eq!(
        sha256(&got),
        sha256(expected),
        "{what}: {} bytes back, {} expected",
        got.len(),
        expected.len()
    );
    assert!(got == expected, "{what}: bytes differ");
}

/// The Python CLI with a private, quiet environment pointed at the test server.
struct Python {
    exe: PathBuf,
    endpoint: String,
    tmp: tempfile::TempDir,
}

impl Python {
    fn new(exe: PathBuf, endpoint: &str) -> Self {
        Python {
            exe,
            endpoint: endpoint.to_string(),
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("DG_SUPPRESS_DEPRECATION", "1")
            .env("DG_LOG_LEVEL", "ERROR")
            // Never probe the EC2 metadata address: only the loopback server is a target.
            .env("DG_DISABLE_EC2_DETECTION", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("TMPDIR", self.tmp.path());
        for var in [
            "DG_MAX_RATIO",
            "DG_CACHE_BACKEND",
            "DG_CACHE_MEMORY_SIZE_MB",
            "DG_CACHE_ENCRYPTION_KEY",
            "DG_METRICS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn check(args: &[&str], out: Output) -> String {
        assert!(
            out.status.success(),
            "python deltaglider {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run python deltaglider");
        Self::check(args, out)
    }

    /// Same, in a working directory.
    fn ok_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .command(args)
            .current_dir(dir)
            .output()
            .expect("run python deltaglider");
        Self::check(args, out)
    }

    /// `cp local s3://...`: the Python tool names the object after the local file.
    fn upload(&self, file: &Path, url: &str) {
        self.ok(&["cp", file.to_str().unwrap(), url]);
    }

    /// Python `ls`: display name -> size shown (Python shows the stored size).
    fn ls(&self, url: &str) -> BTreeMap<String, u64> {
        let out = self.ok(&["ls", url]);
        let mut entries = BTreeMap::new();
        for line in out.lines() {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            if tokens.is_empty() || tokens[0] == "PRE" {
                continue;
            }
            assert!(tokens.len() >= 4, "unexpected python ls line {line:?}");
            let size = tokens[tokens.len() - 2]
                .parse()
                .unwrap_or_else(|_| panic!("no size in python ls line {line:?}"));
            let dup = entries.insert(tokens[tokens.len() - 1].to_string(), size);
            assert!(dup.is_none(), "python ls shows {line:?} twice:\n{out}");
        }
        entries
    }
}

/// Runs our CLI; it must succeed. Returns stdout.
fn dg(endpoint: &str, args: &[&str]) -> String {
    let out = support::run_dg(
        args,
        &[
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(
        out.status.success(),
        "deltaglider {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Our `ls --json`: logical key -> (original size, stored-as), plus the prefixes.
fn dg_ls(endpoint: &str, url: &str) -> (BTreeMap<String, (u64, String)>, Vec<String>) {
    let out = dg(endpoint, &["ls", "--json", url]);
    let v: Value = serde_json::from_str(out.trim()).expect("ls --json prints JSON");
    let objects = v["objects"]
        .as_array()
        .expect("objects array")
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_string(),
                (
                    o["size"].as_u64().unwrap(),
                    o["stored_as"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let prefixes = v["prefixes"]
        .as_array()
        .expect("prefixes array")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    (objects, prefixes)
}

/// Downloads with our CLI to `dir/<name>`, checks the bytes and runs `verify`.
fn dg_get_and_verify(endpoint: &str, url: &str, dir: &Path, name: &str, expected: &[u8]) {
    let dest = dir.join(name);
    let _ = std::fs::remove_file(&dest);
    dg(endpoint, &["cp", url, dest.to_str().unwrap()]);
    assert_same_file(&dest, expected, &format!("our download of {url}"));
    let verify = dg(endpoint, &["verify", url]);
    assert!(verify.starts_with("OK "), "verify {url}: {verify}");
}

/// A bucket for one test, removed when dropped (also when the test panics).
struct Bucket {
    name: String,
    endpoint: String,
    store: Arc<S3Store>,
}

impl Bucket {
    async fn create(endpoint: &str) -> Self {
        let store = support::s3_store(endpoint).await;
        let name = support::unique_bucket("py");
        store.create_bucket(&name).await.expect("create bucket");
        Bucket {
            name,
            endpoint: endpoint.to_string(),
            store,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    /// Every stored key under `prefix` with its stored size, as S3 lists it.
    async fn raw_keys(&self, prefix: &str) -> BTreeMap<String, u64> {
        let mut request = ListRequest {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        let mut keys = BTreeMap::new();
        loop {
            let page = self
                .store
                .list_objects(&self.name, &request)
                .await
                .expect("list");
            keys.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
            match page.next_token {
                Some(t) => request.continuation_token = Some(t),
                None => return keys,
            }
        }
    }

    /// The stored bytes of exactly `key`, through the SDK.
    async fn raw_get(&self, key: &str) -> Vec<u8> {
        let out = self
            .store
            .client()
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    }

    /// The user metadata of exactly `key`.
    async fn meta(&self, key: &str) -> UserMetadata {
        self.store
            .head_object(&self.name, key)
            .await
            .expect("head")
            .unwrap_or_else(|| panic!("{key} is missing"))
            .metadata
            .unwrap_or_default()
    }

    /// Replaces the user metadata of `key` by copying it onto itself.
    async fn replace_meta(&self, key: &str, meta: &UserMetadata) {
        self.store
            .client()
            .copy_object()
            .bucket(&self.name)
            .key(key)
            .copy_source(format!("{}/{key}", self.name))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(
                meta.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {key} onto itself: {e:?}"));
    }

    /// A plain object: no DeltaGlider metadata at all.
    async fn put_plain(&self, key: &str, bytes: &[u8]) {
        self.store
            .client()
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let out = support::run_dg(
            &["rb", "--force", &format!("s3://{}", self.name)],
            &[
                ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        );
        if !out.status.success() {
            eprintln!(
                "warning: could not remove bucket {}: {}",
                self.name,
                text(&out.stderr)
            );
        }
    }
}

/// The test server's endpoint, the Python CLI pointed at it and a fresh bucket; `None` (the
/// test is skipped, loudly, by the support functions) when either is missing.
async fn python_and_bucket() -> Option<(String, Python, Bucket)> {
    let endpoint = support::s3_endpoint()?;
    let py = Python::new(support::python_deltaglider()?, &endpoint);
    let b = Bucket::create(&endpoint).await;
    Some((endpoint, py, b))
}

/// `program -c` over `input`: through a pipe when `input` is bytes (no name or time in the
/// header, as `tar czf` writes), or on the named file (gzip then records its name and time).
fn gzip(input: Result<&[u8], &Path>) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new("gzip");
    cmd.arg("-c").stdout(Stdio::piped());
    match input {
        Ok(bytes) => {
            let mut child = cmd.stdin(Stdio::piped()).spawn().expect("run gzip");
            let mut stdin = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            let feeder = std::thread::spawn(move || stdin.write_all(&bytes));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            out.stdout
        }
        Err(path) => cmd.arg(path).output().expect("run gzip").stdout,
    }
}

/// The Python tool runs xdelta3 without `-D`, so its deltas of `.tar.gz` files are deltas
/// of the gzip-decompressed bytes (the application header says `G`). We decode them the way
/// xdelta3 does (decompress the reference, apply, recompress): a file gzip wrote through a
/// pipe comes back byte-exact; one whose header held a name and time cannot be reproduced,
/// and the download fails with an error saying so, leaving no file.
#[tokio::test(flavor = "multi_thread")]
async fn python_gzip_deltas() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let tar1 = support::noise(2 * MIB, 41);
    let tar2 = support::edited(&tar1, 42);
    let tar3 = support::edited(&tar2, 43);
    let plain3 = support::write_file(src.path(), "app-1.2.tar", &tar3);
    let files = [
        ("app-1.0.tar.gz", gzip(Ok(&tar1))),
        ("app-1.1.tar.gz", gzip(Ok(&tar2))),
        ("app-1.2.tar.gz", gzip(Err(&plain3))),
    ];
    for (name, bytes) in &files {
        let path = support::write_file(src.path(), name, bytes);
        py.upload(&path, &b.url(&format!("gz/{name}")));
    }
    let raw = b.raw_keys("gz/").await;
    let delta = b.raw_get("gz/app-1.1.tar.gz.delta").await;
    let header = deltaglider::testing::codec::VcdiffHeader::parse(&delta).unwrap();
    assert_eq!(
        header.external_compression().target,
        Some(b'G'),
        "the Python tool's delta should be of decompressed data: {:?}",
        String::from_utf8_lossy(header.app_header.as_deref().unwrap_or_default())
    );
    assert!(
        raw["gz/app-1.1.tar.gz.delta"] < 64 * 1024,
        "a delta of the decompressed bytes is small: {raw:?}"
    );

    let out = tempfile::tempdir().unwrap();
    for (name, bytes) in &files[..2] {
        dg_get_and_verify(
            &endpoint,
            &b.url(&format!("gz/{name}")),
            out.path(),
            name,
            bytes,
        );
    }
    let dest = out.path().join("app-1.2.tar.gz");
    let failed = support::run_dg(
        &["cp", &b.url("gz/app-1.2.tar.gz"), dest.to_str().unwrap()],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("does not reproduce"), "{stderr}");
    assert!(!dest.exists(), "no file may be left behind");
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("1.2"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// 1. Python uploads a reference + zero-diff delta, a delta and a direct file; our `ls`
///    shows the logical names with original sizes, `cp` returns every file byte-exact and
///    `verify` says OK.
#[tokio::test(flavor = "multi_thread")]
async fn python_writes_we_read() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let first = support::noise(3 * MIB, 11);
    let second = support::edited(&first, 12);
    let notes = b"release notes for 1.1\n".to_vec();
    let files: [(&str, &[u8]); 3] = [
        ("app-1.0.zip", &first),
        ("app-1.1.zip", &second),
        ("notes.txt", &notes),
    ];
    for (name, bytes) in files {
        let path = support::write_file(src.path(), name, bytes);
        py.upload(&path, &b.url(&format!("rel/{name}")));
    }

    // The layout the Python tool is known to write.
    let raw = b.raw_keys("").await;
    assert_eq!(
        raw.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "rel/app-1.0.zip.delta",
            "rel/app-1.1.zip.delta",
            "rel/notes.txt",
            "rel/reference.bin"
        ],
        "{raw:?}"
    );
    assert_eq!(raw["rel/reference.bin"], first.len() as u64);
    assert!(
        raw["rel/app-1.1.zip.delta"] < second.len() as u64 / 10,
        "{raw:?}"
    );

    // Our listing: logical names, original sizes, no reference.
    let (objects, prefixes) = dg_ls(&endpoint, &b.url("rel/"));
    assert!(prefixes.is_empty(), "{prefixes:?}");
    let sizes: BTreeMap<&str, u64> = objects.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    assert_eq!(
        sizes,
        BTreeMap::from([
            ("rel/app-1.0.zip", first.len() as u64),
            ("rel/app-1.1.zip", second.len() as u64),
            ("rel/notes.txt", notes.len() as u64),
        ])
    );

    let listing = dg(&endpoint, &["ls", &b.url("rel/")]);
    assert!(
        !listing.contains("reference.bin") && !listing.contains(".delta"),
        "{listing}"
    );
    let shown: BTreeMap<&str, u64> = listing
        .lines()
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t[t.len() - 1], t[t.len() - 2].parse().unwrap())
        })
        .collect();
    assert_eq!(
        shown,
        BTreeMap::from([
            ("app-1.0.zip", first.len() as u64),
            ("app-1.1.zip", second.len() as u64),
            ("notes.txt", notes.len() as u64),
        ]),
        "{listing}"
    );

    // Byte-exact downloads and verification.
    let out = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        dg_get_and_verify(
            &endpoint,
            &b.url(&format!("rel/{name}")),
            out.path(),
            name,
            bytes,
        );
    }
    // The stored key itself names the same object.
    dg_get_and_verify(
        &endpoint,
        &b.url("rel/app-1.1.zip.delta"),
        out.path(),
        "by-delta-key.zip",
        &second,
    );

    // How each object is stored, as `ls --json` reports it. S3 listings carry no metadata, so
    // objects stored whole are "whole" there (telling direct from plain would cost a HEAD per
    // object); the download above verified notes.txt against its dg-file-sha256.
    let kinds: BTreeMap<&str, &str> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.1.as_str()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("rel/app-1.0.zip", "delta"),
            ("rel/app-1.1.zip", "delta"),
            ("rel/notes.txt", "whole"),
        ]),
        "stored_as in `ls --json` over S3"
    );
}

/// Renames `dg-x-y` keys with `f(x-y)`; other keys stay.
fn respell(meta: &UserMetadata, f: impl Fn(&str) -> String) -> UserMetadata {
    meta.iter()
        .map(|(k, v)| match k.strip_prefix("dg-") {
            Some(field) => (f(field), v.clone()),
            None => (k.clone(), v.clone()),
        })
        .collect()
}

/// Historical metadata layouts of one delta, derived from what Python 6.2.0 wrote.
fn legacy_variants(python: &UserMetadata) -> Vec<(&'static str, UserMetadata)> {
    let dg_underscore = respell(python, |f| format!("dg_{}", f.replace('-', "_")));
    let bare_underscore = respell(python, |f| f.replace('-', "_"));
    let bare_dash = respell(python, str::to_string);
    let mut proxy = python.clone();
    proxy.remove("dg-ref-key");
    proxy.insert("dg-ref-path".into(), "reference.bin".into());
    // No `Z`, no fraction: older writers.
    proxy.insert("dg-created-at".into(), "2026-11-25T14:31:15".into());
    let mut bare_ref_path = bare_dash.clone();
    bare_ref_path.remove("ref-key");
    bare_ref_path.insert("ref-path".into(), "reference.bin".into());
    vec![
        ("dg_x_y", dg_underscore),
        ("bare x_y", bare_underscore),
        ("bare x-y", bare_dash),
        ("dg-ref-path instead of dg-ref-key", proxy),
        ("bare ref-path", bare_ref_path),
    ]
}

/// 2. Deltas written by Python whose metadata is respelled in every historical way (and with
///    the proxy's relative `dg-ref-path` instead of `dg-ref-key`) still download byte-exact.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_metadata_spellings() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let v1 = support::noise(2 * MIB, 21);
    let v2 = support::edited(&v1, 22);
    let versions: [(&str, &[u8]); 2] = [("base-1.0.zip", &v1), ("base-1.1.zip", &v2)];
    for (name, bytes) in versions {
        let path = support::write_file(src.path(), name, bytes);
        py.upload(&path, &b.url(&format!("legacy/{name}")));
    }
    let ref_meta = b.meta("legacy/reference.bin").await;
    let reference = b.raw_get("legacy/reference.bin").await;

    let out = tempfile::tempdir().unwrap();
    // Replayed on the local store too: it keeps metadata keys exactly as given, whereas
    // some S3 servers (Ceph RGW) turn `_` in metadata names into `-`.
    let local_dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(local_dir.path()).unwrap());
    local.create_bucket("bkt").await.unwrap();
    local
        .put_object(
            "bkt",
            "legacy/reference.bin",
            PutSource::Bytes(Bytes::from(reference)),
            PutOptions {
                metadata: ref_meta,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    for (name, bytes) in versions {
        let key = format!("legacy/{name}.delta");
        let python_meta = b.meta(&key).await;
        assert!(
            python_meta.contains_key("dg-ref-key") && python_meta.contains_key("dg-file-sha256"),
            "{python_meta:?}"
        );
        let delta = b.raw_get(&key).await;
        for (variant, meta) in legacy_variants(&python_meta) {
            let what = format!("{key} with {variant} metadata");
            b.replace_meta(&key, &meta).await;
            let stored = b.meta(&key).await;
            assert!(
                !stored.contains_key("dg-ref-key") || variant.starts_with("dg_"),
                "{what}: server kept {stored:?}"
            );
            if variant.starts_with("bare") {
                assert!(
                    stored.keys().all(|k| !k.starts_with("dg")),
                    "{what}: {stored:?}"
                );
            }
            if stored != meta {
                eprintln!("note: the server stored {what} as {stored:?}");
            }
            dg_get_and_verify(
                &endpoint,
                &b.url(&format!("legacy/{name}")),
                out.path(),
                name,
                bytes,
            );
            let (objects, _) = dg_ls(&endpoint, &b.url("legacy/"));
            assert_eq!(
                objects[&format!("legacy/{name}")],
                (bytes.len() as u64, "delta".to_string()),
                "{what}: {objects:?}"
            );

            // The same bytes with exactly this metadata, on the local store.
            local
                .put_object(
                    "bkt",
                    &key,
                    PutSource::Bytes(Bytes::from(delta.clone())),
                    PutOptions {
                        metadata: meta.clone(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let engine = support::engine_over(local.clone());
            let dest = out.path().join(format!("local-{name}"));
            let report = engine
                .get_to_file("bkt", &format!("legacy/{name}"), &dest)
                .await
                .unwrap_or_else(|e| panic!("{what} on the local store: {e}"));
            assert_eq!(report.stored_as, StoredAs::Delta, "{what}");
            assert!(report.verified, "{what}");
            assert_same_file(&dest, bytes, &format!("{what} on the local store"));
            let listing = engine.list("bkt", "legacy/", false).await.unwrap();
            let entry = listing
                .objects
                .iter()
                .find(|o| o.key == format!("legacy/{name}"))
                .unwrap_or_else(|| panic!("{what}: not listed: {listing:?}"));
            assert_eq!(entry.size, bytes.len() as u64, "{what}");
        }
        // Back to what Python wrote, for the next object's listings.
        b.replace_meta(&key, &python_meta).await;
    }
}

/// 3. Our CLI writes a reference + zero-diff delta, a delta and a direct file; the Python
///    tool downloads each byte-exact and lists them.
#[tokio::test(flavor = "multi_thread")]
async fn we_write_python_reads() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let first = support::noise(3 * MIB, 31);
    let second = support::edited(&first, 32);
    let notes = b"checksums and notes\n".to_vec();
    let files: [(&str, &[u8]); 3] = [
        ("first.zip", &first),
        ("second.zip", &second),
        ("notes.txt", &notes),
    ];
    for (name, bytes) in files {
        let path = support::write_file(src.path(), name, bytes);
        dg(&endpoint, &["cp", path.to_str().unwrap(), &b.url("ours/")]);
    }
    let raw = b.raw_keys("").await;
    let (index, files): (Vec<&str>, Vec<&str>) = raw
        .keys()
        .map(String::as_str)
        .partition(|k| k.starts_with(".deltaglider/index/ds-ours/"));
    assert_eq!(
        files,
        [
            "ours/first.zip.delta",
            "ours/notes.txt",
            "ours/reference.bin",
            "ours/second.zip.delta"
        ],
        "{raw:?}"
    );
    // one listing index segment per delta written (docs/format.md, "Listing index")
    assert_eq!(index.len(), 2, "{raw:?}");

    let out = tempfile::tempdir().unwrap();
    let second_path = out.path().join("second.zip");
    py.ok(&[
        "cp",
        &b.url("ours/second.zip"),
        second_path.to_str().unwrap(),
    ]);
    assert_same_file(&second_path, &second, "python download of our delta");
    // `.` means "name it after the object": the delta's name without `.delta`.
    py.ok_in(out.path(), &["cp", &b.url("ours/first.zip"), "."]);
    assert_same_file(
        &out.path().join("first.zip"),
        &first,
        "python download of our zero-diff delta",
    );
    let notes_path = out.path().join("notes.txt");
    py.ok(&["cp", &b.url("ours/notes.txt"), notes_path.to_str().unwrap()]);
    assert_same_file(&notes_path, &notes, "python download of our direct file");

    let verify = py.ok(&["verify", &b.url("ours/second.zip.delta")]);
    let v: Value = serde_json::from_str(verify.trim())
        .unwrap_or_else(|e| panic!("python verify output {verify:?}: {e}"));
    assert_eq!(v["valid"], Value::Bool(true), "{verify}");
    assert_eq!(v["actual_sha256"].as_str(), Some(sha256(&second).as_str()));

    // Python lists the logical names (with the stored sizes, as it always does).
    let listed = py.ls(&b.url("ours/"));
    assert_eq!(
        listed,
        BTreeMap::from([
            ("first.zip".to_string(), raw["ours/first.zip.delta"]),
            ("notes.txt".to_string(), notes.len() as u64),
            ("second.zip".to_string(), raw["ours/second.zip.delta"]),
        ])
    );

    // The listing index is not among Python's files: not listed, not downloaded.
    let everything = py.ok(&["ls", "--recursive", &b.url("")]);
    assert!(!everything.contains(".deltaglider"), "{everything}");
    let tree = tempfile::tempdir().unwrap();
    py.ok(&[
        "cp",
        "--recursive",
        &b.url(""),
        tree.path().to_str().unwrap(),
    ]);
    let mut downloaded: Vec<String> = walkdir::WalkDir::new(tree.path())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(tree.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    downloaded.sort();
    assert_eq!(
        downloaded,
        ["ours/first.zip", "ours/notes.txt", "ours/second.zip"],
        "python downloads only the files"
    );
}

/// Wheels are delta-eligible here (not in the Python tool): the deltas we write for them are
/// ones Python reads.
#[tokio::test(flavor = "multi_thread")]
async fn python_reads_our_wheel_deltas() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let first = support::noise(2 * MIB, 41);
    let second = support::edited(&first, 42);
    for (name, bytes) in [
        ("p-1.0-py3-none-any.whl", &first),
        ("p-1.1-py3-none-any.whl", &second),
    ] {
        let path = support::write_file(src.path(), name, bytes);
        dg(&endpoint, &["cp", path.to_str().unwrap(), &b.url("whl/")]);
    }
    let raw = b.raw_keys("").await;
    assert!(
        raw.contains_key("whl/p-1.1-py3-none-any.whl.delta")
            && raw["whl/p-1.1-py3-none-any.whl.delta"] < 64 * 1024,
        "{raw:?}"
    );
    let out = tempfile::tempdir().unwrap();
    let back = out.path().join("back.whl");
    py.ok(&[
        "cp",
        &b.url("whl/p-1.1-py3-none-any.whl"),
        back.to_str().unwrap(),
    ]);
    assert_same_file(&back, &second, "python download of our wheel delta");
}

fn run_xdelta3(args: &[&Path], what: &str) {
    let mut cmd = Command::new("xdelta3");
    cmd.args(["-d", "-D", "-s"]).args(args);
    let out = cmd.output().expect("run xdelta3");
    assert!(
        out.status.success(),
        "xdelta3 {what}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
}

/// 4. The deltas we write decode byte-exact with `xdelta3 -d -D -s reference.bin`.
#[tokio::test(flavor = "multi_thread")]
async fn xdelta3_reads_our_deltas() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let b = Bucket::create(&endpoint).await;
    let engine = support::engine_over(b.store.clone());
    let src = tempfile::tempdir().unwrap();
    let first = support::noise(4 * MIB, 41);
    let second = support::edited(&first, 42);
    let files: [(&str, &[u8]); 2] = [("first.zip", &first), ("second.zip", &second)];
    for (name, bytes) in files {
        let path = support::write_file(src.path(), name, bytes);
        let report = engine
            .put_file(
                &path,
                &b.name,
                &format!("x3/{name}"),
                &PutRequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(report.stored_as, StoredAs::Delta, "{report:?}");
        assert_eq!(report.created_reference, name == "first.zip", "{report:?}");
    }

    let work = tempfile::tempdir().unwrap();
    let reference = b.raw_get("x3/reference.bin").await;
    assert!(reference == first, "reference.bin is not the first file");
    let ref_path = support::write_file(work.path(), "reference.bin", &reference);
    for (name, bytes) in files {
        let key = format!("x3/{name}.delta");
        let meta = b.meta(&key).await;
        assert_eq!(
            meta.get("dg-ref-key").map(String::as_str),
            Some("x3/reference.bin")
        );
        assert_eq!(meta.get("dg-ref-sha256"), Some(&sha256(&first)));
        assert_eq!(meta.get("dg-file-sha256"), Some(&sha256(bytes)));
        let delta = b.raw_get(&key).await;
        assert_eq!(&delta[..4], b"\xd6\xc3\xc4\x00", "{key} is not VCDIFF");
        if name == "second.zip" {
            assert!(
                delta.len() < bytes.len() / 10,
                "{key}: {} bytes",
                delta.len()
            );
        }
        let delta_path = support::write_file(work.path(), &format!("{name}.delta"), &delta);
        let out_path = work.path().join(format!("{name}.out"));
        run_xdelta3(&[&ref_path, &delta_path, &out_path], &key);
        assert_same_file(&out_path, bytes, &format!("xdelta3 decode of {key}"));
    }
}

/// 5. Objects written by something else (no DeltaGlider metadata) list and download
///    byte-exact, including names that look like ours.
#[tokio::test(flavor = "multi_thread")]
async fn plain_objects() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let b = Bucket::create(&endpoint).await;
    let readme = b"plain text, no metadata\n".to_vec();
    let blob = support::noise(2 * MIB, 51);
    let odd = support::noise(1000, 52);
    let root = support::noise(5000, 53);
    let objects: [(&str, &[u8]); 4] = [
        ("plain/readme.txt", &readme),
        ("plain/blob.zip", &blob),
        ("plain/odd.delta", &odd),
        ("root.bin", &root),
    ];
    for (key, bytes) in objects {
        b.put_plain(key, bytes).await;
    }

    let (listed, prefixes) = dg_ls(&endpoint, &b.url("plain/"));
    assert!(prefixes.is_empty(), "{prefixes:?}");
    // Without metadata in S3 listings, objects stored whole are "whole"; a key ending in
    // `.delta` is looked at (HEAD) and, lacking DeltaGlider metadata, is "plain".
    let expected: BTreeMap<String, (u64, String)> = objects[..3]
        .iter()
        .map(|(k, v)| {
            let kind = if k.ends_with(".delta") {
                "plain"
            } else {
                "whole"
            };
            (k.to_string(), (v.len() as u64, kind.to_string()))
        })
        .collect();
    assert_eq!(listed, expected);
    let (at_root, prefixes) = dg_ls(&endpoint, &b.url(""));
    assert_eq!(prefixes, ["plain/"]);
    assert_eq!(
        at_root,
        BTreeMap::from([(
            "root.bin".to_string(),
            (root.len() as u64, "whole".to_string())
        )])
    );

    let out = tempfile::tempdir().unwrap();
    let engine = support::engine_over(b.store.clone());
    for (key, bytes) in objects {
        let url = b.url(key);
        let name = key.replace('/', "_");
        let dest = out.path().join(&name);
        dg(&endpoint, &["cp", &url, dest.to_str().unwrap()]);
        assert_same_file(&dest, bytes, &format!("our download of plain {url}"));
        let verify = dg(&endpoint, &["verify", &url]);
        assert!(verify.starts_with("UNVERIFIED "), "{url}: {verify}");
        assert!(verify.contains(&sha256(bytes)), "{url}: {verify}");

        let lib_dest = out.path().join(format!("lib-{name}"));
        let report = engine.get_to_file(&b.name, key, &lib_dest).await.unwrap();
        assert_eq!(report.stored_as, StoredAs::Plain, "{report:?}");
        assert!(!report.verified);
        assert_same_file(
            &lib_dest,
            bytes,
            &format!("library download of plain {url}"),
        );
    }
}

/// Version-aware order of `botocore-1.44.10-...` style names.
fn version_of(path: &Path) -> Vec<u64> {
    let name = path.file_name().unwrap().to_string_lossy();
    name.split('-')
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// 6. Three consecutive real botocore releases uploaded by Python come back byte-exact
///    through our CLI.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_botocore_python_to_ours() {
    let Some(endpoint) = support::s3_endpoint() else {
        return;
    };
    let Some(py) = support::python_deltaglider() else {
        return;
    };
    let Some(corpus) = support::corpus() else {
        return;
    };
    let py = Python::new(py, &endpoint);
    let b = Bucket::create(&endpoint).await;
    let dir = corpus.join("botocore");
    let listed = |ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == ext))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| version_of(p));
        v
    };
    let mut releases = listed("zip");
    let copies = tempfile::tempdir().unwrap();
    if releases.len() < 3 {
        // Wheels are zips; the Python tool only deltas `.zip` names.
        releases = listed("whl")
            .into_iter()
            .map(|whl| {
                let stem = whl.file_stem().unwrap().to_string_lossy().into_owned();
                let zip = copies.path().join(format!("{stem}.zip"));
                std::fs::copy(&whl, &zip).unwrap();
                zip
            })
            .collect();
    }
    assert!(
        releases.len() >= 3,
        "need 3 botocore releases (.zip or .whl) in {}",
        dir.display()
    );
    let releases = &releases[..3];

    let names: Vec<String> = releases
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (path, name) in releases.iter().zip(&names) {
        py.upload(path, &b.url(&format!("botocore/{name}")));
    }
    let raw = b.raw_keys("").await;
    let mut expected_keys: BTreeSet<String> = names
        .iter()
        .map(|n| format!("botocore/{n}.delta"))
        .collect();
    expected_keys.insert("botocore/reference.bin".into());
    assert_eq!(
        raw.keys().cloned().collect::<BTreeSet<_>>(),
        expected_keys,
        "{raw:?}"
    );

    let (objects, _) = dg_ls(&endpoint, &b.url("botocore/"));
    let out = tempfile::tempdir().unwrap();
    for (i, (path, name)) in releases.iter().zip(&names).enumerate() {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            objects[&format!("botocore/{name}")],
            (bytes.len() as u64, "delta".to_string()),
            "{objects:?}"
        );
        if i > 0 {
            let stored = raw[&format!("botocore/{name}.delta")];
            assert!(
                stored < bytes.len() as u64 / 2,
                "{name}: delta of {stored} bytes"
            );
        }
        dg_get_and_verify(
            &endpoint,
            &b.url(&format!("botocore/{name}")),
            out.path(),
            name,
            &bytes,
        );
    }
}

/// 7. Empty files: ours stores a 0-byte `.zip` whole and Python reads it; Python stores a
///    first 0-byte `.zip` as a 0-byte reference + delta and we read it (and a later delta
///    against that empty reference).
#[tokio::test(flavor = "multi_thread")]
async fn empty_files_both_ways() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let empty = support::write_file(src.path(), "empty.zip", b"");
    let base = support::noise(MIB, 71);
    let base_path = support::write_file(src.path(), "base.zip", &base);

    // Ours: first into a fresh prefix, then into a prefix that has a reference (where the
    // Python tool itself would divide by zero).
    dg(&endpoint, &["cp", empty.to_str().unwrap(), &b.url("e1/")]);
    dg(
        &endpoint,
        &["cp", base_path.to_str().unwrap(), &b.url("e2/")],
    );
    dg(&endpoint, &["cp", empty.to_str().unwrap(), &b.url("e2/")]);
    for space in ["e1", "e2"] {
        let key = format!("{space}/empty.zip");
        let meta = b.meta(&key).await;
        assert_eq!(meta.get("dg-compression").map(String::as_str), Some("none"));
        assert_eq!(meta.get("dg-file-size").map(String::as_str), Some("0"));
        let dest = out.path().join(format!("py-{space}-empty.zip"));
        py.ok(&["cp", &b.url(&key), dest.to_str().unwrap()]);
        assert_same_file(&dest, b"", &format!("python download of our empty {key}"));
        let listed = py.ls(&b.url(&format!("{space}/")));
        assert_eq!(listed.get("empty.zip"), Some(&0), "{listed:?}");
    }

    // Python: a 0-byte first file becomes a 0-byte reference plus a zero-diff delta.
    py.upload(&empty, &b.url("e3/empty.zip"));
    let raw = b.raw_keys("e3/").await;
    assert_eq!(raw.get("e3/reference.bin"), Some(&0), "{raw:?}");
    assert!(raw.contains_key("e3/empty.zip.delta"), "{raw:?}");
    dg_get_and_verify(
        &endpoint,
        &b.url("e3/empty.zip"),
        out.path(),
        "empty.zip",
        b"",
    );
    // A later file in that deltaspace is a delta against the empty reference.
    let next = support::noise(64 * 1024, 72);
    let next_path = support::write_file(src.path(), "next.zip", &next);
    py.upload(&next_path, &b.url("e3/next.zip"));
    assert!(b.raw_keys("e3/").await.contains_key("e3/next.zip.delta"));
    dg_get_and_verify(
        &endpoint,
        &b.url("e3/next.zip"),
        out.path(),
        "next.zip",
        &next,
    );

    let (objects, _) = dg_ls(&endpoint, &b.url("e3/"));
    assert_eq!(
        objects,
        BTreeMap::from([
            ("e3/empty.zip".to_string(), (0, "delta".to_string())),
            (
                "e3/next.zip".to_string(),
                (next.len() as u64, "delta".to_string())
            ),
        ])
    );
}

/// 8. `stats` on a bucket the Python tool filled: objects, original and stored bytes match
///    what was uploaded and what the bucket holds.
#[tokio::test(flavor = "multi_thread")]
async fn stats_on_a_python_bucket() {
    let Some((endpoint, py, b)) = python_and_bucket().await else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let base = support::noise(2 * MIB, 81);
    let files: Vec<(String, Vec<u8>)> = (0..3u64)
        .map(|i| (format!("v{i}.zip"), support::edited(&base, 82 + i)))
        .chain([("readme.txt".to_string(), b"read me\n".to_vec())])
        .collect();
    for (name, bytes) in &files {
        let path = support::write_file(src.path(), name, bytes);
        py.upload(&path, &b.url(&format!("s/{name}")));
    }
    let raw = b.raw_keys("").await;
    let stored: u64 = raw.values().sum();
    let original: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let url = b.url("");
    for mode in [
        &["stats", "--json"][..],
        &["stats", "--json", "--sampled"][..],
    ] {
        let mut args = mode.to_vec();
        args.push(&url);
        let stats: serde_json::Value = serde_json::from_str(&dg(&endpoint, &args)).unwrap();
        assert_eq!(stats["objects"], 4, "{stats}");
        assert_eq!(stats["deltas"], 3, "{stats}");
        assert_eq!(stats["whole"], 1, "{stats}");
        assert_eq!(stats["stored_bytes"].as_u64(), Some(stored), "{stats}");
        assert_eq!(stats["original_bytes"].as_u64(), Some(original), "{stats}");
        assert_eq!(stats["orphaned_references"], serde_json::json!([]));
    }
}
