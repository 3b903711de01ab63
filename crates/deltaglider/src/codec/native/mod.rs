//! A native VCDIFF codec compatible with xdelta3 3.0.x.
//!
//! - [`decoder`]: RFC 3284 plus xdelta3's LZMA secondary compression, adler32 window
//!   checksums and application header; streaming, memory bounded by the window sizes.
//! - [`encoder`]: deltas `xdelta3 -d` decodes, matching anywhere in the reference through
//!   a sampled index, windows encoded in parallel; memory bounded whatever the reference's
//!   size: the index within [`matcher::MAX_INDEX_BYTES`] (sparser sampling of larger
//!   references) and mapped pages released as the encoder goes ([`Mapped::release_resident`]).
//!
//! What the encoder writes: RFC 3284 windows of at most 8 MiB (xdelta3 refuses more than
//! 16 MiB), each with one `VCD_SOURCE` segment spanning its copies, the default code table,
//! adler32 checksums and no application header. With secondary compression (the default)
//! the header names xdelta3's LZMA; instruction and address sections go through one
//! sync-flushed `.xz` stream each, as xdelta3 does, while the data section's stream is a
//! sequence of independent 1 MiB LZMA2 blocks compressed in parallel (an ordinary
//! multi-block `.xz` stream to the decoder; each window's bytes end on a chunk boundary).
//!
//! Deltas xdelta3 made without `-D` from gzip/xz/bzip2 files (the application header
//! names an external compressor) are decoded the way xdelta3 decodes them, through the same
//! external programs ([`external`]); the caller's SHA-256 check says whether that gave back
//! the upload.
//!
//! [`decode_slices`] is the in-memory entry point used for fuzzing.

pub(crate) mod address_cache;
pub(crate) mod adler32;
pub(crate) mod code_table;
pub(crate) mod decoder;
pub(crate) mod encoder;
pub(crate) mod external;
pub(crate) mod lzma;
pub(crate) mod matcher;
pub(crate) mod varint;

#[cfg(test)]
mod proptests;

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;

pub use decoder::{DecodeOptions, decode, decode_slices, decode_slices_limited};
pub use encoder::{EncodeOptions, encode, encode_with_progress};

use super::DeltaCodec;
use crate::error::{Error, Result};

/// Why the native codec failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The input does not start with the VCDIFF magic `D6 C3 C4`.
    #[error("not a VCDIFF delta (bad magic)")]
    NotVcdiff,
    /// Valid VCDIFF using a feature this codec does not implement (version, code table,
    /// DJW/FGK secondary compression, ...).
    #[error("unsupported VCDIFF feature: {0}")]
    Unsupported(String),
    /// The delta is malformed or truncated.
    #[error("corrupt VCDIFF delta: {0}")]
    Corrupt(String),
    /// A configured size limit (window, output, application header, ...) would be exceeded.
    #[error("VCDIFF limit exceeded: {0}")]
    Limit(String),
    /// A window's decoded target failed its Adler-32 checksum.
    #[error("adler32 mismatch in window {window}: expected {expected:08x}, got {actual:08x}")]
    Checksum {
        /// 0-based index of the failing window.
        window: u64,
        /// Checksum stored in the delta.
        expected: u32,
        /// Checksum of the decoded bytes.
        actual: u32,
    },
    /// Reading the inputs or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Asks for transparent huge pages behind a large buffer (the decoder's windows, the
/// encoder's index): fewer page faults when it is first filled and fewer TLB misses when it
/// is read at random. Only the whole 2 MiB pages inside the allocation are advised.
pub(crate) fn prefer_huge_pages<T>(buf: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = buf.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = buf.as_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = (start + bytes) & !(HUGE - 1);
        if end > aligned {
            // SAFETY: the range lies inside the buffer's own allocation; MADV_HUGEPAGE only
            // changes how the kernel backs it, never its contents.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

/// A read-only view of a whole file: an mmap, or nothing for an empty file.
pub struct Mapped {
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    /// Maps `file` read-only. The caller must not let the file change while mapped.
    pub fn new(file: &File) -> io::Result<Mapped> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(Mapped { map: None });
        }
        // SAFETY: the codec's files are verified, private copies that nothing modifies
        // while they are being read.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped { map: Some(map) })
    }

    /// The mapped bytes; empty for an empty file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Drops the mapping's pages from this process's resident set. They stay in the page
    /// cache and are faulted in again from it on the next access, so a codec that streams
    /// over a large file keeps a small footprint.
    ///
    /// Mappings of at most [`RELEASE_ABOVE`] bytes are left alone: their pages are bounded
    /// by that size, while dropping them costs page faults and TLB shootdowns on every core.
    pub fn release_resident(&self) {
        if let Some(map) = self.map.as_ref().filter(|m| m.len() as u64 > RELEASE_ABOVE) {
            // SAFETY: a shared, read-only mapping of a file nothing modifies (see `new`):
            // after MADV_DONTNEED its pages read back the same bytes from the file, so
            // borrowed slices keep seeing the same contents.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// Mappings larger than this have their pages dropped by [`Mapped::release_resident`]:
/// the most of a mapped file the codec keeps resident between two releases.
pub const RELEASE_ABOVE: u64 = 64 << 20;

/// Output bytes between two [`Mapped::release_resident`] calls while decoding.
const DECODE_RELEASE_EVERY: u64 = 64 << 20;

/// Passes writes through, releasing the reference's pages every
/// [`DECODE_RELEASE_EVERY`] bytes.
struct ReleasingWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    reference: &'a Mapped,
    since_release: u64,
}

impl<W: Write + ?Sized> Write for ReleasingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.since_release += n as u64;
        if self.since_release >= DECODE_RELEASE_EVERY {
            self.reference.release_resident();
            self.since_release = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a file from offset 0 with `pread`, leaving the handle's position alone.
struct PositionalReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The native codec behind the [`DeltaCodec`] seam.
#[derive(Debug, Clone, Default)]
pub struct NativeCodec {
    /// Options used by [`DeltaCodec::encode`].
    pub encode_options: EncodeOptions,
    /// Options used by [`DeltaCodec::decode`].
    pub decode_options: DecodeOptions,
}

fn codec_error(operation: &str, e: NativeError) -> Error {
    match e {
        NativeError::Io(io) => Error::io(format!("native codec {operation}"), io),
        other => Error::Codec {
            operation: operation.into(),
            detail: other.to_string(),
        },
    }
}

impl DeltaCodec for NativeCodec {
    fn name(&self) -> &str {
        "native-vcdiff"
    }

    fn encode(&self, reference: &File, target: &File, out: &mut dyn Write) -> Result<()> {
        self.encode_reporting(reference, target, out, &mut |_| {})
    }

    fn encode_reporting(
        &self,
        reference: &File,
        target: &File,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let r = Mapped::new(reference).map_err(|e| Error::io("cannot map the reference", e))?;
        let t = Mapped::new(target).map_err(|e| Error::io("cannot map the target", e))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, out);
        let release = || {
            r.release_resident();
            t.release_resident();
        };
        encode_with_progress(
            r.bytes(),
            t.bytes(),
            &mut w,
            &self.encode_options,
            &release,
            progress,
        )
        .map_err(|e| codec_error("encode", e))?;
        w.flush()
            .map_err(|e| Error::io("cannot write the encode output", e))?;
        Ok(())
    }

    fn decode(&self, reference: &File, delta: &File, out: &mut dyn Write) -> Result<()> {
        let external = super::read_header(delta, "decode")?.external_compression();
        let source = external
            .source
            .map(|ident| {
                let c = external::Compressor::from_ident(ident)?;
                external::decompress_to_tempfile(c, reference)
            })
            .transpose()
            .map_err(|e| codec_error("decode", e))?;
        let r = Mapped::new(source.as_ref().unwrap_or(reference))
            .map_err(|e| Error::io("cannot map the reference", e))?;
        let reader = BufReader::with_capacity(
            1 << 20,
            PositionalReader {
                file: delta,
                pos: 0,
            },
        );
        let options = DecodeOptions {
            reject_external_compression: false,
            ..self.decode_options.clone()
        };
        // The reference's pages are released as decoded bytes stream out (before any
        // recompression, whose output is a fraction of them).
        let decode_releasing = |reader, decoded: &mut dyn Write| {
            let mut decoded = ReleasingWriter {
                inner: decoded,
                reference: &r,
                since_release: 0,
            };
            decode(r.bytes(), reader, &mut decoded, &options).map(drop)
        };
        let decoded = match external.target {
            None => decode_releasing(reader, out),
            Some(ident) => external::Compressor::from_ident(ident).and_then(|c| {
                external::recompress(c, out, |plain| decode_releasing(reader, plain))
            }),
        };
        decoded.map_err(|e| codec_error("decode", e))
    }

    fn command_description(&self, target_name: &str) -> String {
        format!("deltaglider native VCDIFF -s reference.bin {target_name} {target_name}.delta")
    }
}
