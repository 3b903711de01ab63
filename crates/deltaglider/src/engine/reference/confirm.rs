//! After a delta is stored: confirming that its reference is still the one it was encoded
//! against, and putting it back (create-if-absent) when a deleter removed it meanwhile.

use std::fs::File;

use super::{LiveReference, is_compact_reference};
use crate::engine::source::PrivateFile;
use crate::engine::{Engine, blocking};
use crate::error::{IoContext, Result};
use crate::storage::{PutOptions, PutOutcome, PutSource, StorageProtection};

impl Engine {
    /// After a delta against `expected` was stored: true if `ref_key` still holds those
    /// bytes, restoring them from `bytes` (verified, held by the writer) when the reference
    /// is gone; false if another reference took its place (the delta must be encoded again).
    /// A restored reference gets its recorded metadata back, and the upload's `protection`
    /// where it asks for any, else the reference's own.
    pub(crate) async fn confirm_reference(
        &self,
        bucket: &str,
        ref_key: &str,
        expected: &LiveReference,
        bytes: &File,
        protection: &StorageProtection,
    ) -> Result<bool> {
        for _ in 0..3 {
            match self.live_reference(bucket, ref_key).await? {
                Some(now) => return Ok(now.sha256 == expected.sha256),
                None => {
                    tracing::warn!(%ref_key, "reference removed under a new delta; restoring it");
                    // A compact reference is held as its content: stored, it is the xz of it.
                    let compressed = if is_compact_reference(ref_key) {
                        let (content, preset) = (
                            File::open(PrivateFile::path_of(bytes))
                                .ctx(|| "cannot reopen the reference".into())?,
                            self.settings.xz_preset,
                        );
                        Some(
                            blocking("xz", move || {
                                crate::engine::compact::compress_xz(&content, preset)
                            })
                            .await?,
                        )
                    } else {
                        None
                    };
                    let path = match &compressed {
                        Some(xz) => xz.path(),
                        None => PrivateFile::path_of(bytes),
                    };
                    self.create_reference(
                        bucket,
                        ref_key,
                        PutSource::File(path),
                        expected,
                        protection,
                    )
                    .await?;
                }
            }
        }
        Ok(false)
    }

    /// Puts `reference` back at `ref_key` (create-if-absent): its metadata as recorded, and
    /// each of `protection`'s settings that is given, else the reference's own.
    pub(super) async fn create_reference(
        &self,
        bucket: &str,
        ref_key: &str,
        from: PutSource,
        reference: &LiveReference,
        protection: &StorageProtection,
    ) -> Result<PutOutcome> {
        self.store
            .put_object(
                bucket,
                ref_key,
                from,
                PutOptions {
                    metadata: reference.metadata.clone(),
                    protection: protection.or(&reference.protection),
                    if_none_match: true,
                    ..Default::default()
                },
            )
            .await
    }
}
