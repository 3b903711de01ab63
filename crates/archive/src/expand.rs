//! Writing the expanded form from a scan of the input (see the crate's documentation).

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use crate::counter::Counter;
use crate::limits::{Expansion, Limits, MAX_NESTING};
use crate::plain::{self, Found, Search};
use crate::scan::{Container, Piece, scan};
use crate::zlib::{self, Params};
use crate::{Error, Result, deflate, varint};

pub(crate) const MAGIC: &[u8; 4] = b"DGX\x01";
pub(crate) const TAG_END: u8 = 0;
pub(crate) const TAG_RAW: u8 = 1;
pub(crate) const TAG_TOKENS: u8 = 2;
pub(crate) const TAG_PLAIN: u8 = 3;
/// A plain segment's content: the plain bytes as they are.
pub(crate) const CONTENT_BYTES: u8 = 0;
/// A plain segment's content: the expanded form of the plain bytes (a nested container).
pub(crate) const CONTENT_EXPANDED: u8 = 1;
/// Raw bytes are written in segments of at most this much, so that nothing needs the whole
/// length of a raw run before writing it.
const RAW_SEGMENT: u64 = 1 << 20;

/// What one expansion, nested ones included, has left to spend.
struct Run<'a> {
    limits: &'a Limits,
    /// Bytes of token forms and plain bytes the expanded form may still hold.
    budget: u64,
    search: Search,
    /// The parameters that reproduced the last stream at each depth: the members of a zip
    /// and the gzip files inside them are often made by different tools.
    last: [Option<Params>; MAX_NESTING as usize + 1],
    /// Streams expanded so far, at any depth.
    streams: u64,
    depth: u32,
}

/// Writes the expanded form of `input` (read from its start) to `out`.
pub fn expand<R: Read + Seek, W: Write>(
    mut input: R,
    out: W,
    limits: &Limits,
) -> Result<Expansion> {
    let mut run = Run {
        limits,
        budget: limits.max_expanded_len,
        search: Search {
            last: None,
            misses_left: limits.plain_misses_per_file,
            per_stream: limits.plain_attempts_per_stream,
            misses: 0,
        },
        last: [None; MAX_NESTING as usize + 1],
        streams: 0,
        depth: 0,
    };
    let mut report = expand_in(&mut input, out, &mut run)?;
    report.plain_misses = run.search.misses;
    Ok(report)
}

fn expand_in<R: Read + Seek, W: Write>(input: &mut R, out: W, run: &mut Run) -> Result<Expansion> {
    let input_len = input.seek(SeekFrom::End(0))?;
    let mut out = io::BufWriter::with_capacity(1 << 16, Counter::new(out));
    out.write_all(MAGIC)?;
    let mut report = Expansion {
        input_len,
        ..Default::default()
    };
    let mut raw_from = 0u64;
    let pieces = scan(input, input_len)?;
    report.container = pieces.container;
    for piece in pieces.streams {
        let (start, len, tokens_len, first_block) = match piece {
            Piece::Stream {
                start,
                len,
                tokens_len,
                first_block_symbols,
            } => (start, len, tokens_len, first_block_symbols),
            Piece::Left { reason } => {
                report.streams_left += 1;
                report.first_left_reason.get_or_insert(reason);
                continue;
            }
        };
        if run.streams >= run.limits.max_streams {
            report.streams_left += 1;
            report
                .first_left_reason
                .get_or_insert("more deflate streams than the limit".into());
            continue;
        }
        if let Some(found) = run.search_plain(input, start, len, first_block)? {
            copy_raw(input, raw_from, start - raw_from, &mut out)?;
            report.nested_streams += run.write_plain(input, start, len, &found, &mut out)?;
            report.plain_streams += 1;
        } else {
            let why_not = if tokens_len
                > len
                    .saturating_mul(run.limits.max_stream_ratio)
                    .saturating_add(4096)
            {
                Some("a token form out of proportion to its stream")
            } else if tokens_len > run.budget {
                Some("the expansion budget is spent")
            } else {
                None
            };
            if let Some(reason) = why_not {
                report.streams_left += 1;
                report.first_left_reason.get_or_insert(reason.to_string());
                continue;
            }
            run.budget -= tokens_len;
            copy_raw(input, raw_from, start - raw_from, &mut out)?;
            out.write_all(&[TAG_TOKENS])?;
            input.seek(SeekFrom::Start(start))?;
            deflate::split(&mut *input, &mut out)?;
        }
        raw_from = start + len;
        run.streams += 1;
        report.streams += 1;
        report.stream_bytes += len;
    }
    copy_raw(input, raw_from, input_len - raw_from, &mut out)?;
    out.write_all(&[TAG_END])?;
    let counter = out.into_inner().map_err(|e| e.into_error())?;
    report.expanded_len = counter.count;
    Ok(report)
}

impl Run<'_> {
    /// The encoder parameters that reproduce the stream, if the plain tier is on and some do
    /// within the limits.
    fn search_plain<R: Read + Seek>(
        &mut self,
        input: &mut R,
        start: u64,
        len: u64,
        first_block: Option<u64>,
    ) -> Result<Option<Found>> {
        if self.limits.plain_attempts_per_stream == 0 {
            return Ok(None);
        }
        let max_plain = len
            .saturating_mul(self.limits.max_plain_ratio)
            .saturating_add(4096)
            .min(self.budget);
        let depth = self.depth as usize;
        self.search.last = self.last[depth];
        let found = self
            .search
            .find(input, start, len, max_plain, first_block)?;
        self.last[depth] = self.search.last;
        Ok(found)
    }

    /// Writes the plain segment of a stream that `found` reproduces; returns the streams
    /// expanded inside it.
    fn write_plain<R: Read + Seek>(
        &mut self,
        input: &mut R,
        start: u64,
        len: u64,
        found: &Found,
        out: &mut impl Write,
    ) -> Result<u64> {
        let id = zlib::encoder_id();
        out.write_all(&[TAG_PLAIN])?;
        varint::write(out, id.len() as u64)?;
        out.write_all(id.as_bytes())?;
        let p = found.params;
        out.write_all(&[p.level, p.window_bits, p.mem_level, p.strategy])?;
        let before = self.budget;
        if let Some((nested, streams)) = self.nested(input, start, len, found)? {
            out.write_all(&[CONTENT_EXPANDED])?;
            varint::write(out, nested.len() as u64)?;
            out.write_all(&nested)?;
            self.budget = before - nested.len() as u64;
            return Ok(streams);
        }
        // The plain bytes are decompressed again as they are written: a stream can be far
        // larger than memory should hold.
        self.budget = before - found.plain_len;
        out.write_all(&[CONTENT_BYTES])?;
        varint::write(out, found.plain_len)?;
        let written = plain::inflate(input, start, len, |_, chunk| {
            out.write_all(chunk)?;
            Ok(true)
        })?;
        if written != Some(found.plain_len) {
            return Err(Error::Io(io::Error::other(
                "the input changed while it was expanded",
            )));
        }
        Ok(0)
    }

    /// The expanded form of a stream's plain bytes when they are a gzip or zip file that
    /// expands, within the nesting limits, and the streams expanded in it. Only plain bytes
    /// up to [`Limits::max_nested_len`] are considered: they are held in memory.
    fn nested<R: Read + Seek>(
        &mut self,
        input: &mut R,
        start: u64,
        len: u64,
        found: &Found,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        let depth_limit = self.limits.max_nesting.min(MAX_NESTING);
        if self.depth >= depth_limit
            || found.plain_len > self.limits.max_nested_len
            || found.plain_len < 4
        {
            return Ok(None);
        }
        let mut head = Vec::with_capacity(4);
        plain::inflate(input, start, len, |_, chunk| {
            let n = (4 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..n]);
            Ok(head.len() < 4)
        })?;
        if !(head.starts_with(&[0x1f, 0x8b, 8]) || head == b"PK\x03\x04") {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(found.plain_len as usize);
        plain::inflate(input, start, len, |_, chunk| {
            bytes.extend_from_slice(chunk);
            Ok(true)
        })?;
        let before = self.budget;
        let mut nested = Vec::new();
        self.depth += 1;
        let result = expand_in(&mut Cursor::new(&bytes[..]), &mut nested, self);
        self.depth -= 1;
        let report = result?;
        let streams = report.streams + report.nested_streams;
        if report.container == Container::None || streams == 0 || nested.len() as u64 > before {
            self.budget = before;
            return Ok(None);
        }
        Ok(Some((nested, streams)))
    }
}

fn copy_raw<R: Read + Seek>(
    input: &mut R,
    from: u64,
    len: u64,
    out: &mut impl Write,
) -> Result<()> {
    input.seek(SeekFrom::Start(from))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(RAW_SEGMENT);
        out.write_all(&[TAG_RAW])?;
        varint::write(out, n)?;
        let copied = io::copy(&mut input.by_ref().take(n), out)?;
        if copied != n {
            return Err(Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof)));
        }
        left -= n;
    }
    Ok(())
}
