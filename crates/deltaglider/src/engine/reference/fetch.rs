//! Verified bytes of a reference: from the cache, or downloaded into it (a compact
//! reference decompressed) and checked, or from a retired copy with the right hash.

use std::fs::File;
use std::io;

use futures::TryStreamExt;

use super::{RETIRED_PREFIX, is_compact_reference};
use crate::cache::{FillSlot, Lookup};
use crate::engine::compact::drain_xz_into;
use crate::engine::get::drain_into;
use crate::engine::source::PrivateFile;
use crate::engine::{Engine, blocking};
use crate::error::{Error, IoContext, Result};
use crate::storage::{ListRequest, ObjectStoreExt};

impl Engine {
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
                self.activity.cache_hit();
                tracing::debug!(%ref_key, "reference cache hit");
                return Ok(f);
            }
            Lookup::Miss(slot) => slot,
        };
        self.activity.cache_miss();
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
}
