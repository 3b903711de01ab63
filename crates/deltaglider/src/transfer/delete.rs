//! Deleting many logical objects: the keys a transfer's `--delete` found, or everything
//! under a prefix (`rm -r`), in batches, one event per key.

use serde::Serialize;

use super::filter::Filters;
use super::{EventSink, TransferEvent, TransferSummary};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Options of [`Engine::delete_tree`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeleteTreeOptions {
    /// Applied to each key's name below the prefix's last `/` (as `rm -r` matches them).
    pub filters: Filters,
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
}

impl DeleteTreeOptions {
    /// Only the keys these filters accept.
    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }
    /// Report, delete nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// What [`Engine::delete_tree`] did.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct DeleteTreeReport {
    /// Keys deleted (with `dry_run`: to be deleted) and keys that failed.
    pub summary: TransferSummary,
    /// Why each failed key is still there, in listing order (each was also reported as a
    /// [`TransferEvent::Failed`]).
    #[serde(skip)]
    pub errors: Vec<Error>,
}

impl Engine {
    /// Deletes every logical object under `prefix` that the filters accept, as `ls -r`
    /// lists them (another tool's `x.delta` is an object of that name, not `x`), in
    /// batches; references no delta needs any more go too. One event per key; a key that
    /// fails is counted and the others are still deleted.
    pub async fn delete_tree(
        &self,
        bucket: &str,
        prefix: &str,
        options: &DeleteTreeOptions,
        events: EventSink<'_>,
    ) -> Result<DeleteTreeReport> {
        if !self.store().bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        // Filters see what `ls` shows of the key: the part after the prefix's last `/`.
        let base = prefix.rfind('/').map_or(0, |i| i + 1);
        let keys: Vec<String> = self
            .list(bucket, prefix, true)
            .await?
            .objects
            .into_iter()
            .map(|o| o.key)
            .filter(|k| options.filters.accepts(&k[base.min(k.len())..]))
            .collect();
        let mut report = DeleteTreeReport::default();
        for (event, error) in self
            .delete_batches(bucket, keys, options.dry_run, events)
            .await
        {
            match event {
                TransferEvent::Failed { .. } => report.summary.failed += 1,
                _ => report.summary.deleted += 1,
            }
            report.errors.extend(error);
        }
        Ok(report)
    }

    /// Deletes `prefix + path` for each path (logical objects; references go with their
    /// last delta).
    pub(super) async fn delete_remote(
        &self,
        bucket: &str,
        prefix: &str,
        paths: Vec<String>,
        dry_run: bool,
        events: EventSink<'_>,
    ) -> Vec<TransferEvent> {
        let keys: Vec<String> = paths.iter().map(|p| format!("{prefix}{p}")).collect();
        self.delete_with_events(bucket, keys, dry_run, events).await
    }

    /// Deletes the logical objects `keys` in batches (or, with `dry_run`, only says it
    /// would), one event per key as each batch ends; a request that fails as a whole fails
    /// the keys of its batch, and the next batch is tried.
    pub async fn delete_with_events(
        &self,
        bucket: &str,
        keys: Vec<String>,
        dry_run: bool,
        events: EventSink<'_>,
    ) -> Vec<TransferEvent> {
        self.delete_batches(bucket, keys, dry_run, events)
            .await
            .into_iter()
            .map(|(event, _)| event)
            .collect()
    }

    /// [`Engine::delete_with_events`], keeping each failed key's error as well as its event.
    async fn delete_batches(
        &self,
        bucket: &str,
        keys: Vec<String>,
        dry_run: bool,
        events: EventSink<'_>,
    ) -> Vec<(TransferEvent, Option<Error>)> {
        let target = |k: &str| format!("s3://{bucket}/{k}");
        let mut out = Vec::with_capacity(keys.len());
        // Two stored forms per logical key: one store request per batch.
        for batch in keys.chunks(crate::storage::DELETE_BATCH / 2) {
            let start = out.len();
            if dry_run {
                out.extend(
                    batch
                        .iter()
                        .map(|k| (TransferEvent::WouldDelete { target: target(k) }, None)),
                );
            } else {
                let results = self.delete_keys(bucket, batch).await;
                out.extend(results.into_iter().map(|r| match r.error {
                    None => (
                        TransferEvent::Deleted {
                            target: target(&r.key),
                        },
                        None,
                    ),
                    Some(err) => (
                        TransferEvent::Failed {
                            target: target(&r.key),
                            error: crate::error::chain(&err),
                        },
                        Some(err),
                    ),
                }));
            }
            for (e, _) in &out[start..] {
                events(e);
            }
        }
        out
    }
}
