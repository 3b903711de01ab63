//! Presigned downloads. A delta cannot be served by a URL, so its original is rebuilt
//! ("rehydrated") under `.deltaglider/tmp/` with an expiry, as the Python tool does, and the
//! URL points there. The rehydrated name carries the content hash, so a still-valid copy is
//! reused instead of rebuilt; `purge` removes those whose URLs have all expired. The URL is
//! signed before anything is rebuilt, so a store that cannot sign one (the local store,
//! which serves no HTTP) fails without leaving a copy behind.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Engine, StoredAs, now};
use crate::deltaspace;
use crate::error::{Error, IoContext, Result};
use crate::metadata::{self, UserMetadata};
use crate::storage::{PutOptions, PutSource};

/// Where rehydrated copies live.
pub const REHYDRATED_PREFIX: &str = ".deltaglider/tmp/";

/// When a rehydrated copy's last URL expires.
pub(super) fn expiry_of(meta: &UserMetadata) -> Option<DateTime<Utc>> {
    meta.get("dg-expires-at")
        .and_then(|v| metadata::parse_timestamp(v))
}

/// A presigned download.
#[derive(Debug, Clone, Serialize)]
pub struct PresignedUrl {
    /// The URL; anyone holding it can download until `expires_at`.
    pub url: String,
    /// The key the URL serves (a rehydrated copy for deltas).
    pub served_key: String,
    /// When the URL stops working; `purge` removes a rehydrated copy after that.
    pub expires_at: DateTime<Utc>,
    /// True if the object was rebuilt for this URL (false: served directly or reused).
    pub rehydrated: bool,
}

impl Engine {
    /// A URL to download the logical object `key` for `expires_in`.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedUrl> {
        // A store that cannot presign (the local store) fails here, before anything is
        // resolved, rebuilt or written.
        let presigner = self.store.presigner().ok_or_else(|| Error::Unsupported {
            operation: format!("cannot presign s3://{bucket}/{key}"),
            reason: format!(
                "presigned URLs need an S3 endpoint; the {} serves no HTTP",
                self.store.describe()
            ),
        })?;
        let resolved = self.resolve(bucket, key).await?;
        let name = deltaspace::file_name(key);
        let expires_at = now()
            + chrono::Duration::from_std(expires_in)
                .map_err(|_| Error::invalid("presign expiry", "too long"))?;
        if resolved.stored_as != StoredAs::Delta {
            let url = presigner
                .presign_get(bucket, &resolved.stored_key, expires_in, Some(name))
                .await?;
            return Ok(PresignedUrl {
                url,
                served_key: resolved.stored_key,
                expires_at,
                rehydrated: false,
            });
        }
        let sha = resolved.meta.file_sha256.clone().unwrap_or_default();
        let served_key = format!("{REHYDRATED_PREFIX}{sha}_{name}");
        // Signing before rebuilding: a URL that cannot be signed leaves nothing behind.
        let url = presigner
            .presign_get(bucket, &served_key, expires_in, Some(name))
            .await?;
        let reusable = match self.store.head_object(bucket, &served_key).await? {
            Some(info) => info
                .metadata
                .as_ref()
                .and_then(expiry_of)
                .is_some_and(|t| t >= expires_at),
            None => false,
        };
        if !reusable {
            // Rebuilt and verified in a private unnamed file: nothing is left on any path,
            // a killed process included.
            let scratch = super::source::PrivateFile::new()?;
            let file = scratch
                .file()
                .try_clone()
                .ctx(|| "cannot write the temporary file".into())?;
            self.rebuild_verified(bucket, key, &resolved, file).await?;
            let mut meta = UserMetadata::new();
            // The copy lives exactly as long as the URL made for it (a reused copy, as
            // long as the longest); `purge` removes it after that.
            meta.insert(
                "dg-expires-at".into(),
                metadata::format_timestamp(expires_at),
            );
            meta.insert("dg-original-key".into(), metadata::encode_text(key));
            meta.insert("dg-original-filename".into(), metadata::encode_text(name));
            meta.insert("dg-rehydrated".into(), "true".into());
            meta.insert("dg-created-at".into(), metadata::format_timestamp(now()));
            // The copy carries its hash and size, so that reading it is verified too.
            meta.insert("dg-file-sha256".into(), sha.clone());
            if let Some(size) = resolved.meta.file_size {
                meta.insert("dg-file-size".into(), size.to_string());
            }
            self.store
                .put_object(
                    bucket,
                    &served_key,
                    PutSource::File(scratch.path()),
                    PutOptions {
                        metadata: meta,
                        content_type: resolved.info.content_type.clone(),
                        headers: resolved.info.headers.clone(),
                        ..Default::default()
                    },
                )
                .await?;
        }
        Ok(PresignedUrl {
            url,
            served_key,
            expires_at,
            rehydrated: !reusable,
        })
    }
}
