//! The deleter's rule: a reference is removed only when no delta of its deltaspace is
//! left, through a retired copy that is put back if a delta appears meanwhile.

use std::io::{self, Write};

use futures::TryStreamExt;

use super::{LiveReference, is_compact_reference, member_prefixes, retired_key};
use crate::deltaspace::{self, COMPACT_REFERENCE_NAME, DELTA_SUFFIX, REFERENCE_NAME};
use crate::engine::get::drain_into;
use crate::engine::lease::DeleterLease;
use crate::engine::source::PrivateFile;
use crate::engine::{Engine, blocking};
use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;
use crate::storage::{
    CopyOptions, ListRequest, ObjectInfo, ObjectStoreExt, PutSource, StorageProtection,
};

impl Engine {
    /// True if any `.delta` belongs to deltaspace `space` (keys in deeper prefixes belong to
    /// other deltaspaces).
    async fn space_has_deltas(&self, bucket: &str, space: &str) -> Result<bool> {
        Ok(!self.space_deltas(bucket, space, true).await?.is_empty())
    }

    /// The `.delta` objects of deltaspace `space`; with `first_only`, stops at the first.
    pub(in crate::engine) async fn space_deltas(
        &self,
        bucket: &str,
        space: &str,
        first_only: bool,
    ) -> Result<Vec<ObjectInfo>> {
        let mut found = Vec::new();
        for prefix in member_prefixes(space) {
            let request = ListRequest {
                prefix,
                delimiter: Some("/".into()),
                ..Default::default()
            };
            let mut pages = self.store.list_pages(bucket, request);
            while let Some(page) = pages.try_next().await? {
                for o in page.objects {
                    if o.key.ends_with(DELTA_SUFFIX) && deltaspace::of_key(&o.key) == space {
                        found.push(o);
                        if first_only {
                            return Ok(found);
                        }
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes `<space>/reference.bin` (and `<space>/reference.dgx`, if there is one) when
    /// no delta of the deltaspace is left, by the deleter's rule (module docs): retire,
    /// delete, look again, restore if needed. A restore gives the reference `protection`
    /// where it asks for any (an upload's `--storage-class`, `--sse`, `--acl`), else the
    /// reference's own. Returns the key of a reference removed.
    pub(crate) async fn remove_reference_if_unused(
        &self,
        bucket: &str,
        space: &str,
        protection: &StorageProtection,
    ) -> Result<Option<String>> {
        // a first look without the lease: most deletes leave deltas behind
        if self.space_has_deltas(bucket, space).await? {
            return Ok(None);
        }
        let compact_key = deltaspace::join(space, COMPACT_REFERENCE_NAME);
        // Whatever happens next, what this engine saw of the references may not hold.
        self.recent.forget_reference(bucket, &compact_key);
        self.recent
            .forget_reference(bucket, &deltaspace::join(space, deltaspace::REFERENCE_NAME));
        let compact = if self
            .store
            .head_object(bucket, &compact_key)
            .await?
            .is_some()
        {
            self.remove_one_reference(bucket, space, &compact_key, protection)
                .await?
        } else {
            None
        };
        let ref_key = deltaspace::join(space, REFERENCE_NAME);
        let compatible = self
            .remove_one_reference(bucket, space, &ref_key, protection)
            .await?;
        Ok(compatible.or(compact))
    }

    /// The deleter's rule for one reference key of deltaspace `space`.
    async fn remove_one_reference(
        &self,
        bucket: &str,
        space: &str,
        ref_key: &str,
        protection: &StorageProtection,
    ) -> Result<Option<String>> {
        let Some(lease) = self.take_deleter_lease(bucket, ref_key).await? else {
            tracing::info!(%ref_key, "another deleter is at work on this reference; it is left to that one, or to purge");
            return Ok(None);
        };
        let removed = self
            .remove_reference_holding(bucket, space, ref_key, protection, &lease)
            .await;
        self.release_deleter_lease(bucket, lease).await;
        removed
    }

    /// The deleter's rule, run while holding `lease`.
    async fn remove_reference_holding(
        &self,
        bucket: &str,
        space: &str,
        ref_key: &str,
        protection: &StorageProtection,
        lease: &DeleterLease,
    ) -> Result<Option<String>> {
        if self.space_has_deltas(bucket, space).await? {
            return Ok(None);
        }
        fail::fail_point!("delete::after_check");
        let Some(live) = self.live_reference(bucket, ref_key).await? else {
            return Ok(None);
        };
        let retired = retired_key(ref_key, &live.sha256);
        match self
            .store
            .copy_object(
                bucket,
                ref_key,
                bucket,
                &retired,
                // The retired copy is the reference's bytes: as encrypted and stored as it.
                CopyOptions {
                    replace: None,
                    protection: live.protection.clone(),
                },
            )
            .await
        {
            Ok(()) => {}
            // another deleter was faster
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        fail::fail_point!("delete::after_retire");
        // Only a deleter replaces a reference (by deleting it, for a writer to make a new
        // one), and the lease keeps other deleters out: if it still holds the retired bytes
        // now, it holds them when the delete lands.
        match self.live_reference(bucket, ref_key).await? {
            Some(now) if now.sha256 == live.sha256 => {}
            _ => {
                self.store.delete_object(bucket, &retired).await?;
                return Ok(None);
            }
        }
        fail::fail_point!("delete::before_reference_delete");
        if !lease.fresh() {
            tracing::warn!(%ref_key, "held the deleter's lease too long to delete safely; the reference is left for purge");
            self.store.delete_object(bucket, &retired).await?;
            return Ok(None);
        }
        self.store.delete_object(bucket, ref_key).await?;
        fail::fail_point!("delete::after_reference_delete", |_| Err(Error::io(
            "failpoint delete::after_reference_delete",
            io::Error::other("injected")
        )));
        if self.space_has_deltas(bucket, space).await? {
            tracing::warn!(%ref_key, "a delta appeared while its reference was removed; restoring it");
            if self
                .restore_retired(bucket, ref_key, &retired, &live, protection)
                .await?
            {
                self.store.delete_object(bucket, &retired).await?;
            }
            return Ok(None);
        }
        self.store.delete_object(bucket, &retired).await?;
        self.drop_index(bucket, space).await;
        Ok(Some(ref_key.to_string()))
    }

    /// Puts a retired copy back at `ref_key` (create-if-absent, after checking its hash).
    /// True if `ref_key` now holds those bytes, so the retired copy is no longer needed.
    pub(in crate::engine) async fn restore_retired(
        &self,
        bucket: &str,
        ref_key: &str,
        retired: &str,
        reference: &LiveReference,
        protection: &StorageProtection,
    ) -> Result<bool> {
        let reader = self.store.get_object(bucket, retired).await?;
        let copy = PrivateFile::new()?;
        let mut hashing = HashingWriter::new(io::BufWriter::new(copy.file()));
        drain_into(reader.body, &mut hashing)
            .await
            .ctx(|| format!("cannot download s3://{bucket}/{retired}"))?;
        let (sha, _, mut w) = hashing.into_parts();
        w.flush().ctx(|| "cannot write a temporary file".into())?;
        drop(w);
        // A compact reference is known by its content, not by its xz bytes.
        let sha = if is_compact_reference(ref_key) {
            let xz = copy
                .file()
                .try_clone()
                .ctx(|| "cannot reopen a temporary file".into())?;
            blocking("xz", move || crate::engine::compact::xz_content_sha256(&xz))
                .await?
                .0
        } else {
            sha
        };
        if sha != reference.sha256 {
            return Err(Error::IntegrityMismatch {
                what: format!("s3://{bucket}/{retired}"),
                expected: reference.sha256.clone(),
                actual: sha,
            });
        }
        self.create_reference(
            bucket,
            ref_key,
            PutSource::File(copy.path()),
            reference,
            protection,
        )
        .await?;
        Ok(self
            .live_reference(bucket, ref_key)
            .await?
            .is_some_and(|now| now.sha256 == reference.sha256))
    }
}
