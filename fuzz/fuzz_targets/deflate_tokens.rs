//! Deflate streams and token forms from anywhere: splitting never panics, whatever splits
//! rebuilds to exactly the bytes it was split from, and a hostile token form is refused or
//! rebuilt without a panic.
#![no_main]

use deltaglider_archive::deflate::{rebuild, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tokens = Vec::new();
    if let Ok(s) = split(data, &mut tokens) {
        let mut rebuilt = Vec::new();
        rebuild(&mut &tokens[..], &mut rebuilt).expect("its own token form");
        assert_eq!(&rebuilt[..], &data[..s.deflate_len as usize]);
    }
    let _ = rebuild(&mut &data[..], Vec::new());
});
