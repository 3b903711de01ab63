//! The lifecycle of a deltaspace's reference (`reference.bin`, or `reference.dgx` in the
//! compact format): finding it, holding verified bytes of it, restoring it, and deleting it
//! only when no delta can need it. Both formats follow the same rules, told apart only by the
//! reference key: a compact reference is stored as xz and known by the SHA-256 of its content
//! (the expanded form), which is what the cache holds and what deltas name.
//!
//! Writers take no lock, so the rules (docs/format.md, "Lifecycle") are written for any
//! interleaving of writers, deleters and crashes:
//! - a writer never deletes a reference it made visible, even when its own upload fails;
//! - after storing a delta, a writer checks that the reference it encoded against is still
//!   there, and restores it (create-if-absent) from the verified bytes it holds if not;
//! - deleters of one reference take turns (`lease.rs`); the one whose turn it is copies the
//!   reference to a *retired* copy under `.deltaglider/retired/`, deletes it, looks for
//!   deltas again and restores it if any appeared, and only then removes the retired copy.
//!   A deleter that dies on the way leaves the retired copy, which readers fall back on (by
//!   content hash) and `purge` puts back or collects.

use std::fs::File;
use std::io::{self, Write};

use futures::TryStreamExt;

use super::compact::drain_xz_into;
use super::get::drain_into;
use super::lease::DeleterLease;
use super::source::PrivateFile;
use super::{Engine, blocking};
use crate::cache::{FillSlot, Lookup};
use crate::deltaspace::{self, COMPACT_REFERENCE_NAME, DELTA_SUFFIX, REFERENCE_NAME};
use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;
use crate::metadata::{DgMetadata, FORMAT_COMPACT, UserMetadata};
use crate::storage::{
    CopyOptions, ListRequest, ObjectInfo, ObjectStoreExt, PutOptions, PutOutcome, PutSource,
    StorageProtection,
};

/// Where retired references wait: `.deltaglider/retired/<reference key>/<sha256>.<random>`.
pub const RETIRED_PREFIX: &str = ".deltaglider/retired/";

/// A reference as it is in the store now.
#[derive(Debug, Clone)]
pub(crate) struct LiveReference {
    /// Its content's SHA-256: the recorded `dg-file-sha256`, or for a compact reference
    /// `dg-expanded-sha256`.
    pub sha256: String,
    /// Its metadata, to write it back exactly as it was.
    pub metadata: UserMetadata,
    /// Its storage class and encryption as the store reports them (never its ACL), kept
    /// by its retired copy and by a restore that asks for nothing else.
    pub protection: StorageProtection,
}

/// The stored key of a retired copy of `ref_key` with content `sha256`.
fn retired_key(ref_key: &str, sha256: &str) -> String {
    format!(
        "{RETIRED_PREFIX}{ref_key}/{sha256}.{:016x}",
        rand::random::<u64>()
    )
}

/// `(reference key, sha256)` of a retired copy's key.
pub(super) fn parse_retired_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(RETIRED_PREFIX)?;
    let (ref_key, leaf) = rest.rsplit_once('/')?;
    let (sha, _) = leaf.split_once('.')?;
    (deltaspace::is_reference_name(deltaspace::file_name(ref_key)) && sha.len() == 64)
        .then_some((ref_key, sha))
}

/// True if `ref_key` names a compact reference, whose stored bytes are the xz of its
/// content.
pub(crate) fn is_compact_reference(ref_key: &str) -> bool {
    deltaspace::file_name(ref_key) == COMPACT_REFERENCE_NAME
}

/// The listing prefixes (with delimiter `/`) that together hold exactly the keys of
/// deltaspace `space`: `<space>/` for a named one; for the bucket root both the keys without
/// any `/` and those whose only `/` leads (`/app.zip`: everything before its last `/` is
/// empty, so it belongs to the root too).
fn member_prefixes(space: &str) -> Vec<String> {
    if space.is_empty() {
        vec![String::new(), "/".to_string()]
    } else {
        vec![format!("{space}/")]
    }
}

impl Engine {
    /// The reference at `ref_key` now, `None` if there is none. A reference without a
    /// recorded hash is refused: nothing can be built or verified against it.
    pub(crate) async fn live_reference(
        &self,
        bucket: &str,
        ref_key: &str,
    ) -> Result<Option<LiveReference>> {
        let Some(info) = self.store.head_object(bucket, ref_key).await? else {
            return Ok(None);
        };
        let protection = info.protection;
        let metadata = info.metadata.unwrap_or_default();
        let meta = DgMetadata::parse(&metadata);
        let format = super::compact::object_format(bucket, ref_key, &meta)?;
        let (sha256, field) = if is_compact_reference(ref_key) {
            if format != super::StorageFormat::Compact {
                return Err(Error::InvalidMetadata {
                    bucket: bucket.to_string(),
                    key: ref_key.to_string(),
                    reason: format!("a compact reference without dg-format {FORMAT_COMPACT}"),
                });
            }
            (meta.expanded_sha256, "dg-expanded-sha256")
        } else {
            (meta.file_sha256, "dg-file-sha256")
        };
        let sha256 = sha256.ok_or_else(|| Error::InvalidMetadata {
            bucket: bucket.to_string(),
            key: ref_key.to_string(),
            reason: format!("reference has no {field}; refusing to build deltas against it"),
        })?;
        Ok(Some(LiveReference {
            sha256,
            metadata,
            protection,
        }))
    }

    /// A verified handle on the reference `ref_key` whose content must hash to `ref_sha`:
    /// from the cache, or downloaded into it and checked before anything uses it. When the
    /// reference is gone or holds other bytes, a retired copy with the right hash serves.
    /// The cache can only make this faster: whatever goes wrong in it is logged and the
    /// reference is fetched from storage.
    pub(crate) async fn reference_handle(
        &self,
        bucket: &str,
        ref_key: &str,
        ref_sha: &str,
        needed_by: &str,
    ) -> Result<File> {
        let mut slot = match self.cache_lookup(ref_sha).await? {
            Lookup::Hit(f) => {
                tracing::debug!(%ref_key, "reference cache hit");
                return Ok(f);
            }
            Lookup::Miss(slot) => slot,
        };
        tracing::debug!(%ref_key, "reference cache miss: downloading");
        let compact = is_compact_reference(ref_key);
        let first = match self
            .fetch_reference(&mut slot, bucket, ref_key, compact, needed_by)
            .await
        {
            Ok(f) => return Ok(f),
            Err(e @ (Error::NotFound { .. } | Error::IntegrityMismatch { .. })) => e,
            Err(e) => return Err(e),
        };
        for retired in self.retired_copies(bucket, ref_key, ref_sha).await? {
            match self
                .fetch_reference(&mut slot, bucket, &retired, compact, needed_by)
                .await
            {
                Ok(f) => {
                    tracing::warn!(%ref_key, %retired, "reference read from its retired copy");
                    return Ok(f);
                }
                Err(e) => {
                    tracing::warn!(%retired, "retired copy unusable: {}", crate::error::chain(&e))
                }
            }
        }
        Err(match first {
            Error::NotFound { .. } => Error::ReferenceMissing {
                bucket: bucket.to_string(),
                reference: ref_key.to_string(),
                needed_by: needed_by.to_string(),
            },
            other => other,
        })
    }

    /// The engine's one call into the cache, off the async threads (it hashes, and may wait
    /// for another process filling the entry). A cache that fails is logged and bypassed.
    async fn cache_lookup(&self, sha: &str) -> Result<Lookup> {
        let (cache, key) = (self.cache.clone(), sha.to_string());
        match blocking("reference cache", move || cache.reference(&key)).await {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(sha256 = %sha, "reference cache unusable ({}); fetching from storage", crate::error::chain(&e));
                // A cache that encrypts keeps plaintext off the disk also when it fails (and
                // one that cannot say whether it encrypts is taken to).
                let in_memory = self
                    .cache
                    .info()
                    .map_or(true, |info| info.encryption_key.is_some());
                Ok(Lookup::Miss(FillSlot::uncached(sha, in_memory)?))
            }
        }
    }

    /// Downloads `key` into `slot` (decompressing it, for a `compact` reference or a retired
    /// copy of one) and verifies it. If the cache fails on the way (a full
    /// disk, say), the slot turns uncached and the download starts over once.
    async fn fetch_reference(
        &self,
        slot: &mut FillSlot,
        bucket: &str,
        key: &str,
        compact: bool,
        needed_by: &str,
    ) -> Result<File> {
        loop {
            let reader = self.store.get_object(bucket, key).await?;
            let mut writer = slot.writer()?;
            let cached = writer.is_cached();
            let drained = if compact {
                drain_xz_into(reader.body, &mut writer).await
            } else {
                drain_into(reader.body, &mut writer).await
            };
            let result = match drained {
                Ok(_) => writer.commit(&format!(
                    "reference s3://{bucket}/{key} (needed by {needed_by})"
                )),
                Err(e) => Err(Error::io(
                    format!("cannot download reference s3://{bucket}/{key}"),
                    e,
                )),
            };
            match result {
                Err(e) if cached && !slot.is_cached() => {
                    tracing::warn!(%key, "downloading the reference again, uncached, after a cache failure: {}", crate::error::chain(&e));
                }
                other => return other,
            }
        }
    }

    /// Keys of retired copies of `ref_key` with content `sha`.
    async fn retired_copies(&self, bucket: &str, ref_key: &str, sha: &str) -> Result<Vec<String>> {
        let request = ListRequest {
            prefix: format!("{RETIRED_PREFIX}{ref_key}/{sha}."),
            ..Default::default()
        };
        let mut keys = Vec::new();
        let mut pages = self.store.list_pages(bucket, request);
        while let Some(page) = pages.try_next().await? {
            keys.extend(page.objects.into_iter().map(|o| o.key));
        }
        Ok(keys)
    }

    /// Puts a just-created reference's content (`bytes`, whose SHA-256 is `sha256`: the
    /// upload's snapshot, or its expanded form) into the cache, sparing the download that
    /// would otherwise verify it. A cache that cannot take it only costs that download.
    pub(crate) async fn prime_cache(&self, sha256: &str, bytes: &File, ref_key: &str) {
        let result = async {
            let mut slot = match self.cache_lookup(sha256).await? {
                Lookup::Hit(_) => return Ok(()),
                Lookup::Miss(slot) if slot.is_cached() => slot,
                Lookup::Miss(_) => return Ok(()),
            };
            let mut reader = File::open(PrivateFile::path_of(bytes))
                .ctx(|| "cannot reopen the new reference".into())?;
            let what = format!("new reference {ref_key}");
            blocking("reference cache", move || {
                let mut writer = slot.writer()?;
                if !writer.is_cached() {
                    // The cache failed (and said so): a copy nobody keeps is of no use.
                    return Ok(());
                }
                io::copy(&mut reader, &mut writer).ctx(|| "cannot fill the cache".into())?;
                writer.commit(&what).map(drop)
            })
            .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%ref_key, "reference not cached: {}", crate::error::chain(&e));
        }
    }

    /// After a delta against `expected` was stored: true if `ref_key` still holds those
    /// bytes, restoring them from `bytes` (verified, held by the writer) when the reference
    /// is gone; false if another reference took its place (the delta must be encoded again).
    /// A restored reference gets its recorded metadata back, and the upload's `protection`
    /// where it asks for any, else the reference's own.
    pub(crate) async fn confirm_reference(
        &self,
        bucket: &str,
        ref_key: &str,
        expected: &LiveReference,
        bytes: &File,
        protection: &StorageProtection,
    ) -> Result<bool> {
        for _ in 0..3 {
            match self.live_reference(bucket, ref_key).await? {
                Some(now) => return Ok(now.sha256 == expected.sha256),
                None => {
                    tracing::warn!(%ref_key, "reference removed under a new delta; restoring it");
                    // A compact reference is held as its content: stored, it is the xz of it.
                    let compressed = if is_compact_reference(ref_key) {
                        let (content, preset) = (
                            File::open(PrivateFile::path_of(bytes))
                                .ctx(|| "cannot reopen the reference".into())?,
                            self.settings.xz_preset,
                        );
                        Some(
                            blocking("xz", move || super::compact::compress_xz(&content, preset))
                                .await?,
                        )
                    } else {
                        None
                    };
                    let path = match &compressed {
                        Some(xz) => xz.path(),
                        None => PrivateFile::path_of(bytes),
                    };
                    self.create_reference(
                        bucket,
                        ref_key,
                        PutSource::File(path),
                        expected,
                        protection,
                    )
                    .await?;
                }
            }
        }
        Ok(false)
    }

    /// Puts `reference` back at `ref_key` (create-if-absent): its metadata as recorded, and
    /// each of `protection`'s settings that is given, else the reference's own.
    async fn create_reference(
        &self,
        bucket: &str,
        ref_key: &str,
        from: PutSource,
        reference: &LiveReference,
        protection: &StorageProtection,
    ) -> Result<PutOutcome> {
        self.store
            .put_object(
                bucket,
                ref_key,
                from,
                PutOptions {
                    metadata: reference.metadata.clone(),
                    protection: protection.or(&reference.protection),
                    if_none_match: true,
                    ..Default::default()
                },
            )
            .await
    }

    /// True if any `.delta` belongs to deltaspace `space` (keys in deeper prefixes belong to
    /// other deltaspaces).
    async fn space_has_deltas(&self, bucket: &str, space: &str) -> Result<bool> {
        Ok(!self.space_deltas(bucket, space, true).await?.is_empty())
    }

    /// The `.delta` objects of deltaspace `space`; with `first_only`, stops at the first.
    pub(super) async fn space_deltas(
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
        Ok(Some(ref_key.to_string()))
    }

    /// Puts a retired copy back at `ref_key` (create-if-absent, after checking its hash).
    /// True if `ref_key` now holds those bytes, so the retired copy is no longer needed.
    pub(super) async fn restore_retired(
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
            blocking("xz", move || super::compact::xz_content_sha256(&xz))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_keys_name_their_reference_and_hash() {
        let sha = "a".repeat(64);
        for ref_key in ["reference.bin", "app/v1/reference.bin", "/reference.bin"] {
            let k = retired_key(ref_key, &sha);
            assert!(deltaspace::is_hidden(&k), "{k}");
            assert_eq!(parse_retired_key(&k), Some((ref_key, sha.as_str())));
        }
        assert_eq!(parse_retired_key(".deltaglider/retired/x/y.z"), None);
    }

    #[test]
    fn the_root_deltaspace_includes_keys_with_a_leading_slash() {
        assert_eq!(deltaspace::of_key("/app-2.zip.delta"), "");
        assert_eq!(member_prefixes(""), ["", "/"]);
        assert_eq!(member_prefixes("a"), ["a/"]);
    }
}
