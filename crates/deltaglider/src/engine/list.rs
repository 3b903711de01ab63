//! Listing logical objects: references and internal objects hidden, `.delta` stripped,
//! original sizes reported.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::index::IndexViews;
use super::{Engine, StorageFormat, StoredAs};
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::error::Result;
use crate::metadata::DgMetadata;
use crate::storage::{ListRequest, ObjectInfo, ObjectStoreExt};

/// One logical object in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    /// Logical key (no `.delta`).
    pub key: String,
    /// The key listed (`<key>.delta` for deltas).
    pub stored_key: String,
    /// [`StoredAs::Whole`] when the listing carried no metadata to tell direct from plain.
    pub stored_as: StoredAs,
    /// Size of the original file.
    pub size: u64,
    /// Bytes the object occupies in the store (the delta for deltas; the shared reference
    /// is not included).
    pub stored_size: u64,
    /// The store's modification time of the stored object.
    pub last_modified: Option<DateTime<Utc>>,
    /// For deltas, the storage format (`compatible` or `compact`), from the metadata the
    /// listing already has; absent for whole objects and for a format this version does
    /// not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<StorageFormat>,
    /// The entity tag of the original, as a HEAD reports it
    /// ([`logical_etag`](super::logical_etag)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A listing, or one page of it: objects and, for non-recursive listings, the sub-prefixes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    /// Logical objects in key order, one per key even when `<key>` and `<key>.delta` both
    /// exist.
    pub objects: Vec<ListEntry>,
    /// Full sub-prefixes ending in `/`, as the store returned them; empty when recursive.
    pub prefixes: Vec<String>,
    /// Bytes of the references (`reference.bin`) among the listed keys; they are hidden
    /// from `objects` but count towards what is stored.
    pub reference_bytes: u64,
}

impl Listing {
    /// Every remaining page of `pages` in one listing, objects in key order.
    pub(crate) async fn merge_pages(
        mut pages: impl Stream<Item = Result<Listing>> + Unpin,
    ) -> Result<Listing> {
        let mut all = Listing::default();
        while let Some(page) = pages.try_next().await? {
            all.objects.extend(page.objects);
            all.prefixes.extend(page.prefixes);
            all.reference_bytes += page.reference_bytes;
        }
        all.objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }
}

impl Engine {
    /// Lists logical objects under `prefix`, every page collected into one listing in key
    /// order; with `recursive == false`, groups deeper keys into prefixes like `aws s3 ls`.
    pub async fn list(&self, bucket: &str, prefix: &str, recursive: bool) -> Result<Listing> {
        Listing::merge_pages(self.list_pages(bucket, prefix, recursive, None)).await
    }

    /// The listing of `prefix` one store page at a time (`page_size` keys per request, the
    /// store's default when `None`), each page's logical objects in key order.
    ///
    /// S3 listings carry no user metadata: the original size of a delta comes from its
    /// deltaspace's listing index (read once per listing, a few requests), or, for a delta no
    /// index entry describes (written by another tool, or rewritten since), from a HEAD;
    /// HEADs run `list_concurrency` at a time. Stores that return metadata with the listing
    /// (the local store) need neither.
    pub fn list_pages<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &str,
        recursive: bool,
        page_size: Option<usize>,
    ) -> BoxStream<'a, Result<Listing>> {
        let request = ListRequest {
            prefix: prefix.to_string(),
            delimiter: (!recursive).then(|| "/".to_string()),
            max_keys: page_size,
            ..Default::default()
        };
        let raw = self.store.list_pages(bucket, request);
        // `held`: keys of earlier pages whose `<key>.delta` may still come; `None` once the
        // last page was returned.
        let held: Option<Vec<ObjectInfo>> = Some(Vec::new());
        let views = IndexViews::default();
        stream::try_unfold(
            (raw, held, views),
            move |(mut raw, held, mut views)| async move {
                let Some(mut held) = held else {
                    return Ok(None);
                };
                let Some(page) = raw.try_next().await? else {
                    // The stream ended without a page (a store that returned none at all).
                    if held.is_empty() {
                        return Ok(None);
                    }
                    let objects = self.entries(bucket, held, &mut views).await?;
                    return Ok(Some((
                        Listing {
                            objects,
                            ..Default::default()
                        },
                        (raw, None, views),
                    )));
                };
                let last_page = page.next_token.is_none();
                // S3 orders objects and prefixes in one sequence; a page ends at the greater.
                let last_key = page
                    .objects
                    .last()
                    .map(|o| o.key.clone())
                    .into_iter()
                    .chain(page.common_prefixes.last().cloned())
                    .max()
                    .unwrap_or_default();
                let mut reference_bytes = 0u64;
                for o in page.objects {
                    if deltaspace::is_internal(&o.key) {
                        continue;
                    }
                    if deltaspace::is_reference_name(deltaspace::file_name(&o.key)) {
                        reference_bytes += o.size;
                    } else if !deltaspace::is_hidden(&o.key) {
                        held.push(o);
                    }
                }
                let prefixes = page
                    .common_prefixes
                    .into_iter()
                    .filter(|p| !deltaspace::is_hidden(p))
                    .collect();
                // `<key>` and `<key>.delta` are one logical object: keep back the keys whose
                // `<key>.delta` would sort after this page, until the page that settles them.
                let (held, later): (Vec<ObjectInfo>, Vec<ObjectInfo>) =
                    held.into_iter().partition(|o| {
                        let logical = o.key.strip_suffix(DELTA_SUFFIX).unwrap_or(&o.key);
                        last_page || format!("{logical}{DELTA_SUFFIX}") <= last_key
                    });
                let objects = self.entries(bucket, held, &mut views).await?;
                let listing = Listing {
                    objects,
                    prefixes,
                    reference_bytes,
                };
                let next = if last_page { None } else { Some(later) };
                Ok(Some((listing, (raw, next, views))))
            },
        )
        .boxed()
    }

    /// The logical objects of stored keys in key order, `<key>` and `<key>.delta` among
    /// them being one object (the newer, as downloads pick).
    async fn entries(
        &self,
        bucket: &str,
        mut raw: Vec<ObjectInfo>,
        views: &mut IndexViews,
    ) -> Result<Vec<ListEntry>> {
        self.describe_from_index(bucket, views, &mut raw).await;
        // Deltas the index did not describe need a HEAD for their original size when the
        // listing has no metadata, and so do direct objects shadowed by a delta of the same
        // name (to pick the newer one).
        let delta_keys: HashSet<String> = raw
            .iter()
            .filter(|o| o.key.ends_with(DELTA_SUFFIX))
            .map(|o| o.key.clone())
            .collect();
        let store = self.store.clone();
        let delta_keys = &delta_keys;
        let raw: Vec<ObjectInfo> = futures::stream::iter(raw.into_iter().map(|o| {
            let store = store.clone();
            async move {
                let needs_head = o.key.ends_with(DELTA_SUFFIX)
                    || delta_keys.contains(&format!("{}{DELTA_SUFFIX}", o.key));
                if o.metadata.is_none()
                    && needs_head
                    && let Some(h) = store.head_object(bucket, &o.key).await?
                {
                    return Ok(ObjectInfo {
                        metadata: h.metadata,
                        ..o
                    });
                }
                Ok::<_, crate::Error>(o)
            }
        }))
        .buffered(self.settings.list_concurrency.max(1))
        .try_collect()
        .await?;

        let mut by_key: BTreeMap<String, ListEntry> = BTreeMap::new();
        let mut created: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
        for o in raw {
            let meta = o
                .metadata
                .as_ref()
                .map(DgMetadata::parse)
                .unwrap_or_default();
            let (key, stored_as) = match o.key.strip_suffix(DELTA_SUFFIX) {
                Some(k) if meta.is_deltaglider() || o.metadata.is_none() => {
                    (k.to_string(), StoredAs::Delta)
                }
                _ if meta.is_deltaglider() => (o.key.clone(), StoredAs::Direct),
                _ if o.metadata.is_none() => (o.key.clone(), StoredAs::Whole),
                _ => (o.key.clone(), StoredAs::Plain),
            };
            let entry = ListEntry {
                size: if stored_as == StoredAs::Delta {
                    meta.file_size.unwrap_or(o.size)
                } else {
                    o.size
                },
                key: key.clone(),
                stored_key: o.key.clone(),
                stored_as,
                stored_size: o.size,
                last_modified: o.last_modified,
                etag: super::logical_etag(
                    stored_as,
                    o.etag.as_deref(),
                    meta.file_sha256.as_deref(),
                ),
                format: match (stored_as, &meta.format) {
                    (StoredAs::Delta, None) if meta.is_deltaglider() => {
                        Some(StorageFormat::Compatible)
                    }
                    (StoredAs::Delta, Some(_)) => {
                        super::compact::object_format(bucket, &o.key, &meta).ok()
                    }
                    _ => None,
                },
            };
            // Same rule as downloads: newer dg-created-at wins, else the direct object.
            let keep_existing = match (by_key.get(&key), created.get(&key)) {
                (Some(existing), Some(existing_created)) => {
                    let existing_is_direct = existing.stored_as != StoredAs::Delta;
                    match (existing_created, &meta.created_at) {
                        (Some(a), Some(b)) if existing_is_direct => a >= b,
                        (Some(a), Some(b)) => a > b,
                        _ => existing_is_direct,
                    }
                }
                _ => false,
            };
            if !keep_existing {
                created.insert(key.clone(), meta.created_at);
                by_key.insert(key, entry);
            }
        }
        Ok(by_key.into_values().collect())
    }
}
