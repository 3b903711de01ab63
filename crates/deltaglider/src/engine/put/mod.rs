//! Writing: a file becomes a reference + zero-diff delta, a delta, or a direct object.
//!
//! The lifecycle rules that keep every acknowledged upload recoverable are in
//! `docs/format.md` ("Lifecycle"); each step below names the rule it follows.

mod compatible;
mod direct;

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncRead;

use super::delta_upload::Stored;
use super::reason::StoreReason;
use super::source::Source;
use super::{Engine, StorageFormat, StoredAs, blocking};
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::error::{Error, Result};

use compatible::CompatibleForm;

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
        if !self.bucket_exists_recently(bucket).await? {
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
            let why = if !eligible {
                Some(whole(None, StoreReason::NotEligible))
            } else if options.no_delta {
                Some(whole(Some("--no-delta"), StoreReason::NoDelta))
            } else if source.size == 0 {
                Some(whole(Some("empty file"), StoreReason::Empty))
            } else {
                None
            };
            let Stored { report, seen } = match why {
                Some(why) => {
                    Stored::unseen(self.put_direct(bucket, key, source, options, why).await?)
                }
                None => match self.deltaspace_format(bucket, key).await? {
                    StorageFormat::Compatible => {
                        self.put_delta(&CompatibleForm, bucket, key, source, options)
                            .await?
                    }
                    StorageFormat::Compact => {
                        self.put_compact(bucket, key, source, options).await?
                    }
                },
            };
            if seen {
                return Ok(report);
            }
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
