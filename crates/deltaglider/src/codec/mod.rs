//! The delta-codec seam: encode a target against a reference into VCDIFF, and back.
//!
//! Codecs take open, already-verified file handles, never paths: the reference a codec reads
//! is exactly the file whose hash the caller checked.

pub(crate) mod native;
pub(crate) mod vcdiff_header;
pub(crate) mod xdelta3;

pub use native::NativeCodec;
pub use xdelta3::Xdelta3Codec;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};
use vcdiff_header::VcdiffHeader;

/// A VCDIFF delta encoder/decoder.
pub trait DeltaCodec: Send + Sync + std::fmt::Debug {
    /// Short name for messages and metadata.
    fn name(&self) -> &str;

    /// Writes a delta that turns `reference` into `target`. Both handles are read from
    /// their start.
    fn encode(&self, reference: &File, target: &File, out: &mut dyn Write) -> Result<()>;

    /// [`encode`](Self::encode), calling `progress` with how many bytes of the target are
    /// encoded so far, as the encoder gets through them. Codecs that cannot tell report
    /// nothing until the end.
    fn encode_reporting(
        &self,
        reference: &File,
        target: &File,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let _ = progress;
        self.encode(reference, target, out)
    }

    /// Applies `delta` to `reference` and writes the reconstructed bytes to `out`.
    fn decode(&self, reference: &File, delta: &File, out: &mut dyn Write) -> Result<()>;

    /// Informational command line recorded in `dg-delta-cmd`.
    fn command_description(&self, target_name: &str) -> String {
        format!("xdelta3 -e -9 -s reference.bin {target_name} {target_name}.delta")
    }
}

/// Reads the VCDIFF file header at the start of `delta` (with `pread`: the handle's
/// position is left alone). `operation` names the step in the error.
pub(crate) fn read_header(delta: &File, operation: &str) -> Result<VcdiffHeader> {
    // Large enough for any application header the parser accepts.
    let mut head = vec![0u8; 128 * 1024];
    let n = delta
        .read_at(&mut head, 0)
        .map_err(|e| Error::io("cannot read the delta", e))?;
    VcdiffHeader::parse(&head[..n]).map_err(|e| Error::Codec {
        operation: operation.into(),
        detail: e.to_string(),
    })
}

/// The program that must recompress what `delta` rebuilds (a delta xdelta3 made of
/// externally decompressed data), or `None`; for the error that says why a rebuilt file
/// does not match. A malformed header is the decoder's to report, so it gives `None` here.
pub(crate) fn recompressed_with(delta: &File) -> Option<&'static str> {
    use native::external::Compressor;
    read_header(delta, "decode")
        .ok()?
        .external_compression()
        .target
        .and_then(|ident| Compressor::from_ident(ident).ok())
        .map(Compressor::name)
}
