//! Writing in the compact format: the reference `reference.dgx` and deltas between
//! expanded forms, each rebuilt from what will be stored before it is written.
//!
//! The lifecycle is the compatible format's (docs/format.md, "Lifecycle"), run on the
//! reference key `reference.dgx`: the same create-if-absent, the same confirmation after the
//! delta is written, the same deleter's rule.

use std::fs::File;

use super::expanded::{self, Expanded, Mismatch};
use crate::deltaspace;
use crate::engine::delta_write::{EncodedAgainst, EncodedDelta};
use crate::engine::put::{ATTEMPTS, PutReport, PutRequestOptions, Whole};
use crate::engine::reason::StoreReason;
use crate::engine::reference::LiveReference;
use crate::engine::source::{PrivateFile, Source};
use crate::engine::{Engine, StorageFormat, StoredAs, blocking, now};
use crate::error::{Error, IoContext, Result};
use crate::metadata::{DgMetadata, FORMAT_COMPACT, NOTE_ZERO_DIFF};
use crate::storage::{ObjectSettings, PutOutcome, PutSource};

/// A fresh handle on a private file, with its own read position.
fn reopen(file: &PrivateFile) -> Result<File> {
    File::open(file.path()).ctx(|| "cannot reopen a temporary file".into())
}

/// What making sure of the compact reference gave.
enum Ensured {
    /// The reference there now (`None` if it vanished again at once); whether this upload
    /// created it, and then its stored size.
    Live(Option<LiveReference>, bool, u64),
    /// The reference this upload would create does not rebuild it: why.
    NotRebuilt(String),
}

impl Engine {
    /// The format the deltaspace of `key` has: the one its reference says, or for a new
    /// deltaspace the configured one.
    pub(in crate::engine) async fn deltaspace_format(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<StorageFormat> {
        let (other, other_key) = match self.settings.format {
            StorageFormat::Compact => (
                StorageFormat::Compatible,
                deltaspace::reference_key_for(key),
            ),
            _ => (
                StorageFormat::Compact,
                deltaspace::compact_reference_key_for(key),
            ),
        };
        Ok(
            if self.store.head_object(bucket, &other_key).await?.is_some() {
                other
            } else {
                self.settings.format
            },
        )
    }

    /// Stores an eligible, non-empty snapshot in the compact format: a delta between
    /// expanded forms, or the file whole when that is not worth it or does not rebuild.
    pub(in crate::engine) async fn put_compact(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        let (snapshot, limits) = (source.reopen()?, self.settings.expansion_limits.clone());
        let expanded = blocking("expand", move || expanded::expand_file(snapshot, &limits)).await?;
        let mut created_reference = false;
        let result = self
            .put_compact_attempts(
                bucket,
                key,
                source,
                &expanded,
                options,
                &mut created_reference,
            )
            .await;
        if result.is_err() && created_reference {
            // As in the compatible format: the deleter's rule, not a rollback.
            if let Err(e) = self
                .remove_reference_if_unused(
                    bucket,
                    deltaspace::of_key(key),
                    &options.object.protection,
                )
                .await
            {
                tracing::warn!(%key, "could not remove the reference this failed upload made: {}", crate::error::chain(&e));
            }
        }
        result
    }

    /// Creates `reference.dgx` from the expanded form if there is none, once its xz has been
    /// shown to rebuild the upload.
    async fn ensure_compact_reference(
        &self,
        bucket: &str,
        ref_key: &str,
        source: &Source,
        expanded: &Expanded,
        object: &ObjectSettings,
    ) -> Result<Ensured> {
        if let Some(live) = self.live_reference(bucket, ref_key).await? {
            return Ok(Ensured::Live(Some(live), false, 0));
        }
        fail::fail_point!("put::before_reference_create");
        let (input, preset) = (reopen(&expanded.file)?, self.settings.xz_preset);
        let (expanded_sha, sha) = (expanded.sha256.clone(), source.sha256.clone());
        let (xz, mismatch) = blocking("xz", move || {
            let xz = expanded::compress_xz(&input, preset)?;
            let mismatch = expanded::check_reference(xz.file(), &expanded_sha, &sha)?;
            Ok((xz, mismatch))
        })
        .await?;
        if let Some(why) = mismatch {
            return Ok(Ensured::NotRebuilt(why));
        }
        let xz_size = xz.file().metadata().map_or(0, |m| m.len());
        let meta = DgMetadata {
            format: Some(FORMAT_COMPACT.to_string()),
            expanded_sha256: Some(expanded.sha256.clone()),
            expanded_size: Some(expanded.size),
            ..DgMetadata::for_reference(&source.name, &source.sha256, source.size, now())
        };
        let outcome = self
            .store
            .put_object(
                bucket,
                ref_key,
                PutSource::File(xz.path()),
                object.reference_put(meta.to_user_metadata()),
            )
            .await?;
        let created = matches!(outcome, PutOutcome::Stored { .. });
        if created {
            self.prime_cache(&expanded.sha256, expanded.file.file(), ref_key)
                .await;
        }
        fail::fail_point!("put::after_reference_create", |_| Err(Error::io(
            "failpoint put::after_reference_create",
            std::io::Error::other("injected")
        )));
        let live = self.live_reference(bucket, ref_key).await?;
        Ok(Ensured::Live(live, created, xz_size))
    }

    async fn put_compact_attempts(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        expanded: &Expanded,
        options: &PutRequestOptions,
        created_reference: &mut bool,
    ) -> Result<PutReport> {
        let ref_key = deltaspace::compact_reference_key_for(key);
        let what = format!("s3://{bucket}/{key}");
        let not_rebuilt = |why: String| Whole {
            why: Some(why),
            reason: StoreReason::NotRebuilt,
            reference_name: None,
        };
        let mut reference_size = 0;
        for _attempt in 0..ATTEMPTS {
            let (live, created, size) = match self
                .ensure_compact_reference(bucket, &ref_key, source, expanded, &options.object)
                .await?
            {
                Ensured::Live(live, created, size) => (live, created, size),
                Ensured::NotRebuilt(why) => {
                    tracing::error!(%key, "{why}; storing the file whole");
                    let whole = not_rebuilt(why);
                    return self.put_direct(bucket, key, source, options, whole).await;
                }
            };
            if created {
                *created_reference = true;
                reference_size = size;
            }
            let Some(live) = live else { continue };
            let reference = self
                .reference_handle(bucket, &ref_key, &live.sha256, &what)
                .await?;
            let progress = self.progress_for(key);
            let delta = self
                .encode(
                    &reference,
                    reopen(&expanded.file)?,
                    expanded.size,
                    &progress,
                )
                .await?;
            let delta_size = delta.file().metadata().map_or(0, |m| m.len());

            let encoded = EncodedDelta {
                source,
                size: delta_size,
                zero_diff: live.sha256 == expanded.sha256,
                reference_name: DgMetadata::parse(&live.metadata).source_name,
                created_reference: *created_reference,
            };
            let reason = match encoded.judge(self.settings.max_ratio, "compact delta") {
                Ok(reason) => reason,
                Err(whole) => return self.put_direct(bucket, key, source, options, whole).await,
            };
            if let Some(why) = self.check_compact_delta(&reference, &delta, source).await? {
                tracing::error!(%key, "{why}; storing the file whole");
                let whole = not_rebuilt(why);
                return self.put_direct(bucket, key, source, options, whole).await;
            }
            let created_at = now();
            let meta = DgMetadata {
                format: Some(FORMAT_COMPACT.to_string()),
                ref_key: Some(ref_key.clone()),
                ref_sha256: Some(live.sha256.clone()),
                delta_size: Some(delta_size),
                expanded_size: Some(expanded.size),
                note: encoded.zero_diff.then(|| NOTE_ZERO_DIFF.to_string()),
                compression: None,
                ..DgMetadata::for_direct(&source.name, &source.sha256, source.size, created_at)
            };
            let against = EncodedAgainst {
                key: &ref_key,
                live: &live,
                bytes: &reference,
            };
            let Some(stored_key) = self
                .write_delta(
                    bucket, key, &delta, delta_size, meta, created_at, against, options, &progress,
                )
                .await?
            else {
                continue;
            };
            return Ok(PutReport {
                bucket: bucket.to_string(),
                key: key.to_string(),
                stored_key,
                stored_as: StoredAs::Delta,
                created_reference: *created_reference,
                original_size: source.size,
                stored_size: delta_size + reference_size,
                sha256: Some(source.sha256.clone()),
                direct_reason: None,
                reason,
                reference_name: encoded.reference_name,
                expansion: expanded.note.clone(),
            });
        }
        Err(Error::storage(
            "store",
            bucket,
            key,
            format!("reference {ref_key} kept changing while the delta was written"),
        ))
    }

    /// Rebuilds the upload from the expanded reference and `delta` as a reader will; what
    /// differs from the upload is the returned reason.
    async fn check_compact_delta(
        &self,
        reference: &File,
        delta: &PrivateFile,
        source: &Source,
    ) -> Result<Mismatch> {
        let reference = reference
            .try_clone()
            .ctx(|| "cannot reopen the reference".into())?;
        let delta = reopen(delta)?;
        let (codec, sha, size) = (self.codec.clone(), source.sha256.clone(), source.size);
        blocking("verify", move || {
            expanded::check_delta(&*codec, &reference, &delta, &sha, size)
        })
        .await
    }
}
