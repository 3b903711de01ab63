//! The client's operations on many objects at once, or on one object moved: the same
//! library code the command line's `mv`, `migrate` and `rm -r` run.

use std::path::Path;

use super::Client;
use crate::engine::{GetReport, PutReport, PutRequestOptions};
use crate::error::Result;
use crate::transfer::{
    DeleteTreeOptions, DeleteTreeReport, EventSink, Location, MigrateOptions, MigrationPlan,
    MoveOptions, Moved, TransferOptions, TransferSummary,
};
use crate::url::S3Url;

impl Client {
    /// Copies (or, with `options.compare`, syncs) a tree between a directory and a prefix,
    /// or between two prefixes; each file's event goes to `events` as it happens.
    pub async fn transfer_tree(
        &self,
        from: &Location,
        to: &Location,
        options: &TransferOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        self.engine.transfer_tree(from, to, options, events).await
    }

    /// Uploads a file, then removes it unless it changed meanwhile (see [`Moved`]).
    pub async fn move_file(
        &self,
        path: &Path,
        bucket: &str,
        key: &str,
        options: &PutRequestOptions,
    ) -> Result<Moved<PutReport>> {
        self.engine.move_file(path, bucket, key, options).await
    }

    /// Downloads an object to a file (verified), then deletes the object.
    pub async fn move_to_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
    ) -> Result<Moved<GetReport>> {
        self.engine.move_to_file(bucket, key, path).await
    }

    /// Copies an object, then deletes the source.
    pub async fn move_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: &PutRequestOptions,
    ) -> Result<Moved<PutReport>> {
        self.engine
            .move_object(src_bucket, src_key, dst_bucket, dst_key, options)
            .await
    }

    /// Moves a tree: copies it, then removes each source whose copy was stored.
    pub async fn move_tree(
        &self,
        from: &Location,
        to: &Location,
        options: &MoveOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        self.engine.move_tree(from, to, options, events).await
    }

    /// Plans a migration of `source` into the DeltaGlider format under `destination`;
    /// nothing is written.
    pub async fn plan_migration(
        &self,
        source: &S3Url,
        destination: &S3Url,
        options: &MigrateOptions,
    ) -> Result<MigrationPlan> {
        self.engine
            .plan_migration(source, destination, options)
            .await
    }

    /// Runs a planned migration (with `options.dry_run`, only reports it).
    pub async fn migrate(
        &self,
        plan: &MigrationPlan,
        options: &MigrateOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        self.engine.migrate(plan, options, events).await
    }

    /// Deletes every logical object under `prefix` that `options.filters` accept, one event
    /// per key; a key that fails does not stop the others.
    pub async fn delete_tree(
        &self,
        bucket: &str,
        prefix: &str,
        options: &DeleteTreeOptions,
        events: EventSink<'_>,
    ) -> Result<DeleteTreeReport> {
        self.engine
            .delete_tree(bucket, prefix, options, events)
            .await
    }
}
