//! Rebuilding a resolved object into a writer (a delta decoded against its verified
//! reference, a direct object copied) and checking the result against what was recorded.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use super::{Rebuilt, Resolved, drain_into};
use crate::deltaspace;
use crate::engine::integrity::{CappedWriter, OutputProgress, require_complete_metadata};
use crate::engine::{Engine, StoredAs};
use crate::error::{Error, IoContext, Result};
use crate::hashing::HashingWriter;

impl Engine {
    /// Rebuilds the bytes of a resolved object into `out`, never more than its recorded
    /// size. For deltas the reference is verified before decoding; the caller compares the
    /// result. `progress` counts what reached `out`, also when this fails.
    pub(super) async fn reconstruct<W: Write + Send + 'static>(
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
                self.cpu_bound("restore", move || {
                    let mut capped = output(out);
                    crate::engine::compact::restore_into(&expanded, &mut capped)
                        .map_err(too_long)?;
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
                self.cpu_bound("decoder", move || {
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
                crate::engine::blocking("download", move || {
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

    pub(super) fn check_size<W>(
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
    pub(super) fn check<W>(
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
pub(super) fn recorded_size(resolved: &Resolved) -> Option<u64> {
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
