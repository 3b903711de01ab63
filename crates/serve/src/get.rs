//! GetObject and HeadObject: the original's size, entity tag, type, time and metadata,
//! whatever is stored; GET streams the verified rebuild.

use std::sync::Arc;

use deltaglider::{Client, ObjectDetails, StoredAs};
use hyper::StatusCode;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::conditions::{Preconditions, Refusal, Window};
use crate::download;
use crate::error::s3_error;
use crate::metrics::Metrics;
use crate::rebuilt::{NoCopy, RebuiltCopies};
use crate::time::timestamp;

/// What a GET and a HEAD both say of an object.
struct Described {
    e_tag: Option<ETag>,
    last_modified: Option<Timestamp>,
    content_type: Option<ContentType>,
    metadata: Option<Metadata>,
    cache_control: Option<CacheControl>,
    content_disposition: Option<ContentDisposition>,
    content_encoding: Option<ContentEncoding>,
    content_language: Option<ContentLanguage>,
    expires: Option<Expires>,
}

fn describe(d: &ObjectDetails) -> Described {
    Described {
        e_tag: d
            .etag
            .as_deref()
            .map(|t| ETag::Strong(t.trim_matches('"').to_string())),
        last_modified: modified(d).map(timestamp),
        content_type: d.content_type.clone(),
        metadata: (!d.user_metadata.is_empty()).then(|| {
            d.user_metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        cache_control: d.headers.cache_control.clone(),
        content_disposition: d.headers.content_disposition.clone(),
        content_encoding: d.headers.content_encoding.clone(),
        content_language: d.headers.content_language.clone(),
        expires: d.headers.expires.map(timestamp),
    }
}

fn modified(d: &ObjectDetails) -> Option<chrono::DateTime<chrono::Utc>> {
    d.last_modified.or(d.created_at)
}

/// Checks the preconditions, then the window of an optional range.
fn decide(
    d: &ObjectDetails,
    conditions: Preconditions,
    range: Option<&Range>,
) -> S3Result<Option<Window>> {
    conditions
        .check(d.etag.as_deref(), modified(d))
        .map_err(|refusal| refused(d, refusal))?;
    range.map(|r| Window::of(r, d.size)).transpose()
}

/// With `x-amz-checksum-mode: ENABLED`, the SHA-256 of a whole object (the hash every
/// download is verified against) as S3 reports a full-object checksum, base64; nothing for
/// a range, or for an object written without DeltaGlider's hash.
fn full_object_sha256(
    d: &ObjectDetails,
    mode: Option<&ChecksumMode>,
    window: Option<Window>,
) -> Option<String> {
    let enabled = mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    if !enabled || window.is_some() {
        return None;
    }
    let hex = d
        .sha256
        .as_deref()
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    (bytes.len() == 32).then(|| base64_simd::STANDARD.encode_to_string(bytes))
}

/// Every object is served as one part (parts are not kept apart once stored, and its
/// entity tag is no multipart tag): `partNumber=1` is the whole object, any other part
/// does not exist.
fn only_part(part_number: Option<PartNumber>, range: Option<&Range>) -> S3Result<()> {
    match (part_number, range) {
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(s3s::s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (Some(1), None) => Ok(()),
        (Some(n), None) if !(1..=10_000).contains(&n) => Err(s3s::s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )),
        (Some(_), None) => Err(s3s::s3_error!(
            InvalidPart,
            "The requested partnumber is not satisfiable"
        )),
    }
}

/// A refused condition; a 304 still says which version the client has (`ETag`,
/// `Last-Modified`), as RFC 9110 asks.
fn refused(d: &ObjectDetails, refusal: Refusal) -> s3s::S3Error {
    let mut error = s3s::S3Error::from(refusal);
    if refusal == Refusal::NotModified {
        let mut headers = hyper::HeaderMap::new();
        let etag = d
            .etag
            .as_deref()
            .map(|t| format!("\"{}\"", t.trim_matches('"')));
        if let Some(value) = etag.and_then(|t| hyper::header::HeaderValue::from_str(&t).ok()) {
            headers.insert(hyper::header::ETAG, value);
        }
        let date = modified(d).map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        if let Some(value) = date.and_then(|t| hyper::header::HeaderValue::from_str(&t).ok()) {
            headers.insert(hyper::header::LAST_MODIFIED, value);
        }
        error.set_headers(headers);
    }
    error
}

pub(crate) async fn head_object(
    client: &Client,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let i = req.input;
    only_part(i.part_number, i.range.as_ref())?;
    let details = client
        .head_object(&i.bucket, &i.key)
        .await
        .map_err(s3_error)?;
    let conditions = Preconditions {
        if_match: i.if_match,
        if_none_match: i.if_none_match,
        if_modified_since: i.if_modified_since,
        if_unmodified_since: i.if_unmodified_since,
    };
    let window = decide(&details, conditions, i.range.as_ref())?;
    let d = describe(&details);
    let shown = window.unwrap_or_else(|| Window::all(details.size));
    let checksum_sha256 = full_object_sha256(&details, i.checksum_mode.as_ref(), window);
    let output = HeadObjectOutput {
        checksum_type: checksum_sha256
            .is_some()
            .then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        checksum_sha256,
        accept_ranges: Some("bytes".into()),
        content_length: Some(shown.len() as i64),
        content_range: window.map(|w| w.content_range()),
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        content_type: d.content_type,
        metadata: d.metadata,
        cache_control: d.cache_control,
        content_disposition: d.content_disposition,
        content_encoding: d.content_encoding,
        content_language: d.content_language,
        expires: d.expires,
        ..Default::default()
    };
    let mut response = S3Response::new(output);
    if window.is_some() {
        response.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}

pub(crate) async fn get_object(
    client: &Client,
    copies: &RebuiltCopies,
    metrics: &Arc<Metrics>,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let i = req.input;
    only_part(i.part_number, i.range.as_ref())?;
    let checksum = i.checksum_mode.as_ref();
    let conditions = Preconditions {
        if_match: i.if_match,
        if_none_match: i.if_none_match,
        if_modified_since: i.if_modified_since,
        if_unmodified_since: i.if_unmodified_since,
    };
    // A range of a delta comes from its verified rebuilt copy, rebuilt once for all ranges;
    // a range of an object stored whole, from the backend.
    if let Some(range) = &i.range {
        let mut details = client
            .head_object(&i.bucket, &i.key)
            .await
            .map_err(s3_error)?;
        // Stored whole: the range is read from the backend, as stored, from the version
        // the answer's headers describe (replaced meanwhile, it is described again).
        let mut attempts = 0;
        while details.stored_as != StoredAs::Delta {
            let window = decide(&details, conditions.clone(), Some(range))?;
            let shown = window.unwrap_or_else(|| Window::all(details.size));
            match client
                .get_whole_object_range(&details, shown.start..shown.end)
                .await
            {
                Ok(bytes) => {
                    let body =
                        download::body(bytes, Window::all(shown.len()), Some(Arc::clone(metrics)));
                    return Ok(respond(&details, window, checksum, body));
                }
                Err(deltaglider::Error::ObjectChanged { .. }) if attempts < 3 => {
                    attempts += 1;
                    details = client
                        .head_object(&i.bucket, &i.key)
                        .await
                        .map_err(s3_error)?;
                }
                Err(e) => return Err(s3_error(e)),
            }
        }
        if copies.admits(&details) {
            let window = decide(&details, conditions.clone(), Some(range))?;
            let shown = window.unwrap_or_else(|| Window::all(details.size));
            match copies
                .get_or_rebuild(client, &details, || metrics.range_rebuilt())
                .await
            {
                Ok(copy) => {
                    metrics.sent(shown.len());
                    return Ok(respond(&details, window, checksum, copy.body(shown)));
                }
                // Changed since the HEAD: served as any GET, from what is there now.
                Err(NoCopy::Changed) => {}
                Err(NoCopy::Failed(e)) => return Err(e),
            }
        }
    }
    let object = client
        .get_object(&i.bucket, &i.key)
        .await
        .map_err(s3_error)?;
    let window = decide(&object.details, conditions, i.range.as_ref())?;
    let sent = window.unwrap_or_else(|| Window::all(object.details.size));
    let body = download::body(object.body, sent, Some(Arc::clone(metrics)));
    Ok(respond(&object.details, window, checksum, body))
}

/// A GET's answer: the object's headers, `window` of its bytes (206) or all of them.
fn respond(
    details: &ObjectDetails,
    window: Option<Window>,
    checksum_mode: Option<&ChecksumMode>,
    body: StreamingBlob,
) -> S3Response<GetObjectOutput> {
    let d = describe(details);
    let checksum_sha256 = full_object_sha256(details, checksum_mode, window);
    let sent = window.unwrap_or_else(|| Window::all(details.size));
    let output = GetObjectOutput {
        checksum_type: checksum_sha256
            .is_some()
            .then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        checksum_sha256,
        accept_ranges: Some("bytes".into()),
        body: Some(body),
        content_length: Some(sent.len() as i64),
        content_range: window.map(|w| w.content_range()),
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        content_type: d.content_type,
        metadata: d.metadata,
        cache_control: d.cache_control,
        content_disposition: d.content_disposition,
        content_encoding: d.content_encoding,
        content_language: d.content_language,
        expires: d.expires,
        ..Default::default()
    };
    let mut response = S3Response::new(output);
    if window.is_some() {
        response.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    response
}
