//! What this engine (and its clones) saw of a bucket moments ago: that the bucket exists,
//! a deltaspace's format, its live reference. A tree transfer uploads many files into the
//! same deltaspaces; asking the store again for each file would double its requests.
//!
//! Nothing here is trusted for integrity. A write into a bucket removed since fails on its
//! own (`NoSuchBucket`). A delta encoded against a reference remembered as live is followed,
//! as every delta is, by the check that its reference is still the one it was encoded
//! against (docs/format.md, "Lifecycle"); when that check fails the memory is dropped and
//! the store is asked again. Each entry is forgotten after [`FRESH_FOR`], and refreshed by
//! every check that finds it still true.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StorageFormat;
use super::reference::LiveReference;

/// How long something seen is remembered.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(5);

/// A bucket and a key in it.
type Place = (String, String);

fn place(bucket: &str, key: &str) -> Place {
    (bucket.to_string(), key.to_string())
}

/// Things seen recently, each with when.
#[derive(Debug, Default)]
pub(super) struct Recent {
    buckets: Mutex<HashMap<String, Instant>>,
    /// Deltaspace (bucket, deltaspace) -> its format.
    formats: Mutex<HashMap<Place, (StorageFormat, Instant)>>,
    /// Reference (bucket, key) -> what it was.
    references: Mutex<HashMap<Place, (LiveReference, Instant)>>,
}

fn fresh<K: std::hash::Hash + Eq, V: Clone>(
    map: &Mutex<HashMap<K, (V, Instant)>>,
    key: &K,
) -> Option<V> {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|(_, at)| at.elapsed() < FRESH_FOR)
        .map(|(v, _)| v.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (V, Instant)>>, key: K, value: V) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: a long-lived process (serve) writing into many deltaspaces forgets the stale.
    if map.len() >= 4096 {
        map.retain(|_, (_, at)| at.elapsed() < FRESH_FOR);
    }
    map.insert(key, (value, Instant::now()));
}

impl Recent {
    pub(super) fn bucket_exists(&self, bucket: &str) -> bool {
        let map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.get(bucket).is_some_and(|at| at.elapsed() < FRESH_FOR)
    }

    pub(super) fn saw_bucket(&self, bucket: &str) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(bucket.to_string(), Instant::now());
    }

    pub(super) fn format(&self, bucket: &str, space: &str) -> Option<StorageFormat> {
        fresh(&self.formats, &place(bucket, space))
    }

    pub(super) fn saw_format(&self, bucket: &str, space: &str, format: StorageFormat) {
        remember(&self.formats, place(bucket, space), format);
    }

    pub(super) fn reference(&self, bucket: &str, ref_key: &str) -> Option<LiveReference> {
        fresh(&self.references, &place(bucket, ref_key))
    }

    pub(super) fn saw_reference(&self, bucket: &str, ref_key: &str, live: &LiveReference) {
        remember(&self.references, place(bucket, ref_key), live.clone());
    }

    /// The reference (and so possibly the deltaspace's format) is not what was seen.
    pub(super) fn forget_reference(&self, bucket: &str, ref_key: &str) {
        let p = place(bucket, ref_key);
        self.references
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
        self.formats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&place(bucket, crate::deltaspace::of_key(ref_key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(sha: &str) -> LiveReference {
        LiveReference {
            sha256: sha.to_string(),
            metadata: Default::default(),
            protection: Default::default(),
        }
    }

    #[test]
    fn a_reference_is_remembered_per_bucket_and_key_until_forgotten() {
        let r = Recent::default();
        r.saw_reference("b", "app/reference.bin", &live("aa"));
        r.saw_format("b", "app", StorageFormat::Compatible);
        assert_eq!(r.reference("b", "app/reference.bin").unwrap().sha256, "aa");
        assert!(r.reference("c", "app/reference.bin").is_none());
        assert!(r.reference("b", "other/reference.bin").is_none());
        r.forget_reference("b", "app/reference.bin");
        assert!(r.reference("b", "app/reference.bin").is_none());
        assert_eq!(
            r.format("b", "app"),
            None,
            "the format goes with its reference"
        );
    }

    #[test]
    fn what_was_seen_too_long_ago_is_not_used() {
        let r = Recent::default();
        let old = Instant::now() - FRESH_FOR - Duration::from_millis(1);
        r.references
            .lock()
            .unwrap()
            .insert(place("b", "reference.bin"), (live("aa"), old));
        r.buckets.lock().unwrap().insert("b".into(), old);
        assert!(r.reference("b", "reference.bin").is_none());
        assert!(!r.bucket_exists("b"));
        r.saw_bucket("b");
        assert!(r.bucket_exists("b"));
    }
}
