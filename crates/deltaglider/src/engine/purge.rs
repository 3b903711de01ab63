//! `purge`: what earlier commands left in a bucket. Rehydrated copies whose URLs have all
//! expired, references no delta uses (and retired copies, docs/format.md "Lifecycle"), and
//! multipart uploads that a writer killed outright never finished or aborted: invisible, but
//! holding (and on AWS billing) their parts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use super::presign::{REHYDRATED_PREFIX, expiry_of};
use super::{Engine, now};
use crate::deltaspace::INTERNAL_PREFIX;
use crate::error::{Error, Result};
use crate::storage::{ListRequest, ObjectStoreExt};

/// Retired references younger than this are left to the deleter that may still be at work.
pub const RETIRED_GRACE: Duration = Duration::from_secs(3600);

/// Multipart uploads begun longer ago than this are taken as abandoned unless told otherwise:
/// one still sending its parts after a day is far rarer than one whose writer died.
pub const DEFAULT_STALE_UPLOAD_AGE: Duration = Duration::from_secs(24 * 3600);

/// How `purge` decides what is stale.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PurgeOptions {
    /// Unfinished multipart uploads (of any key in the bucket, whichever tool began them)
    /// begun at least this long ago are aborted; younger ones may still be at work.
    pub stale_upload_age: Duration,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            stale_upload_age: DEFAULT_STALE_UPLOAD_AGE,
        }
    }
}

impl PurgeOptions {
    /// Options with uploads begun at least `age` ago taken as abandoned.
    pub fn stale_upload_age(mut self, age: Duration) -> Self {
        self.stale_upload_age = age;
        self
    }
}

/// What `purge` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    /// Objects found under `REHYDRATED_PREFIX`.
    pub examined: usize,
    /// Keys removed because their `dg-expires-at` had passed.
    pub deleted: Vec<String>,
    /// Objects left: not expired yet, or without a readable `dg-expires-at`.
    pub kept: usize,
    /// Orphaned references removed and retired references settled (docs/format.md,
    /// "Lifecycle").
    pub references: super::ReferenceSweep,
    /// Unfinished multipart uploads aborted.
    pub uploads_aborted: Vec<AbortedUpload>,
    /// Unfinished multipart uploads left, begun too recently to be taken as abandoned.
    pub uploads_kept: usize,
}

/// An unfinished multipart upload that `purge` aborted.
#[derive(Debug, Clone, Serialize)]
pub struct AbortedUpload {
    /// The key it would have created.
    pub key: String,
    /// The store's id for it.
    pub upload_id: String,
    /// When it was begun, if the store said.
    pub initiated: Option<DateTime<Utc>>,
}

impl Engine {
    /// Deletes rehydrated copies under `.deltaglider/tmp/` whose `dg-expires-at` has passed,
    /// settles references (see [`Engine::sweep_references`]) and aborts stale multipart
    /// uploads.
    pub async fn purge(&self, bucket: &str, options: &PurgeOptions) -> Result<PurgeReport> {
        if !self.store.bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let mut report = PurgeReport::default();
        let request = ListRequest {
            prefix: REHYDRATED_PREFIX.to_string(),
            ..Default::default()
        };
        let now = now();
        let mut pages = self.store.list_pages(bucket, request);
        while let Some(page) = pages.try_next().await? {
            for o in page.objects {
                report.examined += 1;
                let meta = match o.metadata {
                    Some(m) => Some(m),
                    None => self
                        .store
                        .head_object(bucket, &o.key)
                        .await?
                        .and_then(|h| h.metadata),
                };
                if meta.as_ref().and_then(expiry_of).is_some_and(|t| t < now) {
                    self.store.delete_object(bucket, &o.key).await?;
                    report.deleted.push(o.key);
                } else {
                    report.kept += 1;
                }
            }
        }
        debug_assert!(REHYDRATED_PREFIX.starts_with(INTERNAL_PREFIX));
        report.references = self.sweep_references(bucket, RETIRED_GRACE).await?;
        self.abort_stale_uploads(bucket, options.stale_upload_age, &mut report)
            .await?;
        Ok(report)
    }

    async fn abort_stale_uploads(
        &self,
        bucket: &str,
        age: Duration,
        report: &mut PurgeReport,
    ) -> Result<()> {
        let Some(uploads) = self.store.pending_uploads() else {
            return Ok(());
        };
        // An upload whose start the store does not give is old enough only when every
        // upload is (age 0).
        let cutoff = chrono::Duration::from_std(age)
            .ok()
            .and_then(|age| now().checked_sub_signed(age));
        for u in uploads.list_pending_uploads(bucket, "").await? {
            let begun_before_cutoff = match (u.initiated, cutoff) {
                (Some(t), Some(cutoff)) => t <= cutoff,
                _ => false,
            };
            let stale = age.is_zero() || begun_before_cutoff;
            if !stale {
                report.uploads_kept += 1;
                continue;
            }
            uploads.abort_pending_upload(bucket, &u).await?;
            report.uploads_aborted.push(AbortedUpload {
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated,
            });
        }
        Ok(())
    }

    /// Waits up to `within` for the aborts that cancelled uploads left running; false if
    /// some had not finished (`purge` aborts those later).
    pub async fn finish_aborts(&self, within: Duration) -> bool {
        match self.store.pending_uploads() {
            Some(uploads) => uploads.finish_aborts(within).await,
            None => true,
        }
    }
}
