//! `deltaglider serve --access-file`: several keys, each read-only or read-write over some
//! buckets and prefixes, and anonymous reads where the file allows them; everything else is
//! refused with `AccessDenied`, as S3 refuses it, before anything is read or written.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use cli_support::{Dg, support};
use serve_support::{Serve, client_bin, stderr};

const ACCESS_FILE: &str = r#"
[[key]]
id = "app-writer"
secret = "app-writer-secret"
access = "read-write"
scopes = ["BUCKET/app/", "BUCKET-owned"]

[[key]]
id = "reader"
secret = "reader-secret"
access = "read-only"

[[key]]
id = "admin"
secret = "admin-secret"
access = "read-write"

[anonymous]
read = ["BUCKET/public/"]
"#;

const SCRIPT: &str = r#"
import os, sys, json, boto3, botocore
from botocore import UNSIGNED
from botocore.config import Config
bucket = sys.argv[1]
def client(key=None):
    if key is None:
        return boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                            config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}))
    return boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"], aws_access_key_id=key,
                        aws_secret_access_key=key + "-secret", config=Config(s3={"addressing_style": "path"}))
def err(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("no error from %s %s" % (f.__name__, kw))
admin, writer, reader, anon = client("admin"), client("app-writer"), client("reader"), client()
denied = "AccessDenied"

admin.put_object(Bucket=bucket, Key="public/readme.txt", Body=b"hello")
admin.put_object(Bucket=bucket, Key="private/secret.txt", Body=b"secret")

# The writer: its prefix only, reads and writes; other prefixes, the bucket root, other buckets refused.
writer.put_object(Bucket=bucket, Key="app/app-1.zip", Body=b"v1" * 1000)
assert writer.get_object(Bucket=bucket, Key="app/app-1.zip")["Body"].read() == b"v1" * 1000
assert [o["Key"] for o in writer.list_objects_v2(Bucket=bucket, Prefix="app/")["Contents"]] == ["app/app-1.zip"]
assert err(writer.put_object, Bucket=bucket, Key="private/x", Body=b"x") == denied
assert err(writer.get_object, Bucket=bucket, Key="private/secret.txt") == denied
assert err(writer.head_object, Bucket=bucket, Key="public/readme.txt") == "403"
assert err(writer.list_objects_v2, Bucket=bucket) == denied
assert err(writer.list_objects_v2, Bucket=bucket, Prefix="ap") == denied
assert err(writer.delete_object, Bucket=bucket, Key="private/secret.txt") == denied
assert err(writer.delete_objects, Bucket=bucket,
           Delete={"Objects": [{"Key": "app/app-1.zip"}, {"Key": "private/secret.txt"}]}) == denied
assert err(writer.copy_object, Bucket=bucket, Key="app/stolen.txt",
           CopySource={"Bucket": bucket, "Key": "private/secret.txt"}) == denied
assert err(writer.create_multipart_upload, Bucket=bucket, Key="private/big") == denied
assert err(writer.delete_bucket, Bucket=bucket) == denied
# A whole bucket in its scopes: it may create it, and it is the only one... of its buckets it sees.
writer.create_bucket(Bucket=bucket + "-owned")
names = sorted(b["Name"] for b in writer.list_buckets()["Buckets"])
assert names == [bucket, bucket + "-owned"], names
writer.delete_bucket(Bucket=bucket + "-owned")
assert err(writer.create_bucket, Bucket=bucket + "-other") == denied

# The reader: everything readable, nothing writable.
assert reader.get_object(Bucket=bucket, Key="private/secret.txt")["Body"].read() == b"secret"
assert len(reader.list_objects_v2(Bucket=bucket)["Contents"]) == 3
assert err(reader.put_object, Bucket=bucket, Key="app/x", Body=b"x") == denied
assert err(reader.delete_object, Bucket=bucket, Key="app/app-1.zip") == denied
assert err(reader.create_multipart_upload, Bucket=bucket, Key="app/big") == denied
assert err(reader.create_bucket, Bucket=bucket + "-r") == denied

# Unsigned requests: the public prefix, read-only.
assert anon.get_object(Bucket=bucket, Key="public/readme.txt")["Body"].read() == b"hello"
assert err(anon.get_object, Bucket=bucket, Key="private/secret.txt") == denied
assert err(anon.put_object, Bucket=bucket, Key="public/new.txt", Body=b"x") == denied
assert err(anon.list_buckets) == denied
assert err(anon.list_objects_v2, Bucket=bucket) == denied

# Nothing a refused request asked for happened.
keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
assert keys == ["app/app-1.zip", "private/secret.txt", "public/readme.txt"], keys
print(json.dumps({"ok": True}))
"#;

fn write_access_file(dg: &Dg, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dg.work().join("access.toml");
    std::fs::write(&path, text.replace("BUCKET", &dg.bucket)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn keys_are_held_to_their_scopes_and_anonymous_reads_to_theirs() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let file = write_access_file(&dg, ACCESS_FILE, 0o600);
    let serve = Serve::start_without_key(&dg, &bin, &["--access-file", &file]);
    let out = serve.python_ok(SCRIPT, &[&dg.bucket]);
    assert!(out.contains("\"ok\": true"), "{out}");
    // A key that is not in the file is unknown, whatever the file says of others.
    let unknown = serve.aws_as(("serve-test-key", "x"), &["s3api", "list-buckets"]);
    assert!(
        stderr(&unknown).contains("InvalidAccessKeyId"),
        "{}",
        stderr(&unknown)
    );
    assert!(serve.stop().success());
}

#[test]
fn an_access_file_others_can_read_or_that_is_wrong_stops_serve_from_starting() {
    let dg = Dg::local();
    let start = |file: &str, envs: &[(&str, &str)]| {
        let mut cmd = dg.command(&["serve", "--listen", "127.0.0.1:0", "--access-file", file]);
        cmd.env_remove("DG_SERVE_ACCESS_KEY_ID")
            .env_remove("DG_SERVE_SECRET_ACCESS_KEY");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let readable = write_access_file(&dg, ACCESS_FILE, 0o644);
    let out = start(&readable, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("chmod 600") && stderr(&out).contains("access.toml"),
        "{}",
        stderr(&out)
    );

    let bad = write_access_file(
        &dg,
        "[[key]]\nid = \"a\"\nsecret = \"s\"\naccess = \"root\"\n",
        0o600,
    );
    let out = start(&bad, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid access file") && stderr(&out).contains("root"),
        "{}",
        stderr(&out)
    );

    let good = write_access_file(&dg, ACCESS_FILE, 0o600);
    let out = start(
        &good,
        &[
            ("DG_SERVE_ACCESS_KEY_ID", "k"),
            ("DG_SERVE_SECRET_ACCESS_KEY", "s"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exclude each other"),
        "{}",
        stderr(&out)
    );

    let missing = dg.work().join("missing.toml");
    let out = start(missing.to_str().unwrap(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

/// Presigned URLs made by the aws CLI for the serve key: a GET of a delta-stored object is
/// its original; an expired URL, or one whose signature was altered, is refused.
#[test]
fn presigned_urls_serve_originals_until_they_expire() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start(&dg, &bin);
    let v1 = support::noise(200_000, 21);
    let second = support::edited(&v1, 22);
    std::fs::write(dg.work().join("p-1.zip"), &v1).unwrap();
    std::fs::write(dg.work().join("p-2.zip"), &second).unwrap();
    let url = |k: &str| format!("s3://{}/pre/{k}", dg.bucket);
    serve.aws_ok(&["s3", "cp", &dg.path("p-1.zip"), &url("p-1.zip")]);
    serve.aws_ok(&["s3", "cp", &dg.path("p-2.zip"), &url("p-2.zip")]);
    assert!(serve_support::stored_keys(&dg).contains(&"pre/p-2.zip.delta".to_string()));

    let fetch = r#"
import sys, urllib.request, urllib.error
try:
    body = urllib.request.urlopen(sys.argv[1]).read()
    sys.stdout.buffer.write(b"200 " + str(len(body)).encode() + b" ")
    open(sys.argv[2], "wb").write(body)
except urllib.error.HTTPError as e:
    sys.stdout.write("%d %s" % (e.code, e.read().decode()))
"#;
    // The aws CLI signs presigned URLs with SigV2, boto3 (asked to) with SigV4.
    let v4 = |expires: &str| {
        serve.python_ok(
            r#"
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(s3.generate_presigned_url("get_object", Params={"Bucket": sys.argv[1], "Key": sys.argv[2]},
                                ExpiresIn=int(sys.argv[3])))
"#,
            &[&dg.bucket, "pre/p-2.zip", expires],
        )
    };
    let v2 =
        |expires: &str| serve.aws_ok(&["s3", "presign", &url("p-2.zip"), "--expires-in", expires]);
    let out = dg.work().join("presigned.bin");
    let get = |u: &str| serve.python_ok(fetch, &[u.trim(), out.to_str().unwrap()]);
    for (name, presigned) in [("v2", v2("300")), ("v4", v4("300"))] {
        assert!(presigned.contains("Signature="), "{name}: {presigned}");
        let got = get(&presigned);
        assert!(got.starts_with("200 "), "{name}: {got}");
        assert!(std::fs::read(&out).unwrap() == second, "{name}");
        // The same signature for another object (which exists) is refused.
        let tampered = presigned.replace("/pre/p-2.zip?", "/pre/p-1.zip?");
        assert_ne!(tampered, presigned);
        let got = get(&tampered);
        assert!(
            got.starts_with("403") && got.contains("SignatureDoesNotMatch"),
            "{name}: {got}"
        );
    }

    let (short_v2, short_v4) = (v2("1"), v4("1"));
    // The URLs' own expiry is the thing under test: wait it out (no race: past is past).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for (name, expired) in [("v2", short_v2), ("v4", short_v4)] {
        let got = get(&expired);
        assert!(
            got.starts_with("403") && got.contains("AccessDenied") && got.contains("expired"),
            "{name}: {got}"
        );
    }
}

/// An access file with no keys, only anonymous reads: unsigned requests get those reads and
/// nothing else (no write, no other prefix, no bucket listing), signed ones are unknown keys.
#[test]
fn an_anonymous_only_access_file_grants_its_reads_and_nothing_more() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    std::fs::write(dg.work().join("readme.txt"), b"public").unwrap();
    std::fs::write(dg.work().join("secret.txt"), b"secret").unwrap();
    let url = |k: &str| format!("s3://{}/{k}", dg.bucket);
    dg.ok(&["cp", &dg.path("readme.txt"), &url("public/readme.txt")]);
    dg.ok(&["cp", &dg.path("secret.txt"), &url("private/secret.txt")]);
    let file = write_access_file(&dg, "[anonymous]\nread = [\"BUCKET/public/\"]\n", 0o600);
    let serve = Serve::start_without_key(&dg, &bin, &["--access-file", &file]);
    let script = r#"
import os, sys, json, boto3, botocore
from botocore import UNSIGNED
from botocore.config import Config
bucket = sys.argv[1]
anon = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                    config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}))
signed = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"], aws_access_key_id="k",
                      aws_secret_access_key="s", config=Config(s3={"addressing_style": "path"}))
def err(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("no error from %s %s" % (f.__name__, kw))
assert anon.get_object(Bucket=bucket, Key="public/readme.txt")["Body"].read() == b"public"
assert [o["Key"] for o in anon.list_objects_v2(Bucket=bucket, Prefix="public/")["Contents"]] == ["public/readme.txt"]
assert err(anon.put_object, Bucket=bucket, Key="public/new.txt", Body=b"x") == "AccessDenied"
assert err(anon.delete_object, Bucket=bucket, Key="public/readme.txt") == "AccessDenied"
assert err(anon.get_object, Bucket=bucket, Key="private/secret.txt") == "AccessDenied"
assert err(anon.create_bucket, Bucket=bucket + "-new") == "AccessDenied"
assert err(anon.create_multipart_upload, Bucket=bucket, Key="public/big") == "AccessDenied"
assert err(anon.list_buckets) == "AccessDenied"
assert err(signed.list_buckets) == "InvalidAccessKeyId"
print(json.dumps({"ok": True}))
"#;
    let out = serve.python_ok(script, &[&dg.bucket]);
    assert!(out.contains("\"ok\": true"), "{out}");
    assert!(serve.stop().success());
}
