//! `deltaglider serve` driven by real S3 clients (the `aws` CLI and boto3), over the local
//! store and over the S3 server: what they upload is stored as deltas and comes back
//! byte-exact, through them and through the `deltaglider` CLI alike.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use cli_support::{Backend, Dg, support};
use serve_support::{KEY_ID, SECRET, Serve, client_bin, stderr, stored_keys};
use support::{edited, noise};

#[test]
fn the_aws_cli_stores_deltas_and_reads_originals_through_serve() {
    let Some(bin) = client_bin() else { return };
    for dg in Dg::all("serve-aws") {
        let serve = Serve::start(&dg, &bin);
        let b = &dg.bucket;
        let v1 = noise(300_000, 1);
        let v2 = edited(&v1, 2);
        std::fs::write(dg.work().join("app-1.0.zip"), &v1).unwrap();
        std::fs::write(dg.work().join("app-1.1.zip"), &v2).unwrap();
        let url = |key: &str| format!("s3://{b}/{key}");

        serve.aws_ok(&["s3", "cp", &dg.path("app-1.0.zip"), &url("app/app-1.0.zip")]);
        serve.aws_ok(&[
            "s3",
            "cp",
            &dg.path("app-1.1.zip"),
            &url("app/app-1.1.zip"),
            "--content-type",
            "application/zip",
            "--metadata",
            "build=42",
        ]);
        let stored = stored_keys(&dg);
        assert!(
            stored.contains(&"app/app-1.1.zip.delta".to_string()),
            "[{}] {stored:?}",
            dg.name()
        );

        // Listings: original sizes, no reference.
        let ls = serve.aws_ok(&["s3", "ls", "--recursive", &url("")]);
        assert!(
            ls.contains(&format!("{} app/app-1.1.zip", v2.len())),
            "{ls}"
        );
        assert!(
            ls.contains(&format!("{} app/app-1.0.zip", v1.len())),
            "{ls}"
        );
        assert!(
            !ls.contains("reference.bin") && !ls.contains(".delta"),
            "{ls}"
        );

        // Downloads through the aws CLI and through deltaglider are the originals.
        serve.aws_ok(&["s3", "cp", &url("app/app-1.1.zip"), &dg.path("aws-1.1.zip")]);
        assert!(std::fs::read(dg.work().join("aws-1.1.zip")).unwrap() == v2);
        dg.ok(&["cp", &url("app/app-1.1.zip"), &dg.path("dg-1.1.zip")]);
        assert!(std::fs::read(dg.work().join("dg-1.1.zip")).unwrap() == v2);

        // And what deltaglider uploads, the aws CLI downloads.
        let v3 = edited(&v2, 3);
        std::fs::write(dg.work().join("app-1.2.zip"), &v3).unwrap();
        dg.ok(&["cp", &dg.path("app-1.2.zip"), &url("app/app-1.2.zip")]);
        serve.aws_ok(&["s3", "cp", &url("app/app-1.2.zip"), &dg.path("aws-1.2.zip")]);
        assert!(std::fs::read(dg.work().join("aws-1.2.zip")).unwrap() == v3);

        // HEAD: the original's size, type, metadata and an entity tag.
        let head = serve.aws_ok(&[
            "s3api",
            "head-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
        ]);
        let head: serde_json::Value = serde_json::from_str(&head).unwrap();
        assert_eq!(head["ContentLength"], v2.len() as u64, "{head}");
        assert_eq!(head["ContentType"], "application/zip", "{head}");
        assert_eq!(head["Metadata"]["build"], "42", "{head}");
        let etag = head["ETag"].as_str().unwrap().to_string();
        assert!(etag.len() > 2, "{head}");

        // A range of a delta-stored object.
        let range_out = dg.work().join("range.bin");
        let got = serve.aws_ok(&[
            "s3api",
            "get-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
            "--range",
            "bytes=1000-1999",
            range_out.to_str().unwrap(),
        ]);
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(
            got["ContentRange"],
            format!("bytes 1000-1999/{}", v2.len()),
            "{got}"
        );
        assert!(std::fs::read(&range_out).unwrap() == v2[1000..2000]);
        let suffix = serve.aws_ok(&[
            "s3api",
            "get-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
            "--range",
            "bytes=-10",
            range_out.to_str().unwrap(),
        ]);
        assert!(suffix.contains("ContentRange"), "{suffix}");
        assert!(std::fs::read(&range_out).unwrap() == v2[v2.len() - 10..]);

        // Conditional GET: the current tag is "not modified", another one is served.
        let cond = serve.aws(&[
            "s3api",
            "get-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
            "--if-none-match",
            &etag,
            range_out.to_str().unwrap(),
        ]);
        assert!(!cond.status.success());
        assert!(stderr(&cond).contains("304"), "{}", stderr(&cond));
        serve.aws_ok(&[
            "s3api",
            "get-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
            "--if-none-match",
            "\"other\"",
            range_out.to_str().unwrap(),
        ]);
        let cond = serve.aws(&[
            "s3api",
            "head-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.1.zip",
            "--if-match",
            "\"other\"",
        ]);
        assert!(stderr(&cond).contains("412"), "{}", stderr(&cond));

        // sync up, then down into an empty directory: the same files.
        let tree = dg.work().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a.zip"), &v1).unwrap();
        std::fs::write(tree.join("sub/b.zip"), &v3).unwrap();
        serve.aws_ok(&["s3", "sync", tree.to_str().unwrap(), &url("tree/")]);
        let again = serve.aws_ok(&["s3", "sync", tree.to_str().unwrap(), &url("tree/")]);
        assert!(
            again.trim().is_empty(),
            "a second sync uploads nothing: {again}"
        );
        let back = dg.work().join("back");
        serve.aws_ok(&["s3", "sync", &url("tree/"), back.to_str().unwrap()]);
        assert!(std::fs::read(back.join("a.zip")).unwrap() == v1);
        assert!(std::fs::read(back.join("sub/b.zip")).unwrap() == v3);

        // rm: gone for every client.
        serve.aws_ok(&["s3", "rm", &url("app/app-1.0.zip")]);
        let head = serve.aws(&[
            "s3api",
            "head-object",
            "--bucket",
            b,
            "--key",
            "app/app-1.0.zip",
        ]);
        assert!(stderr(&head).contains("404"), "{}", stderr(&head));
        let ls = serve.aws_ok(&["s3", "ls", &url("app/")]);
        assert!(!ls.contains("app-1.0.zip"), "{ls}");
        serve.aws_ok(&["s3", "rm", "--recursive", &url("")]);
        assert!(
            serve
                .aws_ok(&["s3", "ls", "--recursive", &url("")])
                .trim()
                .is_empty()
        );

        assert!(serve.stop().success());
        if let Backend::S3 = dg.backend {
            eprintln!("[s3] aws CLI through serve: ok");
        }
    }
}

/// boto3: put with metadata, get, list (V2 pages, delimiter, V1 markers), copy, batch
/// delete, and the errors it tests for.
const BOTO3_SCRIPT: &str = r#"
import os, sys, json, boto3, botocore
from botocore.config import Config
bucket = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}))
def err(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("no error from %s %s" % (f, kw))

base = bytes((i * 31 + i // 7) % 256 for i in range(200_000))
v2 = bytearray(base); v2[5000:5010] = b"0123456789"; v2 = bytes(v2)
s3.put_object(Bucket=bucket, Key="rel/a/app-1.zip", Body=base)
s3.put_object(Bucket=bucket, Key="rel/a/app-2.zip", Body=v2, Metadata={"owner": "ci"},
              ContentType="application/zip")
for i in range(5):
    s3.put_object(Bucket=bucket, Key="rel/b/f%d.txt" % i, Body=b"text %d" % i)

got = s3.get_object(Bucket=bucket, Key="rel/a/app-2.zip")
assert got["Body"].read() == v2
assert got["ContentLength"] == len(v2)
assert got["Metadata"] == {"owner": "ci"}, got["Metadata"]
assert got["ContentType"] == "application/zip"

# Cache-Control, Content-Disposition, Content-Language and Expires are kept, for a delta
# and for an object stored whole, put in one piece or in parts.
import datetime
expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
kept = dict(CacheControl="max-age=60", ContentDisposition="attachment; filename=x.zip",
            ContentLanguage="en", Expires=expires)
s3.put_object(Bucket=bucket, Key="hdr/app-3.zip", Body=v2 + b"3", **kept)
s3.put_object(Bucket=bucket, Key="hdr/notes.txt", Body=b"notes", **kept)
up = s3.create_multipart_upload(Bucket=bucket, Key="hdr/parts.zip", **kept)["UploadId"]
part = s3.upload_part(Bucket=bucket, Key="hdr/parts.zip", UploadId=up, PartNumber=1, Body=v2,
                      ChecksumAlgorithm="CRC32")
assert "ChecksumCRC32" in part, part
etag = part["ETag"]
s3.complete_multipart_upload(Bucket=bucket, Key="hdr/parts.zip", UploadId=up,
                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
for key in ["hdr/app-3.zip", "hdr/notes.txt", "hdr/parts.zip"]:
    for r in [s3.head_object(Bucket=bucket, Key=key), s3.get_object(Bucket=bucket, Key=key)]:
        got = {k: r.get(k) for k in kept}
        assert got == kept, (key, got)
for o in s3.list_objects_v2(Bucket=bucket, Prefix="hdr/")["Contents"]:
    s3.delete_object(Bucket=bucket, Key=o["Key"])

# ListObjectsV2, one key a page.
keys, token = [], None
while True:
    kw = {"Bucket": bucket, "Prefix": "rel/", "MaxKeys": 1}
    if token:
        kw["ContinuationToken"] = token
    page = s3.list_objects_v2(**kw)
    keys += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert keys == ["rel/a/app-1.zip", "rel/a/app-2.zip"] + ["rel/b/f%d.txt" % i for i in range(5)], keys
sizes = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="rel/a/")["Contents"]}
assert sizes == {"rel/a/app-1.zip": len(base), "rel/a/app-2.zip": len(v2)}, sizes

top = s3.list_objects_v2(Bucket=bucket, Prefix="rel/", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["rel/a/", "rel/b/"], top
assert "Contents" not in top, top
owned = s3.list_objects_v2(Bucket=bucket, Prefix="rel/a/", FetchOwner=True)["Contents"]
assert all(o["Owner"]["ID"] == os.environ["AWS_ACCESS_KEY_ID"] for o in owned), owned
assert all("Owner" not in o for o in s3.list_objects_v2(Bucket=bucket, Prefix="rel/a/")["Contents"])
after = s3.list_objects_v2(Bucket=bucket, Prefix="rel/b/", StartAfter="rel/b/f2.txt")
assert [o["Key"] for o in after["Contents"]] == ["rel/b/f3.txt", "rel/b/f4.txt"], after

# ListObjects (V1) with markers.
keys, marker = [], ""
while True:
    page = s3.list_objects(Bucket=bucket, Prefix="rel/b/", MaxKeys=2, Marker=marker)
    keys += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    marker = page.get("NextMarker") or keys[-1]
assert keys == ["rel/b/f%d.txt" % i for i in range(5)], keys

# CopyObject of a delta-stored object: the original at the destination.
s3.copy_object(Bucket=bucket, Key="copy/app-2.zip", CopySource={"Bucket": bucket, "Key": "rel/a/app-2.zip"})
assert s3.get_object(Bucket=bucket, Key="copy/app-2.zip")["Body"].read() == v2

# A copy onto itself must replace the metadata, and then keeps the bytes.
assert err(s3.copy_object, Bucket=bucket, Key="copy/app-2.zip",
           CopySource={"Bucket": bucket, "Key": "copy/app-2.zip"}) == "InvalidRequest"
for key in ["copy/app-2.zip", "rel/b/f1.txt"]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   Metadata={"stage": "final"}, MetadataDirective="REPLACE")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Metadata"] == {"stage": "final"} and got["Body"].read() == body, key

# ListBuckets a page at a time.
names, token = [], None
while True:
    kw = {"MaxBuckets": 3}
    if token:
        kw["ContinuationToken"] = token
    page = s3.list_buckets(**kw)
    assert len(page["Buckets"]) <= 3, page
    names += [b["Name"] for b in page["Buckets"]]
    token = page.get("ContinuationToken")
    if not token:
        break
assert bucket in names and names == sorted(names), names

# The checksums a PUT declared are echoed; with checksum mode, a whole object's
# SHA-256 is reported (never a range's).
import base64, hashlib
sha = base64.b64encode(hashlib.sha256(v2).digest()).decode()
put = s3.put_object(Bucket=bucket, Key="sum/app-4.zip", Body=v2, ChecksumSHA256=sha)
assert put["ChecksumSHA256"] == sha, put
put = s3.put_object(Bucket=bucket, Key="sum/crc.txt", Body=b"crc", ChecksumAlgorithm="CRC32")
assert "ChecksumCRC32" in put, put
assert "ChecksumSHA256" not in s3.head_object(Bucket=bucket, Key="sum/app-4.zip")
head = s3.head_object(Bucket=bucket, Key="sum/app-4.zip", ChecksumMode="ENABLED")
assert head["ChecksumSHA256"] == sha and head["ChecksumType"] == "FULL_OBJECT", head
got = s3.get_object(Bucket=bucket, Key="sum/app-4.zip", ChecksumMode="ENABLED")
assert got["ChecksumSHA256"] == sha and got["Body"].read() == v2
part = s3.get_object(Bucket=bucket, Key="sum/app-4.zip", ChecksumMode="ENABLED", Range="bytes=0-9")
assert "ChecksumSHA256" not in part and part["Body"].read() == v2[:10]
assert err(s3.put_object, Bucket=bucket, Key="sum/bad.zip", Body=v2,
           ChecksumSHA256=base64.b64encode(b"x" * 32).decode()) == "BadDigest"
for k in ["sum/app-4.zip", "sum/crc.txt"]:
    s3.delete_object(Bucket=bucket, Key=k)

# Every object is one part: part 1 is all of it, there is no part 2.
whole = s3.get_object(Bucket=bucket, Key="rel/a/app-2.zip", PartNumber=1)
assert whole["Body"].read() == v2 and "PartsCount" not in whole
assert err(s3.get_object, Bucket=bucket, Key="rel/a/app-2.zip", PartNumber=2) == "InvalidPart"
assert err(s3.head_object, Bucket=bucket, Key="rel/a/app-2.zip", PartNumber=2) in ("InvalidPart", "400")

# Errors as S3 names them.
assert err(s3.get_object, Bucket=bucket, Key="nope") == "NoSuchKey"
assert err(s3.get_object, Bucket=bucket + "-missing", Key="nope") == "NoSuchBucket"
assert err(s3.get_object, Bucket=bucket, Key="rel/a/app-2.zip", Range="bytes=999999999-") == "InvalidRange"
assert err(s3.delete_bucket, Bucket=bucket) == "BucketNotEmpty"
assert err(s3.put_object, Bucket=bucket, Key="bad", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==") == "BadDigest"

# An empty object has no range to serve.
s3.put_object(Bucket=bucket, Key="empty.txt", Body=b"")
assert err(s3.get_object, Bucket=bucket, Key="empty.txt", Range="bytes=-5") == "InvalidRange"
assert s3.get_object(Bucket=bucket, Key="empty.txt")["Body"].read() == b""
s3.delete_object(Bucket=bucket, Key="empty.txt")

# A 304 names the version the client has.
tag = s3.head_object(Bucket=bucket, Key="rel/a/app-2.zip")["ETag"]
try:
    s3.get_object(Bucket=bucket, Key="rel/a/app-2.zip", IfNoneMatch=tag)
    raise SystemExit("no 304")
except botocore.exceptions.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e.response
    headers = e.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("etag") == tag and "last-modified" in headers, headers

# At most 1000 keys per DeleteObjects, as in S3.
assert err(s3.delete_objects, Bucket=bucket,
           Delete={"Objects": [{"Key": "k%d" % i} for i in range(1001)]}) == "MalformedXML"

# A SigV4 presigned URL valid for more than 7 days is refused.
import urllib.request, urllib.error
v4 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
long_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "rel/a/app-2.zip"},
                                     ExpiresIn=609901)
try:
    urllib.request.urlopen(long_url)
    raise SystemExit("a presigned URL of more than 7 days was served")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"AccessDenied" in e.read(), e.code

# DeleteObjects, then the bucket is empty to every listing.
all_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in all_keys]})
assert sorted(d["Key"] for d in out["Deleted"]) == sorted(all_keys), out
assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
s3.delete_object(Bucket=bucket, Key="already-gone")
print(json.dumps({"ok": True, "keys": len(all_keys)}))
"#;

#[test]
fn boto3_puts_gets_lists_copies_and_deletes_through_serve() {
    let Some(bin) = client_bin() else { return };
    for dg in Dg::all("serve-boto3") {
        let serve = Serve::start(&dg, &bin);
        let out = serve.python_ok(BOTO3_SCRIPT, &[&dg.bucket]);
        assert!(out.contains("\"ok\": true"), "[{}] {out}", dg.name());
    }
}

#[test]
fn bad_credentials_are_refused_with_their_s3_error_codes() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start(&dg, &bin);
    let ls = ["s3api", "list-buckets"];
    let wrong_secret = serve.aws_as((KEY_ID, "not-the-secret"), &ls);
    assert!(
        stderr(&wrong_secret).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&wrong_secret)
    );
    let unknown = serve.aws_as(("someone-else", SECRET), &ls);
    assert!(
        stderr(&unknown).contains("InvalidAccessKeyId"),
        "{}",
        stderr(&unknown)
    );
    let unsigned = serve.aws(&["--no-sign-request", "s3api", "list-buckets"]);
    assert!(
        stderr(&unsigned).contains("AccessDenied"),
        "{}",
        stderr(&unsigned)
    );
    let listed = serve.aws_ok(&ls);
    assert!(
        listed.contains(&format!("\"Name\": \"{}\"", dg.bucket)),
        "{listed}"
    );
}

#[test]
fn serve_refuses_to_start_without_a_key_unless_anonymous() {
    let dg = Dg::local();
    let out = dg.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("DG_SERVE_ACCESS_KEY_ID") && err.contains("--anonymous"),
        "{err}"
    );
    let half = dg.run_env(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("DG_SERVE_ACCESS_KEY_ID", KEY_ID)],
    );
    assert!(!half.status.success());
    assert!(stderr(&half).contains("set together"), "{}", stderr(&half));

    // --anonymous starts, prints where it listens, and stops cleanly on SIGTERM.
    let mut child = dg
        .command(&["serve", "--listen", "127.0.0.1:0", "--anonymous"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A key stored as `<key>.delta` with more than a page of keys sorting between the two
/// (`build.zip-0001.txt`.. lie between `build.zip` and `build.zip.delta`) is still listed.
#[test]
fn a_delta_whose_stored_key_sorts_pages_away_is_listed() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let tree = dg.work().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..2100 {
        std::fs::write(tree.join(format!("build.zip-{i:04}.txt")), b"x").unwrap();
    }
    std::fs::write(tree.join("build.zip"), noise(50_000, 71)).unwrap();
    dg.ok(&[
        "cp",
        "-r",
        tree.to_str().unwrap(),
        &format!("s3://{}/t/", dg.bucket),
    ]);
    assert!(stored_keys(&dg).contains(&"t/build.zip.delta".to_string()));
    let serve = Serve::start(&dg, &bin);
    let ls = serve.aws_ok(&["s3", "ls", &format!("s3://{}/t/", dg.bucket)]);
    assert_eq!(ls.lines().count(), 2101, "every key, in pages of 1000");
    assert!(
        ls.lines().any(|l| l.ends_with(" build.zip")),
        "build.zip listed"
    );
    assert!(serve.stop().success());
}
