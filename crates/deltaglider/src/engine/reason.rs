//! Why an upload was stored whole or saved little, as a code a program can act on.
//!
//! The engine records one [`StoreReason`] per upload; the command line groups them by cause
//! and explains each cause once, with what to do about it.

use serde::Serialize;

use crate::deltaspace;

/// Why an upload is stored the way it is, when that is not simply a good delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreReason {
    /// The first file of its deltaspace: it became the reference (plus a tiny self-delta).
    NewReference,
    /// The extension is not delta-eligible, so no delta was tried.
    NotEligible,
    /// `--no-delta`.
    NoDelta,
    /// An empty file: nothing to delta.
    Empty,
    /// The file is compressed as a whole (`.tgz`, `.gz`, `.xz`, …): a small change in the
    /// content changes most compressed bytes, so its delta was too large and it was stored
    /// whole.
    Compressed,
    /// The deltaspace's reference is another product (the file names share no stem), so the
    /// delta against it was large.
    MixedDeltaspace,
    /// The delta was not below `max_ratio` of the file, which was stored whole.
    DeltaTooLarge,
    /// Stored as a delta, but the delta is at least half the file.
    LowSavings,
    /// In the compact format, what would have been stored did not rebuild the file exactly
    /// (checked before anything is written), so the file was stored whole.
    NotRebuilt,
}

/// A delta at least this share of its file saves little.
pub const LOW_SAVINGS_RATIO: f64 = 0.5;

/// Names whose whole content is one compressed stream (as opposed to zip-style archives,
/// whose members are compressed one by one and so survive a small change).
pub fn is_compressed_stream(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".crate", ".tbz2", ".txz",
    ]
    .iter()
    .any(|e| lower.ends_with(e))
}

/// Why a delta of `delta_size` bytes for a `size`-byte file named `name`, encoded against a
/// reference made from `reference_name`, was poor; `None` if it was not (`stored_whole`: the
/// file was stored whole because the delta missed `max_ratio`).
pub fn poor_delta_reason(
    name: &str,
    reference_name: Option<&str>,
    delta_size: u64,
    size: u64,
    stored_whole: bool,
) -> Option<StoreReason> {
    let poor = stored_whole || delta_size as f64 >= LOW_SAVINGS_RATIO * size as f64;
    if !poor {
        return None;
    }
    let mixed = reference_name
        .is_some_and(|r| deltaspace::product_stem(r) != deltaspace::product_stem(name));
    Some(if mixed {
        StoreReason::MixedDeltaspace
    } else if is_compressed_stream(name) {
        StoreReason::Compressed
    } else if stored_whole {
        StoreReason::DeltaTooLarge
    } else {
        StoreReason::LowSavings
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poor_deltas_get_their_cause() {
        let r = |name, reference, delta, whole| {
            poor_delta_reason(name, Some(reference), delta, 100, whole)
        };
        assert_eq!(r("app-1.1.zip", "app-1.0.zip", 10, false), None);
        assert_eq!(
            r("app-1.1.zip", "app-1.0.zip", 60, false),
            Some(StoreReason::LowSavings)
        );
        assert_eq!(
            r("app-1.1.zip", "app-1.0.zip", 90, true),
            Some(StoreReason::DeltaTooLarge)
        );
        assert_eq!(
            r("app-1.1.tgz", "app-1.0.tgz", 95, true),
            Some(StoreReason::Compressed)
        );
        assert_eq!(
            r("ansible-2.0.zip", "botocore-1.0.zip", 95, true),
            Some(StoreReason::MixedDeltaspace)
        );
        assert_eq!(
            poor_delta_reason("a-1.tgz", None, 95, 100, true),
            Some(StoreReason::Compressed)
        );
    }

    #[test]
    fn compressed_streams() {
        for n in ["a.tgz", "a.tar.gz", "A.TAR.XZ", "x.bz2", "c-0.1.crate"] {
            assert!(is_compressed_stream(n), "{n}");
        }
        for n in ["a.zip", "a.whl", "a.tar", "a.jar"] {
            assert!(!is_compressed_stream(n), "{n}");
        }
    }
}
