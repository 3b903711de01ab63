//! Adler-32 (RFC 1950), the checksum xdelta3 stores for each target window.

const MOD: u32 = 65_521;
/// Largest number of bytes summed before the 32-bit accumulators must be reduced.
const NMAX: usize = 5552;

/// Continues an Adler-32 checksum (start with 1) over `data`.
pub fn update(adler: u32, data: &[u8]) -> u32 {
    let mut a = adler & 0xffff;
    let mut b = adler >> 16;
    for chunk in data.chunks(NMAX) {
        let mut quads = chunk.chunks_exact(4);
        for q in &mut quads {
            a += u32::from(q[0]);
            b += a;
            a += u32::from(q[1]);
            b += a;
            a += u32::from(q[2]);
            b += a;
            a += u32::from(q[3]);
            b += a;
        }
        for &byte in quads.remainder() {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The Adler-32 checksum of `data`.
pub fn adler32(data: &[u8]) -> u32 {
    update(1, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % MOD;
            b = (b + a) % MOD;
        }
        (b << 16) | a
    }

    #[test]
    fn known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big = vec![0xffu8; 100_000];
        assert_eq!(adler32(&big), naive(&big));
    }

    proptest! {
        #[test]
        fn matches_definition(data in proptest::collection::vec(any::<u8>(), 0..20_000), split in 0usize..20_000) {
            prop_assert_eq!(adler32(&data), naive(&data));
            let split = split.min(data.len());
            prop_assert_eq!(update(adler32(&data[..split]), &data[split..]), naive(&data));
        }
    }
}
