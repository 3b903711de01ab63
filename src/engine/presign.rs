//! Presigned downloads. A delta cannot be served by a URL, so its original is rebuilt
//! ("rehydrated") under `.deltaglider/tmp/` with an expiry, as the Python tool does, and the
//! URL points there. The rehydrated name carries the content hash, so a still-valid copy is
//! reused instead of rebuilt; `purge` removes expired ones.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Engine, StoredAs, now};
use crate::deltaspace::{self, INTERNAL_PREFIX};
use crate::error::{Error, IoContext, Result};
use crate::metadata::{self, UserMetadata};
use crate::storage::{ListRequest, PutOptions, PutSource};

/// Where rehydrated copies live.
pub const REHYDRATED_PREFIX: &str = ".deltaglider/tmp/";
/// A rehydrated copy outlives the URLs made for it by this much.
const REHYDRATION_MARGIN: Duration = Duration::from_secs(3600);

/// A presigned download.
#[derive(Debug, Clone, Serialize)]
pub struct PresignedUrl {
    /// The URL; anyone holding it can download until `expires_at`.
    pub url: String,
    /// The key the URL serves (a rehydrated copy for deltas).
    pub served_key: String,
    /// When the URL stops working (a rehydrated copy is kept an hour longer).
    pub expires_at: DateTime<Utc>,
    /// True if the object was rebuilt for this URL (false: served directly or reused).
    pub rehydrated: bool,
}

/// What `purge` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    /// Objects found under [`REHYDRATED_PREFIX`].
    pub examined: usize,
    /// Keys removed because their `dg-expires-at` had passed.
    pub deleted: Vec<String>,
    /// Objects left: not expired yet, or without a readable `dg-expires-at`.
    pub kept: usize,
}

fn expiry_of(meta: &UserMetadata) -> Option<DateTime<Utc>> {
    meta.get("dg-expires-at")
        .and_then(|v| metadata::parse_timestamp(v))
}

impl Engine {
    /// A URL to download the logical object `key` for `expires_in`.
    pub async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedUrl> {
        let resolved = self.resolve(bucket, key).await?;
        let name = deltaspace::file_name(key);
        let expires_at = now()
            + chrono::Duration::from_std(expires_in)
                .map_err(|_| Error::Config("expiry too long".into()))?;
        if resolved.stored_as != StoredAs::Delta {
            let url = self
                .store
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
        let reusable = match self.store.head_object(bucket, &served_key).await? {
            Some(info) => info
                .metadata
                .as_ref()
                .and_then(expiry_of)
                .is_some_and(|t| t >= expires_at),
            None => false,
        };
        if !reusable {
            let (_, file) = self.get_verified(bucket, key).await?;
            let scratch =
                tempfile::NamedTempFile::new().ctx(|| "cannot create a temporary file".into())?;
            let mut reader = file;
            std::io::copy(&mut reader, &mut scratch.as_file())
                .ctx(|| "cannot write the temporary file".into())?;
            let keep_until =
                expires_at + chrono::Duration::from_std(REHYDRATION_MARGIN).expect("small");
            let mut meta = UserMetadata::new();
            meta.insert(
                "dg-expires-at".into(),
                metadata::format_timestamp(keep_until),
            );
            meta.insert("dg-original-key".into(), metadata::encode_text(key));
            meta.insert("dg-original-filename".into(), metadata::encode_text(name));
            meta.insert("dg-rehydrated".into(), "true".into());
            meta.insert("dg-created-at".into(), metadata::format_timestamp(now()));
            self.store
                .put_object(
                    bucket,
                    &served_key,
                    PutSource::File(scratch.path().to_path_buf()),
                    PutOptions {
                        metadata: meta,
                        content_type: resolved.info.content_type.clone(),
                        headers: resolved.info.headers.clone(),
                        ..Default::default()
                    },
                )
                .await?;
        }
        let url = self
            .store
            .presign_get(bucket, &served_key, expires_in, Some(name))
            .await?;
        Ok(PresignedUrl {
            url,
            served_key,
            expires_at,
            rehydrated: !reusable,
        })
    }

    /// Deletes rehydrated copies under `.deltaglider/tmp/` whose `dg-expires-at` has passed.
    pub async fn purge(&self, bucket: &str) -> Result<PurgeReport> {
        if !self.store.bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let mut report = PurgeReport::default();
        let mut request = ListRequest {
            prefix: REHYDRATED_PREFIX.to_string(),
            ..Default::default()
        };
        let now = now();
        loop {
            let page = self.store.list_objects(bucket, &request).await?;
            for o in page.objects {
                report.examined += 1;
                let meta = match o.metadata {
                    Some(m) => Some(m),
                    None => self
                        .store
                        .head_object(bucket, &o.key)
                        .await?
                        .and_then(|h| h.metadata),
                };
                if meta.as_ref().and_then(expiry_of).is_some_and(|t| t < now) {
                    self.store.delete_object(bucket, &o.key).await?;
                    report.deleted.push(o.key);
                } else {
                    report.kept += 1;
                }
            }
            match page.next_token {
                Some(t) => request.continuation_token = Some(t),
                None => break,
            }
        }
        debug_assert!(REHYDRATED_PREFIX.starts_with(INTERNAL_PREFIX));
        Ok(report)
    }
}
