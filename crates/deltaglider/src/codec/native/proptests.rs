//! Property tests across the codec: round trips and hostile input.

use proptest::prelude::*;

use super::{EncodeOptions, decode_slices_limited, encode};

fn options(lzma: bool, window: usize) -> EncodeOptions {
    EncodeOptions {
        lzma_preset: lzma.then_some(1),
        window_size: window,
        ..EncodeOptions::default()
    }
}

fn round_trip(reference: &[u8], target: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let mut delta = Vec::new();
    encode(reference, target, &mut delta, opts).unwrap();
    let back = decode_slices_limited(&delta, reference, 1 << 30).unwrap();
    assert_eq!(back, target);
    delta
}

/// A target made from pieces of the reference, literal bytes and runs.
fn edited() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        proptest::collection::vec(any::<u8>(), 0..5000),
        proptest::collection::vec((0u8..4, any::<u16>(), 0u16..600, any::<u8>()), 0..30),
    )
        .prop_map(|(reference, edits)| {
            let mut target = Vec::new();
            for (kind, a, len, byte) in edits {
                let len = usize::from(len);
                match kind {
                    0 if !reference.is_empty() => {
                        let start = usize::from(a) % reference.len();
                        let end = (start + len).min(reference.len());
                        target.extend_from_slice(&reference[start..end]);
                    }
                    1 => target.extend(std::iter::repeat_n(byte, len)),
                    2 if !target.is_empty() => {
                        let start = usize::from(a) % target.len();
                        for i in 0..len {
                            target.push(target[start + i % (target.len() - start)]);
                        }
                    }
                    _ => target.extend((0..len).map(|i| byte.wrapping_add(i as u8))),
                }
            }
            (reference, target)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decode_inverts_encode((reference, target) in edited(), lzma in any::<bool>(), small_windows in any::<bool>()) {
        let window = if small_windows { 1024 } else { 1 << 20 };
        round_trip(&reference, &target, &options(lzma, window));
    }

    #[test]
    fn arbitrary_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), reference in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_slices_limited(&bytes, &reference, 1 << 24);
        let mut with_magic = vec![0xD6, 0xC3, 0xC4, 0x00];
        with_magic.extend_from_slice(&bytes);
        let _ = decode_slices_limited(&with_magic, &reference, 1 << 24);
    }

    #[test]
    fn mutated_deltas_are_an_error_not_a_panic((reference, target) in edited(), lzma in any::<bool>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut delta = Vec::new();
        encode(&reference, &target, &mut delta, &options(lzma, 1024)).unwrap();
        let mut mutated = delta.clone();
        for (i, x) in &flips {
            let i = i.index(mutated.len());
            mutated[i] ^= x | 1;
        }
        let _ = decode_slices_limited(&mutated, &reference, 1 << 24);
        // VCDIFF has no end marker: a cut at a window boundary is a valid shorter delta.
        let truncated = &delta[..cut.index(delta.len())];
        if let Ok(out) = decode_slices_limited(truncated, &reference, 1 << 24) {
            prop_assert!(target.starts_with(&out));
        }
    }
}

#[test]
fn finds_moved_blocks_anywhere_in_the_reference() {
    // A block at the end of the reference moved to the front of the target: found
    // wherever it is (the index covers the whole reference).
    let reference = super::matcher::tests::splitmix_bytes(3_000_000, 7);
    let mut target = reference[2_500_000..].to_vec();
    target.extend_from_slice(&reference[..2_500_000]);
    let delta = round_trip(&reference, &target, &options(true, 1 << 20));
    assert!(delta.len() < 400, "{} bytes", delta.len());
}

#[test]
fn hostile_sizes_are_refused_before_allocation() {
    // A window announcing a 2^60-byte target.
    let mut d = vec![0xD6, 0xC3, 0xC4, 0, 0, 0];
    let mut v = Vec::new();
    super::varint::write(&mut v, 1u64 << 60);
    d.push(10);
    d.extend_from_slice(&v);
    let err = decode_slices_limited(&d, &[], 1 << 30).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    // Sections announced far larger than the bytes present: a truncation error.
    let d = [0xD6, 0xC3, 0xC4, 0, 0, 0, 9, 100, 0, 0xff, 0x7f, 0, 0];
    assert!(decode_slices_limited(&d, &[], 1 << 30).is_err());
}
