//! Copying between locations in the store: deltas are rebuilt and stored again against the
//! destination's reference (delta bytes mean nothing outside their deltaspace); objects
//! stored whole that stay whole are copied server-side, never downloaded.

use super::get::Resolved;
use super::put::{Form, with_user_metadata};
use super::source::Source;
use super::{Engine, PutReport, PutRequestOptions, StoredAs};
use crate::deltaspace;
use crate::error::{Error, IoContext, Result};
use crate::metadata::{USER_PREFIX, UserMetadata, user_metadata};
use crate::storage::{CopyOptions, MetadataDirective, ObjectSettings, ReplacedMetadata};

impl Engine {
    /// Copies the logical object `s3://src_bucket/src_key` to `s3://dst_bucket/dst_key`.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        if let Some(reason) = deltaspace::reserved_key_reason(dst_key) {
            return Err(Error::InvalidKey {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                reason,
            });
        }
        // Onto itself, a copy only makes sense when it replaces the metadata (as in S3).
        if (src_bucket, src_key) == (dst_bucket, dst_key)
            && options.object.metadata_directive != MetadataDirective::Replace
        {
            return Err(Error::InvalidKey {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                reason: "source and destination are the same object (and the copy replaces \
                         no metadata)"
                    .into(),
            });
        }
        let resolved = self.resolve(src_bucket, src_key).await?;
        let options = &carried_options(&resolved, options);
        let name = deltaspace::file_name(dst_key);
        let stays_whole = resolved.stored_as != StoredAs::Delta
            && (options.no_delta || !self.settings.policy.is_eligible(name));
        if stays_whole {
            if !self.store.bucket_exists(dst_bucket).await? {
                return Err(Error::NoSuchBucket(dst_bucket.to_string()));
            }
            let copy = server_copy_options(&resolved, options, name)?;
            let copied_at = super::now();
            self.store
                .copy_object(src_bucket, &resolved.stored_key, dst_bucket, dst_key, copy)
                .await?;
            // A server-side copy keeps the source's dg-created-at; the copy is newer than
            // any delta form already at the destination all the same.
            self.remove_other_form(
                dst_bucket,
                dst_key,
                Form::Direct,
                copied_at,
                &options.object.protection,
            )
            .await?;
            return Ok(PutReport {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                stored_key: dst_key.to_string(),
                stored_as: resolved.stored_as,
                created_reference: false,
                original_size: resolved.info.size,
                stored_size: resolved.info.size,
                sha256: resolved.meta.file_sha256.clone(),
                direct_reason: None,
                reason: None,
                reference_name: None,
                expansion: None,
            });
        }
        self.check_upload_target(dst_bucket, dst_key).await?;
        // Rebuilt and verified into an unnamed temporary file, which is then the upload's
        // snapshot: nothing named is left behind if the process dies.
        let file = tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
        let (file, sha256) = self
            .rebuild_verified(src_bucket, src_key, &resolved, file)
            .await?;
        let size = file
            .metadata()
            .ctx(|| "cannot read the rebuilt object".into())?
            .len();
        let source = Source::from_verified(file, name, sha256, size);
        self.put_source(dst_bucket, dst_key, &source, options).await
    }
}

/// What a copy writes besides the bytes. `COPY`: the source's user metadata, `Content-Type`
/// and headers; `REPLACE`: the request's. Storage class, encryption and ACL always come from
/// the request, as with S3's `CopyObject`.
fn carried_options(resolved: &Resolved, options: &PutRequestOptions) -> PutRequestOptions {
    if options.object.metadata_directive == MetadataDirective::Replace {
        return options.clone();
    }
    let raw = resolved.info.metadata.clone().unwrap_or_default();
    PutRequestOptions {
        content_type: resolved.info.content_type.clone(),
        // Another tool's object: all its metadata is its writer's.
        user_metadata: if resolved.stored_as == StoredAs::Plain {
            raw
        } else {
            user_metadata(&raw)
        },
        object: ObjectSettings {
            headers: resolved.info.headers.clone(),
            guess_content_type: false,
            ..options.object.clone()
        },
        ..options.clone()
    }
}

/// The server-side copy of an object stored whole: `COPY` lets the store keep the source's
/// metadata; `REPLACE` keeps DeltaGlider's own entries and swaps the caller's.
fn server_copy_options(
    resolved: &Resolved,
    options: &PutRequestOptions,
    name: &str,
) -> Result<CopyOptions> {
    let replace = match options.object.metadata_directive {
        MetadataDirective::Copy => None,
        MetadataDirective::Replace => {
            let ours: UserMetadata = match resolved.stored_as {
                StoredAs::Plain => UserMetadata::new(),
                _ => resolved
                    .info
                    .metadata
                    .iter()
                    .flatten()
                    .filter(|(k, _)| !k.starts_with(USER_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            Some(ReplacedMetadata {
                metadata: with_user_metadata(ours, options)?,
                content_type: options
                    .object
                    .content_type(options.content_type.as_deref(), name),
                headers: options.object.headers.clone(),
            })
        }
    };
    Ok(CopyOptions {
        replace,
        protection: options.object.protection.clone(),
    })
}
