//! `deltaglider serve --metrics-listen`: `/health` answers, and `/metrics` counts the
//! requests by operation and result, the object bytes in and out, and what storing them
//! took (the original bytes against the stored ones, deltas counted apart).
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

    let page = get("/metrics");
    let value = |name: &str| sample(&page, name).unwrap_or_else(|| panic!("{name} in:\n{page}"));
    let ok =
        |op: &str| format!("deltaglider_serve_requests_total{{operation=\"{op}\",result=\"ok\"}}");
    assert_eq!(value(&ok("PutObject")), 2.0);
    assert!(value(&ok("GetObject")) >= 1.0);
    assert_eq!(
        value("deltaglider_serve_requests_total{operation=\"HeadObject\",result=\"NoSuchKey\"}"),
        1.0
    );
    let total = (v1.len() + v2.len()) as f64;
    assert_eq!(
        value("deltaglider_serve_object_bytes_received_total"),
        total
    );
    assert_eq!(value("deltaglider_serve_original_bytes_total"), total);
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
    assert!(serve.stop().success());
}
