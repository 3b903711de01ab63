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
    let output = HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(shown.len() as i64),
        content_range: window.map(|w| w.content_range()),
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        content_type: d.content_type,
        metadata: d.metadata,
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
    let conditions = Preconditions {
        if_match: i.if_match,
        if_none_match: i.if_none_match,
        if_modified_since: i.if_modified_since,
        if_unmodified_since: i.if_unmodified_since,
    };
    // A range of a delta comes from its verified rebuilt copy, rebuilt once for all ranges;
    // a range of an object stored whole, from the backend.
    if let Some(range) = &i.range {
        let details = client
            .head_object(&i.bucket, &i.key)
            .await
            .map_err(s3_error)?;
        if details.stored_as != StoredAs::Delta {
            // Stored whole: the range is read from the backend, as stored.
            let window = decide(&details, conditions, Some(range))?;
            let shown = window.unwrap_or_else(|| Window::all(details.size));
            let bytes = client
                .get_whole_object_range(&details, shown.start..shown.end)
                .await
                .map_err(s3_error)?;
            let body = download::body(bytes, Window::all(shown.len()), Some(Arc::clone(metrics)));
            return Ok(respond(&details, window, body));
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
                    return Ok(respond(&details, window, copy.body(shown)));
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
    Ok(respond(&object.details, window, body))
}

/// A GET's answer: the object's headers, `window` of its bytes (206) or all of them.
fn respond(
    details: &ObjectDetails,
    window: Option<Window>,
    body: StreamingBlob,
) -> S3Response<GetObjectOutput> {
    let d = describe(details);
    let sent = window.unwrap_or_else(|| Window::all(details.size));
    let output = GetObjectOutput {
        accept_ranges: Some("bytes".into()),
        body: Some(body),
        content_length: Some(sent.len() as i64),
        content_range: window.map(|w| w.content_range()),
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        content_type: d.content_type,
        metadata: d.metadata,
        ..Default::default()
    };
    let mut response = S3Response::new(output);
    if window.is_some() {
        response.status = Some(StatusCode::PARTIAL_CONTENT);
    }
    response
}
