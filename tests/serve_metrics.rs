//! `deltaglider serve --metrics-listen`: `/health` answers, and `/metrics` counts the
//! requests by operation and result, the object bytes in and out, and what storing them
//! took (the original bytes against the stored ones, deltas counted apart, the deltas
//! encoded and decoded and the reference cache's hits and misses).
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use cli_support::{Dg, support};
use serve_support::{Serve, client_bin};

/// The value of the sample `name` (labels included) in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_requests_bytes_and_savings() {
    let Some(bin) = client_bin() else { return };
    let dg = Dg::local();
    let serve = Serve::start_with(&dg, &bin, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = serve.metrics.clone().unwrap();
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    let get = |path: &str| {
        serve.python_ok(
            "import sys, urllib.request\nprint(urllib.request.urlopen(sys.argv[1]).read().decode())",
            &[&format!("{metrics}{path}")],
        )
    };
    assert_eq!(get("/health").trim(), "ok");

    let v1 = support::noise(300_000, 31);
    let v2 = support::edited(&v1, 32);
    std::fs::write(dg.work().join("m-1.zip"), &v1).unwrap();
    std::fs::write(dg.work().join("m-2.zip"), &v2).unwrap();
    let url = |k: &str| format!("s3://{}/m/{k}", dg.bucket);
    serve.aws_ok(&["s3", "cp", &dg.path("m-1.zip"), &url("m-1.zip")]);
    serve.aws_ok(&["s3", "cp", &dg.path("m-2.zip"), &url("m-2.zip")]);
    serve.aws_ok(&["s3", "cp", &url("m-2.zip"), &dg.path("back.zip")]);
    let missing = serve.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        &dg.bucket,
        "--key",
        "none",
    ]);
    assert!(!missing.status.success());

    // Completions are counted by how they end: their answer comes after the 200.
    serve.python_ok(
        r#"
import os, sys, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["DG_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))
def complete(bucket, key):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=b"p" * 1000)["ETag"]
    return up, {"Parts": [{"PartNumber": 1, "ETag": etag}]}
up, parts = complete(sys.argv[1], "mp.bin")
s3.complete_multipart_upload(Bucket=sys.argv[1], Key="mp.bin", UploadId=up, MultipartUpload=parts)
s3.create_bucket(Bucket="gone")
up, parts = complete("gone", "mp.bin")
s3.delete_bucket(Bucket="gone")
try:
    s3.complete_multipart_upload(Bucket="gone", Key="mp.bin", UploadId=up, MultipartUpload=parts)
    raise SystemExit("completed into a deleted bucket")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "NoSuchBucket", e.response
"#,
        &[&dg.bucket],
    );

    let page = get("/metrics");
    let value = |name: &str| sample(&page, name).unwrap_or_else(|| panic!("{name} in:\n{page}"));

    let ok =
        |op: &str| format!("deltaglider_serve_requests_total{{operation=\"{op}\",result=\"ok\"}}");
    assert_eq!(value(&ok("PutObject")), 2.0);
    assert_eq!(value(&ok("CompleteMultipartUpload")), 1.0);
    assert_eq!(
        value(
            "deltaglider_serve_requests_total{operation=\"CompleteMultipartUpload\",result=\"NoSuchBucket\"}"
        ),
        1.0
    );
    assert!(value(&ok("GetObject")) >= 1.0);
    assert_eq!(
        value("deltaglider_serve_requests_total{operation=\"HeadObject\",result=\"NoSuchKey\"}"),
        1.0
    );
    let total = (v1.len() + v2.len()) as f64;
    // Besides the two PUTs, two parts of 1000 bytes, one of them completed.
    assert_eq!(
        value("deltaglider_serve_object_bytes_received_total"),
        total + 2000.0
    );
    assert_eq!(
        value("deltaglider_serve_original_bytes_total"),
        total + 1000.0
    );
    assert!(value("deltaglider_serve_object_bytes_sent_total") >= v2.len() as f64);
    // The first is stored as the deltaspace's reference and a delta against it.
    assert_eq!(
        value("deltaglider_serve_objects_stored_total{stored_as=\"delta\"}"),
        2.0
    );
    // The second release is a small delta: far fewer bytes stored than received.
    let stored = value("deltaglider_serve_stored_bytes_total");
    assert!(
        stored < v1.len() as f64 + v2.len() as f64 / 10.0,
        "{stored}"
    );
    assert!(
        page.contains("deltaglider_serve_request_duration_seconds_bucket"),
        "{page}"
    );
    // The engine's work: one delta per PUT, and the reference read back for the second
    // PUT and the GET (from the cache once it holds it).
    assert_eq!(value("deltaglider_serve_delta_encodes_total"), 2.0);
    assert!(value("deltaglider_serve_delta_encode_seconds_total") > 0.0);
    assert!(value("deltaglider_serve_delta_decodes_total") >= 1.0);
    assert!(value("deltaglider_serve_delta_decode_seconds_total") > 0.0);
    let hits = value("deltaglider_serve_reference_cache_hits_total");
    let misses = value("deltaglider_serve_reference_cache_misses_total");
    assert!(
        hits >= 1.0 && hits + misses >= 3.0,
        "{hits} hits, {misses} misses"
    );
    assert!(serve.stop().success());
}

/// Ranged GETs of a delta (the aws CLI fetches objects over 8 MiB as 8 MiB ranges) are
/// served from one verified rebuilt copy: the object is rebuilt once, and again only when
/// it changes; without room for copies each range rebuilds it, with the same bytes.
#[test]
fn ranged_gets_of_a_delta_rebuild_it_once() {
    let Some(bin) = client_bin() else { return };
    for room in ["1G", "0"] {
        let dg = Dg::local();
        let serve = Serve::start_with(
            &dg,
            &bin,
            &[
                "--metrics-listen",
                "127.0.0.1:0",
                "--range-cache-size",
                room,
            ],
        );
        let metrics = serve.metrics.clone().unwrap();
        let rebuilds = || {
            let page = serve.python_ok(
                "import sys, urllib.request\nprint(urllib.request.urlopen(sys.argv[1]).read().decode())",
                &[&format!("{metrics}/metrics")],
            );
            sample(&page, "deltaglider_serve_range_rebuilds_total").unwrap()
        };
        let v1 = support::noise(20 << 20, 41);
        let v2 = support::edited(&v1, 42);
        let v3 = support::edited(&v2, 43);
        let url = |k: &str| format!("s3://{}/r/{k}", dg.bucket);
        for (name, data) in [("r-1.zip", &v1), ("r-2.zip", &v2)] {
            std::fs::write(dg.work().join(name), data).unwrap();
            serve.aws_ok(&["s3", "cp", &dg.path(name), &url("r.zip")]);
        }
        // Three 8 MiB ranges, twice.
        for round in 0..2 {
            let out = format!("back-{round}.zip");
            serve.aws_ok(&["s3", "cp", &url("r.zip"), &dg.path(&out)]);
            assert!(
                std::fs::read(dg.work().join(&out)).unwrap() == v2,
                "{room} {round}"
            );
        }
        let expected = if room == "0" { 0.0 } else { 1.0 };
        assert_eq!(rebuilds(), expected, "range cache {room}");

        // A new version is a new copy, never the old one's bytes.
        std::fs::write(dg.work().join("r-3.zip"), &v3).unwrap();
        serve.aws_ok(&["s3", "cp", &dg.path("r-3.zip"), &url("r.zip")]);
        serve.aws_ok(&["s3", "cp", &url("r.zip"), &dg.path("back-3.zip")]);
        assert!(
            std::fs::read(dg.work().join("back-3.zip")).unwrap() == v3,
            "{room}"
        );
        let expected = if room == "0" { 0.0 } else { 2.0 };
        assert_eq!(rebuilds(), expected, "range cache {room}");
        assert!(serve.stop().success());
    }
}
