//! The plain tier: a deflate stream recorded as the bytes it decompresses to plus the encoder
//! parameters that compress them back into exactly the stream.
//!
//! Finding the parameters is a search: each candidate compresses the stream's plain bytes
//! while they are decompressed, and its output is compared with the stream's own bytes as it
//! comes, so a wrong candidate stops at its first differing byte (within about one deflate
//! block) and memory stays a few fixed buffers whatever the stream's size.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::zlib::{Deflater, Inflater, Params};
use crate::{Error, Result};

const CHUNK: usize = 1 << 16;

/// The parameters tried after the last ones that matched, most likely first: Python's
/// zipfile and most zip writers use zlib's default level 6, tarfile and gzip level 9.
const LEVELS: [u8; 9] = [6, 9, 1, 2, 3, 4, 5, 7, 8];

/// The search's state over one file, nested containers included.
#[derive(Debug)]
pub(crate) struct Search {
    /// The parameters that reproduced the last stream, tried first on the next.
    pub(crate) last: Option<Params>,
    /// Attempts that may still fail before only `last` is tried.
    pub(crate) misses_left: u64,
    /// Attempts made on one stream at most.
    pub(crate) per_stream: u64,
    /// Attempts that did not reproduce their stream.
    pub(crate) misses: u64,
}

/// A stream that a candidate reproduced.
pub(crate) struct Found {
    pub(crate) params: Params,
    pub(crate) plain_len: u64,
}

impl Search {
    fn candidates(&self) -> Vec<Params> {
        let mut list: Vec<Params> = self.last.into_iter().collect();
        if self.misses_left > 0 {
            for level in LEVELS {
                let p = Params {
                    level,
                    window_bits: 15,
                    mem_level: 8,
                    strategy: 0,
                };
                if !list.contains(&p) {
                    list.push(p);
                }
            }
        }
        list.truncate(self.per_stream.min(usize::MAX as u64) as usize);
        list
    }

    /// The first candidate that reproduces the `len` bytes of deflate at `start`, if any;
    /// none whose plain bytes would exceed `max_plain` is accepted. `first_block` is the
    /// symbol count of the stream's first block when it is a Huffman-coded block before the
    /// last: zlib ends such a block exactly when its symbol buffer (set by the memory level)
    /// is full, so a candidate whose buffer differs cannot match and is not tried.
    pub(crate) fn find<R: Read + Seek>(
        &mut self,
        input: &mut R,
        start: u64,
        len: u64,
        max_plain: u64,
        first_block: Option<u64>,
    ) -> Result<Option<Found>> {
        for params in self.candidates() {
            let buffer = (1u64 << (params.mem_level + 6)) - 1;
            if first_block.is_some_and(|n| n != buffer) {
                continue;
            }
            if self.misses_left == 0 && Some(params) != self.last {
                break;
            }
            match reproduces(input, start, len, max_plain, params)? {
                Some(plain_len) => {
                    self.last = Some(params);
                    return Ok(Some(Found { params, plain_len }));
                }
                None => {
                    self.misses += 1;
                    self.misses_left = self.misses_left.saturating_sub(1);
                }
            }
        }
        Ok(None)
    }
}

/// Decompresses the `len` bytes of deflate at `start`, handing each piece of plain bytes to
/// `sink` (which may move `input`); `None` when they are not one complete deflate stream of
/// exactly that length, or when `sink` says to stop (returns false).
pub(crate) fn inflate<R: Read + Seek>(
    input: &mut R,
    start: u64,
    len: u64,
    mut sink: impl FnMut(&mut R, &[u8]) -> Result<bool>,
) -> Result<Option<u64>> {
    let Some(mut inflater) = Inflater::new() else {
        return Err(Error::Unsupported("zlib has no memory for a decoder"));
    };
    let (mut packed, mut plain) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut pos, mut plain_len) = (start, 0u64);
    let end = start + len;
    let (mut have, mut used, mut full) = (0usize, 0usize, false);
    loop {
        // More input once this is spent, unless the decoder may still hold output for it.
        if used == have && !full {
            let n = (end - pos).min(CHUNK as u64) as usize;
            if n == 0 {
                return Ok(None); // the data ends before the stream does
            }
            input.seek(SeekFrom::Start(pos))?;
            input.read_exact(&mut packed[..n])?;
            pos += n as u64;
            (have, used) = (n, 0);
        }
        let Some(step) = inflater.decompress(&packed[used..have], &mut plain) else {
            return Ok(None);
        };
        used += step.read;
        full = step.written == plain.len();
        plain_len += step.written as u64;
        if step.written > 0 && !sink(input, &plain[..step.written])? {
            return Ok(None);
        }
        if step.end {
            // The stream must end exactly where it was found to.
            return Ok((used == have && pos == end).then_some(plain_len));
        }
    }
}

/// Whether `params` compress the stream's plain bytes into exactly its bytes; its plain
/// length if so.
fn reproduces<R: Read + Seek>(
    input: &mut R,
    start: u64,
    len: u64,
    max_plain: u64,
    params: Params,
) -> Result<Option<u64>> {
    let Some(deflater) = Deflater::new(params) else {
        return Ok(None);
    };
    let mut cmp = Compare {
        deflater,
        out: vec![0u8; CHUNK],
        original: vec![0u8; CHUNK],
        pos: start,
        end: start + len,
    };
    let mut plain_len = 0u64;
    let inflated = inflate(input, start, len, |input, plain| {
        plain_len += plain.len() as u64;
        Ok(plain_len <= max_plain && cmp.feed(input, plain, false)?)
    })?;
    if inflated.is_none() {
        return Ok(None);
    }
    Ok((cmp.feed(input, &[], true)? && cmp.pos == cmp.end).then_some(plain_len))
}

/// The encoder's output checked against the original stream as it is produced.
struct Compare {
    deflater: Deflater,
    out: Vec<u8>,
    original: Vec<u8>,
    pos: u64,
    end: u64,
}

impl Compare {
    /// Feeds `plain` (then finishes, if `finish`); false at the first byte that differs.
    fn feed<R: Read + Seek>(
        &mut self,
        input: &mut R,
        mut plain: &[u8],
        finish: bool,
    ) -> Result<bool> {
        loop {
            let (read, written, done) = self.deflater.compress(plain, &mut self.out, finish);
            plain = &plain[read..];
            if written > 0 {
                if self.pos + written as u64 > self.end {
                    return Ok(false);
                }
                input.seek(SeekFrom::Start(self.pos))?;
                input.read_exact(&mut self.original[..written])?;
                if self.original[..written] != self.out[..written] {
                    return Ok(false);
                }
                self.pos += written as u64;
            }
            if done || (!finish && plain.is_empty() && written < self.out.len()) {
                return Ok(true);
            }
            if read == 0 && written == 0 {
                // zlib makes progress whenever it has room; it did not, so give up.
                return Ok(false);
            }
        }
    }
}

/// Reads a plain segment's plain bytes from `content` and writes their compressed form to
/// `out`, through the encoder with `params`.
pub(crate) struct DeflateWriter<'a> {
    deflater: Deflater,
    out: &'a mut dyn Write,
    buf: Vec<u8>,
}

impl<'a> DeflateWriter<'a> {
    pub(crate) fn new(params: Params, out: &'a mut dyn Write) -> Result<Self> {
        let deflater = Deflater::new(params).ok_or(Error::Unsupported(
            "zlib refused the recorded encoder parameters",
        ))?;
        Ok(DeflateWriter {
            deflater,
            out,
            buf: vec![0u8; CHUNK],
        })
    }

    /// Ends the stream: writes what the encoder still holds.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        loop {
            let (_, written, done) = self.deflater.compress(&[], &mut self.buf, true);
            self.out.write_all(&self.buf[..written])?;
            if done {
                return Ok(());
            }
            if written == 0 {
                return Err(std::io::Error::other(
                    "the deflate encoder made no progress",
                ));
            }
        }
    }
}

impl Write for DeflateWriter<'_> {
    fn write(&mut self, plain: &[u8]) -> std::io::Result<usize> {
        let mut rest = plain;
        while !rest.is_empty() {
            let (read, written, _) = self.deflater.compress(rest, &mut self.buf, false);
            self.out.write_all(&self.buf[..written])?;
            if read == 0 && written == 0 {
                return Err(std::io::Error::other(
                    "the deflate encoder made no progress",
                ));
            }
            rest = &rest[read..];
        }
        Ok(plain.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing the encoder would change its output; only the end writes the rest.
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;
    use crate::{Limits, expand, restore};

    /// A gzip member around `data` compressed by the bundled zlib with `params`.
    fn gzip(data: &[u8], params: Params) -> Vec<u8> {
        let mut d = Deflater::new(params).unwrap();
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let mut buf = vec![0u8; CHUNK];
        let mut rest = data;
        loop {
            let (r, w, done) = d.compress(rest, &mut buf, true);
            rest = &rest[r..];
            out.extend_from_slice(&buf[..w]);
            if done {
                break;
            }
        }
        out.extend_from_slice(&[0; 4]); // the CRC is not checked by expansion
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn params() -> impl Strategy<Value = Params> {
        (1u8..=9, 9u8..=15, 1u8..=9, 0u8..=4).prop_map(
            |(level, window_bits, mem_level, strategy)| Params {
                level,
                window_bits,
                mem_level,
                strategy,
            },
        )
    }

    /// Random bytes with repeats, so that matches of every length and distance occur.
    fn data() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 1..40), 1usize..300),
            0..60,
        )
        .prop_map(|parts| {
            let mut out = Vec::new();
            for (piece, times) in parts {
                for _ in 0..times.min(1 + piece.len() % 7) {
                    out.extend_from_slice(&piece);
                }
                out.extend(piece.iter().take(times % 17).map(|b| b.wrapping_mul(31)));
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_zlib_stream_round_trips_and_likely_ones_are_plain(data in data(), p in params()) {
            let gz = gzip(&data, p);
            let mut expanded = Vec::new();
            let report = expand(Cursor::new(&gz[..]), &mut expanded, &Limits::default()).unwrap();
            let mut restored = Vec::new();
            restore(&expanded[..], &mut restored).unwrap();
            prop_assert!(restored == gz, "restored bytes differ");
            prop_assert_eq!(report.streams, 1);
            let likely = (1..=9).contains(&p.level)
                && p.window_bits == 15
                && p.mem_level == 8
                && p.strategy == 0;
            if likely {
                prop_assert_eq!(report.plain_streams, 1);
            }
        }

        #[test]
        fn the_search_finds_the_parameters_of_any_stream_it_tries(data in data(), p in params()) {
            let gz = gzip(&data, p);
            let len = gz.len() as u64 - 18;
            // The first block's symbols as the scan sees them: small memory levels make
            // blocks of a few hundred symbols, so the candidate filter is put to the test.
            let first = crate::deflate::split(&gz[10..], std::io::sink()).unwrap().first_block_symbols;
            let mut search = Search { last: Some(p), misses_left: 0, per_stream: 1, misses: 0 };
            let found = search.find(&mut Cursor::new(&gz[..]), 10, len, u64::MAX, first).unwrap();
            prop_assert_eq!(found.map(|f| f.plain_len), Some(data.len() as u64));
        }
    }
}
