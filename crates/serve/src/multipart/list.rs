//! ListParts and ListMultipartUploads, from this server's uploads in progress.

use std::collections::BTreeSet;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Uploads;
use crate::time::timestamp;

/// S3's default and largest page.
const PAGE: i32 = 1000;

fn page_size(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(PAGE as usize),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "the page size must not be negative"
        )),
        Some(n) => Ok(n.min(PAGE) as usize),
    }
}

pub(crate) async fn list_parts(
    uploads: &Uploads,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let upload = uploads.get(&i.bucket, &i.key, &i.upload_id)?;
    let max = page_size(i.max_parts)?;
    let after = i.part_number_marker.unwrap_or(0);
    let state = upload.state();
    let mut rest = state.parts.range(after.saturating_add(1)..);
    let parts: Vec<Part> = rest
        .by_ref()
        .take(max)
        .map(|(number, p)| Part {
            part_number: Some(*number),
            e_tag: Some(ETag::Strong(p.etag.clone())),
            size: Some(p.size as i64),
            last_modified: Some(timestamp(p.last_modified)),
            ..Default::default()
        })
        .collect();
    // A page of none is not a truncated listing (a client would ask for it forever).
    let truncated = max > 0 && rest.next().is_some();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: parts.last().and_then(|p| p.part_number),
        is_truncated: Some(truncated),
        parts: Some(parts),
        ..Default::default()
    }))
}

pub(crate) async fn list_multipart_uploads(
    uploads: &Uploads,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let max = page_size(i.max_uploads)?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = i.key_marker.clone().unwrap_or_default();
    let id_marker = i.upload_id_marker.clone();
    // After the markers: keys past the key marker, or, with an upload-id marker, the later
    // uploads of the marker's key too.
    let after_markers = |key: &str, id: &str, initiated| {
        if key_marker.is_empty() {
            return true;
        }
        match key.cmp(key_marker.as_str()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => id_marker.as_deref().is_some_and(|marker| {
                let marker_at = uploads_initiated(uploads, &i.bucket, key, marker);
                marker_at.is_some_and(|m| (initiated, id) > (m, marker))
            }),
        }
    };
    let mut listed = Vec::new();
    let mut prefixes = BTreeSet::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for upload in uploads.of_bucket(&i.bucket) {
        if !upload.key.starts_with(&prefix)
            || !after_markers(&upload.key, &upload.id, upload.initiated)
        {
            continue;
        }
        let common = delimiter.as_deref().and_then(|d| {
            upload.key[prefix.len()..]
                .find(d)
                .map(|at| upload.key[..prefix.len() + at + d.len()].to_string())
        });
        if max == 0 {
            break;
        }
        if listed.len() + prefixes.len() >= max {
            let new_prefix = common.as_ref().is_some_and(|c| !prefixes.contains(c));
            if common.is_none() || new_prefix {
                truncated = true;
                break;
            }
            continue;
        }
        match common {
            Some(c) => {
                prefixes.insert(c);
            }
            None => listed.push(MultipartUpload {
                key: Some(upload.key.clone()),
                upload_id: Some(upload.id.clone()),
                initiated: Some(timestamp(upload.initiated)),
                ..Default::default()
            }),
        }
        last = Some((upload.key.clone(), upload.id.clone()));
    }
    let (next_key, next_id) = match (truncated, last) {
        (true, Some((k, id))) => (Some(k), Some(id)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        delimiter: i.delimiter,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(listed),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// When the upload `id` of `bucket`/`key` was initiated, if it is still open.
fn uploads_initiated(
    uploads: &Uploads,
    bucket: &str,
    key: &str,
    id: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    uploads.get(bucket, key, id).ok().map(|u| u.initiated)
}
