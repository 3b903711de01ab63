//! Archives and expanded forms from anywhere: every input expands, its expanded form
//! restores to exactly the input, and a hostile expanded form is refused or restored without
//! a panic.
#![no_main]

use std::io::Cursor;

use deltaglider_archive::{Limits, expand, restore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut expanded = Vec::new();
    expand(Cursor::new(data), &mut expanded, &Limits::default()).expect("everything expands");
    let mut restored = Vec::new();
    restore(&expanded[..], &mut restored).expect("its own expanded form");
    assert_eq!(&restored[..], data);
    let _ = restore(data, Vec::new());
});
