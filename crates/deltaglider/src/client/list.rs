//! Listing logical objects page by page, as S3 paginators do.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, Stream, StreamExt};

use super::Client;
use crate::engine::Listing;
use crate::error::Result;

/// How [`Client::list_objects`] lists.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListObjectsOptions {
    /// Every key under the prefix; when false, keys below the next `/` are grouped into
    /// [`Listing::prefixes`], like `aws s3 ls`.
    pub recursive: bool,
    /// Keys per request to the store; `None` for the store's default (S3's maximum, 1000).
    pub page_size: Option<usize>,
}

impl ListObjectsOptions {
    /// Lists every key under the prefix rather than one level.
    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }

    /// Asks the store for this many keys per page.
    pub fn page_size(mut self, keys: usize) -> Self {
        self.page_size = Some(keys);
        self
    }
}

/// The pages of a listing, each a [`Listing`] of the logical objects and prefixes one store
/// request returned (references and internal objects hidden, deltas under their logical
/// keys). A `<key>` and its `<key>.delta` split by a page boundary are reported once, on
/// the later page. A failed request ends the stream with its error.
#[must_use = "a listing does nothing until its pages are read"]
pub struct ObjectPages<'a> {
    pages: BoxStream<'a, Result<Listing>>,
}

impl ObjectPages<'_> {
    /// The next page, `None` after the last.
    pub async fn next_page(&mut self) -> Option<Result<Listing>> {
        self.pages.next().await
    }

    /// Every remaining page in one listing, objects in key order.
    pub async fn collect_all(self) -> Result<Listing> {
        Listing::merge_pages(self.pages).await
    }
}

impl Stream for ObjectPages<'_> {
    type Item = Result<Listing>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.pages.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for ObjectPages<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectPages").finish_non_exhaustive()
    }
}

impl Client {
    /// The logical objects under `prefix` in `bucket`, one page per store request, with
    /// their original sizes and how each is stored.
    pub fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &str,
        options: &ListObjectsOptions,
    ) -> ObjectPages<'a> {
        ObjectPages {
            pages: self
                .engine
                .list_pages(bucket, prefix, options.recursive, options.page_size),
        }
    }

    /// Every page of [`Client::list_objects`] collected into one listing, objects in key
    /// order.
    pub async fn list_all_objects(
        &self,
        bucket: &str,
        prefix: &str,
        options: &ListObjectsOptions,
    ) -> Result<Listing> {
        self.list_objects(bucket, prefix, options)
            .collect_all()
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;

    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::{BucketAdmin, ListRequest, ObjectStore, PutOptions, PutSource};

    fn body(seed: u32) -> Vec<u8> {
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    /// Pages of every size list what one page lists: a `<key>` and its `<key>.delta`
    /// apart on two pages (a key sorting between them) are one object, reported once.
    #[tokio::test]
    async fn pages_of_any_size_list_each_logical_object_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new(dir.path()).unwrap());
        store.create_bucket("bkt").await.unwrap();
        let client = Client::builder()
            .config_file("/dev/null")
            .store(store.clone())
            .build()
            .await
            .unwrap();
        for (key, seed) in [("p/a.zip", 1), ("p/b.zip", 2), ("p/a.zip-notes.txt", 3)] {
            client
                .put_object("bkt", key, body(seed), &Default::default())
                .await
                .unwrap();
        }
        // Another tool wrote a plain object under the delta's logical name.
        let plain = PutSource::Bytes(body(4).into());
        store
            .put_object("bkt", "p/a.zip", plain, PutOptions::default())
            .await
            .unwrap();
        let stored: Vec<String> = store
            .list_objects("bkt", &ListRequest::default())
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(
            stored,
            [
                "p/a.zip",
                "p/a.zip-notes.txt",
                "p/a.zip.delta",
                "p/b.zip.delta",
                "p/reference.bin"
            ]
        );

        let keys = |l: &Listing| -> Vec<(String, String)> {
            l.objects
                .iter()
                .map(|o| (o.key.clone(), o.stored_key.clone()))
                .collect()
        };
        let all = ListObjectsOptions::default().recursive(true);
        let whole = client.list_all_objects("bkt", "p/", &all).await.unwrap();
        assert_eq!(whole.objects.len(), 3, "{:?}", keys(&whole));
        assert!(whole.reference_bytes > 0);
        for size in 1..=5 {
            let options = all.clone().page_size(size);
            let pages: Vec<Listing> = client
                .list_objects("bkt", "p/", &options)
                .try_collect()
                .await
                .unwrap();
            assert_eq!(pages.len(), 5_usize.div_ceil(size), "page size {size}");
            let mut listed: Vec<_> = pages.iter().flat_map(keys).collect();
            listed.sort();
            assert_eq!(listed, keys(&whole), "page size {size}");
            let references: u64 = pages.iter().map(|p| p.reference_bytes).sum();
            assert_eq!(references, whole.reference_bytes, "page size {size}");
        }
    }
}
