//! Multipart uploads through `deltaglider serve`, by the `aws` CLI (which switches to
//! multipart above 8 MiB) and by boto3 at the API level: the assembled object is stored as
//! any upload is (a delta when eligible) and reads back byte-exact through every client;
//! S3's rules on parts are enforced with S3's error codes; parts wait in a private spool
//! that the server empties when it stops; memory does not grow with the object.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use cli_support::{Backend, Dg, support};
use serve_support::{Serve, client_bin, stored_keys};
use support::{edited, noise};

const MIB: usize = 1 << 20;

#[test]
fn the_aws_cli_uploads_large_files_in_parts_and_they_are_stored_as_deltas() {
    let Some(bin) = client_bin() else { return };
    for dg in Dg::all("serve-mpu-aws") {
        let serve = Serve::start(&dg, &bin);
        let b = &dg.bucket;
        let url = |key: &str| format!("s3://{b}/{key}");
        // Above the aws CLI's 8 MiB threshold: two parts each.
        let v1 = noise(12 * MIB, 11);
        let v2 = edited(&v1, 12);
        std::fs::write(dg.work().join("big-1.0.zip"), &v1).unwrap();
        std::fs::write(dg.work().join("big-1.1.zip"), &v2).unwrap();
        serve.aws_ok(&["s3", "cp", &dg.path("big-1.0.zip"), &url("rel/big-1.0.zip")]);
        serve.aws_ok(&[
            "s3",
            "cp",
            &dg.path("big-1.1.zip"),
            &url("rel/big-1.1.zip"),
            "--content-type",
            "application/zip",
            "--metadata",
            "build=7",
        ]);
        let stored = stored_keys(&dg);
        assert!(
            stored.contains(&"rel/big-1.1.zip.delta".to_string()),
            "[{}] the second release is a delta: {stored:?}",
            dg.name()
        );

        // Back through the aws CLI (ranged parallel GETs above 8 MiB) and through deltaglider.
        serve.aws_ok(&["s3", "cp", &url("rel/big-1.1.zip"), &dg.path("aws.zip")]);
        assert!(std::fs::read(dg.work().join("aws.zip")).unwrap() == v2);
        dg.ok(&["cp", &url("rel/big-1.1.zip"), &dg.path("dg.zip")]);
        assert!(std::fs::read(dg.work().join("dg.zip")).unwrap() == v2);
        let head = serve.aws_ok(&[
            "s3api",
            "head-object",
            "--bucket",
            b,
            "--key",
            "rel/big-1.1.zip",
        ]);
        let head: serde_json::Value = serde_json::from_str(&head).unwrap();
        assert_eq!(head["ContentLength"], v2.len() as u64, "{head}");
        assert_eq!(head["ContentType"], "application/zip", "{head}");
        assert_eq!(head["Metadata"]["build"], "7", "{head}");

        // A copy of a large object is a multipart copy (UploadPartCopy) for the aws CLI.
        serve.aws_ok(&["s3", "cp", &url("rel/big-1.1.zip"), &url("copy/big.zip")]);
        serve.aws_ok(&["s3", "cp", &url("copy/big.zip"), &dg.path("copied.zip")]);
        assert!(std::fs::read(dg.work().join("copied.zip")).unwrap() == v2);

        // Nothing left in progress.
        let uploads = serve.aws_ok(&["s3api", "list-multipart-uploads", "--bucket", b]);
        assert!(!uploads.contains("UploadId"), "{uploads}");
        assert!(serve.stop().success());
        if let Backend::S3 = dg.backend {
            eprintln!("[s3] multipart through serve: ok");
        }
    }
}

/// boto3 at the API level: parts, listings, the completion's rules, abort, part copies, and
/// the managed transfer (parallel parts with the checksums current SDKs send).
const BOTO3_MULTIPART: &str = r#"
import io, os, sys, json, boto3, botocore
from boto3.s3.transfer import TransferConfig
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

MIB = 1 << 20
one = bytes((i * 131 + i // 251) % 256 for i in range(5 * MIB))
two = bytes((i * 7) % 256 for i in range(300_000))

# Two parts, listed, then completed.
up = s3.create_multipart_upload(Bucket=bucket, Key="mp/a.bin", ContentType="application/x-test",
                                Metadata={"origin": "boto3"})["UploadId"]
e1 = s3.upload_part(Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=1, Body=one)["ETag"]
e2 = s3.upload_part(Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=2, Body=two)["ETag"]
parts = s3.list_parts(Bucket=bucket, Key="mp/a.bin", UploadId=up)["Parts"]
assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [(1, len(one), e1), (2, len(two), e2)], parts
page = s3.list_parts(Bucket=bucket, Key="mp/a.bin", UploadId=up, MaxParts=1)
assert page["IsTruncated"] and [p["PartNumber"] for p in page["Parts"]] == [1], page
page = s3.list_parts(Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumberMarker=page["NextPartNumberMarker"])
assert not page["IsTruncated"] and [p["PartNumber"] for p in page["Parts"]] == [2], page
listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
assert [(u["Key"], u["UploadId"]) for u in listed] == [("mp/a.bin", up)], listed

# The completion's rules, each with S3's code; none of them ends the upload.
def complete(parts, upload=up, key="mp/a.bin"):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                        MultipartUpload={"Parts": parts})
assert err(complete, parts=[{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0000"'}]) == "InvalidPart"
assert err(complete, parts=[{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]) == "InvalidPart"
assert err(complete, parts=[{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]) == "InvalidPartOrder"
assert err(s3.upload_part, Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=0, Body=b"x") == "InvalidArgument"
assert err(s3.upload_part, Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=10001, Body=b"x") == "InvalidArgument"
assert err(s3.upload_part, Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=3, Body=b"abc",
           ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==") == "BadDigest"
assert err(s3.upload_part, Bucket=bucket, Key="other.bin", UploadId=up, PartNumber=1, Body=b"x") == "NoSuchUpload"
out = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])
assert out["Key"] == "mp/a.bin", out
got = s3.get_object(Bucket=bucket, Key="mp/a.bin")
assert got["Body"].read() == one + two
assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"origin": "boto3"}, got
assert out["ETag"] == got["ETag"], (out, got)
# A completion retried (its answer lost) gets the same answer; the object is unchanged.
again = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])
assert again["ETag"] == out["ETag"], (again, out)
assert err(s3.upload_part, Bucket=bucket, Key="mp/a.bin", UploadId=up, PartNumber=3, Body=b"x") == "NoSuchUpload"

# Every part but the last must be at least 5 MiB.
small = s3.create_multipart_upload(Bucket=bucket, Key="mp/small.bin")["UploadId"]
s1 = s3.upload_part(Bucket=bucket, Key="mp/small.bin", UploadId=small, PartNumber=1, Body=two)["ETag"]
s2 = s3.upload_part(Bucket=bucket, Key="mp/small.bin", UploadId=small, PartNumber=2, Body=two)["ETag"]
assert err(complete, upload=small, key="mp/small.bin",
           parts=[{"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]) == "EntityTooSmall"
# One small part is a whole object; a part sent again replaces the earlier one.
s1 = s3.upload_part(Bucket=bucket, Key="mp/small.bin", UploadId=small, PartNumber=1, Body=b"replaced")["ETag"]
complete(upload=small, key="mp/small.bin", parts=[{"PartNumber": 1, "ETag": s1}])
assert s3.get_object(Bucket=bucket, Key="mp/small.bin")["Body"].read() == b"replaced"

# Abort: the upload is gone, nothing is stored.
gone = s3.create_multipart_upload(Bucket=bucket, Key="mp/aborted.bin")["UploadId"]
s3.upload_part(Bucket=bucket, Key="mp/aborted.bin", UploadId=gone, PartNumber=1, Body=two)
s3.abort_multipart_upload(Bucket=bucket, Key="mp/aborted.bin", UploadId=gone)
assert err(s3.upload_part, Bucket=bucket, Key="mp/aborted.bin", UploadId=gone, PartNumber=2, Body=b"x") == "NoSuchUpload"
assert err(s3.list_parts, Bucket=bucket, Key="mp/aborted.bin", UploadId=gone) == "NoSuchUpload"
assert err(s3.abort_multipart_upload, Bucket=bucket, Key="mp/aborted.bin", UploadId=gone) == "NoSuchUpload"
assert err(s3.head_object, Bucket=bucket, Key="mp/aborted.bin") == "404"
assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)

# Uploads to a missing bucket or a reserved key are refused when they are created.
assert err(s3.create_multipart_upload, Bucket=bucket + "-missing", Key="x") == "NoSuchBucket"

# Part copies: ranges of an existing object, rebuilt and verified.
whole = one + two
cp = s3.create_multipart_upload(Bucket=bucket, Key="mp/copied.bin")["UploadId"]
src = {"Bucket": bucket, "Key": "mp/a.bin"}
c1 = s3.upload_part_copy(Bucket=bucket, Key="mp/copied.bin", UploadId=cp, PartNumber=1, CopySource=src,
                         CopySourceRange="bytes=0-%d" % (5 * MIB - 1))["CopyPartResult"]["ETag"]
c2 = s3.upload_part_copy(Bucket=bucket, Key="mp/copied.bin", UploadId=cp, PartNumber=2, CopySource=src,
                         CopySourceRange="bytes=%d-%d" % (5 * MIB, len(whole) - 1))["CopyPartResult"]["ETag"]
assert err(s3.upload_part_copy, Bucket=bucket, Key="mp/copied.bin", UploadId=cp, PartNumber=3, CopySource=src,
           CopySourceRange="bytes=%d-%d" % (len(whole), len(whole) + 5)) == "InvalidRange"
assert err(s3.upload_part_copy, Bucket=bucket, Key="mp/copied.bin", UploadId=cp, PartNumber=3, CopySource=src,
           CopySourceRange="bytes=0-%d" % len(whole)) == "InvalidRange"
assert err(s3.upload_part_copy, Bucket=bucket, Key="mp/copied.bin", UploadId=cp, PartNumber=3,
           CopySource={"Bucket": bucket, "Key": "nope"}) == "NoSuchKey"
complete(upload=cp, key="mp/copied.bin", parts=[{"PartNumber": 1, "ETag": c1}, {"PartNumber": 2, "ETag": c2}])
assert s3.get_object(Bucket=bucket, Key="mp/copied.bin")["Body"].read() == whole

# The managed transfer: parallel parts, checksums as the SDK sends them.
data = bytes((i * 17 + i // 4099) % 256 for i in range(13 * MIB))
config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
s3.upload_fileobj(io.BytesIO(data), bucket, "mp/managed.bin", Config=config)
back = io.BytesIO()
s3.download_fileobj(bucket, "mp/managed.bin", back, Config=config)
assert back.getvalue() == data
print(json.dumps({"ok": True}))
"#;

#[test]
fn boto3_multipart_follows_s3s_rules_and_spools_privately() {
    let Some(bin) = client_bin() else { return };
    for dg in Dg::all("serve-mpu-boto3") {
        let spool = tempfile::tempdir().unwrap();
        let spool_dir = spool.path().to_str().unwrap().to_string();
        let serve = Serve::start_with(&dg, &bin, &["--spool-dir", &spool_dir]);
        let out = serve.python_ok(BOTO3_MULTIPART, &[&dg.bucket]);
        assert!(out.contains("\"ok\": true"), "[{}] {out}", dg.name());

        // An upload never completed: its part waits in the server's private directory...
        let left = serve.python_ok(
            r#"
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"], config=Config(s3={"addressing_style": "path"}))
up = s3.create_multipart_upload(Bucket=sys.argv[1], Key="mp/left.bin")["UploadId"]
s3.upload_part(Bucket=sys.argv[1], Key="mp/left.bin", UploadId=up, PartNumber=1, Body=b"x" * 1000)
print(up)
"#,
            &[&dg.bucket],
        );
        let servers: Vec<_> = std::fs::read_dir(spool.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(servers.len(), 1, "{servers:?}");
        let upload_dir = servers[0].join(left.trim());
        assert_eq!(std::fs::read_dir(&upload_dir).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&servers[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the spool is private: {mode:o}");

        // ...until the server stops: then nothing of it is left, and nothing was stored.
        assert!(serve.stop().success());
        let after: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
        assert!(after.is_empty(), "{after:?}");
        assert!(
            !stored_keys(&dg).iter().any(|k| k.contains("left.bin")),
            "an upload never completed is never stored"
        );
    }
}

#[test]
fn a_large_multipart_upload_does_not_grow_the_servers_memory() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start(&dg, &bin);
    let size = 256 * MIB;
    let path = dg.work().join("large.bin");
    {
        // Incompressible, and fast to make: xorshift a word at a time.
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut chunk = vec![0u8; MIB];
        for _ in 0..size / MIB {
            for word in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&chunk).unwrap();
        }
    }
    let url = format!("s3://{}/large/large.bin", dg.bucket);
    serve.aws_ok(&["s3", "cp", path.to_str().unwrap(), &url]);
    let back = dg.work().join("back.bin");
    serve.aws_ok(&["s3", "cp", &url, back.to_str().unwrap()]);
    let peak = serve.peak_rss();
    assert!(
        std::fs::read(&path).unwrap() == std::fs::read(&back).unwrap(),
        "the large object comes back byte-exact"
    );
    // The aws CLI sends 8 MiB parts ten at a time; the server holds a few buffers of each.
    assert!(
        peak < 160 * MIB as u64,
        "serve's peak RSS was {} MiB for a {} MiB object",
        peak / MIB as u64,
        size / MIB
    );
    eprintln!(
        "serve's peak RSS: {} MiB for a {} MiB multipart upload and download",
        peak / MIB as u64,
        size / MIB
    );
}
