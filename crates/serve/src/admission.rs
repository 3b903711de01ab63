//! How many requests are served at once. A request waits for one of `max` permits (the
//! clients feel back-pressure as a slower answer) and holds it until its response body has
//! been sent, rebuilt GETs included; one that waits longer than `wait` is answered
//! `503 SlowDown`, which S3 clients retry with back-off.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use prometheus_client::metrics::gauge::Gauge;
use s3s::HttpError;
use s3s::service::S3Service;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// Limits on what the endpoint takes on.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Requests served at once.
    pub max_requests: usize,
    /// How long a request waits for its turn before `503 SlowDown`.
    pub wait: Duration,
    /// The largest object a PUT or a completed multipart upload may store
    /// (`EntityTooLarge` past it); `None`: no limit but the disk's.
    pub max_object_size: Option<u64>,
    /// Bytes of verified rebuilt copies kept for ranged GETs of deltas (0: none; ranges
    /// of larger objects rebuild the object each).
    pub range_copies: u64,
    /// A multipart upload that receives no part for this long is aborted and its parts
    /// removed (`None`: kept until the server stops).
    pub idle_uploads: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: 64,
            wait: Duration::from_secs(30),
            max_object_size: None,
            range_copies: 1 << 30,
            idle_uploads: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

impl Limits {
    /// `max_requests` at once (at least one), each waiting at most `wait` for its turn.
    pub fn requests(mut self, max_requests: usize, wait: Duration) -> Self {
        self.max_requests = max_requests.max(1);
        self.wait = wait;
        self
    }

    /// Keep at most `bytes` of rebuilt copies for ranged GETs.
    pub fn range_copies(mut self, bytes: u64) -> Self {
        self.range_copies = bytes;
        self
    }

    /// Objects of at most `bytes`.
    pub fn max_object_size(mut self, bytes: Option<u64>) -> Self {
        self.max_object_size = bytes;
        self
    }

    /// Abort multipart uploads idle for `idle` (`None`: never).
    pub fn idle_uploads(mut self, idle: Option<Duration>) -> Self {
        self.idle_uploads = idle;
        self
    }
}

/// The S3 endpoint as a hyper service: the S3 protocol behind the request permits (for
/// embedding in another server; [`crate::Server`] runs one).
#[derive(Clone)]
pub struct Endpoint {
    inner: S3Service,
    permits: Arc<Semaphore>,
    wait: Duration,
    metrics: Arc<Metrics>,
}

impl Endpoint {
    pub(crate) fn new(inner: S3Service, limits: &Limits, metrics: Arc<Metrics>) -> Self {
        Endpoint {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_requests)),
            wait: limits.wait,
            metrics,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Endpoint {
    type Response = Response<Permitted>;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (inner, permits, wait) = (self.inner.clone(), Arc::clone(&self.permits), self.wait);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let permit = match tokio::time::timeout(wait, permits.acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    metrics.slowed_down();
                    tracing::warn!(
                        target: "deltaglider::serve::request",
                        method = %req.method(),
                        path = req.uri().path(),
                        "no turn within {wait:?}: 503 SlowDown"
                    );
                    return Ok(slow_down());
                }
            };
            let in_flight = metrics.in_flight().clone();
            in_flight.inc();
            let held = Held {
                _permit: permit,
                in_flight,
            };
            // CompleteMultipartUpload (`POST ?uploadId=`): its answer follows a kept-alive
            // XML declaration, and an error answer brings a second one.
            let completion = req.method() == hyper::Method::POST
                && req
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p.starts_with("uploadId=")));
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let started = std::time::Instant::now();
            let response = hyper::service::Service::call(&inner, req).await?;
            // One line per request, at its response's head (a GET's body streams after).
            tracing::info!(
                target: "deltaglider::serve::request",
                %method,
                %path,
                status = response.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "request"
            );
            Ok(response.map(|body| Permitted {
                body,
                _held: Some(held),
                one_declaration: completion,
                frames: 0,
            }))
        })
    }
}

/// `503 SlowDown`, as S3 says it.
fn slow_down() -> Response<Permitted> {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
               <Message>Please reduce your request rate.</Message></Error>";
    let mut response = Response::new(Permitted {
        body: s3s::Body::from(xml.to_string()),
        _held: None,
        one_declaration: false,
        frames: 0,
    });
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    response
}

/// A response body that holds its request's permit until it is sent or dropped.
pub struct Permitted {
    body: s3s::Body,
    _held: Option<Held>,
    /// Drop XML declarations after the first frame: `s3s` 0.14 serializes the error that
    /// ends a kept-alive CompleteMultipartUpload with a declaration of its own, after the
    /// one the keep-alive began with, and clients cannot parse the error out of that.
    one_declaration: bool,
    frames: usize,
}

/// `frame` without a leading XML declaration.
fn without_declaration(frame: Bytes) -> Bytes {
    if !frame.starts_with(b"<?xml") {
        return frame;
    }
    match frame.windows(2).position(|w| w == b"?>") {
        Some(end) => frame.slice(end + 2..),
        None => frame,
    }
}

/// A request's permit, counted in flight while it is held.
struct Held {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Body for Permitted {
    type Data = Bytes;
    type Error = <s3s::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let Poll::Ready(Some(Ok(frame))) = polled else {
            return polled;
        };
        self.frames += 1;
        if !self.one_declaration || self.frames == 1 {
            return Poll::Ready(Some(Ok(frame)));
        }
        Poll::Ready(Some(Ok(frame.map_data(without_declaration))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_xml_declaration_is_dropped_and_the_rest_kept() {
        let error = Bytes::from_static(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchBucket</Code></Error>",
        );
        assert_eq!(
            &without_declaration(error)[..],
            b"<Error><Code>NoSuchBucket</Code></Error>"
        );
        for kept in [&b" "[..], b"<CompleteMultipartUploadResult/>", b"<?xml"] {
            assert_eq!(&without_declaration(Bytes::copy_from_slice(kept))[..], kept);
        }
    }

    #[test]
    fn at_least_one_request_is_served() {
        let limits = Limits::default().requests(0, Duration::ZERO);
        assert_eq!(limits.max_requests, 1);
        assert_eq!(Limits::default().max_requests, 64);
    }

    #[tokio::test]
    async fn a_slow_down_is_s3s_503_with_its_code() {
        use http_body_util::BodyExt;
        let response = slow_down();
        assert_eq!(response.status(), 503);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("<Code>SlowDown</Code>"));
    }
}
