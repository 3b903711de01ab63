//! DeltaGlider metadata as read from an object's user metadata. The input is a list of
//! records separated by `\n`, each `key \0 value` (no NUL: the whole record is a key with an
//! empty value), decoded as lossy UTF-8.
//!
//! Besides "never panics", it checks what the canonical writer guarantees when its output
//! is read back (`parse(to_user_metadata(parse(input)))`):
//! - hashes and sizes come back exactly;
//! - `created_at` comes back truncated to microseconds (the writer's precision);
//! - text the writer encodes (`encode_text`) comes back exactly, unless it is empty or has a
//!   leading/trailing space (readers trim values; printable ASCII is written unencoded);
//! - `note` and `compression` are written raw but read through `decode_text`, so they come
//!   back exactly only if decoding leaves them unchanged (and the same trimming caveat).
#![no_main]

use chrono::{DateTime, Timelike, Utc};
use deltaglider::testing::metadata::{
    DgMetadata, UserMetadata, decode_text, encode_text, format_timestamp, parse_timestamp,
};
use libfuzzer_sys::fuzz_target;

fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1000 * 1000)
        .expect("truncated nanoseconds are valid")
}

/// Text survives a write and a read unless trimming or emptiness gets in the way.
fn survives_trim(v: &str) -> bool {
    !v.is_empty() && !v.starts_with(' ') && !v.ends_with(' ')
}

fn check_text(field: &str, first: &Option<String>, again: &Option<String>) {
    if let Some(v) = first
        && survives_trim(v)
    {
        assert_eq!(again.as_ref(), Some(v), "{field} does not round-trip");
    }
}

fn check_raw_text(field: &str, first: &Option<String>, again: &Option<String>) {
    if let Some(v) = first
        && survives_trim(v)
        && decode_text(v) == *v
    {
        assert_eq!(again.as_ref(), Some(v), "{field} does not round-trip");
    }
}

fn check_string(s: &str) {
    let enc = encode_text(s);
    assert!(
        printable_ascii(&enc),
        "encode_text output is not printable ASCII: {enc:?}"
    );
    assert_eq!(
        decode_text(&enc),
        s,
        "encode_text/decode_text do not round-trip"
    );
    let _ = decode_text(s);
    if let Some(t) = parse_timestamp(s) {
        let text = format_timestamp(t);
        assert_eq!(
            parse_timestamp(&text),
            Some(micros(t)),
            "timestamp {s:?} formatted as {text:?} does not read back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_string(&text);

    let mut input = UserMetadata::new();
    for record in data.split(|&b| b == b'\n') {
        let (k, v) = match record.iter().position(|&b| b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (record, &[][..]),
        };
        let (k, v) = (String::from_utf8_lossy(k), String::from_utf8_lossy(v));
        check_string(&v);
        input.insert(k.into_owned(), v.into_owned());
    }

    let m = DgMetadata::parse(&input);
    let _ = m.is_deltaglider();
    let _ = m.reference_key("some/space");
    let _ = m.reference_key("");
    let out = m.to_user_metadata();
    for (k, v) in &out {
        assert!(
            k.starts_with("dg-"),
            "writer emitted a non-canonical key {k:?}"
        );
        let raw = matches!(
            k.as_str(),
            "dg-note" | "dg-compression" | "dg-file-sha256" | "dg-ref-sha256"
        );
        assert!(
            raw || printable_ascii(v),
            "{k} is not printable ASCII: {v:?}"
        );
    }

    let again = DgMetadata::parse(&out);
    assert_eq!(
        again.file_sha256, m.file_sha256,
        "file_sha256 does not round-trip"
    );
    assert_eq!(
        again.ref_sha256, m.ref_sha256,
        "ref_sha256 does not round-trip"
    );
    assert_eq!(
        again.file_size, m.file_size,
        "file_size does not round-trip"
    );
    assert_eq!(
        again.delta_size, m.delta_size,
        "delta_size does not round-trip"
    );
    assert_eq!(
        again.created_at,
        m.created_at.map(micros),
        "created_at does not round-trip"
    );
    check_text("tool", &m.tool, &again.tool);
    check_text("original_name", &m.original_name, &again.original_name);
    check_text("source_name", &m.source_name, &again.source_name);
    check_text("ref_key", &m.ref_key, &again.ref_key);
    check_text("ref_path", &m.ref_path, &again.ref_path);
    check_text("delta_cmd", &m.delta_cmd, &again.delta_cmd);
    check_raw_text("note", &m.note, &again.note);
    check_raw_text("compression", &m.compression, &again.compression);
});
