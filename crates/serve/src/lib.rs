//! An S3-compatible endpoint over a [`deltaglider::Client`]: any S3 client (the `aws` CLI,
//! boto3, SDKs) stores objects as deltas when worthwhile and reads back verified
//! originals, without knowing about deltas.
//!
//! The protocol (routing, XML, SigV4 verification) is the `s3s` crate's; this crate maps
//! each S3 operation onto the client, one file per group of operations, and the library's
//! errors onto S3 error codes in one place (`error.rs`).

mod admission;
mod buckets;
mod conditions;
mod copy;
mod delete;
mod download;
mod error;
mod get;
mod guard;
mod headers;
mod list;
mod metrics;
mod multipart;
mod policy;
mod put;
mod rebuilt;
mod server;
mod spool;
mod time;
mod upload;

pub use admission::{Endpoint, Limits, Permitted};
pub use metrics::Metrics;
pub use policy::{Policy, PolicyError};
pub use server::{ServeError, Server, endpoint};
pub use spool::Spool;

use std::sync::Arc;

use deltaglider::Client;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

/// The S3 operations served, over one client.
#[derive(Debug, Clone)]
pub struct Gateway {
    client: Client,
    uploads: Arc<multipart::Uploads>,
    max_object_size: Option<u64>,
    metrics: Arc<Metrics>,
    copies: Arc<rebuilt::RebuiltCopies>,
}

impl Gateway {
    /// Serves `client`'s backend under `limits`; the parts of multipart uploads and the
    /// rebuilt copies for ranged GETs live in `spool`; what is done is counted in
    /// `metrics`.
    pub fn new(client: Client, spool: Spool, limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let uploads = Arc::new(multipart::Uploads::new(spool.clone()));
        if let Some(idle) = limits.idle_uploads {
            multipart::Uploads::watch_idle(&uploads, idle);
        }
        Gateway {
            client,
            uploads,
            max_object_size: limits.max_object_size,
            metrics,
            copies: Arc::new(rebuilt::RebuiltCopies::new(spool, limits.range_copies)),
        }
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.metrics
            .observe("ListBuckets", buckets::list_buckets(&self.client, req))
            .await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.metrics
            .observe("CreateBucket", buckets::create_bucket(&self.client, req))
            .await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.metrics
            .observe("HeadBucket", buckets::head_bucket(&self.client, req))
            .await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.metrics
            .observe("DeleteBucket", buckets::delete_bucket(&self.client, req))
            .await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.metrics
            .observe(
                "PutObject",
                put::put_object(&self.client, self.max_object_size, &self.metrics, req),
            )
            .await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.metrics
            .observe(
                "GetObject",
                get::get_object(&self.client, &self.copies, &self.metrics, req),
            )
            .await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.metrics
            .observe("HeadObject", get::head_object(&self.client, req))
            .await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.metrics
            .observe("ListObjectsV2", list::list_objects_v2(&self.client, req))
            .await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.metrics
            .observe("ListObjects", list::list_objects(&self.client, req))
            .await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.metrics
            .observe("DeleteObject", delete::delete_object(&self.client, req))
            .await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.metrics
            .observe("DeleteObjects", delete::delete_objects(&self.client, req))
            .await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.metrics
            .observe(
                "CopyObject",
                copy::copy_object(&self.client, &self.metrics, req),
            )
            .await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.metrics
            .observe(
                "CreateMultipartUpload",
                multipart::create_multipart_upload(&self.client, &self.uploads, req),
            )
            .await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.metrics
            .observe(
                "UploadPart",
                multipart::upload_part(&self.uploads, &self.metrics, req),
            )
            .await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.metrics
            .observe(
                "UploadPartCopy",
                multipart::upload_part_copy(&self.client, &self.uploads, &self.metrics, req),
            )
            .await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        // Counted by the completion itself, when its answer is known.
        multipart::complete_multipart_upload(
            &self.client,
            &self.uploads,
            self.max_object_size,
            &self.metrics,
            req,
        )
        .await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.metrics
            .observe(
                "AbortMultipartUpload",
                multipart::abort_multipart_upload(&self.uploads, req),
            )
            .await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.metrics
            .observe("ListParts", multipart::list_parts(&self.uploads, req))
            .await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.metrics
            .observe(
                "ListMultipartUploads",
                multipart::list_multipart_uploads(&self.uploads, req),
            )
            .await
    }
}
