//! Moves: a copy, then the source goes, and only once the copy is stored and verified. A
//! local file that changed meanwhile is kept: what was stored may not be what is there.

use std::path::Path;
use std::sync::Mutex;

use serde::{Serialize, Serializer};

use super::filter::Filters;
use super::location::Location;
use super::plan::CompareOptions;
use super::{EventSink, TransferEvent, TransferOptions, TransferSummary};
use crate::engine::{Engine, GetReport, PutReport, PutRequestOptions};
use crate::error::{Error, Result};
use crate::url::S3Url;

/// Options of [`Engine::move_tree`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MoveOptions {
    /// Applied to paths relative to the source root.
    pub filters: Filters,
    /// Report what would be moved, change nothing.
    pub dry_run: bool,
    /// Files in flight at once.
    pub concurrency: usize,
    /// Applied to every file stored.
    pub put: PutRequestOptions,
    /// Local sources: walk into linked directories and store linked files.
    pub follow_symlinks: bool,
}

impl Default for MoveOptions {
    fn default() -> Self {
        let t = TransferOptions::default();
        MoveOptions {
            filters: t.filters,
            dry_run: t.dry_run,
            concurrency: t.concurrency,
            put: t.put,
            follow_symlinks: t.follow_symlinks,
        }
    }
}

impl MoveOptions {
    /// Only the paths these filters accept.
    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }
    /// Report, change nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
    /// Files in flight at once (at least one).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }
    /// How each file is stored.
    pub fn put(mut self, put: PutRequestOptions) -> Self {
        self.put = put;
        self
    }
    /// Whether local symbolic links are followed.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// The copy half: every file is copied, whatever the destination holds.
    fn transfer(&self) -> TransferOptions {
        TransferOptions {
            compare: CompareOptions {
                always_copy: true,
                ..Default::default()
            },
            filters: self.filters.clone(),
            dry_run: self.dry_run,
            concurrency: self.concurrency,
            put: self.put.clone(),
            follow_symlinks: self.follow_symlinks,
        }
    }
}

/// What moving one file or object did: the copy, and why the source is still there if it
/// is (the copy is kept either way).
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Moved<R> {
    /// What the copy stored or wrote.
    pub copy: R,
    /// `None` once the source is gone; otherwise why it was kept.
    #[serde(serialize_with = "error_text")]
    pub source_kept: Option<Error>,
}

fn error_text<S: Serializer>(e: &Option<Error>, s: S) -> std::result::Result<S::Ok, S::Error> {
    e.as_ref().map(|e| crate::error::chain(e)).serialize(s)
}

/// Device, inode, size, modification and change time: the change time moves with any write
/// and cannot be set back.
type FileIdentity = (u64, u64, u64, i64, i64, i64, i64);

fn file_identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

impl Engine {
    /// Uploads `path` as `s3://bucket/key`, then removes the file unless it changed since
    /// the move began.
    pub async fn move_file(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        options: &PutRequestOptions,
    ) -> Result<Moved<PutReport>> {
        let before = file_identity(path);
        let copy = self.put_file(path, bucket, key, options).await?;
        let source_kept = if before.is_none() || file_identity(path) != before {
            Some(Error::MovedSourceChanged {
                path: path.display().to_string(),
            })
        } else {
            std::fs::remove_file(path)
                .err()
                .map(|e| Error::io(format!("copied, but cannot remove {}", path.display()), e))
        };
        Ok(Moved { copy, source_kept })
    }

    /// Downloads `s3://bucket/key` to `path` (verified), then deletes the object.
    pub async fn move_to_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
    ) -> Result<Moved<GetReport>> {
        let copy = self.get_to_file(bucket, key, path).await?;
        let source_kept = self.delete(bucket, key).await.err();
        Ok(Moved { copy, source_kept })
    }

    /// Copies an object (deltas rebuilt against the destination's reference), then deletes
    /// the source.
    pub async fn move_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: &PutRequestOptions,
    ) -> Result<Moved<PutReport>> {
        // A copy onto itself may replace the metadata; a move onto itself would then
        // delete what it just wrote.
        if (src_bucket, src_key) == (dst_bucket, dst_key) {
            return Err(Error::InvalidKey {
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                reason: "an object cannot be moved onto itself".into(),
            });
        }
        let copy = self
            .copy_object(src_bucket, src_key, dst_bucket, dst_key, options)
            .await?;
        let source_kept = self.delete(src_bucket, src_key).await.err();
        Ok(Moved { copy, source_kept })
    }

    /// Copies the tree at `from` to `to` (as [`Engine::transfer_tree`] does), then removes
    /// each source file or object whose copy was stored. A source that cannot be removed is
    /// reported as a [`TransferEvent::Failed`] and counted as failed; its copy stays.
    pub async fn move_tree(
        &self,
        from: &Location,
        to: &Location,
        options: &MoveOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        if let (Location::S3(a), Location::S3(b)) = (from, to)
            && a.bucket == b.bucket
            && a.key.trim_end_matches('/') == b.key.trim_end_matches('/')
        {
            return Err(Error::InvalidArgument {
                what: format!("moving s3://{}/{} onto itself", a.bucket, a.key),
                reason: "every object would be copied onto itself and then deleted".into(),
            });
        }
        let copied = Mutex::new(Vec::new());
        let sink = |e: &TransferEvent| {
            events(e);
            if matches!(
                e,
                TransferEvent::Uploaded { .. }
                    | TransferEvent::Downloaded { .. }
                    | TransferEvent::Copied { .. }
            ) {
                copied
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.clone());
            }
        };
        let mut summary = self
            .transfer_tree(from, to, &options.transfer(), &sink)
            .await?;
        let copied = copied.into_inner().unwrap_or_else(|e| e.into_inner());
        for e in copied {
            let (target, removed) = match &e {
                TransferEvent::Uploaded { path, .. } => (
                    path.display().to_string(),
                    std::fs::remove_file(path).map_err(|e| crate::error::chain(&e)),
                ),
                TransferEvent::Downloaded { report } => (
                    format!("s3://{}/{}", report.bucket, report.key),
                    self.delete(&report.bucket, &report.key)
                        .await
                        .map(drop)
                        .map_err(|e| crate::error::chain(&e)),
                ),
                TransferEvent::Copied { from, report } => {
                    let removed = match S3Url::parse(from) {
                        // Copied onto itself (the metadata replaced): the copy is the
                        // source, which must stay.
                        Ok(u)
                            if (u.bucket.as_str(), u.key.as_str())
                                == (report.bucket.as_str(), report.key.as_str()) =>
                        {
                            Err(Error::InvalidKey {
                                bucket: u.bucket.clone(),
                                key: u.key.clone(),
                                reason: "an object cannot be moved onto itself".into(),
                            })
                        }
                        Ok(u) => self.delete(&u.bucket, &u.key).await.map(drop),
                        Err(e) => Err(e),
                    };
                    (from.clone(), removed.map_err(|e| crate::error::chain(&e)))
                }
                _ => continue,
            };
            if let Err(why) = removed {
                events(&TransferEvent::Failed {
                    target,
                    error: format!("copied, but the source could not be removed: {why}"),
                });
                summary.failed += 1;
            }
        }
        Ok(summary)
    }
}
