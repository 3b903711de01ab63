//! Handing a rebuilt object out: into a local file, into a writer as it is decoded, into
//! a verified temporary file, or only checked.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::rebuild::recorded_size;
use super::{GetReport, ObjectDetails, Rebuilt, Resolved, VerifyReport};
use crate::engine::Engine;
use crate::engine::destination::Destination;
use crate::engine::integrity::{OutputProgress, require_complete_metadata};
use crate::error::{Error, IoContext, Result};

impl Engine {
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
        let destination =
            crate::engine::blocking("download", move || Destination::open(&path)).await?;
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
            crate::engine::progress::Phase::Rebuilding,
            recorded_size(&resolved).unwrap_or(resolved.info.size),
        );
        let progress = Arc::new(OutputProgress::reporting(progress));
        let rebuilt = self
            .reconstruct(bucket, &resolved, pending.file()?, progress)
            .await?;
        let verified = self.check(bucket, key, &resolved, &rebuilt)?;
        let Rebuilt { sha256, size, .. } = rebuilt;
        let modified = resolved.info.last_modified.map(Into::into);
        crate::engine::blocking("download", move || pending.publish(modified)).await?;
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

    pub(in crate::engine) async fn stream<W: Write + Send + 'static>(
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
            crate::engine::blocking("download", move || {
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

    /// Rebuilds the object into an anonymous temporary file (no name on disk), checks it
    /// against its recorded SHA-256 and returns it rewound: nothing unverified is handed out.
    pub async fn get_verified(&self, bucket: &str, key: &str) -> Result<(ObjectDetails, File)> {
        let resolved = self.resolve(bucket, key).await?;
        let file = tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
        let (file, _) = self.rebuild_verified(bucket, key, &resolved, file).await?;
        Ok((ObjectDetails::new(bucket, key, &resolved), file))
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
}
