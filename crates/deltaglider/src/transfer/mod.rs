//! Many files at once: `cp -r` and `sync` between a local directory and a prefix, with
//! `aws s3` filter and comparison semantics, bounded concurrency, and per-file failures
//! reported without stopping the rest.

pub mod delete;
pub mod filter;
pub mod location;
pub mod migrate;
pub mod mv;
pub mod plan;

pub use delete::{DeleteTreeOptions, DeleteTreeReport};
pub use location::Location;
pub use migrate::{MigrateOptions, MigrationPlan};
pub use mv::{MoveOptions, Moved};

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use futures::StreamExt;
use serde::Serialize;

use crate::deltaspace;
use crate::engine::{Engine, GetReport, PutReport, PutRequestOptions};
use crate::error::{Error, Result};
use filter::Filters;
use plan::{Action, CompareOptions, Direction, Entry};

/// Options of a multi-file transfer.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// What is copied and deleted; the default copies what is missing, resized or newer.
    pub compare: CompareOptions,
    /// Applied to paths relative to the source and destination roots, on both sides.
    pub filters: Filters,
    /// Report what would happen, change nothing.
    pub dry_run: bool,
    /// Files in flight at once.
    pub concurrency: usize,
    /// Applied to every file uploaded or copied.
    pub put: PutRequestOptions,
    /// Local trees: walk into linked directories and store linked files (`aws s3`'s
    /// `--follow-symlinks`, the default); when false, symbolic links are skipped silently.
    pub follow_symlinks: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            compare: CompareOptions::default(),
            filters: Filters::default(),
            dry_run: false,
            concurrency: default_concurrency(),
            put: PutRequestOptions::default(),
            follow_symlinks: true,
        }
    }
}

/// One file per core: encoding is CPU-bound, and memory per transfer is bounded.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// Something that happened to one file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TransferEvent {
    /// A local file was stored.
    Uploaded {
        /// The local file.
        path: PathBuf,
        /// What the upload did.
        report: PutReport,
    },
    /// An object was written to a local file (its path is the report's `destination`).
    Downloaded {
        /// What the download did.
        report: GetReport,
    },
    /// An object was copied within the store.
    Copied {
        /// The source, as `s3://bucket/key`.
        from: String,
        /// What was written at the destination.
        report: PutReport,
    },
    /// A destination file or object absent from the source was removed (`--delete`).
    Deleted {
        /// The local path or `s3://bucket/key` removed.
        target: String,
    },
    /// `--dryrun`: what would have been done.
    WouldCopy {
        /// Local path or `s3://` URL.
        from: String,
        /// Local path or `s3://` URL.
        to: String,
    },
    /// Emitted once, before any file moves: what the transfer will do.
    Planned {
        /// Files to copy.
        copies: usize,
        /// Files to delete.
        deletes: usize,
        /// Original bytes to copy.
        bytes: u64,
    },
    /// `--dryrun`: what would have been deleted.
    WouldDelete {
        /// Local path or `s3://` URL.
        target: String,
    },
    /// A local file that cannot be read (a broken link, a FIFO, a socket or device, no
    /// permission, a link loop) was skipped; the others are transferred.
    Skipped {
        /// The local path.
        path: String,
        /// Why, in `aws s3`'s words where it has them.
        reason: String,
    },
    /// One file failed; the transfer goes on with the others.
    Failed {
        /// The local path or `s3://` URL that failed.
        target: String,
        /// The error, as one line.
        error: String,
    },
}

/// Totals of a multi-file transfer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferSummary {
    /// Files copied (with `dry_run`: to be copied).
    pub copied: usize,
    /// Files deleted (with `dry_run`: to be deleted).
    pub deleted: usize,
    /// Files present on both sides and left alone.
    pub unchanged: usize,
    /// Files that failed; each was reported by a [`TransferEvent::Failed`].
    pub failed: usize,
    /// Local files that could not be read and were skipped ([`TransferEvent::Skipped`]).
    pub skipped: usize,
    /// Original bytes copied.
    pub bytes: u64,
    /// Bytes stored for uploads (deltas or whole files).
    pub stored_bytes: u64,
}

/// Receives events as they happen (progress lines, JSON).
pub type EventSink<'a> = &'a (dyn Fn(&TransferEvent) + Send + Sync);

/// `prefix` as a directory: empty, or ending in `/`.
pub(crate) fn as_dir_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// A relative key that is safe to join below a local directory.
fn safe_local_path(root: &Path, relative: &str) -> Option<PathBuf> {
    let clean = relative
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    clean.then(|| root.join(relative))
}

/// A local file left out of a transfer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    /// The path as displayed.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// What a walk of a local tree found: the files to consider and the ones that cannot be read.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skip>,
}

/// Regular files below `dir`, with `/`-separated relative paths, filtered; anything that
/// cannot be read is skipped (for callers that only estimate, such as `analyze`).
pub(crate) fn scan_local(dir: &Path, filters: &Filters) -> Result<Vec<Entry>> {
    Ok(scan_local_tree(dir, filters, true)?.entries)
}

/// Walks `dir` like `aws s3` does: regular files (through symbolic links when
/// `follow_symlinks`) that pass the filters are entries; a broken link, a FIFO, socket or
/// device, a file that cannot be opened, a directory that cannot be listed or a link loop is
/// skipped with its reason, and the walk goes on. Links are skipped silently when not
/// followed, as `aws s3 --no-follow-symlinks` does.
pub(crate) fn scan_local_tree(
    dir: &Path,
    filters: &Filters,
    follow_symlinks: bool,
) -> Result<Scan> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("cannot read directory {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            format!("cannot list {}", dir.display()),
            std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    let mut scan = Scan::default();
    let skip = |scan: &mut Scan, path: &Path, reason: String| {
        scan.skipped.push(Skip {
            path: path.display().to_string(),
            reason,
        })
    };
    for item in walkdir::WalkDir::new(dir)
        .follow_links(follow_symlinks)
        .sort_by_file_name()
    {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let excluded = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .is_some_and(|r| !filters.accepts(&r.replace(std::path::MAIN_SEPARATOR, "/")));
                if excluded {
                    continue;
                }
                let reason = match (e.loop_ancestor(), e.io_error()) {
                    (Some(ancestor), _) => {
                        format!("File system loop: a link back to {}.", ancestor.display())
                    }
                    (None, Some(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                        "File does not exist.".to_string()
                    }
                    (None, Some(io)) => format!("File/Directory is not readable: {io}."),
                    (None, None) => format!("{e}."),
                };
                skip(&mut scan, &path, reason);
                continue;
            }
        };
        let kind = item.file_type();
        if kind.is_dir() || kind.is_symlink() {
            // Directories are walked; a link is only seen here when links are not followed.
            continue;
        }
        // A download's not-yet-published bytes (or a crashed one's), never data.
        if crate::engine::is_download_temp_name(item.file_name()) {
            continue;
        }
        let rel = item
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays below its root");
        let Some(rel) = rel.to_str() else {
            skip(
                &mut scan,
                item.path(),
                "The name is not valid UTF-8 (S3 keys must be).".into(),
            );
            continue;
        };
        let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
        if !filters.accepts(&rel) {
            continue;
        }
        if !kind.is_file() {
            skip(
                &mut scan,
                item.path(),
                "File is character special device, block special device, FIFO, or socket.".into(),
            );
            continue;
        }
        let meta = match item.metadata() {
            Ok(m) => m,
            Err(e) => {
                skip(
                    &mut scan,
                    item.path(),
                    format!("File is not readable: {e}."),
                );
                continue;
            }
        };
        if let Err(e) = check_readable(item.path()) {
            skip(
                &mut scan,
                item.path(),
                format!("File is not readable: {e}."),
            );
            continue;
        }
        scan.entries.push(Entry {
            path: rel,
            size: meta.len(),
            modified: meta.modified().ok().map(Into::into),
        });
    }
    Ok(scan)
}

/// Opens the file for reading, as the upload will (`aws s3` checks the same way).
fn check_readable(path: &Path) -> std::io::Result<()> {
    // Test builds: `FAILPOINTS=transfer::scan-open=return(NAME)` makes the file named NAME
    // unreadable, since tests run as root and `chmod 000` does not stop root.
    fail::fail_point!("transfer::scan-open", |name: Option<String>| {
        if name.as_deref() == path.file_name().and_then(|n| n.to_str()) {
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        } else {
            open_for_reading(path)
        }
    });
    open_for_reading(path)
}

fn open_for_reading(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a file swapped for a FIFO after the walk must not hang the scan.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(drop)
}

/// Test builds: a step where a test can hold a transfer (`FAILPOINTS=NAME=sleep(60000)`) and
/// interrupt it. The failpoint is evaluated off the async threads, so that the command still
/// reacts to signals while it is held.
async fn hold_point(name: &'static str) {
    #[cfg(feature = "failpoints")]
    {
        let _ = tokio::task::spawn_blocking(move || fail::fail_point!(name)).await;
    }
    let _ = name;
}

/// Reports each skipped file as an event; returns how many.
fn report_skipped(skipped: &[Skip], events: EventSink<'_>) -> usize {
    for s in skipped {
        events(&TransferEvent::Skipped {
            path: s.path.clone(),
            reason: s.reason.clone(),
        });
    }
    skipped.len()
}

impl Engine {
    pub(crate) async fn scan_remote(
        &self,
        bucket: &str,
        prefix: &str,
        filters: &Filters,
    ) -> Result<Vec<Entry>> {
        let listing = self.list(bucket, prefix, true).await?;
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|o| {
                let rel = o.key.strip_prefix(prefix)?.to_string();
                filters.accepts(&rel).then_some(Entry {
                    path: rel,
                    size: o.size,
                    modified: o.last_modified,
                })
            })
            .collect())
    }

    /// Copies (or, with `compare`, syncs) the files below `dir` to `s3://bucket/prefix/`.
    pub async fn upload_tree(
        &self,
        dir: &Path,
        bucket: &str,
        prefix: &str,
        options: &TransferOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        let prefix = as_dir_prefix(prefix);
        if !self.store().bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let scan = scan_local_tree(dir, &options.filters, options.follow_symlinks)?;
        let skipped = report_skipped(&scan.skipped, events);
        let local = scan.entries;
        let remote = if options.compare.always_copy && !options.compare.delete {
            Vec::new()
        } else {
            self.scan_remote(bucket, &prefix, &options.filters).await?
        };
        let actions = plan::plan(Direction::Upload, &local, &remote, options.compare);
        events(&planned(&actions, &local));
        hold_point("transfer::planned").await;
        let mut summary = TransferSummary {
            skipped,
            unchanged: local.len()
                - actions
                    .iter()
                    .filter(|a| matches!(a, Action::Copy { .. }))
                    .count(),
            ..Default::default()
        };
        let (copies, deletes) = split(actions);
        let events_out = run_copies(copies, &prefix, options.concurrency, |path| {
            let (local_path, key) = (dir.join(&path), format!("{prefix}{path}"));
            async move {
                let e = if options.dry_run {
                    TransferEvent::WouldCopy {
                        from: local_path.display().to_string(),
                        to: format!("s3://{bucket}/{key}"),
                    }
                } else {
                    match self.put_file(&local_path, bucket, &key, &options.put).await {
                        Ok(report) => TransferEvent::Uploaded {
                            path: local_path,
                            report,
                        },
                        Err(err) => TransferEvent::Failed {
                            target: local_path.display().to_string(),
                            error: crate::error::chain(&err),
                        },
                    }
                };
                events(&e);
                e
            }
        })
        .await;
        for e in events_out.iter().chain(
            &self
                .delete_remote(bucket, &prefix, deletes, options.dry_run, events)
                .await,
        ) {
            tally(&mut summary, e);
        }
        Ok(summary)
    }

    /// Copies (or, with `compare`, syncs) the objects under one prefix to another, in the
    /// same store: deltas are rebuilt and stored against the destination's references,
    /// whole objects that stay whole are copied server-side.
    pub async fn copy_tree(
        &self,
        src_bucket: &str,
        src_prefix: &str,
        dst_bucket: &str,
        dst_prefix: &str,
        options: &TransferOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        let (src_prefix, dst_prefix) = (as_dir_prefix(src_prefix), as_dir_prefix(dst_prefix));
        for b in [src_bucket, dst_bucket] {
            if !self.store().bucket_exists(b).await? {
                return Err(Error::NoSuchBucket(b.to_string()));
            }
        }
        let source = self
            .scan_remote(src_bucket, &src_prefix, &options.filters)
            .await?;
        let dest = if options.compare.always_copy && !options.compare.delete {
            Vec::new()
        } else {
            self.scan_remote(dst_bucket, &dst_prefix, &options.filters)
                .await?
        };
        let actions = plan::plan(Direction::Upload, &source, &dest, options.compare);
        events(&planned(&actions, &source));
        hold_point("transfer::planned").await;
        let (copies, deletes) = split(actions);
        let mut summary = TransferSummary {
            unchanged: source.len() - copies.len(),
            ..Default::default()
        };
        let (src_prefix, dst_prefix) = (src_prefix.as_str(), dst_prefix.as_str());
        let done = run_copies(copies, dst_prefix, options.concurrency, |path| async move {
            let (from, to) = (format!("{src_prefix}{path}"), format!("{dst_prefix}{path}"));
            let e = if options.dry_run {
                TransferEvent::WouldCopy {
                    from: format!("s3://{src_bucket}/{from}"),
                    to: format!("s3://{dst_bucket}/{to}"),
                }
            } else {
                match self
                    .copy_object(src_bucket, &from, dst_bucket, &to, &options.put)
                    .await
                {
                    Ok(report) => TransferEvent::Copied {
                        from: format!("s3://{src_bucket}/{from}"),
                        report,
                    },
                    Err(err) => TransferEvent::Failed {
                        target: format!("s3://{src_bucket}/{from}"),
                        error: crate::error::chain(&err),
                    },
                }
            };
            events(&e);
            e
        })
        .await;
        for e in done.iter().chain(
            &self
                .delete_remote(dst_bucket, dst_prefix, deletes, options.dry_run, events)
                .await,
        ) {
            tally(&mut summary, e);
        }
        Ok(summary)
    }

    /// Copies (or, with `compare`, syncs) the objects under `s3://bucket/prefix/` into `dir`.
    pub async fn download_tree(
        &self,
        bucket: &str,
        prefix: &str,
        dir: &Path,
        options: &TransferOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        let prefix = as_dir_prefix(prefix);
        if !self.store().bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let remote = self.scan_remote(bucket, &prefix, &options.filters).await?;
        let (local, skipped) = if dir.exists() {
            let scan = scan_local_tree(dir, &options.filters, options.follow_symlinks)?;
            (scan.entries, report_skipped(&scan.skipped, events))
        } else {
            (Vec::new(), 0)
        };
        let actions = plan::plan(Direction::Download, &remote, &local, options.compare);
        events(&planned(&actions, &remote));
        hold_point("transfer::planned").await;
        let mut summary = TransferSummary {
            skipped,
            unchanged: remote.len()
                - actions
                    .iter()
                    .filter(|a| matches!(a, Action::Copy { .. }))
                    .count(),
            ..Default::default()
        };
        let prefix = prefix.as_str();
        let results: Vec<_> = futures::stream::iter(actions.into_iter().map(|action| async move {
            let (path, copy) = match action {
                Action::Copy { path, .. } => (path, true),
                Action::Delete { path } => (path, false),
            };
            let Some(local_path) = safe_local_path(dir, &path) else {
                let e = TransferEvent::Failed {
                    target: format!("s3://{bucket}/{prefix}{path}"),
                    error:
                        "the key does not map to a path inside the destination directory; skipped"
                            .into(),
                };
                events(&e);
                return e;
            };
            let e = match (copy, options.dry_run) {
                (true, true) => TransferEvent::WouldCopy {
                    from: format!("s3://{bucket}/{prefix}{path}"),
                    to: local_path.display().to_string(),
                },
                (false, true) => TransferEvent::WouldDelete {
                    target: local_path.display().to_string(),
                },
                (true, false) => {
                    let created = match local_path.parent() {
                        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| {
                            Error::io(format!("cannot create {}", parent.display()), e)
                        }),
                        None => Ok(()),
                    };
                    match created {
                        Ok(()) => match self
                            .get_to_file(bucket, &format!("{prefix}{path}"), &local_path)
                            .await
                        {
                            Ok(report) => TransferEvent::Downloaded { report },
                            Err(err) => TransferEvent::Failed {
                                target: format!("s3://{bucket}/{prefix}{path}"),
                                error: crate::error::chain(&err),
                            },
                        },
                        Err(err) => TransferEvent::Failed {
                            target: local_path.display().to_string(),
                            error: crate::error::chain(&err),
                        },
                    }
                }
                (false, false) => match std::fs::remove_file(&local_path) {
                    Ok(()) => TransferEvent::Deleted {
                        target: local_path.display().to_string(),
                    },
                    Err(err) => TransferEvent::Failed {
                        target: local_path.display().to_string(),
                        error: crate::error::chain(&err),
                    },
                },
            };
            events(&e);
            e
        }))
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
        for e in results {
            tally(&mut summary, &e);
        }
        Ok(summary)
    }
}

/// The `Planned` event for a list of actions over `source`.
fn planned(actions: &[Action], source: &[Entry]) -> TransferEvent {
    let sizes: std::collections::HashMap<&str, u64> =
        source.iter().map(|e| (e.path.as_str(), e.size)).collect();
    let mut event = (0, 0, 0u64);
    for a in actions {
        match a {
            Action::Copy { path, .. } => {
                event.0 += 1;
                event.2 += sizes.get(path.as_str()).copied().unwrap_or(0);
            }
            Action::Delete { .. } => event.1 += 1,
        }
    }
    TransferEvent::Planned {
        copies: event.0,
        deletes: event.1,
        bytes: event.2,
    }
}

/// Paths to copy and paths to delete.
fn split(actions: Vec<Action>) -> (Vec<String>, Vec<String>) {
    let mut copies = Vec::new();
    let mut deletes = Vec::new();
    for a in actions {
        match a {
            Action::Copy { path, .. } => copies.push(path),
            Action::Delete { path } => deletes.push(path),
        }
    }
    (copies, deletes)
}

/// Runs `copy` on every path with bounded concurrency. The first path of each destination
/// deltaspace goes first, alone in its deltaspace, so that it becomes the reference without
/// the others racing to upload whole copies of themselves.
async fn run_copies<F, Fut>(
    paths: Vec<String>,
    dst_prefix: &str,
    concurrency: usize,
    copy: F,
) -> Vec<TransferEvent>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = TransferEvent>,
{
    let mut seen = BTreeSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = paths.into_iter().partition(|path| {
        seen.insert(deltaspace::of_key(&format!("{dst_prefix}{path}")).to_string())
    });
    let mut out = Vec::new();
    for batch in [first, rest] {
        let done: Vec<TransferEvent> = futures::stream::iter(batch.into_iter().map(&copy))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        out.extend(done);
    }
    out
}

fn tally(summary: &mut TransferSummary, e: &TransferEvent) {
    match e {
        TransferEvent::Uploaded { report, .. } | TransferEvent::Copied { report, .. } => {
            summary.copied += 1;
            summary.bytes += report.original_size;
            summary.stored_bytes += report.stored_size;
        }
        TransferEvent::Downloaded { report } => {
            summary.copied += 1;
            summary.bytes += report.size;
        }
        TransferEvent::WouldCopy { .. } => summary.copied += 1,
        TransferEvent::Deleted { .. } | TransferEvent::WouldDelete { .. } => summary.deleted += 1,
        TransferEvent::Failed { .. } => summary.failed += 1,
        TransferEvent::Skipped { .. } => summary.skipped += 1,
        TransferEvent::Planned { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_directory_are_refused() {
        let root = Path::new("/dest");
        assert_eq!(
            safe_local_path(root, "a/b.zip"),
            Some(PathBuf::from("/dest/a/b.zip"))
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "",
            "dir/",
        ] {
            assert_eq!(safe_local_path(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_are_directories() {
        assert_eq!(as_dir_prefix(""), "");
        assert_eq!(as_dir_prefix("a"), "a/");
        assert_eq!(as_dir_prefix("a/"), "a/");
    }
}
