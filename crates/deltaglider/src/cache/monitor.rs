//! Integrity monitor for the persistent cache (inotify on Linux, through `notify`): a change
//! to an entry that this process did not make invalidates the entry — it is removed and is a
//! miss in this process until rewritten here — and is logged as a security event
//! (`target: "security"`).
//!
//! What counts: a write to an entry's bytes or record in place, an attribute change (mode,
//! owner, link count, modification time), a deletion or a rename away. No deltaglider process
//! changes an entry in place — entries are written under temporary names and renamed into
//! place, and use is recorded in the record's access time, which is not reported as an
//! attribute change — so in-place changes are foreign whoever made them; a deletion is
//! foreign unless this process noted it ([`DirStore::own_changes`], within `OWN_WINDOW`).
//! New entries appearing (another run publishing into the shared cache) are not events.
//! Lookups re-verify every entry anyway; the monitor adds detection and logging of tampering
//! between lookups, and of tampering with a file while it is being used.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::dir_store::{DirStore, RECORD_SUFFIX};
use super::is_sha;
use crate::error::{Error, Result};

/// A running monitor; stops when dropped.
pub struct IntegrityMonitor {
    _watcher: RecommendedWatcher,
    invalidations: Arc<AtomicU64>,
}

impl std::fmt::Debug for IntegrityMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrityMonitor")
            .field("invalidations", &self.invalidations())
            .finish()
    }
}

/// The entry a path names (`<root>/ab/cd/<sha>` or `.rec`).
fn entry_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    let [a, b, name] = parts.as_slice() else {
        return None;
    };
    let sha = name.strip_suffix(RECORD_SUFFIX).unwrap_or(name);
    (is_sha(sha) && sha[..2] == **a && sha[2..4] == **b).then(|| sha.to_string())
}

/// What an event on an entry file means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Reads, and names appearing (a complete entry renamed into place).
    Benign,
    /// Bytes or attributes changed in place: never done by deltaglider.
    Tampered,
    /// The entry disappeared (deleted, or renamed away).
    Gone,
}

fn meaning(kind: &EventKind, still_there: impl Fn() -> bool) -> Meaning {
    match kind {
        EventKind::Modify(ModifyKind::Name(_)) => {
            if still_there() {
                Meaning::Benign
            } else {
                Meaning::Gone
            }
        }
        EventKind::Remove(_) => Meaning::Gone,
        EventKind::Modify(_) => Meaning::Tampered,
        _ => Meaning::Benign,
    }
}

impl IntegrityMonitor {
    /// Starts watching the store's directory tree.
    pub fn start(store: DirStore) -> Result<IntegrityMonitor> {
        let root = store.root().to_path_buf();
        let invalidations = Arc::new(AtomicU64::new(0));
        let count = invalidations.clone();
        let watch_root = root.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let event = match res {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(target: "security", "cache integrity monitor error: {}", crate::error::chain(&e));
                    return;
                }
            };
            if event.need_rescan() {
                tracing::warn!(target: "security", "cache integrity monitor lost events; entries are still verified on every lookup");
            }
            for path in &event.paths {
                let Some(sha) = entry_of(&watch_root, path) else {
                    continue;
                };
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                match meaning(&event.kind, || path.symlink_metadata().is_ok()) {
                    Meaning::Benign => continue,
                    Meaning::Gone if store.own_changes().is_ours(name) => continue,
                    Meaning::Gone | Meaning::Tampered => {}
                }
                tracing::warn!(
                    target: "security",
                    path = %path.display(),
                    kind = ?event.kind,
                    "cache entry changed by another process; invalidated"
                );
                count.fetch_add(1, Ordering::Relaxed);
                store.invalidate(&sha);
            }
        };
        let mut watcher = RecommendedWatcher::new(
            handler,
            notify::Config::default().with_follow_symlinks(false),
        )
        .map_err(|e| {
            Error::io(
                "cannot start the cache integrity monitor",
                std::io::Error::other(e),
            )
        })?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| {
                Error::io(
                    format!("cannot watch {}", root.display()),
                    std::io::Error::other(e),
                )
            })?;
        Ok(IntegrityMonitor {
            _watcher: watcher,
            invalidations,
        })
    }

    /// How many foreign changes invalidated an entry so far.
    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    #[test]
    fn paths_map_to_entries() {
        let root = Path::new("/c");
        let sha = "ab".repeat(32);
        assert_eq!(
            entry_of(root, &root.join("ab/ab").join(&sha)),
            Some(sha.clone())
        );
        let r = root.join("ab/ab").join(format!("{sha}.rec"));
        assert_eq!(entry_of(root, &r), Some(sha.clone()));
        assert_eq!(
            entry_of(root, &root.join("ab/cd").join(&sha)),
            None,
            "wrong dir"
        );
        assert_eq!(entry_of(root, &root.join("ab/ab/.tmp-00")), None);
        assert_eq!(entry_of(root, &root.join("ab/ab/.lock")), None);
        assert_eq!(entry_of(root, &root.join("ab")), None);
    }

    #[test]
    fn only_removals_can_be_ours_and_publishing_is_benign() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let meta = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        let name = EventKind::Modify(ModifyKind::Name(RenameMode::Any));
        let rm = EventKind::Remove(RemoveKind::File);
        let create = EventKind::Create(CreateKind::File);
        let open = EventKind::Access(AccessKind::Any);
        assert_eq!(meaning(&data, || true), Meaning::Tampered);
        assert_eq!(meaning(&meta, || true), Meaning::Tampered);
        assert_eq!(
            meaning(&name, || true),
            Meaning::Benign,
            "renamed into place"
        );
        assert_eq!(meaning(&name, || false), Meaning::Gone, "renamed away");
        assert_eq!(meaning(&rm, || false), Meaning::Gone);
        assert_eq!(meaning(&create, || true), Meaning::Benign);
        assert_eq!(meaning(&open, || true), Meaning::Benign);
    }
}
