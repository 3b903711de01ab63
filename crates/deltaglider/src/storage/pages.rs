//! Conveniences over [`ObjectStore`] that every store gets for free: the one pagination
//! loop of the crate.

use futures::stream::{self, BoxStream, StreamExt};

use super::{ListPage, ListRequest, ObjectStore};
use crate::error::Result;

/// Methods built from [`ObjectStore`]'s required ones, for every store, `dyn` ones included.
pub trait ObjectStoreExt: ObjectStore {
    /// Every page of a listing, in order, following continuation tokens from `request`'s
    /// own (usually none) to the last page. A failed page ends the stream with its error.
    fn list_pages<'a>(
        &'a self,
        bucket: &'a str,
        request: ListRequest,
    ) -> BoxStream<'a, Result<ListPage>> {
        // `None` state: the last page was returned; `Some(request)`: fetch this page next.
        stream::try_unfold(Some(request), move |next| async move {
            let Some(mut request) = next else {
                return Ok(None);
            };
            let page = self.list_objects(bucket, &request).await?;
            let next = page.next_token.clone().map(|token| {
                request.continuation_token = Some(token);
                request
            });
            Ok(Some((page, next)))
        })
        .boxed()
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BucketAdmin;
    use crate::storage::local::LocalStore;
    use crate::storage::{PutOptions, PutSource};
    use futures::TryStreamExt;

    #[tokio::test]
    async fn pages_follow_tokens_to_the_end_and_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.create_bucket("bkt").await.unwrap();
        for i in 0..7 {
            let src = PutSource::Bytes(bytes::Bytes::from_static(b"x"));
            store
                .put_object("bkt", &format!("k{i}"), src, PutOptions::default())
                .await
                .unwrap();
        }
        let request = ListRequest {
            max_keys: Some(3),
            ..Default::default()
        };
        let pages: Vec<ListPage> = store
            .list_pages("bkt", request)
            .try_collect()
            .await
            .unwrap();
        let sizes: Vec<usize> = pages.iter().map(|p| p.objects.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let keys: Vec<&str> = pages
            .iter()
            .flat_map(|p| p.objects.iter().map(|o| o.key.as_str()))
            .collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]);
        assert!(pages.last().unwrap().next_token.is_none());
    }

    #[tokio::test]
    async fn a_failed_page_is_the_streams_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut pages = store.list_pages("missing", ListRequest::default());
        assert!(pages.next().await.unwrap().is_err());
    }
}
