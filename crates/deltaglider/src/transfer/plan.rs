//! Deciding what a sync moves, like `aws s3 sync`: a pure function of the two listings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One file on either side, by its path relative to the synced directory or prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path with `/` separators.
    pub path: String,
    /// Original size (for DeltaGlider objects, the size of the file, not of the delta).
    pub size: u64,
    /// File modification time, or the object's last-modified time; compared in whole seconds.
    pub modified: Option<DateTime<Utc>>,
}

/// Which way files move (decides how times are compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local to bucket, and bucket to bucket: copy when the source is newer.
    Upload,
    /// Bucket to local: as `Upload`, or with `exact_timestamps`, copy on any time difference.
    Download,
}

/// How to compare files that exist on both sides.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CompareOptions {
    /// Compare sizes only.
    pub size_only: bool,
    /// Downloads: copy same-sized files unless their times match exactly.
    pub exact_timestamps: bool,
    /// Delete destination files that are not in the source.
    pub delete: bool,
    /// Copy everything, comparing nothing (`cp -r`).
    pub always_copy: bool,
}

/// Why a file is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyReason {
    /// Not at the destination.
    Missing,
    /// Sizes differ (original sizes, for DeltaGlider objects).
    SizeDiffers,
    /// Same size, but the source was modified later.
    Newer,
    /// Same size, times differ, and `exact_timestamps` was asked for.
    TimeDiffers,
    /// `always_copy`: nothing was compared.
    Always,
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Copy the source file at `path` over the destination.
    Copy {
        /// Relative path, the same on both sides.
        path: String,
        /// Why it is copied.
        reason: CopyReason,
    },
    /// Delete the destination file at `path` (only with `delete`).
    Delete {
        /// Relative path at the destination.
        path: String,
    },
}

fn seconds(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp())
}

/// Plans a sync from `source` to `destination` (both already filtered).
pub fn plan(
    direction: Direction,
    source: &[Entry],
    destination: &[Entry],
    options: CompareOptions,
) -> Vec<Action> {
    let dest: BTreeMap<&str, &Entry> = destination.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut actions = Vec::new();
    for s in source {
        let reason = match dest.get(s.path.as_str()) {
            _ if options.always_copy => Some(CopyReason::Always),
            None => Some(CopyReason::Missing),
            Some(d) if d.size != s.size => Some(CopyReason::SizeDiffers),
            Some(_) if options.size_only => None,
            Some(d) => {
                let (src_t, dst_t) = (seconds(s.modified), seconds(d.modified));
                match direction {
                    Direction::Download if options.exact_timestamps => {
                        (src_t != dst_t).then_some(CopyReason::TimeDiffers)
                    }
                    _ => match (src_t, dst_t) {
                        (Some(a), Some(b)) if a > b => Some(CopyReason::Newer),
                        _ => None,
                    },
                }
            }
        };
        if let Some(reason) = reason {
            actions.push(Action::Copy {
                path: s.path.clone(),
                reason,
            });
        }
    }
    if options.delete {
        let src: std::collections::HashSet<&str> = source.iter().map(|e| e.path.as_str()).collect();
        actions.extend(
            destination
                .iter()
                .filter(|d| !src.contains(d.path.as_str()))
                .map(|d| Action::Delete {
                    path: d.path.clone(),
                }),
        );
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(path: &str, size: u64, t: i64) -> Entry {
        Entry {
            path: path.into(),
            size,
            modified: DateTime::from_timestamp(t, 0),
        }
    }

    #[test]
    fn unchanged_trees_move_nothing_both_ways() {
        let side = [e("a", 1, 100), e("b/c", 2, 200)];
        for dir in [Direction::Upload, Direction::Download] {
            assert!(plan(dir, &side, &side, CompareOptions::default()).is_empty());
        }
    }

    #[test]
    fn copies_missing_resized_and_newer() {
        let src = [
            e("new", 1, 1),
            e("resized", 5, 1),
            e("touched", 3, 500),
            e("same", 3, 100),
        ];
        let dst = [
            e("resized", 4, 1),
            e("touched", 3, 100),
            e("same", 3, 100),
            e("gone", 1, 1),
        ];
        let got = plan(
            Direction::Upload,
            &src,
            &dst,
            CompareOptions {
                delete: true,
                ..Default::default()
            },
        );
        assert_eq!(
            got,
            [
                Action::Copy {
                    path: "new".into(),
                    reason: CopyReason::Missing
                },
                Action::Copy {
                    path: "resized".into(),
                    reason: CopyReason::SizeDiffers
                },
                Action::Copy {
                    path: "touched".into(),
                    reason: CopyReason::Newer
                },
                Action::Delete {
                    path: "gone".into()
                },
            ]
        );
        let size_only = plan(
            Direction::Upload,
            &src,
            &dst,
            CompareOptions {
                size_only: true,
                ..Default::default()
            },
        );
        assert_eq!(size_only.len(), 2);
    }

    #[test]
    fn exact_timestamps_for_downloads() {
        let src = [e("f", 3, 100)];
        let older_local = [e("f", 3, 200)];
        assert!(
            plan(
                Direction::Download,
                &src,
                &older_local,
                CompareOptions::default()
            )
            .is_empty()
        );
        let exact = CompareOptions {
            exact_timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            plan(Direction::Download, &src, &older_local, exact).len(),
            1
        );
    }

    proptest! {
        #[test]
        fn syncing_to_a_copy_plans_nothing_and_to_empty_copies_all(
            entries in proptest::collection::btree_map("[a-c/]{1,5}", (0u64..5, 0i64..5), 0..12)
        ) {
            let side: Vec<Entry> = entries.iter().map(|(p, (s, t))| e(p, *s, *t)).collect();
            let with_delete = CompareOptions { delete: true, ..Default::default() };
            let none = plan(Direction::Upload, &side, &side, with_delete);
            prop_assert!(none.is_empty());
            let all = plan(Direction::Download, &side, &[], CompareOptions::default());
            prop_assert_eq!(all.len(), side.len());
        }
    }
}
