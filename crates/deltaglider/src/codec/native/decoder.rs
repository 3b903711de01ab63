//! Streaming VCDIFF decoder: RFC 3284 plus xdelta3's extensions (LZMA secondary
//! compression, adler32 window checksums, application header).
//!
//! Memory is bounded by the window sizes: one target window, the previous one (for
//! `VCD_TARGET` segments) and the window's sections. The reference is a borrowed slice
//! (an mmap of the file in [`super::NativeCodec`]) and is never copied.

use std::io::{self, Read, Write};

use super::NativeError;
use super::address_cache::{AddressCache, AddressError};
use super::adler32;
use super::code_table::{CodeTable, Half, Op};
use super::lzma::SectionDecoder;
use super::varint;

pub(crate) const MAGIC: [u8; 3] = [0xD6, 0xC3, 0xC4];
pub(crate) const VCD_DECOMPRESS: u8 = 0x01;
pub(crate) const VCD_CODETABLE: u8 = 0x02;
pub(crate) const VCD_APPHEADER: u8 = 0x04;
pub(crate) const VCD_SOURCE: u8 = 0x01;
pub(crate) const VCD_TARGET: u8 = 0x02;
pub(crate) const VCD_ADLER32: u8 = 0x04;
pub(crate) const VCD_DATACOMP: u8 = 0x01;
pub(crate) const VCD_INSTCOMP: u8 = 0x02;
pub(crate) const VCD_ADDRCOMP: u8 = 0x04;
/// xdelta3's secondary compressor ids.
pub(crate) const SECONDARY_DJW: u8 = 1;
pub(crate) const SECONDARY_LZMA: u8 = 2;
pub(crate) const SECONDARY_FGK: u8 = 16;

/// Largest application header accepted (xdelta3 stores file names there).
const MAX_APPHEADER: u64 = 1 << 20;

/// Decoder limits and switches.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Largest target window accepted: xdelta3 neither writes nor reads more than 16 MiB
    /// (`XD3_HARDMAXWINSIZE`); each window costs two buffers of this size at most.
    pub max_window: u64,
    /// Verify the adler32 checksums windows carry.
    pub verify_checksums: bool,
    /// Stop with an error once this many bytes would have been written.
    pub max_output: u64,
    /// Refuse deltas whose application header says xdelta3 decompressed the files
    /// through gzip/xz/bzip2 first: their decoded bytes are not the original file.
    pub reject_external_compression: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_window: 16 << 20,
            verify_checksums: true,
            max_output: u64::MAX,
            reject_external_compression: true,
        }
    }
}

/// What the file header said, and how much was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Secondary compressor id from the header (`VCD_DECOMPRESS`); only LZMA is accepted.
    pub secondary_compressor: Option<u8>,
    /// The application header (`VCD_APPHEADER`), if present.
    pub app_header: Option<Vec<u8>>,
    /// Number of windows decoded.
    pub windows: u64,
    /// Target bytes written to the output.
    pub bytes_written: u64,
}

fn corrupt(msg: impl Into<String>) -> NativeError {
    NativeError::Corrupt(msg.into())
}

/// Byte-level reading of the delta with precise truncation errors.
struct DeltaReader<R> {
    inner: R,
}

impl<R: Read> DeltaReader<R> {
    /// Reads one byte; `None` at a clean end of input.
    fn byte_or_eof(&mut self) -> Result<Option<u8>, NativeError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NativeError::Io(e)),
            }
        }
    }

    fn byte(&mut self, what: &str) -> Result<u8, NativeError> {
        self.byte_or_eof()?
            .ok_or_else(|| corrupt(format!("truncated delta (in {what})")))
    }

    fn varint(&mut self, what: &str) -> Result<u64, NativeError> {
        let mut value: u64 = 0;
        for _ in 0..varint::MAX_VARINT_LEN {
            let b = self.byte(what)?;
            if value > (u64::MAX >> 7) {
                return Err(corrupt(format!("integer overflow in {what}")));
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt(format!("integer too long in {what}")))
    }

    /// Reads exactly `len` bytes into `buf`, growing it only as bytes arrive.
    fn bytes(&mut self, len: u64, buf: &mut Vec<u8>, what: &str) -> Result<(), NativeError> {
        buf.clear();
        // Room for a typical window's sections at once; more only as bytes arrive.
        buf.reserve(len.min(8 << 20) as usize);
        let got = (&mut self.inner).take(len).read_to_end(buf)?;
        if got as u64 != len {
            return Err(corrupt(format!("truncated delta (in {what})")));
        }
        Ok(())
    }
}

/// A window's three sections after secondary decompression. A section stored without
/// secondary compression is read in place from `raw`, never copied.
#[derive(Default)]
struct Sections {
    raw: Vec<u8>,
    data: Vec<u8>,
    inst: Vec<u8>,
    addr: Vec<u8>,
    /// For each of data, instructions and addresses: its range in `raw` if it was stored
    /// plain, `None` if it was decompressed into its own buffer.
    plain: [Option<std::ops::Range<usize>>; 3],
}

impl Sections {
    fn data(&self) -> &[u8] {
        self.section(0, &self.data)
    }

    fn inst(&self) -> &[u8] {
        self.section(1, &self.inst)
    }

    fn addr(&self) -> &[u8] {
        self.section(2, &self.addr)
    }

    fn section<'a>(&'a self, k: usize, decompressed: &'a [u8]) -> &'a [u8] {
        match &self.plain[k] {
            Some(range) => &self.raw[range.clone()],
            None => decompressed,
        }
    }
}

/// Decodes `delta` against `reference`, writing the target to `out`.
pub fn decode<R: Read + Send>(
    reference: &[u8],
    delta: R,
    out: &mut dyn Write,
    opts: &DecodeOptions,
) -> Result<DecodeSummary, NativeError> {
    let mut rd = DeltaReader { inner: delta };
    let mut summary = DecodeSummary::default();

    // File header.
    let mut magic = [0u8; 4];
    for (i, m) in magic.iter_mut().enumerate() {
        *m = match rd.byte_or_eof()? {
            Some(b) => b,
            None if i < 3 => return Err(NativeError::NotVcdiff),
            None => return Err(corrupt("truncated header")),
        };
        if i < 3 && *m != MAGIC[i] {
            return Err(NativeError::NotVcdiff);
        }
    }
    if magic[3] != 0 {
        return Err(NativeError::Unsupported(format!(
            "VCDIFF version {}",
            magic[3]
        )));
    }
    let hdr_ind = rd.byte("header")?;
    if hdr_ind & !(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER) != 0 {
        return Err(corrupt("unknown header indicator bits"));
    }
    if hdr_ind & VCD_DECOMPRESS != 0 {
        let id = rd.byte("header")?;
        match id {
            SECONDARY_LZMA => {}
            SECONDARY_DJW => {
                return Err(NativeError::Unsupported(
                    "xdelta3 DJW secondary compression".into(),
                ));
            }
            SECONDARY_FGK => {
                return Err(NativeError::Unsupported(
                    "xdelta3 FGK secondary compression".into(),
                ));
            }
            other => {
                return Err(NativeError::Unsupported(format!(
                    "secondary compressor id {other}"
                )));
            }
        }
        summary.secondary_compressor = Some(id);
    }
    if hdr_ind & VCD_CODETABLE != 0 {
        return Err(NativeError::Unsupported(
            "application-defined code tables".into(),
        ));
    }
    if hdr_ind & VCD_APPHEADER != 0 {
        let len = rd.varint("application header")?;
        if len > MAX_APPHEADER {
            return Err(NativeError::Limit("application header too long".into()));
        }
        let mut app = Vec::new();
        rd.bytes(len, &mut app, "application header")?;
        let header = crate::codec::vcdiff_header::VcdiffHeader {
            secondary_compressor: summary.secondary_compressor,
            app_header: Some(app),
        };
        if opts.reject_external_compression && header.uses_external_compression() {
            return Err(NativeError::Unsupported(
                "delta made by xdelta3 from externally decompressed (gzip/xz/bzip2) data; it needs the xdelta3 codec to recompress".into(),
            ));
        }
        summary.app_header = header.app_header;
    }

    // A reader thread parses windows and undoes secondary compression while this thread
    // runs instructions, verifies checksums and writes: the two overlap.
    let secondary_on = summary.secondary_compressor.is_some();
    let reference_len = reference.len() as u64;
    std::thread::scope(|scope| -> Result<DecodeSummary, NativeError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<ParsedWindow, NativeError>>(1);
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Sections>();
        scope.spawn(move || {
            let mut parser = WindowParser {
                secondary: Default::default(),
                secondary_on,
                reference_len,
                last: (0, 0),
                next_start: 0,
                written: 0,
                opts,
            };
            loop {
                let sections = recycle_rx.try_recv().unwrap_or_default();
                match parser.next(&mut rd, sections) {
                    Ok(Some(w)) => {
                        if tx.send(Ok(w)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });

        let table = CodeTable::rfc3284();
        let mut cache = AddressCache::default();
        let mut window: Vec<u8> = Vec::new();
        let mut last_window: Vec<u8> = Vec::new();
        let mut last_start: u64 = 0;
        let mut win_start: u64 = 0;
        for parsed in rx {
            let w = parsed?;
            // The previous window is kept aside only when this one copies from it
            // (VCD_TARGET, which neither xdelta3 nor our encoder writes by default):
            // otherwise its buffer is reused, and a second window's worth of memory is
            // never touched.
            if matches!(w.segment, Segment::Target { .. }) {
                std::mem::swap(&mut window, &mut last_window);
            }
            let segment: &[u8] = match w.segment {
                Segment::None => &[],
                Segment::Source { off, len } => &reference[off as usize..(off + len) as usize],
                Segment::Target { off, len } => {
                    let from = (off - last_start) as usize;
                    &last_window[from..from + len as usize]
                }
            };
            cache.reset();
            window.clear();
            let capacity = window.capacity();
            window.reserve(w.target_len as usize);
            if window.capacity() != capacity {
                // A fresh 8 MiB window otherwise costs 2048 page faults, which on small
                // deltas is most of the decoding time.
                super::prefer_huge_pages(&window);
            }
            run_instructions(
                &table,
                &mut cache,
                segment,
                &w.sections,
                w.target_len as usize,
                &mut window,
            )?;
            if let Some(expected) = w.checksum
                && opts.verify_checksums
            {
                let actual = adler32::adler32(&window);
                if actual != expected {
                    return Err(NativeError::Checksum {
                        window: summary.windows,
                        expected,
                        actual,
                    });
                }
            }
            let _ = recycle_tx.send(w.sections);
            out.write_all(&window)?;
            summary.bytes_written += w.target_len;
            summary.windows += 1;
            last_start = win_start;
            win_start += w.target_len;
        }
        Ok(summary)
    })
}

/// Where a window's COPY segment lives.
#[derive(Debug, Clone, Copy)]
enum Segment {
    None,
    Source {
        off: u64,
        len: u64,
    },
    /// Part of the previous target window.
    Target {
        off: u64,
        len: u64,
    },
}

/// A window read from the delta, sections decompressed, ready to run.
struct ParsedWindow {
    segment: Segment,
    target_len: u64,
    checksum: Option<u32>,
    sections: Sections,
}

/// Reads windows and undoes secondary compression; validates every size first.
struct WindowParser<'a> {
    secondary: [SectionDecoder; 3],
    secondary_on: bool,
    reference_len: u64,
    /// Start and length of the previous target window.
    last: (u64, u64),
    next_start: u64,
    written: u64,
    opts: &'a DecodeOptions,
}

impl WindowParser<'_> {
    fn next<R: Read>(
        &mut self,
        rd: &mut DeltaReader<R>,
        mut sections: Sections,
    ) -> Result<Option<ParsedWindow>, NativeError> {
        let Some(win_ind) = rd.byte_or_eof()? else {
            return Ok(None);
        };
        if win_ind & !(VCD_SOURCE | VCD_TARGET | VCD_ADLER32) != 0 {
            return Err(corrupt("unknown window indicator bits"));
        }
        if win_ind & VCD_SOURCE != 0 && win_ind & VCD_TARGET != 0 {
            return Err(corrupt("window has both VCD_SOURCE and VCD_TARGET"));
        }
        let (seg_len, seg_off) = if win_ind & (VCD_SOURCE | VCD_TARGET) != 0 {
            (rd.varint("segment length")?, rd.varint("segment offset")?)
        } else {
            (0, 0)
        };
        let seg_end = seg_off
            .checked_add(seg_len)
            .ok_or_else(|| corrupt("segment overflows"))?;
        let segment = if win_ind & VCD_SOURCE != 0 {
            if seg_end > self.reference_len {
                return Err(corrupt(format!(
                    "source segment {seg_off}+{seg_len} beyond the {}-byte reference",
                    self.reference_len
                )));
            }
            Segment::Source {
                off: seg_off,
                len: seg_len,
            }
        } else if win_ind & VCD_TARGET != 0 {
            let (last_start, last_len) = self.last;
            if seg_off < last_start || seg_end > last_start + last_len {
                return Err(NativeError::Unsupported(
                    "VCD_TARGET segment outside the previous window".into(),
                ));
            }
            Segment::Target {
                off: seg_off,
                len: seg_len,
            }
        } else {
            Segment::None
        };

        let enc_len = rd.varint("delta encoding length")?;
        let tgt_len = rd.varint("target window length")?;
        if tgt_len > self.opts.max_window {
            return Err(NativeError::Limit(format!(
                "target window of {tgt_len} bytes exceeds the {}-byte limit",
                self.opts.max_window
            )));
        }
        if self.written.saturating_add(tgt_len) > self.opts.max_output {
            return Err(NativeError::Limit("output limit reached".into()));
        }
        let del_ind = rd.byte("delta indicator")?;
        if del_ind & !(VCD_DATACOMP | VCD_INSTCOMP | VCD_ADDRCOMP) != 0 {
            return Err(corrupt("unknown delta indicator bits"));
        }
        if del_ind != 0 && !self.secondary_on {
            return Err(corrupt(
                "compressed sections without a secondary compressor",
            ));
        }
        let data_len = rd.varint("data length")?;
        let inst_len = rd.varint("instructions length")?;
        let addr_len = rd.varint("addresses length")?;
        let checksum = if win_ind & VCD_ADLER32 != 0 {
            let mut c = 0u32;
            for _ in 0..4 {
                c = (c << 8) | u32::from(rd.byte("checksum")?);
            }
            Some(c)
        } else {
            None
        };
        let total = data_len
            .checked_add(inst_len)
            .and_then(|t| t.checked_add(addr_len))
            .ok_or_else(|| corrupt("section lengths overflow"))?;
        let expected_enc = 1
            + (varint::len(tgt_len)
                + varint::len(data_len)
                + varint::len(inst_len)
                + varint::len(addr_len)) as u64
            + total
            + if checksum.is_some() { 4 } else { 0 };
        if enc_len != expected_enc {
            return Err(corrupt("delta encoding length disagrees with the sections"));
        }
        // Sections: a window never needs more than a few bytes per target byte.
        if total > tgt_len.saturating_mul(24).saturating_add(1 << 16) {
            return Err(NativeError::Limit(
                "sections too large for the window".into(),
            ));
        }
        rd.bytes(total, &mut sections.raw, "window sections")?;
        {
            let Sections {
                raw,
                data,
                inst,
                addr,
                plain,
            } = &mut sections;
            let (d, i) = (data_len as usize, inst_len as usize);
            let ranges = [0..d, d..d + i, d + i..raw.len()];
            let caps = [
                tgt_len,
                tgt_len.saturating_mul(12) + 64,
                tgt_len.saturating_mul(11) + 64,
            ];
            let flags = [VCD_DATACOMP, VCD_INSTCOMP, VCD_ADDRCOMP];
            let outs = [data, inst, addr];
            for (k, (range, dst)) in ranges.into_iter().zip(outs).enumerate() {
                if del_ind & flags[k] != 0 {
                    let src = &raw[range];
                    let mut pos = 0;
                    let size = varint::read(src, &mut pos)
                        .map_err(|_| corrupt("bad compressed section size"))?;
                    if size == 0 || size > caps[k] {
                        return Err(corrupt("compressed section size out of range"));
                    }
                    self.secondary[k].decode(&src[pos..], size as usize, dst)?;
                    plain[k] = None;
                } else {
                    plain[k] = Some(range);
                }
            }
        }
        self.last = (self.next_start, tgt_len);
        self.next_start = self
            .next_start
            .checked_add(tgt_len)
            .ok_or_else(|| corrupt("target offset overflows"))?;
        self.written += tgt_len;
        Ok(Some(ParsedWindow {
            segment,
            target_len: tgt_len,
            checksum,
            sections,
        }))
    }
}

/// Executes one window's instructions into `window` (empty, capacity `tgt_len`).
fn run_instructions(
    table: &CodeTable,
    cache: &mut AddressCache,
    segment: &[u8],
    s: &Sections,
    tgt_len: usize,
    window: &mut Vec<u8>,
) -> Result<(), NativeError> {
    let seg_len = segment.len() as u64;
    let (data, inst, addr) = (s.data(), s.inst(), s.addr());
    let (mut ip, mut dp, mut ap) = (0usize, 0usize, 0usize);
    while ip < inst.len() {
        let opcode = inst[ip];
        ip += 1;
        let (first, second) = table.entries[opcode as usize];
        for half in [first, second] {
            let Half { op, size } = half;
            if op == Op::Noop {
                continue;
            }
            let size = if size == 0 {
                varint::read(inst, &mut ip).map_err(|_| corrupt("bad instruction size"))?
            } else {
                u64::from(size)
            };
            let remaining = (tgt_len - window.len()) as u64;
            if size > remaining {
                return Err(corrupt("instruction overflows the target window"));
            }
            let n = size as usize;
            match op {
                Op::Add => {
                    let bytes = data
                        .get(dp..dp + n)
                        .ok_or_else(|| corrupt("ADD beyond the data section"))?;
                    window.extend_from_slice(bytes);
                    dp += n;
                }
                Op::Run => {
                    let b = *data
                        .get(dp)
                        .ok_or_else(|| corrupt("RUN beyond the data section"))?;
                    dp += 1;
                    window.resize(window.len() + n, b);
                }
                Op::Copy(mode) => {
                    let here = seg_len + window.len() as u64;
                    let addr = cache
                        .decode(here, mode, addr, &mut ap)
                        .map_err(|e| match e {
                            AddressError::Truncated => corrupt("COPY beyond the address section"),
                            AddressError::Invalid => corrupt("invalid COPY address"),
                        })?;
                    if addr < seg_len {
                        let end = addr
                            .checked_add(size)
                            .filter(|&e| e <= seg_len)
                            .ok_or_else(|| corrupt("COPY crosses the segment end"))?;
                        window.extend_from_slice(&segment[addr as usize..end as usize]);
                    } else {
                        copy_within_target(window, (addr - seg_len) as usize, n);
                    }
                }
                Op::Noop => {}
            }
        }
    }
    if window.len() != tgt_len {
        return Err(corrupt("instructions do not fill the target window"));
    }
    if dp != data.len() || ap != addr.len() {
        return Err(corrupt("unused data or addresses in a window"));
    }
    Ok(())
}

/// Appends `n` bytes copied from `window[from..]`, which may overlap what is appended
/// (a repeating pattern).
#[inline]
fn copy_within_target(window: &mut Vec<u8>, from: usize, n: usize) {
    let start = window.len();
    debug_assert!(from < start);
    let distance = start - from;
    if distance >= n {
        window.extend_from_within(from..from + n);
        return;
    }
    // Overlapping: the output repeats with period `distance`; copy whole periods from
    // `from`, doubling each time.
    let mut done = 0;
    while done < n {
        let avail = distance + done;
        let chunk = (avail - avail % distance).min(n - done);
        window.extend_from_within(from..from + chunk);
        done += chunk;
    }
}

/// Decodes a delta held in memory: the entry point for fuzzing. Output is capped at
/// `max_output` bytes.
pub fn decode_slices_limited(
    delta: &[u8],
    reference: &[u8],
    max_output: u64,
) -> Result<Vec<u8>, NativeError> {
    let mut out = Vec::new();
    let opts = DecodeOptions {
        max_output,
        ..DecodeOptions::default()
    };
    decode(reference, delta, &mut out, &opts)?;
    Ok(out)
}

/// Decodes a delta held in memory (output capped at 1 GiB).
pub fn decode_slices(delta: &[u8], reference: &[u8]) -> Result<Vec<u8>, NativeError> {
    decode_slices_limited(delta, reference, 1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One window: `segment` is (indicator, length, offset); `copy` copies that many bytes
    /// from address 0 of the segment (mode VCD_SELF), then `add` bytes are added.
    fn window(out: &mut Vec<u8>, segment: Option<(u8, u64, u64)>, copy: u64, add: &[u8]) {
        let (mut inst, mut addr) = (Vec::new(), Vec::new());
        if copy > 0 {
            inst.push(19); // COPY, size follows, mode 0
            varint::write(&mut inst, copy);
            varint::write(&mut addr, 0);
        }
        if !add.is_empty() {
            inst.push(1); // ADD, size follows
            varint::write(&mut inst, add.len() as u64);
        }
        let tgt_len = copy + add.len() as u64;
        out.push(segment.map_or(0, |s| s.0));
        if let Some((_, len, off)) = segment {
            varint::write(out, len);
            varint::write(out, off);
        }
        let lens = [
            tgt_len,
            add.len() as u64,
            inst.len() as u64,
            addr.len() as u64,
        ];
        let enc_len = 1
            + lens.iter().map(|&l| varint::len(l) as u64).sum::<u64>()
            + (add.len() + inst.len() + addr.len()) as u64;
        varint::write(out, enc_len);
        varint::write(out, tgt_len);
        out.push(0);
        for l in &lens[1..] {
            varint::write(out, *l);
        }
        out.extend_from_slice(add);
        out.extend_from_slice(&inst);
        out.extend_from_slice(&addr);
    }

    #[test]
    fn target_segments_copy_from_the_previous_window() {
        let mut delta = vec![0xD6, 0xC3, 0xC4, 0, 0];
        // 0..6 "abcdef"; 6..10 copies "cdef" from window 1 and adds "!"; 11..14 copies
        // "ef!" from window 2; 14..17 "xyz" (no segment); 17..19 copies "yz" from window 4
        // plus one byte from the reference.
        window(&mut delta, None, 0, b"abcdef");
        window(&mut delta, Some((VCD_TARGET, 4, 2)), 4, b"!");
        window(&mut delta, Some((VCD_TARGET, 3, 8)), 3, b"");
        window(&mut delta, None, 0, b"xyz");
        window(&mut delta, Some((VCD_TARGET, 2, 15)), 2, b"");
        window(&mut delta, Some((VCD_SOURCE, 1, 0)), 1, b"");
        let out = decode_slices(&delta, b"R").unwrap();
        assert_eq!(out, b"abcdefcdef!ef!xyzyzR");
    }

    #[test]
    fn target_segment_outside_the_previous_window_is_refused() {
        let mut delta = vec![0xD6, 0xC3, 0xC4, 0, 0];
        window(&mut delta, None, 0, b"abcdef");
        window(&mut delta, None, 0, b"xyz");
        // Window 1 is two windows back: only the previous one may be a segment.
        window(&mut delta, Some((VCD_TARGET, 2, 0)), 2, b"");
        let err = decode_slices(&delta, b"").unwrap_err();
        assert!(err.to_string().contains("previous window"), "{err}");
    }
}
