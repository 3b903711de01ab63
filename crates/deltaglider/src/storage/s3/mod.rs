//! Object store over S3 and S3-compatible servers, through `aws-sdk-s3`.

mod tls;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};

use super::{
    BucketAdmin, BucketInfo, CopyOptions, DELETE_BATCH, DeleteFailure, Encryption, ListPage,
    ListRequest, ObjectHeaders, ObjectInfo, ObjectReader, ObjectStore, PendingUploads, Presign,
    PutOptions, PutOutcome, PutSource, StorageProtection,
};
use crate::error::{Error, IoContext, Result};
use crate::metadata::UserMetadata;

/// Sizes that decide how large bodies are uploaded.
#[derive(Debug, Clone, Copy)]
pub struct TransferLimits {
    /// Files at least this large are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part (grown automatically to stay under 10,000 parts).
    pub part_size: u64,
    /// Parts in flight at once; memory use is about `part_size * concurrency`.
    pub concurrency: usize,
}

impl Default for TransferLimits {
    fn default() -> Self {
        TransferLimits {
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            concurrency: 4,
        }
    }
}

/// Sets what a [`PutOptions`] asks for (metadata, content type, headers, protection) on a
/// `PutObject` or `CreateMultipartUpload` request: the SDK's two builders share no trait.
macro_rules! with_put_options {
    ($builder:expr, $options:expr) => {{
        let o = &$options;
        let (h, p) = (&o.headers, &o.protection);
        $builder
            .set_metadata(Some(o.metadata.clone().into_iter().collect()))
            .set_content_type(o.content_type.clone())
            .set_cache_control(h.cache_control.clone())
            .set_content_disposition(h.content_disposition.clone())
            .set_content_encoding(h.content_encoding.clone())
            .set_content_language(h.content_language.clone())
            .set_expires(h.expires.map($crate::storage::s3::to_sdk_time))
            .set_storage_class(p.storage_class.as_deref().map(Into::into))
            .set_server_side_encryption(
                p.encryption
                    .as_ref()
                    .map($crate::storage::s3::sse_algorithm),
            )
            .set_ssekms_key_id($crate::storage::s3::kms_key_id(p))
            .set_acl(p.acl.as_deref().map(Into::into))
    }};
}

mod multipart;

/// S3 backend.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    endpoint: Option<String>,
    limits: TransferLimits,
    /// Keys per listing request when the caller asks for no particular number.
    page_size: Option<usize>,
    /// Aborts of multipart uploads whose writers were dropped before they finished.
    aborts: tokio_util::task::TaskTracker,
}

/// How to reach S3: everything else comes from the standard AWS credential chain.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible server; `None` falls back to the AWS configuration's,
    /// then to AWS itself.
    pub endpoint_url: Option<String>,
    /// `None` falls back to the AWS configuration's, then to `us-east-1`.
    pub region: Option<String>,
    /// Profile in the AWS config files; `None` for the SDK's choice (`AWS_PROFILE`, `default`).
    pub profile: Option<String>,
    /// `None` for [`TransferLimits::default`].
    pub limits: Option<TransferLimits>,
}

impl S3Store {
    /// Builds a client from the standard AWS configuration chain plus explicit settings.
    /// Custom endpoints use path-style addressing, and request checksums are only computed
    /// when an operation requires them (S3-compatible servers reject the SDK's defaults).
    pub async fn connect(settings: S3Settings) -> Result<Self> {
        Self::connect_with(settings, &crate::config::S3ClientSettings::default()).await
    }

    /// [`S3Store::connect`] with the connection options of `aws s3`: TLS, timeouts,
    /// unsigned requests and the listing page size.
    pub async fn connect_with(
        settings: S3Settings,
        client: &crate::config::S3ClientSettings,
    ) -> Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &settings.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let c = client;
        if c.no_sign_request {
            // Anonymous requests: no credentials are looked up, nothing is signed.
            loader = loader.no_credentials();
        }
        if c.connect_timeout.is_some() || c.read_timeout.is_some() {
            let mut t = aws_config::timeout::TimeoutConfig::builder();
            match c.connect_timeout {
                Some(d) if d.is_zero() => t = t.disable_connect_timeout(),
                Some(d) => t = t.connect_timeout(d),
                None => {}
            }
            match c.read_timeout {
                Some(d) if d.is_zero() => t = t.disable_read_timeout(),
                Some(d) => t = t.read_timeout(d),
                None => {}
            }
            loader = loader.timeout_config(t.build());
        }
        if let Some(client) = tls::http_client(c)? {
            loader = loader.http_client(client);
        }
        let sdk = loader.load().await;
        let mut store = Self::from_sdk_config_at(
            &sdk,
            settings.endpoint_url.as_deref(),
            settings.limits.unwrap_or_default(),
        );
        store.page_size = client.page_size;
        Ok(store)
    }

    /// A store over an AWS SDK configuration the caller loaded (credentials, region,
    /// endpoint, retries, HTTP client), set up as [`S3Store::connect`] sets up its own: a
    /// custom endpoint gets path-style addressing, and checksums are computed only when an
    /// operation requires them.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, limits: TransferLimits) -> Self {
        Self::from_sdk_config_at(sdk, None, limits)
    }

    fn from_sdk_config_at(
        sdk: &aws_config::SdkConfig,
        endpoint_url: Option<&str>,
        limits: TransferLimits,
    ) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(sdk)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        if sdk.region().is_none() {
            builder = builder.region(aws_config::Region::new("us-east-1"));
        }
        let endpoint = endpoint_url
            .map(str::to_string)
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        if let Some(ep) = &endpoint {
            builder = builder.endpoint_url(ep).force_path_style(true);
        }
        S3Store {
            client: Client::from_conf(builder.build()),
            endpoint,
            limits,
            page_size: None,
            aborts: tokio_util::task::TaskTracker::new(),
        }
    }

    /// A store over a client the caller configured (credentials, endpoint, retries, HTTP
    /// client): used as it is. S3-compatible servers other than AWS usually want
    /// path-style addressing and checksums only when required, as [`S3Store::connect`] sets.
    pub fn from_client(client: Client, limits: TransferLimits) -> Self {
        S3Store {
            client,
            // The SDK's configuration does not say which endpoint it resolved to.
            endpoint: None,
            limits,
            page_size: None,
            aborts: tokio_util::task::TaskTracker::new(),
        }
    }

    /// The underlying SDK client, for operations outside the storage trait.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("PreconditionFailed")
        || err.raw_response().map(|r| r.status().as_u16()) == Some(412)
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// Characters escaped in `x-amz-copy-source` keys (everything but unreserved and `/`).
const COPY_SOURCE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Turns an SDK error into a typed error, keeping the server's code and message.
fn storage_error<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err.code() {
        Some("NoSuchBucket") => return Error::NoSuchBucket(bucket.to_string()),
        Some("NoSuchKey") => {
            return Error::NotFound {
                bucket: bucket.to_string(),
                key: key.to_string(),
            };
        }
        Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists") => {
            return Error::BucketAlreadyExists(bucket.to_string());
        }
        Some("BucketNotEmpty") => return Error::BucketNotEmpty(bucket.to_string()),
        _ => {}
    }
    Error::Storage {
        operation,
        bucket: bucket.to_string(),
        key: key.to_string(),
        detail: describe_sdk_error(&err),
        code: err.code().map(Box::from),
        source: Some(Box::new(err)),
    }
}

/// One readable line for an SDK error: the server's code and message, or what failed on
/// the way there (connection, credentials, timeout), without the SDK's debug dumps.
fn describe_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    if let SdkError::ServiceError(_) = err {
        let message = err.message().filter(|m| !m.trim().is_empty());
        return match (err.code(), message, status) {
            (Some(code), Some(msg), _) => format!("{code}: {msg}"),
            (Some(code), None, _) => code.to_string(),
            (None, _, Some(403)) => "HTTP 403 Forbidden: access denied (check the credentials, the region and the bucket policy)".into(),
            (None, _, Some(301)) => "HTTP 301: the bucket is in another region (set --region)".into(),
            (None, _, Some(s)) => format!("HTTP {s}"),
            (None, _, None) => "the server returned an error without details".into(),
        };
    }
    if let SdkError::TimeoutError(_) = err {
        return "the request timed out".into();
    }
    // Walk the cause chain and keep the informative messages.
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        let text = c.to_string();
        let generic = [
            "dispatch failure",
            "io error",
            "other",
            "service error",
            "unhandled error",
            "response error",
            "construction failure",
        ];
        if !generic.contains(&text.as_str()) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    let joined = parts.join(": ");
    if joined.contains("loading credentials") || joined.contains("no credentials") {
        "no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile)".into()
    } else if joined.is_empty() {
        "request failed".into()
    } else {
        joined
    }
}

fn to_utc(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn to_sdk_time(t: DateTime<Utc>) -> aws_sdk_s3::primitives::DateTime {
    aws_sdk_s3::primitives::DateTime::from_secs(t.timestamp())
}

/// `Expires` as S3 returns it (an HTTP date); `None` if absent or unparsable.
fn parse_http_date(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?.trim();
    DateTime::parse_from_rfc2822(s)
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn sse_algorithm(e: &Encryption) -> aws_sdk_s3::types::ServerSideEncryption {
    match e {
        Encryption::Aes256 => aws_sdk_s3::types::ServerSideEncryption::Aes256,
        Encryption::Kms { .. } => aws_sdk_s3::types::ServerSideEncryption::AwsKms,
    }
}

fn kms_key_id(p: &StorageProtection) -> Option<String> {
    match &p.encryption {
        Some(Encryption::Kms { key_id }) => key_id.clone(),
        _ => None,
    }
}

/// Storage class and encryption from a HEAD or GET response.
fn reported_protection(
    storage_class: Option<&str>,
    sse: Option<&str>,
    kms_key: Option<&str>,
) -> StorageProtection {
    StorageProtection {
        storage_class: storage_class.map(str::to_string),
        encryption: sse.and_then(|a| match a {
            "AES256" => Some(Encryption::Aes256),
            a if a.starts_with("aws:kms") => Some(Encryption::Kms {
                key_id: kms_key.map(str::to_string),
            }),
            _ => None,
        }),
        acl: None,
    }
}

fn lowercase_metadata(m: Option<&std::collections::HashMap<String, String>>) -> UserMetadata {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// An [`ObjectInfo`] from a HeadObject or GetObject response: two SDK types with the same
/// accessors, so one macro rather than two copies of the mapping.
macro_rules! object_info {
    ($key:expr, $out:expr) => {{
        let out = &$out;
        ObjectInfo {
            key: $key.to_string(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            last_modified: to_utc(out.last_modified()),
            etag: out.e_tag().map(str::to_string),
            metadata: Some(lowercase_metadata(out.metadata())),
            content_type: out.content_type().map(str::to_string),
            headers: ObjectHeaders {
                cache_control: out.cache_control().map(str::to_string),
                content_disposition: out.content_disposition().map(str::to_string),
                content_encoding: out.content_encoding().map(str::to_string),
                content_language: out.content_language().map(str::to_string),
                expires: parse_http_date(out.expires_string()),
            },
            protection: reported_protection(
                out.storage_class().map(|c| c.as_str()),
                out.server_side_encryption().map(|e| e.as_str()),
                out.ssekms_key_id(),
            ),
        }
    }};
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        match &self.endpoint {
            Some(ep) => format!("S3 at {ep}"),
            None => "AWS S3".to_string(),
        }
    }

    fn bucket_admin(&self) -> Option<&dyn BucketAdmin> {
        Some(self)
    }

    fn presigner(&self) -> Option<&dyn Presign> {
        Some(self)
    }

    fn pending_uploads(&self) -> Option<&dyn PendingUploads> {
        Some(self)
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
            Err(e) => Err(storage_error("check bucket", bucket, "", e)),
        }
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(object_info!(key, out))),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(storage_error("head", bucket, key, e)),
        }
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectReader> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| storage_error("download", bucket, key, e))?;
        let info = object_info!(key, out);
        Ok(ObjectReader {
            info,
            body: Box::pin(out.body.into_async_read()),
        })
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<ObjectReader> {
        if range.is_empty() {
            // No bytes to ask for: what the object is comes from a HEAD.
            let info = self
                .head_object(bucket, key)
                .await?
                .ok_or_else(|| Error::NotFound {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                })?;
            return Ok(ObjectReader {
                info,
                body: Box::pin(tokio::io::empty()),
            });
        }
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| storage_error("download", bucket, key, e))?;
        // S3 shortens a range that runs past the end (RFC 9110); the caller asked for bytes
        // that are not there.
        let wanted = range.end - range.start;
        if out.content_length.and_then(|n| u64::try_from(n).ok()) != Some(wanted) {
            return Err(Error::InvalidArgument {
                what: format!("the range {range:?} of {bucket}/{key}"),
                reason: format!(
                    "the store answered {} bytes of it",
                    out.content_length.unwrap_or_default()
                ),
            });
        }
        let mut info = object_info!(key, out);
        // `Content-Range: bytes a-b/size`: the size of the whole object.
        info.size = out
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, total)| total.parse().ok())
            .ok_or_else(|| Error::InvalidArgument {
                what: format!("the range {range:?} of {bucket}/{key}"),
                reason: format!(
                    "the store's Content-Range {:?} has no object size",
                    out.content_range()
                ),
            })?;
        Ok(ObjectReader {
            info,
            body: Box::pin(out.body.into_async_read()),
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let body = match &source {
            PutSource::File(path) => {
                let size = tokio::fs::metadata(path)
                    .await
                    .ctx(|| format!("cannot read {}", path.display()))?
                    .len();
                if size >= self.limits.multipart_threshold {
                    return self.put_multipart(bucket, key, path, size, &options).await;
                }
                ByteStream::from_path(path).await.map_err(|e| {
                    Error::io(
                        format!("cannot read {}", path.display()),
                        std::io::Error::other(e),
                    )
                })?
            }
            PutSource::Bytes(b) => ByteStream::from(b.clone()),
        };
        let mut req = self.client.put_object().bucket(bucket).key(key).body(body);
        req = with_put_options!(req, options);
        if options.if_none_match {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(out) => Ok(PutOutcome::Stored {
                etag: out.e_tag().map(str::to_string),
            }),
            Err(e) if options.if_none_match && is_precondition_failed(&e) => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(storage_error("upload", bucket, key, e)),
        }
    }

    async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&request.prefix)
            .set_delimiter(request.delimiter.clone())
            .set_continuation_token(request.continuation_token.clone());
        if let Some(n) = request.max_keys.or(self.page_size) {
            req = req.max_keys(n.clamp(1, 1000) as i32);
        }
        let out = req
            .send()
            .await
            .map_err(|e| storage_error("list", bucket, &request.prefix, e))?;
        Ok(ListPage {
            objects: out
                .contents()
                .iter()
                .map(|o| ObjectInfo {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_utc(o.last_modified()),
                    etag: o.e_tag().map(str::to_string),
                    metadata: None,
                    content_type: None,
                    headers: ObjectHeaders::default(),
                    protection: StorageProtection::default(),
                })
                .collect(),
            common_prefixes: out
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string))
                .collect(),
            next_token: if out.is_truncated() == Some(true) {
                out.next_continuation_token().map(str::to_string)
            } else {
                None
            },
        })
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: CopyOptions,
    ) -> Result<()> {
        use aws_sdk_s3::types::MetadataDirective;
        // CopySource is "bucket/key" with the key URL-encoded.
        let source = format!(
            "{src_bucket}/{}",
            percent_encoding::utf8_percent_encode(src_key, COPY_SOURCE_ESCAPES)
        );
        let p = &options.protection;
        let mut req = self
            .client
            .copy_object()
            .copy_source(source)
            .bucket(dst_bucket)
            .key(dst_key)
            .set_storage_class(p.storage_class.as_deref().map(Into::into))
            .set_server_side_encryption(p.encryption.as_ref().map(sse_algorithm))
            .set_ssekms_key_id(kms_key_id(p))
            .set_acl(p.acl.as_deref().map(Into::into));
        req = match options.replace {
            // COPY keeps Content-Type and the other headers along with the user metadata.
            None => req.metadata_directive(MetadataDirective::Copy),
            Some(m) => req
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(m.metadata.into_iter().collect()))
                .set_content_type(m.content_type)
                .set_cache_control(m.headers.cache_control)
                .set_content_disposition(m.headers.content_disposition)
                .set_content_encoding(m.headers.content_encoding)
                .set_content_language(m.headers.content_language)
                .set_expires(m.headers.expires.map(to_sdk_time)),
        };
        req.send()
            .await
            .map_err(|e| storage_error("copy to", dst_bucket, dst_key, e))?;
        Ok(())
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| storage_error("delete", bucket, key, e))?;
        Ok(())
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<DeleteFailure>> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut failures = Vec::new();
        for chunk in keys.chunks(DELETE_BATCH) {
            let first = &chunk[0];
            let build_error = |e: aws_sdk_s3::error::BuildError| {
                Error::storage(
                    "delete",
                    bucket,
                    first,
                    format!("cannot build the request: {e}"),
                )
            };
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(build_error)?;
            // Quiet: the answer lists only the keys that failed.
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(build_error)?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| storage_error("delete", bucket, first, e))?;
            for e in out.errors() {
                let key = e.key().unwrap_or_default().to_string();
                let code = e.code().map(Box::from);
                let detail = match (e.code(), e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    (None, m) => m.unwrap_or("the server did not say why").to_string(),
                };
                let error = Error::Storage {
                    operation: "delete",
                    bucket: bucket.to_string(),
                    key: key.clone(),
                    detail,
                    code,
                    source: None,
                };
                failures.push(DeleteFailure { key, error });
            }
        }
        Ok(failures)
    }
}

#[async_trait]
impl BucketAdmin for S3Store {
    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let out = self
            .client
            .list_buckets()
            .send()
            .await
            .map_err(|e| storage_error("list buckets", "", "", e))?;
        Ok(out
            .buckets()
            .iter()
            .map(|b| BucketInfo {
                name: b.name().unwrap_or_default().to_string(),
                created: to_utc(b.creation_date()),
            })
            .collect())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        crate::url::validate_bucket_name(bucket)?;
        let mut req = self.client.create_bucket().bucket(bucket);
        let region = self.client.config().region().map(|r| r.to_string());
        if let Some(r) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(r.as_str().into())
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| storage_error("create bucket", bucket, "", e))?;
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| storage_error("delete bucket", bucket, "", e))?;
        Ok(())
    }
}

#[async_trait]
impl Presign for S3Store {
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
        download_name: Option<&str>,
    ) -> Result<String> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::invalid("presign expiry", e.to_string()))?;
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some(name) = download_name {
            let escaped = name.replace('"', "");
            req = req.response_content_disposition(format!("attachment; filename=\"{escaped}\""));
        }
        let presigned = req
            .presigned(config)
            .await
            .map_err(|e| storage_error("presign", bucket, key, e))?;
        Ok(presigned.uri().to_string())
    }
}
