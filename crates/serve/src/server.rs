//! The HTTP side: one listener, HTTP/1.1 connections, SigV4 through `s3s`, and a graceful
//! stop that lets the requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use deltaglider::Client;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::admission::{Endpoint, Limits};
use crate::guard::{Guard, Keys};
use crate::{Gateway, Metrics, Policy, Spool};

/// How long a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the endpoint could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("the listener failed")]
    Accept(#[source] std::io::Error),
}

/// The S3 endpoint of `client` under `policy` and `limits`, spooling multipart uploads in
/// `spool`, counting what it does in `metrics`.
pub fn endpoint(
    client: Client,
    policy: Policy,
    spool: Spool,
    limits: &Limits,
    metrics: Arc<Metrics>,
) -> Endpoint {
    let policy = Arc::new(policy);
    let gateway = Gateway::new(client, spool, limits, Arc::clone(&metrics));
    let mut builder = S3ServiceBuilder::new(gateway);
    // s3s consults the access guard only when it has an authentication provider: every
    // policy but "anyone may do anything" gets one, with no keys if the policy has none
    // (signed requests are then unknown keys, unsigned ones meet the guard).
    if !policy.is_open() {
        builder.set_auth(Keys(Arc::clone(&policy)));
    }
    builder.set_access(Guard(policy));
    // POST object (browser form uploads) is not served; s3s would buffer a form's file in
    // memory before any check, so it takes none.
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = 0;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    Endpoint::new(builder.build(), limits, metrics)
}

/// A bound endpoint, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Server { listener })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `endpoint` until `stop` completes, then stops accepting and waits up to
    /// `grace` for the requests in flight to finish.
    pub async fn run(
        self,
        endpoint: Endpoint,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), ServeError> {
        let mut http = hyper::server::conn::http1::Builder::new();
        // A client that opens a connection and sends its headers slowly (or never) does
        // not hold the connection forever.
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let graceful = GracefulShutdown::new();
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    // A connection that failed before it was accepted (reset, too many
                    // files) is that connection's problem, not the server's.
                    Err(e) if is_per_connection(&e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(ServeError::Accept(e)),
                },
                () = &mut stop => break,
            };
            let connection = http.serve_connection(TokioIo::new(stream), endpoint.clone());
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("connection from {peer}: {e}");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!("requests still in flight after {grace:?}; stopping anyway");
            }
        }
        Ok(())
    }
}

impl Server {
    /// Serves `GET /metrics` (Prometheus text) and `GET /health` until `stop` completes.
    pub async fn run_metrics(
        self,
        metrics: Arc<Metrics>,
        stop: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let http = hyper::server::conn::http1::Builder::new();
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) if is_per_connection(&e) => continue,
                    Err(e) => return Err(ServeError::Accept(e)),
                },
                () = &mut stop => return Ok(()),
            };
            let metrics = Arc::clone(&metrics);
            let service = hyper::service::service_fn(move |req| {
                crate::metrics::handle(Arc::clone(&metrics), req)
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    }
}

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted
    ) || e.raw_os_error().is_some_and(|c| c == 24 || c == 23)
}
