//! One segment of a deltaspace's listing index, as stored: what a writer knew about the
//! deltas it had just written (docs/format.md, "Listing index").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deltaspace::DELTA_SUFFIX;
use crate::metadata::{DgMetadata, UserMetadata};

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
    /// The delta's modification time, to the second, as the store gave it right after the
    /// write: an entry describes only an object listed with this very time, so that a
    /// rewrite of the same bytes with other metadata (which moves the time) matches no
    /// entry.
    pub modified: DateTime<Utc>,
    /// The delta's [`INDEXED_FIELDS`], as written on the delta.
    pub metadata: BTreeMap<String, String>,
}

impl Entry {
    /// The entry of a delta just stored as `name` (its key within its deltaspace,
    /// [`super::entry_name`]) with `metadata`, read back with `etag`, `size` and `modified`.
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
            modified: whole_seconds(modified),
            metadata: indexed(metadata),
        }
    }
}

/// `t` without its fraction of a second: the time as every S3 server can give it, in
/// listings and in `Last-Modified` alike (AWS lists whole seconds).
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Only the [`INDEXED_FIELDS`] of `metadata`.
pub(crate) fn indexed(metadata: &UserMetadata) -> BTreeMap<String, String> {
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
    /// `.delta` key within one deltaspace, an empty tag, metadata without a well-formed
    /// SHA-256 and size of the original) are dropped, and so are metadata
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
            e.modified = whole_seconds(e.modified);
            let described = DgMetadata::parse(&e.metadata);
            is_entry_name(&e.name)
                && !e.etag.is_empty()
                && described.file_sha256.as_deref().is_some_and(is_sha256_hex)
                && described.file_size.is_some()
        });
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn meta() -> UserMetadata {
        [
            ("dg-file-size", "1234"),
            ("dg-file-sha256", SHA),
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
            {"name":"a/b.zip.delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}},
            {"name":"b.zip","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}},
            {"name":".delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}},
            {"name":"//c.zip.delta","etag":"x","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}},
            {"name":"c.zip.delta","etag":"\"\"","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}},
            {"name":"f.zip.delta","etag":"f","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1"}},
            {"name":"g.zip.delta","etag":"g","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-sha256":"SHA"}},
            {"name":"h.zip.delta","etag":"h","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"ab"}},
            {"name":"d.zip.delta","etag":"\"y\"","size":1,"modified":"2026-12-04T10:00:00.123Z","metadata":{"dg-ref-key":"z","dg-file-size":"5","dg-file-sha256":"SHA"}},
            {"name":"/e.zip.delta","etag":"e","size":1,"modified":"2026-12-04T10:00:00Z","metadata":{"dg-file-size":"1","dg-file-sha256":"SHA"}}
        ]}"#;
        let doc = String::from_utf8_lossy(doc).replace("\"SHA\"", &format!("\"{SHA}\""));
        let doc = doc.as_bytes();
        let s = Segment::parse(doc).unwrap();
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["d.zip.delta", "/e.zip.delta"]);
        assert_eq!(s.entries[0].etag, "y");
        assert_eq!(s.entries[0].metadata.len(), 2);
        // to the second, as every S3 server gives times
        assert_eq!(s.entries[0].modified.timestamp_subsec_nanos(), 0);
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
