//! The [`Policy`] applied to each request: the secret of a key for SigV4 (`s3s` verifies
//! the signature), then whether the caller may do this operation on this bucket or key.
//! What is not known to be a read is a write: an operation this table forgets is refused
//! to read-only callers, never allowed.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::{S3Error, S3Request, S3Result, s3_error};

use crate::policy::{Grant, Policy};

/// Operations that change nothing.
const READS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "ListParts",
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "ListMultipartUploads",
];

/// The caller's grant, left in the request for the handlers that filter what they show.
#[derive(Debug, Clone)]
pub(crate) struct Visible(pub Grant);

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Whether `uri` is a SigV4 presigned URL valid for more than 7 days.
fn presigned_for_too_long(uri: &hyper::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.strip_prefix("X-Amz-Expires=")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|secs| secs > 604_800)
        })
    })
}

/// The secrets of the policy's keys.
pub(crate) struct Keys(pub Arc<Policy>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.keys.get(access_key) {
            Some((secret, _)) => Ok(SecretKey::from(secret.clone())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// The policy's decisions.
pub(crate) struct Guard(pub Arc<Policy>);

impl Guard {
    fn grant<T>(&self, req: &S3Request<T>) -> S3Result<&Grant> {
        let key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.0.grant(key).ok_or_else(denied)
    }

    fn check_listing<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        prefix: Option<&str>,
    ) -> S3Result<()> {
        let grant = self.grant(req)?;
        if grant.lists(bucket, prefix.unwrap_or("")) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    fn check_source<T>(&self, req: &S3Request<T>, source: &CopySource) -> S3Result<()> {
        let grant = self.grant(req)?;
        match source {
            CopySource::Bucket { bucket, key, .. } if grant.reads_key(bucket, key) => Ok(()),
            _ => Err(denied()),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Guard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let key = cx.credentials().map(|c| c.access_key.clone());
        let grant = self.0.grant(key.as_deref()).ok_or_else(|| {
            if key.is_none() {
                s3_error!(AccessDenied, "Signature is required")
            } else {
                denied()
            }
        })?;
        // S3's longest presigned URL: 7 days (the protocol crate checks the rest).
        if presigned_for_too_long(cx.uri()) {
            return Err(s3_error!(
                AccessDenied,
                "X-Amz-Expires must be at most 604800 seconds (7 days)"
            ));
        }
        let op = cx.s3_op().name();
        let read = READS.contains(&op);
        let allowed = match cx.s3_path() {
            // As in S3, unsigned requests list no buckets (unless everyone may do everything).
            S3Path::Root => op == "ListBuckets" && (key.is_some() || grant.scopes.is_none()),
            S3Path::Bucket { bucket } => match op {
                // Their prefixes are checked with the parsed request, below.
                "ListObjects"
                | "ListObjectsV2"
                | "ListMultipartUploads"
                | "HeadBucket"
                | "GetBucketLocation" => grant.sees_bucket(bucket),
                // Its keys are checked with the parsed request, below.
                "DeleteObjects" => grant.writes && grant.sees_bucket(bucket),
                _ => grant.owns_bucket(bucket),
            },
            S3Path::Object { bucket, key } => {
                if read {
                    grant.reads_key(bucket, key)
                } else {
                    grant.writes_key(bucket, key)
                }
            }
        };
        if !allowed {
            return Err(denied());
        }
        let grant = grant.clone();
        cx.extensions_mut().insert(Visible(grant));
        Ok(())
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        self.check_listing(req, &req.input.bucket, req.input.prefix.as_deref())
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        self.check_listing(req, &req.input.bucket, req.input.prefix.as_deref())
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        self.check_listing(req, &req.input.bucket, req.input.prefix.as_deref())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_source(req, &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_source(req, &req.input.copy_source)
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let grant = self.grant(req)?;
        let bucket = &req.input.bucket;
        if req
            .input
            .delete
            .objects
            .iter()
            .all(|o| grant.writes_key(bucket, &o.key))
        {
            Ok(())
        } else {
            Err(denied())
        }
    }
}
