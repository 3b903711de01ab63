//! Writing: a file becomes a reference + zero-diff delta, a delta, or a direct object.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::{Engine, StoredAs, now};
use crate::deltaspace::{self, DELTA_SUFFIX, REFERENCE_NAME};
use crate::error::{Error, IoContext, Result};
use crate::hashing::sha256_reader;
use crate::metadata::{DgMetadata, NOTE_ZERO_DIFF};
use crate::storage::{PutOptions, PutOutcome, PutSource};

/// Per-upload options.
#[derive(Debug, Clone, Default)]
pub struct PutRequestOptions {
    /// Store the file whole even if its extension is delta-eligible.
    pub no_delta: bool,
    /// Overrides the engine's `max_ratio` for this upload.
    pub max_ratio: Option<f64>,
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
            return Err(Error::Config(format!(
                "metadata key '{k}': use ASCII letters, digits, '-' and '_'"
            )));
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
}

/// Identity of the source file, to notice it changing while it is being stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    modified: Option<SystemTime>,
}

fn snapshot(path: &Path) -> Result<Snapshot> {
    let m = std::fs::metadata(path).ctx(|| format!("cannot read {}", path.display()))?;
    if !m.is_file() {
        return Err(Error::io(
            format!("{} is not a regular file", path.display()),
            io::Error::from(io::ErrorKind::InvalidInput),
        ));
    }
    Ok(Snapshot {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// The hashed source file.
struct Source {
    path: PathBuf,
    name: String,
    sha256: String,
    size: u64,
    before: Snapshot,
}

impl Engine {
    /// Stores the local file `path` as the logical object `s3://bucket/key`.
    pub async fn put_file(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        if let Some(reason) = deltaspace::reserved_key_reason(key) {
            return Err(Error::InvalidKey {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason,
            });
        }
        let before = snapshot(path)?;
        if !self.store.bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let hash_path = path.to_path_buf();
        let (sha256, size) = tokio::task::spawn_blocking(move || {
            let f =
                File::open(&hash_path).ctx(|| format!("cannot read {}", hash_path.display()))?;
            sha256_reader(BufReader::with_capacity(1 << 20, f))
                .ctx(|| format!("cannot read {}", hash_path.display()))
        })
        .await
        .map_err(|e| Error::io("hashing task failed", io::Error::other(e)))??;
        let source = Source {
            path: path.to_path_buf(),
            name: deltaspace::file_name(key).to_string(),
            sha256,
            size,
            before,
        };

        let eligible = self.settings.policy.is_eligible(&source.name);
        let report = if !eligible {
            self.put_direct(bucket, key, &source, options, None).await?
        } else if options.no_delta {
            self.put_direct(bucket, key, &source, options, Some("--no-delta".into()))
                .await?
        } else if source.size == 0 {
            self.put_direct(bucket, key, &source, options, Some("empty file".into()))
                .await?
        } else {
            self.put_delta(bucket, key, &source, options).await?
        };
        Ok(report)
    }

    fn ensure_unchanged(&self, source: &Source) -> Result<()> {
        if snapshot(&source.path)? != source.before {
            return Err(Error::SourceChanged {
                path: source.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Uploads, then rolls the object back if the source changed during the upload.
    async fn upload_checked(
        &self,
        bucket: &str,
        stored_key: &str,
        from: PutSource,
        source: &Source,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let outcome = self
            .store
            .put_object(bucket, stored_key, from, options)
            .await?;
        if let Err(e) = self.ensure_unchanged(source) {
            if matches!(outcome, PutOutcome::Stored { .. }) {
                let _ = self.store.delete_object(bucket, stored_key).await;
            }
            return Err(e);
        }
        Ok(outcome)
    }

    async fn put_direct(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
        direct_reason: Option<String>,
    ) -> Result<PutReport> {
        let meta = DgMetadata::for_direct(&source.name, &source.sha256, source.size, now());
        self.upload_checked(
            bucket,
            key,
            PutSource::File(source.path.clone()),
            source,
            options.object.object_put(
                with_user_metadata(meta.to_user_metadata(), options)?,
                options.content_type.as_deref(),
                &source.name,
            ),
        )
        .await?;
        // The logical object now lives here; a delta of an older version must not shadow it.
        let stale = format!("{key}{DELTA_SUFFIX}");
        if self.store.head_object(bucket, &stale).await?.is_some() {
            self.store.delete_object(bucket, &stale).await?;
            self.remove_reference_if_unused(bucket, deltaspace::of_key(key))
                .await?;
        }
        Ok(PutReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: key.to_string(),
            stored_as: StoredAs::Direct,
            created_reference: false,
            original_size: source.size,
            stored_size: source.size,
            sha256: Some(source.sha256.clone()),
            direct_reason,
        })
    }

    /// The SHA-256 recorded on a deltaspace's reference, `None` if there is no reference.
    async fn reference_sha(&self, bucket: &str, ref_key: &str) -> Result<Option<String>> {
        let Some(info) = self.store.head_object(bucket, ref_key).await? else {
            return Ok(None);
        };
        let meta = DgMetadata::parse(info.metadata.as_ref().unwrap_or(&Default::default()));
        meta.file_sha256
            .map(Some)
            .ok_or_else(|| Error::InvalidMetadata {
                bucket: bucket.to_string(),
                key: ref_key.to_string(),
                reason: "reference has no dg-file-sha256; refusing to build deltas against it"
                    .into(),
            })
    }

    async fn put_delta(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        let space = deltaspace::of_key(key);
        let ref_key = deltaspace::join(space, REFERENCE_NAME);
        let mut created_reference = false;
        // A store that ignores If-None-Match lets a concurrent writer replace the reference
        // under us; we notice by re-reading it after writing our delta, and redo the delta.
        for _attempt in 0..3 {
            let ref_sha = match self.reference_sha(bucket, &ref_key).await? {
                Some(sha) => sha,
                None => {
                    let meta =
                        DgMetadata::for_reference(&source.name, &source.sha256, source.size, now());
                    let outcome = self
                        .upload_checked(
                            bucket,
                            &ref_key,
                            PutSource::File(source.path.clone()),
                            source,
                            options.object.reference_put(meta.to_user_metadata()),
                        )
                        .await?;
                    created_reference = matches!(outcome, PutOutcome::Stored { .. });
                    match self.reference_sha(bucket, &ref_key).await? {
                        Some(sha) => sha,
                        None => continue,
                    }
                }
            };
            let written = self
                .write_delta(
                    bucket,
                    key,
                    &ref_key,
                    &ref_sha,
                    source,
                    options,
                    created_reference,
                )
                .await;
            let report = match written {
                Ok(r) => r,
                Err(e) => {
                    // A reference without any delta would be an orphan: take back what we made.
                    if created_reference {
                        let _ = self.store.delete_object(bucket, &ref_key).await;
                    }
                    return Err(e);
                }
            };
            if self.reference_sha(bucket, &ref_key).await?.as_deref() == Some(ref_sha.as_str()) {
                return Ok(report);
            }
            tracing::warn!(%ref_key, "reference was replaced while storing {key}; re-encoding");
            created_reference = false;
        }
        Err(Error::Storage {
            operation: "store".into(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            detail: format!("reference {ref_key} kept changing while the delta was written"),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_delta(
        &self,
        bucket: &str,
        key: &str,
        ref_key: &str,
        ref_sha: &str,
        source: &Source,
        options: &PutRequestOptions,
        created_reference: bool,
    ) -> Result<PutReport> {
        let reference = self
            .reference_handle(bucket, ref_key, ref_sha, &format!("s3://{bucket}/{key}"))
            .await?;
        let target =
            File::open(&source.path).ctx(|| format!("cannot read {}", source.path.display()))?;
        let delta_file = tempfile::Builder::new()
            .prefix("deltaglider-delta-")
            .tempfile()
            .ctx(|| "cannot create a temporary file".into())?;
        let (out, delta_path) = delta_file.into_parts();
        let codec = self.codec.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut w = io::BufWriter::with_capacity(1 << 20, out);
            codec.encode(&reference, &target, &mut w)?;
            w.into_inner()
                .map_err(|e| Error::io("cannot write the delta", e.into_error()))
        })
        .await
        .map_err(|e| Error::io("encoder task failed", io::Error::other(e)))??;
        let delta_size = out.metadata().ctx(|| "cannot stat the delta".into())?.len();
        drop(out);

        let max_ratio = options.max_ratio.unwrap_or(self.settings.max_ratio);
        let zero_diff = ref_sha == source.sha256;
        if !zero_diff && delta_size as f64 >= max_ratio * source.size as f64 {
            let reason = format!(
                "delta is {:.1}% of the file, not below --max-ratio {max_ratio}",
                100.0 * delta_size as f64 / source.size as f64
            );
            return self
                .put_direct(bucket, key, source, options, Some(reason))
                .await;
        }

        let stored_key = format!("{key}{DELTA_SUFFIX}");
        let meta = DgMetadata {
            ref_key: Some(ref_key.to_string()),
            ref_path: Some(REFERENCE_NAME.to_string()),
            ref_sha256: Some(ref_sha.to_string()),
            delta_size: Some(delta_size),
            delta_cmd: Some(self.codec.command_description(&source.name)),
            note: zero_diff.then(|| NOTE_ZERO_DIFF.to_string()),
            compression: None,
            ..DgMetadata::for_direct(&source.name, &source.sha256, source.size, now())
        };
        self.upload_checked(
            bucket,
            &stored_key,
            PutSource::File(delta_path.to_path_buf()),
            source,
            options.object.object_put(
                with_user_metadata(meta.to_user_metadata(), options)?,
                options.content_type.as_deref(),
                &source.name,
            ),
        )
        .await?;
        // A direct copy of an older version would shadow the delta for the Python tool.
        if self.store.head_object(bucket, key).await?.is_some() {
            self.store.delete_object(bucket, key).await?;
        }
        Ok(PutReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key,
            stored_as: StoredAs::Delta,
            created_reference,
            original_size: source.size,
            stored_size: delta_size + if created_reference { source.size } else { 0 },
            sha256: Some(source.sha256.clone()),
            direct_reason: None,
        })
    }
}
