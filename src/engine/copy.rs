//! Copying between locations in the store: deltas are rebuilt and stored again against the
//! destination's reference (delta bytes mean nothing outside their deltaspace); objects
//! stored whole that stay whole are copied server-side, never downloaded.

use super::put::Form;
use super::source::Source;
use super::{Engine, PutReport, PutRequestOptions, StoredAs};
use crate::deltaspace;
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
            let copied_at = super::now();
            self.store
                .copy_object(src_bucket, &resolved.stored_key, dst_bucket, dst_key)
                .await?;
            // A server-side copy keeps the source's dg-created-at; the copy is newer than
            // any delta form already at the destination all the same.
            self.remove_other_form(dst_bucket, dst_key, Form::Direct, copied_at)
                .await?;
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
        self.check_upload_target(dst_bucket, dst_key).await?;
        // Rebuilt and verified into an unnamed temporary file, which is then the upload's
        // snapshot: nothing named is left behind if the process dies.
        let file = tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
        let (file, sha256) = self
            .rebuild_verified(src_bucket, src_key, &resolved, file)
            .await?;
        let size = file
            .metadata()
            .ctx(|| "cannot read the rebuilt object".into())?
            .len();
        let source = Source::from_verified(file, name, sha256, size);
        self.put_source(dst_bucket, dst_key, &source, options).await
    }
}
