//! ListBuckets, CreateBucket, HeadBucket, DeleteBucket.

use deltaglider::{Client, ListObjectsOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::s3_error;
use crate::guard::Visible;
use crate::time::timestamp;

pub(crate) async fn list_buckets(
    client: &Client,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    // A key scoped to some buckets sees only those.
    let visible = req.extensions.get::<Visible>();
    let i = &req.input;
    let max = match i.max_buckets {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and 10000, not {n}"
            ));
        }
    };
    let prefix = i.prefix.as_deref().unwrap_or("");
    // The token is the last name of the previous page: names are listed in order.
    let after = i.continuation_token.as_deref().unwrap_or("");
    let mut buckets: Vec<_> = client
        .list_buckets()
        .await
        .map_err(s3_error)?
        .into_iter()
        .filter(|b| visible.is_none_or(|v| v.0.sees_bucket(&b.name)))
        .filter(|b| b.name.starts_with(prefix) && b.name.as_str() > after)
        .collect();
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let continuation_token = (buckets.len() > max).then(|| buckets[max - 1].name.clone());
    buckets.truncate(max);
    let buckets = buckets
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: b.created.map(timestamp),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token,
        prefix: i.prefix.clone(),
        ..Default::default()
    }))
}

pub(crate) async fn create_bucket(
    client: &Client,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let bucket = &req.input.bucket;
    client.create_bucket(bucket).await.map_err(s3_error)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

pub(crate) async fn head_bucket(
    client: &Client,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let bucket = &req.input.bucket;
    if !client.bucket_exists(bucket).await.map_err(s3_error)? {
        return Err(s3_error!(
            NoSuchBucket,
            "The specified bucket does not exist"
        ));
    }
    Ok(S3Response::new(HeadBucketOutput::default()))
}

/// Deletes a bucket with no logical objects. What DeltaGlider keeps beside them (a
/// reference no delta uses any more, internal objects) is deleted with it: to an S3 client
/// the bucket is empty.
pub(crate) async fn delete_bucket(
    client: &Client,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = &req.input.bucket;
    match client.delete_bucket(bucket).await {
        Ok(()) => {}
        Err(deltaglider::Error::BucketNotEmpty(_)) => {
            let options = ListObjectsOptions::default()
                .recursive(true)
                .page_size(1000);
            let mut pages = client.list_objects(bucket, "", &options);
            while let Some(page) = pages.next_page().await {
                if !page.map_err(s3_error)?.objects.is_empty() {
                    return Err(s3_error!(
                        BucketNotEmpty,
                        "The bucket you tried to delete is not empty"
                    ));
                }
            }
            client
                .delete_bucket_and_contents(bucket)
                .await
                .map_err(s3_error)?;
        }
        Err(e) => return Err(s3_error(e)),
    }
    Ok(S3Response::new(DeleteBucketOutput::default()))
}
