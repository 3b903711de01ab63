//! What the endpoint has done, in the Prometheus text format (`GET /metrics` on the
//! metrics listener), and `GET /health` beside it.
//!
//! Bytes saved and the delta ratio are derived from two counters:
//! `deltaglider_serve_original_bytes_total - deltaglider_serve_stored_bytes_total`, and
//! their quotient.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use s3s::S3Result;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    operation: &'static str,
    /// `ok`, or the S3 error code answered.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredAs {
    /// `delta` or `whole`.
    stored_as: &'static str,
}

/// The endpoint's counters, shared by every request.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Outcome, Counter>,
    duration: Family<Operation, Histogram>,
    received: Counter,
    sent: Counter,
    original: Counter,
    stored: Counter,
    objects: Family<StoredAs, Counter>,
    slowed_down: Counter,
    in_flight: Gauge,
    range_rebuilds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("deltaglider_serve");
        let requests = Family::<Outcome, Counter>::default();
        registry.register(
            "requests",
            "S3 requests handled, by operation and result (ok or the S3 error code)",
            requests.clone(),
        );
        let duration = Family::<Operation, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 10))
        });
        registry.register(
            "request_duration_seconds",
            "Time to the response's head, by operation (a GET's body streams after it)",
            duration.clone(),
        );
        let received = Counter::default();
        registry.register(
            "object_bytes_received",
            "Object bytes received in PUT bodies and parts",
            received.clone(),
        );
        let sent = Counter::default();
        registry.register(
            "object_bytes_sent",
            "Object bytes sent in GET bodies",
            sent.clone(),
        );
        let original = Counter::default();
        registry.register(
            "original_bytes",
            "Size of the objects stored (PUTs, completed uploads, copies)",
            original.clone(),
        );
        let stored = Counter::default();
        registry.register(
            "stored_bytes",
            "Bytes those objects take in storage (the delta, or the whole object)",
            stored.clone(),
        );
        let objects = Family::<StoredAs, Counter>::default();
        registry.register(
            "objects_stored",
            "Objects stored, as a delta or whole",
            objects.clone(),
        );
        let slowed_down = Counter::default();
        registry.register(
            "slowed_down",
            "Requests answered 503 SlowDown after waiting for their turn",
            slowed_down.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests holding a permit (their response bodies included)",
            in_flight.clone(),
        );
        let range_rebuilds = Counter::default();
        registry.register(
            "range_rebuilds",
            "Delta-stored objects rebuilt into a verified copy for ranged GETs (once for all \
             their ranges while the copy is kept)",
            range_rebuilds.clone(),
        );
        Metrics {
            range_rebuilds,
            registry,
            requests,
            duration,
            received,
            sent,
            original,
            stored,
            objects,
            slowed_down,
            in_flight,
        }
    }

    /// Counters at zero, plus what `client`'s engine does (reference cache hits and misses,
    /// deltas encoded and decoded and their time), read from it at each scrape.
    pub fn for_client(client: &deltaglider::Client) -> Self {
        let mut metrics = Metrics::new();
        metrics
            .registry
            .register_collector(Box::new(EngineActivity(client.clone())));
        metrics
    }

    /// Runs `handler`, counting it under `operation` with its result and duration.
    pub(crate) async fn observe<T>(
        &self,
        operation: &'static str,
        handler: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let start = Instant::now();
        let result = handler.await;
        self.record(operation, result.as_ref().map(|_| ()), start);
        result
    }

    /// Counts one `operation` that began at `start` and ended with `outcome`.
    pub(crate) fn record(
        &self,
        operation: &'static str,
        outcome: Result<(), &s3s::S3Error>,
        start: Instant,
    ) {
        let result = match outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => e.code().as_str().to_string(),
        };
        self.requests
            .get_or_create(&Outcome { operation, result })
            .inc();
        self.duration
            .get_or_create(&Operation { operation })
            .observe(start.elapsed().as_secs_f64());
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.received.inc_by(bytes);
    }

    pub(crate) fn sent(&self, bytes: u64) {
        self.sent.inc_by(bytes);
    }

    /// An object stored: its size, what it takes, and whether it is a delta.
    pub(crate) fn stored(&self, report: &deltaglider::PutReport) {
        self.original.inc_by(report.original_size);
        self.stored.inc_by(report.stored_size);
        let stored_as = match report.stored_as {
            deltaglider::StoredAs::Delta => "delta",
            _ => "whole",
        };
        self.objects.get_or_create(&StoredAs { stored_as }).inc();
    }

    pub(crate) fn range_rebuilt(&self) {
        self.range_rebuilds.inc();
    }

    pub(crate) fn slowed_down(&self) {
        self.slowed_down.inc();
    }

    pub(crate) fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// The counters a client's engine keeps, exported as they stand at each scrape.
#[derive(Debug)]
struct EngineActivity(deltaglider::Client);

impl Collector for EngineActivity {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let a = self.0.activity();
        let counts: [(&str, &str, u64); 4] = [
            (
                "reference_cache_hits",
                "References read verified from the reference cache",
                a.reference_cache_hits,
            ),
            (
                "reference_cache_misses",
                "References the cache did not hold, fetched from storage",
                a.reference_cache_misses,
            ),
            ("delta_encodes", "Deltas encoded", a.encodes),
            (
                "delta_decodes",
                "Deltas decoded (downloads rebuilt, deltas checked before they are stored)",
                a.decodes,
            ),
        ];
        for (name, help, value) in counts {
            constant(&mut encoder, name, help, value)?;
        }
        let seconds: [(&str, &str, f64); 2] = [
            (
                "delta_encode_seconds",
                "Time spent encoding deltas",
                a.encode_seconds,
            ),
            (
                "delta_decode_seconds",
                "Time spent decoding deltas",
                a.decode_seconds,
            ),
        ];
        for (name, help, value) in seconds {
            constant(&mut encoder, name, help, value)?;
        }
        Ok(())
    }
}

/// One counter whose value the scrape reads as it stands.
fn constant<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstCounter<N>: EncodeMetric,
{
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// The metrics listener's one handler: `/metrics`, `/health`, 404 for the rest.
pub(crate) async fn handle(
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/health") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "GET /metrics or /health\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_by_operation_and_result() {
        let m = Metrics::new();
        let ok: S3Result<()> = m.observe("GetObject", async { Ok(()) }).await;
        ok.unwrap();
        let err: S3Result<()> = m
            .observe("GetObject", async {
                Err(s3s::s3_error!(NoSuchKey, "gone"))
            })
            .await;
        assert!(err.is_err());
        m.received(10);
        m.sent(7);
        m.slowed_down();
        let text = m.render();
        for line in [
            "deltaglider_serve_requests_total{operation=\"GetObject\",result=\"ok\"} 1",
            "deltaglider_serve_requests_total{operation=\"GetObject\",result=\"NoSuchKey\"} 1",
            "deltaglider_serve_object_bytes_received_total 10",
            "deltaglider_serve_object_bytes_sent_total 7",
            "deltaglider_serve_slowed_down_total 1",
            "deltaglider_serve_request_duration_seconds_count{operation=\"GetObject\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
