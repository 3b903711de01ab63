//! Which segments a writer merges. Merging every segment each time would rewrite the whole
//! index every few uploads: quadratic in the number of deltas, hours of rewriting for a
//! deltaspace of 100,000. Segments are instead grouped in tiers by size, each tier 8 times
//! the one below, and only a tier holding more than [`MERGE_AT`] segments is merged (into
//! one segment of about the next tier). Each entry is then rewritten once per tier, and a
//! deltaspace keeps at most about 9 segments per tier: some 40 for 100,000 deltas.

use super::segment::MAX_SEGMENT_BYTES;
use crate::storage::ObjectInfo;

/// A tier holding more segments than this is merged.
pub(super) const MERGE_AT: usize = 8;

/// A deltaspace with more segments than this (merges failing or forbidden) is not read:
/// its deltas get a HEAD each, as without an index.
pub(super) const MAX_SEGMENTS: usize = 1000;

/// Segments below this size are all in the lowest tier (about 80 entries).
const TIER_BASE: u64 = 32 << 10;

/// Each tier holds segments this many times larger than the one below.
const TIER_FACTOR: u64 = 8;

/// Segments this large are merged no more: a merge of them could pass the size a reader
/// accepts ([`MAX_SEGMENT_BYTES`]).
const FINAL_SIZE: u64 = MAX_SEGMENT_BYTES / 8;

fn tier(size: u64) -> u32 {
    let mut tier = 0;
    let mut bound = TIER_BASE;
    while size >= bound && bound < u64::MAX {
        tier += 1;
        bound = bound.saturating_mul(TIER_FACTOR);
    }
    tier
}

/// The segments to merge now, among `segments` (oldest first, as listed): the lowest tier
/// holding more than [`MERGE_AT`] of them, or past [`MAX_SEGMENTS`] the oldest that many,
/// so that the index becomes readable again. `None`: nothing to merge.
pub(super) fn to_merge(segments: &[ObjectInfo]) -> Option<Vec<ObjectInfo>> {
    if segments.len() > MAX_SEGMENTS {
        return Some(segments[..MAX_SEGMENTS].to_vec());
    }
    let mut tiers: std::collections::BTreeMap<u32, Vec<&ObjectInfo>> = Default::default();
    for s in segments.iter().filter(|s| s.size < FINAL_SIZE) {
        tiers.entry(tier(s.size)).or_default().push(s);
    }
    tiers
        .into_values()
        .find(|group| group.len() > MERGE_AT)
        .map(|group| group.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(n: usize, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: format!("s{n:05}"),
            size,
            last_modified: None,
            etag: None,
            metadata: None,
            content_type: None,
            headers: Default::default(),
            protection: Default::default(),
        }
    }

    #[test]
    fn tiers_grow_by_the_factor() {
        assert_eq!(tier(0), 0);
        assert_eq!(tier(TIER_BASE - 1), 0);
        assert_eq!(tier(TIER_BASE), 1);
        assert_eq!(tier(TIER_BASE * 8 - 1), 1);
        assert_eq!(tier(TIER_BASE * 8), 2);
        assert!(tier(u64::MAX) <= 20);
    }

    #[test]
    fn small_indexes_merge_as_one_tier() {
        let few: Vec<_> = (0..MERGE_AT).map(|n| segment(n, 400)).collect();
        assert_eq!(to_merge(&few), None);
        let more: Vec<_> = (0..=MERGE_AT).map(|n| segment(n, 400)).collect();
        assert_eq!(to_merge(&more).unwrap().len(), MERGE_AT + 1);
    }

    #[test]
    fn large_segments_are_left_while_a_small_tier_fills() {
        let mut s = vec![segment(0, 5 << 20), segment(1, 600 << 10)];
        s.extend((2..11).map(|n| segment(n, 1000)));
        let merged = to_merge(&s).unwrap();
        assert_eq!(merged.len(), 9);
        assert!(merged.iter().all(|m| m.size == 1000), "{merged:?}");
        // the lowest full tier first
        let mut two: Vec<_> = (0..9).map(|n| segment(n, 100 << 10)).collect();
        two.extend((9..18).map(|n| segment(n, 10)));
        assert!(to_merge(&two).unwrap().iter().all(|m| m.size == 10));
    }

    #[test]
    fn final_segments_are_never_merged_but_the_cap_still_holds() {
        let finals: Vec<_> = (0..20).map(|n| segment(n, FINAL_SIZE)).collect();
        assert_eq!(to_merge(&finals), None);
        let many: Vec<_> = (0..MAX_SEGMENTS + 5).map(|n| segment(n, 10)).collect();
        let oldest = to_merge(&many).unwrap();
        assert_eq!(oldest.len(), MAX_SEGMENTS);
        assert_eq!(oldest[0].key, "s00000");
    }

    /// What a deltaspace of 100,000 deltas written one segment of 10 entries at a time
    /// ends with: each merge writes the sum of what it read.
    #[test]
    fn a_hundred_thousand_deltas_end_in_few_segments_at_linear_log_cost() {
        const ENTRY: u64 = 300;
        let mut segments: Vec<ObjectInfo> = Vec::new();
        let (mut n, mut rewritten) = (0usize, 0u64);
        for _ in 0..10_000 {
            segments.push(segment(n, 10 * ENTRY));
            n += 1;
            while let Some(group) = to_merge(&segments) {
                let size: u64 = group.iter().map(|g| g.size).sum();
                segments.retain(|s| !group.iter().any(|g| g.key == s.key));
                segments.push(segment(n, size));
                n += 1;
                rewritten += size;
            }
        }
        let total = 100_000 * ENTRY;
        assert!(segments.len() <= 50, "{} segments", segments.len());
        assert!(
            rewritten < 8 * total,
            "{rewritten} bytes rewritten for {total}"
        );
    }
}
