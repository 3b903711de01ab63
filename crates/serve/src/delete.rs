//! DeleteObject and DeleteObjects: a logical key's stored forms go, and the deltaspace's
//! reference once nothing uses it.

use deltaglider::Client;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::error::{code_of, s3_error};

pub(crate) async fn delete_object(
    client: &Client,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    match client.delete_object(&i.bucket, &i.key).await {
        // Deleting what is not there succeeds in S3.
        Ok(_) | Err(deltaglider::Error::NotFound { .. }) => {}
        Err(e) => return Err(s3_error(e)),
    }
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(crate) async fn delete_objects(
    client: &Client,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let i = req.input;
    // A batch in a missing bucket is one error, not one per key.
    if !client.bucket_exists(&i.bucket).await.map_err(s3_error)? {
        return Err(s3_error(deltaglider::Error::NoSuchBucket(i.bucket)));
    }
    // S3's limit, which the library's batches also follow.
    if i.delete.objects.len() > 1000 {
        return Err(s3s::s3_error!(
            MalformedXML,
            "The request lists {} keys; at most 1000 may be deleted in one request",
            i.delete.objects.len()
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    let keys: Vec<&str> = i.delete.objects.iter().map(|o| o.key.as_str()).collect();
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for outcome in client.delete_objects(&i.bucket, &keys).await {
        match outcome.error {
            None | Some(deltaglider::Error::NotFound { .. }) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(outcome.key),
                        ..Default::default()
                    });
                }
            }
            Some(e) => errors.push(Error {
                code: Some(code_of(&e).as_str().to_string()),
                message: Some(e.to_string()),
                key: Some(outcome.key),
                ..Default::default()
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}
