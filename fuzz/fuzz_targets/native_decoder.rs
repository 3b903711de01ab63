//! The native VCDIFF decoder on hostile deltas: errors are fine, panics, hangs and unbounded
//! allocations are not. The first two bytes choose how much of the rest is the reference.
#![no_main]

use deltaglider::testing::codec::decode_slices_limited;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(data[0]) << 8 | usize::from(data[1])).min(data.len() - 2);
    let (reference, delta) = data[2..].split_at(split);
    // Output is capped so that a tiny delta cannot ask for gigabytes.
    let _ = decode_slices_limited(delta, reference, 64 << 20);
});
