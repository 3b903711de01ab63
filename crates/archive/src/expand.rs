//! The expanded form: writing it from a scan of the input, and restoring the input from it.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use crate::counter::Counter;
use crate::scan::{Container, Piece, scan};
use crate::{Error, Input, Result, deflate, varint};

const MAGIC: &[u8; 4] = b"DGX\x01";
const TAG_END: u8 = 0;
const TAG_RAW: u8 = 1;
const TAG_TOKENS: u8 = 2;
/// Raw bytes are written in segments of at most this much, so that nothing needs the whole
/// length of a raw run before writing it.
const RAW_SEGMENT: u64 = 1 << 20;

/// Bounds on what expansion may produce; past them a stream stays compressed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// A stream's token form may be at most this many times its compressed length (plus
    /// 4 KiB); real encoders give 1.2-2x, a crafted stream up to about 30x.
    pub max_stream_ratio: u64,
    /// The whole expanded form may be at most this many bytes.
    pub max_expanded_len: u64,
    /// Streams expanded at most (each costs a pass over its bytes).
    pub max_streams: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stream_ratio: 8,
            max_expanded_len: 16 << 30,
            max_streams: 1_000_000,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_stream_ratio`].
    pub fn max_stream_ratio(mut self, ratio: u64) -> Self {
        self.max_stream_ratio = ratio;
        self
    }
    /// Sets [`Limits::max_expanded_len`].
    pub fn max_expanded_len(mut self, len: u64) -> Self {
        self.max_expanded_len = len;
        self
    }
    /// Sets [`Limits::max_streams`].
    pub fn max_streams(mut self, n: u64) -> Self {
        self.max_streams = n;
        self
    }
}

/// What [`expand`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expansion {
    /// What the input was found to be.
    pub container: Container,
    /// Length of the input.
    pub input_len: u64,
    /// Length of the expanded form written.
    pub expanded_len: u64,
    /// Deflate streams written in token form, and their compressed bytes.
    pub streams: u64,
    /// Compressed bytes of those streams.
    pub stream_bytes: u64,
    /// Streams left compressed, and why the first one was.
    pub streams_left: u64,
    /// Why the first stream left compressed was.
    pub first_left_reason: Option<String>,
}

/// Writes the expanded form of `input` (read from its start) to `out`.
pub fn expand<R: Read + Seek, W: Write>(
    mut input: R,
    out: W,
    limits: &Limits,
) -> Result<Expansion> {
    let input_len = input.seek(SeekFrom::End(0))?;
    let mut out = io::BufWriter::with_capacity(1 << 16, Counter::new(out));
    out.write_all(MAGIC)?;
    let mut report = Expansion {
        input_len,
        ..Default::default()
    };
    let mut budget = limits.max_expanded_len;
    let mut raw_from = 0u64;
    let pieces = scan(&mut input, input_len)?;
    report.container = pieces.container;
    for piece in pieces.streams {
        let (start, len, tokens_len) = match piece {
            Piece::Stream {
                start,
                len,
                tokens_len,
            } => (start, len, tokens_len),
            Piece::Left { reason } => {
                report.streams_left += 1;
                report.first_left_reason.get_or_insert(reason);
                continue;
            }
        };
        let why_not = if report.streams >= limits.max_streams {
            Some("more deflate streams than the limit")
        } else if tokens_len
            > len
                .saturating_mul(limits.max_stream_ratio)
                .saturating_add(4096)
        {
            Some("a token form out of proportion to its stream")
        } else if tokens_len > budget {
            Some("the expansion budget is spent")
        } else {
            None
        };
        if let Some(reason) = why_not {
            report.streams_left += 1;
            report.first_left_reason.get_or_insert(reason.to_string());
            continue;
        }
        budget -= tokens_len;
        copy_raw(&mut input, raw_from, start - raw_from, &mut out)?;
        out.write_all(&[TAG_TOKENS])?;
        input.seek(SeekFrom::Start(start))?;
        deflate::split(&mut input, &mut out)?;
        raw_from = start + len;
        report.streams += 1;
        report.stream_bytes += len;
    }
    copy_raw(&mut input, raw_from, input_len - raw_from, &mut out)?;
    out.write_all(&[TAG_END])?;
    let counter = out.into_inner().map_err(|e| e.into_error())?;
    report.expanded_len = counter.count;
    Ok(report)
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

/// Writes the original bytes of an expanded form to `out`; returns their length.
pub fn restore<R: Read, W: Write>(expanded: R, out: W) -> Result<u64> {
    let mut r = BufReader::with_capacity(1 << 16, expanded);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| Error::Truncated(Input::Expanded))?;
    if &magic[..3] != b"DGX" {
        return Err(invalid("it does not start with DGX"));
    }
    if magic[3] != MAGIC[3] {
        return Err(Error::Unsupported(
            "an expanded form of a newer version than this reader's (1)",
        ));
    }
    let mut out = Counter::new(io::BufWriter::with_capacity(1 << 16, out));
    loop {
        match varint::byte(&mut r).map_err(relabel)? {
            TAG_END => break,
            TAG_RAW => {
                let n = varint::read(&mut r).map_err(relabel)?;
                let copied = io::copy(&mut (&mut r).take(n), &mut out)?;
                if copied != n {
                    return Err(Error::Truncated(Input::Expanded));
                }
            }
            TAG_TOKENS => {
                deflate::rebuild(&mut r, &mut out)?;
            }
            _ => return Err(invalid("an unknown segment tag")),
        }
    }
    if !r.fill_buf()?.is_empty() {
        return Err(invalid("bytes after its end"));
    }
    out.flush()?;
    Ok(out.count)
}

/// Varint and byte errors of the expanded form's own framing name it, not the token form.
fn relabel(e: Error) -> Error {
    match e {
        Error::Truncated(_) => Error::Truncated(Input::Expanded),
        Error::Invalid { reason, .. } => invalid(reason),
        e => e,
    }
}

fn invalid(reason: &'static str) -> Error {
    Error::Invalid {
        input: Input::Expanded,
        reason,
    }
}
