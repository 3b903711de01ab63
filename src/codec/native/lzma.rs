//! xdelta3's LZMA secondary compression (compressor id 2).
//!
//! Each of the three section kinds (data, instructions, addresses) has one `.xz` stream
//! (LZMA2, no integrity check) that lives for the whole delta. A window whose section is
//! compressed carries `varint(uncompressed length)` followed by the bytes the encoder
//! produced for that section's input and an `LZMA_SYNC_FLUSH`; the decoder feeds exactly
//! those bytes to its long-lived stream and takes exactly that many bytes out.

use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

use super::NativeError;

/// Decoder memory limit per stream: xdelta3 `-9` uses a 64 MiB dictionary; a hostile
/// header asking for more is refused instead of allocated.
const DECODER_MEMLIMIT: u64 = 160 << 20;
/// Output is grown in steps of at most this much, so a lying length costs nothing.
const GROW_STEP: usize = 1 << 20;

/// One long-lived decoder stream, created on first use.
#[derive(Default)]
pub struct SectionDecoder {
    stream: Option<Stream>,
}

impl SectionDecoder {
    /// Decompresses one window's section: `input` must yield exactly `out_len` bytes and be
    /// consumed entirely.
    pub fn decode(
        &mut self,
        input: &[u8],
        out_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NativeError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            slot => slot.insert(
                Stream::new_stream_decoder(DECODER_MEMLIMIT, 0)
                    .map_err(|e| NativeError::Corrupt(format!("lzma decoder: {e:?}")))?,
            ),
        };
        out.clear();
        let mut consumed = 0usize;
        while out.len() < out_len {
            out.reserve_exact((out_len - out.len()).min(GROW_STEP));
            let before_out = out.len();
            let before_in = stream.total_in();
            let res = stream.process_vec(&input[consumed..], out, Action::Run);
            consumed += (stream.total_in() - before_in) as usize;
            if out.len() > out_len {
                return Err(NativeError::Corrupt(
                    "lzma section: more output than announced".into(),
                ));
            }
            match res {
                Ok(Status::Ok) | Ok(Status::GetCheck) => {}
                Ok(Status::StreamEnd) => {
                    if out.len() < out_len {
                        return Err(NativeError::Corrupt(
                            "lzma section: stream ended early".into(),
                        ));
                    }
                }
                Ok(Status::MemNeeded) => {
                    return Err(NativeError::Limit(
                        "lzma section needs more memory than allowed".into(),
                    ));
                }
                Err(e) => return Err(NativeError::Corrupt(format!("lzma section: {e:?}"))),
            }
            if out.len() == before_out && stream.total_in() == before_in {
                return Err(NativeError::Corrupt("lzma section: truncated".into()));
            }
        }
        // Let the decoder swallow what follows the last output byte (chunk ends).
        while consumed < input.len() {
            let before_in = stream.total_in();
            let mut empty = [0u8; 0];
            let r = stream.process(&input[consumed..], &mut empty, Action::Run);
            consumed += (stream.total_in() - before_in) as usize;
            if r.is_err() || stream.total_in() == before_in {
                break;
            }
        }
        if consumed != input.len() {
            return Err(NativeError::Corrupt(
                "lzma section: unused input after the announced length".into(),
            ));
        }
        Ok(())
    }
}

/// One long-lived encoder stream.
pub struct SectionEncoder {
    stream: Stream,
}

impl SectionEncoder {
    /// An `.xz` LZMA2 stream at `preset` (0-9) with no integrity check, as xdelta3 makes.
    pub fn new(preset: u32) -> Result<SectionEncoder, NativeError> {
        let opts = LzmaOptions::new_preset(preset)
            .map_err(|e| NativeError::Unsupported(format!("lzma preset {preset}: {e:?}")))?;
        let mut filters = Filters::new();
        filters.lzma2(&opts);
        let stream = Stream::new_stream_encoder(&filters, Check::None)
            .map_err(|e| NativeError::Corrupt(format!("lzma encoder: {e:?}")))?;
        Ok(SectionEncoder { stream })
    }

    /// Compresses `input` and sync-flushes, appending the bytes to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), NativeError> {
        let mut consumed = 0usize;
        loop {
            out.reserve((input.len() - consumed) / 2 + 4096);
            let before_in = self.stream.total_in();
            let r = self
                .stream
                .process_vec(&input[consumed..], out, Action::SyncFlush);
            consumed += (self.stream.total_in() - before_in) as usize;
            match r {
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(NativeError::Corrupt(format!("lzma encoder: {e:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_carry_across_sections() {
        let mut enc = SectionEncoder::new(6).unwrap();
        let parts: Vec<Vec<u8>> = (0..5u8)
            .map(|i| (0..10_000u32).map(|j| (j % 97) as u8 ^ i).collect())
            .collect();
        let mut framed = Vec::new();
        for p in &parts {
            let mut c = Vec::new();
            enc.encode(p, &mut c).unwrap();
            framed.push(c);
        }
        // Later sections rely on earlier ones: they are tiny.
        assert!(framed[4].len() < 200, "{}", framed[4].len());
        let mut dec = SectionDecoder::default();
        let mut out = Vec::new();
        for (p, c) in parts.iter().zip(&framed) {
            dec.decode(c, p.len(), &mut out).unwrap();
            assert_eq!(&out, p);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut dec = SectionDecoder::default();
        let mut out = Vec::new();
        assert!(dec.decode(b"\xfd7zXZ\0garbage", 100, &mut out).is_err());
        let mut dec = SectionDecoder::default();
        assert!(dec.decode(b"", 100, &mut out).is_err());
    }
}
