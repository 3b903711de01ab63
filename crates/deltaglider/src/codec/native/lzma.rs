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
    /// The dictionary is no larger than `max_input` needs (saves encoder and decoder
    /// memory and set-up time without changing the output's compression).
    pub fn new(preset: u32, max_input: u64) -> Result<SectionEncoder, NativeError> {
        let mut opts = LzmaOptions::new_preset(preset)
            .map_err(|e| NativeError::Unsupported(format!("lzma preset {preset}: {e:?}")))?;
        let preset_dict = preset_dict(preset);
        let wanted = max_input.clamp(4096, preset_dict).next_power_of_two();
        opts.dict_size(wanted.min(preset_dict) as u32);
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

/// The data section's stream made of independent `.xz` blocks, one per window, so that
/// windows compress in parallel. A window's bytes are: the stream header (first block) or
/// the end of the previous block (LZMA2 end marker, block padding), then this block's
/// header and LZMA2 chunks, ending on a chunk boundary exactly as a sync flush does. A
/// stream decoder (xdelta3's, ours) reads this as one ordinary multi-block `.xz` stream.
#[derive(Default)]
pub struct BlockStream {
    /// Compressed size of the open block (for its padding), once one was written.
    open_block: Option<usize>,
}

/// One window's section compressed as a raw LZMA2 block (still ending in the end marker).
pub struct CompressedBlock {
    raw: Vec<u8>,
    dict_prop: u8,
}

/// Compresses `input` as one raw LZMA2 block at `preset`, with a power-of-two dictionary
/// no larger than the input needs.
pub fn compress_block(input: &[u8], preset: u32) -> Result<CompressedBlock, NativeError> {
    let mut opts = LzmaOptions::new_preset(preset)
        .map_err(|e| NativeError::Unsupported(format!("lzma preset {preset}: {e:?}")))?;
    let dict_log = (input.len().clamp(4096, 64 << 20) as u64)
        .next_power_of_two()
        .trailing_zeros()
        .min(preset_dict(preset).trailing_zeros());
    opts.dict_size(1 << dict_log);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut stream = Stream::new_raw_encoder(&filters)
        .map_err(|e| NativeError::Corrupt(format!("lzma encoder: {e:?}")))?;
    let mut raw = Vec::with_capacity(input.len() + input.len() / 64 + 64);
    let mut consumed = 0usize;
    loop {
        if raw.capacity() - raw.len() < 4096 {
            raw.reserve(input.len() / 4 + 4096);
        }
        let before = stream.total_in();
        let r = stream.process_vec(&input[consumed..], &mut raw, Action::Finish);
        consumed += (stream.total_in() - before) as usize;
        match r {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {}
            Err(e) => return Err(NativeError::Corrupt(format!("lzma encoder: {e:?}"))),
        }
    }
    if raw.last() != Some(&0) {
        return Err(NativeError::Corrupt(
            "lzma2 block without end marker".into(),
        ));
    }
    // LZMA2 dictionary property for a power of two: 2 * (log2 - 12).
    let dict_prop = (2 * (dict_log.max(12) - 12)) as u8;
    Ok(CompressedBlock { raw, dict_prop })
}

impl CompressedBlock {
    /// Length of the raw LZMA2 data.
    pub fn len(&self) -> usize {
        self.raw.len()
    }
}

impl BlockStream {
    /// Appends the bytes for one window's block to `out`.
    pub fn append(&mut self, block: &CompressedBlock, out: &mut Vec<u8>) {
        match self.open_block.take() {
            None => {
                // Stream header: magic, flags (check: none), CRC32 of the flags.
                out.extend_from_slice(&[0xFD, b'7', b'z', b'X', b'Z', 0x00, 0x00, 0x00]);
                out.extend_from_slice(&crc32fast::hash(&[0x00, 0x00]).to_le_bytes());
            }
            Some(compressed) => {
                // Finish the previous block: LZMA2 end marker, then pad the compressed
                // data to a multiple of four (no check field).
                out.push(0x00);
                out.resize(out.len() + (4 - compressed % 4) % 4, 0);
            }
        }
        // Block header: size 12 bytes, no optional sizes, one filter: LZMA2 + dict prop.
        let mut header = [0u8; 12];
        header[0] = 12 / 4 - 1;
        header[1] = 0x00;
        header[2] = 0x21;
        header[3] = 0x01;
        header[4] = block.dict_prop;
        let crc = crc32fast::hash(&header[..8]);
        header[8..].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&block.raw[..block.raw.len() - 1]);
        self.open_block = Some(block.raw.len());
    }
}

fn preset_dict(preset: u32) -> u64 {
    // liblzma's preset dictionary sizes (xz(1)).
    const PRESET_DICT: [u64; 10] = [
        256 << 10,
        1 << 20,
        2 << 20,
        4 << 20,
        4 << 20,
        8 << 20,
        8 << 20,
        16 << 20,
        32 << 20,
        64 << 20,
    ];
    PRESET_DICT[(preset as usize).min(9)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_carry_across_sections() {
        let mut enc = SectionEncoder::new(6, 1 << 20).unwrap();
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
    fn independent_blocks_read_as_one_stream() {
        let parts: Vec<Vec<u8>> = (0..4u8)
            .map(|i| (0..20_000u32).map(|j| ((j * 7) % 251) as u8 ^ i).collect())
            .collect();
        let mut bs = BlockStream::default();
        let mut dec = SectionDecoder::default();
        let mut out = Vec::new();
        for p in &parts {
            let mut framed = Vec::new();
            bs.append(&compress_block(p, 1).unwrap(), &mut framed);
            dec.decode(&framed, p.len(), &mut out).unwrap();
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
