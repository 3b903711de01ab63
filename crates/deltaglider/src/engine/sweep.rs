//! `purge`'s work on references: removing the ones no delta uses, and settling what deleters
//! left behind (retired copies, leases).
//!
//! Each reference's leftovers are settled while holding that reference's deleter lease
//! (`lease.rs`): a deleter still at work holds it, so its retired copy is never taken for a
//! dead deleter's, and taking the lease is what removes the leases of deleters that died.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use super::Engine;
use super::lease::parse_lease_key;
use super::reference::{LiveReference, parse_retired_key};
use crate::deltaspace::{self, INTERNAL_PREFIX};
use crate::error::Result;
use crate::metadata::DgMetadata;
use crate::storage::{ListRequest, ObjectInfo, ObjectStoreExt, StorageProtection};

/// What `purge` did to references.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferenceSweep {
    /// References that no delta used, removed.
    pub orphans_removed: Vec<String>,
    /// References put back from a retired copy because deltas still needed them.
    pub restored: Vec<String>,
    /// Retired copies removed (no delta needed them, or the reference is back).
    pub retired_removed: usize,
    /// Retired copies kept because a delta still needs them and another reference took the
    /// original's place; downloads of those deltas read the retired copy.
    pub retired_kept: Vec<String>,
}

/// A retired copy found by the sweep, with the hash its key records.
struct RetiredCopy {
    info: ObjectInfo,
    sha256: String,
}

impl Engine {
    /// Removes references no delta uses, and settles retired copies: put back where deltas
    /// need them, removed where nothing does. Retired copies younger than `grace` are left
    /// alone, and so are those of a reference whose deleter is still at work.
    pub async fn sweep_references(&self, bucket: &str, grace: Duration) -> Result<ReferenceSweep> {
        let mut sweep = ReferenceSweep::default();
        let mut references = Vec::new();
        // reference key -> its retired copies; a key with only leases has none
        let mut leftovers: BTreeMap<String, Vec<RetiredCopy>> = BTreeMap::new();
        let mut pages = self.store.list_pages(bucket, ListRequest::default());
        while let Some(page) = pages.try_next().await? {
            for o in page.objects {
                if let Some((ref_key, sha)) = parse_retired_key(&o.key) {
                    let (ref_key, sha256) = (ref_key.to_string(), sha.to_string());
                    let copy = RetiredCopy { info: o, sha256 };
                    leftovers.entry(ref_key).or_default().push(copy);
                } else if let Some(ref_key) = parse_lease_key(&o.key) {
                    leftovers.entry(ref_key.to_string()).or_default();
                } else if deltaspace::is_reference_name(deltaspace::file_name(&o.key))
                    && !o.key.starts_with(INTERNAL_PREFIX)
                {
                    references.push(o.key);
                }
            }
        }
        for ref_key in references {
            if let Some(k) = self
                .remove_reference_if_unused(
                    bucket,
                    deltaspace::of_key(&ref_key),
                    &StorageProtection::default(),
                )
                .await?
            {
                sweep.orphans_removed.push(k);
            }
        }
        let now = Utc::now();
        for (ref_key, copies) in leftovers {
            let Some(lease) = self.take_deleter_lease(bucket, &ref_key).await? else {
                tracing::info!(%ref_key, "a deleter is at work on this reference; its leftovers are left for the next purge");
                continue;
            };
            let mut settled = Ok(());
            for copy in &copies {
                settled = self
                    .settle_retired(bucket, &ref_key, copy, grace, now, &mut sweep)
                    .await;
                if settled.is_err() {
                    break;
                }
            }
            self.release_deleter_lease(bucket, lease).await;
            settled?;
        }
        Ok(sweep)
    }

    /// Puts `copy` back at `ref_key` if deltas need it and the reference is gone, keeps it
    /// if deltas need it and another reference took the place, and otherwise removes it
    /// once it is older than `grace`.
    async fn settle_retired(
        &self,
        bucket: &str,
        ref_key: &str,
        copy: &RetiredCopy,
        grace: Duration,
        now: DateTime<Utc>,
        sweep: &mut ReferenceSweep,
    ) -> Result<()> {
        let (key, sha) = (&copy.info.key, copy.sha256.as_str());
        let deltas = self
            .space_deltas(bucket, deltaspace::of_key(ref_key), false)
            .await?;
        let live = self.live_reference(bucket, ref_key).await?;
        let needed = if deltas.is_empty() || live.as_ref().is_some_and(|l| l.sha256 == sha) {
            false
        } else if live.is_none() {
            // The retired copy carries the reference's metadata and protection.
            let info = self.store.head_object(bucket, key).await?;
            let (metadata, protection) = info
                .map(|i| (i.metadata.unwrap_or_default(), i.protection))
                .unwrap_or_default();
            let reference = LiveReference {
                sha256: sha.to_string(),
                metadata,
                protection,
            };
            let default = StorageProtection::default();
            if self
                .restore_retired(bucket, ref_key, key, &reference, &default)
                .await?
            {
                sweep.restored.push(ref_key.to_string());
                false
            } else {
                true
            }
        } else {
            self.any_delta_uses(bucket, &deltas, sha).await?
        };
        let old = copy
            .info
            .last_modified
            .is_none_or(|t| (now - t).to_std().unwrap_or_default() >= grace);
        if needed {
            sweep.retired_kept.push(key.clone());
        } else if old {
            self.store.delete_object(bucket, key).await?;
            sweep.retired_removed += 1;
        }
        Ok(())
    }

    async fn any_delta_uses(&self, bucket: &str, deltas: &[ObjectInfo], sha: &str) -> Result<bool> {
        for d in deltas {
            let meta = match &d.metadata {
                Some(m) => Some(m.clone()),
                None => self
                    .store
                    .head_object(bucket, &d.key)
                    .await?
                    .and_then(|i| i.metadata),
            };
            if meta.is_some_and(|m| DgMetadata::parse(&m).ref_sha256.as_deref() == Some(sha)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
