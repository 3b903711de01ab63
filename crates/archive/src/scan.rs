//! Finding the deflate streams of a gzip or zip-family file by its content.
//!
//! Only the streams' places matter: every byte around them (headers, data descriptors,
//! the central directory, trailers, anything unknown) is copied as it is, so a scan that
//! misjudges a structure costs savings, never correctness. Each stream is split once here
//! as a dry run (nothing written) to learn its length and check that it parses.

use std::io::{self, Read, Seek, SeekFrom};

use crate::{Result, deflate};

/// What a file was found to be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// Neither of the below: copied as it is.
    #[default]
    None,
    /// One or more gzip members (`.gz`, `.tgz`, `.tar.gz`).
    Gzip,
    /// Zip local entries (zip, jar, war, ear, whl, apk, nupkg, vsix, aar, ...).
    Zip,
}

/// A deflate stream found, or one that could not be used.
pub(crate) enum Piece {
    Stream {
        start: u64,
        len: u64,
        tokens_len: u64,
        first_block_symbols: Option<u64>,
    },
    Left {
        reason: String,
    },
}

pub(crate) struct Scan {
    pub(crate) container: Container,
    pub(crate) streams: Vec<Piece>,
}

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 8];
const ZIP_LOCAL: [u8; 4] = *b"PK\x03\x04";
const ZIP_CENTRAL: [u8; 4] = *b"PK\x01\x02";
const ZIP_END: [u8; 4] = *b"PK\x05\x06";

pub(crate) fn scan<R: Read + Seek>(input: &mut R, len: u64) -> Result<Scan> {
    let head = read_at(input, 0, 4)?;
    let (container, streams) = if head.starts_with(&GZIP_MAGIC) {
        (Container::Gzip, gzip(input, len)?)
    } else if head == ZIP_LOCAL {
        (Container::Zip, zip(input, len)?)
    } else {
        (Container::None, Vec::new())
    };
    Ok(Scan { container, streams })
}

/// Every member of a gzip file (RFC 1952), until something that is not one.
fn gzip<R: Read + Seek>(input: &mut R, len: u64) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut pos = 0u64;
    while pos + 18 <= len {
        let h = read_at(input, pos, 10)?;
        if !h.starts_with(&GZIP_MAGIC) {
            break;
        }
        let Some(start) = gzip_body(input, pos, h[3], len)? else {
            break;
        };
        match dry_split(input, start) {
            Ok(s) => {
                pieces.push(Piece::Stream {
                    start,
                    len: s.deflate_len,
                    tokens_len: s.tokens_len,
                    first_block_symbols: s.first_block_symbols,
                });
                pos = start + s.deflate_len + 8;
            }
            Err(e) => {
                pieces.push(Piece::Left {
                    reason: format!("gzip member at byte {pos}: {e}"),
                });
                break;
            }
        }
    }
    Ok(pieces)
}

/// Where the deflate data of the gzip member at `pos` starts, past its optional fields.
fn gzip_body<R: Read + Seek>(input: &mut R, pos: u64, flags: u8, len: u64) -> Result<Option<u64>> {
    if flags & 0xe0 != 0 {
        return Ok(None);
    }
    let mut p = pos + 10;
    if flags & 4 != 0 {
        let x = read_at(input, p, 2)?;
        p += 2 + u64::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [8u8, 16] {
        if flags & flag != 0 {
            // a zero-terminated name or comment
            loop {
                if p >= len {
                    return Ok(None);
                }
                let chunk = read_at(input, p, 256.min(len - p) as usize)?;
                match chunk.iter().position(|&b| b == 0) {
                    Some(i) => {
                        p += i as u64 + 1;
                        break;
                    }
                    None => p += chunk.len() as u64,
                }
            }
        }
    }
    if flags & 2 != 0 {
        p += 2;
    }
    Ok((p < len).then_some(p))
}

/// Every local entry of a zip file, front to back (no seeking to the central directory, so
/// data before or after the entries is simply copied).
fn zip<R: Read + Seek>(input: &mut R, len: u64) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut pos = 0u64;
    while pos + 30 <= len {
        let h = read_at(input, pos, 30)?;
        if h[..4] != ZIP_LOCAL {
            break;
        }
        let le16 = |i: usize| u64::from(u16::from_le_bytes([h[i], h[i + 1]]));
        let le32 = |i: usize| u64::from(u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        let (flags, method, csize) = (le16(6), le16(8), le32(18));
        let data = pos + 30 + le16(26) + le16(28);
        let sized = flags & 8 == 0 && csize != 0xffff_ffff;
        if method != 8 {
            // stored or another method: only an entry that records its size can be passed
            if !sized || data + csize > len {
                break;
            }
            pos = data + csize;
            continue;
        }
        let end = match dry_split(input, data) {
            Ok(s) if sized && s.deflate_len != csize => {
                pieces.push(Piece::Left {
                    reason: format!(
                        "zip entry at byte {pos}: its stream is not as long as the entry says"
                    ),
                });
                pos = data + csize;
                continue;
            }
            Ok(s) => {
                pieces.push(Piece::Stream {
                    start: data,
                    len: s.deflate_len,
                    tokens_len: s.tokens_len,
                    first_block_symbols: s.first_block_symbols,
                });
                data + s.deflate_len
            }
            Err(e) => {
                pieces.push(Piece::Left {
                    reason: format!("zip entry at byte {pos}: {e}"),
                });
                if !sized || data + csize > len {
                    break;
                }
                pos = data + csize;
                continue;
            }
        };
        if sized {
            pos = end;
            continue;
        }
        // A data descriptor follows: 12 or 16 bytes, 20 or 24 with 64-bit sizes.
        let next = [12u64, 16, 20, 24].into_iter().map(|g| end + g).find(|&p| {
            p + 4 <= len
                && read_at(input, p, 4)
                    .map(|s| s == ZIP_LOCAL || s == ZIP_CENTRAL || s == ZIP_END)
                    .unwrap_or(false)
        });
        match next {
            Some(p) => pos = p,
            None => break,
        }
    }
    Ok(pieces)
}

fn dry_split<R: Read + Seek>(input: &mut R, start: u64) -> Result<deflate::Split> {
    input.seek(SeekFrom::Start(start))?;
    deflate::split(input, io::sink())
}

fn read_at<R: Read + Seek>(input: &mut R, pos: u64, n: usize) -> Result<Vec<u8>> {
    input.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
