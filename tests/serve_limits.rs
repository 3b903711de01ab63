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
