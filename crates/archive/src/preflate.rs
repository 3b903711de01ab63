//! The preflate tier: a deflate stream that no zlib parameters reproduce (GNU gzip's, say)
//! recorded as its plain bytes plus the corrections with which `preflate-rs` recreates
//! exactly that stream from them.
//!
//! `preflate-rs` works on whole streams in memory, so the tier is bounded: a stream is tried
//! only when it and its plain bytes are at most [`MAX_PREFLATE_LEN`], within the file's
//! [`Limits::preflate_bytes_per_file`], and it is kept only when its corrections are at most
//! [`Limits::max_preflate_corrections_pct`] percent of the stream. A stream refused, or out of
//! bounds, stays in token form.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use preflate_rs::{PreflateConfig, preflate_whole_deflate_stream, recreate_whole_deflate_stream};

use crate::limits::{Limits, MAX_PREFLATE_LEN};
use crate::{Error, Input, Result, plain, varint};

/// The name recorded in every preflate segment: the exact version of `preflate-rs` that made
/// the corrections (pinned with `=` in the crate's manifest), since another version may read
/// them otherwise.
const ENCODER_ID: &str = "preflate-rs 0.7.6";

/// The preflate encoder's name as recorded in expanded forms; a reader with another refuses
/// preflate segments as [`Error::Unsupported`].
pub fn encoder_id() -> &'static str {
    ENCODER_ID
}

/// A stream split into its plain bytes and the corrections that recreate it.
pub(crate) struct Split {
    pub(crate) plain: Vec<u8>,
    pub(crate) corrections: Vec<u8>,
}

/// The preflate budget of one file (nested containers included).
#[derive(Debug)]
pub(crate) struct Budget {
    /// Plain bytes preflate may still produce.
    pub(crate) left: u64,
    /// Streams split so far.
    pub(crate) streams: u64,
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Self {
        Budget {
            left: limits.preflate_bytes_per_file,
            streams: 0,
        }
    }

    /// The split of the `len` bytes of deflate at `start`, when preflate recreates them
    /// exactly within the limits; `max_plain` bounds the plain bytes (the expansion's own
    /// budget and ratio). Every attempt spends its plain bytes, whether it succeeds or not.
    pub(crate) fn split<R: Read + Seek>(
        &mut self,
        input: &mut R,
        start: u64,
        len: u64,
        limits: &Limits,
        max_plain: u64,
    ) -> Result<Option<Split>> {
        if self.left == 0 || len > MAX_PREFLATE_LEN {
            return Ok(None);
        }
        // Counting the plain bytes first (zlib inflates at hundreds of MB/s) keeps a stream
        // out of bounds from being held in memory at all.
        let bound = max_plain.min(MAX_PREFLATE_LEN).min(self.left);
        let mut counted = 0u64;
        let plain_len = plain::inflate(input, start, len, |_, chunk| {
            counted += chunk.len() as u64;
            Ok(counted <= bound)
        })?;
        let Some(plain_len) = plain_len else {
            return Ok(None);
        };
        self.left -= plain_len;
        let mut stream = vec![0u8; len as usize];
        input.seek(SeekFrom::Start(start))?;
        input.read_exact(&mut stream)?;
        let config = PreflateConfig {
            plain_text_limit: plain_len as usize,
            ..PreflateConfig::default()
        };
        // A panic inside the dependency on a stream it does not expect is a refusal, not
        // the end of the program.
        let result = catch_unwind(AssertUnwindSafe(|| {
            preflate_whole_deflate_stream(&stream, &config)
        }));
        let Ok(Ok((chunk, plain))) = result else {
            return Ok(None);
        };
        let max_corrections = len
            .saturating_mul(limits.max_preflate_corrections_pct)
            .div_ceil(100);
        if chunk.compressed_size as u64 != len
            || chunk.corrections.len() as u64 > max_corrections
            || plain.text().len() as u64 != plain_len
        {
            return Ok(None);
        }
        self.streams += 1;
        Ok(Some(Split {
            plain: plain.text().to_vec(),
            corrections: chunk.corrections,
        }))
    }
}

/// Writes the head of a preflate segment (after its tag): the encoder's name and the
/// corrections. The content kind, its length and the content follow.
pub(crate) fn write_head(out: &mut impl Write, corrections: &[u8]) -> io::Result<()> {
    varint::write(out, ENCODER_ID.len() as u64)?;
    out.write_all(ENCODER_ID.as_bytes())?;
    varint::write(out, corrections.len() as u64)?;
    out.write_all(corrections)
}

/// Reads `n` bytes of a preflate segment into memory, refusing more than the format allows
/// before allocating for them.
pub(crate) fn read_bounded(r: &mut dyn Read, n: u64) -> Result<Vec<u8>> {
    if n > MAX_PREFLATE_LEN {
        return Err(invalid("a preflate segment longer than any writer makes"));
    }
    let mut bytes = Vec::new();
    r.take(n).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != n {
        return Err(Error::Truncated(Input::Expanded));
    }
    Ok(bytes)
}

/// The deflate stream that `corrections` recreate from `plain`.
pub(crate) fn recreate(plain: &[u8], corrections: &[u8]) -> Result<Vec<u8>> {
    match catch_unwind(|| recreate_whole_deflate_stream(plain, corrections)) {
        Ok(Ok(stream)) => Ok(stream),
        _ => Err(invalid(
            "preflate corrections that do not recreate a stream",
        )),
    }
}

/// A writer into memory that refuses to hold more than [`MAX_PREFLATE_LEN`] bytes: the plain
/// bytes of a preflate segment restored from their own expanded form.
pub(crate) struct Bounded(pub(crate) Vec<u8>);

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.0.len() + buf.len()) as u64 > MAX_PREFLATE_LEN {
            return Err(io::Error::other(
                "a preflate segment's plain bytes longer than any writer makes",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    use super::*;

    #[test]
    fn the_encoder_id_names_the_pinned_version() {
        let manifest = include_str!("../Cargo.toml");
        let version = ENCODER_ID.strip_prefix("preflate-rs ").unwrap();
        assert!(
            manifest.contains(&format!("preflate-rs = \"={version}\"")),
            "Cargo.toml pins preflate-rs to {version}"
        );
    }
}
