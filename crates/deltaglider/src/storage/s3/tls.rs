//! The HTTP client behind `--ca-bundle` and `--no-verify-ssl`; without either the SDK's
//! default client (system roots) is used.

use std::sync::{Arc, OnceLock};

use aws_sdk_s3::config::http::HttpResponse;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

use crate::config::S3ClientSettings;
use crate::error::{Error, Result};

/// A client for the TLS settings, `None` when they are the defaults.
pub(super) fn http_client(settings: &S3ClientSettings) -> Result<Option<SharedHttpClient>> {
    if settings.no_verify_ssl {
        // Checked first: `aws s3` ignores the bundle when verification is off.
        return Ok(Some(insecure_client()?));
    }
    let Some(path) = &settings.ca_bundle else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "--ca-bundle {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let certs: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<rustls_pki_types::CertificateDer>, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "--ca-bundle {}: not a PEM certificate bundle: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "--ca-bundle {}: no PEM certificate in it",
            path.display()
        )));
    }
    use aws_smithy_http_client::tls;
    // As with `aws s3`, the bundle replaces the system's roots.
    let context = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem))
        .build()
        .map_err(|e| Error::Config(format!("--ca-bundle {}: {e}", path.display())))?;
    Ok(Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    ))
}

/// Accepts any server certificate (`--no-verify-ssl`): the connection is still encrypted,
/// but its peer is not authenticated.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // The handshake signatures are still checked: they prove the peer holds the key of the
    // certificate it sent, whoever signed that certificate.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type HyperClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    SdkBody,
>;

fn insecure_client() -> Result<SharedHttpClient> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    // One pool of connections for every request; the connect timeout is the one of the
    // first request's settings (they are the same for every request of a client).
    let client: Arc<OnceLock<HyperClient>> = Arc::new(OnceLock::new());
    Ok(http_client_fn(
        move |settings: &HttpConnectorSettings, _| {
            let hyper = client
                .get_or_init(|| {
                    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                    http.enforce_http(false);
                    http.set_connect_timeout(settings.connect_timeout());
                    let https = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls.clone())
                        .https_or_http()
                        .enable_http1()
                        .wrap_connector(http);
                    hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(https)
                })
                .clone();
            SharedHttpConnector::new(InsecureConnector {
                client: hyper,
                read_timeout: settings.read_timeout(),
            })
        },
    ))
}

#[derive(Debug, Clone)]
struct InsecureConnector {
    client: HyperClient,
    read_timeout: Option<std::time::Duration>,
}

impl HttpConnector for InsecureConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let sent = client.request(request);
            let response = match read_timeout {
                Some(t) => tokio::time::timeout(t, sent)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))?,
                None => sent.await,
            }
            .map_err(|e| {
                if e.is_connect() {
                    ConnectorError::io(e.into())
                } else {
                    ConnectorError::other(e.into(), None)
                }
            })?;
            let (parts, body) = response.into_parts();
            let response = http::Response::from_parts(parts, SdkBody::from_body_1_x(body));
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
