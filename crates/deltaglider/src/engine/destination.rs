//! Where downloaded bytes land on the local file system.
//!
//! A regular destination never holds partial or unverified bytes, and a crash leaves
//! nothing that other commands could mistake for data:
//! - the bytes go to an unnamed `O_TMPFILE` in the destination's directory, which vanishes
//!   with the process; once verified it is given the destination's name with `linkat`
//!   (through `/proc/self/fd`), or, when the destination exists, linked to a temporary name
//!   and renamed over it;
//! - where `O_TMPFILE` is unsupported (some network and FUSE file systems) the bytes go to a
//!   named temporary file instead.
//!
//! Every temporary name is `.<name>.<random>.dgtmp` ([`is_download_temp_name`]): uploads of
//! a directory skip such names, and a later download into the same directory removes those
//! whose writer is gone. A writer holds an exclusive `flock` on its temporary file for its
//! whole life, so "nobody holds the lock" means "the writer died", without guessing from
//! ages.
//!
//! A destination that exists and is neither a regular file nor a directory (a device, a
//! FIFO) is opened and written into, as `aws s3 cp` does: there is nothing to rename over.
//!
//! Modes: a new file gets `0666 & !umask`, like files other tools create; a replaced file
//! keeps its permission bits (set-id bits dropped, as any write to a file drops them).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, CWD, FlockOperation, Mode, OFlags};

use crate::error::{Error, IoContext, Result};

/// Suffix of every temporary name a download uses.
pub const TEMP_SUFFIX: &str = ".dgtmp";
/// Longest part of the destination's name kept in a temporary name (255-byte names).
const NAME_PART_MAX: usize = 200;

/// True for names a download uses for not-yet-published bytes (`.<name>.<random>.dgtmp`).
/// Uploads of a directory never send these.
pub fn is_download_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.len() > 1 + TEMP_SUFFIX.len() && b[0] == b'.' && b.ends_with(TEMP_SUFFIX.as_bytes())
}

/// A download destination, opened before any byte is fetched.
pub(crate) enum Destination {
    /// A regular file, new or replaced: written privately and published when verified.
    File(PendingFile),
    /// An existing device, FIFO or other special file: written into directly.
    Special { file: File, path: PathBuf },
}

/// Private bytes on their way to a regular destination.
pub(crate) struct PendingFile {
    file: File,
    dest: PathBuf,
    dir: PathBuf,
    /// The named temporary file when `O_TMPFILE` was not available; removed on drop.
    named: Option<tempfile::TempPath>,
    /// Permission bits the published file gets.
    mode: u32,
    /// The destination existed when the download started.
    replaces: bool,
}

impl Destination {
    /// Opens `dest` for a download. Blocks on a FIFO until it has a reader.
    pub(crate) fn open(dest: &Path) -> Result<Destination> {
        let existing = match fs::metadata(dest) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("cannot stat {}", dest.display()), e)),
        };
        match &existing {
            Some(m) if m.is_dir() => {
                return Err(Error::io(
                    format!("cannot write {}", dest.display()),
                    io::Error::from(io::ErrorKind::IsADirectory),
                ));
            }
            Some(m) if !m.is_file() => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .ctx(|| format!("cannot open {}", dest.display()))?;
                return Ok(Destination::Special {
                    file,
                    path: dest.to_path_buf(),
                });
            }
            _ => {}
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        remove_stale_temps(&dir);
        let keep = existing.map(|m| m.mode() & 0o777);
        let pending = match unnamed_temp(&dir)? {
            Some((file, umask)) => PendingFile {
                file,
                dest: dest.to_path_buf(),
                dir,
                named: None,
                mode: keep.unwrap_or(0o666 & !umask),
                replaces: keep.is_some(),
            },
            None => {
                let (file, path, created_mode) = named_temp(&dir, dest)?;
                PendingFile {
                    file,
                    dest: dest.to_path_buf(),
                    dir,
                    named: Some(path),
                    mode: keep.unwrap_or(created_mode),
                    replaces: keep.is_some(),
                }
            }
        };
        fail::fail_point!("download-temp-created");
        Ok(Destination::File(pending))
    }
}

impl PendingFile {
    /// The file to write the bytes into.
    pub(crate) fn file(&self) -> Result<File> {
        self.file
            .try_clone()
            .ctx(|| format!("cannot write {}", self.dest.display()))
    }

    /// Gives the verified bytes the destination's name, with their mode and time.
    pub(crate) fn publish(self, modified: Option<std::time::SystemTime>) -> Result<()> {
        let what = || format!("cannot write {}", self.dest.display());
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(self.mode))
            .map_err(io::Error::from)
            .ctx(what)?;
        if let Some(t) = modified {
            let _ = self.file.set_modified(t);
        }
        self.file.sync_all().ctx(what)?;
        fail::fail_point!("download-before-publish");
        let create = || format!("cannot create {}", self.dest.display());
        let temp = match self.named {
            Some(path) => path,
            None => {
                let fd_path = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&self.file)
                );
                if !self.replaces {
                    // Atomic and never clobbers: fails if something appeared meanwhile.
                    match rustix::fs::linkat(
                        CWD,
                        &fd_path,
                        CWD,
                        &self.dest,
                        AtFlags::SYMLINK_FOLLOW,
                    ) {
                        Ok(()) => return sync_dir(&self.dir),
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(Error::io(create(), e.into())),
                    }
                }
                temp_builder(&temp_prefix(&self.dest))
                    .make_in(&self.dir, |p| {
                        rustix::fs::linkat(CWD, &fd_path, CWD, p, AtFlags::SYMLINK_FOLLOW)
                            .map_err(io::Error::from)
                    })
                    .ctx(create)?
                    .into_temp_path()
            }
        };
        fail::fail_point!("download-temp-linked");
        temp.persist(&self.dest)
            .map_err(|e| Error::io(create(), e.error))?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // The new name is durable once its directory is; a failure here loses nothing.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.<name>.`: the start of the temporary names for `dest` (the name cut short enough
/// for the random part and suffix to fit, at a character boundary when it is text).
fn temp_prefix(dest: &Path) -> std::ffi::OsString {
    let name = dest.file_name().map_or(&b"download"[..], OsStr::as_bytes);
    let cut = match std::str::from_utf8(name) {
        Ok(s) => (0..=s.len().min(NAME_PART_MAX))
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0),
        Err(_) => name.len().min(NAME_PART_MAX),
    };
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(&name[..cut]);
    prefix.push(b'.');
    OsStr::from_bytes(&prefix).to_os_string()
}

fn temp_builder(prefix: &OsStr) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(TEMP_SUFFIX).rand_bytes(8);
    b
}

/// The process's umask, without changing it (the `umask` call sets it, racing other
/// threads that create files).
fn current_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// An unnamed, locked file in `dir` and the umask, or `None` where `O_TMPFILE` (or the
/// `/proc/self/fd` needed to name it later) is unavailable.
fn unnamed_temp(dir: &Path) -> Result<Option<(File, u32)>> {
    fail::fail_point!("download-no-tmpfile", |_| Ok(None));
    let Some(umask) = current_umask() else {
        return Ok(None);
    };
    let fd = match rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => fd,
        // EISDIR/ENOENT: kernels without O_TMPFILE; EOPNOTSUPP: file systems without it.
        Err(
            rustix::io::Errno::ISDIR
            | rustix::io::Errno::NOENT
            | rustix::io::Errno::OPNOTSUPP
            | rustix::io::Errno::INVAL,
        ) => {
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::io(
                format!("cannot create a file in {}", dir.display()),
                e.into(),
            ));
        }
    };
    // Held until the process ends: once the file has a name, the lock tells later
    // downloads that its writer is alive.
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)
        .map_err(io::Error::from)
        .ctx(|| format!("cannot lock a file in {}", dir.display()))?;
    Ok(Some((File::from(fd), umask)))
}

/// A named, locked, private temporary file next to `dest`, its path, and the mode the
/// system gives new files (learnt from the file itself, umask and default ACL applied).
fn named_temp(dir: &Path, dest: &Path) -> Result<(File, tempfile::TempPath, u32)> {
    let what = || format!("cannot create a file in {}", dir.display());
    loop {
        let temp = temp_builder(&temp_prefix(dest))
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .ctx(what)?;
        let (file, path) = temp.into_parts();
        let created = file.metadata().ctx(what)?;
        // Private from here on; it is empty, so the moment it was not revealed nothing.
        file.set_permissions(Permissions::from_mode(0o600))
            .ctx(what)?;
        // A sweeping download may hold the lock for a moment, deciding this file is stale
        // (it is not locked yet): wait, then make sure the name is still ours.
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(io::Error::from)
            .ctx(what)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.ino() == created.ino() && m.dev() == created.dev() => {
                return Ok((file, path, created.mode() & 0o777));
            }
            // Removed by a sweeper: try another name (keep() so the drop removes nothing).
            _ => {
                let _ = path.keep();
            }
        }
    }
}

/// Removes temporary files in `dir` left by downloads that died, once per directory per
/// process. Best effort: what cannot be examined is left alone.
fn remove_stale_temps(dir: &Path) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if !swept.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_download_temp_name(&entry.file_name()) {
            remove_if_stale(&entry.path());
        }
    }
}

fn remove_if_stale(path: &Path) {
    // O_NONBLOCK: a FIFO planted under such a name must not hang us; O_NOFOLLOW: a link
    // is not ours.
    let Ok(fd) = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let file = File::from(fd);
    let Ok(held) = file.metadata() else { return };
    if !held.is_file() {
        return;
    }
    // Locked: its writer is alive.
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return;
    }
    // Still the file we locked (not renamed into place, not replaced)?
    if let Ok(now) = fs::symlink_metadata(path)
        && now.ino() == held.ino()
        && now.dev() == held.dev()
    {
        tracing::debug!(path = %path.display(), "removing a stale download temporary file");
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        for yes in [".a.zip.Xy12ab34.dgtmp", ".x.dgtmp"] {
            assert!(is_download_temp_name(OsStr::new(yes)), "{yes}");
        }
        for no in ["a.dgtmp", ".dgtmp", "..dgtmp", ".a.zip", "file"] {
            assert!(!is_download_temp_name(OsStr::new(no)), "{no}");
        }
        let long = "é".repeat(120);
        let prefix = temp_prefix(Path::new(&long));
        let b = temp_builder(&prefix);
        let dir = tempfile::tempdir().unwrap();
        let t = b.tempfile_in(dir.path()).unwrap();
        let name = t.path().file_name().unwrap().to_owned();
        assert!(name.len() <= 255 && is_download_temp_name(&name));
        assert!(name.to_str().is_some(), "a cut keeps whole characters");
    }

    #[test]
    fn a_temp_file_whose_writer_holds_the_lock_is_kept_and_an_unlocked_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let (_file, live, _) = named_temp(dir.path(), &dest).unwrap();
        let dead = dir.path().join(".f.bin.deadbeef.dgtmp");
        fs::write(&dead, b"partial").unwrap();
        remove_if_stale(live.as_ref());
        remove_if_stale(&dead);
        assert!(live.exists(), "a live writer's file stays");
        assert!(!dead.exists(), "an unlocked one is removed");
    }
}
