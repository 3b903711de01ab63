//! Publishing an object file so that a crash never leaves a named half-written file.
//!
//! The bytes go to an unnamed file (`O_TMPFILE`) in the object's directory, fsynced, then:
//! - create-if-absent: `linkat` of the unnamed file (through `/proc/self/fd`, with
//!   `AT_SYMLINK_FOLLOW`) to the object's name, which fails if the name exists;
//! - overwrite: `linkat` to a unique temporary name, then `renameat` over the object's name.
//!
//! A crash before publication leaves nothing on disk. Only the short step between that
//! `linkat` and the `renameat` (or, where the file system or a missing `/proc` rules out
//! `O_TMPFILE`, the whole write) has a name, always `.put-<16 hex digits>.t`, which never
//! ends in `.o` or `.d` and so is never listed as an object. The writer holds an exclusive
//! `flock` on the file for as long as that name can exist, so the lock being free proves the
//! writer is gone: every later write (or delete) in the directory removes such files. Names
//! of the same `.put-*.t` form written by earlier versions (which took no lock) are removed
//! once they are older than [`LEGACY_TEMP_GRACE`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::tree::{self, Chain, Fault};
use crate::error::{Error, Result};
use crate::storage::PutOutcome;

/// Start of every temporary name in the store.
pub(super) const TEMP_PREFIX: &str = ".put-";
/// End of every temporary name in the store.
pub(super) const TEMP_SUFFIX: &str = ".t";
/// Age after which a temporary file in the store's old naming (no lock) is taken as dead.
const LEGACY_TEMP_GRACE: Duration = Duration::from_secs(15 * 60);
/// Mode of object files (as before: private to the owner).
const FILE_MODE: u32 = 0o600;

/// True for any temporary name the store may leave (current or older versions).
pub(super) fn is_temp_name(name: &str) -> bool {
    name.len() > TEMP_PREFIX.len() + TEMP_SUFFIX.len()
        && name.starts_with(TEMP_PREFIX)
        && name.ends_with(TEMP_SUFFIX)
}

/// True for a temporary name of this version, whose writer holds a lock on it.
fn is_locked_temp_name(name: &str) -> bool {
    is_temp_name(name)
        && name[TEMP_PREFIX.len()..name.len() - TEMP_SUFFIX.len()]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && name.len() == TEMP_PREFIX.len() + 16 + TEMP_SUFFIX.len()
}

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}", rand::random::<u64>())
}

/// Test builds only: a step at which a test kills the writer. Configured as
/// `return(<path>)`, the step creates the file `<path>` and then holds the writer forever, so
/// a test that sees the file knows exactly where the writer stands.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |marker: Option<String>| hold(marker))
    };
}

#[cfg(feature = "failpoints")]
fn hold<T>(marker: Option<String>) -> T {
    if let Some(m) = marker {
        let _ = std::fs::write(m, b"");
    }
    loop {
        std::thread::park();
    }
}

/// The file being written, and its temporary name while it has one.
struct Temp {
    file: File,
    /// Whether `/proc/self/fd` can give the unnamed file a name.
    anonymous: bool,
    /// The temporary name and the directory holding it, removed on drop.
    name: Option<(OwnedFd, String)>,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some((dir, name)) = self.name.take() {
            let _ = unlink_if_same(dir.as_fd(), &name, &self.file);
        }
    }
}

fn unlink_if_same(dir: BorrowedFd<'_>, name: &str, file: &File) -> io::Result<()> {
    let mine = rustix::fs::fstat(file)?;
    match tree::stat_at(dir, name)? {
        Some(st) if st.st_dev == mine.st_dev && st.st_ino == mine.st_ino => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into)
        }
        _ => Ok(()),
    }
}

impl Temp {
    /// A new file in `dir`: unnamed where the OS allows, else under a fresh locked temporary
    /// name. `Err(NOENT)` if `dir` was removed meanwhile.
    fn create(dir: BorrowedFd<'_>) -> std::result::Result<Temp, Errno> {
        match rustix::fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        ) {
            Ok(fd) => {
                // The lock covers the name the file gets before its rename.
                rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
                let file = File::from(fd);
                if proc_link_works(&file) {
                    return Ok(Temp {
                        file,
                        anonymous: true,
                        name: None,
                    });
                }
            }
            // No O_TMPFILE on this file system or kernel.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e),
        }
        Temp::create_named(dir)
    }

    fn create_named(dir: BorrowedFd<'_>) -> std::result::Result<Temp, Errno> {
        loop {
            let name = temp_name();
            let fd = match rustix::fs::openat(
                dir,
                name.as_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(FILE_MODE),
            ) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e),
            };
            let file = File::from(fd);
            // A sweeper may have seen the name before we locked it: then it holds the lock,
            // or already removed the name; either way start over under a new one.
            if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue;
            }
            let mine = rustix::fs::fstat(&file)?;
            match tree::stat_at(dir, &name) {
                Ok(Some(st)) if st.st_dev == mine.st_dev && st.st_ino == mine.st_ino => {}
                _ => continue,
            }
            return Ok(Temp {
                file,
                anonymous: false,
                name: Some((rustix::io::dup(dir)?, name)),
            });
        }
    }

    fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.file.as_raw_fd())
    }

    /// Gives the unnamed file the name `name` in `dir`.
    fn link_to(&self, dir: BorrowedFd<'_>, name: &str) -> std::result::Result<(), Errno> {
        rustix::fs::linkat(
            rustix::fs::CWD,
            self.proc_path().as_str(),
            dir,
            name,
            AtFlags::SYMLINK_FOLLOW,
        )
    }
}

/// Whether `/proc/self/fd/N` leads to the file itself (needs `/proc` mounted).
fn proc_link_works(file: &File) -> bool {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    match (rustix::fs::stat(path.as_str()), rustix::fs::fstat(file)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// True if the directory behind `dir` has been removed.
fn removed(dir: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(dir).is_ok_and(|st| st.st_nlink == 0)
}

/// Where a put goes.
pub(super) struct Target<'a> {
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    /// Directory names from the bucket down.
    pub(super) dirs: &'a [String],
    /// The object's file name.
    pub(super) file: &'a str,
}

enum Publish {
    Done(PutOutcome),
    /// The directory was removed under the unnamed file: walk again and retry.
    Retry,
}

/// Stores `prefix` (the encoded header) followed by everything `source` yields as the object
/// `target`; `open_bucket` opens the bucket directory (again, on a retry).
pub(super) fn put(
    open_bucket: &dyn Fn() -> Result<OwnedFd>,
    target: &Target<'_>,
    prefix: &[u8],
    source: &mut dyn Read,
    if_none_match: bool,
) -> Result<PutOutcome> {
    let Target {
        bucket, key, file, ..
    } = *target;
    let fault = |f: Fault| f.into_error("upload", bucket, key);
    let errno = |what: &str, e: io::Error| {
        Error::io(
            format!("cannot {what} s3://{bucket}/{key} in the local store"),
            e,
        )
    };
    let walk = || -> Result<Chain> {
        Ok(Chain::walk(open_bucket()?, bucket, target.dirs, true)
            .map_err(fault)?
            .expect("created"))
    };
    let mut chain = walk()?;
    refuse_non_regular(chain.last(), file, &chain.shown_name(file)).map_err(fault)?;
    sweep(chain.last(), chain.shown());
    let mut temp = None;
    for _ in 0..8 {
        match Temp::create(chain.last()) {
            Ok(t) => {
                temp = Some(t);
                break;
            }
            // Removed by a concurrent delete of the directory's last object.
            Err(Errno::NOENT) => chain = walk()?,
            Err(e) => return Err(errno("write", e.into())),
        }
    }
    let mut temp = temp.ok_or_else(|| errno("write", Errno::NOENT.into()))?;
    {
        let f = &mut temp.file;
        f.write_all(prefix).map_err(|e| errno("write", e))?;
        io::copy(source, f).map_err(|e| errno("write", e))?;
        f.sync_all().map_err(|e| errno("write", e))?;
    }
    crash_point!("local-store-put-written");
    for _ in 0..8 {
        match publish(&chain, &mut temp, file, if_none_match).map_err(fault)? {
            Publish::Done(outcome) => return Ok(outcome),
            Publish::Retry => chain = walk()?,
        }
    }
    Err(errno("publish", Errno::NOENT.into()))
}

fn publish(
    chain: &Chain,
    temp: &mut Temp,
    file: &str,
    if_none_match: bool,
) -> std::result::Result<Publish, Fault> {
    let dir = chain.last();
    let shown = chain.shown_name(file);
    let io = |e: Errno| Fault::Io {
        path: shown.clone(),
        source: e.into(),
    };
    if if_none_match {
        // link() fails if the name exists: an atomic create-if-absent.
        let linked = match &temp.name {
            None => temp.link_to(dir, file),
            Some((_, name)) => rustix::fs::linkat(dir, name.as_str(), dir, file, AtFlags::empty()),
        };
        return match linked {
            Ok(()) => Ok(Publish::Done(PutOutcome::Stored { etag: None })),
            Err(Errno::EXIST) => {
                refuse_non_regular(dir, file, &shown)?;
                Ok(Publish::Done(PutOutcome::AlreadyExists))
            }
            Err(Errno::NOENT) if temp.anonymous && removed(dir) => Ok(Publish::Retry),
            Err(e) => Err(io(e)),
        };
    }
    if temp.name.is_none() {
        loop {
            let name = temp_name();
            match temp.link_to(dir, &name) {
                Ok(()) => {
                    let dup = rustix::io::dup(dir).map_err(io)?;
                    temp.name = Some((dup, name));
                    break;
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) if removed(dir) => return Ok(Publish::Retry),
                Err(e) => return Err(io(e)),
            }
        }
    }
    crash_point!("local-store-put-linked");
    refuse_non_regular(dir, file, &shown)?;
    let (_, name) = temp.name.as_ref().expect("named above");
    rustix::fs::renameat(dir, name.as_str(), dir, file).map_err(io)?;
    temp.name = None;
    Ok(Publish::Done(PutOutcome::Stored { etag: None }))
}

/// Refuses to replace anything but a regular file (or nothing) at `name`.
fn refuse_non_regular(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> std::result::Result<(), Fault> {
    match tree::type_at(dir, name) {
        Ok(None | Some(FileType::RegularFile)) => Ok(()),
        Ok(Some(t)) => Err(Fault::Refused {
            path: shown.to_string(),
            found: tree::type_name(t),
            expected: "a regular file",
        }),
        Err(source) => Err(Fault::Io {
            path: shown.to_string(),
            source,
        }),
    }
}

/// Removes the temporary files in `dir` whose writers are gone (see the module docs). Best
/// effort: what cannot be removed now is left for a later write.
pub(super) fn sweep(dir: BorrowedFd<'_>, shown: &str) {
    let Ok(entries) = tree::read_dir(dir) else {
        return;
    };
    for tree::Entry { name, kind: t, .. } in entries {
        let Some(name) = name.filter(|n| is_temp_name(n)) else {
            continue;
        };
        if t != Some(FileType::RegularFile) {
            continue;
        }
        let path = format!("{shown}/{name}");
        let Ok(Some(f)) = tree::open_file(dir, &name, &path) else {
            continue;
        };
        // A live writer holds the lock; our lock lasts until `f` is closed.
        if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if !is_locked_temp_name(&name) {
            let age = f
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            if age.is_none_or(|a| a < LEGACY_TEMP_GRACE) {
                continue;
            }
        }
        match unlink_if_same(dir, &name, &f) {
            Ok(()) => tracing::debug!("removed {path}, left by a writer that is gone"),
            Err(e) => tracing::debug!("cannot remove {path}: {}", crate::error::chain(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let fd =
            rustix::fs::open(d.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (d, fd)
    }

    fn names(d: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_are_recognized() {
        let n = temp_name();
        assert!(is_temp_name(&n) && is_locked_temp_name(&n), "{n}");
        assert!(is_temp_name(".put-AbC123.t") && !is_locked_temp_name(".put-AbC123.t"));
        for not in [".put-.t", "x.o", "a.d", ".put-1.o", "put-1.t"] {
            assert!(!is_temp_name(not), "{not}");
        }
    }

    #[test]
    fn sweep_removes_dead_writers_files_only() {
        let (d, fd) = dir();
        // A dead writer of this version: its name, no lock.
        let dead = temp_name();
        fs::write(d.path().join(&dead), b"x").unwrap();
        // A live writer: holds the lock.
        let live = Temp::create_named(fd.as_fd()).unwrap();
        let live_name = live.name.as_ref().unwrap().1.clone();
        // Old-style names: removed only once old.
        fs::write(d.path().join(".put-fresh1.t"), b"x").unwrap();
        let old = fs::File::create(d.path().join(".put-stale1.t")).unwrap();
        old.set_modified(SystemTime::now() - 2 * LEGACY_TEMP_GRACE)
            .unwrap();
        // Not ours at all.
        fs::write(d.path().join("k.o"), b"x").unwrap();
        rustix::fs::mkfifoat(&fd, ".put-0123456789abcdef.t", Mode::from_raw_mode(0o600)).unwrap();
        sweep(fd.as_fd(), "bkt");
        let mut expect = vec![
            ".put-0123456789abcdef.t".to_string(),
            ".put-fresh1.t".to_string(),
            "k.o".to_string(),
            live_name.clone(),
        ];
        expect.sort();
        assert_eq!(names(d.path()), expect);
        drop(live);
        assert!(
            !d.path().join(&live_name).exists(),
            "a temp is removed with its writer"
        );
    }

    #[test]
    fn unnamed_temp_leaves_nothing_until_published() {
        let (d, fd) = dir();
        let t = Temp::create(fd.as_fd()).unwrap();
        assert!(t.anonymous, "this system supports O_TMPFILE and /proc");
        assert!(names(d.path()).is_empty());
        drop(t);
        assert!(names(d.path()).is_empty());
    }
}
