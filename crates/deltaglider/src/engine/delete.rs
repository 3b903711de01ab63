//! Deleting logical objects, and the references nothing needs any more.

use std::collections::{BTreeSet, HashMap};

use futures::TryStreamExt;
use serde::Serialize;

use super::Engine;
use crate::deltaspace::{self, DELTA_SUFFIX, REFERENCE_NAME};
use crate::error::{Error, Result};
use crate::storage::{ListRequest, ObjectStoreExt};

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

/// What a batch delete did to one logical object.
#[derive(Debug)]
pub struct KeyDeleted {
    /// The logical key.
    pub key: String,
    /// Why (one of) its stored forms is still there; `None` when it is gone.
    pub error: Option<Error>,
}

impl Engine {
    /// The logical keys under `prefix` (each once, whichever forms it is stored in), in key
    /// order; references and DeltaGlider's internal objects are not among them.
    pub async fn logical_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut keys = std::collections::BTreeSet::new();
        let request = ListRequest {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        let mut pages = self.store.list_pages(bucket, request);
        while let Some(page) = pages.try_next().await? {
            for o in page.objects {
                if deltaspace::file_name(&o.key) == REFERENCE_NAME || deltaspace::is_hidden(&o.key)
                {
                    continue;
                }
                let logical = o.key.strip_suffix(DELTA_SUFFIX).unwrap_or(&o.key);
                keys.insert(logical.to_string());
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Deletes the logical objects `keys`, both stored forms of each, in batches of
    /// [`DELETE_BATCH`](crate::storage::DELETE_BATCH) stored keys (one S3 `DeleteObjects`
    /// request each); then removes, by the deleter's rule, the reference of every deltaspace
    /// touched that no delta needs any more (once per deltaspace, not once per delta).
    /// A request that fails as a whole is the error; keys the store refused one by one are
    /// reported in their [`KeyDeleted`].
    pub async fn delete_keys(&self, bucket: &str, keys: &[String]) -> Result<Vec<KeyDeleted>> {
        for key in keys {
            if deltaspace::file_name(key) == REFERENCE_NAME {
                return Err(Error::InvalidKey {
                    bucket: bucket.to_string(),
                    key: key.clone(),
                    reason: "references are removed automatically with their last delta".into(),
                });
            }
        }
        let logical: Vec<&str> = keys
            .iter()
            .map(|k| k.strip_suffix(DELTA_SUFFIX).unwrap_or(k))
            .collect();
        let stored: Vec<String> = logical
            .iter()
            .flat_map(|k| [k.to_string(), format!("{k}{DELTA_SUFFIX}")])
            .collect();
        let mut refused: HashMap<String, Error> = HashMap::new();
        for batch in stored.chunks(crate::storage::DELETE_BATCH) {
            for failure in self.store.delete_objects(bucket, batch).await? {
                let key = failure
                    .key
                    .strip_suffix(DELTA_SUFFIX)
                    .unwrap_or(&failure.key);
                refused.entry(key.to_string()).or_insert(failure.error);
            }
        }
        let spaces: BTreeSet<&str> = logical.iter().map(|k| deltaspace::of_key(k)).collect();
        for space in spaces {
            // A deleter asks for no protection: a restore keeps the reference's own.
            self.remove_reference_if_unused(
                bucket,
                space,
                &crate::storage::StorageProtection::default(),
            )
            .await?;
        }
        Ok(logical
            .into_iter()
            .map(|k| KeyDeleted {
                key: k.to_string(),
                error: refused.remove(k),
            })
            .collect())
    }

    /// Deletes every object in a bucket, references and internal objects included (used by
    /// `rb --force`), in batches; returns how many stored objects were deleted.
    pub async fn delete_everything(&self, bucket: &str) -> Result<usize> {
        let mut count = 0;
        let mut pages = self.store.list_pages(bucket, ListRequest::default());
        while let Some(page) = pages.try_next().await? {
            let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            if let Some(failure) = self
                .store
                .delete_objects(bucket, &keys)
                .await?
                .into_iter()
                .next()
            {
                return Err(failure.error);
            }
            count += keys.len();
        }
        Ok(count)
    }
}
