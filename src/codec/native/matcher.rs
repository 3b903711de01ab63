//! Match finding: a sampled hash index over the whole reference (no source-window limit)
//! and a per-window index of the target for repeats inside the target.

use rayon::prelude::*;

/// Bytes hashed at each indexed position.
pub const HASH_LEN: usize = 8;

/// Reads 8 bytes at `pos` as a little-endian `u64`; panics if fewer than 8 remain.
#[inline]
pub fn load_u64(buf: &[u8], pos: usize) -> u64 {
    u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"))
}

#[inline]
fn hash(word: u64, bits: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// Length of the common prefix of `a` and `b`.
#[inline]
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = load_u64(a, i) ^ load_u64(b, i);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length of the common suffix of `a[..a_end]` and `b[..b_end]`, at most `max`.
#[inline]
pub fn common_suffix(a: &[u8], a_end: usize, b: &[u8], b_end: usize, max: usize) -> usize {
    let n = max.min(a_end).min(b_end);
    let mut i = 0;
    while i < n && a[a_end - 1 - i] == b[b_end - 1 - i] {
        i += 1;
    }
    i
}

/// Hints the CPU to fetch the cache line holding `slot`.
#[inline(always)]
fn prefetch<T>(slot: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; any address is allowed.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch(
            (slot as *const T).cast::<i8>(),
            core::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// Hash index of the reference: two slots per `step` reference bytes (rounded up to a
/// power of two), each holding the first sampled position with that hash: about
/// `8 * len / step` bytes of memory whatever the reference's content, and never more than
/// [`MAX_INDEX_BYTES`] (the step grows for references above 256 MiB).
pub struct ReferenceIndex {
    table: Vec<u32>,
    bits: u32,
    step: usize,
}

const EMPTY: u32 = u32::MAX;

/// Largest index: 256 MiB, two slots for each of 32 Mi samples. Blocks of a larger
/// reference are sampled more sparsely; moved blocks are found as long as they span a
/// few samples.
pub const MAX_INDEX_BYTES: usize = 256 << 20;

/// Reference bytes indexed between two calls of the build's `release` hook.
const BUILD_CHUNK: usize = 64 << 20;

impl ReferenceIndex {
    /// Indexes every `step`-th position of `reference`; `step` grows if the index would
    /// exceed [`MAX_INDEX_BYTES`]. Threads each fill one part of the table (by hash), so
    /// the result does not depend on the thread count.
    pub fn build(reference: &[u8], step: usize) -> ReferenceIndex {
        Self::build_releasing(reference, step, &|| {})
    }

    /// [`build`](Self::build), calling `release` after each 64 MiB of the reference (the
    /// caller may drop those pages of a mapping from memory).
    pub fn build_releasing(reference: &[u8], step: usize, release: &dyn Fn()) -> ReferenceIndex {
        let max_samples = MAX_INDEX_BYTES / 4 / 2;
        let mut step = step.max(1);
        while reference.len() / step >= max_samples {
            step *= 2;
        }
        let samples = reference.len() / step + 1;
        // Two slots per sample keeps most samples despite collisions.
        let bits = (samples.next_power_of_two().trailing_zeros() + 1).clamp(10, 40);
        let mut table = Vec::with_capacity(1usize << bits);
        super::prefer_huge_pages(&table);
        table.resize(1usize << bits, EMPTY);
        if reference.len() >= HASH_LEN {
            let count = (reference.len() - HASH_LEN) / step + 1;
            let parts = rayon::current_num_threads()
                .clamp(1, 64)
                .next_power_of_two();
            let part_bits = parts.trailing_zeros();
            let part_len = table.len() / parts;
            let per_chunk = (BUILD_CHUNK / step).max(1);
            // Chunks in order, so the first sampled position of a hash still wins.
            for first in (0..count).step_by(per_chunk) {
                let samples = first..(first + per_chunk).min(count);
                table
                    .par_chunks_mut(part_len)
                    .enumerate()
                    .for_each(|(part, slots)| {
                        insert_samples(
                            reference,
                            step,
                            bits,
                            samples.clone(),
                            part,
                            part_bits,
                            slots,
                        )
                    });
                release();
            }
        }
        ReferenceIndex { table, bits, step }
    }

    /// A reference position whose next 8 bytes may equal `word`.
    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let v = self.table[hash(word, self.bits)];
        (v != EMPTY).then(|| v as usize * self.step)
    }

    /// Starts loading the slot for `word`.
    #[inline]
    pub fn prefetch(&self, word: u64) {
        prefetch(&self.table[hash(word, self.bits)]);
    }

    /// Bytes of memory the index uses.
    pub fn memory(&self) -> usize {
        self.table.len() * 4
    }
}

/// Inserts the sampled positions `samples` (indexes of samples, `step` bytes apart) whose
/// hash falls in table part `part` into that part's `slots`, keeping the first position
/// per slot.
fn insert_samples(
    reference: &[u8],
    step: usize,
    bits: u32,
    samples: std::ops::Range<usize>,
    part: usize,
    part_bits: u32,
    slots: &mut [u32],
) {
    let base = part * slots.len();
    let shift = bits - part_bits;
    // Hashes of the samples ahead, so their slots can be prefetched.
    const AHEAD: usize = 32;
    let mut ring = [0usize; AHEAD];
    let hash_at = |i: usize| hash(load_u64(reference, i * step), bits);
    for (k, r) in ring.iter_mut().enumerate().take(samples.len()) {
        *r = hash_at(samples.start + k);
    }
    for i in samples.clone() {
        let k = i - samples.start;
        let h = ring[k % AHEAD];
        let next = i + AHEAD;
        if next < samples.end {
            let hn = hash_at(next);
            ring[k % AHEAD] = hn;
            if hn >> shift == part {
                prefetch(&slots[hn - base]);
            }
        }
        if h >> shift != part {
            continue;
        }
        let slot = &mut slots[h - base];
        if *slot == EMPTY {
            *slot = i as u32;
        }
    }
}

/// Hash index over positions of one target window (most recent occurrence wins).
pub struct TargetIndex {
    table: Vec<u32>,
    bits: u32,
}

impl TargetIndex {
    /// Creates an empty index sized for a window of `window_len` bytes (2^10..=2^20 slots).
    pub fn new(window_len: usize) -> TargetIndex {
        let bits = window_len
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(1)
            .clamp(10, 20);
        TargetIndex {
            table: vec![0u32; 1usize << bits],
            bits,
        }
    }

    /// Records window offset `offset` (< `u32::MAX`) as the latest position of `word`.
    #[inline]
    pub fn insert(&mut self, word: u64, offset: usize) {
        self.table[hash(word, self.bits)] = offset as u32 + 1;
    }

    /// The last offset inserted under `word`'s hash, if any; may be a hash collision,
    /// so callers must verify the bytes.
    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let v = self.table[hash(word, self.bits)];
        (v != 0).then(|| v as usize - 1)
    }

    /// Prefetches `word`'s slot ahead of a later [`Self::candidate`].
    #[inline]
    pub fn prefetch(&self, word: u64) {
        prefetch(&self.table[hash(word, self.bits)]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Well-mixed pseudo-random bytes.
    pub fn splitmix_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    }

    #[test]
    fn prefix_and_suffix() {
        let a = b"0123456789abcdefXYZ";
        let b = b"0123456789abcdefXYz";
        assert_eq!(common_prefix(a, b), 18);
        assert_eq!(common_prefix(a, &b[..5]), 5);
        assert_eq!(common_suffix(a, 10, b, 10, 100), 10);
        assert_eq!(common_suffix(a, 10, b, 10, 3), 3);
        assert_eq!(common_suffix(a, 19, b, 19, 100), 0);
    }

    #[test]
    fn finds_sampled_positions() {
        let reference = splitmix_bytes(100_000, 1);
        let idx = ReferenceIndex::build(&reference, 8);
        let mut found = 0;
        for pos in (0..reference.len() - 8).step_by(8) {
            if idx.candidate(load_u64(&reference, pos)) == Some(pos) {
                found += 1;
            }
        }
        assert!(found > 12_500 * 3 / 4, "{found}");
    }
}
