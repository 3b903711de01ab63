//! Where an entry's files live: `ab/cd/<sha256>` and `ab/cd/<sha256>.rec` under the root,
//! each level a directory reached through a [`SecureDir`] handle, never by path. Also the
//! walks over that tree (listing, usage, emptying) and the removal of one entry's two files,
//! which every other job uses: the validated open and housekeeping remove what they reject,
//! the integrity monitor removes what it invalidates.
//!
//! Walking only descends into two-hex-digit level directories, so a stray file or directory
//! in the root is never mistaken for part of the cache; with `repair`, something planted
//! where a level directory belongs (a symlink, a file) is removed rather than followed.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{DirStore, Inner};
use crate::cache::is_sha;
use crate::cache::secure_fs::SecureDir;
use crate::cache::store::Usage;
use crate::error::{IoContext, Result};

/// Suffix of record files.
pub const RECORD_SUFFIX: &str = ".rec";

fn is_pair(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl DirStore {
    /// Path of the bytes of an entry (for diagnostics and tests; never opened by name).
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.root()
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    /// Path of the record of an entry.
    pub fn record_path(&self, sha256: &str) -> PathBuf {
        let mut p = self.entry_path(sha256).into_os_string();
        p.push(RECORD_SUFFIX);
        PathBuf::from(p)
    }
}

impl Inner {
    /// The leaf directory `ab/cd` of an entry, created if `create`. Each level is opened
    /// without following links and checked like the root; `None` if a level does not exist.
    pub(super) fn leaf(&self, sha: &str, create: bool) -> io::Result<Option<SecureDir>> {
        let Some(a) = self.root.subdir(&sha[..2], create)? else {
            return Ok(None);
        };
        a.subdir(&sha[2..4], create)
    }

    /// Removes both files of an entry, noting them first as changes of ours so that the
    /// integrity monitor does not report them.
    pub(super) fn remove_in(&self, leaf: &SecureDir, sha: &str) {
        let rec = format!("{sha}{RECORD_SUFFIX}");
        self.own.note(sha);
        self.own.note(&rec);
        for name in [sha, rec.as_str()] {
            if let Err(e) = leaf.unlink(name) {
                tracing::warn!(path = %leaf.display(name).display(), "cannot remove cache file: {}", crate::error::chain(&e));
            }
        }
    }

    /// [`Inner::remove_in`] from the root; a missing level means nothing to remove.
    pub(super) fn remove(&self, sha: &str) {
        match self.leaf(sha, false) {
            Ok(Some(leaf)) => self.remove_in(&leaf, sha),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot reach cache entry to remove it: {}", crate::error::chain(&e))
            }
        }
    }

    /// Every leaf directory with the names in it.
    pub(super) fn leaves(&self) -> Vec<(SecureDir, Vec<String>)> {
        self.walk(false)
    }

    /// Every leaf directory with the names in it. With `repair`, a symlink or file planted
    /// where a level directory belongs is removed.
    pub(super) fn walk(&self, repair: bool) -> Vec<(SecureDir, Vec<String>)> {
        let mut out = Vec::new();
        let top = match self.root.names() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(root = %self.root.path().display(), "cannot list the cache: {}", crate::error::chain(&e));
                return out;
            }
        };
        let open = |parent: &SecureDir, name: &str| match parent.subdir(name, false) {
            Ok(d) => d,
            Err(e) => {
                let planted = parent.stat(name).ok().flatten().is_some_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        != rustix::fs::FileType::Directory
                });
                if repair && planted {
                    tracing::warn!(target: "security", "removing {}: {}", crate::error::chain(&e), parent.display(name).display());
                    let _ = parent.unlink(name);
                } else {
                    tracing::warn!(target: "security", "skipping cache directory: {}", crate::error::chain(&e));
                }
                None
            }
        };
        for a in top.iter().filter(|n| is_pair(n)) {
            let Some(sub) = open(&self.root, a) else {
                continue;
            };
            for b in sub
                .names()
                .unwrap_or_default()
                .iter()
                .filter(|n| is_pair(n))
            {
                if let Some(leaf) = open(&sub, b) {
                    let names = leaf.names().unwrap_or_default();
                    out.push((leaf, names));
                }
            }
        }
        out
    }

    /// The names of every entry's bytes (records, temporaries and locks left out).
    pub(super) fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, names) in self.leaves() {
            out.extend(names.into_iter().filter(|n| is_sha(n)));
        }
        out
    }

    /// Entries and bytes; a file that cannot be `stat`ed is not counted.
    pub(super) fn usage(&self) -> Usage {
        let mut u = Usage::default();
        for (leaf, names) in self.leaves() {
            for name in names.iter().filter(|n| is_sha(n)) {
                if let Ok(Some(st)) = leaf.stat(name) {
                    u.entries += 1;
                    u.bytes += u64::try_from(st.st_size).unwrap_or(0);
                }
            }
        }
        u
    }

    /// Removes every file in every leaf, then every level directory. The first failure
    /// stops and is returned.
    pub(super) fn clear(&self) -> Result<()> {
        let root = &self.root;
        for (leaf, names) in self.leaves() {
            for name in names {
                self.own.note(&name);
                leaf.unlink(&name)
                    .ctx(|| format!("cannot remove {}", leaf.display(&name).display()))?;
            }
        }
        for a in root.names().ctx(|| "cannot list the cache".into())? {
            if is_pair(&a) {
                root.remove_tree(&a)
                    .ctx(|| format!("cannot remove {}", root.display(&a).display()))?;
            }
        }
        self.approx_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::DirStoreOptions;
    use super::super::test_support::{fill, read, store};
    use crate::cache::ReferenceCache;
    use crate::cache::store::EntryStore;
    use crate::hashing::sha256_hex;

    #[test]
    fn symlink_planted_at_a_level_directory_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (s, c) = store(&t.path().join("c"), DirStoreOptions::default());
        let sha = sha256_hex(b"z");
        std::os::unix::fs::symlink(outside.path(), s.root().join(&sha[..2])).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        // Filling falls back to an uncached handle instead of writing through the link.
        let mut slot = c.reference(&sha).unwrap().miss().unwrap();
        let mut w = slot.writer().unwrap();
        assert!(!w.is_cached());
        w.write_all(b"z").unwrap();
        assert_eq!(read(w.commit("t").unwrap()), b"z");
        drop(slot);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Housekeeping removes the planted link; the level works again.
        s.maintain().unwrap();
        assert!(std::fs::symlink_metadata(s.root().join(&sha[..2])).is_err());
        let mut slot = c.reference(&sha).unwrap().miss().unwrap();
        let mut w = slot.writer().unwrap();
        assert!(w.is_cached());
        w.write_all(b"z").unwrap();
        w.commit("t").unwrap();
        assert!(c.lookup(&sha).unwrap().is_some());
    }

    #[test]
    fn clear_and_info() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        fill(&c, b"1");
        fill(&c, b"22");
        let info = c.info().unwrap();
        assert_eq!((info.entries, info.bytes), (2, 3));
        assert_eq!(info.location.as_deref(), Some(s.root()));
        c.clear().unwrap();
        assert_eq!(c.info().unwrap().entries, 0);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
