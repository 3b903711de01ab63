//! LEB128 varints of the token form.

use std::io::{self, Read, Write};

use crate::{Error, Input, Result};

pub(crate) fn write(out: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            n += 1;
            break;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
    out.write_all(&buf[..n])
}

/// Reads a varint of at most 64 bits; the end of input is `Truncated`.
pub(crate) fn read(input: &mut impl Read) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = byte(input)?;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if shift == 63 && b > 1 {
                break;
            }
            return Ok(v);
        }
    }
    Err(Error::Invalid {
        input: Input::Tokens,
        reason: "a varint longer than 64 bits",
    })
}

pub(crate) fn byte(input: &mut impl Read) -> Result<u8> {
    let mut b = [0u8; 1];
    match input.read_exact(&mut b) {
        Ok(()) => Ok(b[0]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Truncated(Input::Tokens)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_overlong() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            write(&mut out, v).unwrap();
            assert_eq!(read(&mut &out[..]).unwrap(), v);
        }
        let overlong = [0xffu8; 11];
        assert!(matches!(
            read(&mut &overlong[..]),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(read(&mut &[0x80u8][..]), Err(Error::Truncated(_))));
    }
}
