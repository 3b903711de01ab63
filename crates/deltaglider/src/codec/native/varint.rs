//! RFC 3284 variable-length integers: big-endian base 128, high bit set on all but the
//! last byte.

/// Largest encoding of a `u64` (10 bytes carry 70 bits).
pub const MAX_VARINT_LEN: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The buffer ended inside the integer.
    Truncated,
    /// The value does not fit in 64 bits.
    Overflow,
}

/// Reads a varint from `buf` at `*pos`, advancing `*pos` past it.
#[inline]
pub fn read(buf: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    let mut p = *pos;
    for _ in 0..MAX_VARINT_LEN {
        let b = *buf.get(p).ok_or(VarintError::Truncated)?;
        p += 1;
        if value > (u64::MAX >> 7) {
            return Err(VarintError::Overflow);
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            *pos = p;
            return Ok(value);
        }
    }
    Err(VarintError::Overflow)
}

/// Number of bytes `write` uses for `value`.
#[inline]
pub fn len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the encoding of `value` to `out`.
#[inline]
pub fn write(out: &mut Vec<u8>, value: u64) {
    let n = len(value);
    for i in (0..n).rev() {
        let byte = ((value >> (7 * i)) & 0x7f) as u8;
        out.push(if i == 0 { byte } else { byte | 0x80 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut v = Vec::new();
        write(&mut v, 0);
        write(&mut v, 127);
        write(&mut v, 128);
        write(&mut v, 123_456_789);
        assert_eq!(v, [0x00, 0x7f, 0x81, 0x00, 0xba, 0xef, 0x9a, 0x15]);
        let mut pos = 0;
        for expected in [0, 127, 128, 123_456_789] {
            assert_eq!(read(&v, &mut pos), Ok(expected));
        }
        assert_eq!(pos, v.len());
    }

    #[test]
    fn errors() {
        let mut pos = 0;
        assert_eq!(read(&[0x80], &mut pos), Err(VarintError::Truncated));
        assert_eq!(pos, 0);
        assert_eq!(read(&[0xff; 11], &mut pos), Err(VarintError::Overflow));
        let mut max = Vec::new();
        write(&mut max, u64::MAX);
        assert_eq!(max.len(), MAX_VARINT_LEN);
        assert_eq!(read(&max, &mut pos), Ok(u64::MAX));
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(any::<u64>(), 0..20)) {
            let mut buf = Vec::new();
            for &v in &values {
                let before = buf.len();
                write(&mut buf, v);
                prop_assert_eq!(buf.len() - before, len(v));
            }
            let mut pos = 0;
            for &v in &values {
                prop_assert_eq!(read(&buf, &mut pos), Ok(v));
            }
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut pos = 0;
            while read(&bytes, &mut pos).is_ok() {}
        }
    }
}
