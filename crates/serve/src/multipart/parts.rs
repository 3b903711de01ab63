//! UploadPart and UploadPartCopy: a part streamed to a private spool file, hashed as it is
//! written (its MD5 is its entity tag), and recorded only once it is whole.

use std::io;
use std::path::Path;

use chrono::Utc;
use deltaglider::Client;
use futures::TryStreamExt;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{MAX_PART_NUMBER, MAX_PART_SIZE, Part, Phase, Upload, Uploads, no_such_upload};
use crate::conditions::Window;
use crate::copy::{copy_source, source_preconditions};
use crate::download;
use crate::error::s3_error;
use crate::metrics::Metrics;
use crate::time::timestamp;
use crate::upload::{CheckedBody, Verdict, declared, trailer_names};

/// Bytes read per write to the spool.
const CHUNK: usize = 256 * 1024;

fn check_part_number(number: i32) -> S3Result<()> {
    if !(1..=MAX_PART_NUMBER).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        ));
    }
    Ok(())
}

fn too_large() -> S3Error {
    s3_error!(
        EntityTooLarge,
        "Your proposed upload exceeds the maximum allowed part size of {MAX_PART_SIZE} bytes"
    )
}

pub(crate) async fn upload_part(
    uploads: &Uploads,
    metrics: &Metrics,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let trailer_names = trailer_names(&req.headers);
    let trailers = req.trailing_headers;
    let i = req.input;
    let upload = uploads.get(&i.bucket, &i.key, &i.upload_id)?;
    check_part_number(i.part_number)?;
    let expected = i.content_length.and_then(|n| u64::try_from(n).ok());
    if expected.is_some_and(|n| n > MAX_PART_SIZE) {
        return Err(too_large());
    }
    // The same fields in a PutObject and an UploadPart.
    let declared = declared!(i, trailer_names);
    let blob = crate::upload::body_or_empty(i.body);
    let (body, verdict) = CheckedBody::new(blob, declared, trailers)?;
    let written = spool_part(uploads, &upload, i.part_number, body, expected, |e| {
        s3_error!(e, IncompleteBody, "the part's body ended early")
    })
    .await;
    let verdict = Verdict::take(&verdict);
    if let Some(m) = verdict.mismatch {
        return Err(m.into());
    }
    let part = written?;
    metrics.received(part.size);
    let c = verdict.verified;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        ..Default::default()
    }))
}

pub(crate) async fn upload_part_copy(
    client: &Client,
    uploads: &Uploads,
    metrics: &Metrics,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let i = req.input;
    let upload = uploads.get(&i.bucket, &i.key, &i.upload_id)?;
    check_part_number(i.part_number)?;
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let object = client
        .get_object(src_bucket, src_key)
        .await
        .map_err(s3_error)?;
    source_preconditions(
        &object.details,
        i.copy_source_if_match,
        i.copy_source_if_none_match,
        i.copy_source_if_modified_since,
        i.copy_source_if_unmodified_since,
    )?;
    let size = object.details.size;
    let window = match &i.copy_source_range {
        None => Window::all(size),
        Some(header) => {
            let range = Range::parse(header).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last"
                )
            })?;
            let window = Window::of(&range, size)?;
            // Unlike a GET's, a copy's range must lie inside the source.
            if let Range::Int {
                last: Some(last), ..
            } = range
                && last >= size
            {
                return Err(s3_error!(
                    InvalidRange,
                    "The x-amz-copy-source-range {header} is past the source's {size} bytes"
                ));
            }
            window
        }
    };
    if window.len() > MAX_PART_SIZE {
        return Err(too_large());
    }
    // The source is rebuilt and verified to its end whatever the window: a part is never
    // cut from an object that does not hash to its recorded SHA-256.
    let blob = download::body(object.body, window, None);
    let body = tokio_util::io::StreamReader::new(blob.map_err(io::Error::other));
    let part = spool_part(
        uploads,
        &upload,
        i.part_number,
        body,
        Some(window.len()),
        |e| s3_error!(e, InternalError, "the copy source could not be read intact"),
    )
    .await?;
    metrics.received(part.size);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Writes `body` to a new spool file and records it as part `number` of `upload`,
/// replacing an earlier part of that number. Nothing is recorded unless the whole body
/// was written (and was `expected` bytes long, when that is known).
async fn spool_part(
    uploads: &Uploads,
    upload: &Upload,
    number: i32,
    body: impl AsyncRead + Unpin,
    expected: Option<u64>,
    body_error: fn(io::Error) -> S3Error,
) -> S3Result<Part> {
    let path = uploads.part_path(upload, number);
    let receiving = Receiving::begin(upload);
    let written = write_part(&path, body, expected, body_error).await;
    drop(receiving);
    let (size, etag) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
    };
    let part = Part {
        path: path.clone(),
        size,
        etag,
        last_modified: Utc::now(),
    };
    let mut state = upload.state();
    // Aborted, or being completed, while the part was sent: it is not part of anything.
    if state.phase != Phase::Open {
        drop(state);
        let _ = std::fs::remove_file(&path);
        return Err(no_such_upload());
    }
    if let Some(replaced) = state.parts.insert(number, part.clone()) {
        let _ = std::fs::remove_file(&replaced.path);
    }
    Ok(part)
}

/// A part being received: its upload is not idle until it ends, however it ends (its
/// request may also be dropped halfway).
struct Receiving<'a>(&'a Upload);

impl<'a> Receiving<'a> {
    fn begin(upload: &'a Upload) -> Self {
        let mut state = upload.state();
        state.parts_in_flight += 1;
        state.active = std::time::Instant::now();
        Receiving(upload)
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.parts_in_flight = state.parts_in_flight.saturating_sub(1);
        state.active = std::time::Instant::now();
    }
}

/// Copies `body` into `path`: its size and hex MD5.
async fn write_part(
    path: &Path,
    mut body: impl AsyncRead + Unpin,
    expected: Option<u64>,
    body_error: fn(io::Error) -> S3Error,
) -> S3Result<(u64, String)> {
    let spool_error = |e: io::Error| s3_error!(e, InternalError, "cannot spool the part");
    let mut file = tokio::fs::File::create(path).await.map_err(spool_error)?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // The body's own failure (a client gone, a source that did not verify): the
            // caller words it.
            Err(e) => return Err(body_error(e)),
        };
        size += n as u64;
        if size > MAX_PART_SIZE {
            return Err(too_large());
        }
        md5.update(&buf[..n]);
        file.write_all(&buf[..n]).await.map_err(spool_error)?;
    }
    if expected.is_some_and(|e| e != size) {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header"
        ));
    }
    file.flush().await.map_err(spool_error)?;
    let etag = md5
        .finalize()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, etag))
}
