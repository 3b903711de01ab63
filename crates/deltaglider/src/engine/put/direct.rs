//! Storing a file whole, and removing the logical object's other form once a write is
//! acknowledged.

use chrono::{DateTime, Utc};

use super::{Form, PutReport, PutRequestOptions, Whole, replaces_other_form, with_user_metadata};
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::engine::progress::Phase;
use crate::engine::source::Source;
use crate::engine::{Engine, StoredAs, now};
use crate::error::Result;
use crate::metadata::DgMetadata;
use crate::storage::{PutSource, StorageProtection};

impl Engine {
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

    pub(in crate::engine) async fn put_direct(
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
