//! The cross-process fill lock: while one process downloads a missing reference into the
//! cache, another one that misses the same entry waits for it and then finds its entry,
//! instead of downloading the same bytes a second time.
//!
//! The lock is an `flock` on `ab/cd/.lock` in the entry's leaf, opened relative to the leaf
//! handle without following links and checked like an entry (regular, one link, ours,
//! private, empty), so a planted lock file cannot point us at another file. The lock only
//! saves work: publication is atomic with or without it, and bytes are verified by hash
//! whoever wrote them. So every way of not getting it (a leaf or lock file that cannot be
//! used, `flock` failing, waiting longer than [`FILL_LOCK_WAIT`]) is logged and answered
//! with no lock, never with an error: the worst case is a duplicate download. Stores opened
//! without [`fill_locks`](super::DirStoreOptions::fill_locks) (a private cache, used by one
//! process) take no lock at all.

use std::io;
use std::time::{Duration, Instant};

use super::Inner;
use crate::cache::{FillLock, is_sha};

/// Per-leaf lock file serializing fills ([`DirStoreOptions::fill_locks`](super::DirStoreOptions::fill_locks)).
pub const LOCK_NAME: &str = ".lock";
/// Longest wait for another process's fill.
pub const FILL_LOCK_WAIT: Duration = Duration::from_secs(600);

impl Inner {
    /// Takes the fill lock of an entry, waiting for another holder; the lock is released
    /// when the returned [`FillLock`] is dropped.
    pub(super) fn lock_for_fill(&self, sha256: &str) -> FillLock {
        if !self.opts.fill_locks || !is_sha(sha256) {
            return FillLock::none();
        }
        let fd = match self.leaf(sha256, true).and_then(|leaf| match leaf {
            Some(leaf) => leaf.open_lock(LOCK_NAME),
            None => Err(io::ErrorKind::NotFound.into()),
        }) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(target: "security", sha256, "cannot use the cache fill lock: {}", crate::error::chain(&e));
                return FillLock::none();
            }
        };
        let start = Instant::now();
        let mut told = false;
        loop {
            match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return FillLock::held(fd),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => {
                    tracing::warn!(
                        sha256,
                        "cannot take the cache fill lock: {}",
                        crate::error::chain(&e)
                    );
                    return FillLock::none();
                }
            }
            if start.elapsed() > FILL_LOCK_WAIT {
                tracing::warn!(
                    sha256,
                    "gave up waiting for another process filling the same cache entry"
                );
                return FillLock::none();
            }
            if !told {
                tracing::info!(
                    sha256,
                    "waiting for another process filling the same cache entry"
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
