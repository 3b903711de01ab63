//! Migration: bring the objects under a prefix (another tool's, or plain S3) into the
//! DeltaGlider format under another prefix. Planned first, so that a caller can show what it
//! will copy and ask before anything is written; resumable, since what is already there with
//! the same size is skipped.

use serde::{Serialize, Serializer};

use super::filter::Filters;
use super::plan::CompareOptions;
use super::{EventSink, TransferOptions, TransferSummary, as_dir_prefix};
use crate::engine::{Engine, PutRequestOptions};
use crate::error::Result;
use crate::url::S3Url;

/// Options of a migration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Keep the source prefix's last segment below the destination (`data/` into `new/`
    /// lands in `new/data/`); the default, as `aws s3 cp -r` of a directory does.
    pub preserve_prefix: bool,
    /// Applied to paths relative to the source prefix.
    pub filters: Filters,
    /// Objects in flight at once.
    pub concurrency: usize,
    /// Applied to every object stored.
    pub put: PutRequestOptions,
    /// [`Engine::migrate`] reports what it would copy and copies nothing.
    pub dry_run: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        let t = TransferOptions::default();
        MigrateOptions {
            preserve_prefix: true,
            filters: t.filters,
            concurrency: t.concurrency,
            put: t.put,
            dry_run: false,
        }
    }
}

impl MigrateOptions {
    /// Whether the source prefix's last segment is kept below the destination.
    pub fn preserve_prefix(mut self, preserve: bool) -> Self {
        self.preserve_prefix = preserve;
        self
    }
    /// Only the paths these filters accept.
    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }
    /// Objects in flight at once (at least one).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }
    /// How each object is stored.
    pub fn put(mut self, put: PutRequestOptions) -> Self {
        self.put = put;
        self
    }
    /// Report, copy nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    fn transfer(&self, dry_run: bool) -> TransferOptions {
        TransferOptions {
            // Resumable: objects already at the destination with the same size are skipped.
            compare: CompareOptions {
                size_only: true,
                ..Default::default()
            },
            filters: self.filters.clone(),
            dry_run,
            concurrency: self.concurrency,
            put: self.put.clone(),
            follow_symlinks: true,
        }
    }
}

/// What a migration will do, before it does it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrationPlan {
    /// The source prefix (as a directory: empty or ending in `/`).
    #[serde(serialize_with = "url_text")]
    pub source: S3Url,
    /// Where the objects go (as a directory).
    #[serde(serialize_with = "url_text")]
    pub destination: S3Url,
    /// Objects to copy.
    pub to_copy: usize,
    /// Objects already at the destination with the same size.
    pub already_there: usize,
    /// The planning pass's totals (a dry run of the migration).
    pub planned: TransferSummary,
}

fn url_text<S: Serializer>(url: &S3Url, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(url)
}

impl Engine {
    /// Plans moving the objects under `source` into the DeltaGlider format under
    /// `destination`: which prefixes, how many objects to copy, how many are already
    /// there. Nothing is written.
    pub async fn plan_migration(
        &self,
        source: &S3Url,
        destination: &S3Url,
        options: &MigrateOptions,
    ) -> Result<MigrationPlan> {
        let src_prefix = as_dir_prefix(&source.key);
        let mut dst_prefix = as_dir_prefix(&destination.key);
        if options.preserve_prefix
            && let Some(last) = src_prefix
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
        {
            dst_prefix = format!("{dst_prefix}{last}/");
        }
        let (source, destination) = (
            S3Url::new(&source.bucket, src_prefix),
            S3Url::new(&destination.bucket, dst_prefix),
        );
        let planned = self
            .copy_tree(
                &source.bucket,
                &source.key,
                &destination.bucket,
                &destination.key,
                &options.transfer(true),
                &|_| {},
            )
            .await?;
        Ok(MigrationPlan {
            source,
            destination,
            to_copy: planned.copied,
            already_there: planned.unchanged,
            planned,
        })
    }

    /// Runs a planned migration (with `options.dry_run`, reports it): copies what is not at
    /// the destination yet, one event per object.
    pub async fn migrate(
        &self,
        plan: &MigrationPlan,
        options: &MigrateOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        self.copy_tree(
            &plan.source.bucket,
            &plan.source.key,
            &plan.destination.bucket,
            &plan.destination.key,
            &options.transfer(options.dry_run),
            events,
        )
        .await
    }
}
