//! Writing in the compact format: the reference `reference.dgx` and deltas between
//! expanded forms, each rebuilt from what will be stored before it is written.
//!
//! The lifecycle is the compatible format's (docs/format.md, "Lifecycle"), run on the
//! reference key `reference.dgx`: the same create-if-absent, the same confirmation after the
//! delta is written, the same deleter's rule.

use std::fs::File;

use super::expanded::{self, Expanded, Mismatch};
use crate::deltaspace;
use crate::engine::delta_upload::Stored;
use crate::engine::delta_upload::{Created, DeltaForm, EncodeTarget};
use crate::engine::put::PutRequestOptions;
use crate::engine::source::{PrivateFile, Source};
use crate::engine::{Engine, StorageFormat, blocking, now};
use crate::error::{IoContext, Result};
use crate::metadata::{DgMetadata, FORMAT_COMPACT};
use crate::storage::{ObjectSettings, PutOutcome, PutSource};

/// A fresh handle on a private file, with its own read position.
fn reopen(file: &PrivateFile) -> Result<File> {
    File::open(file.path()).ctx(|| "cannot reopen a temporary file".into())
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
        let space = deltaspace::of_key(key);
        if let Some(format) = self.recent.format(bucket, space) {
            return Ok(format);
        }
        let format = if self.store.head_object(bucket, &other_key).await?.is_some() {
            other
        } else {
            self.settings.format
        };
        self.recent.saw_format(bucket, space, format);
        Ok(format)
    }

    /// Stores an eligible, non-empty snapshot in the compact format: a delta between
    /// expanded forms, or the file whole when that is not worth it or does not rebuild.
    pub(in crate::engine) async fn put_compact(
        &self,
        bucket: &str,
        key: &str,
        source: &Source,
        options: &PutRequestOptions,
    ) -> Result<Stored> {
        let (snapshot, limits) = (source.reopen()?, self.settings.expansion_limits.clone());
        let expanded = self
            .cpu_bound("expand", move || expanded::expand_file(snapshot, &limits))
            .await?;
        let form = CompactForm {
            expanded: &expanded,
        };
        self.put_delta(&form, bucket, key, source, options).await
    }
}

/// The compact format's deltas: the file's expanded form against the expanded form that
/// `reference.dgx` holds as xz.
struct CompactForm<'a> {
    expanded: &'a Expanded,
}

impl DeltaForm for CompactForm<'_> {
    fn reference_key(&self, key: &str) -> String {
        deltaspace::compact_reference_key_for(key)
    }

    fn delta_name(&self) -> &'static str {
        "compact delta"
    }

    /// Creates `reference.dgx` from the expanded form if there is none, once its xz has been
    /// shown to rebuild the upload.
    async fn create_reference(
        &self,
        engine: &Engine,
        bucket: &str,
        ref_key: &str,
        source: &Source,
        object: &ObjectSettings,
    ) -> Result<Created> {
        let expanded = self.expanded;
        let (input, preset) = (reopen(&expanded.file)?, engine.settings.xz_preset);
        let (expanded_sha, sha) = (expanded.sha256.clone(), source.sha256.clone());
        let (xz, mismatch) = blocking("xz", move || {
            let xz = expanded::compress_xz(&input, preset)?;
            let mismatch = expanded::check_reference(xz.file(), &expanded_sha, &sha)?;
            Ok((xz, mismatch))
        })
        .await?;
        if let Some(why) = mismatch {
            return Ok(Created::NotRebuilt(why));
        }
        let xz_size = xz.file().metadata().map_or(0, |m| m.len());
        let meta = DgMetadata {
            format: Some(FORMAT_COMPACT.to_string()),
            expanded_sha256: Some(expanded.sha256.clone()),
            expanded_size: Some(expanded.size),
            ..DgMetadata::for_reference(&source.name, &source.sha256, source.size, now())
        };
        let outcome = engine
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
            engine
                .prime_cache(&expanded.sha256, expanded.file.file(), ref_key)
                .await;
        }
        Ok(Created::Reference {
            created,
            stored_size: xz_size,
        })
    }

    fn target(&self, _source: &Source) -> Result<EncodeTarget> {
        Ok(EncodeTarget {
            file: reopen(&self.expanded.file)?,
            size: self.expanded.size,
            sha256: self.expanded.sha256.clone(),
        })
    }

    /// Rebuilds the upload from the expanded reference and `delta` as a reader will; what
    /// differs from the upload is the returned reason.
    async fn check_delta(
        &self,
        engine: &Engine,
        reference: &File,
        delta: &PrivateFile,
        source: &Source,
    ) -> Result<Mismatch> {
        let reference = reference
            .try_clone()
            .ctx(|| "cannot reopen the reference".into())?;
        let delta = reopen(delta)?;
        let (codec, sha, size) = (engine.codec.clone(), source.sha256.clone(), source.size);
        blocking("verify", move || {
            expanded::check_delta(&*codec, &reference, &delta, &sha, size)
        })
        .await
    }

    fn delta_metadata(&self, _engine: &Engine, common: DgMetadata, _source: &Source) -> DgMetadata {
        DgMetadata {
            format: Some(FORMAT_COMPACT.to_string()),
            expanded_size: Some(self.expanded.size),
            ..common
        }
    }

    fn expansion(&self) -> Option<String> {
        self.expanded.note.clone()
    }
}
