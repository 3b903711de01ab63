//! The `aws s3` flags scripts pass, through the binary: accepted, and visible on the stored
//! objects (read back with the SDK's HeadObject and GetObjectAcl on the S3 server), on
//! uploads, copies and moves; on the local store, kept where they mean something and named
//! in one warning where they do not.

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use deltaglider::storage::BucketAdmin;
use deltaglider::storage::s3::S3Store;
use deltaglider::storage::{ListRequest, ObjectStore};
use support::{edited, noise, run_dg, s3_endpoint, s3_store, unique_bucket, write_file};

/// Every object flag that the test server supports, plus the display and connection flags.
const FLAGS: &[&str] = &[
    "--metadata",
    "build=42,Branch=main",
    "--cache-control",
    "max-age=60",
    "--content-disposition",
    "attachment",
    "--content-encoding",
    "identity",
    "--content-language",
    "en",
    "--expires",
    "2030-01-31T12:00:00Z",
    "--storage-class",
    "STANDARD",
    "--acl",
    "public-read",
    "--only-show-errors",
    "--no-progress",
    "--page-size",
    "100",
    "--cli-read-timeout",
    "30",
    "--cli-connect-timeout",
    "10",
];

const EXPIRES_HTTP: &str = "Thu, 31 Jan 2030 12:00:00 GMT";

struct S3 {
    dir: tempfile::TempDir,
    bucket: String,
    store: Arc<S3Store>,
}

impl S3 {
    async fn new(tag: &str) -> Option<S3> {
        let endpoint = s3_endpoint()?;
        let store = s3_store(&endpoint).await;
        let bucket = unique_bucket(tag);
        store.create_bucket(&bucket).await.unwrap();
        Some(S3 {
            dir: tempfile::tempdir().unwrap(),
            bucket,
            store,
        })
    }
    fn client(&self) -> &Client {
        self.store.client()
    }
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn run(&self, args: &[&str]) -> Output {
        run_dg(args, &[("TMPDIR", self.dir.path().to_str().unwrap())])
    }
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    }
    /// `cp SRC DST` with extra flags.
    fn cp(&self, extra: &[&str], src: &str, dst: &str) -> (String, String) {
        let mut args = vec!["cp"];
        args.extend_from_slice(extra);
        args.extend([src, dst]);
        self.ok(&args)
    }
    async fn head(&self, key: &str) -> HeadObjectOutput {
        self.client()
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
    }
    async fn exists(&self, key: &str) -> bool {
        self.store
            .head_object(&self.bucket, key)
            .await
            .unwrap()
            .is_some()
    }
    /// Whether everyone may read the object (the `public-read` canned ACL).
    async fn public(&self, key: &str) -> bool {
        let acl = self
            .client()
            .get_object_acl()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        acl.grants().iter().any(|g| {
            g.grantee().and_then(|g| g.uri())
                == Some("http://acs.amazonaws.com/groups/global/AllUsers")
                && g.permission().map(|p| p.as_str()) == Some("READ")
        })
    }
    async fn keys(&self) -> Vec<String> {
        let page = self
            .store
            .list_objects(&self.bucket, &ListRequest::default())
            .await
            .unwrap();
        page.objects.into_iter().map(|o| o.key).collect()
    }
    async fn cleanup(&self) {
        for k in self.keys().await {
            self.store.delete_object(&self.bucket, &k).await.unwrap();
        }
        self.store.delete_bucket(&self.bucket).await.unwrap();
    }
}

fn meta<'a>(h: &'a HeadObjectOutput, key: &str) -> Option<&'a str> {
    h.metadata().and_then(|m| m.get(key)).map(String::as_str)
}

/// The headers of `FLAGS` on a delta or direct object.
fn assert_headers(h: &HeadObjectOutput, what: &str) {
    assert_eq!(h.cache_control(), Some("max-age=60"), "{what}");
    assert_eq!(h.content_disposition(), Some("attachment"), "{what}");
    assert_eq!(h.content_encoding(), Some("identity"), "{what}");
    assert_eq!(h.content_language(), Some("en"), "{what}");
    assert_eq!(h.expires_string(), Some(EXPIRES_HTTP), "{what}");
    assert_eq!(meta(h, "user-build"), Some("42"), "{what}");
    assert_eq!(meta(h, "user-branch"), Some("main"), "{what}");
}

fn versions(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let v1 = noise(300_000, 7);
    write_file(dir, "app-1.zip", &v1);
    write_file(dir, "app-2.zip", &edited(&v1, 8));
    write_file(dir, "notes.txt", b"release notes\n");
}

#[tokio::test]
async fn upload_flags_reach_the_delta_the_direct_object_and_the_reference() {
    let Some(s3) = S3::new("flags-up").await else {
        return;
    };
    versions(s3.dir.path());
    let (out, _) = s3.cp(FLAGS, &s3.path("app-1.zip"), &s3.url("rel/"));
    assert_eq!(out, "", "--only-show-errors prints no result line");
    s3.cp(FLAGS, &s3.path("app-2.zip"), &s3.url("rel/"));
    for key in ["rel/app-1.zip.delta", "rel/app-2.zip.delta"] {
        let h = s3.head(key).await;
        assert_eq!(h.content_type(), Some("application/zip"), "guessed: {key}");
        assert_headers(&h, key);
        assert_eq!(h.storage_class().map(|c| c.as_str()), Some("STANDARD"));
        assert!(s3.public(key).await, "{key} has the ACL");
    }
    // The reference holds the first version's bytes: same placement and ACL, no headers.
    let r = s3.head("rel/reference.bin").await;
    assert_eq!(r.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert!(s3.public("rel/reference.bin").await);
    assert_eq!(r.cache_control(), None);
    assert_eq!(meta(&r, "user-build"), None);

    // A file stored whole: an explicit type and the JSON metadata form.
    s3.cp(
        &[
            "--content-type",
            "text/x-notes",
            "--metadata",
            r#"{"Owner": "ci team"}"#,
            "--acl",
            "public-read",
        ],
        &s3.path("notes.txt"),
        &s3.url("rel/notes.txt"),
    );
    let d = s3.head("rel/notes.txt").await;
    assert_eq!(d.content_type(), Some("text/x-notes"));
    assert_eq!(meta(&d, "user-owner"), Some("ci team"));
    assert!(meta(&d, "dg-file-sha256").is_some(), "still DeltaGlider's");
    assert!(s3.public("rel/notes.txt").await);

    // Guessing, and turning it off.
    write_file(s3.dir.path(), "a.json", b"{}");
    s3.cp(&[], &s3.path("a.json"), &s3.url("g/a.json"));
    s3.cp(
        &["--no-guess-mime-type"],
        &s3.path("a.json"),
        &s3.url("g/b.json"),
    );
    assert_eq!(
        s3.head("g/a.json").await.content_type(),
        Some("application/json")
    );
    assert_ne!(
        s3.head("g/b.json").await.content_type(),
        Some("application/json")
    );

    // `head` shows what was recorded.
    let (json, _) = s3.ok(&["head", "--json", &s3.url("rel/app-2.zip")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stored_as"], "delta");
    assert_eq!(v["content_type"], "application/zip");
    assert_eq!(v["user_metadata"]["build"], "42");
    assert_eq!(v["headers"]["cache_control"], "max-age=60");
    assert_eq!(v["headers"]["expires"], "2030-01-31T12:00:00Z");
    assert_eq!(v["protection"]["storage_class"], "STANDARD");
    let (text, _) = s3.ok(&["head", &s3.url("rel/notes.txt")]);
    assert!(
        text.contains("text/x-notes")
            && text.contains("metadata owner:")
            && text.contains("ci team"),
        "{text}"
    );
    s3.cleanup().await;
}

#[tokio::test]
async fn copies_and_moves_keep_the_source_properties_or_replace_them_on_request() {
    let Some(s3) = S3::new("flags-cp").await else {
        return;
    };
    versions(s3.dir.path());
    for f in ["app-1.zip", "app-2.zip"] {
        s3.cp(FLAGS, &s3.path(f), &s3.url("p/"));
    }
    let mut notes_flags = FLAGS.to_vec();
    notes_flags.extend(["--content-type", "text/x-notes"]);
    s3.cp(&notes_flags, &s3.path("notes.txt"), &s3.url("p/notes.txt"));

    // COPY (the default): a delta is rebuilt and stored against the destination's reference,
    // a whole object is copied server-side; both keep type, headers and metadata. The ACL is
    // the copy's own, as on S3, and reaches the new reference too.
    s3.cp(
        &["--acl", "public-read"],
        &s3.url("p/app-2.zip"),
        &s3.url("q/"),
    );
    s3.cp(&[], &s3.url("p/notes.txt"), &s3.url("q/notes.txt"));
    let q = s3.head("q/app-2.zip.delta").await;
    assert_eq!(q.content_type(), Some("application/zip"));
    assert_headers(&q, "rebuilt copy");
    assert!(s3.public("q/app-2.zip.delta").await);
    assert!(s3.public("q/reference.bin").await);
    let n = s3.head("q/notes.txt").await;
    assert_eq!(n.content_type(), Some("text/x-notes"));
    assert_headers(&n, "server-side copy");
    assert!(!s3.public("q/notes.txt").await, "ACLs are not inherited");

    // --metadata on a copy means REPLACE: only what the command gives.
    s3.cp(
        &["--metadata", "new=1"],
        &s3.url("p/app-2.zip"),
        &s3.url("r/app-2.zip"),
    );
    let r = s3.head("r/app-2.zip.delta").await;
    assert_eq!(meta(&r, "user-new"), Some("1"));
    assert_eq!(meta(&r, "user-build"), None);
    assert_eq!(r.cache_control(), None);
    assert_eq!(r.content_type(), Some("application/zip"), "guessed again");
    s3.cp(
        &[
            "--metadata-directive",
            "REPLACE",
            "--content-type",
            "text/plain",
            "--cache-control",
            "no-store",
        ],
        &s3.url("p/notes.txt"),
        &s3.url("r/notes.txt"),
    );
    let rn = s3.head("r/notes.txt").await;
    assert_eq!(rn.content_type(), Some("text/plain"));
    assert_eq!(rn.cache_control(), Some("no-store"));
    assert_eq!(meta(&rn, "user-build"), None);
    // DeltaGlider's own metadata survives the replacement: both still verify.
    s3.ok(&["verify", &s3.url("r/notes.txt")]);
    s3.ok(&["verify", &s3.url("r/app-2.zip")]);

    // A header flag on a COPY copy is not applied, and says so.
    let (_, err) = s3.cp(
        &["--cache-control", "no-store"],
        &s3.url("p/notes.txt"),
        &s3.url("s/notes.txt"),
    );
    assert!(
        err.contains("--cache-control") && err.contains("--metadata-directive REPLACE"),
        "{err}"
    );
    assert_eq!(
        s3.head("s/notes.txt").await.cache_control(),
        Some("max-age=60")
    );

    // mv is a copy then a delete: the moved delta keeps its properties.
    s3.ok(&["mv", &s3.url("p/app-1.zip"), &s3.url("m/app-1.zip")]);
    let m = s3.head("m/app-1.zip.delta").await;
    assert_eq!(m.content_type(), Some("application/zip"));
    assert_headers(&m, "moved");
    assert!(!s3.exists("p/app-1.zip.delta").await);
    s3.cleanup().await;
}

#[tokio::test]
async fn mv_recursive_takes_filters_and_dryrun_and_keeps_properties() {
    let Some(s3) = S3::new("flags-mv").await else {
        return;
    };
    let tree = s3.dir.path().join("tree");
    versions(&tree);
    write_file(&tree, "build.log", b"log\n");
    let mut up = vec!["-r"];
    up.extend_from_slice(FLAGS);
    s3.cp(&up, tree.to_str().unwrap(), &s3.url("src/"));
    let before = s3.keys().await;

    let (out, _) = s3.ok(&[
        "mv",
        "-r",
        "--dryrun",
        "--exclude",
        "*.log",
        &s3.url("src/"),
        &s3.url("dst/"),
    ]);
    assert_eq!(s3.keys().await, before, "--dryrun changes nothing");
    assert!(
        out.contains("(dryrun)") && out.contains("notes.txt") && !out.contains("build.log"),
        "{out}"
    );

    s3.ok(&[
        "mv",
        "-r",
        "--exclude",
        "*.log",
        &s3.url("src/"),
        &s3.url("dst/"),
    ]);
    let keys = s3.keys().await;
    let src: Vec<_> = keys.iter().filter(|k| k.starts_with("src/")).collect();
    assert_eq!(
        src,
        ["src/build.log"],
        "only the excluded file stays: {keys:?}"
    );
    for key in [
        "dst/app-1.zip.delta",
        "dst/app-2.zip.delta",
        "dst/notes.txt",
    ] {
        let h = s3.head(key).await;
        assert_headers(&h, key);
    }
    assert_eq!(
        s3.head("dst/notes.txt").await.content_type(),
        Some("text/plain")
    );

    // From a directory: the moved files leave it, the excluded one stays.
    let local = s3.dir.path().join("local");
    versions(&local);
    s3.ok(&[
        "mv",
        "--recursive",
        "--exclude",
        "*.txt",
        local.to_str().unwrap(),
        &s3.url("up/"),
    ]);
    assert!(!local.join("app-1.zip").exists() && !local.join("app-2.zip").exists());
    assert!(local.join("notes.txt").exists());
    assert!(s3.exists("up/app-2.zip.delta").await);
    s3.cleanup().await;
}

/// The test server (Ceph RGW without an encryption backend or extra placement targets)
/// refuses SSE and storage classes other than STANDARD. The flags must still be accepted
/// and sent: either the server stores them and HEAD shows them, or its refusal is reported
/// as a storage failure (exit 1, not a bad argument) and nothing is left behind.
#[tokio::test]
async fn sse_and_storage_classes_are_sent_to_the_server() {
    let Some(s3) = S3::new("flags-sse").await else {
        return;
    };
    versions(s3.dir.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--sse"], "AES256"),
        (&["--sse", "AES256"], "AES256"),
        (
            &["--sse", "aws:kms", "--sse-kms-key-id", "test-key"],
            "aws:kms",
        ),
        (&["--storage-class", "STANDARD_IA"], "STANDARD_IA"),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let prefix = format!("e{i}/");
        let file = s3.path("app-1.zip");
        let dest = s3.url(&prefix);
        // After the operands: a bare `--sse` would take the next word as its value.
        let mut args = vec!["cp", file.as_str(), dest.as_str()];
        args.extend_from_slice(flags);
        let out = s3.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            for key in ["app-1.zip.delta", "reference.bin"] {
                let h = s3.head(&format!("{prefix}{key}")).await;
                let shown = h
                    .server_side_encryption()
                    .map(|e| e.as_str().to_string())
                    .into_iter()
                    .chain(h.storage_class().map(|c| c.as_str().to_string()))
                    .collect::<Vec<_>>();
                assert!(
                    shown.iter().any(|s| s.starts_with(expected)),
                    "{key}: {shown:?}"
                );
            }
        } else {
            assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
            assert!(
                stderr.contains("deltaglider: error:") && stderr.contains("upload"),
                "{flags:?}: {stderr}"
            );
            let left: Vec<_> = s3
                .keys()
                .await
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .collect();
            assert!(left.is_empty(), "{flags:?} left {left:?}");
        }
    }
    s3.cleanup().await;
}

#[tokio::test]
async fn connection_flags_are_applied() {
    let Some(s3) = S3::new("flags-conn").await else {
        return;
    };
    versions(s3.dir.path());
    for f in ["app-1.zip", "app-2.zip", "notes.txt"] {
        s3.cp(&[], &s3.path(f), &s3.url("p/"));
    }
    // One key per listing request still lists everything.
    let (json, _) = s3.ok(&["ls", "--page-size", "1", "--json", "-r", &s3.url("")]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total_objects"], 3, "{json}");

    // The client behind --no-verify-ssl carries uploads and downloads (plain http here).
    write_file(s3.dir.path(), "big.zip", &noise(2_000_000, 3));
    let insecure = [
        "--no-verify-ssl",
        "--cli-read-timeout",
        "0",
        "--cli-connect-timeout",
        "0",
    ];
    s3.cp(&insecure, &s3.path("big.zip"), &s3.url("p/big.zip"));
    s3.cp(&insecure, &s3.url("p/big.zip"), &s3.path("back.zip"));
    assert_eq!(
        std::fs::read(s3.path("back.zip")).unwrap(),
        std::fs::read(s3.path("big.zip")).unwrap()
    );

    // A CA bundle must be readable PEM; on http it is not used otherwise.
    for (bundle, needle) in [
        ("/nonexistent/ca.pem", "cannot read it"),
        ("garbage", "no PEM certificate"),
    ] {
        let path = if bundle == "garbage" {
            write_file(s3.dir.path(), "ca.pem", b"not a certificate")
                .display()
                .to_string()
        } else {
            bundle.to_string()
        };
        let out = s3.run(&["ls", "--ca-bundle", &path, &s3.url("")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--ca-bundle") && stderr.contains(needle),
            "{stderr}"
        );
    }

    // Unsigned requests are anonymous: refused on a private bucket, served by a public one.
    let out = s3.run(&["--no-sign-request", "ls", &s3.url("p/")]);
    assert!(
        !out.status.success(),
        "anonymous listing of a private bucket"
    );
    s3.client()
        .put_bucket_acl()
        .bucket(&s3.bucket)
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    s3.cp(
        &["--acl", "public-read"],
        &s3.path("notes.txt"),
        &s3.url("pub/notes.txt"),
    );
    s3.ok(&[
        "cp",
        "--no-sign-request",
        &s3.url("pub/notes.txt"),
        &s3.path("anon.txt"),
    ]);
    assert_eq!(
        std::fs::read(s3.path("anon.txt")).unwrap(),
        b"release notes\n"
    );
    s3.cleanup().await;
}

/// The local store keeps the headers, content type and metadata in its object header and
/// says once which flags it has no use for.
#[test]
fn local_store_keeps_headers_and_names_the_flags_that_do_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("file://{}", dir.path().join("store").display());
    let run = |args: &[&str]| {
        let out = run_dg(
            args,
            &[
                ("DG_ENDPOINT_URL", &endpoint),
                ("TMPDIR", dir.path().to_str().unwrap()),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    };
    run(&["mb", "s3://bkt"]);
    versions(dir.path());
    let file = dir.path().join("app-1.zip").display().to_string();
    let mut args = vec!["cp"];
    // FLAGS less its storage class, given below.
    let mut flags = FLAGS.iter().copied();
    while let Some(f) = flags.next() {
        if f == "--storage-class" {
            flags.next();
        } else {
            args.push(f);
        }
    }
    args.extend([
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        "k1",
        "--storage-class",
        "GLACIER",
        "--no-sign-request",
        "--no-verify-ssl",
        &file,
        "s3://bkt/rel/",
    ]);
    let (_, stderr) = run(&args);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one warning: {stderr}");
    assert!(
        lines[0].starts_with("deltaglider: warning: the local store"),
        "{stderr}"
    );
    for flag in [
        "--storage-class",
        "--sse,",
        "--sse-kms-key-id",
        "--acl",
        "--page-size",
        "--no-sign-request",
        "--no-verify-ssl",
        "--cli-read-timeout",
    ] {
        assert!(lines[0].contains(flag), "{flag} named: {stderr}");
    }
    assert!(
        !lines[0].contains("--cache-control"),
        "kept, not ignored: {stderr}"
    );

    let check = |url: &str| {
        let (json, _) = run(&["head", "--json", url]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["content_type"], "application/zip", "{url}: {v}");
        assert_eq!(v["user_metadata"]["build"], "42", "{url}");
        assert_eq!(v["headers"]["cache_control"], "max-age=60", "{url}");
        assert_eq!(v["headers"]["content_disposition"], "attachment", "{url}");
        assert_eq!(v["headers"]["content_encoding"], "identity", "{url}");
        assert_eq!(v["headers"]["content_language"], "en", "{url}");
        assert_eq!(v["headers"]["expires"], "2030-01-31T12:00:00Z", "{url}");
        assert_eq!(v["protection"], serde_json::json!({}), "{url}");
    };
    check("s3://bkt/rel/app-1.zip");
    // Copies keep them too: rebuilt into another deltaspace, and whole.
    run(&["cp", "s3://bkt/rel/app-1.zip", "s3://bkt/other/"]);
    check("s3://bkt/other/app-1.zip");
    run(&[
        "cp",
        "--no-delta",
        "s3://bkt/rel/app-1.zip",
        "s3://bkt/whole/app-1.zip",
    ]);
    check("s3://bkt/whole/app-1.zip");

    // mv -r --dryrun leaves the store as it was.
    let snapshot = || {
        let mut files: Vec<_> = walkdir::WalkDir::new(dir.path().join("store"))
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| e.path().display().to_string())
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    let (out, _) = run(&["mv", "-r", "--dryrun", "s3://bkt/rel/", "s3://bkt/moved/"]);
    assert!(out.contains("(dryrun)"), "{out}");
    assert_eq!(snapshot(), before);

    // AWS_CA_BUNDLE in the environment is for S3 endpoints, not a flag to warn about.
    let out = run_dg(
        &["ls", "s3://bkt/rel/"],
        &[
            ("DG_ENDPOINT_URL", &endpoint),
            ("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
