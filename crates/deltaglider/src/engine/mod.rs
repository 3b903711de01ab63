//! The DeltaGlider engine: the on-bucket format applied over a storage backend, a delta codec
//! and a reference cache.

mod activity;
mod compact;
mod copy;
mod delete;
mod delta_upload;
mod delta_write;
mod destination;
mod etag;
mod get;
pub(crate) mod index;
mod integrity;
mod lease;
mod list;
mod presign;
mod progress;
mod purge;
mod put;
pub(crate) mod reason;
mod recent;
mod reference;
mod source;
mod stream;
mod sweep;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use activity::Activity;
pub use compact::{DEFAULT_XZ_PRESET, StorageFormat};
pub use delete::{DeleteReport, KeyDeleted};
/// Bounds on expanding a file for the compact format ([`EngineSettings::expansion_limits`]).
pub use deltaglider_archive::Limits as ExpansionLimits;
pub use destination::is_download_temp_name;
pub use etag::logical_etag;
pub use get::{GetReport, ObjectDetails, VerifyReport};
pub use list::{ListEntry, Listing};
pub use presign::PresignedUrl;
pub use progress::{Phase, Progress};
pub use purge::{AbortedUpload, PurgeOptions, PurgeReport};
pub use put::{PutReport, PutRequestOptions};
pub use reason::StoreReason;
pub use stream::VerifiedReader;
pub use sweep::ReferenceSweep;

use crate::cache::ReferenceCache;
use crate::codec::DeltaCodec;
use crate::deltaspace::DeltaPolicy;
use crate::storage::ObjectStore;

/// How a logical object is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoredAs {
    /// `<key>.delta` against its deltaspace's `reference.bin`.
    Delta,
    /// Whole, with DeltaGlider metadata.
    Direct,
    /// Whole, written by something other than DeltaGlider (no metadata).
    Plain,
    /// Whole; only in listings from stores that return no metadata (S3), where telling
    /// `Direct` from `Plain` would cost a request per object.
    Whole,
}

/// Engine settings that are not components.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Which file names are tried as deltas; the others are stored whole.
    pub policy: DeltaPolicy,
    /// A delta at least this fraction of the file's size is not worth it: store the file whole.
    pub max_ratio: f64,
    /// Concurrent metadata requests when listing.
    pub list_concurrency: usize,
    /// The format of deltaspaces this engine creates; an existing deltaspace keeps its own.
    pub format: StorageFormat,
    /// Bounds on expanding a file for the compact format; past them its streams stay
    /// compressed.
    pub expansion_limits: deltaglider_archive::Limits,
    /// xz preset (0-9) of compact references; the dictionary is capped whatever the preset
    /// so that encoding stays within the product's memory bound.
    pub xz_preset: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            policy: DeltaPolicy::default(),
            max_ratio: 0.5,
            list_concurrency: 16,
            format: StorageFormat::default(),
            expansion_limits: deltaglider_archive::Limits::default(),
            xz_preset: DEFAULT_XZ_PRESET,
        }
    }
}

/// Stores and fetches files in the DeltaGlider format.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<dyn ObjectStore>,
    codec: Arc<dyn DeltaCodec>,
    cache: Arc<dyn ReferenceCache>,
    settings: EngineSettings,
    /// Where byte progress goes, if anywhere.
    progress: Option<Arc<dyn Progress>>,
    /// What this engine and its clones have done.
    activity: Arc<activity::ActivityCounters>,
    /// Listing index entries waiting to be stored, shared by clones.
    index: Arc<index::IndexLog>,
    /// One slot per core for the work that keeps a core busy, shared by clones.
    cpu: Arc<tokio::sync::Semaphore>,
    /// What was seen of the store moments ago, shared by clones.
    recent: Arc<recent::Recent>,
}

impl Engine {
    /// Assembles an engine from its parts; [`crate::config::Config::build_client`] does this
    /// from configuration.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        codec: Arc<dyn DeltaCodec>,
        cache: Arc<dyn ReferenceCache>,
        settings: EngineSettings,
    ) -> Self {
        let activity = Arc::new(activity::ActivityCounters::default());
        Engine {
            store,
            codec: activity::TimedCodec::wrap(codec, activity.clone()),
            cache,
            settings,
            progress: None,
            activity,
            index: Arc::default(),
            cpu: Arc::new(tokio::sync::Semaphore::new(cores())),
            recent: Arc::default(),
        }
    }

    /// Whether `bucket` exists, from a `HeadBucket` made moments ago by this engine or a
    /// clone if one said it did (`recent`). Only a "yes" is remembered: a bucket removed
    /// since then fails the write itself (`NoSuchBucket`), never silently.
    pub(crate) async fn bucket_exists_recently(&self, bucket: &str) -> crate::Result<bool> {
        if self.recent.bucket_exists(bucket) {
            return Ok(true);
        }
        let exists = self.store.bucket_exists(bucket).await?;
        if exists {
            self.recent.saw_bucket(bucket);
        }
        Ok(exists)
    }

    /// Runs `f` on the blocking pool once a core is free: encoding, decoding and expanding
    /// run one per core however many transfers are in flight, so that the concurrency a
    /// tree transfer uses to hide request latency multiplies neither CPU contention nor the
    /// codec's memory.
    pub(crate) async fn cpu_bound<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> crate::Result<T> + Send + 'static,
    ) -> crate::Result<T> {
        let _slot = self.cpu.acquire().await;
        blocking(what, f).await
    }

    /// What this engine (and every clone of it) has done so far.
    pub fn activity(&self) -> Activity {
        self.activity.snapshot()
    }

    /// The same engine, reporting the byte progress of uploads and downloads to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Progress reporting for `key`.
    pub(crate) fn progress_for(&self, key: &str) -> progress::KeyProgress {
        progress::KeyProgress::new(self.progress.as_ref(), key)
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The delta codec.
    pub fn codec(&self) -> &Arc<dyn DeltaCodec> {
        &self.codec
    }

    /// The reference cache.
    pub fn cache(&self) -> &Arc<dyn ReferenceCache> {
        &self.cache
    }

    /// The settings in force.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }
}

/// Cores this process may use (at least 1).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serializes timestamps as RFC 3339.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

pub(crate) use crate::task::blocking;

#[cfg(test)]
mod tests {
    use super::*;

    /// SDK users spawn engine operations on multi-threaded runtimes: the futures must be Send.
    #[allow(dead_code)]
    fn futures_are_send(engine: &Engine, path: &std::path::Path) {
        fn send<T: Send>(_: T) {}
        send(engine.put_file(path, "b", "k", &PutRequestOptions::default()));
        send(engine.get_to_file("b", "k", path));
        send(engine.list("b", "", true));
        send(engine.delete("b", "k"));
        send(engine.verify("b", "k"));
    }
}
