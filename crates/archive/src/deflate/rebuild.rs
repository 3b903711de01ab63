//! Token form -> the exact deflate stream it was split from.

use std::io::{self, BufRead, Write};

use super::bits::{BitReader, BitWriter};
use super::huffman::{Code, fixed};
use super::split::read_tables;
use super::{DIST_EXTRA, END_OF_BLOCK, LENGTH_EXTRA, dist_code, length_code};
use crate::varint;
use crate::{Error, Input, Result};

/// The longest table description a dynamic block can have, in bits: the counts, 19 3-bit
/// lengths, and at most 316 code-length codes of 7 bits with 7 extra bits each.
const MAX_TABLE_BITS: u64 = 14 + 19 * 3 + 316 * 14;

/// Reads one stream's token form from `tokens` (consuming exactly it) and writes the deflate
/// stream to `out`; returns the stream's length in bytes.
pub fn rebuild<R: BufRead, W: Write>(tokens: &mut R, out: W) -> Result<u64> {
    let mut w = BitWriter::new(out);
    loop {
        let head = varint::byte(tokens)?;
        if head > 7 {
            return Err(invalid("a block header above 7"));
        }
        let (bfinal, btype) = (u32::from(head & 1), u32::from(head >> 1));
        w.write(bfinal, 1)?;
        w.write(btype, 2)?;
        match btype {
            0 => stored(tokens, &mut w)?,
            1 => {
                let (lit, dist) = fixed();
                block_tokens(tokens, lit, dist, &mut w)?;
            }
            2 => {
                let (lit, dist) = table(tokens, &mut w)?;
                block_tokens(tokens, &lit, &dist, &mut w)?;
            }
            _ => return Err(invalid("a block of the reserved type 3")),
        }
        if bfinal == 1 {
            break;
        }
    }
    let tail = varint::byte(tokens)?;
    let n = w.to_boundary();
    if u32::from(tail) >> n != 0 {
        return Err(invalid("more tail bits than the last byte has room for"));
    }
    w.write(u32::from(tail), n)?;
    let len = w.bit_len() / 8;
    w.finish()?;
    Ok(len)
}

fn stored<R: BufRead, W: Write>(tokens: &mut R, w: &mut BitWriter<W>) -> Result<()> {
    let pad = varint::byte(tokens)?;
    let n = w.to_boundary();
    if u32::from(pad) >> n != 0 {
        return Err(invalid("more padding bits than the byte has room for"));
    }
    w.write(u32::from(pad), n)?;
    let len = u16::from_le_bytes([varint::byte(tokens)?, varint::byte(tokens)?]);
    w.write_bytes(&len.to_le_bytes())?;
    w.write_bytes(&(!len).to_le_bytes())?;
    copy_bytes(tokens, usize::from(len), |bytes| Ok(w.write_bytes(bytes)?))
}

/// Replays a dynamic block's recorded table description and returns its codes.
fn table<R: BufRead, W: Write>(tokens: &mut R, w: &mut BitWriter<W>) -> Result<(Code, Code)> {
    let nbits = varint::read(tokens)?;
    if nbits > MAX_TABLE_BITS {
        return Err(invalid("a table description longer than any deflate table"));
    }
    let mut recorded = vec![0u8; nbits.div_ceil(8) as usize];
    read_exact(tokens, &mut recorded)?;
    let mut r = BitReader::new(&recorded[..], Input::Tokens);
    let codes = read_tables(&mut r, None, Input::Tokens)?;
    if r.consumed_bits() != nbits || r.peek(8)?.0 != 0 {
        return Err(invalid(
            "a table description of another length than recorded",
        ));
    }
    let mut left = nbits;
    for &b in &recorded {
        let n = left.min(8) as u32;
        w.write(u32::from(b), n)?;
        left -= u64::from(n);
    }
    Ok(codes)
}

fn block_tokens<R: BufRead, W: Write>(
    tokens: &mut R,
    lit: &Code,
    dist: &Code,
    w: &mut BitWriter<W>,
) -> Result<()> {
    let no_code = || invalid("a token the block's table has no code for");
    loop {
        let v = varint::read(tokens)?;
        if v == 0 {
            let (c, l) = lit.encode(END_OF_BLOCK).ok_or_else(no_code)?;
            w.write(u32::from(c), u32::from(l))?;
            return Ok(());
        }
        if v & 1 == 0 {
            let n = usize::try_from(v >> 1).map_err(|_| invalid("a literal run too long"))?;
            copy_bytes(tokens, n, |bytes| {
                for &b in bytes {
                    let (c, l) = lit.encode(u16::from(b)).ok_or_else(no_code)?;
                    w.write(u32::from(c), u32::from(l))?;
                }
                Ok(())
            })?;
            continue;
        }
        let len = v >> 1;
        let d = varint::read(tokens)?;
        if len > 255 || d >= 32768 {
            return Err(invalid(
                "a match longer than 258 bytes or farther than 32 KiB",
            ));
        }
        let (sym, extra) = length_code(len as u16 + 3);
        let (c, l) = lit.encode(sym).ok_or_else(no_code)?;
        w.write(u32::from(c), u32::from(l))?;
        w.write(
            u32::from(extra),
            u32::from(LENGTH_EXTRA[usize::from(sym - 257)]),
        )?;
        let (dsym, dextra) = dist_code(d as u16 + 1);
        let (c, l) = dist.encode(dsym).ok_or_else(no_code)?;
        w.write(u32::from(c), u32::from(l))?;
        w.write(u32::from(dextra), u32::from(DIST_EXTRA[usize::from(dsym)]))?;
    }
}

/// Hands the next `n` bytes of `tokens` to `each`, a buffer at a time.
fn copy_bytes<R: BufRead>(
    tokens: &mut R,
    mut n: usize,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    while n > 0 {
        let buf = tokens.fill_buf()?;
        if buf.is_empty() {
            return Err(Error::Truncated(Input::Tokens));
        }
        let take = n.min(buf.len());
        each(&buf[..take])?;
        tokens.consume(take);
        n -= take;
    }
    Ok(())
}

fn read_exact<R: BufRead>(tokens: &mut R, buf: &mut [u8]) -> Result<()> {
    tokens.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Truncated(Input::Tokens),
        _ => Error::Io(e),
    })
}

fn invalid(reason: &'static str) -> Error {
    Error::Invalid {
        input: Input::Tokens,
        reason,
    }
}
