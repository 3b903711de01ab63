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

/// The 64-bit hash of an 8-byte word; its top bits choose a slot, the bits below them
/// make the slot's tag (see [`SlotLayout`]).
#[inline]
fn hash(word: u64) -> u64 {
    word.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// How a table of `2^bits` `u32` slots packs a position and a tag into each slot: the
/// low `pos_bits` hold the position, the bits above hold more bits of the hash. A probe
/// whose tag differs cannot match, and is rejected without reading the bytes at the
/// stored position: on input that matches nothing (new compressed data) that read is a
/// cache miss into the reference or window for most probes. `u32::MAX` marks an empty
/// slot; positions stay below `2^pos_bits - 1`, so no entry equals it.
#[derive(Clone, Copy)]
struct SlotLayout {
    bits: u32,
    pos_bits: u32,
}

impl SlotLayout {
    const EMPTY: u32 = u32::MAX;

    /// A layout for positions `0..positions` in `2^bits` slots.
    fn new(bits: u32, positions: usize) -> SlotLayout {
        let pos_bits = (usize::BITS - positions.leading_zeros()).max(1);
        assert!(pos_bits < 32, "{positions} positions do not fit a slot");
        SlotLayout { bits, pos_bits }
    }

    #[inline]
    fn slot(self, h: u64) -> usize {
        (h >> (64 - self.bits)) as usize
    }

    #[inline]
    fn entry(self, h: u64, pos: usize) -> u32 {
        let tag_bits = 32 - self.pos_bits;
        let tag = (h >> (64 - self.bits - tag_bits)) as u32 & ((1u32 << tag_bits) - 1);
        (tag << self.pos_bits) | pos as u32
    }

    /// The position stored in `entry` if it was stored under `h`'s tag.
    #[inline]
    fn position(self, entry: u32, h: u64) -> Option<usize> {
        let mask = (1u32 << self.pos_bits) - 1;
        (entry != Self::EMPTY && entry & !mask == self.entry(h, 0))
            .then_some((entry & mask) as usize)
    }
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
/// the build's budget ([`MAX_INDEX_BYTES`] by default). A reference with more samples than
/// the budget has slots is sampled more sparsely (the step doubles), so the index, like the
/// rest of the encoder's memory, stays bounded whatever the reference's size.
pub struct ReferenceIndex {
    table: Vec<u32>,
    layout: SlotLayout,
    step: usize,
}

/// Default budget of the index: 64 MiB, 16 Mi slots. References up to 64 MiB keep the
/// configured step (at least one slot per sample); a larger one is sampled more sparsely,
/// which still finds every moved block that spans a few samples (matches are extended
/// backwards from the sample that found them), e.g. blocks of a few hundred bytes in a
/// 1 GiB reference.
pub const MAX_INDEX_BYTES: usize = 64 << 20;

/// Reference bytes indexed between two calls of the build's `release` hook.
const BUILD_CHUNK: usize = 16 << 20;

impl ReferenceIndex {
    /// Indexes every `step`-th position of `reference`; `step` grows if the index would
    /// exceed `max_bytes` (at least 4 KiB). Threads each fill one part of the table (by
    /// hash), so the result does not depend on the thread count.
    #[cfg(test)]
    pub fn build(reference: &[u8], step: usize, max_bytes: usize) -> ReferenceIndex {
        Self::build_releasing(reference, step, max_bytes, &|| {})
    }

    /// [`build`](Self::build), calling `release` after each 16 MiB of the reference (the
    /// caller may drop those pages of a mapping from memory).
    pub fn build_releasing(
        reference: &[u8],
        step: usize,
        max_bytes: usize,
        release: &dyn Fn(),
    ) -> ReferenceIndex {
        // The largest power-of-two table within the budget.
        let max_bits = (usize::BITS - 1 - (max_bytes / 4).max(1 << 10).leading_zeros()).min(30);
        let max_slots = 1usize << max_bits;
        let mut step = step.max(1);
        while reference.len() / step >= max_slots {
            step *= 2;
        }
        let samples = reference.len() / step + 1;
        // Two slots per sample keeps most samples despite collisions; at the budget, a
        // fuller table still keeps most of them (and memory bounded).
        let bits = (samples.next_power_of_two().trailing_zeros() + 1).clamp(10, max_bits);
        let layout = SlotLayout::new(bits, samples);
        let mut table = Vec::with_capacity(1usize << bits);
        super::prefer_huge_pages(&table);
        table.resize(1usize << bits, SlotLayout::EMPTY);
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
                            layout,
                            samples.clone(),
                            part,
                            part_bits,
                            slots,
                        )
                    });
                release();
            }
        }
        ReferenceIndex {
            table,
            layout,
            step,
        }
    }

    /// A reference position whose next 8 bytes may equal `word`.
    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let h = hash(word);
        let entry = self.table[self.layout.slot(h)];
        self.layout
            .position(entry, h)
            .map(|sample| sample * self.step)
    }

    /// Starts loading the slot for `word`.
    #[inline]
    pub fn prefetch(&self, word: u64) {
        prefetch(&self.table[self.layout.slot(hash(word))]);
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
    layout: SlotLayout,
    samples: std::ops::Range<usize>,
    part: usize,
    part_bits: u32,
    slots: &mut [u32],
) {
    let base = part * slots.len();
    let shift = layout.bits - part_bits;
    // Hashes of the samples ahead, so their slots can be prefetched.
    const AHEAD: usize = 32;
    let mut ring = [0u64; AHEAD];
    let hash_at = |i: usize| hash(load_u64(reference, i * step));
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
            let slot = layout.slot(hn);
            if slot >> shift == part {
                prefetch(&slots[slot - base]);
            }
        }
        let slot = layout.slot(h);
        if slot >> shift != part {
            continue;
        }
        let slot = &mut slots[slot - base];
        if *slot == SlotLayout::EMPTY {
            *slot = layout.entry(h, i);
        }
    }
}

/// Hash index over positions of one target window (most recent occurrence wins).
pub struct TargetIndex {
    table: Vec<u32>,
    layout: SlotLayout,
}

impl TargetIndex {
    /// Creates an empty index sized for a window of `window_len` bytes (2^10..=2^20 slots).
    pub fn new(window_len: usize) -> TargetIndex {
        let bits = window_len
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(1)
            .clamp(10, 20);
        // Filled by writing (not a zeroed allocation): slots of a lazily zeroed table are
        // read before they are written, and each such page then costs a second fault and a
        // TLB shootdown on every core running the encoder.
        let mut table = Vec::with_capacity(1usize << bits);
        super::prefer_huge_pages(&table);
        table.resize(1usize << bits, SlotLayout::EMPTY);
        TargetIndex {
            table,
            layout: SlotLayout::new(bits, window_len),
        }
    }

    /// Records window offset `offset` (< the window length) as the latest position of
    /// `word`.
    #[inline]
    pub fn insert(&mut self, word: u64, offset: usize) {
        let h = hash(word);
        self.table[self.layout.slot(h)] = self.layout.entry(h, offset);
    }

    /// The last offset inserted under `word`'s hash, if any; may be a hash collision,
    /// so callers must verify the bytes.
    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let h = hash(word);
        self.layout.position(self.table[self.layout.slot(h)], h)
    }

    /// Prefetches `word`'s slot ahead of a later [`Self::candidate`].
    #[inline]
    pub fn prefetch(&self, word: u64) {
        prefetch(&self.table[self.layout.slot(hash(word))]);
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
    fn slot_tags_keep_positions_and_reject_other_hashes() {
        for (bits, positions) in [(10, 1), (10, 5), (20, 1 << 20), (26, (1 << 25) + 1)] {
            let layout = SlotLayout::new(bits, positions);
            let mut rejected = 0;
            for (k, pos) in [0, positions / 2, positions - 1].into_iter().enumerate() {
                let h = hash(0x0123_4567_89AB_CDEF ^ k as u64);
                let entry = layout.entry(h, pos);
                assert_ne!(entry, SlotLayout::EMPTY);
                assert_eq!(layout.position(entry, h), Some(pos));
                assert_eq!(layout.position(SlotLayout::EMPTY, h), None);
                // Same slot, different tag: most such words are turned away unread.
                for other in 0..64u64 {
                    let h2 = (h & !((1u64 << (64 - bits)) - 1)) | (hash(other) >> bits);
                    assert_eq!(layout.slot(h2), layout.slot(h));
                    if layout.entry(h2, 0) != layout.entry(h, 0) {
                        assert_eq!(layout.position(entry, h2), None);
                        rejected += 1;
                    }
                }
            }
            assert!(
                rejected > 3 * 60,
                "{bits} bits, {positions} positions: {rejected}"
            );
        }
    }

    #[test]
    fn a_reference_beyond_the_budget_is_sampled_more_sparsely() {
        let reference = splitmix_bytes(1 << 20, 3);
        // 16 Ki slots: 256 Ki samples at step 4 would not fit.
        let budget = 64 << 10;
        let idx = ReferenceIndex::build(&reference, 4, budget);
        assert!(idx.memory() <= budget, "{}", idx.memory());
        assert_eq!(idx.step, 128);
        let sampled = (0..reference.len() - 8).step_by(idx.step);
        let found = sampled
            .clone()
            .filter(|&pos| idx.candidate(load_u64(&reference, pos)) == Some(pos))
            .count();
        assert!(found > sampled.count() * 3 / 4, "{found}");
        // Within the budget, the step stays.
        let idx = ReferenceIndex::build(&reference[..60_000], 4, budget);
        assert_eq!(idx.step, 4);
    }

    #[test]
    fn finds_sampled_positions() {
        let reference = splitmix_bytes(100_000, 1);
        let idx = ReferenceIndex::build(&reference, 8, MAX_INDEX_BYTES);
        let mut found = 0;
        for pos in (0..reference.len() - 8).step_by(8) {
            if idx.candidate(load_u64(&reference, pos)) == Some(pos) {
                found += 1;
            }
        }
        assert!(found > 12_500 * 3 / 4, "{found}");
    }
}
