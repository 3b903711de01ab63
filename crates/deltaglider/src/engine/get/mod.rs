//! Reading: resolve a logical key to what is stored, rebuild it, verify it, expose it.

mod download;
mod rebuild;

use std::io::{self, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::integrity::has_deltaglider_keys;
use super::{Engine, StoredAs};
use crate::deltaspace::DELTA_SUFFIX;
use crate::error::{Error, Result};
use crate::metadata::DgMetadata;
use crate::storage::{ObjectBody, ObjectInfo};

/// What a download did.
#[derive(Debug, Clone, Serialize)]
pub struct GetReport {
    /// Bucket read from.
    pub bucket: String,
    /// The logical key asked for.
    pub key: String,
    /// The key actually read (`<key>.delta` for deltas).
    pub stored_key: String,
    /// How the object was stored, hence how it was rebuilt.
    pub stored_as: StoredAs,
    /// Bytes written, i.e. the size of the original.
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes written.
    pub sha256: String,
    /// True if the bytes were checked against a recorded SHA-256.
    pub verified: bool,
    /// The local file the bytes were renamed into.
    pub destination: Option<PathBuf>,
}

/// Outcome of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Bucket read from.
    pub bucket: String,
    /// The logical key checked.
    pub key: String,
    /// The key actually read (`<key>.delta` for deltas).
    pub stored_key: String,
    /// How the object is stored.
    pub stored_as: StoredAs,
    /// `dg-file-sha256`; `None` for plain objects, which have nothing to check against.
    pub expected_sha256: Option<String>,
    /// Lowercase hex SHA-256 of the rebuilt bytes.
    pub actual_sha256: String,
    /// Size of the rebuilt bytes.
    pub size: u64,
    /// The hashes match, or there is no recorded hash (plain objects).
    pub valid: bool,
}

/// What DeltaGlider knows about one logical object (the Python SDK's `DeltaGliderInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDetails {
    /// Bucket of the object.
    pub bucket: String,
    /// The logical key.
    pub key: String,
    /// The key that holds the bytes (`<key>.delta` for deltas).
    pub stored_key: String,
    /// How the object is stored.
    pub stored_as: StoredAs,
    /// Size of the original file.
    pub size: u64,
    /// Bytes this object occupies in the store (the delta for deltas).
    pub stored_size: u64,
    /// `1 - stored/original` in percent (0 for objects stored whole).
    pub savings_percent: f64,
    /// Lowercase hex SHA-256 of the original (`dg-file-sha256`); `None` for plain objects.
    pub sha256: Option<String>,
    /// `dg-created-at`: when DeltaGlider wrote it; `None` for plain objects.
    pub created_at: Option<DateTime<Utc>>,
    /// The store's modification time of the stored object.
    pub last_modified: Option<DateTime<Utc>>,
    /// `Content-Type` of the stored object, if the store has one.
    pub content_type: Option<String>,
    /// Caller metadata given at upload.
    pub user_metadata: crate::metadata::UserMetadata,
    /// `Cache-Control`, `Content-Disposition`, `Content-Encoding`, `Content-Language` and
    /// `Expires` recorded with the stored object.
    #[serde(skip_serializing_if = "crate::storage::ObjectHeaders::is_empty")]
    pub headers: crate::storage::ObjectHeaders,
    /// The entity tag of the original, quoted as S3 reports it (see [`logical_etag`](crate::engine::logical_etag)).
    pub etag: Option<String>,
}

impl ObjectDetails {
    pub(super) fn new(bucket: &str, key: &str, r: &Resolved) -> Self {
        let size = match r.stored_as {
            StoredAs::Delta => r.meta.file_size.unwrap_or(r.info.size),
            _ => r.info.size,
        };
        ObjectDetails {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: r.stored_key.clone(),
            stored_as: r.stored_as,
            size,
            stored_size: r.info.size,
            savings_percent: if size == 0 {
                0.0
            } else {
                100.0 - 100.0 * r.info.size as f64 / size as f64
            },
            sha256: r.meta.file_sha256.clone(),
            created_at: r.meta.created_at,
            last_modified: r.info.last_modified,
            content_type: r.info.content_type.clone(),
            user_metadata: r
                .info
                .metadata
                .as_ref()
                .map(crate::metadata::user_metadata)
                .unwrap_or_default(),
            headers: r.info.headers.clone(),
            etag: crate::engine::etag::logical_etag(
                r.stored_as,
                r.info.etag.as_deref(),
                r.meta.file_sha256.as_deref(),
            ),
        }
    }
}

/// The bytes of an object rebuilt into a writer, before their hash is compared.
struct Rebuilt<W> {
    sha256: String,
    size: u64,
    out: W,
    /// The compressor the output went through, for deltas xdelta3 made from
    /// externally decompressed data.
    recompressed_with: Option<&'static str>,
}

/// A logical key resolved to the stored object that represents it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub stored_key: String,
    pub info: ObjectInfo,
    pub meta: DgMetadata,
    pub stored_as: StoredAs,
}

/// Copies an async body into a synchronous writer (local files, hashers).
pub(crate) async fn drain_into(
    mut body: ObjectBody,
    out: &mut (dyn Write + Send),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn created_at(info: &ObjectInfo) -> Option<DateTime<Utc>> {
    info.metadata
        .as_ref()
        .and_then(|m| DgMetadata::parse(m).created_at)
}

impl Engine {
    /// Finds what stores the logical `key`. When both `<key>` and `<key>.delta` exist (only
    /// other tools or an interrupted overwrite leave both), the one with the newer
    /// `dg-created-at` wins; if either has no timestamp, `<key>` wins, as in the Python tool.
    pub(crate) async fn resolve(&self, bucket: &str, key: &str) -> Result<Resolved> {
        let delta_key = format!("{key}{DELTA_SUFFIX}");
        let (direct, delta) = if key.ends_with(DELTA_SUFFIX) {
            (self.store.head_object(bucket, key).await?, None)
        } else {
            let (a, b) = tokio::join!(
                self.store.head_object(bucket, key),
                self.store.head_object(bucket, &delta_key)
            );
            (a?, b?)
        };
        let info = match (direct, delta) {
            (None, None) => {
                if !self.store.bucket_exists(bucket).await? {
                    return Err(Error::NoSuchBucket(bucket.to_string()));
                }
                return Err(Error::NotFound {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
            (Some(d), None) => d,
            (None, Some(x)) => x,
            (Some(d), Some(x)) => match (created_at(&d), created_at(&x)) {
                (Some(td), Some(tx)) if tx > td => x,
                _ => d,
            },
        };
        let raw = info.metadata.clone().unwrap_or_default();
        let meta = DgMetadata::parse(&raw);
        // Before anything is read or written: a newer writer's format is refused by name.
        super::compact::object_format(bucket, &info.key, &meta)?;
        let claimed = meta.is_deltaglider() || has_deltaglider_keys(&raw);
        // `<key>.delta` standing for `<key>` is a delta whatever its metadata says: if that
        // is incomplete, reading it is an integrity error, never its VCDIFF bytes served as
        // the file. Only a `.delta` asked for by its own name, with no DeltaGlider metadata,
        // is somebody else's plain object.
        let stored_as = if info.key.ends_with(DELTA_SUFFIX) && (claimed || info.key != key) {
            StoredAs::Delta
        } else if claimed {
            StoredAs::Direct
        } else {
            StoredAs::Plain
        };
        Ok(Resolved {
            stored_key: info.key.clone(),
            info,
            meta,
            stored_as,
        })
    }

    /// Describes the logical object `key` without reading its bytes.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectDetails> {
        let resolved = self.resolve(bucket, key).await?;
        Ok(ObjectDetails::new(bucket, key, &resolved))
    }
}
