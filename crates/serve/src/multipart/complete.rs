//! CompleteMultipartUpload: the listed parts checked as S3 checks them, then read in order
//! as one body and stored through the library like any PUT (as a delta when eligible).
//!
//! Storing a large object takes a while; the response is S3's: `200 OK` at once, then
//! whitespace while the object is stored, then the result or the error as XML, so that
//! clients do not time out.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use deltaglider::storage::ObjectSettings;
use deltaglider::{Client, PutRequestOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncRead, ReadBuf};

use super::{Completed, MIN_PART_SIZE, Phase, Upload, Uploads};
use crate::error::s3_error;
use crate::metrics::Metrics;

const OPERATION: &str = "CompleteMultipartUpload";

/// The completion, counted in the metrics by its real outcome: its answer comes in the
/// body, after the 200 and the whitespace that keeps the connection alive, and the store
/// it waits for is counted when it ends, even if the client has hung up by then.
pub(crate) async fn complete_multipart_upload(
    client: &Client,
    uploads: &Arc<Uploads>,
    max_object_size: Option<u64>,
    metrics: &Arc<Metrics>,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let start = std::time::Instant::now();
    let response = complete(client, uploads, max_object_size, metrics, req, start).await;
    match &response {
        Err(e) => metrics.record(OPERATION, Err(e), start),
        // A retried completion answered from memory: no store to wait for.
        Ok(r) if r.output.future.is_none() => metrics.record(OPERATION, Ok(()), start),
        Ok(_) => {}
    }
    response
}

async fn complete(
    client: &Client,
    uploads: &Arc<Uploads>,
    max_object_size: Option<u64>,
    metrics: &Arc<Metrics>,
    req: S3Request<CompleteMultipartUploadInput>,
    start: std::time::Instant,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    if i.if_match.is_some() || i.if_none_match.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "conditional writes (If-Match, If-None-Match) are not supported"
        ));
    }
    let upload = match uploads.get(&i.bucket, &i.key, &i.upload_id) {
        Ok(upload) => upload,
        Err(e) => {
            return match uploads.completed(&i.bucket, &i.key, &i.upload_id) {
                Some(done) => Ok(S3Response::new(answer(done))),
                None => Err(e),
            };
        }
    };
    let listed: Vec<(i32, String)> = i
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let etag = p.e_tag.map(|t| t.value().to_string()).unwrap_or_default();
            (p.part_number.unwrap_or(0), etag)
        })
        .collect();
    let parts = claim_parts(&upload, &listed)?;
    let total: u64 = parts.iter().map(|(_, size)| size).sum();
    if i.mpu_object_size
        .is_some_and(|n| u64::try_from(n).ok() != Some(total))
    {
        reopen(&upload);
        return Err(s3_error!(
            InvalidRequest,
            "The provided x-amz-mp-object-size header ({}) does not match the parts' total \
             size ({total})",
            i.mpu_object_size.unwrap_or_default()
        ));
    }
    if let Err(e) = crate::put::check_size(max_object_size, Some(total)) {
        reopen(&upload);
        return Err(e);
    }
    let (client, uploads, metrics) = (client.clone(), Arc::clone(uploads), Arc::clone(metrics));
    let counter = Arc::clone(&metrics);
    let (bucket, key) = (i.bucket, i.key);
    let store = async move {
        let stored = store(&client, &upload, parts, total).await;
        if stored.is_ok() {
            // Before the HEAD below: a retry finds the completion even if that fails.
            uploads.remember(
                &upload.id,
                Completed {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    etag: None,
                },
            );
        }
        finish(&uploads, &upload, stored.is_ok());
        metrics.stored(&stored?);
        // The entity tag as later HEADs and listings report it.
        let details = client.head_object(&bucket, &key).await.map_err(s3_error)?;
        tracing::debug!(%bucket, %key, size = total, "multipart upload completed");
        let done = Completed {
            bucket,
            key,
            etag: details.etag,
        };
        uploads.remember(&upload.id, done.clone());
        Ok(answer(done))
    };
    // Its own task: a client that hangs up while the object is stored does not cancel the
    // store halfway (the upload would stay completing, its parts on disk).
    let counted = async move {
        let answered = store.await;
        counter.record(OPERATION, answered.as_ref().map(|_| ()), start);
        answered
    };
    let stored = tokio::spawn(counted);
    let answer = async move {
        stored
            .await
            .map_err(|e| s3_error!(e, InternalError, "the completion's task failed"))?
    };
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        future: Some(Box::pin(answer)),
        ..Default::default()
    }))
}

/// A completion's answer.
fn answer(done: Completed) -> CompleteMultipartUploadOutput {
    CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", done.bucket, done.key)),
        e_tag: done
            .etag
            .map(|t| ETag::Strong(t.trim_matches('"').to_string())),
        bucket: Some(done.bucket),
        key: Some(done.key),
        ..Default::default()
    }
}

/// Checks `listed` against the spooled parts and, when it is a valid completion, moves the
/// upload to completing: the files (with their sizes) to read, in order.
fn claim_parts(upload: &Upload, listed: &[(i32, String)]) -> S3Result<Vec<(PathBuf, u64)>> {
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part in the CompleteMultipartUpload request"
        ));
    }
    let mut state = upload.state();
    if state.phase != Phase::Open {
        return Err(super::no_such_upload());
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(s3_error!(
            InvalidPartOrder,
            "The list of parts was not in ascending order. The parts list must be specified \
             in order by part number."
        ));
    }
    let mut files = Vec::with_capacity(listed.len());
    for (index, (number, etag)) in listed.iter().enumerate() {
        let part = state
            .parts
            .get(number)
            .filter(|p| p.etag == etag.trim_matches('"'))
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found (part {number}). \
                     The part may not have been uploaded, or the specified entity tag may not \
                     match the part's entity tag."
                )
            })?;
        let last = index + 1 == listed.len();
        if !last && part.size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size: part {number} \
                 is {} bytes; every part but the last must be at least {MIN_PART_SIZE}",
                part.size
            ));
        }
        files.push((part.path.clone(), part.size));
    }
    state.phase = Phase::Completing;
    Ok(files)
}

/// A completion that failed before it stored anything: the upload takes parts and
/// completions again.
fn reopen(upload: &Upload) {
    let mut state = upload.state();
    if state.phase == Phase::Completing {
        state.phase = Phase::Open;
        // Idle from now on, not from its last part: the client may retry.
        state.active = std::time::Instant::now();
    }
}

/// After the store: a stored upload is forgotten and its parts removed; a failed one is
/// open again (S3 lets a client retry the completion), unless it was aborted meanwhile.
fn finish(uploads: &Uploads, upload: &Upload, stored: bool) {
    let aborted = upload.state().phase == Phase::Aborted;
    if stored || aborted {
        uploads.forget(&upload.id);
        upload.remove_parts();
    } else {
        reopen(upload);
    }
}

async fn store(
    client: &Client,
    upload: &Upload,
    parts: Vec<(PathBuf, u64)>,
    total: u64,
) -> S3Result<deltaglider::PutReport> {
    let mut options = PutRequestOptions::default().object(ObjectSettings {
        headers: upload.headers.clone(),
        ..Default::default()
    });
    if let Some(content_type) = &upload.content_type {
        options = options.content_type(content_type.clone());
    }
    for (k, v) in &upload.metadata {
        options = options.user_metadata(k.clone(), v.clone());
    }
    client
        .put_object_stream(
            &upload.bucket,
            &upload.key,
            Concatenated::new(parts),
            "the multipart upload",
            Some(total),
            &options,
        )
        .await
        .map_err(s3_error)
}

/// The part files read one after another, each opened only when it is reached (an
/// upload of 10,000 parts does not hold 10,000 descriptors).
struct Concatenated {
    pending: VecDeque<(PathBuf, u64)>,
    state: Reading,
}

enum Reading {
    Idle,
    Opening(
        Pin<Box<dyn Future<Output = io::Result<tokio::fs::File>> + Send>>,
        u64,
    ),
    Open(tokio::io::Take<tokio::fs::File>, u64),
}

impl Concatenated {
    fn new(parts: Vec<(PathBuf, u64)>) -> Self {
        Concatenated {
            pending: parts.into(),
            state: Reading::Idle,
        }
    }
}

impl AsyncRead for Concatenated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        use tokio::io::AsyncReadExt as _;
        loop {
            let this = &mut *self;
            match &mut this.state {
                Reading::Idle => match this.pending.pop_front() {
                    None => return Poll::Ready(Ok(())),
                    Some((path, size)) => {
                        this.state = Reading::Opening(Box::pin(tokio::fs::File::open(path)), size);
                    }
                },
                Reading::Opening(open, size) => {
                    let file = std::task::ready!(open.as_mut().poll(cx))?;
                    let size = *size;
                    this.state = Reading::Open(file.take(size), size);
                }
                Reading::Open(file, size) => {
                    let before = buf.filled().len();
                    std::task::ready!(Pin::new(&mut *file).poll_read(cx, buf))?;
                    if buf.filled().len() > before || buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // A part file shorter than recorded was changed behind the server's back.
                    if file.limit() > 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("a spooled part is shorter than its {size} bytes"),
                        )));
                    }
                    this.state = Reading::Idle;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn parts_are_read_in_order_as_one_body() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Vec::new();
        let mut expected = Vec::new();
        for (n, len) in [(1, 300_000usize), (2, 0), (3, 17), (4, 70_000)] {
            let data: Vec<u8> = (0..len).map(|i| (i * n % 251) as u8).collect();
            let path = dir.path().join(n.to_string());
            std::fs::write(&path, &data).unwrap();
            expected.extend_from_slice(&data);
            parts.push((path, len as u64));
        }
        let mut out = Vec::new();
        Concatenated::new(parts)
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn a_part_shorter_than_recorded_fails_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1");
        std::fs::write(&path, b"short").unwrap();
        let mut out = Vec::new();
        let e = Concatenated::new(vec![(path, 10)])
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
