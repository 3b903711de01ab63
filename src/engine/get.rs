//! Reading: resolve a logical key to what is stored, rebuild it, verify it, expose it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::{Engine, StoredAs};
use crate::codec::native::external::Compressor;
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;
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
}

impl ObjectDetails {
    fn new(bucket: &str, key: &str, r: &Resolved) -> Self {
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
        let meta = DgMetadata::parse(info.metadata.as_ref().unwrap_or(&Default::default()));
        let stored_as = if info.key.ends_with(DELTA_SUFFIX) && meta.is_deltaglider() {
            StoredAs::Delta
        } else if meta.is_deltaglider() {
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

    /// Rebuilds the bytes of a resolved object into `out`. For deltas the reference is
    /// verified before decoding; the caller compares the result.
    async fn reconstruct<W: Write + Send + 'static>(
        &self,
        bucket: &str,
        resolved: &Resolved,
        out: W,
    ) -> Result<Rebuilt<W>> {
        let what = format!("s3://{bucket}/{}", resolved.stored_key);
        match resolved.stored_as {
            StoredAs::Delta => {
                let ref_sha =
                    resolved
                        .meta
                        .ref_sha256
                        .clone()
                        .ok_or_else(|| Error::InvalidMetadata {
                            bucket: bucket.to_string(),
                            key: resolved.stored_key.clone(),
                            reason: "delta has no dg-ref-sha256".into(),
                        })?;
                let ref_key = resolved
                    .meta
                    .reference_key(deltaspace::of_key(&resolved.stored_key));
                let reference = self
                    .reference_handle(bucket, &ref_key, &ref_sha, &what)
                    .await?;
                let reader = self.store.get_object(bucket, &resolved.stored_key).await?;
                let mut delta =
                    tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
                drain_into(reader.body, &mut delta)
                    .await
                    .ctx(|| format!("cannot download {what}"))?;
                // A malformed header is the codec's to report, with the object's name.
                let recompressed_with = crate::codec::read_header(&delta, "decode")
                    .ok()
                    .and_then(|h| h.external_compression().target)
                    .and_then(|ident| Compressor::from_ident(ident).ok())
                    .map(Compressor::name);
                let codec = self.codec.clone();
                tokio::task::spawn_blocking(move || {
                    let mut hashing =
                        HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
                    codec
                        .decode(&reference, &delta, &mut hashing)
                        .map_err(|e| match e {
                            Error::Codec { operation, detail } => Error::Codec {
                                operation,
                                detail: format!("{what}: {detail}"),
                            },
                            other => other,
                        })?;
                    let (sha256, size, buffered) = hashing.into_parts();
                    let out = buffered
                        .into_inner()
                        .map_err(|e| Error::io("cannot write the output", e.into_error()))?;
                    Ok(Rebuilt {
                        sha256,
                        size,
                        out,
                        recompressed_with,
                    })
                })
                .await
                .map_err(|e| Error::io("decoder task failed", io::Error::other(e)))?
            }
            StoredAs::Direct | StoredAs::Plain | StoredAs::Whole => {
                let reader = self.store.get_object(bucket, &resolved.stored_key).await?;
                let mut hashing = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
                drain_into(reader.body, &mut hashing)
                    .await
                    .ctx(|| format!("cannot download {what}"))?;
                let (sha256, size, buffered) = hashing.into_parts();
                let out = buffered
                    .into_inner()
                    .map_err(|e| Error::io("cannot write the output", e.into_error()))?;
                Ok(Rebuilt {
                    sha256,
                    size,
                    out,
                    recompressed_with: None,
                })
            }
        }
    }

    /// Downloads the logical object `key` to `dest`. The bytes go to a temporary file next
    /// to `dest`, are checked against the recorded SHA-256, and only then renamed into place:
    /// `dest` never holds partial or unverified content.
    pub async fn get_to_file(&self, bucket: &str, key: &str, dest: &Path) -> Result<GetReport> {
        let resolved = self.resolve(bucket, key).await?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".dgtmp")
            .tempfile_in(&parent)
            .ctx(|| format!("cannot create a file in {}", parent.display()))?;
        let (file, temp_path) = temp.into_parts();
        let rebuilt = self.reconstruct(bucket, &resolved, file).await?;
        let verified = self.check(bucket, key, &resolved, &rebuilt)?;
        let Rebuilt {
            sha256: sha,
            size,
            out: file,
            ..
        } = rebuilt;
        file.sync_all()
            .ctx(|| format!("cannot write {}", dest.display()))?;
        if let Some(t) = resolved.info.last_modified {
            let _ = file.set_modified(t.into());
        }
        drop(file);
        temp_path
            .persist(dest)
            .map_err(|e| Error::io(format!("cannot create {}", dest.display()), e.error))?;
        Ok(GetReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: resolved.stored_key,
            stored_as: resolved.stored_as,
            size,
            sha256: sha,
            verified,
            destination: Some(dest.to_path_buf()),
        })
    }

    /// Describes the logical object `key` without reading its bytes.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectDetails> {
        let resolved = self.resolve(bucket, key).await?;
        Ok(ObjectDetails::new(bucket, key, &resolved))
    }

    /// Rebuilds the object into an anonymous temporary file (no name on disk), checks it
    /// against its recorded SHA-256 and returns it rewound: nothing unverified is handed out.
    pub async fn get_verified(&self, bucket: &str, key: &str) -> Result<(ObjectDetails, File)> {
        let resolved = self.resolve(bucket, key).await?;
        let file = tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
        let rebuilt = self.reconstruct(bucket, &resolved, file).await?;
        self.check(bucket, key, &resolved, &rebuilt)?;
        let mut file = rebuilt.out;
        std::io::Seek::rewind(&mut file).ctx(|| "cannot rewind the temporary file".into())?;
        Ok((ObjectDetails::new(bucket, key, &resolved), file))
    }

    /// Rebuilds the object and compares it with its recorded SHA-256, writing nothing.
    pub async fn verify(&self, bucket: &str, key: &str) -> Result<VerifyReport> {
        let resolved = self.resolve(bucket, key).await?;
        let Rebuilt {
            sha256: sha, size, ..
        } = self.reconstruct(bucket, &resolved, io::sink()).await?;
        let expected = resolved.meta.file_sha256.clone();
        Ok(VerifyReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            valid: expected.as_deref().is_none_or(|e| e == sha),
            stored_key: resolved.stored_key,
            stored_as: resolved.stored_as,
            expected_sha256: expected,
            actual_sha256: sha,
            size,
        })
    }

    /// Compares a result with the recorded hash; plain objects have none to compare.
    fn check<W>(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
        rebuilt: &Rebuilt<W>,
    ) -> Result<bool> {
        match &resolved.meta.file_sha256 {
            Some(expected) if *expected != rebuilt.sha256 => Err(Error::IntegrityMismatch {
                what: match rebuilt.recompressed_with {
                    None => format!("s3://{bucket}/{key} (stored as {})", resolved.stored_key),
                    // xdelta3 (without -D) encoded the decompressed bytes; this machine's
                    // compressor did not give back the bytes that were uploaded.
                    Some(program) => format!(
                        "s3://{bucket}/{key} (stored as {}, a delta of {program}-decompressed data: recompressing with this machine's {program} does not reproduce the uploaded bytes)",
                        resolved.stored_key
                    ),
                },
                expected: expected.clone(),
                actual: rebuilt.sha256.clone(),
            }),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }
}
