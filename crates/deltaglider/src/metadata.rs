//! DeltaGlider object metadata: reading every historical spelling, writing the canonical one.
//!
//! S3 user metadata is a flat map of ASCII strings. The Python tool, the proxy and older
//! releases spelled the same fields `dg-x-y`, `dg_x_y`, `x_y` or `x-y`; readers take the first
//! non-empty spelling. Writers always emit `dg-x-y` plus `dg-ref-key` *and* `dg-ref-path`, so
//! that both the Python tool (which requires `dg-ref-key`) and the proxy read our objects.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// User metadata as stored on an object: lowercase keys without `x-amz-meta-`.
pub type UserMetadata = BTreeMap<String, String>;

/// The tool string written into `dg-tool`.
pub fn tool_string() -> String {
    format!("deltaglider-rs/{}", env!("CARGO_PKG_VERSION"))
}

/// Prefix under which caller metadata is stored next to DeltaGlider's own.
pub const USER_PREFIX: &str = "user-";

/// The caller metadata of an object (`user-<key>` entries, prefix removed, decoded).
pub fn user_metadata(meta: &UserMetadata) -> UserMetadata {
    meta.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(USER_PREFIX)
                .map(|k| (k.to_string(), decode_text(v)))
        })
        .collect()
}

/// Value of `dg-note` on a reference.
pub const NOTE_REFERENCE: &str = "reference";
/// Value of `dg-note` on the delta of the file that became the reference.
pub const NOTE_ZERO_DIFF: &str = "zero-diff (reference identical)";

/// The parsed DeltaGlider view of an object's metadata. Every field is optional: which ones
/// are required depends on the object's role and is checked by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DgMetadata {
    /// Writer and version (`dg-tool`), e.g. `deltaglider-rs/0.1.0`; informational only.
    pub tool: Option<String>,
    /// File name of the original (`dg-original-name`), on deltas and direct objects.
    pub original_name: Option<String>,
    /// Lowercase hex SHA-256 of the original bytes (`dg-file-sha256`). Its presence is what
    /// marks an object as DeltaGlider's.
    pub file_sha256: Option<String>,
    /// Size of the original file in bytes (`dg-file-size`), not of the stored object.
    pub file_size: Option<u64>,
    /// When the object was written (`dg-created-at`); decides between `<key>` and
    /// `<key>.delta` when both exist.
    pub created_at: Option<DateTime<Utc>>,
    /// Full key of the reference (`dg-ref-key`).
    pub ref_key: Option<String>,
    /// Reference path relative to the deltaspace (`dg-ref-path`, written by the proxy).
    pub ref_path: Option<String>,
    /// Lowercase hex SHA-256 of the reference this delta was encoded against
    /// (`dg-ref-sha256`); the reference is checked against it before decoding.
    pub ref_sha256: Option<String>,
    /// Size of the delta object in bytes (`dg-delta-size`).
    pub delta_size: Option<u64>,
    /// The codec command line that made the delta (`dg-delta-cmd`); informational only.
    pub delta_cmd: Option<String>,
    /// `NOTE_REFERENCE` on references, `NOTE_ZERO_DIFF` on zero-diff deltas (`dg-note`).
    pub note: Option<String>,
    /// `none` on direct objects (`dg-compression`).
    pub compression: Option<String>,
    /// File name of the upload that became the reference (`dg-source-name`), on references.
    pub source_name: Option<String>,
    /// The storage format (`dg-format`): absent on objects of the compatible format,
    /// [`FORMAT_COMPACT`] on the compact format's references and deltas.
    pub format: Option<String>,
    /// SHA-256 of the object's expanded form (`dg-expanded-sha256`), on compact references:
    /// the content identity deltas name in `dg-ref-sha256`.
    pub expanded_sha256: Option<String>,
    /// Length of the expanded form (`dg-expanded-size`), on compact references and deltas.
    pub expanded_size: Option<u64>,
}

/// `dg-format` of the compact format, version 1 (docs/format.md, "Compact format").
pub const FORMAT_COMPACT: &str = "compact/1";

/// Looks a field up under all its historical spellings; the first non-empty one wins.
fn lookup<'a>(meta: &'a UserMetadata, field: &str) -> Option<&'a str> {
    let underscored = field.replace('-', "_");
    let dashed = field.replace('_', "-");
    [
        format!("dg-{dashed}"),
        format!("dg_{underscored}"),
        underscored.clone(),
        dashed.clone(),
    ]
    .iter()
    .filter_map(|k| meta.get(k.as_str()))
    .map(|v| v.trim())
    .find(|v| !v.is_empty())
}

fn lookup_text(meta: &UserMetadata, field: &str) -> Option<String> {
    lookup(meta, field).map(decode_text)
}

fn lookup_sha(meta: &UserMetadata, field: &str) -> Option<String> {
    lookup(meta, field).map(|s| s.to_ascii_lowercase())
}

impl DgMetadata {
    /// Parses metadata written by any DeltaGlider version (or none: all fields `None`).
    pub fn parse(meta: &UserMetadata) -> Self {
        DgMetadata {
            tool: lookup_text(meta, "tool"),
            original_name: lookup_text(meta, "original-name"),
            file_sha256: lookup_sha(meta, "file-sha256"),
            file_size: lookup(meta, "file-size").and_then(|s| s.parse().ok()),
            created_at: lookup(meta, "created-at").and_then(parse_timestamp),
            ref_key: lookup_text(meta, "ref-key"),
            ref_path: lookup_text(meta, "ref-path"),
            ref_sha256: lookup_sha(meta, "ref-sha256"),
            delta_size: lookup(meta, "delta-size").and_then(|s| s.parse().ok()),
            delta_cmd: lookup_text(meta, "delta-cmd"),
            note: lookup_text(meta, "note"),
            compression: lookup_text(meta, "compression"),
            source_name: lookup_text(meta, "source-name"),
            // One spelling only: a bare `format` is too common a name on other tools' objects.
            format: meta
                .get("dg-format")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            // Only a SHA-256 is one: anything else names no expanded form that could match.
            expanded_sha256: lookup_sha(meta, "expanded-sha256")
                .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())),
            expanded_size: lookup(meta, "expanded-size").and_then(|s| s.parse().ok()),
        }
    }

    /// True when the object was written by a DeltaGlider tool (it carries a content hash).
    pub fn is_deltaglider(&self) -> bool {
        self.file_sha256.is_some()
    }

    /// Full key of the reference a delta in `deltaspace` points at: `dg-ref-key` if present,
    /// else `dg-ref-path` relative to the deltaspace, else the deltaspace's `reference.bin`.
    pub fn reference_key(&self, deltaspace: &str) -> String {
        if let Some(k) = &self.ref_key {
            return k.clone();
        }
        let rel = self
            .ref_path
            .as_deref()
            .unwrap_or(crate::deltaspace::REFERENCE_NAME);
        crate::deltaspace::join(deltaspace, rel)
    }

    /// Metadata for a `reference.bin`.
    pub fn for_reference(source_name: &str, sha256: &str, size: u64, now: DateTime<Utc>) -> Self {
        DgMetadata {
            tool: Some(tool_string()),
            source_name: Some(source_name.to_string()),
            file_sha256: Some(sha256.to_string()),
            file_size: Some(size),
            created_at: Some(now),
            note: Some(NOTE_REFERENCE.to_string()),
            ..Default::default()
        }
    }

    /// Metadata for a file stored whole.
    pub fn for_direct(original_name: &str, sha256: &str, size: u64, now: DateTime<Utc>) -> Self {
        DgMetadata {
            tool: Some(tool_string()),
            original_name: Some(original_name.to_string()),
            file_sha256: Some(sha256.to_string()),
            file_size: Some(size),
            created_at: Some(now),
            compression: Some("none".to_string()),
            ..Default::default()
        }
    }

    /// Renders the canonical `dg-*` map, encoding non-ASCII text so that it survives S3.
    pub fn to_user_metadata(&self) -> UserMetadata {
        let mut m = UserMetadata::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(format!("dg-{k}"), v);
            }
        };
        put("tool", self.tool.as_deref().map(encode_text));
        put(
            "original-name",
            self.original_name.as_deref().map(encode_text),
        );
        put("source-name", self.source_name.as_deref().map(encode_text));
        put("file-sha256", self.file_sha256.clone());
        put("file-size", self.file_size.map(|n| n.to_string()));
        put("created-at", self.created_at.map(format_timestamp));
        put("ref-key", self.ref_key.as_deref().map(encode_text));
        put("ref-path", self.ref_path.as_deref().map(encode_text));
        put("ref-sha256", self.ref_sha256.clone());
        put("delta-size", self.delta_size.map(|n| n.to_string()));
        put("delta-cmd", self.delta_cmd.as_deref().map(encode_text));
        put("note", self.note.clone());
        put("compression", self.compression.clone());
        put("format", self.format.as_deref().map(encode_text));
        put("expanded-sha256", self.expanded_sha256.clone());
        put("expanded-size", self.expanded_size.map(|n| n.to_string()));
        m
    }
}

/// Formats a timestamp the way the Python tool does for references and deltas.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses `2026-11-25T14:31:15.399607Z`, with or without `Z`/offset and fraction.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
    .map(|n| n.and_utc())
}

const ENCODED_PREFIX: &str = "=?UTF-8?B?";
const ENCODED_SUFFIX: &str = "?=";

/// Encodes text for an S3 metadata value. Printable ASCII is kept as is (so other tools read
/// it unchanged); anything else becomes an RFC 2047 encoded word, the form S3 itself uses.
/// So does text with leading or trailing spaces, which HTTP header values lose.
pub fn encode_text(s: &str) -> String {
    let plain = s.bytes().all(|b| (0x20..0x7f).contains(&b)) && s.trim() == s;
    if plain && !(s.starts_with(ENCODED_PREFIX) && s.ends_with(ENCODED_SUFFIX)) {
        s.to_string()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!("{ENCODED_PREFIX}{b64}{ENCODED_SUFFIX}")
    }
}

/// Reverses [`encode_text`]; values that are not encoded words come back unchanged.
pub fn decode_text(s: &str) -> String {
    s.strip_prefix(ENCODED_PREFIX)
        .and_then(|r| r.strip_suffix(ENCODED_SUFFIX))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> UserMetadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_expanded_sha256_that_is_no_sha256_is_not_read_nor_written_back() {
        let sha = "ab".repeat(32);
        let m = DgMetadata::parse(&map(&[("dg-expanded-sha256", &sha.to_uppercase())]));
        assert_eq!(m.expanded_sha256.as_deref(), Some(sha.as_str()));
        for bad in ["\0\0x/reference.bin", "abc", &"g".repeat(64)] {
            let m = DgMetadata::parse(&map(&[("dg-expanded-sha256", bad), ("dg-format", "c\0")]));
            assert_eq!(m.expanded_sha256, None, "{bad:?}");
            let out = m.to_user_metadata();
            assert!(!out.contains_key("dg-expanded-sha256"));
            assert!(
                out["dg-format"].bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{out:?}"
            );
        }
    }

    #[test]
    fn reads_every_spelling() {
        for key in [
            "dg-file-sha256",
            "dg_file_sha256",
            "file_sha256",
            "file-sha256",
        ] {
            let m = DgMetadata::parse(&map(&[(key, "ABC")]));
            assert_eq!(m.file_sha256.as_deref(), Some("abc"), "{key}");
        }
    }

    #[test]
    fn first_non_empty_spelling_wins() {
        let m = DgMetadata::parse(&map(&[("dg-file-size", ""), ("file_size", "12")]));
        assert_eq!(m.file_size, Some(12));
    }

    #[test]
    fn reference_key_resolution() {
        let with_key = DgMetadata::parse(&map(&[("dg-ref-key", "a/b/reference.bin")]));
        assert_eq!(with_key.reference_key("x"), "a/b/reference.bin");
        let with_path = DgMetadata::parse(&map(&[("dg-ref-path", "reference.bin")]));
        assert_eq!(with_path.reference_key("rel/v1"), "rel/v1/reference.bin");
        assert_eq!(with_path.reference_key(""), "reference.bin");
        assert_eq!(DgMetadata::default().reference_key("p"), "p/reference.bin");
    }

    #[test]
    fn timestamps_with_and_without_zone_and_fraction() {
        for s in [
            "2026-11-25T14:31:15.399607Z",
            "2026-11-25T14:31:15.399607",
            "2026-11-25T14:31:15",
            "2026-11-25T14:31:15Z",
            "2026-11-25T14:31:15+00:00",
        ] {
            let t = parse_timestamp(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(t.timestamp(), 1_795_617_075, "{s}");
        }
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn canonical_output_has_python_and_proxy_fields() {
        let mut m = DgMetadata::for_direct("f.zip", "aa", 3, Utc::now());
        m.ref_key = Some("p/reference.bin".into());
        m.ref_path = Some("reference.bin".into());
        let out = m.to_user_metadata();
        for k in [
            "dg-tool",
            "dg-original-name",
            "dg-file-sha256",
            "dg-file-size",
            "dg-created-at",
            "dg-ref-key",
            "dg-ref-path",
            "dg-compression",
        ] {
            assert!(out.contains_key(k), "{k}");
        }
    }

    proptest! {
        #[test]
        fn text_encoding_round_trips_and_is_ascii(s in "\\PC{0,40}") {
            let enc = encode_text(&s);
            prop_assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)));
            prop_assert_eq!(decode_text(&enc), s);
        }

        #[test]
        fn metadata_round_trips(name in "\\PC{1,30}", sha in "[0-9a-f]{64}", size in any::<u64>()) {
            let m = DgMetadata::for_direct(&name, &sha, size, parse_timestamp("2026-01-02T03:04:05.123456Z").unwrap());
            prop_assert_eq!(DgMetadata::parse(&m.to_user_metadata()), m);
        }

        #[test]
        fn parse_never_panics(pairs in proptest::collection::btree_map("[a-z_-]{1,20}", "\\PC{0,30}", 0..10)) {
            let _ = DgMetadata::parse(&pairs);
        }
    }
}
