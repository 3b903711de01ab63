//! Match finding: a sampled hash index over the whole reference (no source-window limit)
//! and a per-window index of the target for repeats inside the target.

/// Bytes hashed at each indexed position.
pub const HASH_LEN: usize = 8;

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

/// Hash index of the reference: one slot per `step` reference bytes (rounded up to a
/// power of two, doubled), each holding a sampled position: `8 * len / step` bytes or so.
pub struct ReferenceIndex {
    table: Vec<u32>,
    bits: u32,
    step: usize,
}

impl ReferenceIndex {
    /// Indexes every `step`-th position of `reference`; `step` grows if positions would
    /// not fit the 32-bit slots.
    pub fn build(reference: &[u8], step: usize) -> ReferenceIndex {
        let mut step = step.max(1);
        while (reference.len() / step) as u64 >= u64::from(u32::MAX) {
            step *= 2;
        }
        let samples = reference.len() / step + 1;
        // Two slots per sample keeps most samples despite collisions.
        let bits = (samples.next_power_of_two().trailing_zeros() + 1).clamp(10, 40);
        let mut table = vec![0u32; 1usize << bits];
        if reference.len() >= HASH_LEN {
            let last = reference.len() - HASH_LEN;
            let mut pos = 0;
            while pos <= last {
                let h = hash(load_u64(reference, pos), bits);
                // Keep the first occurrence: earlier copies of repeated content win.
                if table[h] == 0 {
                    table[h] = (pos / step) as u32 + 1;
                }
                pos += step;
            }
        }
        ReferenceIndex { table, bits, step }
    }

    /// A reference position whose next 8 bytes may equal `word`.
    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let v = self.table[hash(word, self.bits)];
        (v != 0).then(|| (v as usize - 1) * self.step)
    }

    /// Bytes of memory the index uses.
    pub fn memory(&self) -> usize {
        self.table.len() * 4
    }
}

/// Hash index over positions of one target window (most recent occurrence wins).
pub struct TargetIndex {
    table: Vec<u32>,
    bits: u32,
}

impl TargetIndex {
    pub fn new(window_len: usize) -> TargetIndex {
        let bits = window_len
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(1)
            .clamp(10, 22);
        TargetIndex {
            table: vec![0u32; 1usize << bits],
            bits,
        }
    }

    #[inline]
    pub fn insert(&mut self, word: u64, offset: usize) {
        self.table[hash(word, self.bits)] = offset as u32 + 1;
    }

    #[inline]
    pub fn candidate(&self, word: u64) -> Option<usize> {
        let v = self.table[hash(word, self.bits)];
        (v != 0).then(|| v as usize - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let reference: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
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
