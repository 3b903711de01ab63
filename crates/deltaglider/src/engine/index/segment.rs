//! One segment of a deltaspace's listing index, as stored: what a writer knew about the
//! deltas it had just written (docs/format.md, "Listing index").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deltaspace::DELTA_SUFFIX;
use crate::metadata::UserMetadata;

/// The version this build writes and reads; a segment of a newer one is ignored (its deltas
/// are described by a HEAD each, as without an index).
pub const SEGMENT_VERSION: u32 = 1;

/// Larger segments are not read: a bucket's index cannot make a listing hold an unbounded
/// document in memory. About 200k deltas fit.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// The delta metadata a segment records: what a listing needs from a delta's HEAD (the
/// original's size and SHA-256, the write time that decides between `<key>` and
/// `<key>.delta`, the format and the writer). Other fields are neither written nor read.
pub const INDEXED_FIELDS: [&str; 5] = [
    "dg-file-size",
    "dg-file-sha256",
    "dg-created-at",
    "dg-format",
    "dg-tool",
];

/// A segment document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// [`SEGMENT_VERSION`].
    #[serde(rename = "deltaglider-index")]
    pub version: u32,
    /// The deltas described, in no particular order.
    pub entries: Vec<Entry>,
}

/// What a writer knew about one delta it stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The stored name within the deltaspace (`<file>.delta`).
    pub name: String,
    /// The delta's entity tag as the store returned it for the write, without quotes.
    pub etag: String,
    /// The delta's stored size in bytes.
    pub size: u64,
    /// The delta's modification time as the store listed it right after the write: an
    /// entry describes only an object listed with this very time, so that a rewrite of
    /// the same bytes with other metadata (which moves the time) matches no entry.
    pub modified: DateTime<Utc>,
    /// The delta's [`INDEXED_FIELDS`], as written on the delta.
    pub metadata: BTreeMap<String, String>,
}

impl Entry {
    /// The entry of a delta just stored as `name` (its key within its deltaspace,
    /// [`super::entry_name`]) with `metadata`, listed with `etag`, `size` and `modified`.
    pub fn written(
        name: &str,
        etag: &str,
        size: u64,
        modified: DateTime<Utc>,
        metadata: &UserMetadata,
    ) -> Self {
        Entry {
            name: name.to_string(),
            etag: unquoted(etag).to_string(),
            size,
            modified,
            metadata: indexed(metadata),
        }
    }
}

/// Only the [`INDEXED_FIELDS`] of `metadata`.
fn indexed(metadata: &UserMetadata) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter(|(k, _)| INDEXED_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// An entity tag without the quotes S3 puts around it (and without blanks, inside the
/// quotes or out): the same for a tag however often it is applied.
pub(crate) fn unquoted(etag: &str) -> &str {
    etag.trim_matches(|c: char| c == '"' || c.is_whitespace())
}

/// Whether `name` can be an entry's name: a `.delta` key within one deltaspace (a `/` only
/// as its first character, which a key of the bucket root's deltaspace can have).
pub(crate) fn is_entry_name(name: &str) -> bool {
    let rest = name.strip_prefix('/').unwrap_or(name);
    !rest.contains('/') && rest.len() > DELTA_SUFFIX.len() && rest.ends_with(DELTA_SUFFIX)
}

/// Why a segment was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentError {
    /// Not a segment document (or a damaged one).
    #[error("not a listing index segment: {0}")]
    Malformed(String),
    /// Written by a newer version of the format.
    #[error("listing index segment of version {0}; this version reads version {SEGMENT_VERSION}")]
    Newer(u32),
}

impl Segment {
    /// A segment of this version holding `entries`.
    pub fn new(entries: Vec<Entry>) -> Self {
        Segment {
            version: SEGMENT_VERSION,
            entries,
        }
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a segment always serializes")
    }

    /// Reads a stored segment. Entries that cannot describe a delta (a name that is no
    /// `.delta` key within one deltaspace, an empty tag) are dropped, and so are metadata
    /// fields a segment does not record; the version is checked before anything else is
    /// read.
    pub fn parse(bytes: &[u8]) -> Result<Segment, SegmentError> {
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "deltaglider-index")]
            version: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| SegmentError::Malformed(e.to_string()))?;
        if version.version != SEGMENT_VERSION {
            return Err(if version.version > SEGMENT_VERSION {
                SegmentError::Newer(version.version)
            } else {
                SegmentError::Malformed(format!("version {}", version.version))
            });
        }
        let mut segment: Segment =
            serde_json::from_slice(bytes).map_err(|e| SegmentError::Malformed(e.to_string()))?;
        segment.entries.retain_mut(|e| {
            e.metadata
                .retain(|k, _| INDEXED_FIELDS.contains(&k.as_str()));
            e.etag = unquoted(&e.etag).to_string();
            is_entry_name(&e.name) && !e.etag.is_empty()
        });
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> UserMetadata {
        [
            ("dg-file-size", "1234"),
            ("dg-file-sha256", "ab"),
            ("dg-ref-key", "a/reference.bin"),
            ("user-team", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn an_entry_keeps_the_indexed_fields_and_an_unquoted_tag() {
        let e = Entry::written("a.zip.delta", "\"abc\"", 10, Utc::now(), &meta());
        assert_eq!(e.etag, "abc");
        assert_eq!(
            e.metadata.keys().collect::<Vec<_>>(),
            ["dg-file-sha256", "dg-file-size"]
        );
    }

    #[test]
    fn segments_round_trip() {
        let e = Entry::written("a.zip.delta", "abc", 10, Utc::now(), &meta());
        let root = Entry::written("/b.zip.delta", "d", 1, Utc::now(), &meta());
        let s = Segment::new(vec![e, root]);
        assert_eq!(Segment::parse(&s.to_bytes()).unwrap(), s);
    }

    #[test]
    fn newer_and_malformed_segments_are_refused() {
        assert_eq!(
            Segment::parse(br#"{"deltaglider-index":2,"whatever":[]}"#),
            Err(SegmentError::Newer(2))
        );
        assert!(matches!(
            Segment::parse(b"{\"deltaglider-index\":1}"),
            Err(SegmentError::Malformed(_))
        ));
        assert!(matches!(
            Segment::parse(b"\x00\x01"),
            Err(SegmentError::Malformed(_))
        ));
        assert!(matches!(
            Segment::parse(br#"{"deltaglider-index":0,"entries":[]}"#),
            Err(SegmentError::Malformed(_))
        ));
    }

    #[test]
    fn entries_that_describe_no_delta_and_unrecorded_fields_are_dropped() {
        let doc = br#"{"deltaglider-index":1,"entries":[
            {"name":"a/b.zip.delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00.123Z","metadata":{}},
            {"name":"b.zip","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{}},
            {"name":".delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{}},
            {"name":"//c.zip.delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{}},
            {"name":"c.zip.delta","etag":"\"\"","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{}},
            {"name":"d.zip.delta","etag":"\"y\"","size":1,"modified":"2026-12-04T10:00:00.123Z","metadata":{"dg-ref-key":"z","dg-file-size":"5"}},
            {"name":"/e.zip.delta","etag":"e","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{}}
        ]}"#;
        let s = Segment::parse(doc).unwrap();
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["d.zip.delta", "/e.zip.delta"]);
        assert_eq!(s.entries[0].etag, "y");
        assert_eq!(s.entries[0].metadata.len(), 1);
        assert_eq!(s.entries[0].modified.timestamp_subsec_millis(), 123);
        // an entry without its time describes nothing: the segment is not read
        assert!(matches!(
            Segment::parse(br#"{"deltaglider-index":1,"entries":[{"name":"a.delta","etag":"x","size":1,"metadata":{}}]}"#),
            Err(SegmentError::Malformed(_))
        ));
    }

    #[test]
    fn unquoting_is_idempotent() {
        for tag in [
            "\"abc\"",
            " \"abc\" ",
            "\"\\\" x\\\"\"",
            "\" \"x\" \"",
            "abc",
        ] {
            let once = unquoted(tag);
            assert_eq!(unquoted(once), once, "{tag:?}");
        }
    }
}
