//! PutObject: the body streamed to the library (a private spool file, then a delta when
//! eligible), its digests checked before anything is stored.

use deltaglider::storage::ObjectSettings;
use deltaglider::{Client, PutRequestOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::s3_error;
use crate::metrics::Metrics;
use crate::upload::{CheckedBody, Verdict, declared, trailer_names};

pub(crate) async fn put_object(
    client: &Client,
    max_object_size: Option<u64>,
    metrics: &Metrics,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let trailer_names = trailer_names(&req.headers);
    let trailers = req.trailing_headers;
    let i = req.input;
    if i.if_match.is_some() || i.if_none_match.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "conditional writes (If-Match, If-None-Match on PUT) are not supported"
        ));
    }
    // The same fields in a PutObject and an UploadPart.
    let declared = declared!(i, trailer_names);
    let blob = crate::upload::body_or_empty(i.body);
    let (body, verdict) = CheckedBody::new(blob, declared, trailers)?;
    let mut options = PutRequestOptions::default().object(ObjectSettings {
        headers: crate::headers::requested!(i),
        ..Default::default()
    });
    if let Some(content_type) = i.content_type {
        options = options.content_type(content_type);
    }
    for (k, v) in i.metadata.unwrap_or_default() {
        options = options.user_metadata(k, v);
    }
    let expected = i.content_length.and_then(|n| u64::try_from(n).ok());
    check_size(max_object_size, expected)?;
    let stored = client
        .put_object_stream(
            &i.bucket,
            &i.key,
            body,
            "the request body",
            expected,
            &options,
        )
        .await;
    let verdict = Verdict::take(&verdict);
    if let Some(m) = verdict.mismatch {
        return Err(m.into());
    }
    let report = stored.map_err(s3_error)?;
    metrics.received(report.original_size);
    metrics.stored(&report);
    // The entity tag as later HEADs and listings report it (see `logical_etag`).
    let details = client
        .head_object(&i.bucket, &i.key)
        .await
        .map_err(s3_error)?;
    let c = verdict.verified;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: details
            .etag
            .map(|t| ETag::Strong(t.trim_matches('"').to_string())),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        ..Default::default()
    }))
}

/// A body within `max` bytes; with a limit, its length must be declared, so that the
/// library refuses a longer body before storing it.
pub(crate) fn check_size(max: Option<u64>, declared: Option<u64>) -> S3Result<()> {
    match (max, declared) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(s3_error!(
            MissingContentLength,
            "You must provide the Content-Length HTTP header"
        )),
        (Some(max), Some(n)) if n > max => Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload of {n} bytes exceeds this endpoint's maximum object size of \
             {max} bytes"
        )),
        _ => Ok(()),
    }
}
