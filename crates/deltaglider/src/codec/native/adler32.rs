//! Adler-32 (RFC 1950), the checksum xdelta3 stores for each target window.

/// Continues an Adler-32 checksum (start with 1) over `data`.
#[cfg(test)]
pub fn update(adler: u32, data: &[u8]) -> u32 {
    let mut h = simd_adler32::Adler32::from_checksum(adler);
    h.write(data);
    h.finish()
}

/// The Adler-32 checksum of `data` (vectorised where the CPU allows).
pub fn adler32(data: &[u8]) -> u32 {
    simd_adler32::adler32(&data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MOD: u32 = 65_521;

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
