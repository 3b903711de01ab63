//! Deflate streams and token forms from anywhere: splitting never panics, whatever splits
//! rebuilds to exactly the bytes it was split from, and a hostile token form is refused or
//! rebuilt without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tokens = Vec::new();
    if let Ok(s) = deltaglider_deflate::split(data, &mut tokens) {
        let mut rebuilt = Vec::new();
        deltaglider_deflate::rebuild(&mut &tokens[..], &mut rebuilt).expect("its own token form");
        assert_eq!(&rebuilt[..], &data[..s.deflate_len as usize]);
    }
    let _ = deltaglider_deflate::rebuild(&mut &data[..], Vec::new());
});
