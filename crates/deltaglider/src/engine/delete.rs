//! Deleting logical objects, and the references nothing needs any more.

use std::collections::{BTreeSet, HashMap};

use futures::TryStreamExt;
use serde::Serialize;

use super::Engine;
use crate::deltaspace::{self, DELTA_SUFFIX};
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
        if deltaspace::is_reference_name(deltaspace::file_name(key)) {
            return Err(Error::InvalidKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason: "references are removed automatically with their last delta".into(),
            });
        }
        let mut deleted = Vec::new();
        for k in stored_forms(key) {
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
    /// Deletes the logical objects `keys` in batches of
    /// [`DELETE_BATCH`](crate::storage::DELETE_BATCH) stored keys (one S3 `DeleteObjects`
    /// request each), as [`Engine::delete`] would one by one: a key ending in `.delta` is
    /// that stored object alone, any other key is `<key>` and `<key>.delta`; a key naming a
    /// reference is refused. Absent keys are not errors (as with `DeleteObjects`).
    ///
    /// Then the reference of every deltaspace touched is removed by the deleter's rule if no
    /// delta needs it any more, once per deltaspace. A reference that cannot be checked (a
    /// failed listing, a `reference.bin` another tool wrote) is logged and left in place,
    /// for `purge`; it never fails the keys, which are gone. Each key's result says whether
    /// it is gone: a failed request fails the keys of its batch, and the next batch is tried.
    pub async fn delete_keys(&self, bucket: &str, keys: &[String]) -> Vec<KeyDeleted> {
        let names_reference = |key: &str| deltaspace::is_reference_name(deltaspace::file_name(key));
        let mut stored: Vec<String> = Vec::with_capacity(keys.len() * 2);
        for key in keys.iter().filter(|k| !names_reference(k)) {
            stored.extend(stored_forms(key));
        }
        // A key given twice (or as `a` and `a.delta`) is deleted once.
        let mut seen = std::collections::HashSet::new();
        stored.retain(|k| seen.insert(k.clone()));
        // Why each stored key is still there.
        let mut left: HashMap<String, Error> = HashMap::new();
        for batch in stored.chunks(crate::storage::DELETE_BATCH) {
            match self.store.delete_objects(bucket, batch).await {
                Ok(failures) => left.extend(failures.into_iter().map(|f| (f.key, f.error))),
                Err(e) => {
                    let why = crate::error::chain(&e);
                    left.extend(batch.iter().map(|k| {
                        (
                            k.clone(),
                            Error::storage("delete", bucket, k.clone(), why.clone()),
                        )
                    }));
                }
            }
        }
        let spaces: BTreeSet<&str> = keys
            .iter()
            .filter(|k| !names_reference(k))
            .map(|k| deltaspace::of_key(k))
            .collect();
        for space in spaces {
            // A deleter asks for no protection: a restore keeps the reference's own.
            let protection = crate::storage::StorageProtection::default();
            match self
                .remove_reference_if_unused(bucket, space, &protection)
                .await
            {
                Ok(_) => {}
                Err(e @ Error::InvalidMetadata { .. }) => {
                    tracing::debug!(%space, "reference left in place: {}", crate::error::chain(&e));
                }
                Err(e) => tracing::warn!(
                    "the reference of s3://{bucket}/{space} was not checked after the delete \
                     (`deltaglider purge` removes it once unused): {}",
                    crate::error::chain(&e)
                ),
            }
        }
        // What is left of a stored key is told to every key that names it: the error itself
        // to the first, its text to the others.
        let left_text: HashMap<String, String> = left
            .iter()
            .map(|(k, e)| (k.clone(), crate::error::chain(e)))
            .collect();
        keys.iter()
            .map(|key| {
                let refused = names_reference(key).then(|| Error::InvalidKey {
                    bucket: bucket.to_string(),
                    key: key.clone(),
                    reason: "references are removed automatically with their last delta".into(),
                });
                let error = refused.or_else(|| {
                    stored_forms(key).into_iter().find_map(|k| {
                        left.remove(&k).or_else(|| {
                            let why = left_text.get(&k)?;
                            Some(Error::storage("delete", bucket, k.clone(), why.clone()))
                        })
                    })
                });
                KeyDeleted {
                    key: key.clone(),
                    error,
                }
            })
            .collect()
    }

    /// Deletes every object in a bucket, references and internal objects included (used by
    /// `rb --force`), in batches, and aborts its unfinished multipart uploads, whose parts
    /// would otherwise outlive it or keep it from being deleted; returns how many stored
    /// objects were deleted.
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
        if let Some(uploads) = self.store.pending_uploads() {
            for u in uploads.list_pending_uploads(bucket, "").await? {
                uploads.abort_pending_upload(bucket, &u).await?;
            }
        }
        Ok(count)
    }
}

/// The stored keys of a logical key, as [`Engine::delete`] sees them: a `.delta` key is
/// that object alone (it may be another tool's object of that name), any other key may be
/// stored whole or as a delta.
fn stored_forms(key: &str) -> Vec<String> {
    if key.ends_with(DELTA_SUFFIX) {
        vec![key.to_string()]
    } else {
        vec![key.to_string(), format!("{key}{DELTA_SUFFIX}")]
    }
}
