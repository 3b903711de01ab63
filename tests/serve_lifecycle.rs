//! What `docs/serve.md` promises about a server's life: `--grace` bounds how long a
//! stopping server waits for requests in flight, `--queue-timeout` lets a request wait for
//! a permit before `SlowDown`, a PUT of unknown length is refused under
//! `--max-object-size`, the spool a killed server left is removed by the next one, and
//! uploads idle for `--abort-idle-uploads` are aborted.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cli_support::Dg;
use serve_support::{Serve, client_bin, stored_keys};

fn connect(serve: &Serve) -> TcpStream {
    let addr = serve.endpoint.strip_prefix("http://").unwrap();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// The status line of the answer on `s`.
fn status_line(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).trim().to_string()
}

/// Half a PUT's body sent; the server holds it in flight.
fn half_put(serve: &Serve, bucket: &str, key: &str) -> TcpStream {
    let mut s = connect(serve);
    write!(
        s,
        "PUT /{bucket}/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[b'h'; 500]).unwrap();
    s
}

#[test]
fn a_stopping_server_waits_no_longer_than_its_grace() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_without_key(
        &dg,
        &bin,
        &[
            "--anonymous",
            "--grace",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let _held = half_put(&serve, &dg.bucket, "never-finished.bin");
    // The stop must find the PUT in flight, or it would prove nothing about --grace.
    let metrics = serve.metrics.clone().unwrap();
    let addr = metrics.strip_prefix("http://").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut m = TcpStream::connect(&addr).unwrap();
        write!(
            m,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        m.read_to_string(&mut page).unwrap();
        if page.contains("deltaglider_serve_requests_in_flight 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PUT never showed in flight:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    let status = serve.stop();
    let waited = start.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(15),
        "stopped after {waited:?} with --grace 1 (the default is 30 s)"
    );
    assert!(
        !stored_keys(&dg).iter().any(|k| k.starts_with("never")),
        "the unfinished PUT stored nothing"
    );
}

/// With `--queue-timeout 20`, a request that finds the only permit taken waits for it
/// instead of being answered `SlowDown`.
const WAITS_FOR_A_PERMIT: &str = r#"
import os, sys, json, socket, threading, time, urllib.parse, boto3, botocore
from botocore.config import Config
bucket = sys.argv[1]
endpoint = os.environ["DG_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=endpoint,
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                read_timeout=120))
s3.put_object(Bucket=bucket, Key="large.bin", Body=os.urandom(64 << 20))
url = urllib.parse.urlparse(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "large.bin"}))
hold = socket.create_connection((url.hostname, url.port))
hold.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
hold.sendall(("GET %s?%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (url.path, url.query, url.netloc)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += hold.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
# The permit is freed a second after the HEAD starts waiting for it.
threading.Timer(1.0, hold.close).start()
start = time.time()
s3.head_object(Bucket=bucket, Key="large.bin")
print(json.dumps({"ok": True, "waited": time.time() - start}))
"#;

#[test]
fn a_request_waits_for_a_permit_until_its_queue_timeout() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_with(&dg, &bin, &["--max-requests", "1", "--queue-timeout", "20"]);
    let out = serve.python_ok(WAITS_FOR_A_PERMIT, &[&dg.bucket]);
    assert!(out.contains("\"ok\": true"), "{out}");
    let waited: f64 = out
        .split("\"waited\": ")
        .nth(1)
        .and_then(|v| v.trim().trim_end_matches('}').parse().ok())
        .unwrap();
    assert!(
        waited >= 0.9,
        "the HEAD was served while the permit was held: {out}"
    );
}

#[test]
fn a_put_of_unknown_length_is_refused_under_a_size_limit() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_without_key(&dg, &bin, &["--anonymous", "--max-object-size", "1M"]);
    let mut s = connect(&serve);
    write!(
        s,
        "PUT /{}/chunked.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        dg.bucket
    )
    .unwrap();
    let status = status_line(&mut s);
    assert!(status.starts_with("HTTP/1.1 411"), "{status}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("MissingContentLength"), "{rest}");
    assert!(stored_keys(&dg).is_empty(), "{:?}", stored_keys(&dg));
}

#[test]
fn the_spool_of_a_killed_server_is_removed_by_the_next_one() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap();
    let entries = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(spool.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let first = Serve::start_with(&dg, &bin, &["--spool-dir", spool_dir]);
    // An upload in progress leaves parts in the spool.
    first.python_ok(
        r#"
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"], config=Config(s3={"addressing_style": "path"}))
up = s3.create_multipart_upload(Bucket=sys.argv[1], Key="big.bin")["UploadId"]
s3.upload_part(Bucket=sys.argv[1], Key="big.bin", UploadId=up, PartNumber=1, Body=b"p" * (5 << 20))
"#,
        &[&dg.bucket],
    );
    let left = entries();
    assert_eq!(left.len(), 1, "{left:?}");
    first.kill();
    assert_eq!(entries(), left, "a killed server cannot clean up");

    let second = Serve::start_with(&dg, &bin, &["--spool-dir", spool_dir]);
    let now = entries();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(
        now, left,
        "the dead server's spool is gone, the new one's is there"
    );
    assert!(second.stop().success());
    assert!(entries().is_empty(), "{:?}", entries());
}

/// An upload that gets no part for `--abort-idle-uploads` seconds is aborted: gone from
/// the listing, its id refused, its parts off the spool; one that keeps sending parts is
/// not.
const IDLE_UPLOADS: &str = r#"
import os, sys, json, time, boto3, botocore
from botocore.config import Config
bucket, spool = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
def files():
    return sum(len(f) for _, _, f in os.walk(spool))
idle = s3.create_multipart_upload(Bucket=bucket, Key="idle.bin")["UploadId"]
s3.upload_part(Bucket=bucket, Key="idle.bin", UploadId=idle, PartNumber=1, Body=b"i" * (5 << 20))
busy = s3.create_multipart_upload(Bucket=bucket, Key="busy.bin")["UploadId"]
etags = []
# Parts keep coming for the busy upload until the idle one is gone.
deadline = time.time() + 60
while True:
    etags.append(s3.upload_part(Bucket=bucket, Key="busy.bin", UploadId=busy,
                                PartNumber=len(etags) + 1, Body=b"b" * (5 << 20))["ETag"])
    listed = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert busy in listed, listed
    if idle not in listed:
        break
    assert time.time() < deadline, "the idle upload was never aborted"
    time.sleep(0.2)
assert len(etags) >= 3, "aborted %d parts after it began" % len(etags)
try:
    s3.upload_part(Bucket=bucket, Key="idle.bin", UploadId=idle, PartNumber=2, Body=b"late")
    raise SystemExit("an aborted upload took a part")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "NoSuchUpload", e.response
s3.complete_multipart_upload(Bucket=bucket, Key="busy.bin", UploadId=busy, MultipartUpload={
    "Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(etags)]})
assert s3.head_object(Bucket=bucket, Key="busy.bin")["ContentLength"] == len(etags) * (5 << 20)
print(json.dumps({"ok": True, "files": files()}))
"#;

#[test]
fn idle_multipart_uploads_are_aborted_and_busy_ones_kept() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap();
    let serve = Serve::start_with(
        &dg,
        &bin,
        &["--spool-dir", spool_dir, "--abort-idle-uploads", "3"],
    );
    let out = serve.python_ok(IDLE_UPLOADS, &[&dg.bucket, spool_dir]);
    assert!(out.contains("\"ok\": true"), "{out}");
    // Only the server's lock file is left in its spool.
    assert!(out.contains("\"files\": 1"), "{out}");
    assert!(serve.stop().success());
}
