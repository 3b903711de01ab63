//! The listing index: original sizes for listings of stores whose listings carry no
//! metadata (S3), at a few requests per deltaspace instead of a HEAD per delta.
//!
//! A writer that stores a delta reads it back with one HEAD and records what a listing
//! needs from it (its tag, size, modification time to the second, and its DeltaGlider
//! metadata) in a small segment object under
//! `.deltaglider/index/`; a reader lists and reads a deltaspace's segments once per listing.
//! The index is only ever a hint: an entry is used for a listed delta only when it names the
//! same entity tag, size and modification time, so a delta written or rewritten by anyone
//! else (another tool, an older version, a writer whose segment never arrived) matches no
//! entry and gets its HEAD. Segments are never rewritten in place: concurrent writers each
//! add their own, and a writer that finds more than [`tiers::MERGE_AT`] in a tier of similar sizes
//! merges those into one and deletes them (`tiers`; docs/format.md, "Listing index").

mod log;
mod segment;
mod tiers;
mod view;

use std::collections::HashMap;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

pub(crate) use log::IndexLog;
use log::{Slot, Step};

pub use segment::{Entry, INDEXED_FIELDS, MAX_SEGMENT_BYTES, Segment, SegmentError};
pub use view::IndexView;

use super::Engine;
use crate::deltaspace::{self, DELTA_SUFFIX};
use crate::error::{Error, Result};
use crate::metadata::UserMetadata;
use crate::storage::{ListRequest, ObjectInfo, ObjectStoreExt, PutOptions, PutSource};

/// Where the segments of the deltaspaces' indexes live.
pub(crate) const INDEX_PREFIX: &str = ".deltaglider/index/";

use tiers::MAX_SEGMENTS;

/// How long a turn to store entries waits for those of the other uploads under way: about
/// the time a small file's upload takes, so that a tree transfer stores a segment per
/// several files rather than per file (each costs a PUT, a LIST, and later part of a merge).
const LINGER: std::time::Duration = std::time::Duration::from_millis(25);

/// A listing page reads a deltaspace's index once it has this many deltas of it to
/// describe; fewer are cheaper to HEAD than the index is to read.
const MIN_DELTAS: usize = 2;

/// Bytes of a deltaspace's name kept as they are in its index's prefix; the others
/// (`/` among them) are percent-encoded, so that each deltaspace's index is one path
/// component and no deltaspace's segments are under another's prefix.
const SPACE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The prefix of the segments of `space` (`""` for the bucket's root).
pub(crate) fn segment_prefix(space: &str) -> String {
    format!(
        "{INDEX_PREFIX}ds-{}/",
        percent_encoding::utf8_percent_encode(space, SPACE_ESCAPES)
    )
}

/// The object name every segment ends in: the one name the Python tool leaves out of its
/// listings, statistics and recursive downloads (docs/format.md, "Listing index").
const SEGMENT_NAME: &str = "reference.bin";

/// A new segment's key: the time first, so that a listing returns segments oldest first.
fn new_segment_key(space: &str) -> String {
    format!(
        "{}{:013}-{:016x}/{SEGMENT_NAME}",
        segment_prefix(space),
        Utc::now().timestamp_millis().max(0),
        rand::random::<u64>()
    )
}

/// Whether `key`, under `prefix`, is a segment's key.
fn is_segment_key(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(SEGMENT_NAME))
        .and_then(|id| id.strip_suffix('/'))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The name an entry of `key` has in its deltaspace's index: the key without the
/// deltaspace and its `/`. A key of the bucket root keeps a leading `/` (`/app.zip.delta`
/// and `app.zip.delta` are two objects of one deltaspace).
pub(crate) fn entry_name(key: &str) -> &str {
    let space = deltaspace::of_key(key);
    if space.is_empty() {
        key
    } else {
        &key[space.len() + 1..]
    }
}

/// The entry of the delta just stored as `stored_key` (with the tag the store returned
/// for the write), from a HEAD made after the write: only if the store still has the object
/// written (its tag, size and the recorded fields of `metadata`), with the store's time for
/// it. `None` leaves the delta to a HEAD per listing.
pub(super) fn entry_of_written(
    stored_key: &str,
    etag: Option<&str>,
    size: u64,
    metadata: &UserMetadata,
    head: &ObjectInfo,
) -> Option<Entry> {
    let etag = etag.map(segment::unquoted).filter(|e| !e.is_empty())?;
    let entry = Entry::written(
        entry_name(stored_key),
        etag,
        size,
        segment::whole_seconds(head.last_modified?),
        metadata,
    );
    let same = head.size == size
        && head.etag.as_deref().map(segment::unquoted) == Some(etag)
        && head.metadata.as_ref().map(segment::indexed) == Some(entry.metadata.clone());
    same.then_some(entry)
}

/// The indexes read during one listing, per deltaspace (`None`: could not be read; the
/// listing does without).
#[derive(Debug, Default)]
pub(crate) struct IndexViews {
    loaded: HashMap<String, Option<IndexView>>,
}

impl Engine {
    /// Records `entry`, of the delta just stored in `bucket`'s deltaspace `space`, in its
    /// index. Returns once it is stored (or was tried), by this upload or by another of
    /// this engine storing several at once. Never fails the upload: an entry that cannot be
    /// stored only costs listings a HEAD.
    pub(super) async fn index_written_delta(&self, bucket: &str, space: &str, entry: Entry) {
        let slot: Slot = (bucket.to_string(), space.to_string());
        if !self.index.may_merge(&slot) {
            // a writer that cannot delete would only grow the index past reading
            return;
        }
        let seq = self.index.push(&slot, entry);
        loop {
            match self.index.step(&slot, seq) {
                Step::Done => return,
                Step::Wait(batch_done) => batch_done.await,
                Step::Store(mut batch) => {
                    let mut turn = self.index.turn(&slot, &batch);
                    if self.index.others_under_way() {
                        // Concurrent uploads (a tree transfer) share one segment: the
                        // entries of the next few moments join this one's.
                        tokio::time::sleep(LINGER).await;
                        turn.top_up(&mut batch);
                    }
                    if let Err(e) = self.store_segment(&slot, batch.entries).await {
                        tracing::debug!(%bucket, %space, "listing index not updated: {}", crate::error::chain(&e));
                    }
                    turn.finish();
                }
            }
        }
    }

    /// Stores `entries` as a new segment of its deltaspace's index, then merges a tier of
    /// the index that has grown too many segments.
    async fn store_segment(&self, slot: &Slot, entries: Vec<Entry>) -> Result<()> {
        let (bucket, space) = (slot.0.as_str(), slot.1.as_str());
        let body = Segment::new(entries).to_bytes();
        self.store
            .put_object(
                bucket,
                &new_segment_key(space),
                PutSource::Bytes(body.into()),
                PutOptions::default(),
            )
            .await?;
        fail::fail_point!("index::after_segment_write", |_| Err(Error::io(
            "failpoint index::after_segment_write",
            std::io::Error::other("injected")
        )));
        let segments = self.index_segments(bucket, space).await?;
        if let Some(group) = tiers::to_merge(&segments) {
            self.merge_index(slot, &group).await?;
        }
        Ok(())
    }

    /// Replaces `segments` by one holding what can still describe each delta. Concurrent
    /// merges and writers lose nothing: a segment is deleted only after a merged one holding
    /// its entries is stored, and only if this merge read it.
    async fn merge_index(&self, slot: &Slot, segments: &[ObjectInfo]) -> Result<()> {
        let (bucket, space) = (slot.0.as_str(), slot.1.as_str());
        let read = self.read_segments(bucket, segments).await?;
        // Segments of a newer version are left to the writers that read them; damaged
        // ones go (nothing can read them).
        let merged_keys: Vec<String> = read
            .iter()
            .filter(|r| !matches!(r.segment, Err(SegmentError::Newer(_))))
            .map(|r| r.key.clone())
            .collect();
        if merged_keys.len() <= 1 {
            return Ok(());
        }
        let view = IndexView::new(read.into_iter().filter_map(|r| r.segment.ok()));
        fail::fail_point!("index::before_merge_write");
        self.store
            .put_object(
                bucket,
                &new_segment_key(space),
                PutSource::Bytes(view.merged().to_bytes().into()),
                PutOptions::default(),
            )
            .await?;
        fail::fail_point!("index::after_merge_write", |_| Err(Error::io(
            "failpoint index::after_merge_write",
            std::io::Error::other("injected")
        )));
        // Refused deletes stop this process's merges (and segments) for the deltaspace:
        // each would add a segment and delete none. Other failures are tried again by the
        // next merge.
        let refused = |e: &Error| e.s3_code() == Some("AccessDenied");
        let failures = match self.store.delete_objects(bucket, &merged_keys).await {
            Ok(failures) => failures,
            Err(e) => {
                if refused(&e) {
                    self.index.stop_merging(slot);
                }
                return Err(e);
            }
        };
        if let Some(failure) = failures.first() {
            if failures.iter().any(|f| refused(&f.error)) {
                self.index.stop_merging(slot);
            }
            tracing::debug!(key = %failure.key, "merged index segments left in place: {}", failure.error);
        }
        Ok(())
    }

    /// The segment objects of `space`'s index, oldest first; at most [`MAX_SEGMENTS`] + 1
    /// (a caller that gets more does not read them).
    async fn index_segments(&self, bucket: &str, space: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = segment_prefix(space);
        let request = ListRequest {
            prefix: prefix.clone(),
            ..Default::default()
        };
        let mut pages = self.store.list_pages(bucket, request);
        let mut segments = Vec::new();
        while let Some(page) = pages.try_next().await? {
            segments.extend(
                page.objects
                    .into_iter()
                    .filter(|o| is_segment_key(&prefix, &o.key)),
            );
            if segments.len() > MAX_SEGMENTS {
                break;
            }
        }
        Ok(segments)
    }

    /// Reads `segments`; one that vanished (merged meanwhile) is left out.
    async fn read_segments(
        &self,
        bucket: &str,
        segments: &[ObjectInfo],
    ) -> Result<Vec<ReadSegment>> {
        // Owned, not borrowed, items: a future over a borrowed item is not `Send` for every
        // lifetime, which a listing stream needs.
        let read = futures::stream::iter(segments.iter().cloned().map(|o| async move {
            if o.size > MAX_SEGMENT_BYTES {
                return Ok(Some(ReadSegment {
                    key: o.key.clone(),
                    segment: Err(SegmentError::Malformed(format!("{} bytes", o.size))),
                }));
            }
            let mut reader = match self.store.get_object(bucket, &o.key).await {
                Ok(r) => r,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut bytes = Vec::new();
            (&mut reader.body)
                .take(MAX_SEGMENT_BYTES + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| {
                    Error::io(format!("reading index segment s3://{bucket}/{}", o.key), e)
                })?;
            let segment = if bytes.len() as u64 > MAX_SEGMENT_BYTES {
                Err(SegmentError::Malformed(format!(
                    "over {MAX_SEGMENT_BYTES} bytes"
                )))
            } else {
                Segment::parse(&bytes)
            };
            if let Err(e) = &segment {
                tracing::debug!(key = %o.key, "index segment not used: {e}");
            }
            Ok(Some(ReadSegment {
                key: o.key.clone(),
                segment,
            }))
        }))
        .buffered(8)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(read.into_iter().flatten().collect())
    }

    /// Deletes `space`'s index once the deltaspace is gone (its last delta and its
    /// reference deleted), so that it leaves nothing behind. Best effort: a segment a new
    /// writer stored meanwhile may go with it, which costs that delta a HEAD per listing.
    pub(in crate::engine) async fn drop_index(&self, bucket: &str, space: &str) {
        let dropped = async {
            // a listing returns at most MAX_SEGMENTS + 1: delete until none is left (a
            // bounded number of times: a store that lists what it deleted would loop)
            for _ in 0..64 {
                let keys: Vec<String> = self
                    .index_segments(bucket, space)
                    .await?
                    .into_iter()
                    .map(|o| o.key)
                    .collect();
                if keys.is_empty() {
                    return Ok::<_, Error>(());
                }
                let failures = self.store.delete_objects(bucket, &keys).await?;
                if let Some(failure) = failures.into_iter().next() {
                    return Err(failure.error);
                }
            }
            Ok(())
        };
        if let Err(e) = dropped.await {
            tracing::debug!(%bucket, %space, "listing index left in place: {}", crate::error::chain(&e));
        }
    }

    /// `space`'s index as it is now.
    pub(crate) async fn index_view(&self, bucket: &str, space: &str) -> Result<IndexView> {
        let segments = self.index_segments(bucket, space).await?;
        if segments.len() > MAX_SEGMENTS {
            return Err(Error::io(
                format!(
                    "the listing index of s3://{bucket}/{space} has over {MAX_SEGMENTS} segments"
                ),
                std::io::Error::other("not read"),
            ));
        }
        let read = self.read_segments(bucket, &segments).await?;
        let view = IndexView::new(read.into_iter().filter_map(|r| r.segment.ok()));
        tracing::debug!(%bucket, %space, segments = segments.len(), deltas = view.len(), "listing index read");
        Ok(view)
    }

    /// Fills in, from their deltaspaces' indexes, the metadata of the deltas among `objects`
    /// that came without any; an index is read the first time a deltaspace has
    /// [`MIN_DELTAS`] such deltas in one call, and kept in `views` for later pages. Deltas
    /// no entry describes keep `metadata: None`.
    pub(crate) async fn describe_from_index(
        &self,
        bucket: &str,
        views: &mut IndexViews,
        objects: &mut [ObjectInfo],
    ) {
        let undescribed = |o: &ObjectInfo| o.metadata.is_none() && o.key.ends_with(DELTA_SUFFIX);
        let mut wanted: HashMap<&str, usize> = HashMap::new();
        for o in objects.iter().filter(|o| undescribed(o)) {
            *wanted.entry(deltaspace::of_key(&o.key)).or_default() += 1;
        }
        let to_load: Vec<String> = wanted
            .into_iter()
            .filter(|(space, count)| *count >= MIN_DELTAS && !views.loaded.contains_key(*space))
            .map(|(space, _)| space.to_string())
            .collect();
        let loaded: Vec<(String, Option<IndexView>)> =
            futures::stream::iter(to_load.into_iter().map(|space| async move {
                let view = match self.index_view(bucket, &space).await {
                    Ok(view) => Some(view),
                    Err(e) => {
                        tracing::debug!(%bucket, %space, "listing index not read: {}", crate::error::chain(&e));
                        None
                    }
                };
                (space, view)
            }))
            .buffer_unordered(self.settings.list_concurrency.max(1))
            .collect()
            .await;
        views.loaded.extend(loaded);
        for o in objects.iter_mut().filter(|o| undescribed(o)) {
            let space = deltaspace::of_key(&o.key);
            if let Some(Some(view)) = views.loaded.get(space) {
                o.metadata = view.metadata_for(entry_name(&o.key), o);
            }
        }
    }
}

/// One segment object as read.
struct ReadSegment {
    key: String,
    segment: std::result::Result<Segment, SegmentError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_keys_within_their_deltaspace() {
        assert_eq!(entry_name("a/b/c.zip.delta"), "c.zip.delta");
        assert_eq!(entry_name("c.zip.delta"), "c.zip.delta");
        assert_eq!(entry_name("/c.zip.delta"), "/c.zip.delta");
        assert_eq!(entry_name("a//c.zip.delta"), "c.zip.delta");
        for key in [
            "a/b/c.zip.delta",
            "c.zip.delta",
            "/c.zip.delta",
            "a//c.zip.delta",
        ] {
            assert!(segment::is_entry_name(entry_name(key)), "{key}");
        }
    }

    #[test]
    fn each_deltaspace_has_its_own_segment_prefix() {
        assert_eq!(segment_prefix(""), ".deltaglider/index/ds-/");
        assert_eq!(segment_prefix("a/b c"), ".deltaglider/index/ds-a%2Fb%20c/");
        // no deltaspace's prefix is under another's
        assert!(!segment_prefix("a/b").starts_with(&segment_prefix("a")));
        assert!(!segment_prefix("a%2Fb").starts_with(&segment_prefix("a")));
        assert_ne!(segment_prefix("a%2Fb"), segment_prefix("a/b"));
        let key = new_segment_key("a");
        assert!(is_segment_key(&segment_prefix("a"), &key), "{key}");
        assert!(key.ends_with("/reference.bin"), "{key}");
        assert!(deltaspace::is_hidden(&key));
        for other in [
            ".deltaglider/index/ds-a/reference.bin",
            ".deltaglider/index/ds-a/x/y/reference.bin",
            ".deltaglider/index/ds-a/x/reference.bin.tmp",
        ] {
            assert!(!is_segment_key(&segment_prefix("a"), other), "{other}");
        }
    }
}
