//! Just enough of the VCDIFF file header (RFC 3284 section 4.1) to see what a delta needs
//! before decoding it: xdelta3's secondary compressor and its application header.

/// Header indicator bits.
const VCD_DECOMPRESS: u8 = 0x01;
const VCD_CODETABLE: u8 = 0x02;
const VCD_APPHEADER: u8 = 0x04;
const MAGIC: [u8; 3] = [0xD6, 0xC3, 0xC4];
/// Application headers are file names; anything longer is not a header we produced or read.
const MAX_APPHEADER: u64 = 64 * 1024;

/// What the VCDIFF file header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VcdiffHeader {
    /// Secondary compressor id (xdelta3: 1 = DJW, 2 = LZMA, 16 = FGK).
    pub secondary_compressor: Option<u8>,
    /// xdelta3's application header: `target/target-comp/source/source-comp`.
    pub app_header: Option<Vec<u8>>,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first three bytes are not `D6 C3 C4`.
    #[error("not a VCDIFF delta (bad magic)")]
    BadMagic,
    /// The version byte is not 0, the only one RFC 3284 (and xdelta3) writes.
    #[error("unsupported VCDIFF version {0}")]
    Version(u8),
    /// The bytes end inside the header; a longer prefix may parse.
    #[error("truncated VCDIFF header")]
    Truncated,
    /// The header cannot be valid however much follows; says which part is wrong.
    #[error("malformed VCDIFF header: {0}")]
    Malformed(&'static str),
}

/// Reads an RFC 3284 variable-length integer (big-endian base 128).
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, HeaderError> {
    let mut value: u64 = 0;
    for _ in 0..10 {
        let b = *buf.get(*pos).ok_or(HeaderError::Truncated)?;
        *pos += 1;
        value = value
            .checked_mul(128)
            .ok_or(HeaderError::Malformed("integer overflow"))?
            | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HeaderError::Malformed("integer too long"))
}

impl VcdiffHeader {
    /// Parses the header at the start of `buf` (a prefix of the delta is enough).
    pub fn parse(buf: &[u8]) -> Result<Self, HeaderError> {
        if buf.len() < 5 {
            return Err(if buf.len() >= 3 && buf[..3] != MAGIC {
                HeaderError::BadMagic
            } else {
                HeaderError::Truncated
            });
        }
        if buf[..3] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if buf[3] != 0 {
            return Err(HeaderError::Version(buf[3]));
        }
        let indicator = buf[4];
        if indicator & !(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER) != 0 {
            return Err(HeaderError::Malformed("unknown header indicator bits"));
        }
        let mut pos = 5;
        let mut header = VcdiffHeader::default();
        if indicator & VCD_DECOMPRESS != 0 {
            header.secondary_compressor = Some(*buf.get(pos).ok_or(HeaderError::Truncated)?);
            pos += 1;
        }
        if indicator & VCD_CODETABLE != 0 {
            let len = read_varint(buf, &mut pos)?;
            pos = pos
                .checked_add(
                    usize::try_from(len)
                        .map_err(|_| HeaderError::Malformed("code table too long"))?,
                )
                .ok_or(HeaderError::Malformed("code table too long"))?;
            if pos > buf.len() {
                return Err(HeaderError::Truncated);
            }
        }
        if indicator & VCD_APPHEADER != 0 {
            let len = read_varint(buf, &mut pos)?;
            if len > MAX_APPHEADER {
                return Err(HeaderError::Malformed("application header too long"));
            }
            let end = pos + len as usize;
            let data = buf.get(pos..end).ok_or(HeaderError::Truncated)?;
            header.app_header = Some(data.to_vec());
        }
        Ok(header)
    }

    /// The external compressors xdelta3 recorded in its application header, if any: the
    /// header reads `target/COMP/source/COMP` (or `target/COMP` without a source), names
    /// being base names and each `COMP` empty or one letter (`G` gzip, `B` bzip2, `Y` xz,
    /// `Z` compress).
    pub fn external_compression(&self) -> ExternalCompression {
        let Some(app) = &self.app_header else {
            return ExternalCompression::default();
        };
        let parts: Vec<&[u8]> = app.split(|&b| b == b'/').collect();
        let ident = |p: &[u8]| match p {
            [c] if c.is_ascii_uppercase() => Some(*c),
            _ => None,
        };
        match parts.len() {
            n if n >= 4 => ExternalCompression {
                target: ident(parts[n - 3]),
                source: ident(parts[n - 1]),
            },
            2 => ExternalCompression {
                target: ident(parts[1]),
                source: None,
            },
            _ => ExternalCompression::default(),
        }
    }

    /// True if xdelta3 recorded that it decompressed the target or source through an
    /// external program (gzip, bzip2, xz, ...) before encoding.
    pub fn uses_external_compression(&self) -> bool {
        self.external_compression().any()
    }
}

/// Which inputs xdelta3 ran through an external decompressor before encoding (its `-D`
/// switch turns this off): the compressor's one-letter ident for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExternalCompression {
    /// The target was decompressed; decoding must recompress the output with this.
    pub target: Option<u8>,
    /// The reference was decompressed; decoding must decompress it first.
    pub source: Option<u8>,
}

impl ExternalCompression {
    /// True if either input went through an external program.
    pub fn any(&self) -> bool {
        self.target.is_some() || self.source.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_secondary_and_app_header() {
        let mut d = vec![0xD6, 0xC3, 0xC4, 0, VCD_DECOMPRESS | VCD_APPHEADER, 2];
        let app = b"a.tar.gz/G/ref.tar.gz/G";
        d.push(app.len() as u8);
        d.extend_from_slice(app);
        let h = VcdiffHeader::parse(&d).unwrap();
        assert_eq!(h.secondary_compressor, Some(2));
        assert!(h.uses_external_compression());
        assert_eq!(
            h.external_compression(),
            ExternalCompression {
                target: Some(b'G'),
                source: Some(b'G')
            }
        );
        let only_target = b"a.tar.xz/Y/ref.bin/";
        let mut d3 = vec![0xD6, 0xC3, 0xC4, 0, VCD_APPHEADER, only_target.len() as u8];
        d3.extend_from_slice(only_target);
        assert_eq!(
            VcdiffHeader::parse(&d3).unwrap().external_compression(),
            ExternalCompression {
                target: Some(b'Y'),
                source: None
            }
        );
        let plain = b"a.zip//ref.zip/";
        let mut d2 = vec![0xD6, 0xC3, 0xC4, 0, VCD_APPHEADER, plain.len() as u8];
        d2.extend_from_slice(plain);
        assert!(
            !VcdiffHeader::parse(&d2)
                .unwrap()
                .uses_external_compression()
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            VcdiffHeader::parse(b"PK\x03\x04\x00"),
            Err(HeaderError::BadMagic)
        );
        assert_eq!(
            VcdiffHeader::parse(&[0xD6, 0xC3, 0xC4, 1, 0]),
            Err(HeaderError::Version(1))
        );
        assert_eq!(
            VcdiffHeader::parse(&[0xD6, 0xC3]),
            Err(HeaderError::Truncated)
        );
    }

    #[test]
    fn varints() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0x81, 0x00], &mut pos), Ok(128));
        let mut pos = 0;
        assert!(read_varint(&[0xff; 12], &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = VcdiffHeader::parse(&bytes);
            let mut with_magic = vec![0xD6, 0xC3, 0xC4, 0];
            with_magic.extend_from_slice(&bytes);
            if let Ok(h) = VcdiffHeader::parse(&with_magic) {
                let _ = h.uses_external_compression();
            }
        }

        #[test]
        fn varint_round_trip(v in any::<u64>()) {
            let mut bytes = vec![(v & 0x7f) as u8];
            let mut rest = v >> 7;
            while rest > 0 {
                bytes.insert(0, 0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            let mut pos = 0;
            prop_assert_eq!(read_varint(&bytes, &mut pos), Ok(v));
            prop_assert_eq!(pos, bytes.len());
        }
    }
}
