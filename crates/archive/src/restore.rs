//! Restoring the original bytes from an expanded form.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::counter::Counter;
use crate::expand::{
    CONTENT_BYTES, CONTENT_EXPANDED, MAGIC, TAG_END, TAG_PLAIN, TAG_PREFLATE, TAG_RAW, TAG_TOKENS,
};
use crate::limits::MAX_NESTING;
use crate::plain::DeflateWriter;
use crate::preflate;
use crate::zlib::{self, Params};
use crate::{Error, Input, Result, deflate, varint};

/// An encoder's name is at most this long; a longer one is damage, not a name.
const MAX_ENCODER_ID: u64 = 64;

/// Writes the original bytes of an expanded form to `out`; returns their length.
pub fn restore<R: Read, W: Write>(expanded: R, out: W) -> Result<u64> {
    let mut r = BufReader::with_capacity(1 << 16, expanded);
    let mut out = Counter::new(io::BufWriter::with_capacity(1 << 16, out));
    restore_in(&mut r, &mut out, 0)?;
    out.flush()?;
    Ok(out.count)
}

/// Restores one expanded form, which must end where `r` does; `depth` is how many plain
/// segments it lies inside.
fn restore_in(mut r: &mut dyn BufRead, out: &mut dyn Write, depth: u32) -> Result<()> {
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
    loop {
        match varint::byte(&mut r).map_err(relabel)? {
            TAG_END => break,
            TAG_RAW => {
                let n = varint::read(&mut r).map_err(relabel)?;
                let copied = io::copy(&mut r.take(n), out)?;
                if copied != n {
                    return Err(Error::Truncated(Input::Expanded));
                }
            }
            TAG_TOKENS => {
                deflate::rebuild(&mut r, &mut *out)?;
            }
            TAG_PLAIN => plain_segment(r, out, depth)?,
            TAG_PREFLATE => preflate_segment(r, out, depth)?,
            _ => return Err(invalid("an unknown segment tag")),
        }
    }
    if !r.fill_buf()?.is_empty() {
        return Err(invalid("bytes after its end"));
    }
    Ok(())
}

/// A deflate stream recompressed from its plain bytes (or from their own expanded form).
fn plain_segment(mut r: &mut dyn BufRead, out: &mut dyn Write, depth: u32) -> Result<()> {
    let id = encoder_name(r)?;
    if id != zlib::encoder_id().as_bytes() {
        return Err(Error::Unsupported(
            "a stream made by another deflate encoder than this build's zlib",
        ));
    }
    let mut p = [0u8; 5];
    r.read_exact(&mut p)
        .map_err(|_| Error::Truncated(Input::Expanded))?;
    let params = Params {
        level: p[0],
        window_bits: p[1],
        mem_level: p[2],
        strategy: p[3],
    };
    if !params.valid() {
        return Err(invalid("encoder parameters out of range"));
    }
    let n = varint::read(&mut r).map_err(relabel)?;
    let mut encoder = DeflateWriter::new(params, out)?;
    match p[4] {
        CONTENT_BYTES => {
            let copied = io::copy(&mut r.take(n), &mut encoder)?;
            if copied != n {
                return Err(Error::Truncated(Input::Expanded));
            }
        }
        CONTENT_EXPANDED => {
            if depth >= MAX_NESTING {
                return Err(invalid("containers nested deeper than any reader follows"));
            }
            restore_in(&mut r.take(n), &mut encoder, depth + 1)?;
        }
        _ => return Err(invalid("an unknown kind of plain content")),
    }
    encoder.finish()?;
    Ok(())
}

/// A deflate stream recreated by preflate from its plain bytes and corrections.
fn preflate_segment(mut r: &mut dyn BufRead, out: &mut dyn Write, depth: u32) -> Result<()> {
    let id = encoder_name(r)?;
    if id != preflate::encoder_id().as_bytes() {
        return Err(Error::Unsupported(
            "a stream recorded by another preflate version than this build's",
        ));
    }
    let n = varint::read(&mut r).map_err(relabel)?;
    let corrections = preflate::read_bounded(r, n)?;
    let content = varint::byte(&mut r).map_err(relabel)?;
    let n = varint::read(&mut r).map_err(relabel)?;
    let plain = match content {
        CONTENT_BYTES => preflate::read_bounded(r, n)?,
        CONTENT_EXPANDED => {
            if depth >= MAX_NESTING {
                return Err(invalid("containers nested deeper than any reader follows"));
            }
            let mut plain = preflate::Bounded(Vec::new());
            restore_in(&mut r.take(n), &mut plain, depth + 1)?;
            plain.0
        }
        _ => return Err(invalid("an unknown kind of plain content")),
    };
    out.write_all(&preflate::recreate(&plain, &corrections)?)?;
    Ok(())
}

/// The encoder name that starts a plain or preflate segment.
fn encoder_name(mut r: &mut dyn BufRead) -> Result<Vec<u8>> {
    let id_len = varint::read(&mut r).map_err(relabel)?;
    if id_len > MAX_ENCODER_ID {
        return Err(invalid("an encoder name longer than any"));
    }
    let mut id = vec![0u8; id_len as usize];
    r.read_exact(&mut id)
        .map_err(|_| Error::Truncated(Input::Expanded))?;
    Ok(id)
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
