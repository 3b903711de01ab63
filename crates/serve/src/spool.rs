//! The private directory where the parts of multipart uploads wait for their completion.
//!
//! Each server makes its own subdirectory (mode 0700) of the spool directory and holds an
//! exclusive lock on a file inside it for as long as it runs. A subdirectory whose lock is
//! free belongs to a server that died without cleaning up; the next server to start removes
//! it. A subdirectory is locked before it gets its final name, so a server that is starting
//! is never taken for a dead one.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of a live (or dead) server's subdirectory.
const PREFIX: &str = "deltaglider-serve-";
/// Prefix of a subdirectory being set up, never removed by another server.
const SETUP_PREFIX: &str = ".deltaglider-serve-setup-";
/// The file a running server holds locked.
const LOCK: &str = "lock";

/// A server's private spool subdirectory; removed with everything in it when the last
/// handle is dropped (or by [`Spool::remove`]).
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<SpoolDir>,
}

#[derive(Debug)]
struct SpoolDir {
    path: PathBuf,
    /// Held locked while the server runs; the lock ends with the descriptor.
    _lock: File,
    next: AtomicU64,
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Spool {
    /// A new private subdirectory of `parent` (created if missing), after removing the
    /// subdirectories that servers which died left there.
    pub fn new(parent: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(parent)?;
        remove_dead(parent);
        let setup = tempfile::Builder::new()
            .prefix(SETUP_PREFIX)
            .tempdir_in(parent)?;
        // Private before anything is put in it.
        std::fs::set_permissions(
            setup.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let lock = File::create(setup.path().join(LOCK))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => io::Error::other("a new lock file is held"),
        })?;
        let name = setup
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SETUP_PREFIX))
            .map(|suffix| format!("{PREFIX}{suffix}"))
            .ok_or_else(|| io::Error::other("tempfile made an unexpected name"))?;
        let path = parent.join(name);
        std::fs::rename(setup.path(), &path)?;
        // Renamed away: the guard has nothing left to remove.
        let _ = setup.keep();
        Ok(Spool {
            inner: Arc::new(SpoolDir {
                path,
                _lock: lock,
                next: AtomicU64::new(0),
            }),
        })
    }

    /// A subdirectory of the system's temporary directory (`TMPDIR`).
    pub fn in_temp_dir() -> io::Result<Spool> {
        Spool::new(&std::env::temp_dir())
    }

    /// The private subdirectory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Removes the subdirectory and everything in it now (at shutdown, whoever still holds a
    /// handle); later spooling fails.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.inner.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A name no other file of this server has had.
    pub(crate) fn unique(&self) -> u64 {
        self.inner.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Removes every server subdirectory of `parent` whose lock is free (its server is gone).
fn remove_dead(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        if !is_ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        if is_dead(&dir) {
            tracing::info!("removing {}, left by a server that stopped", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Whether no running server holds the lock of `dir` (a directory without a lock file was
/// never completed, since the lock is made before the final name).
fn is_dead(dir: &Path) -> bool {
    match File::open(dir.join(LOCK)) {
        Ok(file) => file.try_lock().is_ok(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_is_private_and_removed_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let spool = Spool::new(parent.path()).unwrap();
        let path = spool.path().to_path_buf();
        assert!(path.starts_with(parent.path()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(path.join("part"), b"x").unwrap();
        drop(spool);
        assert!(!path.exists());
    }

    #[test]
    fn a_starting_server_removes_what_dead_ones_left_and_keeps_live_ones() {
        let parent = tempfile::tempdir().unwrap();
        let live = Spool::new(parent.path()).unwrap();
        // A dead server: its directory is there, its lock is not held.
        let dead = parent.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("part"), b"x").unwrap();
        // Something else of the user's in the same directory.
        let other = parent.path().join("not-ours");
        std::fs::create_dir(&other).unwrap();

        let second = Spool::new(parent.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.path().exists());
        assert!(second.path().exists());
        assert!(other.exists());
        assert_ne!(live.path(), second.path());
    }

    #[test]
    fn remove_empties_the_spool_for_every_handle() {
        let parent = tempfile::tempdir().unwrap();
        let spool = Spool::new(parent.path()).unwrap();
        let other_handle = spool.clone();
        spool.remove().unwrap();
        assert!(!other_handle.path().exists());
        spool.remove().unwrap();
    }
}
