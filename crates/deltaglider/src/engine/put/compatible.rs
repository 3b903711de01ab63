//! The compatible format's delta form: the file as it is against `reference.bin`.

use crate::deltaspace::{self, REFERENCE_NAME};
use crate::engine::delta_upload::{Created, DeltaForm, EncodeTarget};
use crate::engine::source::Source;
use crate::engine::{Engine, now};
use crate::error::Result;
use crate::metadata::DgMetadata;
use crate::storage::{ObjectSettings, PutOutcome, PutSource};

/// The compatible format's deltas: the file as it is against `reference.bin`, which holds
/// the deltaspace's first file as it was uploaded.
pub(in crate::engine) struct CompatibleForm;

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
    async fn create_reference(
        &self,
        engine: &Engine,
        bucket: &str,
        ref_key: &str,
        source: &Source,
        object: &ObjectSettings,
    ) -> Result<Created> {
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
        Ok(Created::Reference {
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
