//! The narrow storage seam: what the engine needs from an object store, nothing more.
//!
//! Two real implementations live beside this file: [`s3::S3Store`] over `aws-sdk-s3`, and
//! [`local::LocalStore`], a directory tree with the same semantics (user metadata,
//! conditional create, atomic publication, prefix/delimiter listing with pagination).

mod headers;
pub mod local;
mod pages;
#[cfg(feature = "s3")]
pub mod s3;

pub use headers::{
    Encryption, MetadataDirective, ObjectHeaders, ObjectSettings, StorageProtection,
    guess_content_type,
};
pub use pages::ObjectStoreExt;

use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

use crate::error::Result;
use crate::metadata::UserMetadata;

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The stored key (`<key>.delta` for deltas, not the logical key).
    pub key: String,
    /// Stored size in bytes.
    pub size: u64,
    /// The store's modification time.
    pub last_modified: Option<DateTime<Utc>>,
    /// Entity tag as S3 reports it (quotes included); `None` from the local store. Not
    /// interpreted.
    pub etag: Option<String>,
    /// User metadata. `None` when the store did not return it (S3 listings never do).
    pub metadata: Option<UserMetadata>,
    /// `Content-Type`, when the store returned it (not in listings).
    pub content_type: Option<String>,
    /// The other HTTP headers recorded with the object (empty in listings).
    pub headers: ObjectHeaders,
    /// Storage class and encryption as the store reports them (empty in listings and from
    /// the local store; S3 reports no storage class for `STANDARD`, and never the ACL).
    pub protection: StorageProtection,
}

/// A bucket as listed by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Creation date on S3; the directory's modification time in the local store.
    pub created: Option<DateTime<Utc>>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects of this page in key order, references and internal objects included.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (ending in the delimiter) when a delimiter was given.
    pub common_prefixes: Vec<String>,
    /// Token for the next page, `None` on the last page.
    pub next_token: Option<String>,
}

/// Parameters of a listing request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Only keys starting with this string; empty for the whole bucket.
    pub prefix: String,
    /// Group keys with this after the prefix into [`ListPage::common_prefixes`] (`/` for
    /// one directory level); `None` lists recursively.
    pub delimiter: Option<String>,
    /// [`ListPage::next_token`] of the previous page; `None` for the first page.
    pub continuation_token: Option<String>,
    /// Page size; `None` for the store's default of 1000, which is also S3's maximum.
    pub max_keys: Option<usize>,
}

/// Where the bytes of a put come from.
#[derive(Debug, Clone)]
pub enum PutSource {
    /// A file on local disk, read in a streaming fashion (multipart when large).
    File(PathBuf),
    /// Small in-memory content.
    Bytes(Bytes),
}

/// Options of a put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// User metadata to store with the object; values must be ASCII for S3.
    pub metadata: UserMetadata,
    /// `Content-Type` to record; `None` leaves it to the store.
    pub content_type: Option<String>,
    /// Other HTTP headers to record.
    pub headers: ObjectHeaders,
    /// Storage class, encryption and ACL; ignored by the local store.
    pub protection: StorageProtection,
    /// Create only if no object exists under the key (`If-None-Match: *`).
    pub if_none_match: bool,
}

/// What a server-side copy writes besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `None` keeps the source's user metadata, `Content-Type` and headers (S3's `COPY`
    /// directive); `Some` gives the destination exactly these (`REPLACE`).
    pub replace: Option<ReplacedMetadata>,
    /// Storage class, encryption and ACL of the copy (never inherited from the source, as
    /// on S3); ignored by the local store.
    pub protection: StorageProtection,
}

/// The metadata a `REPLACE` copy writes.
#[derive(Debug, Clone, Default)]
pub struct ReplacedMetadata {
    /// All user metadata of the copy, DeltaGlider's included.
    pub metadata: UserMetadata,
    /// `Content-Type` of the copy; `None` leaves it to the store.
    pub content_type: Option<String>,
    /// Other HTTP headers of the copy.
    pub headers: ObjectHeaders,
}

/// Outcome of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written.
    Stored {
        /// Entity tag of the new object; `None` from the local store.
        etag: Option<String>,
    },
    /// `if_none_match` was set and an object already existed (HTTP 412).
    AlreadyExists,
}

/// Most keys S3 deletes in one `DeleteObjects` request.
pub const DELETE_BATCH: usize = 1000;

/// A key a batch delete left in place, and why.
#[derive(Debug)]
pub struct DeleteFailure {
    /// The stored key.
    pub key: String,
    /// What the store said about it.
    pub error: crate::Error,
}

/// A streaming object body.
pub type ObjectBody = Pin<Box<dyn AsyncRead + Send>>;

/// An object being read: its description and a stream of its bytes.
pub struct ObjectReader {
    /// What the store returned with the bytes, metadata included.
    pub info: ObjectInfo,
    /// The object's bytes, from the first.
    pub body: ObjectBody,
}

/// The storage operations DeltaGlider needs. Errors distinguish a missing bucket
/// ([`crate::Error::NoSuchBucket`]) and a missing object ([`crate::Error::NotFound`]).
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Human-readable description of where the store is, for messages.
    fn describe(&self) -> String;

    /// Bucket administration, for stores that have it (both built-in stores do).
    fn bucket_admin(&self) -> Option<&dyn BucketAdmin>;
    /// Presigned URLs, for stores whose objects can be fetched over HTTP (S3; not the local
    /// store).
    fn presigner(&self) -> Option<&dyn Presign>;
    /// Multipart uploads left unfinished, for stores that have them (S3; the local store's
    /// writes leave nothing behind).
    fn pending_uploads(&self) -> Option<&dyn PendingUploads>;

    /// Whether the bucket exists; used to tell a missing bucket from a missing key.
    async fn bucket_exists(&self, bucket: &str) -> Result<bool>;

    /// Metadata of one object, `None` if absent.
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>>;
    /// Streams one object.
    async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectReader>;
    /// Streams the bytes `range` of one object (a `range` past its end is an error); the
    /// bytes as stored, unverified: what a ranged GET of a whole object serves. The info is
    /// that of the object the bytes come from (its whole size, tag and metadata), so that
    /// a caller can tell whether it is still the one it described.
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<ObjectReader>;
    /// Stores one object atomically: readers see the old object or the whole new one.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome>;
    /// One page of keys in lexicographic order.
    async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage>;
    /// Deletes one object; deleting an absent object is not an error.
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<()>;
    /// Deletes many objects, at most [`DELETE_BATCH`] per request (S3 `DeleteObjects`);
    /// absent keys are not errors. `Ok` lists the keys that could not be deleted, each with
    /// why; `Err` means a request failed as a whole (its keys may or may not be gone).
    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<DeleteFailure>>;
    /// Copies an object within the store without downloading it: the bytes, and the user
    /// metadata, `Content-Type` and headers unless `options` replaces them.
    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: CopyOptions,
    ) -> Result<()>;
}

/// Listing, creating and deleting buckets: a capability of its own, since a store can hold
/// objects without offering it.
#[async_trait]
pub trait BucketAdmin: Send + Sync {
    /// Every bucket in the store (on S3, those the credentials own).
    async fn list_buckets(&self) -> Result<Vec<BucketInfo>>;
    /// Creates a bucket after checking its name; [`crate::Error::BucketAlreadyExists`] when
    /// the store says it is taken.
    async fn create_bucket(&self, bucket: &str) -> Result<()>;
    /// Deletes an empty bucket.
    async fn delete_bucket(&self, bucket: &str) -> Result<()>;
}

/// Presigned download URLs: only stores whose objects are served over HTTP can sign them.
#[async_trait]
pub trait Presign: Send + Sync {
    /// A URL that lets anyone holding it download the object until `expires_in` passes;
    /// `download_name` is the file name browsers save it under.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
        download_name: Option<&str>,
    ) -> Result<String>;
}

/// A multipart upload that was begun and neither completed nor aborted: no object anyone can
/// see, but its parts take space (and, on AWS, are billed) until it is aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key it would have created.
    pub key: String,
    /// The store's id for it.
    pub upload_id: String,
    /// When it was begun, if the store says.
    pub initiated: Option<DateTime<Utc>>,
}

/// Unfinished multipart uploads: those a writer killed before it could abort them, and those
/// whose abort is still under way after the writer was cancelled.
#[async_trait]
pub trait PendingUploads: Send + Sync {
    /// Every unfinished upload in `bucket` whose key starts with `prefix`.
    async fn list_pending_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<PendingUpload>>;
    /// Aborts one, freeing its parts; one already gone is not an error.
    async fn abort_pending_upload(&self, bucket: &str, upload: &PendingUpload) -> Result<()>;
    /// Waits up to `within` for the aborts that cancelled writes left running in the
    /// background (an upload's future dropped mid-way aborts its upload on the runtime);
    /// false if some had not finished by then.
    async fn finish_aborts(&self, within: std::time::Duration) -> bool;
}

/// The store's bucket administration, or an error naming the store that has none.
pub fn bucket_admin(store: &dyn ObjectStore) -> Result<&dyn BucketAdmin> {
    store
        .bucket_admin()
        .ok_or_else(|| crate::Error::Unsupported {
            operation: "bucket administration".into(),
            reason: format!("{} cannot list, create or delete buckets", store.describe()),
        })
}
