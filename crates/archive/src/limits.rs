//! What expansion may cost, and what it did.

use crate::Container;

/// Nesting depth that [`restore`](crate::restore) follows at most; a deeper
/// [`Limits::max_nesting`] is treated as this.
pub const MAX_NESTING: u32 = 8;

/// Bounds on what expansion may produce and spend; past them a stream stays compressed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// A stream's token form may be at most this many times its compressed length (plus
    /// 4 KiB); real encoders give 1.2-2x, a crafted stream up to about 30x.
    pub max_stream_ratio: u64,
    /// The whole expanded form may be at most this many bytes.
    pub max_expanded_len: u64,
    /// Streams expanded at most (each costs a pass over its bytes).
    pub max_streams: u64,
    /// A stream's plain bytes may be at most this many times its compressed length (plus
    /// 4 KiB) for the plain tier; text compresses 3-20x, a bomb up to 1032x.
    pub max_plain_ratio: u64,
    /// Encoder parameters tried on one stream at most; 0 turns the plain tier off.
    pub plain_attempts_per_stream: u64,
    /// Attempts that may fail over a whole file (nested containers included); once they
    /// are spent, only the parameters that reproduced the last stream are tried.
    pub plain_misses_per_file: u64,
    /// How deep a stream's plain bytes that are themselves a gzip or zip file are expanded
    /// in turn (0: never); at most [`MAX_NESTING`].
    pub max_nesting: u32,
    /// Plain bytes of a stream are expanded in turn only up to this length: they are held
    /// in memory while they are, together with their expanded form.
    pub max_nested_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stream_ratio: 8,
            max_expanded_len: 16 << 30,
            max_streams: 1_000_000,
            max_plain_ratio: 128,
            plain_attempts_per_stream: 10,
            plain_misses_per_file: 4096,
            max_nesting: 2,
            max_nested_len: 64 << 20,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_stream_ratio`].
    pub fn max_stream_ratio(mut self, ratio: u64) -> Self {
        self.max_stream_ratio = ratio;
        self
    }
    /// Sets [`Limits::max_expanded_len`].
    pub fn max_expanded_len(mut self, len: u64) -> Self {
        self.max_expanded_len = len;
        self
    }
    /// Sets [`Limits::max_streams`].
    pub fn max_streams(mut self, n: u64) -> Self {
        self.max_streams = n;
        self
    }
    /// Sets [`Limits::max_plain_ratio`].
    pub fn max_plain_ratio(mut self, ratio: u64) -> Self {
        self.max_plain_ratio = ratio;
        self
    }
    /// Sets [`Limits::plain_attempts_per_stream`].
    pub fn plain_attempts_per_stream(mut self, n: u64) -> Self {
        self.plain_attempts_per_stream = n;
        self
    }
    /// Sets [`Limits::plain_misses_per_file`].
    pub fn plain_misses_per_file(mut self, n: u64) -> Self {
        self.plain_misses_per_file = n;
        self
    }
    /// Sets [`Limits::max_nesting`].
    pub fn max_nesting(mut self, depth: u32) -> Self {
        self.max_nesting = depth;
        self
    }
    /// Sets [`Limits::max_nested_len`].
    pub fn max_nested_len(mut self, len: u64) -> Self {
        self.max_nested_len = len;
        self
    }
}

/// What [`expand`](crate::expand) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expansion {
    /// What the input was found to be.
    pub container: Container,
    /// Length of the input.
    pub input_len: u64,
    /// Length of the expanded form written.
    pub expanded_len: u64,
    /// Deflate streams of the input expanded, in token or plain form (not counting those
    /// inside them).
    pub streams: u64,
    /// Compressed bytes of those streams.
    pub stream_bytes: u64,
    /// Of those streams, the ones written as their plain bytes (the rest are token forms).
    pub plain_streams: u64,
    /// Deflate streams expanded inside plain streams' bytes, at any depth.
    pub nested_streams: u64,
    /// Encoder parameters tried that did not reproduce their stream, nested ones included.
    pub plain_misses: u64,
    /// Streams left compressed.
    pub streams_left: u64,
    /// Why the first stream left compressed was.
    pub first_left_reason: Option<String>,
}
