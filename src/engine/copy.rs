//! Copying between locations in the store: deltas are rebuilt and stored again against the
//! destination's reference (delta bytes mean nothing outside their deltaspace); objects
//! stored whole that stay whole are copied server-side, never downloaded.

use super::{Engine, PutReport, PutRequestOptions, StoredAs};
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::error::{Error, IoContext, Result};

impl Engine {
    /// Copies the logical object `s3://src_bucket/src_key` to `s3://dst_bucket/dst_key`.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        if let Some(reason) = deltaspace::reserved_key_reason(dst_key) {
            return Err(Error::InvalidKey {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                reason,
            });
        }
        if (src_bucket, src_key) == (dst_bucket, dst_key) {
            return Err(Error::InvalidKey {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                reason: "source and destination are the same object".into(),
            });
        }
        let resolved = self.resolve(src_bucket, src_key).await?;
        let name = deltaspace::file_name(dst_key);
        let stays_whole = resolved.stored_as != StoredAs::Delta
            && (options.no_delta || !self.settings.policy.is_eligible(name));
        if stays_whole {
            if !self.store.bucket_exists(dst_bucket).await? {
                return Err(Error::NoSuchBucket(dst_bucket.to_string()));
            }
            self.store
                .copy_object(src_bucket, &resolved.stored_key, dst_bucket, dst_key)
                .await?;
            let stale = format!("{dst_key}{DELTA_SUFFIX}");
            if self.store.head_object(dst_bucket, &stale).await?.is_some() {
                self.store.delete_object(dst_bucket, &stale).await?;
                self.remove_reference_if_unused(dst_bucket, deltaspace::of_key(dst_key))
                    .await?;
            }
            return Ok(PutReport {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                stored_key: dst_key.to_string(),
                stored_as: resolved.stored_as,
                created_reference: false,
                original_size: resolved.info.size,
                stored_size: resolved.info.size,
                sha256: resolved.meta.file_sha256.clone(),
                direct_reason: None,
            });
        }
        let scratch = tempfile::Builder::new()
            .prefix("deltaglider-copy-")
            .tempdir()
            .ctx(|| "cannot create a temporary directory".into())?;
        let local = scratch.path().join("object");
        self.get_to_file(src_bucket, src_key, &local).await?;
        self.put_file(&local, dst_bucket, dst_key, options).await
    }
}
