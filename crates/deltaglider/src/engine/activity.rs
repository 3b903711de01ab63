//! What an engine has done since it was assembled: counters an operator exports (the
//! `serve` endpoint's `/metrics`), shared by every clone of the engine.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::codec::DeltaCodec;
use crate::error::Result;

/// A snapshot of an engine's counters ([`crate::Client::activity`]). Every field only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Activity {
    /// References found verified in the cache.
    pub reference_cache_hits: u64,
    /// References the cache did not hold (or could not serve), fetched from storage.
    pub reference_cache_misses: u64,
    /// Deltas encoded.
    pub encodes: u64,
    /// Time spent encoding them.
    pub encode_seconds: f64,
    /// Deltas decoded (rebuilding a download, or checking a delta before it is stored).
    pub decodes: u64,
    /// Time spent decoding them.
    pub decode_seconds: f64,
}

#[derive(Debug, Default)]
pub(crate) struct ActivityCounters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    encodes: AtomicU64,
    encode_nanos: AtomicU64,
    decodes: AtomicU64,
    decode_nanos: AtomicU64,
}

impl ActivityCounters {
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Activity {
        let seconds = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / 1e9;
        Activity {
            reference_cache_hits: self.cache_hits.load(Ordering::Relaxed),
            reference_cache_misses: self.cache_misses.load(Ordering::Relaxed),
            encodes: self.encodes.load(Ordering::Relaxed),
            encode_seconds: seconds(&self.encode_nanos),
            decodes: self.decodes.load(Ordering::Relaxed),
            decode_seconds: seconds(&self.decode_nanos),
        }
    }
}

fn count<T>(calls: &AtomicU64, nanos: &AtomicU64, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    calls.fetch_add(1, Ordering::Relaxed);
    nanos.fetch_add(spent, Ordering::Relaxed);
    out
}

/// A codec that times every encode and decode of the one it wraps into the engine's
/// counters.
#[derive(Debug)]
pub(crate) struct TimedCodec {
    inner: Arc<dyn DeltaCodec>,
    counters: Arc<ActivityCounters>,
}

impl TimedCodec {
    pub(crate) fn wrap(
        inner: Arc<dyn DeltaCodec>,
        counters: Arc<ActivityCounters>,
    ) -> Arc<dyn DeltaCodec> {
        Arc::new(TimedCodec { inner, counters })
    }
}

// A decorator forwards every method: one it forgot would silently fall back to the trait's
// default, skipping the wrapped codec's own.
#[deny(clippy::missing_trait_methods)]
impl DeltaCodec for TimedCodec {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn encode(&self, reference: &File, target: &File, out: &mut dyn Write) -> Result<()> {
        let c = &self.counters;
        count(&c.encodes, &c.encode_nanos, || {
            self.inner.encode(reference, target, out)
        })
    }

    fn encode_reporting(
        &self,
        reference: &File,
        target: &File,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let c = &self.counters;
        count(&c.encodes, &c.encode_nanos, || {
            self.inner
                .encode_reporting(reference, target, out, progress)
        })
    }

    fn decode(&self, reference: &File, delta: &File, out: &mut dyn Write) -> Result<()> {
        let c = &self.counters;
        count(&c.decodes, &c.decode_nanos, || {
            self.inner.decode(reference, delta, out)
        })
    }

    fn command_description(&self, target_name: &str) -> String {
        self.inner.command_description(target_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::NativeCodec;
    use std::io::{Seek, SeekFrom};

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    #[test]
    fn encodes_and_decodes_are_counted_and_timed() {
        let counters = Arc::new(ActivityCounters::default());
        let codec = TimedCodec::wrap(Arc::new(NativeCodec::default()), counters.clone());
        let reference = file(&b"the reference bytes ".repeat(500));
        let target = file(&b"the target bytes ".repeat(500));
        let mut delta = Vec::new();
        codec.encode(&reference, &target, &mut delta).unwrap();
        let mut out = Vec::new();
        codec.decode(&reference, &file(&delta), &mut out).unwrap();
        assert_eq!(out, b"the target bytes ".repeat(500));
        let a = counters.snapshot();
        assert_eq!((a.encodes, a.decodes), (1, 1));
        assert!(a.encode_seconds > 0.0 && a.decode_seconds > 0.0, "{a:?}");
        assert_eq!(codec.name(), NativeCodec::default().name());
        counters.cache_hit();
        counters.cache_miss();
        counters.cache_miss();
        let a = counters.snapshot();
        assert_eq!((a.reference_cache_hits, a.reference_cache_misses), (1, 2));
    }
}
