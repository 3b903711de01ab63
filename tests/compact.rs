//! The compact format end to end, on the local store and on the S3 server: the corpus sets
//! byte-exact through it, files past the expansion limits, objects of a newer format, and
//! the format a deltaspace keeps.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltaglider::cache::StoreCache;
use deltaglider::codec::NativeCodec;
use deltaglider::storage::local::LocalStore;
use deltaglider::storage::{ListRequest, ObjectStore, PutOptions, PutSource};
use deltaglider::testing::hashing::sha256_hex;
use deltaglider::testing::{Engine, EngineSettings, ExpansionLimits};
use deltaglider::{Error, PutRequestOptions, StorageFormat, StoredAs};
use support::{edited, noise, unique_bucket, write_file};

fn compact_engine(store: Arc<dyn ObjectStore>, settings: EngineSettings) -> Engine {
    Engine::new(
        store,
        Arc::new(NativeCodec::default()),
        Arc::new(StoreCache::private(None).unwrap()),
        EngineSettings {
            format: StorageFormat::Compact,
            ..settings
        },
    )
}

/// The stores under test: the local store, and the S3 server when there is one.
async fn stores(tag: &str) -> Vec<(Arc<dyn ObjectStore>, String, Option<tempfile::TempDir>)> {
    let local = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(local.path().join("s")).unwrap());
    let mut out = vec![(store, Some(local))];
    if let Some(endpoint) = support::s3_endpoint() {
        let s3: Arc<dyn ObjectStore> = support::s3_store(&endpoint).await;
        out.push((s3, None));
    }
    let mut made = Vec::new();
    for (store, dir) in out {
        let bucket = unique_bucket(tag);
        deltaglider::storage::bucket_admin(&*store)
            .unwrap()
            .create_bucket(&bucket)
            .await
            .unwrap();
        made.push((store, bucket, dir));
    }
    made
}

async fn stored_bytes(store: &dyn ObjectStore, bucket: &str, prefix: &str) -> u64 {
    let mut req = ListRequest {
        prefix: prefix.to_string(),
        ..Default::default()
    };
    let mut total = 0;
    loop {
        let page = store.list_objects(bucket, &req).await.unwrap();
        total += page.objects.iter().map(|o| o.size).sum::<u64>();
        match page.next_token {
            Some(t) => req.continuation_token = Some(t),
            None => return total,
        }
    }
}

fn corpus_set(dir: &Path, set: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(set))
        .unwrap_or_else(|e| panic!("{}/{set}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        // the wheel sets hold each release twice (.whl and .zip): one of them
        .filter(|p| p.extension().is_none_or(|x| x != "zip"))
        .collect();
    files.sort();
    files
}

/// Every corpus set through the compact format, byte-exact back with a fresh engine (cold
/// cache); stored bytes printed. `DG_COMPACT_SETS` picks sets (comma separated) and takes
/// every file of each; without it, the first three botocore wheels (the test command's run).
#[tokio::test(flavor = "multi_thread")]
async fn corpus_sets_round_trip_byte_exact_in_the_compact_format() {
    let Some(corpus) = support::corpus() else {
        return;
    };
    let (sets, per_set) = match std::env::var("DG_COMPACT_SETS") {
        Ok(sets) => (sets, usize::MAX),
        Err(_) => ("botocore".to_string(), 3),
    };
    for (store, bucket, _dir) in stores("compact-corpus").await {
        let writer = compact_engine(store.clone(), EngineSettings::default());
        let out = tempfile::tempdir().unwrap();
        for set in sets.split(',') {
            let mut files = corpus_set(&corpus, set);
            files.truncate(per_set);
            assert!(
                files.len() >= 2,
                "corpus set {set} is incomplete: {files:?}"
            );
            let mut original = 0;
            for f in &files {
                original += std::fs::metadata(f).unwrap().len();
                let name = f.file_name().unwrap().to_str().unwrap();
                let report = writer
                    .put_file(f, &bucket, &format!("{set}/{name}"), &Default::default())
                    .await
                    .unwrap_or_else(|e| panic!("{set}/{name}: {e}"));
                assert_eq!(
                    report.stored_as,
                    StoredAs::Delta,
                    "{set}/{name}: {report:?}"
                );
            }
            let reader = compact_engine(store.clone(), EngineSettings::default());
            for f in &files {
                let name = f.file_name().unwrap().to_str().unwrap();
                let dest = out.path().join(name);
                reader
                    .get_to_file(&bucket, &format!("{set}/{name}"), &dest)
                    .await
                    .unwrap_or_else(|e| panic!("{set}/{name}: {e}"));
                assert_eq!(
                    sha256_hex(&std::fs::read(&dest).unwrap()),
                    sha256_hex(&std::fs::read(f).unwrap()),
                    "{set}/{name} must come back byte-exact"
                );
                std::fs::remove_file(&dest).unwrap();
            }
            let stored = stored_bytes(&*store, &bucket, &format!("{set}/")).await;
            eprintln!(
                "compact {} {set}: {original} bytes stored as {stored} ({:.2}%)",
                store.describe(),
                100.0 * stored as f64 / original as f64
            );
        }
    }
}

/// A gzip member of zeros: a tiny file whose token form is far larger (a "bomb" for the
/// expansion bounds).
fn gzip_of_zeros(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; n]).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_past_the_expansion_limits_is_stored_as_it_is_and_the_report_says_why() {
    for (store, bucket, _dir) in stores("compact-limits").await {
        let limits = ExpansionLimits::default().max_expanded_len(64 << 10);
        let engine = compact_engine(
            store.clone(),
            EngineSettings {
                expansion_limits: limits,
                ..EngineSettings::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let bomb = gzip_of_zeros(50 << 20);
        let path = write_file(dir.path(), "bomb-1.tgz", &bomb);
        let report = engine
            .put_file(&path, &bucket, "b/bomb-1.tgz", &Default::default())
            .await
            .unwrap();
        let why = report.expansion.clone().expect("a reason in the report");
        assert!(why.contains("left compressed"), "{why}");
        let (_, file) = engine.get_verified(&bucket, "b/bomb-1.tgz").await.unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut { file }, &mut back).unwrap();
        assert_eq!(back, bomb);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_of_a_newer_format_is_refused_by_name_and_nothing_is_written() {
    for (store, bucket, _dir) in stores("compact-newer").await {
        let engine = compact_engine(store.clone(), EngineSettings::default());
        let dir = tempfile::tempdir().unwrap();
        let v1 = noise(200_000, 7);
        let v2 = edited(&v1, 8);
        for (name, bytes) in [("app-1.zip", &v1), ("app-2.zip", &v2)] {
            let path = write_file(dir.path(), name, bytes);
            let r = engine
                .put_file(&path, &bucket, &format!("n/{name}"), &Default::default())
                .await
                .unwrap();
            assert_eq!(r.stored_as, StoredAs::Delta);
        }
        // what a newer writer would leave: the same object, `dg-format: compact/2`
        let info = store
            .head_object(&bucket, "n/app-2.zip.delta")
            .await
            .unwrap()
            .unwrap();
        let mut metadata = info.metadata.unwrap();
        assert_eq!(
            metadata.get("dg-format").map(String::as_str),
            Some("compact/1")
        );
        metadata.insert("dg-format".into(), "compact/2".into());
        assert!(engine.verify(&bucket, "n/app-2.zip").await.unwrap().valid);
        let copy = dir.path().join("delta");
        {
            let reader = store
                .get_object(&bucket, "n/app-2.zip.delta")
                .await
                .unwrap();
            let mut body = reader.body;
            let mut f = tokio::fs::File::create(&copy).await.unwrap();
            tokio::io::copy(&mut body, &mut f).await.unwrap();
        }
        store
            .put_object(
                &bucket,
                "n/app-2.zip.delta",
                PutSource::File(copy.clone()),
                PutOptions {
                    metadata,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let dest = dir.path().join("out.zip");
        let e = engine
            .get_to_file(&bucket, "n/app-2.zip", &dest)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NewerFormat { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("n/app-2.zip.delta")
                && text.contains("compact/2")
                && text.contains("newer"),
            "{text}"
        );
        assert!(!dest.exists(), "nothing is written");
        assert!(matches!(
            engine.verify(&bucket, "n/app-2.zip").await.unwrap_err(),
            Error::NewerFormat { .. }
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deltaspace_keeps_its_format_whatever_the_setting() {
    for (store, bucket, _dir) in stores("compact-keeps").await {
        let dir = tempfile::tempdir().unwrap();
        let v1 = noise(200_000, 3);
        let (p1, p2) = (
            write_file(dir.path(), "app-1.zip", &v1),
            write_file(dir.path(), "app-2.zip", &edited(&v1, 4)),
        );
        let compatible = Engine::new(
            store.clone(),
            Arc::new(NativeCodec::default()),
            Arc::new(StoreCache::private(None).unwrap()),
            EngineSettings::default(),
        );
        let compact = compact_engine(store.clone(), EngineSettings::default());
        let opts = PutRequestOptions::default();
        // a compatible deltaspace stays compatible under a compact writer, and vice versa
        compatible
            .put_file(&p1, &bucket, "old/app-1.zip", &opts)
            .await
            .unwrap();
        compact
            .put_file(&p2, &bucket, "old/app-2.zip", &opts)
            .await
            .unwrap();
        compact
            .put_file(&p1, &bucket, "new/app-1.zip", &opts)
            .await
            .unwrap();
        compatible
            .put_file(&p2, &bucket, "new/app-2.zip", &opts)
            .await
            .unwrap();
        let keys: Vec<String> = store
            .list_objects(&bucket, &ListRequest::default())
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(keys.contains(&"old/reference.bin".to_string()), "{keys:?}");
        assert!(!keys.contains(&"old/reference.dgx".to_string()), "{keys:?}");
        assert!(keys.contains(&"new/reference.dgx".to_string()), "{keys:?}");
        assert!(!keys.contains(&"new/reference.bin".to_string()), "{keys:?}");
        // listings hide both references
        let listing = compact.list(&bucket, "", true).await.unwrap();
        let names: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        let format_of = |key: &str| {
            listing
                .objects
                .iter()
                .find(|o| o.key == key)
                .and_then(|o| o.format)
        };
        assert_eq!(format_of("old/app-2.zip"), Some(StorageFormat::Compatible));
        assert_eq!(format_of("new/app-1.zip"), Some(StorageFormat::Compact));
        for (key, file) in [("old/app-2.zip", &p2), ("new/app-1.zip", &p1)] {
            let head = compatible.head(&bucket, key).await.unwrap();
            let size = std::fs::metadata(file).unwrap().len();
            assert_eq!(head.size, size, "{key}: head shows the original size");
            assert!(
                compatible.verify(&bucket, key).await.unwrap().valid,
                "{key}"
            );
        }
    }
}

/// Files under `dir` named by a SHA-256 (the cache's entries).
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                todo.push(p);
            } else if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_corrupted_expanded_reference_in_the_cache_is_never_used_and_is_refetched() {
    let lab = tempfile::tempdir().unwrap();
    for d in ["home", "config", "tmp", "src", "cache"] {
        std::fs::create_dir(lab.path().join(d)).unwrap();
    }
    let at = |d: &str| lab.path().join(d).to_str().unwrap().to_string();
    let endpoint = format!("file://{}", at("store"));
    let env = [
        ("DG_ENDPOINT_URL", endpoint.as_str()),
        ("DG_CACHE_DIR", &at("cache")),
        (
            "DG_CACHE_KEY",
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        ),
        ("DG_FORMAT", "compact"),
        ("HOME", &at("home")),
        ("XDG_CONFIG_HOME", &at("config")),
        ("TMPDIR", &at("tmp")),
    ];
    let dg = |args: &[&str]| support::run_dg(args, &env);
    let ok = |args: &[&str]| {
        let out = dg(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["mb", "s3://bkt"]);
    let v1 = noise(400_000, 21);
    let v2 = edited(&v1, 22);
    let src = lab.path().join("src");
    ok(&[
        "cp",
        write_file(&src, "v1.zip", &v1).to_str().unwrap(),
        "s3://bkt/rel/",
    ]);
    ok(&[
        "cp",
        write_file(&src, "v2.zip", &v2).to_str().unwrap(),
        "s3://bkt/rel/",
    ]);
    let out = lab.path().join("out.zip");
    ok(&["cp", "s3://bkt/rel/v2.zip", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v2);
    // the cache holds the expanded reference, under its dg-expanded-sha256
    let reference = lab.path().join("store/bkt/rel.d/reference.dgx.o");
    let header = std::fs::read(&reference).unwrap();
    let entries = cache_entries(&lab.path().join("cache"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let sha = entries[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        String::from_utf8_lossy(&header[..header.len().min(4096)]).contains(&sha),
        "the entry is named by the reference's dg-expanded-sha256"
    );
    // one byte flipped in the entry
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let mode = std::fs::metadata(&entries[0]).unwrap().permissions();
    let mut w = mode.clone();
    std::os::unix::fs::PermissionsExt::set_mode(&mut w, 0o600);
    std::fs::set_permissions(&entries[0], w).unwrap();
    std::fs::write(&entries[0], &bytes).unwrap();
    std::fs::set_permissions(&entries[0], mode).unwrap();
    // with the stored reference out of the way, the poisoned entry is not used
    let hidden = lab.path().join("hidden.o");
    std::fs::rename(&reference, &hidden).unwrap();
    std::fs::remove_file(&out).unwrap();
    let failed = dg(&["cp", "s3://bkt/rel/v2.zip", out.to_str().unwrap()]);
    assert!(!failed.status.success(), "a poisoned entry must not serve");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("missing"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!out.exists());
    // with the reference back, it is fetched again, and the download is exact
    std::fs::rename(&hidden, &reference).unwrap();
    ok(&["cp", "s3://bkt/rel/v2.zip", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v2);
    let entries = cache_entries(&lab.path().join("cache"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        sha256_hex(&std::fs::read(&entries[0]).unwrap()),
        sha,
        "the entry holds the expanded reference again"
    );
}

/// `--format compact` on `cp` makes a new deltaspace compact (`ls -l` says so; the reference
/// is `reference.dgx`), and a value that is no format is refused by name with nothing stored.
#[test]
fn the_format_flag_picks_the_format_of_a_new_deltaspace_and_a_bad_value_is_refused() {
    let lab = tempfile::tempdir().unwrap();
    for d in ["home", "config", "tmp", "src"] {
        std::fs::create_dir(lab.path().join(d)).unwrap();
    }
    let at = |d: &str| lab.path().join(d).to_str().unwrap().to_string();
    let endpoint = format!("file://{}", at("store"));
    let env = [
        ("DG_ENDPOINT_URL", endpoint.as_str()),
        ("HOME", &at("home")),
        ("XDG_CONFIG_HOME", &at("config")),
        ("TMPDIR", &at("tmp")),
    ];
    let dg = |args: &[&str]| support::run_dg(args, &env);
    assert!(dg(&["mb", "s3://bkt"]).status.success());
    let v1 = noise(200_000, 31);
    let file = write_file(&lab.path().join("src"), "v1.zip", &v1);
    let file = file.to_str().unwrap();

    let bad = dg(&["cp", "--format", "tiny", file, "s3://bkt/bad/"]);
    assert!(!bad.status.success(), "an unknown format must be refused");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("tiny"),
        "the error names the value: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        !lab.path().join("store/bkt/bad.d").exists(),
        "nothing stored"
    );

    let out = dg(&["cp", "--format", "compact", file, "s3://bkt/rel/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.path().join("store/bkt/rel.d/reference.dgx.o").exists());
    let ls = dg(&["ls", "-l", "s3://bkt/rel/"]);
    assert!(ls.status.success());
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("compact"),
        "ls -l shows the format: {}",
        String::from_utf8_lossy(&ls.stdout)
    );
}

/// Every way of choosing the format reaches a new deltaspace: `DG_FORMAT`, the config file's
/// `format`, and `--format` on each command that writes objects (`sync`, `mv`, `migrate`); a
/// flag beats the environment, and an existing deltaspace keeps the format it has.
#[test]
fn every_route_to_the_format_setting_picks_the_format_of_new_deltaspaces() {
    let lab = tempfile::tempdir().unwrap();
    for d in ["home", "config/deltaglider", "tmp", "src", "tree"] {
        std::fs::create_dir_all(lab.path().join(d)).unwrap();
    }
    let at = |d: &str| lab.path().join(d).to_str().unwrap().to_string();
    let endpoint = format!("file://{}", at("store"));
    let base = [
        ("DG_ENDPOINT_URL".to_string(), endpoint),
        ("HOME".to_string(), at("home")),
        ("XDG_CONFIG_HOME".to_string(), at("config")),
        ("TMPDIR".to_string(), at("tmp")),
    ];
    let dg = |args: &[&str], extra: &[(&str, &str)]| {
        let mut env: Vec<(&str, &str)> =
            base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        let out = support::run_dg(args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let reference = |ds: &str, name: &str| lab.path().join(format!("store/bkt/{ds}.d/{name}.o"));
    dg(&["mb", "s3://bkt"], &[]);
    let v1 = noise(200_000, 41);
    let file = write_file(&lab.path().join("src"), "v1.zip", &v1);
    let file = file.to_str().unwrap();
    write_file(&lab.path().join("tree"), "t.zip", &v1);

    dg(&["cp", file, "s3://bkt/env/"], &[("DG_FORMAT", "compact")]);
    assert!(
        reference("env", "reference.dgx").exists(),
        "DG_FORMAT=compact"
    );
    dg(
        &["cp", "--format", "compatible", file, "s3://bkt/flag/"],
        &[("DG_FORMAT", "compact")],
    );
    assert!(
        reference("flag", "reference.bin").exists(),
        "the flag beats DG_FORMAT"
    );
    dg(
        &["cp", "--format", "compact", file, "s3://bkt/flag/v2.zip"],
        &[],
    );
    assert!(
        !reference("flag", "reference.dgx").exists(),
        "a compatible deltaspace stays compatible whatever is asked"
    );

    let config = at("config/deltaglider/config.toml");
    std::fs::write(&config, "format = \"compact\"\n").unwrap();
    dg(&["cp", file, "s3://bkt/file/"], &[("DG_CONFIG", &config)]);
    assert!(
        reference("file", "reference.dgx").exists(),
        "the config file's format"
    );

    dg(
        &["sync", "--format", "compact", &at("tree"), "s3://bkt/sync/"],
        &[],
    );
    assert!(reference("sync", "reference.dgx").exists(), "sync --format");
    dg(&["mv", "--format", "compact", file, "s3://bkt/mv/"], &[]);
    assert!(reference("mv", "reference.dgx").exists(), "mv --format");
    dg(&["mb", "s3://old"], &[]);
    dg(
        &["cp", "--no-delta", &at("tree/t.zip"), "s3://old/mig/"],
        &[],
    );
    dg(
        &[
            "migrate",
            "--yes",
            "--format",
            "compact",
            "s3://old/mig/",
            "s3://bkt/",
        ],
        &[],
    );
    assert!(
        reference("mig", "reference.dgx").exists(),
        "migrate --format"
    );
    dg(&["cp", "s3://bkt/mig/t.zip", &at("tmp/back.zip")], &[]);
    assert_eq!(
        std::fs::read(at("tmp/back.zip")).unwrap(),
        v1,
        "byte-exact back"
    );
}
