//! Restoring the original bytes from an expanded form.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::counter::Counter;
use crate::expand::{
    CONTENT_BYTES, CONTENT_EXPANDED, MAGIC, TAG_END, TAG_PLAIN, TAG_RAW, TAG_TOKENS,
};
use crate::limits::MAX_NESTING;
use crate::plain::DeflateWriter;
use crate::window::{MAX_HELD_SEGMENT, Parallelism, Window, with_window};
use crate::zlib::{self, Params};
use crate::{Error, Input, Result, deflate, varint};

/// An encoder's name is at most this long; a longer one is damage, not a name.
const MAX_ENCODER_ID: u64 = 64;

/// Writes the original bytes of an expanded form to `out`; returns their length. Plain
/// segments are compressed on one thread per core ([`Parallelism::default`]).
pub fn restore<R: Read, W: Write>(expanded: R, out: W) -> Result<u64> {
    restore_with(expanded, out, &Parallelism::default())
}

/// [`restore`], spreading the work as `parallelism` says; the bytes written are the same
/// whatever it says.
pub fn restore_with<R: Read, W: Write>(
    expanded: R,
    out: W,
    parallelism: &Parallelism,
) -> Result<u64> {
    let mut r = BufReader::with_capacity(1 << 16, expanded);
    let mut out = Counter::new(io::BufWriter::with_capacity(1 << 16, out));
    if parallelism.is_parallel() {
        with_window(parallelism, |window| restore_top(&mut r, &mut out, window))?;
    } else {
        restore_in(&mut r, &mut out, 0)?;
    }
    out.flush()?;
    Ok(out.count)
}

fn read_magic(r: &mut dyn BufRead) -> Result<()> {
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
    Ok(())
}

fn check_end(r: &mut dyn BufRead) -> Result<()> {
    if !r.fill_buf()?.is_empty() {
        return Err(invalid("bytes after its end"));
    }
    Ok(())
}

/// Restores one expanded form, which must end where `r` does; `depth` is how many plain
/// segments it lies inside.
fn restore_in(mut r: &mut dyn BufRead, out: &mut dyn Write, depth: u32) -> Result<()> {
    read_magic(r)?;
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
            TAG_PLAIN => {
                let header = plain_header(r)?;
                restore_plain(&header, &mut r.take(header.len), out, depth)?;
            }
            _ => return Err(invalid("an unknown segment tag")),
        }
    }
    check_end(r)
}

/// [`restore_in`] at the top level, with the plain segments (and the raw runs between them)
/// handed to `window`: what is too long to hold is written in place once the window ahead
/// of it is.
fn restore_top(mut r: &mut dyn BufRead, out: &mut dyn Write, window: &mut Window) -> Result<()> {
    read_magic(r)?;
    loop {
        match varint::byte(&mut r).map_err(relabel)? {
            TAG_END => break,
            TAG_RAW => {
                let n = varint::read(&mut r).map_err(relabel)?;
                if n <= MAX_HELD_SEGMENT {
                    window.ready(read_held(r, n)?, out)?;
                } else {
                    window.drain(out)?;
                    let copied = io::copy(&mut r.take(n), out)?;
                    if copied != n {
                        return Err(Error::Truncated(Input::Expanded));
                    }
                }
            }
            TAG_TOKENS => {
                window.drain(out)?;
                deflate::rebuild(&mut r, &mut *out)?;
            }
            TAG_PLAIN => {
                let header = plain_header(r)?;
                if header.len <= MAX_HELD_SEGMENT {
                    let content = read_held(r, header.len)?;
                    let task = Box::new(move || {
                        let mut compressed = Vec::with_capacity(content.len() / 4);
                        restore_plain(&header, &mut &content[..], &mut compressed, 0)?;
                        Ok(compressed)
                    });
                    window.spawn(task, out)?;
                } else {
                    window.drain(out)?;
                    restore_plain(&header, &mut r.take(header.len), out, 0)?;
                }
            }
            _ => return Err(invalid("an unknown segment tag")),
        }
    }
    window.drain(out)?;
    check_end(r)
}

/// The next `n` bytes of `r`, which must have them.
fn read_held(r: &mut dyn BufRead, n: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(n as usize);
    r.take(n).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != n {
        return Err(Error::Truncated(Input::Expanded));
    }
    Ok(bytes)
}

/// A plain segment up to its content: the encoder and what its `len` bytes of content are.
struct PlainHeader {
    params: Params,
    content: u8,
    len: u64,
}

fn plain_header(mut r: &mut dyn BufRead) -> Result<PlainHeader> {
    let id_len = varint::read(&mut r).map_err(relabel)?;
    if id_len > MAX_ENCODER_ID {
        return Err(invalid("an encoder name longer than any"));
    }
    let mut id = vec![0u8; id_len as usize];
    r.read_exact(&mut id)
        .map_err(|_| Error::Truncated(Input::Expanded))?;
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
    if p[4] != CONTENT_BYTES && p[4] != CONTENT_EXPANDED {
        return Err(invalid("an unknown kind of plain content"));
    }
    let len = varint::read(&mut r).map_err(relabel)?;
    Ok(PlainHeader {
        params,
        content: p[4],
        len,
    })
}

/// A deflate stream recompressed from its plain bytes (or from their own expanded form),
/// the content being all of `content`.
fn restore_plain(
    header: &PlainHeader,
    content: &mut dyn BufRead,
    out: &mut dyn Write,
    depth: u32,
) -> Result<()> {
    let mut encoder = DeflateWriter::new(header.params, out)?;
    if header.content == CONTENT_EXPANDED {
        if depth >= MAX_NESTING {
            return Err(invalid("containers nested deeper than any reader follows"));
        }
        restore_in(content, &mut encoder, depth + 1)?;
    } else {
        let copied = io::copy(content, &mut encoder)?;
        if copied != header.len {
            return Err(Error::Truncated(Input::Expanded));
        }
    }
    encoder.finish()?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;
    use crate::zlib::Deflater;
    use crate::{Limits, expand};

    /// A gzip member around `data` compressed by the bundled zlib at `level`.
    fn member(data: &[u8], level: u8) -> Vec<u8> {
        let params = Params {
            level,
            window_bits: 15,
            mem_level: 8,
            strategy: 0,
        };
        let mut d = Deflater::new(params).unwrap();
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let mut buf = vec![0u8; 1 << 16];
        let mut rest = data;
        loop {
            let (r, w, done) = d.compress(rest, &mut buf, true);
            rest = &rest[r..];
            out.extend_from_slice(&buf[..w]);
            if done {
                break;
            }
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// A gzip file of several members, some holding a gzip file themselves (nested plain
    /// segments), some made by levels the search does not try first.
    fn archive() -> impl Strategy<Value = Vec<u8>> {
        let part = (
            proptest::collection::vec(any::<u8>(), 0..64),
            1usize..400,
            1u8..=9,
            any::<bool>(),
        );
        proptest::collection::vec(part, 1..12).prop_map(|parts| {
            let mut file = Vec::new();
            for (seed, repeat, level, nested) in parts {
                let data: Vec<u8> = seed
                    .iter()
                    .cycle()
                    .take(seed.len() * repeat)
                    .copied()
                    .collect();
                if nested {
                    file.extend(member(&member(&data, level), 6));
                } else {
                    file.extend(member(&data, level));
                }
            }
            file
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn restore_is_byte_exact_with_any_window(
            file in archive(), workers in 0usize..4, window in 0usize..6,
        ) {
            let mut expanded = Vec::new();
            let report = expand(Cursor::new(&file[..]), &mut expanded, &Limits::default()).unwrap();
            prop_assert!(report.plain_streams > 0);
            let parallelism = Parallelism::default().workers(workers).window(window);
            let mut back = Vec::new();
            let n = restore_with(&expanded[..], &mut back, &parallelism).unwrap();
            prop_assert_eq!(n as usize, back.len());
            prop_assert!(back == file, "restored bytes differ");
            // A cut form fails in every setting, never hangs or writes past the cut's damage.
            let cut = &expanded[..expanded.len() / 2];
            prop_assert!(restore_with(cut, &mut Vec::new(), &parallelism).is_err());
        }
    }

    #[test]
    fn a_segment_too_long_to_hold_is_restored_in_place_between_held_ones() {
        let big: Vec<u8> = (0..MAX_HELD_SEGMENT as usize + 1000)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        let mut file = member(b"before", 6);
        file.extend(member(&big, 1));
        file.extend(member(b"after", 9));
        let mut expanded = Vec::new();
        let report = expand(Cursor::new(&file[..]), &mut expanded, &Limits::default()).unwrap();
        assert_eq!(report.plain_streams, 3);
        let mut back = Vec::new();
        restore_with(
            &expanded[..],
            &mut back,
            &Parallelism::default().workers(2).window(2),
        )
        .unwrap();
        assert!(back == file);
    }
}
