//! A store decorator that counts the requests made through it, for tests that promise how
//! many a command makes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use deltaglider::Result;
use deltaglider::storage::{
    BucketAdmin, CopyOptions, DeleteFailure, ListPage, ListRequest, ObjectInfo, ObjectReader,
    ObjectStore, PendingUploads, Presign, PutOptions, PutOutcome, PutSource,
};

/// Requests made so far, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pub heads: AtomicU64,
    pub gets: AtomicU64,
    pub puts: AtomicU64,
    pub lists: AtomicU64,
    pub deletes: AtomicU64,
    pub copies: AtomicU64,
}

impl Counts {
    pub fn heads(&self) -> u64 {
        self.heads.load(Ordering::SeqCst)
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::SeqCst)
    }
    /// Every request counted.
    pub fn total(&self) -> u64 {
        [
            &self.heads,
            &self.gets,
            &self.puts,
            &self.lists,
            &self.deletes,
            &self.copies,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

/// `inner`, its requests counted in `counts`.
#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn ObjectStore>,
    pub counts: Arc<Counts>,
}

impl Counting {
    pub fn over(inner: Arc<dyn ObjectStore>) -> (Arc<Counting>, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let store = Arc::new(Counting {
            inner,
            counts: counts.clone(),
        });
        (store, counts)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn bucket_admin(&self) -> Option<&dyn BucketAdmin> {
        self.inner.bucket_admin()
    }
    fn presigner(&self) -> Option<&dyn Presign> {
        self.inner.presigner()
    }
    fn pending_uploads(&self) -> Option<&dyn PendingUploads> {
        self.inner.pending_uploads()
    }
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        count(&self.counts.heads);
        self.inner.bucket_exists(bucket).await
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        count(&self.counts.heads);
        self.inner.head_object(bucket, key).await
    }
    async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectReader> {
        count(&self.counts.gets);
        self.inner.get_object(bucket, key).await
    }
    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<ObjectReader> {
        count(&self.counts.gets);
        self.inner.get_object_range(bucket, key, range).await
    }
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        count(&self.counts.puts);
        self.inner.put_object(bucket, key, source, options).await
    }
    async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        count(&self.counts.lists);
        self.inner.list_objects(bucket, request).await
    }
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        count(&self.counts.deletes);
        self.inner.delete_object(bucket, key).await
    }
    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<DeleteFailure>> {
        count(&self.counts.deletes);
        self.inner.delete_objects(bucket, keys).await
    }
    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: CopyOptions,
    ) -> Result<()> {
        count(&self.counts.copies);
        self.inner
            .copy_object(src_bucket, src_key, dst_bucket, dst_key, options)
            .await
    }
}
