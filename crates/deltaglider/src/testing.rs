//! For the project's own tests, benches and fuzz targets; not part of the SDK's interface.
//! Internals they drive directly (the engine without the client, the cache's layers, the
//! codec's entry points, the metadata parser) are re-exported here and nowhere else.
#![doc(hidden)]

pub use crate::engine::{Engine, EngineSettings, ExpansionLimits};

/// Whether this build has the `fail_point!` interleaving hooks compiled in (the cargo feature
/// `failpoints`, which only test builds turn on). The binary sets up `FAILPOINTS` only then.
pub const FAILPOINTS: bool = cfg!(feature = "failpoints");

/// The reference cache's layers, for the attack and fallback tests and the cache bench.
pub mod cache {
    pub use crate::cache::dir_store::{DirStore, DirStoreOptions};
    pub use crate::cache::encrypted::Encrypted;
    pub use crate::cache::persistent::{DEFAULT_MAX_BYTES, DEFAULT_TTL};
    pub use crate::cache::record::Record;
    pub use crate::cache::signed::{RecordSigner, Signed};
    pub use crate::cache::store::{Entry, EntryStore, PendingEntry, Usage};

    use std::sync::Arc;
    use std::time::Duration;

    use crate::cache::StoreCache;

    /// A cache straight over `store`: `backend` names it in `cache info`, `ttl` is written
    /// into each new record.
    pub fn store_cache(
        store: Arc<dyn EntryStore>,
        ttl: Option<Duration>,
        backend: &'static str,
        persistent: bool,
    ) -> StoreCache {
        StoreCache::new(store, ttl, backend, persistent)
    }

    /// The directory store at the bottom of a file-system cache (entry paths, invalidation
    /// state).
    pub fn dir_store(cache: &StoreCache) -> Option<&DirStore> {
        cache.dir_store()
    }
}

/// The native codec's entry points and the VCDIFF header parser.
pub mod codec {
    pub use crate::codec::NativeCodec;
    pub use crate::codec::native::{
        DecodeOptions, EncodeOptions, Mapped, decode, decode_slices, decode_slices_limited, encode,
    };
    pub use crate::codec::vcdiff_header::{VcdiffHeader, read_varint};

    /// The VCDIFF header at the start of a delta file.
    pub fn read_header(delta: &std::fs::File, operation: &str) -> crate::Result<VcdiffHeader> {
        crate::codec::read_header(delta, operation)
    }
}

/// SHA-256 helpers.
pub mod hashing {
    pub use crate::hashing::{HashingWriter, sha256_hex, sha256_reader};
}

/// The listing index's segment format and the rule that matches its entries to listed
/// deltas.
pub mod index {
    pub use crate::engine::index::{Entry, INDEXED_FIELDS, IndexView, Segment, SegmentError};
}

/// The `dg-*` metadata parser and its encodings.
pub mod metadata {
    pub use crate::metadata::{
        DgMetadata, UserMetadata, decode_text, encode_text, format_timestamp, parse_timestamp,
    };
}
