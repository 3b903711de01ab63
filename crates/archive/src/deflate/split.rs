//! Deflate stream -> token form (see the crate's documentation for the layout).

use std::io::{self, BufWriter, Read, Write};

use super::bits::{BitReader, BitWriter};
use super::huffman::{Code, fixed};
use super::{DIST_BASE, DIST_EXTRA, END_OF_BLOCK, LENGTH_BASE, LENGTH_EXTRA};
use crate::counter::Counter;
use crate::{Error, Input, Result, varint};

/// Literal bytes gathered into one run of the token form at most.
const MAX_RUN: usize = 1 << 16;

/// Order in which a dynamic block lists the code-length code's lengths.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// What [`split`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Split {
    /// Length of the deflate stream in bytes.
    pub deflate_len: u64,
    /// Length of the token form written.
    pub tokens_len: u64,
    /// Length of the data the stream decompresses to.
    pub plain_len: u64,
    /// Symbols (literals and matches) of the first block, when it is a Huffman-coded block
    /// other than the last: an encoder that ends blocks when its symbol buffer is full (zlib)
    /// is told by this number alone.
    pub first_block_symbols: Option<u64>,
    /// Bytes read past the end of the stream (a gzip trailer, the next zip entry): they
    /// belong to whatever follows it.
    pub leftover: Vec<u8>,
}

/// Reads one deflate stream from `input` and writes its token form to `tokens`.
pub fn split<R: Read, W: Write>(input: R, tokens: W) -> Result<Split> {
    let mut r = BitReader::new(input, Input::Deflate);
    let mut out = Counter::new(BufWriter::new(tokens));
    let mut plain_len = 0u64;
    let mut first_block_symbols = None;
    let mut first = true;
    loop {
        let bfinal = r.read(1)?;
        let btype = r.read(2)?;
        out.write_all(&[(bfinal | btype << 1) as u8])?;
        match btype {
            0 => {
                let pad = r.align();
                let len = r.read(16)?;
                if r.read(16)? != !len & 0xffff {
                    return Err(invalid(
                        "a stored block whose NLEN is not the complement of LEN",
                    ));
                }
                out.write_all(&[pad])?;
                out.write_all(&(len as u16).to_le_bytes())?;
                r.copy_bytes(len as usize, &mut out)?;
                plain_len += u64::from(len);
            }
            1 => {
                let (lit, dist) = fixed();
                let symbols;
                (plain_len, symbols) = block_tokens(&mut r, lit, dist, plain_len, &mut out)?;
                if first && bfinal == 0 {
                    first_block_symbols = Some(symbols);
                }
            }
            2 => {
                let mut recorded = BitWriter::new(Vec::new());
                let (lit, dist) = read_tables(&mut r, Some(&mut recorded), Input::Deflate)?;
                let nbits = recorded.bit_len();
                varint::write(&mut out, nbits)?;
                let pad = recorded.to_boundary();
                recorded.write(0, pad)?;
                out.write_all(&recorded.finish()?)?;
                let symbols;
                (plain_len, symbols) = block_tokens(&mut r, &lit, &dist, plain_len, &mut out)?;
                if first && bfinal == 0 {
                    first_block_symbols = Some(symbols);
                }
            }
            _ => return Err(invalid("a block of the reserved type 3")),
        }
        first = false;
        if bfinal == 1 {
            break;
        }
    }
    let tail = r.align();
    out.write_all(&[tail])?;
    let deflate_len = r.consumed_bits() / 8;
    let leftover = r.into_leftover();
    let tokens_len = out.count;
    out.inner.flush()?;
    Ok(Split {
        deflate_len,
        tokens_len,
        plain_len,
        first_block_symbols,
        leftover,
    })
}

/// Reads a dynamic block's table description (RFC 1951 3.2.7), copying every bit it reads
/// to `record` when given, and returns the literal/length and distance codes.
pub(crate) fn read_tables<R: Read>(
    r: &mut BitReader<R>,
    mut record: Option<&mut BitWriter<Vec<u8>>>,
    input: Input,
) -> Result<(Code, Code)> {
    let read = |r: &mut BitReader<R>, n: u32, record: &mut Option<&mut BitWriter<Vec<u8>>>| {
        let v = r.read(n)?;
        if let Some(rec) = record.as_deref_mut() {
            rec.write(v, n)?;
        }
        Ok::<u32, Error>(v)
    };
    let hlit = read(r, 5, &mut record)? as usize + 257;
    let hdist = read(r, 5, &mut record)? as usize + 1;
    let hclen = read(r, 4, &mut record)? as usize + 4;
    if hlit > 286 || hdist > 30 {
        return Err(Error::Invalid {
            input,
            reason: "more than 286 literal/length or 30 distance codes",
        });
    }
    let mut cl_lens = [0u8; 19];
    for &i in &CODE_LENGTH_ORDER[..hclen] {
        cl_lens[i] = read(r, 3, &mut record)? as u8;
    }
    let cl = Code::new(&cl_lens, input)?;
    let total = hlit + hdist;
    let mut lens = vec![0u8; total];
    let mut i = 0;
    while i < total {
        let (sym, raw, n) = cl.decode(r, input)?;
        if let Some(rec) = record.as_deref_mut() {
            rec.write(raw, n)?;
        }
        let (value, repeat) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let Some(&prev) = i.checked_sub(1).map(|p| &lens[p]) else {
                    return Err(Error::Invalid {
                        input,
                        reason: "a repeat of the previous code length before any length",
                    });
                };
                (prev, 3 + read(r, 2, &mut record)? as usize)
            }
            17 => (0, 3 + read(r, 3, &mut record)? as usize),
            _ => (0, 11 + read(r, 7, &mut record)? as usize),
        };
        if i + repeat > total {
            return Err(Error::Invalid {
                input,
                reason: "code lengths past the end of the table",
            });
        }
        lens[i..i + repeat].fill(value);
        i += repeat;
    }
    if lens[END_OF_BLOCK as usize] == 0 {
        return Err(Error::Invalid {
            input,
            reason: "a table with no end-of-block code",
        });
    }
    Ok((
        Code::new(&lens[..hlit], input)?,
        Code::new(&lens[hlit..], input)?,
    ))
}

/// Turns one block's Huffman-coded tokens into the token form, up to and including its end;
/// returns the plain length after the block and the block's symbols (literals and matches).
fn block_tokens<R: Read>(
    r: &mut BitReader<R>,
    lit: &Code,
    dist: &Code,
    mut plain_len: u64,
    out: &mut impl Write,
) -> Result<(u64, u64)> {
    let mut run: Vec<u8> = Vec::with_capacity(MAX_RUN);
    let mut symbols = 0u64;
    loop {
        let (sym, _, _) = lit.decode(r, Input::Deflate)?;
        symbols += 1;
        if sym < 256 {
            run.push(sym as u8);
            plain_len += 1;
            if run.len() == MAX_RUN {
                flush_run(&mut run, out)?;
            }
            continue;
        }
        flush_run(&mut run, out)?;
        if sym == END_OF_BLOCK {
            varint::write(out, 0)?;
            return Ok((plain_len, symbols - 1));
        }
        let li = usize::from(sym - 257);
        if li >= LENGTH_BASE.len() {
            return Err(invalid("a length symbol above 285"));
        }
        let len = LENGTH_BASE[li] + r.read(u32::from(LENGTH_EXTRA[li]))? as u16;
        if sym == 284 && len == 258 {
            return Err(Error::Unsupported("a length of 258 written with code 284"));
        }
        let (dsym, _, _) = dist.decode(r, Input::Deflate)?;
        let di = usize::from(dsym);
        if di >= DIST_BASE.len() {
            return Err(invalid("a distance symbol above 29"));
        }
        let d = u64::from(DIST_BASE[di]) + u64::from(r.read(u32::from(DIST_EXTRA[di]))?);
        if d > plain_len {
            return Err(invalid(
                "a distance reaching before the start of the stream",
            ));
        }
        varint::write(out, (u64::from(len - 3) << 1) | 1)?;
        varint::write(out, d - 1)?;
        plain_len += u64::from(len);
    }
}

fn flush_run(run: &mut Vec<u8>, out: &mut impl Write) -> io::Result<()> {
    if !run.is_empty() {
        varint::write(out, (run.len() as u64) << 1)?;
        out.write_all(run)?;
        run.clear();
    }
    Ok(())
}

fn invalid(reason: &'static str) -> Error {
    Error::Invalid {
        input: Input::Deflate,
        reason,
    }
}
