//! A listing index segment as read from the store (anyone who can write to the bucket can
//! write one). Besides "never panics", it checks what readers rely on:
//! - every entry read names a `.delta` key within one deltaspace, has a tag without quotes
//!   or blanks at its ends, a time in whole seconds, and only the recorded metadata fields,
//!   a SHA-256 and a size among them;
//! - what was read writes and reads back the same;
//! - an entry describes a listed delta only with its own tag, size and time, and then
//!   with its metadata unless another entry for the same object disagrees;
//! - a merge keeps the latest entries of every name, which read back describing the same.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use deltaglider::storage::ObjectInfo;
use deltaglider::testing::index::{INDEXED_FIELDS, IndexView, Segment};
use libfuzzer_sys::fuzz_target;

fn listed(name: &str, etag: &str, size: u64, modified: DateTime<Utc>) -> ObjectInfo {
    // a deltaspace's key for the name (a root key keeps its leading `/`)
    let key = if name.starts_with('/') {
        name.to_string()
    } else {
        format!("space/{name}")
    };
    ObjectInfo {
        key,
        size,
        last_modified: Some(modified),
        etag: Some(format!("\"{etag}\"")),
        metadata: None,
        content_type: None,
        headers: Default::default(),
        protection: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = Segment::parse(data) else {
        return;
    };
    for e in &segment.entries {
        let rest = e.name.strip_prefix('/').unwrap_or(&e.name);
        assert!(rest.ends_with(".delta") && rest.len() > 6 && !rest.contains('/'));
        let ends = |c: char| c == '"' || c.is_whitespace();
        assert!(!e.etag.is_empty() && !e.etag.starts_with(ends) && !e.etag.ends_with(ends));
        assert!(e.metadata.keys().all(|k| INDEXED_FIELDS.contains(&k.as_str())));
        assert_eq!(e.modified.timestamp_subsec_nanos(), 0);
        assert!(e.metadata.contains_key("dg-file-sha256") && e.metadata.contains_key("dg-file-size"));
    }
    let again = Segment::parse(&segment.to_bytes()).expect("a segment read writes back");
    assert_eq!(again, segment);

    let view = IndexView::new([segment.clone()]);
    for e in &segment.entries {
        let at = listed(&e.name, &e.etag, e.size, e.modified);
        let same_object = |o: &&deltaglider::testing::index::Entry| {
            o.name == e.name && o.etag == e.etag && o.size == e.size && o.modified == e.modified
        };
        let agree = segment
            .entries
            .iter()
            .filter(same_object)
            .all(|o| o.metadata == e.metadata);
        let found = view.metadata_for(&e.name, &at);
        if agree {
            let found = found.expect("an entry describes its own object");
            assert!(found.iter().all(|(k, v)| e.metadata.get(k) == Some(v)));
        } else {
            assert_eq!(found, None, "entries that disagree describe nothing");
        }
        if let Some(later) = e.modified.checked_add_signed(Duration::seconds(1)) {
            let moved = listed(&e.name, &e.etag, e.size, later);
            let other = segment.entries.iter().any(|o| o.name == e.name && o.modified == later);
            if !other {
                assert_eq!(view.metadata_for(&e.name, &moved), None, "described at another time");
            }
        }
    }

    let merged = view.merged();
    let reread = IndexView::new([Segment::parse(&merged.to_bytes()).expect("a merge reads back")]);
    for m in &merged.entries {
        let latest = segment
            .entries
            .iter()
            .filter(|e| e.name == m.name)
            .map(|e| e.modified)
            .max();
        assert_eq!(Some(m.modified), latest, "a merge kept an older entry of {}", m.name);
        let at = listed(&m.name, &m.etag, m.size, m.modified);
        assert_eq!(reread.metadata_for(&m.name, &at), view.metadata_for(&m.name, &at));
    }
    let names: std::collections::HashSet<&str> =
        segment.entries.iter().map(|e| e.name.as_str()).collect();
    let merged_names: std::collections::HashSet<&str> =
        merged.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, merged_names, "a merge lost a name");
});
