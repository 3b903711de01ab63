//! Tree transfers between a local directory and a prefix, or two prefixes: `cp -r` and
//! `sync` in each direction, with bounded concurrency and per-file failures reported without
//! stopping the rest.

use std::collections::BTreeSet;
use std::path::Path;

use futures::StreamExt;

use super::filter::Filters;
use super::local_tree::{Skip, safe_local_path, scan_local_tree};
use super::plan::{self, Action, Direction, Entry};
use super::{EventSink, TransferEvent, TransferOptions, TransferSummary, as_dir_prefix};
use crate::deltaspace;
use crate::engine::Engine;
use crate::error::{Error, Result};

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
        // Remembered: each file's upload then checks the bucket without asking again.
        if !self.bucket_exists_recently(bucket).await? {
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
