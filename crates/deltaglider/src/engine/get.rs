//! Reading: resolve a logical key to what is stored, rebuild it, verify it, expose it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::destination::Destination;
use super::integrity::{
    CappedWriter, OutputProgress, has_deltaglider_keys, require_complete_metadata,
};
use super::{Engine, StoredAs};
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
    /// The entity tag of the original, quoted as S3 reports it (see [`logical_etag`](super::logical_etag)).
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
            etag: super::etag::logical_etag(
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

    /// Rebuilds the bytes of a resolved object into `out`, never more than its recorded
    /// size. For deltas the reference is verified before decoding; the caller compares the
    /// result. `progress` counts what reached `out`, also when this fails.
    async fn reconstruct<W: Write + Send + 'static>(
        &self,
        bucket: &str,
        resolved: &Resolved,
        out: W,
        progress: Arc<OutputProgress>,
    ) -> Result<Rebuilt<W>> {
        require_complete_metadata(bucket, resolved)?;
        let what = format!("s3://{bucket}/{}", resolved.stored_key);
        let limit = recorded_size(resolved);
        let too_long = {
            let (what, progress) = (what.clone(), progress.clone());
            move |e: Error| match limit {
                Some(expected) if progress.exceeded() => Error::SizeMismatch {
                    what,
                    expected,
                    actual: None,
                },
                _ => e,
            }
        };
        // The cap comes first so that the decoder is stopped at the first byte too many.
        let output = move |out: W| {
            CappedWriter::new(
                HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out)),
                limit,
                progress,
            )
        };
        match resolved.stored_as {
            StoredAs::Delta if resolved.meta.format.is_some() => {
                let expanded = self.compact_expanded(bucket, resolved, &what).await?;
                super::blocking("restore", move || {
                    let mut capped = output(out);
                    super::compact::restore_into(&expanded, &mut capped).map_err(too_long)?;
                    finish(capped, None)
                })
                .await
            }
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
                let recompressed_with = crate::codec::recompressed_with(&delta);
                let codec = self.codec.clone();
                super::blocking("decoder", move || {
                    let mut capped = output(out);
                    codec
                        .decode(&reference, &delta, &mut capped)
                        .map_err(|e| match e {
                            Error::Codec { operation, detail } => Error::Codec {
                                operation,
                                detail: format!("{what}: {detail}"),
                            },
                            other => other,
                        })
                        .map_err(too_long)?;
                    finish(capped, recompressed_with)
                })
                .await
            }
            StoredAs::Direct | StoredAs::Plain | StoredAs::Whole => {
                let reader = self.store.get_object(bucket, &resolved.stored_key).await?;
                // The writes are synchronous (files, hashers, a channel that waits for its
                // reader): they run on a blocking thread, never on the runtime's.
                super::blocking("download", move || {
                    let mut capped = output(out);
                    let mut body = tokio_util::io::SyncIoBridge::new(reader.body);
                    io::copy(&mut body, &mut capped)
                        .ctx(|| format!("cannot download {what}"))
                        .map_err(too_long)?;
                    finish(capped, None)
                })
                .await
            }
        }
    }

    /// Downloads the logical object `key` to `dest`.
    ///
    /// A regular file (new or existing) is never left holding partial or unverified
    /// content: the bytes go to an unnamed temporary file in `dest`'s directory and are
    /// given `dest`'s name only once they match the recorded SHA-256 and size. A new file
    /// gets mode `0666 & !umask`, a replaced one keeps its permission bits. An existing
    /// device or FIFO is written into as the bytes are rebuilt; if they then fail
    /// verification the error is [`Error::OutputDiscarded`]. See `docs/cli.md`.
    pub async fn get_to_file(&self, bucket: &str, key: &str, dest: &Path) -> Result<GetReport> {
        let resolved = self.resolve(bucket, key).await?;
        // Before the destination is touched: a broken object leaves nothing behind.
        require_complete_metadata(bucket, &resolved)?;
        let path = dest.to_path_buf();
        // Opening a FIFO waits for its reader: off the async threads.
        let destination = super::blocking("download", move || Destination::open(&path)).await?;
        let pending = match destination {
            Destination::File(pending) => pending,
            Destination::Special { file, path } => {
                let mut report = self
                    .stream(bucket, key, resolved, file, &path.display().to_string())
                    .await?;
                report.destination = Some(path);
                return Ok(report);
            }
        };
        let progress = self.progress_for(key);
        progress.start(
            super::progress::Phase::Rebuilding,
            recorded_size(&resolved).unwrap_or(resolved.info.size),
        );
        let progress = Arc::new(OutputProgress::reporting(progress));
        let rebuilt = self
            .reconstruct(bucket, &resolved, pending.file()?, progress)
            .await?;
        let verified = self.check(bucket, key, &resolved, &rebuilt)?;
        let Rebuilt { sha256, size, .. } = rebuilt;
        let modified = resolved.info.last_modified.map(Into::into);
        super::blocking("download", move || pending.publish(modified)).await?;
        Ok(GetReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: resolved.stored_key,
            stored_as: resolved.stored_as,
            size,
            sha256,
            verified,
            destination: Some(dest.to_path_buf()),
        })
    }

    /// Rebuilds the logical object `key` into `out` as it is decoded (memory stays
    /// bounded whatever the size), then checks it against its recorded SHA-256 and size.
    ///
    /// The bytes reach `out` *before* they are verified. When anything fails after some
    /// were written, the error is [`Error::OutputDiscarded`] naming `destination` (a
    /// description for messages, e.g. `stdout`), and the caller must discard what `out`
    /// received. At most the recorded size is ever written.
    pub async fn get_to_writer<W: Write + Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        out: W,
        destination: &str,
    ) -> Result<GetReport> {
        let resolved = self.resolve(bucket, key).await?;
        self.stream(bucket, key, resolved, out, destination).await
    }

    pub(super) async fn stream<W: Write + Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        resolved: Resolved,
        out: W,
        destination: &str,
    ) -> Result<GetReport> {
        let progress = Arc::new(OutputProgress::default());
        let result = async {
            let rebuilt = self
                .reconstruct(bucket, &resolved, out, progress.clone())
                .await?;
            let verified = self.check(bucket, key, &resolved, &rebuilt)?;
            let Rebuilt {
                sha256,
                size,
                mut out,
                ..
            } = rebuilt;
            // The last bytes go out only now, after the check: on a blocking thread, as
            // every write to `out` (it may wait for a slow reader).
            let destination = destination.to_string();
            super::blocking("download", move || {
                out.flush().ctx(|| format!("cannot write {destination}"))
            })
            .await?;
            Ok((sha256, size, verified))
        }
        .await;
        let (sha256, size, verified) = match result {
            Ok(r) => r,
            Err(e) if progress.written() > 0 => {
                return Err(Error::OutputDiscarded {
                    destination: destination.to_string(),
                    source: Box::new(e),
                });
            }
            Err(e) => return Err(e),
        };
        Ok(GetReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            stored_key: resolved.stored_key,
            stored_as: resolved.stored_as,
            size,
            sha256,
            verified,
            destination: None,
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
        let (file, _) = self.rebuild_verified(bucket, key, &resolved, file).await?;
        Ok((ObjectDetails::new(bucket, key, &resolved), file))
    }

    /// Rebuilds a resolved object into `file`, verifies it and rewinds the file; returns it
    /// with the SHA-256 of its bytes (computed as they were written, also for plain objects,
    /// which record none).
    pub(crate) async fn rebuild_verified(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
        file: File,
    ) -> Result<(File, String)> {
        let rebuilt = self
            .reconstruct(bucket, resolved, file, Default::default())
            .await?;
        self.check(bucket, key, resolved, &rebuilt)?;
        let Rebuilt {
            out: mut file,
            sha256,
            ..
        } = rebuilt;
        std::io::Seek::rewind(&mut file).ctx(|| "cannot rewind the temporary file".into())?;
        Ok((file, sha256))
    }

    /// Rebuilds the object and compares it with its recorded SHA-256, writing nothing.
    /// Metadata that cannot be checked against, or a size other than the recorded one,
    /// is an error rather than a report.
    pub async fn verify(&self, bucket: &str, key: &str) -> Result<VerifyReport> {
        let resolved = self.resolve(bucket, key).await?;
        let rebuilt = self
            .reconstruct(bucket, &resolved, io::sink(), Default::default())
            .await?;
        self.check_size(bucket, key, &resolved, &rebuilt)?;
        let expected = resolved.meta.file_sha256.clone();
        Ok(VerifyReport {
            bucket: bucket.to_string(),
            key: key.to_string(),
            valid: expected.as_deref().is_none_or(|e| e == rebuilt.sha256),
            stored_key: resolved.stored_key,
            stored_as: resolved.stored_as,
            expected_sha256: expected,
            actual_sha256: rebuilt.sha256,
            size: rebuilt.size,
        })
    }

    fn check_size<W>(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
        rebuilt: &Rebuilt<W>,
    ) -> Result<()> {
        match recorded_size(resolved) {
            Some(expected) if expected != rebuilt.size => Err(Error::SizeMismatch {
                what: format!("s3://{bucket}/{key} (stored as {})", resolved.stored_key),
                expected,
                actual: Some(rebuilt.size),
            }),
            _ => Ok(()),
        }
    }

    /// Compares a result with the recorded size and hash; plain objects have none to
    /// compare.
    fn check<W>(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
        rebuilt: &Rebuilt<W>,
    ) -> Result<bool> {
        // The hash first: its message says why bytes differ (recompression), which a size
        // mismatch alone would hide.
        let verified = match &resolved.meta.file_sha256 {
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
        }?;
        self.check_size(bucket, key, resolved, rebuilt)?;
        Ok(verified)
    }
}

/// The size the rebuilt bytes must have: `dg-file-size` on DeltaGlider objects.
fn recorded_size(resolved: &Resolved) -> Option<u64> {
    match resolved.stored_as {
        StoredAs::Delta | StoredAs::Direct => resolved.meta.file_size,
        StoredAs::Plain | StoredAs::Whole => None,
    }
}

/// Flushes the output chain and takes it apart.
fn finish<W: Write>(
    capped: CappedWriter<HashingWriter<io::BufWriter<W>>>,
    recompressed_with: Option<&'static str>,
) -> Result<Rebuilt<W>> {
    let (sha256, size, buffered) = capped.into_inner().into_parts();
    let out = buffered
        .into_inner()
        .map_err(|e| Error::io("cannot write the output", e.into_error()))?;
    Ok(Rebuilt {
        sha256,
        size,
        out,
        recompressed_with,
    })
}
