//! VCDIFF file header parsing (deltas are read from storage before xdelta3 sees them).
#![no_main]

use deltaglider::testing::codec::{VcdiffHeader, read_varint};
use libfuzzer_sys::fuzz_target;

fn check(buf: &[u8]) {
    if let Ok(h) = VcdiffHeader::parse(buf) {
        let _ = h.uses_external_compression();
        if let Some(app) = &h.app_header {
            assert!(app.len() <= buf.len(), "app header longer than the input");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes behind a valid magic and version, to reach the indicator paths directly.
    let mut with_magic = vec![0xD6, 0xC3, 0xC4, 0];
    with_magic.extend_from_slice(data);
    check(&with_magic);

    // Varints back to back: each call consumes 1..=10 bytes on success, never reads past the end.
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        match read_varint(data, &mut pos) {
            Ok(_) => assert!(pos > start && pos - start <= 10 && pos <= data.len()),
            Err(_) => break,
        }
    }
});
