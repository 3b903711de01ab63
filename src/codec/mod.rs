//! The delta-codec seam: encode a target against a reference into VCDIFF, and back.
//!
//! Codecs take open, already-verified file handles, never paths: the reference a codec reads
//! is exactly the file whose hash the caller checked.

pub mod native;
pub mod vcdiff_header;
pub mod xdelta3;

use std::fs::File;
use std::io::Write;

use crate::error::Result;

/// A VCDIFF delta encoder/decoder.
pub trait DeltaCodec: Send + Sync + std::fmt::Debug {
    /// Short name for messages and metadata.
    fn name(&self) -> &str;

    /// Writes a delta that turns `reference` into `target`. Both handles are read from
    /// their start.
    fn encode(&self, reference: &File, target: &File, out: &mut dyn Write) -> Result<()>;

    /// Applies `delta` to `reference` and writes the reconstructed bytes to `out`.
    fn decode(&self, reference: &File, delta: &File, out: &mut dyn Write) -> Result<()>;

    /// Informational command line recorded in `dg-delta-cmd`.
    fn command_description(&self, target_name: &str) -> String {
        format!("xdelta3 -e -9 -s reference.bin {target_name} {target_name}.delta")
    }
}
