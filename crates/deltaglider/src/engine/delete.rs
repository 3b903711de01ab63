//! Deleting logical objects, and the references nothing needs any more.

use serde::Serialize;

use super::Engine;
use crate::deltaspace::{self, DELTA_SUFFIX, REFERENCE_NAME};
use crate::error::{Error, Result};
use crate::storage::ListRequest;

/// What a delete removed.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteReport {
    /// Bucket deleted from.
    pub bucket: String,
    /// The logical key deleted.
    pub key: String,
    /// Stored keys removed for this logical object.
    pub deleted: Vec<String>,
    /// The reference removed because its last delta went.
    pub reference_removed: Option<String>,
}

impl Engine {
    /// Deletes the logical object `key` (`<key>` and/or `<key>.delta`); if that removed the
    /// last delta of its deltaspace, removes the deltaspace's `reference.bin` too.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<DeleteReport> {
        if deltaspace::file_name(key) == REFERENCE_NAME {
            return Err(Error::InvalidKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason: "references are removed automatically with their last delta".into(),
            });
        }
        let candidates: Vec<String> = if key.ends_with(DELTA_SUFFIX) {
            vec![key.to_string()]
        } else {
            vec![key.to_string(), format!("{key}{DELTA_SUFFIX}")]
        };
        let mut deleted = Vec::new();
        for k in candidates {
            if self.store.head_object(bucket, &k).await?.is_some() {
                self.store.delete_object(bucket, &k).await?;
                deleted.push(k);
            }
        }
        if deleted.is_empty() {
            if !self.store.bucket_exists(bucket).await? {
                return Err(Error::NoSuchBucket(bucket.to_string()));
            }
            return Err(Error::NotFound {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        let reference_removed = if deleted.iter().any(|k| k.ends_with(DELTA_SUFFIX)) {
            // A deleter asks for no protection: a restore keeps the reference's own.
            self.remove_reference_if_unused(
                bucket,
                deltaspace::of_key(key),
                &crate::storage::StorageProtection::default(),
            )
            .await?
        } else {
            None
        };
        Ok(DeleteReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            deleted,
            reference_removed,
        })
    }
}

impl Engine {
    /// Deletes every object in a bucket (used by `rb --force`); returns how many.
    pub async fn delete_everything(&self, bucket: &str) -> Result<usize> {
        let mut count = 0;
        loop {
            let page = self
                .store
                .list_objects(bucket, &ListRequest::default())
                .await?;
            if page.objects.is_empty() {
                return Ok(count);
            }
            for o in page.objects {
                self.store.delete_object(bucket, &o.key).await?;
                count += 1;
            }
        }
    }
}
