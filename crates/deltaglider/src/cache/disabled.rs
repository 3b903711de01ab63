//! No caching: every reference is fetched again, into an anonymous temporary file that has
//! no name on disk and disappears with its handle.

use super::{CacheInfo, FillSlot, Lookup, ReferenceCache, VerifySummary};
use crate::error::Result;

/// A cache that never hits.
#[derive(Debug, Default)]
pub struct NoCache;

impl ReferenceCache for NoCache {
    fn describe(&self) -> String {
        "disabled (references are fetched for every operation)".into()
    }

    fn reference(&self, sha256: &str) -> Result<Lookup> {
        Ok(Lookup::Miss(FillSlot::uncached(sha256, false)?))
    }

    fn clear(&self) -> Result<()> {
        Ok(())
    }

    fn info(&self) -> Result<CacheInfo> {
        Ok(CacheInfo {
            backend: "disabled".into(),
            description: self.describe(),
            ..CacheInfo::default()
        })
    }

    fn verify_all(&self) -> Result<VerifySummary> {
        // Nothing is kept, so nothing can be wrong.
        Ok(VerifySummary::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::sha256_hex;
    use std::io::{Read, Write};

    #[test]
    fn misses_verify_what_is_written_and_keep_nothing() {
        let sha = sha256_hex(b"fetched");
        let mut slot = NoCache.reference(&sha).unwrap().miss().expect("never hits");
        assert!(!slot.is_cached() && !slot.is_locked());
        let mut w = slot.writer().unwrap();
        w.write_all(b"fetched").unwrap();
        let mut back = String::new();
        w.commit("t").unwrap().read_to_string(&mut back).unwrap();
        assert_eq!(back, "fetched");
        let mut w = slot.writer().unwrap();
        w.write_all(b"other").unwrap();
        assert!(
            w.commit("s3://b/k")
                .unwrap_err()
                .to_string()
                .contains("s3://b/k")
        );
        assert!(NoCache.reference(&sha).unwrap().hit().is_none());
        assert!(NoCache.reference("not a hash").is_err());
    }
}
