//! The HTTP side: one listener, HTTP/1.1 connections, SigV4 through `s3s`, and a graceful
//! stop that lets the requests in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use deltaglider::Client;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::{S3Auth, SecretKey, SimpleAuth};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;

use crate::{Gateway, Spool};

/// Who may call the endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum Access {
    /// Requests signed (SigV4, in headers, presigned or chunked) with this key; others are
    /// refused (`AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`).
    Key {
        /// The access key id clients sign with.
        access_key_id: String,
        /// Its secret.
        secret_access_key: String,
    },
    /// Every request, signed or not, with full access: only when asked for explicitly.
    Anonymous,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Key { access_key_id, .. } => f
                .debug_struct("Key")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Access::Anonymous => f.write_str("Anonymous"),
        }
    }
}

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

/// The S3 service of `client` under `access`, spooling multipart uploads in `spool` (for
/// embedding in another server).
pub fn service(client: Client, access: Access, spool: Spool) -> S3Service {
    let mut builder = S3ServiceBuilder::new(Gateway::new(client, spool));
    if let Access::Key {
        access_key_id,
        secret_access_key,
    } = access
    {
        builder.set_auth(OneKey(SimpleAuth::from_single(
            access_key_id,
            secret_access_key,
        )));
    }
    builder.build()
}

/// The configured keys, an unknown one refused as S3 refuses it (`InvalidAccessKeyId`).
struct OneKey(SimpleAuth);

#[async_trait::async_trait]
impl S3Auth for OneKey {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.lookup(access_key) {
            Some(secret) => Ok(secret.clone()),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
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

    /// Serves `service` until `stop` completes, then stops accepting and waits up to
    /// `grace` for the requests in flight to finish.
    pub async fn run(
        self,
        service: S3Service,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), ServeError> {
        let http = hyper::server::conn::http1::Builder::new();
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
            let connection = http.serve_connection(TokioIo::new(stream), service.clone());
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

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted
    ) || e.raw_os_error().is_some_and(|c| c == 24 || c == 23)
}
