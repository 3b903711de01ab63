//! Estimating what DeltaGlider would save on data that is not stored with it yet: a local
//! directory or a plain bucket. Files are grouped into deltaspaces as uploads would group
//! them; in each, the first eligible file (by name) stands for the reference and a sample of
//! the others is really delta-encoded against it; the rest is extrapolated from the sample.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::deltaspace;
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::transfer::filter::Filters;
use crate::transfer::plan::Entry;

/// Estimate for one deltaspace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeltaspaceEstimate {
    /// Deltaspace the files would land in, relative to the analyzed directory or prefix
    /// (empty for its root).
    pub deltaspace: String,
    /// All files, including those that would be stored whole.
    pub files: usize,
    /// Non-empty files with a delta-eligible extension; the first of them by name plays the
    /// reference.
    pub eligible: usize,
    /// Eligible files actually encoded (the reference not counted).
    pub sampled: usize,
    /// Total size of the files.
    pub original_bytes: u64,
    /// Reference, its zero-diff delta, the sampled deltas (or whole files where a delta
    /// would miss `max_ratio`), the unsampled rest scaled by the sample's ratio, and
    /// ineligible files at full size.
    pub estimated_stored_bytes: u64,
    /// The products of the eligible files (`deltaspace::product_stem` of their names), when
    /// there is more than one: every file would be a delta against the first, and deltas
    /// between products are large. Empty when the deltaspace holds one product.
    pub mixed_products: Vec<String>,
    /// Eligible files compressed as one stream (`.tgz`, `.gz`, `.xz`, …): a small change
    /// alters most of their bytes, so their deltas are large.
    pub compressed_files: usize,
}

/// Estimate for a directory or prefix.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnalyzeReport {
    /// The directory or `s3://bucket/prefix` analyzed, for display.
    pub source: String,
    /// Sum over [`deltaspaces`](Self::deltaspaces).
    pub files: usize,
    /// Sum over [`deltaspaces`](Self::deltaspaces).
    pub original_bytes: u64,
    /// Sum over [`deltaspaces`](Self::deltaspaces).
    pub estimated_stored_bytes: u64,
    /// `1 - stored/original` in percent; 0 when there is nothing to store.
    pub estimated_savings_percent: f64,
    /// In deltaspace name order.
    pub deltaspaces: Vec<DeltaspaceEstimate>,
    /// Deltaspaces whose files are of more than one product.
    pub mixed_deltaspaces: usize,
    /// Sum of [`DeltaspaceEstimate::compressed_files`].
    pub compressed_files: usize,
}

/// Where the files to analyze are.
pub enum AnalyzeSource<'a> {
    /// A local directory, read in place.
    Local(&'a Path),
    /// Objects under a prefix, downloaded one by one into a scratch directory as needed.
    Bucket {
        /// Bucket to read.
        bucket: &'a str,
        /// Key prefix, empty or ending in `/`: it is stripped from keys as a plain string.
        prefix: &'a str,
    },
}

/// Picks `n` items spread evenly over `items`.
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}

impl Engine {
    /// Estimates the savings on `source`, encoding at most `sample` files per deltaspace.
    pub async fn analyze(&self, source: AnalyzeSource<'_>, sample: usize) -> Result<AnalyzeReport> {
        let (label, entries) = match &source {
            AnalyzeSource::Local(dir) => (
                dir.display().to_string(),
                crate::transfer::scan_local(dir, &Filters::default())?,
            ),
            AnalyzeSource::Bucket { bucket, prefix } => {
                if !self.store().bucket_exists(bucket).await? {
                    return Err(Error::NoSuchBucket(bucket.to_string()));
                }
                let prefix = crate::transfer::as_dir_prefix(prefix);
                (
                    format!("s3://{bucket}/{prefix}"),
                    self.scan_remote(bucket, &prefix, &Filters::default())
                        .await?,
                )
            }
        };
        let scratch = tempfile::Builder::new()
            .prefix("deltaglider-analyze-")
            .tempdir()
            .ctx(|| "cannot create a temporary directory".into())?;
        let mut groups: std::collections::BTreeMap<String, Vec<Entry>> = Default::default();
        for e in entries {
            groups
                .entry(deltaspace::of_key(&e.path).to_string())
                .or_default()
                .push(e);
        }
        let mut report = AnalyzeReport {
            source: label,
            ..Default::default()
        };
        for (space, files) in groups {
            let mut est = DeltaspaceEstimate {
                deltaspace: space,
                files: files.len(),
                ..Default::default()
            };
            let (eligible, whole): (Vec<Entry>, Vec<Entry>) = files.into_iter().partition(|e| {
                e.size > 0
                    && self
                        .settings()
                        .policy
                        .is_eligible(deltaspace::file_name(&e.path))
            });
            est.eligible = eligible.len();
            let products: std::collections::BTreeSet<String> = eligible
                .iter()
                .map(|e| deltaspace::product_stem(&e.path))
                .collect();
            if products.len() > 1 {
                est.mixed_products = products.into_iter().collect();
                report.mixed_deltaspaces += 1;
            }
            est.compressed_files = eligible
                .iter()
                .filter(|e| crate::engine::reason::is_compressed_stream(&e.path))
                .count();
            report.compressed_files += est.compressed_files;
            for e in &whole {
                est.original_bytes += e.size;
                est.estimated_stored_bytes += e.size;
            }
            if let Some((reference, others)) = eligible.split_first() {
                est.original_bytes += eligible.iter().map(|e| e.size).sum::<u64>();
                est.estimated_stored_bytes += reference.size;
                let chosen = spread(others, sample);
                let ref_path = self.materialize(&source, reference, scratch.path()).await?;
                // The first file is stored as the reference plus a tiny delta of itself.
                est.estimated_stored_bytes += self.delta_size(&ref_path, &ref_path).await?;
                let (mut sampled_original, mut sampled_stored) = (0u64, 0u64);
                for e in &chosen {
                    let path = self.materialize(&source, e, scratch.path()).await?;
                    let delta = self.delta_size(&ref_path, &path).await?;
                    let stored = if (delta as f64) < self.settings().max_ratio * e.size as f64 {
                        delta
                    } else {
                        e.size
                    };
                    sampled_original += e.size;
                    sampled_stored += stored;
                    if !matches!(source, AnalyzeSource::Local(_)) {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                est.sampled = chosen.len();
                let rest: u64 = others.iter().map(|e| e.size).sum::<u64>() - sampled_original;
                let ratio = if sampled_original > 0 {
                    sampled_stored as f64 / sampled_original as f64
                } else {
                    1.0
                };
                est.estimated_stored_bytes += sampled_stored + (rest as f64 * ratio) as u64;
            }
            report.files += est.files;
            report.original_bytes += est.original_bytes;
            report.estimated_stored_bytes += est.estimated_stored_bytes;
            report.deltaspaces.push(est);
        }
        report.estimated_savings_percent = if report.original_bytes == 0 {
            0.0
        } else {
            100.0 - 100.0 * report.estimated_stored_bytes as f64 / report.original_bytes as f64
        };
        Ok(report)
    }

    /// A local path holding the entry's bytes (downloaded into `scratch` for buckets).
    async fn materialize(
        &self,
        source: &AnalyzeSource<'_>,
        e: &Entry,
        scratch: &Path,
    ) -> Result<PathBuf> {
        match source {
            AnalyzeSource::Local(dir) => Ok(dir.join(&e.path)),
            AnalyzeSource::Bucket { bucket, prefix } => {
                let local = scratch.join(crate::hashing::sha256_hex(e.path.as_bytes()));
                let key = format!("{}{}", crate::transfer::as_dir_prefix(prefix), e.path);
                self.get_to_file(bucket, &key, &local).await?;
                Ok(local)
            }
        }
    }

    /// Size of the delta of `target` against `reference`, encoded but not stored.
    async fn delta_size(&self, reference: &Path, target: &Path) -> Result<u64> {
        let (r, t) = (reference.to_path_buf(), target.to_path_buf());
        let codec = self.codec().clone();
        crate::task::blocking("encoder", move || {
            let reference =
                std::fs::File::open(&r).ctx(|| format!("cannot read {}", r.display()))?;
            let target = std::fs::File::open(&t).ctx(|| format!("cannot read {}", t.display()))?;
            let mut counter = CountingSink(0);
            codec.encode(&reference, &target, &mut counter)?;
            Ok(counter.0)
        })
        .await
    }
}

struct CountingSink(u64);

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_picks_evenly() {
        assert_eq!(spread(&[1, 2, 3], 5), [1, 2, 3]);
        assert_eq!(spread(&[0, 1, 2, 3, 4, 5, 6, 7], 4), [0, 2, 4, 6]);
        assert!(spread::<u8>(&[], 3).is_empty());
    }
}
