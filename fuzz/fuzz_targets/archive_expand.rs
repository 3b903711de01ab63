//! Archives and expanded forms from anywhere: every input expands, its expanded form
//! restores to exactly the input, and a hostile expanded form is refused or restored without
//! a panic, plain segments (arbitrary encoder parameters, content and nesting behind the
//! encoder name this build has) included.
#![no_main]

use std::io::Cursor;

use deltaglider_archive::{Limits, expand, plain_encoder_id, restore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut expanded = Vec::new();
    expand(Cursor::new(data), &mut expanded, &Limits::default()).expect("everything expands");
    let mut restored = Vec::new();
    restore(&expanded[..], &mut restored).expect("its own expanded form");
    assert_eq!(&restored[..], data);
    let _ = restore(data, std::io::sink());
    // The same bytes as the body of a plain segment, so that its parameters, content kind,
    // lengths and nested forms are all reached (seed `plain-segment-body`).
    let id = plain_encoder_id();
    let mut form = b"DGX\x01\x03".to_vec();
    form.push(id.len() as u8);
    form.extend_from_slice(id.as_bytes());
    form.extend_from_slice(data);
    let _ = restore(&form[..], std::io::sink());
});
