//! Writing: a file becomes a reference + zero-diff delta, a delta, or a direct object.
//!
//! The lifecycle rules that keep every acknowledged upload recoverable are in
//! `docs/format.md` ("Lifecycle"); each step below names the rule it follows.

use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncRead;

use super::delta_upload::{DeltaForm, EncodeTarget, Ensured};
use super::progress::Phase;
use super::reason::StoreReason;
use super::source::Source;
use super::{Engine, StorageFormat, StoredAs, blocking, now};
use crate::deltaspace::{self, DELTA_SUFFIX, REFERENCE_NAME};
use crate::error::{Error, Result};
use crate::metadata::DgMetadata;
use crate::storage::{ObjectSettings, PutOutcome, PutSource, StorageProtection};

/// Per-upload options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutRequestOptions {
    /// Store the file whole even if its extension is delta-eligible.
    pub no_delta: bool,
    /// `Content-Type` of the delta or direct object written (references get none).
    pub content_type: Option<String>,
    /// Caller metadata kept with the object (stored as `user-<key>`, as the proxy does).
    pub user_metadata: crate::metadata::UserMetadata,
    /// Headers, storage class, encryption and ACL of the objects written, content-type
    /// guessing, and how copies treat the source's metadata.
    pub object: crate::storage::ObjectSettings,
}

/// Adds caller metadata to DeltaGlider's, refusing keys S3 cannot carry.
pub(super) fn with_user_metadata(
    mut meta: crate::metadata::UserMetadata,
    options: &PutRequestOptions,
) -> Result<crate::metadata::UserMetadata> {
    for (k, v) in &options.user_metadata {
        let valid = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::invalid(
                format!("metadata key '{k}'"),
                "use ASCII letters, digits, '-' and '_'",
            ));
        }
        meta.insert(
            format!("{}{}", crate::metadata::USER_PREFIX, k.to_ascii_lowercase()),
            crate::metadata::encode_text(v),
        );
    }
    Ok(meta)
}

/// What an upload did.
#[derive(Debug, Clone, Serialize)]
pub struct PutReport {
    /// Bucket written to.
    pub bucket: String,
    /// The logical key.
    pub key: String,
    /// The key written (`<key>.delta` for deltas).
    pub stored_key: String,
    /// `Delta` or `Direct` for uploads; server-side copies keep the source's kind.
    pub stored_as: StoredAs,
    /// True if this upload created the deltaspace's `reference.bin`.
    pub created_reference: bool,
    /// Size of the file in bytes.
    pub original_size: u64,
    /// Bytes stored for this file (the delta, or the whole file), plus the reference when
    /// this upload created it.
    pub stored_size: u64,
    /// SHA-256 of the original bytes (unknown for server-side copies of plain objects).
    pub sha256: Option<String>,
    /// Why the file was stored whole, when it was eligible for a delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_reason: Option<String>,
    /// Why the file was stored whole or saved little, as a code (`null` for a good delta).
    pub reason: Option<StoreReason>,
    /// The name the deltaspace's reference was made from, when a delta was encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_name: Option<String>,
    /// In the compact format, why part or all of the file was not expanded (a bound of the
    /// expansion limits was reached, or the file is no archive it can expand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expansion: Option<String>,
}

/// Which of a logical object's two stored forms a write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `<key>`, stored whole.
    Direct,
    /// `<key>.delta`.
    Delta,
}

/// Whether a writer that stored `ours` (written at `ours_at`) removes the other form, whose
/// `dg-created-at` is `theirs_at`. It is the read rule turned around (see `Engine::resolve`:
/// `<key>` wins unless `<key>.delta` is strictly newer), so of two concurrent writers of
/// different forms exactly one removes the other. An other form without a timestamp was not
/// written by a concurrent DeltaGlider upload and is always replaced.
pub(crate) fn replaces_other_form(
    ours: Form,
    ours_at: DateTime<Utc>,
    theirs_at: Option<DateTime<Utc>>,
) -> bool {
    match (ours, theirs_at) {
        (_, None) => true,
        (Form::Direct, Some(delta_at)) => delta_at <= ours_at,
        (Form::Delta, Some(direct_at)) => direct_at < ours_at,
    }
}

pub(super) const ATTEMPTS: usize = 3;

/// Why an upload is stored whole: the text shown after the size, and the code.
pub(super) struct Whole {
    pub why: Option<String>,
    pub reason: StoreReason,
    pub reference_name: Option<String>,
}

impl Engine {
    /// Stores the local file `path` as the logical object `s3://bucket/key`. The file is
    /// read once into a private snapshot, and what is stored is exactly what was read; a file
    /// that changes while it is read is refused ([`Error::SourceChanged`]) with nothing stored.
    pub async fn put_file(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        self.check_upload_target(bucket, key).await?;
        let (path, name) = (path.to_path_buf(), deltaspace::file_name(key).to_string());
        let progress = self.progress_for(key);
        let source = blocking("snapshot", move || {
            Source::from_file(&path, &name, &progress)
        })
        .await?;
        self.put_source(bucket, key, &source, options).await
    }

    /// Stores everything `reader` yields (standard input, a network body) as the logical
    /// object `s3://bucket/key`. The stream is snapshotted into a private temporary file
    /// first (memory stays bounded); `display` names it in messages. With `expected_size`, a
    /// stream of another length is refused and nothing is stored.
    pub async fn put_reader<R: AsyncRead + Unpin + Send>(
        &self,
        reader: R,
        display: &str,
        expected_size: Option<u64>,
        bucket: &str,
        key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        self.check_upload_target(bucket, key).await?;
        let name = deltaspace::file_name(key);
        let source = Source::from_reader(reader, display, name, expected_size).await?;
        self.put_source(bucket, key, &source, options).await
    }

    /// What an upload to `s3://bucket/key` checks before it writes anything: the key is not
    /// reserved, the bucket exists. Dry runs call it to fail as the real command would.
    pub async fn check_upload_target(&self, bucket: &str, key: &str) -> Result<()> {
        if let Some(reason) = deltaspace::reserved_key_reason(key) {
            return Err(Error::InvalidKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason,
            });
        }
        if !self.store.bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        Ok(())
    }

    /// Stores a snapshot. Ends only when the logical object exists: a concurrent writer of
    /// the other form can, in one interleaving, remove what this one wrote (each judged the
    /// other's form older); then the write is made again.
    pub(crate) async fn put_source(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        let eligible = self.settings.policy.is_eligible(&source.name);
        for _ in 0..ATTEMPTS {
            let whole = |why: Option<&str>, reason| Whole {
                why: why.map(str::to_string),
                reason,
                reference_name: None,
            };
            let report = if !eligible {
                let why = whole(None, StoreReason::NotEligible);
                self.put_direct(bucket, key, source, options, why).await?
            } else if options.no_delta {
                let why = whole(Some("--no-delta"), StoreReason::NoDelta);
                self.put_direct(bucket, key, source, options, why).await?
            } else if source.size == 0 {
                let why = whole(Some("empty file"), StoreReason::Empty);
                self.put_direct(bucket, key, source, options, why).await?
            } else {
                match self.deltaspace_format(bucket, key).await? {
                    StorageFormat::Compatible => {
                        self.put_delta(&CompatibleForm, bucket, key, source, options)
                            .await?
                    }
                    StorageFormat::Compact => {
                        self.put_compact(bucket, key, source, options).await?
                    }
                }
            };
            // Ours is almost always there (one request); only if it is not does the other
            // form, written by a newer concurrent upload, count.
            let other = if report.stored_key == key {
                format!("{key}{DELTA_SUFFIX}")
            } else {
                key.to_string()
            };
            if self
                .store
                .head_object(bucket, &report.stored_key)
                .await?
                .is_some()
                || self.store.head_object(bucket, &other).await?.is_some()
            {
                return Ok(report);
            }
            tracing::warn!(%key, "a concurrent upload of {key} removed this one's object; storing it again");
        }
        Err(Error::storage(
            "store",
            bucket,
            key,
            "concurrent uploads of the same key kept replacing this one",
        ))
    }

    /// After `ours` is stored: removes the logical object's other form if the read rule
    /// says ours replaces it, and then a reference that no delta uses any more (restored
    /// with `protection`, the writer's, if a delta appears meanwhile).
    pub(crate) async fn remove_other_form(
        &self,
        bucket: &str,
        key: &str,
        ours: Form,
        ours_at: DateTime<Utc>,
        protection: &StorageProtection,
    ) -> Result<()> {
        fail::fail_point!("put::before_other_form", |_| Ok(()));
        let other = match ours {
            Form::Direct => format!("{key}{DELTA_SUFFIX}"),
            Form::Delta => key.to_string(),
        };
        let Some(info) = self.store.head_object(bucket, &other).await? else {
            return Ok(());
        };
        let theirs_at = info
            .metadata
            .as_ref()
            .and_then(|m| DgMetadata::parse(m).created_at);
        if !replaces_other_form(ours, ours_at, theirs_at) {
            return Ok(());
        }
        self.store.delete_object(bucket, &other).await?;
        if ours == Form::Direct {
            self.remove_reference_if_unused(bucket, deltaspace::of_key(key), protection)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn put_direct(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
        why: Whole,
    ) -> Result<PutReport> {
        let created = now();
        let meta = DgMetadata::for_direct(&source.name, &source.sha256, source.size, created);
        let progress = self.progress_for(key);
        progress.start(Phase::Uploading, source.size);
        self.store
            .put_object(
                bucket,
                key,
                PutSource::File(source.snapshot.path()),
                options.object.object_put(
                    with_user_metadata(meta.to_user_metadata(), options)?,
                    options.content_type.as_deref(),
                    &source.name,
                ),
            )
            .await?;
        progress.advance(source.size);
        fail::fail_point!("put::after_direct_write");
        self.remove_other_form(
            bucket,
            key,
            Form::Direct,
            created,
            &options.object.protection,
        )
        .await?;
        Ok(PutReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: key.to_string(),
            stored_as: StoredAs::Direct,
            created_reference: false,
            original_size: source.size,
            stored_size: source.size,
            sha256: Some(source.sha256.clone()),
            direct_reason: why.why,
            reason: Some(why.reason),
            reference_name: why.reference_name,
            expansion: None,
        })
    }
}

/// The compatible format's deltas: the file as it is against `reference.bin`, which holds
/// the deltaspace's first file as it was uploaded.
pub(super) struct CompatibleForm;

impl DeltaForm for CompatibleForm {
    fn reference_key(&self, key: &str) -> String {
        deltaspace::reference_key_for(key)
    }

    fn delta_name(&self) -> &'static str {
        "delta"
    }

    /// Creates the deltaspace's reference from the snapshot if there is none. A writer never
    /// deletes a reference once it is visible, not even when this upload then fails (another
    /// writer may already depend on it), other than by the deleter's rule. A reference created
    /// here gets the upload's storage class, encryption and ACL (it holds the same bytes), and
    /// no headers.
    async fn ensure_reference(
        &self,
        engine: &Engine,
        bucket: &str,
        ref_key: &str,
        source: &Source,
        object: &ObjectSettings,
    ) -> Result<Ensured> {
        if let Some(live) = engine.live_reference(bucket, ref_key).await? {
            return Ok(Ensured::Live {
                live: Some(live),
                created: false,
                stored_size: source.size,
            });
        }
        fail::fail_point!("put::before_reference_create");
        let meta = DgMetadata::for_reference(&source.name, &source.sha256, source.size, now());
        let outcome = engine
            .store
            .put_object(
                bucket,
                ref_key,
                PutSource::File(source.snapshot.path()),
                object.reference_put(meta.to_user_metadata()),
            )
            .await?;
        let created = matches!(outcome, PutOutcome::Stored { .. });
        if created {
            // The snapshot is the reference: spare the download that would verify it.
            engine
                .prime_cache(&source.sha256, source.snapshot.file(), ref_key)
                .await;
        }
        fail::fail_point!("put::after_reference_create", |_| Err(Error::io(
            "failpoint put::after_reference_create",
            io::Error::other("injected")
        )));
        Ok(Ensured::Live {
            live: engine.live_reference(bucket, ref_key).await?,
            created,
            stored_size: source.size,
        })
    }

    fn target(&self, source: &Source) -> Result<EncodeTarget> {
        Ok(EncodeTarget {
            file: source.reopen()?,
            size: source.size,
            sha256: source.sha256.clone(),
        })
    }

    fn delta_metadata(&self, engine: &Engine, common: DgMetadata, source: &Source) -> DgMetadata {
        DgMetadata {
            ref_path: Some(REFERENCE_NAME.to_string()),
            delta_cmd: Some(engine.codec.command_description(&source.name)),
            ..common
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(micros).unwrap()
    }

    #[test]
    fn exactly_one_of_two_concurrent_writers_removes_the_other_form() {
        for (direct_at, delta_at) in [(1, 2), (2, 1), (5, 5)] {
            let direct_removes =
                replaces_other_form(Form::Direct, at(direct_at), Some(at(delta_at)));
            let delta_removes = replaces_other_form(Form::Delta, at(delta_at), Some(at(direct_at)));
            assert!(
                direct_removes != delta_removes,
                "direct at {direct_at}, delta at {delta_at}: exactly one must remove the other"
            );
            // and the survivor is the one reads pick: the delta only when strictly newer
            assert_eq!(delta_removes, delta_at > direct_at);
        }
    }

    #[test]
    fn a_form_without_timestamp_is_always_replaced() {
        assert!(replaces_other_form(Form::Direct, at(1), None));
        assert!(replaces_other_form(Form::Delta, at(1), None));
    }
}
