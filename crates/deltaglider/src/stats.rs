//! Bucket statistics: what DeltaGlider stores, what it saves, and what is left over.
//!
//! One listing of the keys gives stored sizes. Original sizes of deltas live in their
//! metadata: exact statistics read it for every delta (one HEAD each on S3, several in
//! flight), sampled statistics read a few per deltaspace and extrapolate.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::deltaspace::{self, DELTA_SUFFIX, REFERENCE_NAME};
use crate::engine::Engine;
use crate::engine::index::IndexViews;
use crate::error::{Error, Result};
use crate::metadata::DgMetadata;
use crate::storage::{ListRequest, ObjectStoreExt};

/// How original sizes are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMode {
    /// Read every delta's metadata.
    Exact,
    /// Read at most this many deltas' metadata per deltaspace and extrapolate.
    Sampled {
        /// Deltas read per deltaspace, counting those whose size the listing already gave.
        per_deltaspace: usize,
    },
}

/// Figures for one deltaspace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeltaspaceStats {
    /// The deltaspace (key prefix without trailing `/`; empty for the bucket root).
    pub deltaspace: String,
    /// `.delta` objects, the reference's zero-diff delta included.
    pub deltas: u64,
    /// Objects stored whole (direct and plain).
    pub whole: u64,
    /// Sizes of the originals of the deltas and whole objects (the reference is not one).
    pub original_bytes: u64,
    /// Bytes stored, the reference included.
    pub stored_bytes: u64,
    /// Size of the reference (`reference.bin`, or `reference.dgx` in the compact format); 0
    /// without one.
    pub reference_bytes: u64,
    /// A reference exists; with no delta beside it, it is an orphan.
    pub has_reference: bool,
    /// The storage format of the deltaspace, by its reference: `compatible` or `compact`
    /// (`None` without a reference).
    pub format: Option<&'static str>,
    /// True when some original sizes were extrapolated from a sample.
    pub estimated: bool,
}

/// Figures for a bucket or prefix.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketStats {
    /// Bucket examined.
    pub bucket: String,
    /// Key prefix examined, as given (a plain string prefix, not necessarily a directory).
    pub prefix: String,
    /// Logical objects (deltas and whole objects).
    pub objects: u64,
    /// Sum of [`DeltaspaceStats::deltas`].
    pub deltas: u64,
    /// Sum of [`DeltaspaceStats::whole`].
    pub whole: u64,
    /// Sum of [`DeltaspaceStats::original_bytes`].
    pub original_bytes: u64,
    /// Every byte under the prefix except DeltaGlider's internal objects.
    pub stored_bytes: u64,
    /// Sum of [`DeltaspaceStats::reference_bytes`].
    pub reference_bytes: u64,
    /// `1 - stored/original`, in percent.
    pub savings_percent: f64,
    /// References whose deltaspace holds no delta any more.
    pub orphaned_references: Vec<String>,
    /// True when any deltaspace's original sizes were extrapolated.
    pub estimated: bool,
    /// In deltaspace name order.
    pub deltaspaces: Vec<DeltaspaceStats>,
}

struct DeltaRef {
    key: String,
    stored: u64,
    original: Option<u64>,
}

impl Engine {
    /// Computes statistics for `s3://bucket/prefix`.
    pub async fn stats(&self, bucket: &str, prefix: &str, mode: StatsMode) -> Result<BucketStats> {
        if !self.store().bucket_exists(bucket).await? {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        let mut spaces: BTreeMap<String, DeltaspaceStats> = BTreeMap::new();
        let mut deltas: BTreeMap<String, Vec<DeltaRef>> = BTreeMap::new();
        let request = ListRequest {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        let mut pages = self.store().list_pages(bucket, request);
        let mut views = IndexViews::default();
        while let Some(page) = pages.try_next().await? {
            let mut objects = page.objects;
            self.describe_from_index(bucket, &mut views, &mut objects)
                .await;
            for o in objects {
                if deltaspace::is_internal(&o.key) {
                    continue;
                }
                let space_name = deltaspace::of_key(&o.key).to_string();
                let space = spaces
                    .entry(space_name.clone())
                    .or_insert_with(|| DeltaspaceStats {
                        deltaspace: space_name.clone(),
                        ..Default::default()
                    });
                space.stored_bytes += o.size;
                let name = deltaspace::file_name(&o.key);
                if deltaspace::is_reference_name(name) {
                    space.has_reference = true;
                    space.format = Some(if name == REFERENCE_NAME {
                        "compatible"
                    } else {
                        "compact"
                    });
                    space.reference_bytes += o.size;
                } else if o.key.ends_with(DELTA_SUFFIX) {
                    space.deltas += 1;
                    let original = o
                        .metadata
                        .as_ref()
                        .and_then(|m| DgMetadata::parse(m).file_size);
                    deltas.entry(space_name).or_default().push(DeltaRef {
                        key: o.key,
                        stored: o.size,
                        original,
                    });
                } else {
                    space.whole += 1;
                    space.original_bytes += o.size;
                }
            }
        }

        // Which deltas need their metadata read.
        let wanted: Vec<String> = deltas
            .values()
            .flat_map(|list| {
                let missing = list.iter().filter(|d| d.original.is_none());
                match mode {
                    StatsMode::Exact => missing.map(|d| d.key.clone()).collect::<Vec<_>>(),
                    StatsMode::Sampled { per_deltaspace } => {
                        let known = list.len() - missing.clone().count();
                        missing
                            .take(per_deltaspace.saturating_sub(known))
                            .map(|d| d.key.clone())
                            .collect()
                    }
                }
            })
            .collect();
        let store = self.store().clone();
        let fetched: BTreeMap<String, Option<u64>> =
            futures::stream::iter(wanted.into_iter().map(|key| {
                let store = store.clone();
                async move {
                    let size = store
                        .head_object(bucket, &key)
                        .await?
                        .and_then(|h| h.metadata)
                        .and_then(|m| DgMetadata::parse(&m).file_size);
                    Ok::<_, Error>((key, size))
                }
            }))
            .buffer_unordered(self.settings().list_concurrency.max(1) * 2)
            .try_collect()
            .await?;

        for (space_name, list) in deltas {
            let space = spaces.get_mut(&space_name).expect("deltaspace was counted");
            let known: Vec<(u64, u64)> = list
                .iter()
                .filter_map(|d| {
                    d.original
                        .or(fetched.get(&d.key).copied().flatten())
                        .map(|o| (d.stored, o))
                })
                .collect();
            let known_original: u64 = known.iter().map(|(_, o)| o).sum();
            space.original_bytes += known_original;
            let unknown: Vec<&DeltaRef> = list
                .iter()
                .filter(|d| {
                    d.original.is_none() && fetched.get(&d.key).copied().flatten().is_none()
                })
                .collect();
            if !unknown.is_empty() {
                space.estimated = true;
                // Versions in one deltaspace have similar sizes: extrapolate with the mean
                // original size of the sample (delta sizes would mislead: a zero-diff delta
                // is tiny for a full-size file). With no sample, count stored bytes.
                space.original_bytes += if known.is_empty() {
                    unknown.iter().map(|d| d.stored).sum::<u64>()
                } else {
                    known_original / known.len() as u64 * unknown.len() as u64
                };
            }
        }

        let mut stats = BucketStats {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            ..Default::default()
        };
        for space in spaces.values() {
            stats.objects += space.deltas + space.whole;
            stats.deltas += space.deltas;
            stats.whole += space.whole;
            stats.original_bytes += space.original_bytes;
            stats.stored_bytes += space.stored_bytes;
            stats.reference_bytes += space.reference_bytes;
            stats.estimated |= space.estimated;
            if space.has_reference && space.deltas == 0 {
                stats.orphaned_references.push(deltaspace::join(
                    &space.deltaspace,
                    match space.format {
                        Some("compact") => deltaspace::COMPACT_REFERENCE_NAME,
                        _ => REFERENCE_NAME,
                    },
                ));
            }
        }
        stats.savings_percent = if stats.original_bytes == 0 {
            0.0
        } else {
            100.0 - 100.0 * stats.stored_bytes as f64 / stats.original_bytes as f64
        };
        stats.deltaspaces = spaces.into_values().collect();
        Ok(stats)
    }
}
