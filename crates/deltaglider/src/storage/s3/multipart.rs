//! Multipart uploads, and the unfinished ones.
//!
//! An upload that fails is aborted before the error is returned. One whose future is dropped
//! mid-way (a command cancelled by a signal, a client hanging up on `serve`) is aborted by a
//! task spawned from the drop, which [`PendingUploads::finish_aborts`] waits for. Only a
//! writer killed outright leaves an upload behind; `purge` lists and aborts those.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{S3Store, is_precondition_failed, storage_error, to_utc};
use crate::error::{Error, IoContext, Result};
use crate::storage::{PendingUpload, PendingUploads, PutOptions, PutOutcome};

/// Aborts its upload when dropped while still armed: the write was cancelled before it could
/// complete or abort the upload itself.
struct AbortOnDrop {
    client: Client,
    aborts: tokio_util::task::TaskTracker,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Without a runtime there is nothing to run the request on; `purge` finds the upload.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "multipart upload of s3://{}/{} left unfinished; `deltaglider purge` aborts it",
                self.bucket,
                self.key
            );
            return;
        };
        let abort = abort(
            self.client.clone(),
            std::mem::take(&mut self.bucket),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.upload_id),
        );
        self.aborts.spawn_on(
            async move {
                if let Err(e) = abort.await {
                    tracing::warn!("{e}; `deltaglider purge` aborts it later");
                }
            },
            &runtime,
        );
    }
}

async fn abort(client: Client, bucket: String, key: String, upload_id: String) -> Result<()> {
    match client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Already aborted (or completed): nothing left to free.
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(()),
        Err(e) => Err(storage_error(
            "abort the multipart upload of",
            &bucket,
            &key,
            e,
        )),
    }
}

impl S3Store {
    /// Uploads `path` in parts, `concurrency` at a time, reading each part from the file when
    /// it is sent (memory: about `part_size * concurrency`).
    pub(super) async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        size: u64,
        options: &PutOptions,
    ) -> Result<PutOutcome> {
        let mut part_size = self.limits.part_size.max(5 << 20);
        while size.div_ceil(part_size) > 10_000 {
            part_size *= 2;
        }
        let create = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key);
        let create = with_put_options!(create, options);
        let upload = create
            .send()
            .await
            .map_err(|e| storage_error("upload", bucket, key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            aborts: self.aborts.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.clone(),
            armed: true,
        };
        let result = self
            .send_parts(bucket, key, path, size, part_size, &upload_id, options)
            .await;
        if !matches!(result, Ok(PutOutcome::Stored { .. })) {
            // Never leave invisible parts billed behind a failed upload.
            let aborted = abort(
                self.client.clone(),
                bucket.to_string(),
                key.to_string(),
                upload_id,
            )
            .await;
            if let Err(e) = aborted {
                tracing::warn!("{e}; `deltaglider purge` aborts it later");
            }
        }
        // Armed until here: a write cancelled during its own abort still aborts (twice at
        // worst; an upload already gone is no error).
        guard.armed = false;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        size: u64,
        part_size: u64,
        upload_id: &str,
        options: &PutOptions,
    ) -> Result<PutOutcome> {
        let parts: Vec<CompletedPart> = futures::stream::iter(0..size.div_ceil(part_size))
            .map(|i| async move {
                let offset = i * part_size;
                let len = part_size.min(size - offset);
                let mut f = tokio::fs::File::open(path)
                    .await
                    .ctx(|| format!("cannot read {}", path.display()))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .ctx(|| format!("cannot read {}", path.display()))?;
                let mut buf = vec![0u8; len as usize];
                f.read_exact(&mut buf)
                    .await
                    .ctx(|| format!("cannot read {} (did it shrink?)", path.display()))?;
                let part_number = i as i32 + 1;
                fail::fail_point!("s3::before_part_upload", |_| Err(Error::io(
                    "failpoint s3::before_part_upload",
                    std::io::Error::other("injected")
                )));
                let out = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| storage_error("upload part of", bucket, key, e))?;
                // Tests: `return` holds the upload here for good, without blocking a thread,
                // as a writer stalled or about to be killed would be.
                #[cfg(feature = "failpoints")]
                if fail::eval("s3::after_part_upload", |_| ()).is_some() {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Error>(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                )
            })
            .buffered(self.limits.concurrency.max(1))
            .try_collect()
            .await?;
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if options.if_none_match {
            complete = complete.if_none_match("*");
        }
        match complete.send().await {
            Ok(out) => Ok(PutOutcome::Stored {
                etag: out.e_tag().map(str::to_string),
            }),
            Err(e) if is_precondition_failed(&e) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(storage_error("complete upload of", bucket, key, e)),
        }
    }
}

#[async_trait]
impl PendingUploads for S3Store {
    async fn list_pending_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| storage_error("list the multipart uploads of", bucket, prefix, e))?;
            for u in out.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                found.push(PendingUpload {
                    key: key.to_string(),
                    upload_id: id.to_string(),
                    initiated: to_utc(u.initiated()),
                });
            }
            let next = (
                out.next_key_marker().filter(|m| !m.is_empty()),
                out.next_upload_id_marker().filter(|m| !m.is_empty()),
            );
            match next {
                (Some(k), id) if out.is_truncated() == Some(true) => {
                    key_marker = Some(k.to_string());
                    id_marker = id.map(str::to_string);
                }
                _ => return Ok(found),
            }
        }
    }

    async fn abort_pending_upload(&self, bucket: &str, upload: &PendingUpload) -> Result<()> {
        abort(
            self.client.clone(),
            bucket.to_string(),
            upload.key.clone(),
            upload.upload_id.clone(),
        )
        .await
    }

    async fn finish_aborts(&self, within: Duration) -> bool {
        self.aborts.close();
        let done = tokio::time::timeout(within, self.aborts.wait())
            .await
            .is_ok();
        self.aborts.reopen();
        done
    }
}
