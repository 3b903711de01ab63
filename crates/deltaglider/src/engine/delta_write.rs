//! What every delta upload does once its delta is encoded, whatever it was encoded from (the
//! file as it is, or its expanded form): judge whether the delta is worth storing, and write it
//! so that it is only acknowledged while the reference it was encoded against is still live.

use std::fs::File;

use chrono::{DateTime, Utc};

use super::Engine;
use super::progress::{KeyProgress, Phase};
use super::put::{Form, PutRequestOptions, Whole, with_user_metadata};
use super::reason::{StoreReason, poor_delta_reason};
use super::reference::LiveReference;
use super::source::{PrivateFile, Source};
use crate::deltaspace::DELTA_SUFFIX;
use crate::error::Result;
use crate::metadata::DgMetadata;
use crate::storage::{PutOutcome, PutSource};

/// An encoded delta, before it is judged.
pub(super) struct EncodedDelta<'a> {
    /// The upload.
    pub source: &'a Source,
    /// Bytes of the delta.
    pub size: u64,
    /// The target's bytes (or expanded form) are the reference's.
    pub zero_diff: bool,
    /// The name the reference was uploaded under, for the reasons a delta is poor.
    pub reference_name: Option<String>,
    /// This upload made the deltaspace's reference.
    pub created_reference: bool,
}

impl EncodedDelta<'_> {
    /// The reason the delta is stored with (`Ok`), or why the file is stored whole instead
    /// (`Err`): a delta not below `max_ratio` of the file. `what` names the delta's kind.
    pub(super) fn judge(
        &self,
        max_ratio: f64,
        what: &str,
    ) -> std::result::Result<Option<StoreReason>, Whole> {
        let (size, file_size) = (self.size, self.source.size);
        let poor = |stored_whole| {
            poor_delta_reason(
                &self.source.name,
                self.reference_name.as_deref(),
                size,
                file_size,
                stored_whole,
            )
        };
        if !self.zero_diff && size as f64 >= max_ratio * file_size as f64 {
            return Err(Whole {
                why: Some(format!(
                    "{what} is {:.1}% of the file, not below --max-ratio {max_ratio}",
                    100.0 * size as f64 / file_size as f64
                )),
                reason: poor(true).unwrap_or(StoreReason::DeltaTooLarge),
                reference_name: self.reference_name.clone(),
            });
        }
        Ok(if self.created_reference {
            Some(StoreReason::NewReference)
        } else if self.zero_diff {
            None
        } else {
            poor(false)
        })
    }
}

/// The reference a delta was encoded against, as the writer holds it.
pub(super) struct EncodedAgainst<'a> {
    pub key: &'a str,
    pub live: &'a LiveReference,
    /// Its verified bytes (restored from these if a deleter removed it meanwhile).
    pub bytes: &'a File,
}

/// A delta written.
pub(super) struct Written {
    pub stored_key: String,
    /// Whether a HEAD after the write's last step found it (`false` also when the HEAD
    /// failed: the caller looks again).
    pub seen: bool,
}

impl Engine {
    /// Writes `delta` as `<key>.delta` with `meta` (made at `created_at`), then confirms that
    /// `reference` is still the deltaspace's live one and removes the other form of `key`.
    /// `Ok(None)` when the reference changed meanwhile: the caller encodes again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_delta(
        &self,
        bucket: &str,
        key: &str,
        delta: &PrivateFile,
        size: u64,
        meta: DgMetadata,
        created_at: DateTime<Utc>,
        reference: EncodedAgainst<'_>,
        options: &PutRequestOptions,
        progress: &KeyProgress,
    ) -> Result<Option<Written>> {
        let stored_key = format!("{key}{DELTA_SUFFIX}");
        fail::fail_point!("put::before_delta_write", |_| Err(crate::error::Error::io(
            "failpoint put::before_delta_write",
            std::io::Error::other("injected")
        )));
        progress.start(Phase::Uploading, size);
        let metadata = with_user_metadata(meta.to_user_metadata(), options)?;
        let outcome = self
            .store
            .put_object(
                bucket,
                &stored_key,
                PutSource::File(delta.path()),
                options.object.object_put(
                    metadata.clone(),
                    options.content_type.as_deref(),
                    meta.original_name.as_deref().unwrap_or_default(),
                ),
            )
            .await?;
        progress.advance(size);
        let etag = match outcome {
            PutOutcome::Stored { etag } => etag,
            PutOutcome::AlreadyExists => None,
        };
        fail::fail_point!("put::after_delta_write");
        // The delta is visible. Its reference must still be the one it was encoded
        // against: a deleter that saw no delta may have removed it in the meantime (we
        // restore it from the verified bytes we hold), or a store that ignores
        // If-None-Match let another writer replace it (we encode again).
        if !self
            .confirm_reference(
                bucket,
                reference.key,
                reference.live,
                reference.bytes,
                &options.object.protection,
            )
            .await?
        {
            tracing::warn!(ref_key = %reference.key, "reference changed while {key} was stored; encoding again");
            return Ok(None);
        }
        self.remove_other_form(
            bucket,
            key,
            Form::Delta,
            created_at,
            &options.object.protection,
        )
        .await?;
        // One HEAD, now that nothing of this upload is left to change the object, answers
        // both whether it is still there (a newer writer of the other form may have removed
        // it) and what the listing index records of it.
        fail::fail_point!("index::before_head");
        let seen = match self.store.head_object(bucket, &stored_key).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(%bucket, key = %stored_key, "not indexed: {}", crate::error::chain(&e));
                None
            }
        };
        let entry = seen.as_ref().and_then(|head| {
            super::index::entry_of_written(&stored_key, etag.as_deref(), size, &metadata, head)
        });
        if let Some(entry) = entry {
            self.index_written_delta(bucket, crate::deltaspace::of_key(&stored_key), entry)
                .await;
        }
        Ok(Some(Written {
            stored_key,
            seen: seen.is_some(),
        }))
    }
}
