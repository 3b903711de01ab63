//! What the integrity monitor ([`crate::cache::monitor`]) needs from the store.
//!
//! The monitor sees changes to the entries' files, ours included. So that it reports only
//! foreign changes, the store notes each name it is about to rename into place or remove
//! ([`OwnChanges`]); an event on a name noted within [`OWN_WINDOW`] is ours. When the
//! monitor finds a foreign change it invalidates the entry: the entry is removed and stays
//! a miss in this process until this process publishes it again, so a file changed between
//! two lookups is never served even if it was changed back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DirStore, Inner};
use crate::cache::is_sha;

/// Names this process touched recently, so the integrity monitor can tell its own changes
/// from anyone else's.
#[derive(Debug, Default)]
pub struct OwnChanges {
    recent: Mutex<HashMap<String, Instant>>,
}

/// How long after noting a change its events count as ours.
pub const OWN_WINDOW: Duration = Duration::from_secs(3);

impl OwnChanges {
    /// Notes that this process is about to change `name`.
    pub fn note(&self, name: &str) {
        let mut m = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 4096 {
            m.retain(|_, t| t.elapsed() < OWN_WINDOW);
        }
        m.insert(name.to_string(), Instant::now());
    }

    /// True if this process changed `name` within [`OWN_WINDOW`].
    pub fn is_ours(&self, name: &str) -> bool {
        let m = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        m.get(name).is_some_and(|t| t.elapsed() < OWN_WINDOW)
    }
}

impl DirStore {
    /// Changes this process made recently (read by the integrity monitor).
    pub fn own_changes(&self) -> &OwnChanges {
        &self.inner.own
    }

    /// Marks an entry bad (it is a miss in this process until rewritten here) and removes it.
    pub fn invalidate(&self, sha256: &str) {
        if !is_sha(sha256) {
            return;
        }
        self.inner
            .invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_string());
        self.inner.remove(sha256);
    }

    /// True if the monitor invalidated the entry and it was not rewritten since.
    pub fn is_invalidated(&self, sha256: &str) -> bool {
        self.inner.is_invalidated(sha256)
    }
}

impl Inner {
    /// True if the entry is invalidated in this process.
    pub(super) fn is_invalidated(&self, sha: &str) -> bool {
        self.invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sha)
    }

    /// The entry was just published by this process: it is valid again.
    pub(super) fn revalidate(&self, sha: &str) {
        self.invalidated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sha);
    }
}
