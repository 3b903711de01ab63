//! VCDIFF encoder whose output `xdelta3 -d` reads: default code table, address cache,
//! adler32 window checksums and, optionally, xdelta3's LZMA secondary compression.
//!
//! The target is cut into windows (at most 16 MiB, xdelta3's limit) that are matched and
//! encoded in parallel against one sampled index of the whole reference; only the
//! secondary compression, whose streams run across windows, is sequential.

use std::io::Write;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::NativeError;
use super::address_cache::AddressCache;
use super::adler32;
use super::code_table::{RUN_OPCODE, add_copy_opcode, add_opcode, copy_add_opcode, copy_opcode};
use super::decoder::{
    MAGIC, SECONDARY_LZMA, VCD_ADDRCOMP, VCD_ADLER32, VCD_DATACOMP, VCD_DECOMPRESS, VCD_INSTCOMP,
    VCD_SOURCE,
};
use super::lzma::{BlockStream, CompressedBlock, SectionEncoder, compress_block};
use super::matcher::{
    HASH_LEN, MAX_INDEX_BYTES, ReferenceIndex, TargetIndex, common_prefix, common_suffix, load_u64,
};
use super::varint;

/// Largest target window xdelta3 decodes (`XD3_HARDMAXWINSIZE`).
pub const MAX_WINDOW: usize = 1 << 24;
/// xdelta3's 32-bit decoder positions: segment plus window must stay below 4 GiB.
const MAX_SEGMENT_PLUS_WINDOW: u64 = (1 << 32) - 1;
/// How many probes ahead index slots are prefetched.
const PREFETCH_DISTANCE: usize = 8;
/// Data sections are compressed in independent LZMA2 blocks of this many bytes.
const DATA_BLOCK: usize = 1 << 20;
/// Most windows matched in parallel (each holds up to about twice its size while encoded);
/// their data sections are still compressed on every core, 1 MiB block by block.
const MAX_PARALLEL_WINDOWS: usize = 8;
/// Sections shorter than this are stored without secondary compression (as xdelta3).
const SECONDARY_MIN_INPUT: usize = 10;

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Target window size (at most `MAX_WINDOW`).
    pub window_size: usize,
    /// LZMA secondary compression preset (0-9) of the instruction and address sections,
    /// or `None` for plain RFC 3284 sections.
    pub lzma_preset: Option<u32>,
    /// LZMA preset of the data section (compressed per window, in parallel), used when
    /// `lzma_preset` is set.
    pub data_lzma_preset: u32,
    /// The reference is indexed at every `sample_step`-th byte (or more sparsely, to keep
    /// the index within `max_index_bytes`).
    pub sample_step: usize,
    /// Memory budget of the reference's hash index (see `MAX_INDEX_BYTES`).
    pub max_index_bytes: usize,
    /// Shortest COPY found through the indexes.
    pub min_match: usize,
    /// Write adler32 window checksums.
    pub checksum: bool,
    /// Unmatched probes before the probing stride grows (by 2, up to `max_stride`).
    pub accel_after: usize,
    /// Largest probing stride in long unmatched stretches (odd; 1 = probe every byte).
    pub max_stride: usize,
    /// Data sections whose byte entropy (bits per byte) is above this are stored without
    /// secondary compression: LZMA would not shrink them (already-compressed content)
    /// and would only cost time. 8.0 compresses every section.
    pub incompressible_entropy: f64,
}

impl Default for EncodeOptions {
    /// Tuned on consecutive releases of real wheels (zip archives of mostly compressed
    /// members) against `xdelta3 -e -9`: deltas within 1% of its size at several times its
    /// speed (`cargo bench --bench codec`).
    fn default() -> Self {
        EncodeOptions {
            window_size: 8 << 20,
            // Instructions and addresses: small sections where a higher preset costs time
            // and saves almost nothing.
            lzma_preset: Some(1),
            data_lzma_preset: 0,
            sample_step: 4,
            max_index_bytes: MAX_INDEX_BYTES,
            min_match: 8,
            checksum: true,
            accel_after: 256,
            max_stride: 1,
            // Unmatched bytes of compressed archive members look random: LZMA would not
            // shrink them by even 0.1%.
            incompressible_entropy: 7.99,
        }
    }
}

impl EncodeOptions {
    /// Trades about 1-2% of delta size on already-compressed content (wheels, jars) for
    /// less CPU: a sparser index, more data sections left uncompressed, and long unmatched
    /// stretches probed sparsely.
    pub fn fast() -> EncodeOptions {
        EncodeOptions {
            sample_step: 8,
            max_stride: 5,
            incompressible_entropy: 7.97,
            ..EncodeOptions::default()
        }
    }
}

/// One instruction of a window, in absolute positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instr {
    Add { at: usize, len: usize },
    Run { byte: u8, len: usize },
    Copy { src: u64, len: usize },
    SelfCopy { from: usize, len: usize },
}

/// A window ready for secondary compression and output.
struct EncodedWindow {
    /// The data section as an independent LZMA2 block, when it is to be compressed.
    data_block: Option<Result<Vec<CompressedBlock>, NativeError>>,
    /// The data section framed into the delta's data stream.
    data_block_framed: Option<Vec<u8>>,
    segment: Option<(u64, u64)>,
    target_len: usize,
    checksum: u32,
    sections: [Vec<u8>; 3],
}

/// Statistics of one encode.
#[derive(Debug, Clone, Default)]
pub struct EncodeSummary {
    /// Number of windows written.
    pub windows: u64,
    /// Delta bytes written, header included.
    pub bytes_written: u64,
    /// Memory used by the reference hash index, in bytes.
    pub index_bytes: usize,
    /// Section bytes (data, instructions, addresses) before secondary compression.
    pub section_bytes: [u64; 3],
    /// Section bytes as written.
    pub written_section_bytes: [u64; 3],
    /// Wall time spent building the reference index.
    pub index_time: std::time::Duration,
    /// Matching/encoding time summed over windows (workers run in parallel, so this can
    /// exceed wall time).
    pub match_time: std::time::Duration,
    /// Time spent on secondary compression and framing windows for output.
    pub secondary_time: std::time::Duration,
}

/// Encodes `target` against `reference`, writing the delta to `out`.
pub fn encode(
    reference: &[u8],
    target: &[u8],
    out: &mut dyn Write,
    opts: &EncodeOptions,
) -> Result<EncodeSummary, NativeError> {
    encode_releasing(reference, target, out, opts, &|| {})
}

/// [`encode`], calling `release` after each 16 MiB of the reference is indexed, whenever
/// the matchers have read about [`MATCH_RELEASE_EVERY`] bytes' worth of pages of the
/// reference, and after each batch of windows is written. With mapped inputs, the caller
/// can drop their pages from memory there, so the resident set stays near the index and
/// one batch of windows whatever the input sizes. `release` may be called from any of the
/// encoder's threads.
pub fn encode_releasing(
    reference: &[u8],
    target: &[u8],
    out: &mut dyn Write,
    opts: &EncodeOptions,
    release: &(dyn Fn() + Sync),
) -> Result<EncodeSummary, NativeError> {
    encode_with_progress(reference, target, out, opts, release, &mut |_| {})
}

/// [`encode_releasing`], calling `progress` with the end of each target window written (the
/// bytes of the target encoded so far).
pub fn encode_with_progress(
    reference: &[u8],
    target: &[u8],
    out: &mut dyn Write,
    opts: &EncodeOptions,
    release: &(dyn Fn() + Sync),
    progress: &mut dyn FnMut(u64),
) -> Result<EncodeSummary, NativeError> {
    let window_size = opts.window_size.clamp(1 << 10, MAX_WINDOW);
    let started = Instant::now();
    let index =
        ReferenceIndex::build_releasing(reference, opts.sample_step, opts.max_index_bytes, release);
    let mut summary = EncodeSummary {
        index_bytes: index.memory(),
        index_time: started.elapsed(),
        ..EncodeSummary::default()
    };
    let mut header = MAGIC.to_vec();
    header.push(0);
    if opts.lzma_preset.is_some() {
        header.extend_from_slice(&[VCD_DECOMPRESS, SECONDARY_LZMA]);
    } else {
        header.push(0);
    }
    out.write_all(&header)?;
    summary.bytes_written += header.len() as u64;

    let mut secondary = match opts.lzma_preset {
        Some(p) => {
            // Instructions and addresses are a small fraction of the target (0.3-1.5% on
            // release archives): a dictionary of 1/64 of it holds their whole history in
            // practice, and a larger one only costs page faults in the encoder's tables.
            let len = target.len() as u64 / 64;
            Some([SectionEncoder::new(p, len)?, SectionEncoder::new(p, len)?])
        }
        None => None,
    };
    let mut windows: Vec<(usize, usize)> = (0..target.len())
        .step_by(window_size)
        .map(|s| (s, (s + window_size).min(target.len())))
        .collect();
    if windows.is_empty() {
        // xdelta3 writes one empty window for an empty target and wants one to decode.
        windows.push((0, 0));
    }
    // Windows are matched and encoded in parallel by a producer, a batch at a time (so
    // memory stays bounded), while this thread compresses and writes the previous batch.
    // A batch holds at most MAX_PARALLEL_WINDOWS windows, so the windows' memory does not
    // grow with the core count.
    let batch = rayon::current_num_threads().clamp(1, MAX_PARALLEL_WINDOWS);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<EncodedWindow>, Duration)>(1);
    let index = &index;
    let windows = &windows;
    let budget = &ReleaseBudget::new(release);
    std::thread::scope(|scope| -> Result<(), NativeError> {
        scope.spawn(move || {
            for chunk in windows.chunks(batch) {
                let started = Instant::now();
                let encoded: Vec<EncodedWindow> = chunk
                    .par_iter()
                    .map(|&(ws, we)| {
                        let instrs = find_matches(reference, index, target, ws, we, opts, budget);
                        let mut w = encode_window(&instrs, target, ws, we, opts.checksum);
                        let data = &w.sections[0];
                        if opts.lzma_preset.is_some()
                            && data.len() >= SECONDARY_MIN_INPUT
                            && byte_entropy(data) <= opts.incompressible_entropy
                        {
                            // Independent blocks: all cores work even on few windows.
                            w.data_block = Some(
                                data.par_chunks(DATA_BLOCK)
                                    .map(|c| compress_block(c, opts.data_lzma_preset))
                                    .collect(),
                            );
                        }
                        w
                    })
                    .collect();
                if tx.send((encoded, started.elapsed())).is_err() {
                    return;
                }
            }
        });
        let mut buf = Vec::new();
        let mut data_stream = BlockStream::default();
        // Windows arrive in order: the n-th written ends where the n-th window does.
        let mut window_ends = windows.iter().map(|&(_, we)| we as u64);
        for (encoded, match_time) in rx {
            summary.match_time += match_time;
            for mut w in encoded {
                if let Some(blocks) = w.data_block.take() {
                    let blocks = blocks?;
                    let total: usize = blocks.iter().map(CompressedBlock::len).sum();
                    let mut c = Vec::with_capacity(total + 32 * blocks.len() + 16);
                    varint::write(&mut c, w.sections[0].len() as u64);
                    for block in &blocks {
                        data_stream.append(block, &mut c);
                    }
                    w.data_block_framed = Some(c);
                }
                buf.clear();
                let started = Instant::now();
                for (k, s) in w.sections.iter().enumerate() {
                    summary.section_bytes[k] += s.len() as u64;
                }
                let written = write_window(w, secondary.as_mut(), opts.checksum, &mut buf)?;
                for (k, s) in written.iter().enumerate() {
                    summary.written_section_bytes[k] += s;
                }
                summary.secondary_time += started.elapsed();
                out.write_all(&buf)?;
                summary.bytes_written += buf.len() as u64;
                summary.windows += 1;
                if let Some(end) = window_ends.next() {
                    progress(end);
                }
            }
            release();
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Reference bytes the matchers may read (pages they may bring into memory, by the
/// estimate of [`ReleaseBudget`]) between two calls of the `release` hook.
pub const MATCH_RELEASE_EVERY: usize = 8 << 20;
/// Memory one read at a new place of the reference may map: its page cache folio and the
/// kernel's fault-around (measured: about 96 KiB per random 8-byte read on Linux 6.x).
const READ_AT_NEW_PLACE: usize = 128 << 10;
/// Bytes a matcher counts locally before adding them to the shared [`ReleaseBudget`].
const SPEND_QUANTUM: usize = 512 << 10;

/// Counts what the matchers read of the reference and calls `release` once every
/// [`MATCH_RELEASE_EVERY`] bytes of it. Index candidates point anywhere in the reference:
/// without this, a target unlike the reference would bring a page around every candidate
/// whose tag matched, i.e. most of a large reference, into memory within one window.
struct ReleaseBudget<'a> {
    release: &'a (dyn Fn() + Sync),
    spent: std::sync::atomic::AtomicUsize,
}

impl<'a> ReleaseBudget<'a> {
    fn new(release: &'a (dyn Fn() + Sync)) -> Self {
        ReleaseBudget {
            release,
            spent: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Adds `bytes` read; the thread that crosses the budget releases.
    fn spend(&self, bytes: usize) {
        use std::sync::atomic::Ordering;
        let before = self.spent.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes >= MATCH_RELEASE_EVERY
            && self
                .spent
                .compare_exchange(before + bytes, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            (self.release)();
        }
    }
}

/// Finds the instructions for `target[ws..we]`.
fn find_matches(
    reference: &[u8],
    index: &ReferenceIndex,
    target: &[u8],
    ws: usize,
    we: usize,
    opts: &EncodeOptions,
    budget: &ReleaseBudget,
) -> Vec<Instr> {
    let win = &target[ws..we];
    let n = win.len();
    let mut out = Vec::new();
    let mut tindex = TargetIndex::new(n);
    let min_match = opts.min_match.max(4);
    let accel_after = opts.accel_after.max(1);
    let max_stride = opts.max_stride.max(1) | 1;
    // Reference position minus target position of the last source copy: where the next
    // match probably continues after a small edit.
    let mut predicted: Option<i64> = None;
    let mut lit = 0usize;
    let mut p = 0usize;
    // Long unmatched stretches are probed at growing odd strides (odd, so every residue
    // of the reference sampling is still met): 2 wider after each `accel_after` probes
    // without a match, back to 1 at the next match.
    let mut stride = 1usize;
    let mut misses_until_wider = accel_after;
    // Reference bytes read since the last report to `budget`.
    let mut read = 0usize;
    while p + HASH_LEN <= n {
        if read >= SPEND_QUANTUM {
            budget.spend(read);
            read = 0;
        }
        let ahead = p + PREFETCH_DISTANCE * stride;
        if ahead + HASH_LEN <= n {
            let w = load_u64(win, ahead);
            index.prefetch(w);
            tindex.prefetch(w);
        }
        let word = load_u64(win, p);
        // (start in window, source, length); source None = target.
        let mut best: Option<(usize, Option<u64>, usize, usize)> = None;
        let mut best_len = 0usize;
        if let Some(off) = predicted {
            let r = (ws + p) as i64 + off;
            if r >= 0 && (r as usize) < reference.len() {
                let r = r as usize;
                let f = common_prefix(&win[p..], &reference[r..]);
                read += f + HASH_LEN;
                if f >= 4 {
                    best = Some((p, Some(r as u64), 0, f));
                    best_len = f;
                }
            }
        }
        if best_len < 64 {
            if let Some(r) = index.candidate(word)
                && r + HASH_LEN <= reference.len()
                && {
                    read += READ_AT_NEW_PLACE;
                    load_u64(reference, r) == word
                }
            {
                let f = common_prefix(&win[p..], &reference[r..]);
                let b = common_suffix(win, p, reference, r, p - lit);
                read += f + b;
                if f + b >= min_match && f + b > best_len {
                    best = Some((p - b, Some((r - b) as u64), 0, f + b));
                    best_len = f + b;
                }
            }
            if let Some(q) = tindex.candidate(word)
                && q < p
                && load_u64(win, q) == word
            {
                let f = common_prefix(&win[p..], &win[q..]);
                let b = common_suffix(win, p, win, q, p - lit);
                if f + b >= min_match && f + b > best_len {
                    best = Some((p - b, None, q - b, f + b));
                }
            }
        }
        if let Some((start, src, from, len)) = best {
            if start > lit {
                out.push(Instr::Add {
                    at: ws + lit,
                    len: start - lit,
                });
            }
            match src {
                Some(r) => {
                    out.push(Instr::Copy { src: r, len });
                    predicted = Some(r as i64 + len as i64 - (ws + start + len) as i64);
                }
                None => out.push(Instr::SelfCopy {
                    from: ws + from,
                    len,
                }),
            }
            p = start + len;
            lit = p;
            stride = 1;
            misses_until_wider = accel_after;
            continue;
        }
        let byte = word as u8;
        if word == u64::from(byte) * 0x0101_0101_0101_0101 {
            let run = HASH_LEN
                + win[p + HASH_LEN..]
                    .iter()
                    .take_while(|&&b| b == byte)
                    .count();
            if run >= 16 {
                if p > lit {
                    out.push(Instr::Add {
                        at: ws + lit,
                        len: p - lit,
                    });
                }
                out.push(Instr::Run { byte, len: run });
                p += run;
                lit = p;
                stride = 1;
                misses_until_wider = accel_after;
                continue;
            }
        }
        tindex.insert(word, p);
        p += stride;
        misses_until_wider -= 1;
        if misses_until_wider == 0 {
            stride = (stride + 2).min(max_stride);
            misses_until_wider = accel_after;
        }
    }
    budget.spend(read);
    if n > lit {
        out.push(Instr::Add {
            at: ws + lit,
            len: n - lit,
        });
    }
    out
}

/// Builds the three sections with the default code table.
#[derive(Default)]
struct Emitter {
    data: Vec<u8>,
    inst: Vec<u8>,
    addr: Vec<u8>,
    cache: AddressCache,
    /// Opcode index and size of a trailing ADD that a COPY may still join.
    last_add: Option<(usize, u64)>,
    /// Opcode index, size and mode of a trailing COPY that an ADD may still join.
    last_copy: Option<(usize, u64, u8)>,
}

impl Emitter {
    fn add(&mut self, bytes: &[u8]) {
        let size = bytes.len() as u64;
        self.data.extend_from_slice(bytes);
        if let Some((idx, csize, mode)) = self.last_copy.take()
            && let Some(op) = copy_add_opcode(csize, mode, size)
        {
            self.inst[idx] = op;
            self.last_add = None;
            return;
        }
        let (op, explicit) = add_opcode(size);
        let idx = self.inst.len();
        self.inst.push(op);
        if explicit {
            varint::write(&mut self.inst, size);
        }
        self.last_add = (!explicit && size <= 4).then_some((idx, size));
    }

    fn run(&mut self, byte: u8, size: u64) {
        self.data.push(byte);
        self.inst.push(RUN_OPCODE);
        varint::write(&mut self.inst, size);
        self.last_add = None;
        self.last_copy = None;
    }

    fn copy(&mut self, addr: u64, here: u64, size: u64) {
        let mode = self.cache.encode(addr, here, &mut self.addr);
        if let Some((idx, asize)) = self.last_add.take()
            && let Some(op) = add_copy_opcode(asize, size, mode)
        {
            self.inst[idx] = op;
            self.last_copy = None;
            return;
        }
        let (op, explicit) = copy_opcode(size, mode);
        let idx = self.inst.len();
        self.inst.push(op);
        if explicit {
            varint::write(&mut self.inst, size);
        }
        self.last_copy = (!explicit).then_some((idx, size, mode));
    }
}

/// Chooses the source segment (all source copies of the window, kept under xdelta3's
/// 32-bit limit) and encodes the instructions.
fn encode_window(
    instrs: &[Instr],
    target: &[u8],
    ws: usize,
    we: usize,
    checksum: bool,
) -> EncodedWindow {
    let tgt_len = we - ws;
    let limit = MAX_SEGMENT_PLUS_WINDOW - tgt_len as u64;
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    let mut longest: Option<(u64, usize)> = None;
    for i in instrs {
        if let Instr::Copy { src, len } = *i {
            lo = lo.min(src);
            hi = hi.max(src + len as u64);
            if longest.is_none_or(|(_, l)| len > l) {
                longest = Some((src, len));
            }
        }
    }
    let segment = longest.map(|(anchor, _)| {
        if hi - lo <= limit {
            (lo, hi - lo)
        } else {
            let start = anchor.saturating_sub(limit / 2).max(lo);
            (start, limit.min(hi - start))
        }
    });
    let (seg_off, seg_len) = segment.unwrap_or((0, 0));

    let mut e = Emitter::default();
    let mut pos = ws;
    let mut pending_add: Option<usize> = None;
    let flush = |e: &mut Emitter, pending: &mut Option<usize>, pos: usize| {
        if let Some(start) = pending.take() {
            e.add(&target[start..pos]);
        }
    };
    for i in instrs {
        match *i {
            Instr::Add { at, len } => {
                debug_assert_eq!(at, pos);
                pending_add.get_or_insert(at);
                pos += len;
            }
            Instr::Copy { src, len } if src < seg_off || src + len as u64 > seg_off + seg_len => {
                pending_add.get_or_insert(pos);
                pos += len;
            }
            Instr::Copy { src, len } => {
                flush(&mut e, &mut pending_add, pos);
                let here = seg_len + (pos - ws) as u64;
                e.copy(src - seg_off, here, len as u64);
                pos += len;
            }
            Instr::SelfCopy { from, len } => {
                flush(&mut e, &mut pending_add, pos);
                let here = seg_len + (pos - ws) as u64;
                e.copy(seg_len + (from - ws) as u64, here, len as u64);
                pos += len;
            }
            Instr::Run { byte, len } => {
                flush(&mut e, &mut pending_add, pos);
                e.run(byte, len as u64);
                pos += len;
            }
        }
    }
    flush(&mut e, &mut pending_add, pos);
    debug_assert_eq!(pos, we);
    EncodedWindow {
        segment: segment.filter(|_| seg_len > 0),
        target_len: tgt_len,
        checksum: if checksum {
            adler32::adler32(&target[ws..we])
        } else {
            0
        },
        sections: [e.data, e.inst, e.addr],
        data_block: None,
        data_block_framed: None,
    }
}

/// Applies secondary compression and serialises one window.
fn write_window(
    w: EncodedWindow,
    secondary: Option<&mut [SectionEncoder; 2]>,
    checksum: bool,
    buf: &mut Vec<u8>,
) -> Result<[u64; 3], NativeError> {
    let mut del_ind = 0u8;
    let [data, inst, addr] = w.sections;
    let mut sections = [data, inst, addr];
    if let Some(framed) = w.data_block_framed {
        sections[0] = framed;
        del_ind |= VCD_DATACOMP;
    }
    if let Some([inst_enc, addr_enc]) = secondary {
        let compress =
            |e: &mut SectionEncoder, sec: &[u8]| -> Result<Option<Vec<u8>>, NativeError> {
                if sec.len() < SECONDARY_MIN_INPUT {
                    return Ok(None);
                }
                let mut c = Vec::with_capacity(sec.len() / 2 + 16);
                varint::write(&mut c, sec.len() as u64);
                e.encode(sec, &mut c)?;
                Ok(Some(c))
            };
        let (i, a) = (&sections[1], &sections[2]);
        // Plain threads: the rayon pool is busy matching the next windows.
        let (ri, ra) = std::thread::scope(|s| {
            let h = s.spawn(|| compress(addr_enc, a));
            let ri = compress(inst_enc, i);
            (ri, h.join().expect("lzma thread"))
        });
        if let Some(c) = ri? {
            sections[1] = c;
            del_ind |= VCD_INSTCOMP;
        }
        if let Some(c) = ra? {
            sections[2] = c;
            del_ind |= VCD_ADDRCOMP;
        }
    }
    let mut win_ind = 0u8;
    if w.segment.is_some() {
        win_ind |= VCD_SOURCE;
    }
    if checksum {
        win_ind |= VCD_ADLER32;
    }
    buf.push(win_ind);
    if let Some((off, len)) = w.segment {
        varint::write(buf, len);
        varint::write(buf, off);
    }
    let [d, i, a] = &sections;
    let tgt = w.target_len as u64;
    let enc_len = 1
        + varint::len(tgt)
        + varint::len(d.len() as u64)
        + varint::len(i.len() as u64)
        + varint::len(a.len() as u64)
        + d.len()
        + i.len()
        + a.len()
        + if checksum { 4 } else { 0 };
    varint::write(buf, enc_len as u64);
    varint::write(buf, tgt);
    buf.push(del_ind);
    varint::write(buf, d.len() as u64);
    varint::write(buf, i.len() as u64);
    varint::write(buf, a.len() as u64);
    if checksum {
        buf.extend_from_slice(&w.checksum.to_be_bytes());
    }
    buf.extend_from_slice(d);
    buf.extend_from_slice(i);
    buf.extend_from_slice(a);
    Ok([d.len() as u64, i.len() as u64, a.len() as u64])
}

/// Order-0 entropy of `data` in bits per byte.
fn byte_entropy(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::native::matcher::tests::splitmix_bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A target unlike the reference still reads the reference at every candidate whose
    /// tag matches: the hook runs while matching, not only once per batch of windows.
    #[test]
    fn matching_an_unrelated_target_releases_the_reference_as_it_goes() {
        let reference = splitmix_bytes(8 << 20, 1);
        let target = splitmix_bytes(4 << 20, 2);
        let calls = AtomicUsize::new(0);
        let release = || {
            calls.fetch_add(1, Ordering::Relaxed);
        };
        let opts = EncodeOptions::default();
        let mut out = Vec::new();
        let summary = encode_releasing(&reference, &target, &mut out, &opts, &release).unwrap();
        // One call per 16 MiB indexed (one here) and one per batch (one window).
        let fixed = 2;
        assert_eq!(summary.windows, 1);
        assert!(
            calls.load(Ordering::Relaxed) > fixed + 2,
            "{} calls",
            calls.load(Ordering::Relaxed)
        );
    }
}
