//! A deltaspace's listing index as a reader sees it: the segments merged, and the rule that
//! decides whether an entry still describes the delta a listing shows.

use std::collections::HashMap;

use super::segment::{Entry, Segment, unquoted, whole_seconds};
use crate::metadata::UserMetadata;
use crate::storage::ObjectInfo;

/// Every readable entry of one deltaspace's segments, by name.
#[derive(Debug, Default)]
pub struct IndexView {
    by_name: HashMap<String, Vec<Entry>>,
}

impl IndexView {
    /// Merges segments.
    pub fn new(segments: impl IntoIterator<Item = Segment>) -> Self {
        let mut by_name: HashMap<String, Vec<Entry>> = HashMap::new();
        for segment in segments {
            for entry in segment.entries {
                let entries = by_name.entry(entry.name.clone()).or_default();
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
        }
        IndexView { by_name }
    }

    /// Number of deltas described.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no delta is described.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The metadata of the delta `object` (listed as `name` in its deltaspace), if the
    /// entries describe it: same entity tag, same size, same modification time (to the
    /// second), and, when
    /// several entries match (two writers of the same bytes in one tick of the store's
    /// clock), the same metadata. A delta rewritten since by any writer (other bytes, or
    /// the same bytes with new metadata, which moves its modification time) matches none.
    pub fn metadata_for(&self, name: &str, object: &ObjectInfo) -> Option<UserMetadata> {
        let etag = unquoted(object.etag.as_deref()?);
        let modified = whole_seconds(object.last_modified?);
        let mut matching = self
            .by_name
            .get(name)?
            .iter()
            .filter(|e| e.etag == etag && e.size == object.size && e.modified == modified);
        let first = matching.next()?;
        if matching.any(|e| e.metadata != first.metadata) {
            return None;
        }
        Some(first.metadata.clone())
    }

    /// One segment with what can still describe each name: its entries of the latest
    /// modification time (S3 keeps the write with the latest time, so an older entry can
    /// never match again). What a merge stores in place of the segments it read.
    pub fn merged(&self) -> Segment {
        let mut entries: Vec<Entry> = Vec::new();
        for all in self.by_name.values() {
            let latest = all.iter().map(|e| e.modified).max();
            entries.extend(all.iter().filter(|e| Some(e.modified) == latest).cloned());
        }
        entries.sort_by(|a, b| (&a.name, &a.etag).cmp(&(&b.name, &b.etag)));
        Segment::new(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    /// Now, to the second, as entries record it.
    fn now() -> DateTime<Utc> {
        whole_seconds(Utc::now())
    }

    fn entry(name: &str, etag: &str, size: u64, at: DateTime<Utc>, file_size: &str) -> Entry {
        let meta = [("dg-file-size".to_string(), file_size.to_string())].into();
        Entry::written(name, etag, size, at, &meta)
    }

    fn listed(key: &str, etag: &str, size: u64, modified: DateTime<Utc>) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            last_modified: Some(modified),
            etag: Some(format!("\"{etag}\"")),
            metadata: None,
            content_type: None,
            headers: Default::default(),
            protection: Default::default(),
        }
    }

    fn size_of(view: &IndexView, o: &ObjectInfo) -> Option<String> {
        view.metadata_for(super::super::entry_name(&o.key), o)
            .map(|m| m["dg-file-size"].clone())
    }

    #[test]
    fn an_entry_describes_only_the_delta_it_was_written_for() {
        let t = now();
        let view = IndexView::new([Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "100")])]);
        assert_eq!(
            size_of(&view, &listed("d/a.zip.delta", "e1", 10, t)).as_deref(),
            Some("100")
        );
        // other bytes, another size, another time, another name: a HEAD decides
        assert_eq!(size_of(&view, &listed("d/a.zip.delta", "e2", 10, t)), None);
        assert_eq!(size_of(&view, &listed("d/a.zip.delta", "e1", 11, t)), None);
        let later = t + Duration::seconds(1);
        assert_eq!(
            size_of(&view, &listed("d/a.zip.delta", "e1", 10, later)),
            None
        );
        // the listing's fraction of a second does not count (AWS lists none)
        let within = t + Duration::milliseconds(999);
        assert!(size_of(&view, &listed("d/a.zip.delta", "e1", 10, within)).is_some());
        let earlier = t - Duration::seconds(1);
        assert_eq!(
            size_of(&view, &listed("d/a.zip.delta", "e1", 10, earlier)),
            None
        );
        assert_eq!(size_of(&view, &listed("d/b.zip.delta", "e1", 10, t)), None);
        // no tag or no time in the listing: nothing to compare
        let mut bare = listed("d/a.zip.delta", "e1", 10, t);
        bare.etag = None;
        assert_eq!(size_of(&view, &bare), None);
    }

    #[test]
    fn the_root_keys_with_and_without_a_leading_slash_are_told_apart() {
        let t = now();
        let view = IndexView::new([Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "100")])]);
        assert_eq!(
            size_of(&view, &listed("a.zip.delta", "e1", 10, t)).as_deref(),
            Some("100")
        );
        assert_eq!(size_of(&view, &listed("/a.zip.delta", "e1", 10, t)), None);
    }

    #[test]
    fn matching_entries_that_disagree_describe_nothing() {
        let t = now();
        let view = IndexView::new([
            Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "100")]),
            Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "100")]),
        ]);
        assert_eq!(
            size_of(&view, &listed("a.zip.delta", "e1", 10, t)).as_deref(),
            Some("100")
        );
        let view = IndexView::new([
            Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "100")]),
            Segment::new(vec![entry("a.zip.delta", "e1", 10, t, "101")]),
        ]);
        assert_eq!(size_of(&view, &listed("a.zip.delta", "e1", 10, t)), None);
    }

    #[test]
    fn a_merge_keeps_the_latest_entries_of_each_name() {
        let t = now();
        let later = t + Duration::seconds(5);
        let view = IndexView::new([
            Segment::new(vec![
                entry("a.zip.delta", "e1", 10, t, "old"),
                entry("b.zip.delta", "b1", 3, t, "30"),
            ]),
            Segment::new(vec![
                entry("a.zip.delta", "e2", 10, later, "new"),
                entry("a.zip.delta", "e3", 10, later, "same tick"),
            ]),
        ]);
        let merged = view.merged();
        let kept: Vec<(&str, &str)> = merged
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.etag.as_str()))
            .collect();
        assert_eq!(
            kept,
            [
                ("a.zip.delta", "e2"),
                ("a.zip.delta", "e3"),
                ("b.zip.delta", "b1")
            ]
        );
        let reread = IndexView::new([merged]);
        assert_eq!(
            size_of(&reread, &listed("a.zip.delta", "e2", 10, later)).as_deref(),
            Some("new")
        );
        assert_eq!(
            size_of(&reread, &listed("b.zip.delta", "b1", 3, t)).as_deref(),
            Some("30")
        );
        assert_eq!(size_of(&reread, &listed("a.zip.delta", "e1", 10, t)), None);
    }
}
