//! The SDK's front door: a [`Client`] built from the same configuration as the command line,
//! with the operations of an S3 client, each returning what DeltaGlider did.
//!
//! ```no_run
//! # async fn demo() -> deltaglider::Result<()> {
//! use deltaglider::Client;
//!
//! let client = Client::builder().endpoint_url("file:///tmp/artifacts").build().await?;
//! client.create_bucket("releases").await.ok();
//! let stored = client
//!     .put_object("releases", "app/app-1.0.zip", b"zip bytes".to_vec(), &Default::default())
//!     .await?;
//! println!("{} stored as {:?}, {} bytes", stored.key, stored.stored_as, stored.stored_size);
//! let object = client.get_object("releases", "app/app-1.0.zip").await?;
//! assert_eq!(object.details.size, 9);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::analyze::{AnalyzeReport, AnalyzeSource};
use crate::cache::ReferenceCache;
use crate::codec::DeltaCodec;
use crate::config::{Config, Settings};
use crate::engine::{
    Activity, DeleteReport, Engine, GetReport, KeyDeleted, ObjectDetails, PresignedUrl, Progress,
    PurgeOptions, PurgeReport, PutReport, PutRequestOptions, VerifiedReader, VerifyReport,
};
use crate::error::{Error, Result};
use crate::stats::{BucketStats, StatsMode};
use crate::storage::{BucketInfo, ObjectInfo, ObjectStore};
use crate::transfer::{TransferOptions, TransferSummary};

mod list;
mod options;
mod trees;

pub use list::{ListObjectsOptions, ObjectPages};

/// Bytes to store: in memory, a file, or any async reader. Each is first copied into a private
/// unnamed temporary file (a delta needs the whole target, and the bytes hashed must be the
/// bytes stored).
pub enum Body {
    /// Content already in memory.
    Bytes(Bytes),
    /// A local file, read once into a private snapshot; a file that changes while it is
    /// read fails the upload with nothing stored.
    File(PathBuf),
    /// Read to its end before anything is stored.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(v.into())
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Self {
        Body::Bytes(Bytes::from_static(b))
    }
}

impl From<&Path> for Body {
    fn from(p: &Path) -> Self {
        Body::File(p.to_path_buf())
    }
}

impl From<PathBuf> for Body {
    fn from(p: PathBuf) -> Self {
        Body::File(p)
    }
}

/// An object being downloaded: its description, and its bytes as they are rebuilt.
#[derive(Debug)]
pub struct VerifiedObject {
    /// What DeltaGlider knows about the object.
    pub details: ObjectDetails,
    /// The bytes, streamed as they are rebuilt (memory stays bounded whatever the size).
    /// Only a read that reaches the end with `Ok(0)` has verified them against the
    /// recorded SHA-256; a mismatch is the last read's error instead (see
    /// [`VerifiedReader`]).
    pub body: VerifiedReader,
}

/// Builds a [`Client`]; anything not set comes from the environment and config file, as
/// for the command line.
#[derive(Default)]
pub struct ClientBuilder {
    settings: Settings,
    store: Option<Arc<dyn ObjectStore>>,
    codec: Option<Arc<dyn DeltaCodec>>,
    cache: Option<Arc<dyn ReferenceCache>>,
}

impl ClientBuilder {
    /// Every setting at once, over the environment and config file: each field set here
    /// replaces what an earlier setter gave, and a later setter replaces it.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings.merge(self.settings);
        self
    }
    /// `http(s)://` for an S3-compatible server, `file:///dir` for the local store.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.settings = self.settings.endpoint_url(url);
        self
    }
    /// AWS region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.settings = self.settings.region(region);
        self
    }
    /// AWS profile.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.settings = self.settings.profile(profile);
        self
    }
    /// Store whole when the delta is at least this fraction of the file.
    pub fn max_ratio(mut self, ratio: f64) -> Self {
        self.settings = self.settings.max_ratio(ratio);
        self
    }
    /// Delta-eligible extensions, comma separated; a leading `+` adds to the defaults.
    pub fn delta_extensions(mut self, list: impl Into<String>) -> Self {
        self.settings = self.settings.delta_extensions(list);
        self
    }
    /// Reads this config file instead of the default one.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings = self.settings.config_file(path);
        self
    }
    /// Uses this storage backend instead of the configured endpoint.
    pub fn store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// Uses this delta codec.
    pub fn codec(mut self, codec: Arc<dyn DeltaCodec>) -> Self {
        self.codec = Some(codec);
        self
    }
    /// Uses this reference cache.
    pub fn cache(mut self, cache: Arc<dyn ReferenceCache>) -> Self {
        self.cache = Some(cache);
        self
    }
    /// Stores through this AWS SDK client, configured by the caller, with the default
    /// multipart limits.
    #[cfg(feature = "s3")]
    pub fn s3_client(self, client: aws_sdk_s3::Client) -> Self {
        let store = crate::storage::s3::S3Store::from_client(client, Default::default());
        self.store(Arc::new(store))
    }

    /// Stores through S3 as described by this AWS SDK configuration (for example from
    /// `aws_config::load_defaults`), with the default multipart limits; a custom endpoint in
    /// it gets path-style addressing, as the command line's does.
    #[cfg(feature = "s3")]
    pub fn sdk_config(self, sdk: &aws_config::SdkConfig) -> Self {
        let store = crate::storage::s3::S3Store::from_sdk_config(sdk, Default::default());
        self.store(Arc::new(store))
    }

    /// Resolves the configuration and opens what the caller did not supply: a caller's
    /// store means no endpoint is resolved or connected to, a caller's cache means no cache
    /// directory is created.
    pub async fn build(self) -> Result<Client> {
        let config = Config::load(self.settings)?;
        let store = match self.store {
            Some(store) => store,
            None => config.open_store().await?,
        };
        let codec = match self.codec {
            Some(codec) => codec,
            None => config.open_codec(),
        };
        let cache = match self.cache {
            Some(cache) => cache,
            None => config.open_cache()?,
        };
        let engine = Engine::new(store, codec, cache, config.engine_settings());
        Ok(Client::from_engine(engine))
    }
}

/// A DeltaGlider client: S3 operations that store deltas and return verified originals.
#[derive(Debug, Clone)]
pub struct Client {
    engine: Engine,
}

impl Client {
    /// A client configured like the command line (flags aside): environment, config file,
    /// defaults.
    pub async fn from_env() -> Result<Self> {
        ClientBuilder::default().build().await
    }

    /// Starts a builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Wraps an assembled engine (the builder and [`Config::build_client`] assemble it).
    pub(crate) fn from_engine(engine: Engine) -> Self {
        Client { engine }
    }

    /// The same client, reporting the byte progress of every upload and download (hashing,
    /// encoding, transferring, rebuilding) to `progress`.
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        Client {
            engine: self.engine.with_progress(progress),
        }
    }

    /// What this client (and every clone of it) has done so far: reference cache hits and
    /// misses, deltas encoded and decoded and the time they took.
    pub fn activity(&self) -> Activity {
        self.engine.activity()
    }

    /// Stores `body` as `s3://bucket/key` (as a delta when worthwhile) and reports what was
    /// stored, as [`Client::upload_file`] and [`Client::copy_object`] do.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Body>,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        match body.into() {
            Body::File(path) => self.engine.put_file(&path, bucket, key, options).await,
            Body::Bytes(bytes) => {
                self.engine
                    .put_reader(&bytes[..], "the body", None, bucket, key, options)
                    .await
            }
            Body::Reader(reader) => {
                self.engine
                    .put_reader(reader, "the body", None, bucket, key, options)
                    .await
            }
        }
    }

    /// Stores what `reader` yields as `s3://bucket/key`, like [`Client::put_object`] with
    /// [`Body::Reader`]; `name` names the stream in messages (`standard input`, say). With
    /// `expected_size`, a stream of another length is refused and nothing is stored.
    pub async fn put_object_stream(
        &self,
        bucket: &str,
        key: &str,
        reader: impl AsyncRead + Unpin + Send,
        name: &str,
        expected_size: Option<u64>,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        self.engine
            .put_reader(reader, name, expected_size, bucket, key, options)
            .await
    }

    /// What a put to `s3://bucket/key` checks before it writes anything (the key is not
    /// reserved, the bucket exists), without writing: a dry run fails as the put would.
    pub async fn check_put_target(&self, bucket: &str, key: &str) -> Result<()> {
        self.engine.check_upload_target(bucket, key).await
    }

    /// Downloads `s3://bucket/key` as a stream; reading it to its end verifies it.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<VerifiedObject> {
        let (details, body) = self.engine.get_stream(bucket, key).await?;
        Ok(VerifiedObject { details, body })
    }

    /// The bytes `range` of an object stored whole (`details` from [`Client::head_object`]),
    /// read from the backend by range: as stored, not verified (only a whole read can be
    /// checked against the recorded SHA-256). A delta has no bytes to read by range:
    /// [`Error::Unsupported`]. An object replaced since `details` were read (another entity
    /// tag or size) is [`Error::ObjectChanged`]: its bytes are not those `details` describe.
    pub async fn get_whole_object_range(
        &self,
        details: &ObjectDetails,
        range: std::ops::Range<u64>,
    ) -> Result<crate::storage::ObjectBody> {
        if details.stored_as == crate::StoredAs::Delta {
            return Err(Error::Unsupported {
                operation: format!("a ranged read of {}/{}", details.bucket, details.key),
                reason: "it is stored as a delta, which is rebuilt whole".into(),
            });
        }
        let changed = || Error::ObjectChanged {
            bucket: details.bucket.clone(),
            key: details.key.clone(),
        };
        // What `details` would say of the stored object `info`.
        let same = |info: &crate::storage::ObjectInfo| {
            let sha256 = info
                .metadata
                .as_ref()
                .and_then(|m| crate::metadata::DgMetadata::parse(m).file_sha256);
            let etag = crate::engine::logical_etag(
                details.stored_as,
                info.etag.as_deref(),
                sha256.as_deref(),
            );
            etag == details.etag && info.size == details.stored_size
        };
        let store = self.engine.store();
        match store
            .get_object_range(&details.bucket, &details.stored_key, range)
            .await
        {
            Ok(read) if same(&read.info) => Ok(read.body),
            Ok(_) => Err(changed()),
            // Gone, or too short for the range: replaced since it was described, unless
            // it is still the same object (then the range itself is wrong).
            Err(e)
                if matches!(e, Error::NotFound { .. } | Error::InvalidArgument { .. })
                    || e.s3_code() == Some("InvalidRange") =>
            {
                let now = store
                    .head_object(&details.bucket, &details.stored_key)
                    .await?;
                Err(if now.as_ref().is_some_and(same) {
                    e
                } else {
                    changed()
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Describes `s3://bucket/key` without downloading it.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectDetails> {
        self.engine.head(bucket, key).await
    }

    /// What the store records for one stored key (an [`ObjectDetails::stored_key`]): its
    /// HTTP headers, storage class and encryption; `None` if absent.
    pub async fn head_stored_object(
        &self,
        bucket: &str,
        stored_key: &str,
    ) -> Result<Option<ObjectInfo>> {
        self.engine.store().head_object(bucket, stored_key).await
    }

    /// Rebuilds `s3://bucket/key` and checks it against its recorded SHA-256, writing
    /// nothing; metadata that cannot be checked against is an error, not a report.
    pub async fn verify_object(&self, bucket: &str, key: &str) -> Result<VerifyReport> {
        self.engine.verify(bucket, key).await
    }

    /// Downloads `s3://bucket/key` into `out` as it is rebuilt. A mismatch found after
    /// bytes were written is [`crate::Error::OutputDiscarded`] naming `destination` (for
    /// messages, `stdout` say): the caller must discard what `out` received.
    pub async fn download_to_writer<W: std::io::Write + Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        out: W,
        destination: &str,
    ) -> Result<GetReport> {
        self.engine
            .get_to_writer(bucket, key, out, destination)
            .await
    }

    /// Deletes one logical object (and its reference once unused).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<DeleteReport> {
        self.engine.delete(bucket, key).await
    }

    /// Deletes several logical objects in batches (S3 `DeleteObjects`, 1,000 stored keys per
    /// request), each as [`Client::delete_object`] would; references no delta needs any
    /// more go too. Each key gets its own result; as with `DeleteObjects`, a key that was
    /// not there is not an error.
    pub async fn delete_objects(&self, bucket: &str, keys: &[&str]) -> Vec<KeyDeleted> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.engine.delete_keys(bucket, &keys).await
    }

    /// Deletes every logical object under `prefix`, in batches; returns how many were
    /// deleted, or (once every batch was tried) the first key's error that could not be.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize> {
        let report = self
            .engine
            .delete_tree(bucket, prefix, &Default::default(), &|_| {})
            .await?;
        match report.errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(report.summary.deleted),
        }
    }

    /// Copies a logical object (deltas rebuilt against the destination's reference).
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: &PutRequestOptions,
    ) -> Result<PutReport> {
        self.engine
            .copy_object(src_bucket, src_key, dst_bucket, dst_key, options)
            .await
    }

    /// Whether the bucket exists (S3 `HeadBucket`).
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        self.engine.store().bucket_exists(bucket).await
    }

    /// Deletes every stored object in a bucket (references and internal objects included,
    /// in batches), then the bucket; returns how many stored objects were deleted. A store
    /// that cannot delete buckets is refused before anything is deleted.
    pub async fn delete_bucket_and_contents(&self, bucket: &str) -> Result<usize> {
        let admin = crate::storage::bucket_admin(&**self.engine.store())?;
        let removed = self.engine.delete_everything(bucket).await?;
        admin.delete_bucket(bucket).await?;
        Ok(removed)
    }

    /// Creates a bucket (on S3, in the client's region).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        crate::storage::bucket_admin(&**self.engine.store())?
            .create_bucket(bucket)
            .await
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        crate::storage::bucket_admin(&**self.engine.store())?
            .delete_bucket(bucket)
            .await
    }

    /// The store's buckets (on S3, those the credentials own).
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        crate::storage::bucket_admin(&**self.engine.store())?
            .list_buckets()
            .await
    }

    /// A URL to download the object (deltas are rehydrated under `.deltaglider/tmp/`).
    pub async fn presigned_get_url(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedUrl> {
        self.engine.presign_get(bucket, key, expires_in).await
    }

    /// Removes what earlier commands left in `bucket`: expired rehydrated copies, references
    /// no delta uses, and multipart uploads abandoned for a day or more.
    pub async fn purge(&self, bucket: &str) -> Result<PurgeReport> {
        self.engine.purge(bucket, &PurgeOptions::default()).await
    }

    /// [`Client::purge`] with its thresholds set.
    pub async fn purge_with(&self, bucket: &str, options: &PurgeOptions) -> Result<PurgeReport> {
        self.engine.purge(bucket, options).await
    }

    /// Waits up to `within` for work a cancelled operation left running: the aborts of
    /// multipart uploads whose futures were dropped mid-way. Call it before the runtime
    /// shuts down after cancelling one; false if some had not finished (`purge` finds those).
    pub async fn finish_cleanup(&self, within: Duration) -> bool {
        self.engine.finish_aborts(within).await
    }

    /// Uploads one file with the default options (see [`Client::put_object`] for others).
    pub async fn upload_file(&self, path: &Path, bucket: &str, key: &str) -> Result<PutReport> {
        self.engine
            .put_file(path, bucket, key, &PutRequestOptions::default())
            .await
    }

    /// Downloads one object to a file (written only once verified).
    pub async fn download_file(&self, bucket: &str, key: &str, path: &Path) -> Result<GetReport> {
        self.engine.get_to_file(bucket, key, path).await
    }

    /// Uploads (or, with `options.compare`, syncs) a directory to a prefix.
    pub async fn upload_dir(
        &self,
        dir: &Path,
        bucket: &str,
        prefix: &str,
        options: &TransferOptions,
    ) -> Result<TransferSummary> {
        self.engine
            .upload_tree(dir, bucket, prefix, options, &|_| {})
            .await
    }

    /// Downloads (or syncs) a prefix into a directory.
    pub async fn download_dir(
        &self,
        bucket: &str,
        prefix: &str,
        dir: &Path,
        options: &TransferOptions,
    ) -> Result<TransferSummary> {
        self.engine
            .download_tree(bucket, prefix, dir, options, &|_| {})
            .await
    }

    /// Objects, original and stored bytes, savings, per deltaspace.
    pub async fn stats(&self, bucket: &str, prefix: &str, mode: StatsMode) -> Result<BucketStats> {
        self.engine.stats(bucket, prefix, mode).await
    }

    /// Estimates what storing `source` as deltas would save, encoding at most `sample`
    /// files per deltaspace; nothing is written.
    pub async fn analyze(&self, source: AnalyzeSource<'_>, sample: usize) -> Result<AnalyzeReport> {
        self.engine.analyze(source, sample).await
    }

    /// Empties the reference cache (for long-running processes).
    pub fn clear_cache(&self) -> Result<()> {
        self.engine.cache().clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BucketAdmin;
    use crate::storage::local::LocalStore;

    /// A caller's store is used as it is: the configured endpoint is never opened (here an
    /// S3 URL, which a build without the `s3` feature could not open at all).
    #[tokio::test]
    async fn a_callers_store_is_used_without_opening_the_configured_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path().join("store")).unwrap());
        store.create_bucket("bkt").await.unwrap();
        let client = Client::builder()
            .endpoint_url("http://127.0.0.1:1")
            .config_file("/dev/null")
            .store(store)
            .build()
            .await
            .expect("a client over the caller's store");
        let stored = client
            .put_object(
                "bkt",
                "app/app-1.0.zip",
                b"zip bytes".to_vec(),
                &Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(stored.original_size, 9);
        assert!(dir.path().join("store/bkt").is_dir());
        let listed = client
            .list_all_objects(
                "bkt",
                "app/",
                &ListObjectsOptions::default().recursive(true),
            )
            .await
            .unwrap();
        assert_eq!(listed.objects.len(), 1);
    }

    /// Settings and setters layer as calls do: the later call wins, field by field, and
    /// what neither sets comes from below (here the defaults).
    #[tokio::test]
    async fn settings_and_setters_layer_in_call_order() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("file://{}", dir.path().display());
        let client = Client::builder()
            .max_ratio(0.9)
            .settings(
                Settings::default()
                    .max_ratio(0.2)
                    .delta_extensions("bin")
                    .endpoint_url("http://127.0.0.1:1")
                    .config_file("/dev/null")
                    .no_cache(true),
            )
            .endpoint_url(endpoint)
            .build()
            .await
            .expect("a client over the local store");
        let settings = client.engine.settings();
        assert_eq!(settings.max_ratio, 0.2);
        assert!(settings.policy.is_eligible("x.bin") && !settings.policy.is_eligible("x.zip"));
        assert_eq!(client.engine.cache().info().unwrap().backend, "disabled");
        let e = Client::builder()
            .config_file("/dev/null")
            .store(Arc::new(LocalStore::new(dir.path().join("s")).unwrap()))
            .max_ratio(1.5)
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-ratio"), "{e}");
    }
}
