//! The limits of `deltaglider serve`: objects larger than `--max-object-size` are refused
//! with `EntityTooLarge` (in one PUT or once their parts are completed) and nothing is
//! stored; requests beyond `--max-requests` wait, and past `--queue-timeout` are answered
//! `503 SlowDown`, with the permit of a request held until its response body is sent.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use cli_support::Dg;
use serve_support::{Serve, client_bin, stored_keys};

const OBJECT_SIZE: &str = r#"
import os, sys, json, boto3, botocore
from botocore.config import Config
bucket = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
def err(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("no error from %s %s" % (f.__name__, kw))
MIB = 1 << 20
s3.put_object(Bucket=bucket, Key="ok.bin", Body=b"x" * (MIB // 2))
assert err(s3.put_object, Bucket=bucket, Key="big.bin", Body=b"x" * (2 * MIB)) == "EntityTooLarge"
up = s3.create_multipart_upload(Bucket=bucket, Key="big-mp.bin")["UploadId"]
e1 = s3.upload_part(Bucket=bucket, Key="big-mp.bin", UploadId=up, PartNumber=1, Body=b"y" * (5 * MIB))["ETag"]
e2 = s3.upload_part(Bucket=bucket, Key="big-mp.bin", UploadId=up, PartNumber=2, Body=b"z")["ETag"]
parts = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
assert err(s3.complete_multipart_upload, Bucket=bucket, Key="big-mp.bin", UploadId=up,
           MultipartUpload=parts) == "EntityTooLarge"
# The upload is still there, to abort.
s3.abort_multipart_upload(Bucket=bucket, Key="big-mp.bin", UploadId=up)
print(json.dumps({"ok": True}))
"#;

#[test]
fn objects_over_the_size_limit_are_refused_and_nothing_is_stored() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_with(&dg, &bin, &["--max-object-size", "1M"]);
    let out = serve.python_ok(OBJECT_SIZE, &[&dg.bucket]);
    assert!(out.contains("\"ok\": true"), "{out}");
    assert_eq!(stored_keys(&dg), vec!["ok.bin".to_string()]);
}

/// One request holds the only permit (a GET whose body the client does not read, larger
/// than the socket buffers can take); another is answered `SlowDown` at once; once the
/// first connection closes, requests are served again.
const BACK_PRESSURE: &str = r#"
import os, sys, json, socket, time, urllib.parse, boto3, botocore
from botocore.config import Config
bucket = sys.argv[1]
endpoint = os.environ["DG_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=endpoint,
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
MIB = 1 << 20
s3.put_object(Bucket=bucket, Key="large.bin", Body=os.urandom(64 * MIB))
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "large.bin"})
parsed = urllib.parse.urlparse(url)
hold = socket.create_connection((parsed.hostname, parsed.port))
hold.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
hold.sendall(("GET %s?%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (parsed.path, parsed.query, parsed.netloc)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += hold.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
try:
    s3.head_object(Bucket=bucket, Key="large.bin")
    raise SystemExit("served while the only permit was held")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] in ("SlowDown", "503"), e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
hold.close()
# The permit comes back when the server notices the closed connection.
deadline = time.time() + 30
while True:
    try:
        s3.head_object(Bucket=bucket, Key="large.bin")
        break
    except botocore.exceptions.ClientError as e:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
print(json.dumps({"ok": True}))
"#;

#[test]
fn requests_past_the_limit_are_slowed_down_until_a_permit_is_free() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_with(&dg, &bin, &["--max-requests", "1", "--queue-timeout", "0"]);
    let out = serve.python_ok(BACK_PRESSURE, &[&dg.bucket]);
    assert!(out.contains("\"ok\": true"), "{out}");
}

/// Sends a PUT in two halves: after the first, waits until the server counts it in
/// flight, says READY, and sends the rest when told GO on stdin; prints the status.
const HALF_PUT: &str = r#"
import os, sys, socket, time, urllib.parse, urllib.request
endpoint, metrics, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
body = bytes(range(256)) * 4096
u = urllib.parse.urlparse(endpoint)
s = socket.create_connection((u.hostname, u.port))
s.sendall(("PUT /%s/inflight.bin HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
           % (bucket, u.netloc, len(body))).encode())
s.sendall(body[: len(body) // 2])
deadline = time.time() + 30
while True:
    page = urllib.request.urlopen(metrics + "/metrics").read().decode()
    if "deltaglider_serve_requests_in_flight 1" in page:
        break
    if time.time() > deadline:
        raise SystemExit("the PUT never showed in flight:\n" + page)
    time.sleep(0.05)
print("READY", flush=True)
assert sys.stdin.readline().strip() == "GO"
s.sendall(body[len(body) // 2 :])
status = s.recv(100).split(b"\r\n")[0].decode()
print(status, flush=True)
"#;

/// SIGTERM with a PUT half sent: the server stops taking connections but finishes the
/// PUT (it is stored whole and right), then exits 0 and leaves no spool behind.
#[test]
fn a_stopping_server_finishes_the_requests_in_flight() {
    use std::io::{BufRead, BufReader, Write};
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap().to_string();
    let serve = Serve::start_without_key(
        &dg,
        &bin,
        &[
            "--anonymous",
            "--metrics-listen",
            "127.0.0.1:0",
            "--spool-dir",
            &spool_dir,
        ],
    );
    let metrics = serve.metrics.clone().unwrap();
    let mut python = serve
        .client("python3", ("unused", "unused"))
        .arg("-c")
        .arg(HALF_PUT)
        .args([&serve.endpoint, &metrics, &dg.bucket])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let pid = rustix::process::Pid::from_child(&serve.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    writeln!(python.stdin.take().unwrap(), "GO").unwrap();
    let status = lines.next().unwrap().unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(python.wait().unwrap().success());
    assert!(serve.stop().success());
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
    dg.ok(&[
        "cp",
        &format!("s3://{}/inflight.bin", dg.bucket),
        &dg.path("back.bin"),
    ]);
    let back = std::fs::read(dg.work().join("back.bin")).unwrap();
    let expected: Vec<u8> = (0..4096).flat_map(|_| 0..=255u8).collect();
    assert!(back == expected, "the PUT in flight was stored whole");
}

/// Clients that hang up in the middle of a GET (a reset connection: the server's next
/// write fails with EPIPE) end their request, never the server.
const HANG_UPS: &str = r#"
import os, sys, socket, struct, urllib.parse, boto3
from botocore.config import Config
bucket = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"], config=Config(s3={"addressing_style": "path"}))
s3.put_object(Bucket=bucket, Key="hangup.bin", Body=os.urandom(32 << 20))
url = urllib.parse.urlparse(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "hangup.bin"}))
for _ in range(5):
    c = socket.create_connection((url.hostname, url.port))
    c.sendall(("GET %s?%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (url.path, url.query, url.netloc)).encode())
    assert c.recv(65536)
    # End the request side (FIN), then close with unread data and no lingering (RST): the
    # server's next write fails with EPIPE, which is SIGPIPE for a process that does not
    # ignore it.
    c.shutdown(socket.SHUT_WR)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    s3.head_object(Bucket=bucket, Key="hangup.bin")
print("alive")
"#;

#[test]
fn clients_hanging_up_mid_download_do_not_stop_the_server() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let mut serve = Serve::start(&dg, &bin);
    let out = serve.python_ok(HANG_UPS, &[&dg.bucket]);
    assert!(out.contains("alive"), "{out}");
    assert!(serve.child.try_wait().unwrap().is_none(), "serve exited");
    assert!(serve.stop().success());
}
