//! Migration away from the old shared caches: the Python tool's shared cache
//! (`/tmp/.deltaglider/`) and its per-process directories (`/tmp/deltaglider-XXXXXXXX`, left
//! behind by crashed runs), plus private directories of this tool whose process was killed.
//! They are found by name, owner and lock state only: nothing inside them is ever read, and
//! removal never follows a symlink.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::ephemeral::EPHEMERAL_PREFIX;
use super::secure_fs::{self, Policy, SecureDir};

/// A directory not used for this long is assumed not to belong to a running Python process.
pub const IN_USE_GRACE: Duration = Duration::from_secs(10 * 60);

/// What kind of leftover a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyKind {
    /// `/tmp/.deltaglider`: the Python tool's shared cache (before v5.0.3).
    SharedCache,
    /// `/tmp/deltaglider-XXXXXXXX`: a Python process's private cache.
    PythonProcessDir,
    /// `$TMPDIR/deltaglider-rs-XXXXXX`: a private cache of this tool whose process died.
    OrphanedPrivateDir,
}

/// One leftover cache.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyCache {
    /// Where it is (not canonicalized; may be a symlink).
    pub path: PathBuf,
    /// What it was recognized as, by name.
    pub kind: LegacyKind,
    /// Owner of the path itself (`lstat`, so a symlink's own owner).
    pub owner_uid: u32,
    /// Owned by the user running this.
    pub ours: bool,
    /// A symlink (possibly planted), not a directory.
    pub symlink: bool,
    /// Seconds since it last changed.
    pub idle_secs: u64,
    /// True if [`remove_legacy_caches`] will delete it.
    pub removable: bool,
    /// Why it will not be deleted; `None` when [`removable`](Self::removable).
    pub reason: Option<String>,
}

/// Result of deleting one leftover.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// The leftover's path.
    pub path: PathBuf,
    /// True if it is gone.
    pub removed: bool,
    /// Why removal failed; `None` when [`removed`](Self::removed).
    pub error: Option<String>,
}

/// The directories searched: `/tmp` (where the Python tool always wrote) and `$TMPDIR`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/tmp")];
    let tmp = std::env::temp_dir();
    if !dirs.contains(&tmp) {
        dirs.push(tmp);
    }
    dirs
}

fn python_mkdtemp_name(name: &str) -> bool {
    // tempfile.mkdtemp(prefix="deltaglider-"): 8 characters of [a-z0-9_].
    name.strip_prefix("deltaglider-").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Finds leftovers in the usual places ([`search_dirs`]).
pub fn find_legacy_caches() -> Vec<LegacyCache> {
    find_legacy_caches_in(&search_dirs())
}

/// Finds leftovers in the given temp directories.
pub fn find_legacy_caches_in(dirs: &[PathBuf]) -> Vec<LegacyCache> {
    let me = secure_fs::euid();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in read.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let kind = if name == ".deltaglider" {
                LegacyKind::SharedCache
            } else if python_mkdtemp_name(&name) {
                LegacyKind::PythonProcessDir
            } else if name.starts_with(EPHEMERAL_PREFIX) {
                LegacyKind::OrphanedPrivateDir
            } else {
                continue;
            };
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let symlink = meta.file_type().is_symlink();
            if !symlink && !meta.is_dir() {
                continue;
            }
            let owner_uid = std::os::unix::fs::MetadataExt::uid(&meta);
            let idle_secs = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default()
                .as_secs();
            let mut reason = None;
            if kind == LegacyKind::OrphanedPrivateDir && !symlink {
                // A live process of ours holds a lock on its directory.
                let live = secure_fs::open_nofollow(&path)
                    .map(|fd| !secure_fs::try_lock_exclusive(&fd))
                    .unwrap_or(true);
                if live {
                    continue;
                }
            }
            if owner_uid != me {
                reason = Some(format!(
                    "owned by uid {owner_uid}, not by you; its owner (or root) must delete it"
                ));
            } else if kind == LegacyKind::PythonProcessDir
                && Duration::from_secs(idle_secs) < IN_USE_GRACE
            {
                reason =
                    Some("changed in the last 10 minutes; may belong to a running process".into());
            }
            out.push(LegacyCache {
                path,
                kind,
                owner_uid,
                ours: owner_uid == me,
                symlink,
                idle_secs,
                removable: reason.is_none(),
                reason,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Deletes the removable leftovers (symlinks are removed, never followed).
pub fn remove_legacy_caches(found: &[LegacyCache]) -> Vec<Removal> {
    found
        .iter()
        .filter(|c| c.removable)
        .map(|c| {
            let result = remove_one(&c.path);
            Removal {
                path: c.path.clone(),
                removed: result.is_ok(),
                error: result.err().map(|e| crate::error::chain(&e)),
            }
        })
        .collect()
}

fn remove_one(path: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Err(std::io::Error::other("not a removable path"));
    };
    let fd = rustix::fs::open(
        parent,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    SecureDir::from_parts(fd, parent.to_path_buf(), Policy { strict: false }).remove_tree(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn age(p: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::open(p).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn finds_and_removes_leftovers_but_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"p").unwrap();
        let tmp = t.path();
        // The Python shared cache, with content.
        std::fs::create_dir_all(tmp.join(".deltaglider/cache/x")).unwrap();
        std::fs::write(tmp.join(".deltaglider/cache/x/ref.bin"), b"r").unwrap();
        // An old Python per-process dir, containing a symlink out.
        let old_py = tmp.join("deltaglider-ab_cd123");
        std::fs::create_dir(&old_py).unwrap();
        std::os::unix::fs::symlink(outside.path(), old_py.join("link")).unwrap();
        age(&old_py);
        // A recent one: maybe in use.
        std::fs::create_dir(tmp.join("deltaglider-zzzzzzzz")).unwrap();
        // Not ours by name: project scripts, other tools.
        for n in [
            "deltaglider-s3",
            "deltaglider-quickstart",
            "deltaglider-abcdefghi",
        ] {
            std::fs::create_dir(tmp.join(n)).unwrap();
        }
        std::fs::write(tmp.join("deltaglider-delta-abc123"), b"f").unwrap();
        // A live private dir of ours (locked) and a dead one.
        let live = tmp.join(format!("{EPHEMERAL_PREFIX}live00"));
        std::fs::create_dir(&live).unwrap();
        let held = File::open(&live).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
        let dead = tmp.join(format!("{EPHEMERAL_PREFIX}dead00"));
        std::fs::create_dir(&dead).unwrap();

        let found = find_legacy_caches_in(&[tmp.to_path_buf()]);
        let names: Vec<String> = found
            .iter()
            .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                ".deltaglider",
                "deltaglider-ab_cd123",
                &format!("{EPHEMERAL_PREFIX}dead00"),
                "deltaglider-zzzzzzzz"
            ]
        );
        let recent = found
            .iter()
            .find(|c| c.path.ends_with("deltaglider-zzzzzzzz"))
            .unwrap();
        assert!(!recent.removable && recent.reason.as_deref().unwrap().contains("running"));

        let removed = remove_legacy_caches(&found);
        assert_eq!(removed.len(), 3);
        assert!(removed.iter().all(|r| r.removed), "{removed:?}");
        assert!(!tmp.join(".deltaglider").exists() && !old_py.exists() && !dead.exists());
        assert!(tmp.join("deltaglider-zzzzzzzz").exists() && live.exists());
        assert!(tmp.join("deltaglider-s3").exists());
        assert!(
            outside.path().join("precious").exists(),
            "symlink not followed"
        );
    }

    #[test]
    fn other_users_leftovers_are_reported_not_removed() {
        if secure_fs::euid() != 0 {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join(".deltaglider");
        std::fs::create_dir(&shared).unwrap();
        std::os::unix::fs::chown(&shared, Some(65534), None).unwrap();
        let found = find_legacy_caches_in(&[t.path().to_path_buf()]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].ours && !found[0].removable);
        assert!(found[0].reason.as_deref().unwrap().contains("uid 65534"));
        assert!(remove_legacy_caches(&found).is_empty());
        assert!(shared.exists());
    }
}
