//! CopyObject: the source read through the library (a delta rebuilt and verified, never
//! its stored bytes), stored at the destination as any upload is.

use deltaglider::storage::{MetadataDirective as Directive, ObjectSettings};
use deltaglider::{Client, ObjectDetails, PutRequestOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::conditions::Preconditions;
use crate::error::s3_error;
use crate::metrics::Metrics;
use crate::time::timestamp;

/// The bucket and key of a copy source (`x-amz-copy-source`).
pub(crate) fn copy_source(source: &CopySource) -> S3Result<(&str, &str)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3_error!(
            NotImplemented,
            "access point copy sources are not supported"
        ));
    };
    if version_id.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "versioned copy sources are not supported"
        ));
    }
    Ok((bucket, key))
}

/// The `x-amz-copy-source-if-*` conditions against the source: a copy's failed condition
/// is 412 whichever header it was.
pub(crate) fn source_preconditions(
    source: &ObjectDetails,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
) -> S3Result<()> {
    let conditions = Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    };
    let modified = source.last_modified.or(source.created_at);
    if conditions.check(source.etag.as_deref(), modified).is_err() {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    Ok(())
}

pub(crate) async fn copy_object(
    client: &Client,
    metrics: &Metrics,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let i = req.input;
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let source = client
        .head_object(src_bucket, src_key)
        .await
        .map_err(s3_error)?;
    source_preconditions(
        &source,
        i.copy_source_if_match,
        i.copy_source_if_none_match,
        i.copy_source_if_modified_since,
        i.copy_source_if_unmodified_since,
    )?;
    let replace = match i.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown metadata directive: {other}"
            ));
        }
    };
    if (src_bucket, src_key) == (i.bucket.as_str(), i.key.as_str()) && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes."
        ));
    }
    let mut options = PutRequestOptions::default();
    if replace {
        options = options.object(ObjectSettings {
            metadata_directive: Directive::Replace,
            headers: crate::headers::requested!(i),
            ..Default::default()
        });
        if let Some(t) = i.content_type {
            options = options.content_type(t);
        }
        for (k, v) in i.metadata.unwrap_or_default() {
            options = options.user_metadata(k, v);
        }
    }
    let report = client
        .copy_object(src_bucket, src_key, &i.bucket, &i.key, &options)
        .await
        .map_err(s3_error)?;
    metrics.stored(&report);
    let copied = client
        .head_object(&i.bucket, &i.key)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: copied
                .etag
                .map(|t| ETag::Strong(t.trim_matches('"').to_string())),
            last_modified: copied.last_modified.map(timestamp),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
