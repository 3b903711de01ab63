//! The delta upload of both formats: one attempt loop (make sure of the deltaspace's
//! reference, encode against it, judge the delta, write it, and start again when the
//! reference was replaced meanwhile), parametrised by what a format encodes and records.
//!
//! The lifecycle it follows is docs/format.md's ("Lifecycle"); a [`DeltaForm`] only says
//! which reference key, which bytes are encoded, and what the delta's metadata adds.

use std::fs::File;
use std::io;

use super::delta_write::{EncodedAgainst, EncodedDelta};
use super::progress::{KeyProgress, Phase};
use super::put::{ATTEMPTS, PutReport, PutRequestOptions, Whole};
use super::reason::StoreReason;
use super::source::{PrivateFile, Source};
use super::{Engine, StoredAs, now};
use crate::deltaspace;
use crate::error::{Error, Result};
use crate::metadata::{DgMetadata, NOTE_ZERO_DIFF};
use crate::storage::ObjectSettings;

/// What creating the deltaspace's reference from this upload gave.
pub(super) enum Created {
    /// Whether this upload's reference was stored (another writer's may have won the race),
    /// and then the bytes it stores.
    Reference { created: bool, stored_size: u64 },
    /// The reference this upload would create does not rebuild it: why.
    NotRebuilt(String),
}

/// What an upload stored, and whether it was seen in the store after its last step (then
/// the caller need not look again).
pub(super) struct Stored {
    pub report: PutReport,
    pub seen: bool,
}

impl Stored {
    pub(super) fn unseen(report: PutReport) -> Stored {
        Stored {
            report,
            seen: false,
        }
    }
}

/// The bytes a delta is encoded from.
pub(super) struct EncodeTarget {
    /// A fresh handle with its own read position.
    pub file: File,
    pub size: u64,
    /// Equal to the reference's SHA-256 when the delta is a zero-diff one.
    pub sha256: String,
}

/// How one format makes its deltas: the file as it is against `reference.bin`, or its
/// expanded form against `reference.dgx`.
pub(super) trait DeltaForm {
    /// The deltaspace's reference key for `key`.
    fn reference_key(&self, key: &str) -> String;

    /// Names the delta in the reason a file is stored whole.
    fn delta_name(&self) -> &'static str;

    /// Stores the reference from this upload, if none is there (create-if-absent: another
    /// writer's may win).
    async fn create_reference(
        &self,
        engine: &Engine,
        bucket: &str,
        ref_key: &str,
        source: &Source,
        object: &ObjectSettings,
    ) -> Result<Created>;

    /// What is encoded against the reference.
    fn target(&self, source: &Source) -> Result<EncodeTarget>;

    /// Why `delta` against `reference` would not rebuild the upload (`None`: it does). A
    /// delta of the file as it is is the codec's own output and needs no such check.
    async fn check_delta(
        &self,
        _engine: &Engine,
        _reference: &File,
        _delta: &PrivateFile,
        _source: &Source,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// The delta's metadata: `common`, what every delta records, plus this form's fields.
    fn delta_metadata(&self, engine: &Engine, common: DgMetadata, source: &Source) -> DgMetadata;

    /// Why part or all of the file was not expanded, for the report.
    fn expansion(&self) -> Option<String> {
        None
    }
}

impl Engine {
    /// Stores an eligible, non-empty snapshot as a delta in `form`, or whole when the delta is
    /// not worth it or does not rebuild the file.
    pub(super) async fn put_delta<F: DeltaForm>(
        &self,
        form: &F,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
    ) -> Result<Stored> {
        let _under_way = self.index.upload_started();
        let mut created_reference = false;
        let result = self
            .put_delta_attempts(form, bucket, key, source, options, &mut created_reference)
            .await;
        if result.is_err() && created_reference {
            // Not a rollback: the deleter's rule keeps the reference if another writer stored
            // a delta against it in the meantime.
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

    async fn put_delta_attempts<F: DeltaForm>(
        &self,
        form: &F,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
        created_reference: &mut bool,
    ) -> Result<Stored> {
        let ref_key = form.reference_key(key);
        let what = format!("s3://{bucket}/{key}");
        let mut reference_size = 0;
        for attempt in 0..ATTEMPTS {
            // Seen live moments ago (the last upload's check after its write): used as it is,
            // since this upload's own check after its write decides.
            let remembered = (attempt == 0)
                .then(|| self.recent.reference(bucket, &ref_key))
                .flatten();
            let was_remembered = remembered.is_some();
            let seen = match remembered {
                Some(live) => Some(live),
                None => self.live_reference(bucket, &ref_key).await?,
            };
            let (live, created, stored_size) = match seen {
                Some(live) => (Some(live), false, 0),
                None => {
                    fail::fail_point!("put::before_reference_create");
                    let made = form
                        .create_reference(self, bucket, &ref_key, source, &options.object)
                        .await?;
                    let (created, stored_size) = match made {
                        Created::Reference {
                            created,
                            stored_size,
                        } => (created, stored_size),
                        Created::NotRebuilt(why) => {
                            return self
                                .put_not_rebuilt(bucket, key, source, options, why)
                                .await
                                .map(Stored::unseen);
                        }
                    };
                    fail::fail_point!("put::after_reference_create", |_| Err(Error::io(
                        "failpoint put::after_reference_create",
                        io::Error::other("injected")
                    )));
                    let live = self.live_reference(bucket, &ref_key).await?;
                    (live, created, stored_size)
                }
            };
            if created {
                *created_reference = true;
                reference_size = stored_size;
            }
            let Some(live) = live else { continue };
            let reference = match self
                .reference_handle(bucket, &ref_key, &live.sha256, &what)
                .await
            {
                Ok(r) => r,
                Err(e) if was_remembered => {
                    tracing::debug!(%key, "the reference seen moments ago is gone ({e}); asking again");
                    self.recent.forget_reference(bucket, &ref_key);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let progress = self.progress_for(key);
            let target = form.target(source)?;
            let delta = self
                .encode(&reference, target.file, target.size, &progress)
                .await?;
            let delta_size = delta.file().metadata().map_or(0, |m| m.len());

            let encoded = EncodedDelta {
                source,
                size: delta_size,
                zero_diff: live.sha256 == target.sha256,
                reference_name: DgMetadata::parse(&live.metadata).source_name,
                created_reference: *created_reference,
            };
            let reason = match encoded.judge(self.settings.max_ratio, form.delta_name()) {
                Ok(reason) => reason,
                Err(whole) => {
                    return self
                        .put_direct(bucket, key, source, options, whole)
                        .await
                        .map(Stored::unseen);
                }
            };
            if let Some(why) = form.check_delta(self, &reference, &delta, source).await? {
                return self
                    .put_not_rebuilt(bucket, key, source, options, why)
                    .await
                    .map(Stored::unseen);
            }
            let created_at = now();
            let common = DgMetadata {
                ref_key: Some(ref_key.clone()),
                ref_sha256: Some(live.sha256.clone()),
                delta_size: Some(delta_size),
                note: encoded.zero_diff.then(|| NOTE_ZERO_DIFF.to_string()),
                compression: None,
                ..DgMetadata::for_direct(&source.name, &source.sha256, source.size, created_at)
            };
            let meta = form.delta_metadata(self, common, source);
            let against = EncodedAgainst {
                key: &ref_key,
                live: &live,
                bytes: &reference,
            };
            let Some(written) = self
                .write_delta(
                    bucket, key, &delta, delta_size, meta, created_at, against, options, &progress,
                )
                .await?
            else {
                self.recent.forget_reference(bucket, &ref_key);
                continue;
            };
            // Its check after the write just found it live.
            self.recent.saw_reference(bucket, &ref_key, &live);
            let report = PutReport {
                bucket: bucket.to_string(),
                key: key.to_string(),
                stored_key: written.stored_key,
                stored_as: StoredAs::Delta,
                created_reference: *created_reference,
                original_size: source.size,
                stored_size: delta_size + reference_size,
                sha256: Some(source.sha256.clone()),
                direct_reason: None,
                reason,
                reference_name: encoded.reference_name,
                expansion: form.expansion(),
            };
            return Ok(Stored {
                report,
                seen: written.seen,
            });
        }
        Err(Error::storage(
            "store",
            bucket,
            key,
            format!("reference {ref_key} kept changing while the delta was written"),
        ))
    }

    /// Stores the file whole because what would be stored does not rebuild it.
    async fn put_not_rebuilt(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
        why: String,
    ) -> Result<PutReport> {
        tracing::error!(%key, "{why}; storing the file whole");
        let whole = Whole {
            why: Some(why),
            reason: StoreReason::NotRebuilt,
            reference_name: None,
        };
        self.put_direct(bucket, key, source, options, whole).await
    }

    /// Encodes `target` (`size` bytes: the snapshot, or its expanded form) against a
    /// verified reference into a private temporary file.
    async fn encode(
        &self,
        reference: &File,
        target: File,
        size: u64,
        progress: &KeyProgress,
    ) -> Result<PrivateFile> {
        let reference = reference
            .try_clone()
            .map_err(|e| Error::io("cannot reopen the reference", e))?;
        let codec = self.codec.clone();
        let progress = progress.clone();
        progress.start(Phase::Encoding, size);
        self.cpu_bound("encoder", move || {
            let delta = PrivateFile::new()?;
            let mut w = io::BufWriter::with_capacity(1 << 20, delta.file());
            let mut done = 0u64;
            codec.encode_reporting(&reference, &target, &mut w, &mut |position| {
                progress.advance(position.saturating_sub(done));
                done = done.max(position);
            })?;
            progress.advance(size.saturating_sub(done));
            w.into_inner()
                .map_err(|e| Error::io("cannot write the delta", e.into_error()))?;
            Ok(delta)
        })
        .await
    }
}
