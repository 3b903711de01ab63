//! What a download checks before and while it rebuilds an object: metadata that claims to
//! be DeltaGlider's must be complete, and the output may not grow past its recorded size.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::StoredAs;
use super::get::Resolved;
use crate::error::{Error, Result};
use crate::metadata::UserMetadata;

/// True if any key of `meta` is DeltaGlider's (`dg-…` or `dg_…`): such an object was written
/// by a DeltaGlider tool (or claims to be) and must carry what one writes.
pub(crate) fn has_deltaglider_keys(meta: &UserMetadata) -> bool {
    meta.keys()
        .any(|k| k.starts_with("dg-") || k.starts_with("dg_"))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A metadata value as it may appear in a message: short, control characters escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Refuses to rebuild an object whose DeltaGlider metadata is incomplete or malformed:
/// without a well-formed `dg-file-sha256` (and, for deltas, `dg-ref-sha256`) its bytes could
/// not be verified, and a delta's would be served as if they were the file.
pub(crate) fn require_complete_metadata(bucket: &str, r: &Resolved) -> Result<()> {
    let invalid = |reason: String| Error::InvalidMetadata {
        bucket: bucket.to_string(),
        key: r.stored_key.clone(),
        reason,
    };
    let mut required = vec![("dg-file-sha256", r.meta.file_sha256.as_deref())];
    match r.stored_as {
        StoredAs::Plain | StoredAs::Whole => return Ok(()),
        StoredAs::Direct => {}
        StoredAs::Delta => required.push(("dg-ref-sha256", r.meta.ref_sha256.as_deref())),
    }
    for (field, value) in required {
        match value {
            None => {
                return Err(invalid(format!(
                    "{field} is missing, so its bytes cannot be verified{}",
                    if r.stored_as == StoredAs::Delta {
                        " (a .delta object must carry DeltaGlider metadata)"
                    } else {
                        ""
                    }
                )));
            }
            Some(v) if !is_sha256_hex(v) => {
                return Err(invalid(format!(
                    "{field} '{}' is not 64 hexadecimal digits",
                    shown(v)
                )));
            }
            Some(_) => {}
        }
    }
    let raw = r.info.metadata.as_ref();
    let size_text = raw.and_then(|m| m.get("dg-file-size").or_else(|| m.get("dg_file_size")));
    if let Some(v) = size_text
        && r.meta.file_size.is_none()
        && !v.trim().is_empty()
    {
        return Err(invalid(format!(
            "dg-file-size '{}' is not a number of bytes",
            shown(v)
        )));
    }
    Ok(())
}

/// Counts what a rebuild has written, shared with the task that writes.
#[derive(Debug, Default)]
pub(crate) struct OutputProgress {
    written: AtomicU64,
    exceeded: AtomicBool,
    /// Where the bytes written are reported (the caller's progress display).
    reporter: super::progress::KeyProgress,
}

impl OutputProgress {
    /// Counts as [`Default`] does, and reports each write to `reporter`.
    pub(crate) fn reporting(reporter: super::progress::KeyProgress) -> Self {
        OutputProgress {
            reporter,
            ..Default::default()
        }
    }

    /// Bytes passed on to the output so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// True once a write past the limit was refused.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }
}

/// Passes bytes on until `limit` bytes have been written, then refuses any more: a delta
/// that decodes to more than its recorded size is stopped at that size, not after
/// gigabytes.
pub(crate) struct CappedWriter<W> {
    inner: W,
    limit: Option<u64>,
    written: u64,
    progress: Arc<OutputProgress>,
}

impl<W: Write> CappedWriter<W> {
    /// `limit: None` passes everything (objects with no recorded size).
    pub(crate) fn new(inner: W, limit: Option<u64>, progress: Arc<OutputProgress>) -> Self {
        CappedWriter {
            inner,
            limit,
            written: 0,
            progress,
        }
    }

    /// The inner writer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CappedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit
            && self.written + buf.len() as u64 > limit
        {
            self.progress.exceeded.store(true, Ordering::Relaxed);
            return Err(io::Error::other("more output than the recorded size"));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        self.progress.written.store(self.written, Ordering::Relaxed);
        self.progress.reporter.advance(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_limit_are_refused_and_recorded() {
        let progress = Arc::new(OutputProgress::default());
        let mut w = CappedWriter::new(Vec::new(), Some(10), progress.clone());
        w.write_all(b"0123456789").unwrap();
        assert!(!progress.exceeded());
        assert!(w.write_all(b"x").is_err());
        assert!(progress.exceeded());
        assert_eq!(progress.written(), 10);
        assert_eq!(w.into_inner(), b"0123456789");
    }

    #[test]
    fn no_limit_passes_everything() {
        let progress = Arc::new(OutputProgress::default());
        let mut w = CappedWriter::new(Vec::new(), None, progress.clone());
        w.write_all(&[0; 1000]).unwrap();
        assert_eq!(progress.written(), 1000);
    }
}
