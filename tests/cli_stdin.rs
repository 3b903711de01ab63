//! `cp - s3://bucket/key`: standard input stored (as a delta when eligible), streamed into a
//! private snapshot first; `--expected-size` refuses a stream of another length. On the local
//! store and the S3 server, checked back through `cp s3://… -`.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{dg_bin, edited, noise, unique_bucket};

fn dg(endpoint: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(dg_bin())
        .args(args)
        .env("DG_CONFIG", "/dev/null")
        .env("DG_ENDPOINT_URL", endpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    // a writer thread, so that a large input cannot deadlock against a full stdout pipe
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn endpoints(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = vec![(
        format!("file://{}", dir.join("store").display()),
        "bkt".to_string(),
    )];
    if let Some(e) = support::s3_endpoint() {
        out.push((e, unique_bucket("stdin")));
    }
    out
}

#[test]
fn standard_input_is_stored_and_comes_back_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = noise(3 << 20, 5);
    let v2 = edited(&v1, 6);
    for (endpoint, bucket) in endpoints(dir.path()) {
        let ok = |out: &Output| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(&dg(&endpoint, &["mb", &format!("s3://{bucket}")], b""));
        for (name, bytes) in [("app-1.zip", &v1), ("app-2.zip", &v2)] {
            let url = format!("s3://{bucket}/rel/{name}");
            let out = dg(&endpoint, &["cp", "-", &url, "--json"], bytes);
            ok(&out);
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["original_size"], bytes.len(), "{report}");
            let back = dg(&endpoint, &["cp", &url, "-"], b"");
            ok(&back);
            assert!(back.stdout == **bytes, "{name} came back different");
        }
        // the second release went in as a delta against the first
        let head = dg(
            &endpoint,
            &["ls", "--json", &format!("s3://{bucket}/rel/")],
            b"",
        );
        assert!(String::from_utf8_lossy(&head.stdout).contains("delta"));
    }
}

#[test]
fn a_stream_of_another_length_than_expected_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, bucket) in endpoints(dir.path()) {
        assert!(
            dg(&endpoint, &["mb", &format!("s3://{bucket}")], b"")
                .status
                .success()
        );
        let url = format!("s3://{bucket}/rel/app.zip");
        let out = dg(
            &endpoint,
            &["cp", "-", &url, "--expected-size", "11"],
            b"ten bytes!",
        );
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not the 11 expected"), "{stderr}");
        let gone = dg(&endpoint, &["cp", &url, "-"], b"");
        assert_eq!(gone.status.code(), Some(3), "nothing stored");
        // a prefix is no name to store standard input as
        let out = dg(
            &endpoint,
            &["cp", "-", &format!("s3://{bucket}/rel/")],
            b"x",
        );
        assert_eq!(out.status.code(), Some(2));
    }
}
