//! File-system primitives for the caches: directories held open as handles, every file opened
//! relative to one with `O_NOFOLLOW` (so a planted symlink is never followed), created with
//! `O_EXCL` and mode 0600, and checked with `fstat` on the very handle that will be read.
//! Also sealed anonymous memory files (`memfd`), where decrypted bytes live.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, Stat};

use crate::error::{Error, Result};

/// Mode of every directory the caches create.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the caches create.
pub const FILE_MODE: u32 = 0o600;
/// Prefix of files being written; never an entry name.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// What is enforced on directories and files (`strict` is off only with
/// `DG_UNSAFE_SHARED_CACHE`, which skips the ownership and mode refusals, nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Refuse paths not owned by this user or writable by group or others.
    pub strict: bool,
}

fn file_type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "of an unknown type",
    }
}

/// Why a directory may not hold a cache, or `Ok`.
pub fn check_dir_stat(st: &Stat, policy: Policy) -> std::result::Result<(), String> {
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::Directory {
        return Err(format!("it is {}, not a directory", file_type_name(t)));
    }
    if policy.strict {
        let me = euid();
        if st.st_uid != me {
            return Err(format!(
                "it is owned by uid {}, not by you (uid {me})",
                st.st_uid
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(format!(
                "it is writable by group or others (mode {:04o}; use chmod 700)",
                st.st_mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// Why an opened entry file may not be used, or `Ok`: it must be a regular file with one link,
/// ours and private (strict policy), no larger than `max_len` and, if given, exactly
/// `expected_len` bytes.
pub fn check_file_stat(
    st: &Stat,
    policy: Policy,
    expected_len: Option<u64>,
    max_len: u64,
) -> std::result::Result<(), String> {
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(format!("it is {}", file_type_name(t)));
    }
    if st.st_nlink != 1 {
        return Err(format!("it has {} hard links", st.st_nlink));
    }
    if policy.strict {
        let me = euid();
        if st.st_uid != me {
            return Err(format!("it is owned by uid {}, not {me}", st.st_uid));
        }
        if st.st_mode & 0o077 != 0 {
            return Err(format!(
                "its mode {:04o} gives access to others",
                st.st_mode & 0o7777
            ));
        }
    }
    let len = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if len > max_len {
        return Err(format!("it is {len} bytes, over the {max_len}-byte limit"));
    }
    if let Some(expected) = expected_len
        && len != expected
    {
        return Err(format!("it is {len} bytes, its record says {expected}"));
    }
    Ok(())
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "refusing cache directory {}: {why} (set DG_UNSAFE_SHARED_CACHE=true to accept a shared directory at your own risk)",
        path.display()
    ))
}

/// An open directory; everything below it is reached relative to this handle.
#[derive(Debug)]
pub struct SecureDir {
    fd: OwnedFd,
    path: PathBuf,
    policy: Policy,
}

impl SecureDir {
    /// Opens the cache root `path`, creating missing components with mode 0700. The final
    /// component must not be a symlink; it and every component created here must be a
    /// directory owned by this user and not writable by group or others (strict policy).
    /// Ancestors that already existed are the user's business and are followed as usual.
    pub fn open_root(path: &Path, policy: Policy) -> Result<SecureDir> {
        let path = std::path::absolute(path)
            .map_err(|e| Error::io(format!("cannot resolve {}", path.display()), e))?;
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(refuse(&path, "it contains '..'; give a plain path"));
        }
        let mut missing: Vec<&OsStr> = Vec::new();
        let mut existing: &Path = &path;
        loop {
            match std::fs::symlink_metadata(existing) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let (Some(parent), Some(name)) = (existing.parent(), existing.file_name())
                    else {
                        return Err(refuse(&path, "no ancestor of it exists"));
                    };
                    missing.push(name);
                    existing = parent;
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot inspect {}", existing.display()),
                        e,
                    ));
                }
            }
        }
        let mut fd = if missing.is_empty() {
            // The root itself exists: open it without following a final symlink.
            let parent = path.parent().unwrap_or(Path::new("/"));
            let parent_fd = open_dir_following(parent)?;
            match path.file_name() {
                Some(name) => open_dir_at(&parent_fd, name)
                    .map_err(|e| dir_open_error(&parent_fd, name, &path, e))?,
                None => parent_fd,
            }
        } else {
            open_dir_following(existing)?
        };
        let mut built = existing.to_path_buf();
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot stat", e.into()))?;
        if missing.is_empty() {
            check_dir_stat(&st, policy).map_err(|why| refuse(&path, why))?;
        }
        for name in missing.into_iter().rev() {
            built.push(name);
            match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot create {}", built.display()),
                        e.into(),
                    ));
                }
            }
            let next = open_dir_at(&fd, name).map_err(|e| dir_open_error(&fd, name, &built, e))?;
            let st = rustix::fs::fstat(&next).map_err(|e| Error::io("cannot stat", e.into()))?;
            check_dir_stat(&st, policy).map_err(|why| refuse(&built, why))?;
            if st.st_uid == euid() && st.st_mode & 0o777 != DIR_MODE {
                let _ = rustix::fs::fchmod(&next, Mode::from_raw_mode(DIR_MODE));
            }
            fd = next;
        }
        Ok(SecureDir { fd, path, policy })
    }

    /// Wraps a directory handle that was already checked.
    pub fn from_parts(fd: OwnedFd, path: PathBuf, policy: Policy) -> SecureDir {
        SecureDir { fd, path, policy }
    }

    /// The path the directory was opened by; for messages, never reopened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy this directory and everything opened below it is checked against.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Path of a name below this directory, for messages only.
    pub fn display(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the subdirectory `name` (creating it, mode 0700, if asked); `None` if it does
    /// not exist and was not to be created. A symlink, a non-directory or (strict policy) a
    /// directory owned by someone else or writable by others is an error.
    pub fn subdir(&self, name: &str, create: bool) -> io::Result<Option<SecureDir>> {
        if create {
            match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fd = match open_dir_at(&self.fd, name) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory (symlink or file planted?)",
                    self.display(name).display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        check_dir_stat(&st, self.policy).map_err(|why| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing {}: {why}", self.display(name).display()),
            )
        })?;
        Ok(Some(SecureDir {
            fd,
            path: self.path.join(name),
            policy: self.policy,
        }))
    }

    /// Opens `name` for reading without following a symlink and without blocking on a FIFO;
    /// `None` if there is nothing by that name. The caller checks the handle with
    /// [`check_file_stat`] before reading.
    /// Access times are left alone (`O_NOATIME`, where permitted): the caches use them to
    /// record use.
    pub fn open_read(&self, name: &str) -> io::Result<Option<File>> {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let mut result = rustix::fs::openat(&self.fd, name, flags | OFlags::NOATIME, Mode::empty());
        if matches!(result, Err(rustix::io::Errno::PERM)) {
            // O_NOATIME is only for the owner's files.
            result = rustix::fs::openat(&self.fd, name, flags, Mode::empty());
        }
        match result {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a new temporary file (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600) with a random
    /// name, holding an exclusive `flock` on it for as long as the handle lives, so a
    /// cleaner can tell a live writer's file from one left by a killed writer.
    pub fn create_temp(&self) -> io::Result<(File, String)> {
        loop {
            let name = format!("{TEMP_PREFIX}{}", random_hex(8));
            match rustix::fs::openat(
                &self.fd,
                name.as_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(FILE_MODE),
            ) {
                Ok(fd) => {
                    rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
                    return Ok((File::from(fd), name));
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens (creating, mode 0600) the lock file `name`, without following a symlink; the
    /// handle is checked like an entry (regular, one link, ours, private, empty).
    pub fn open_lock(&self, name: &str) -> io::Result<OwnedFd> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        check_file_stat(&st, self.policy, Some(0), 0).map_err(|why| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing lock file {}: {why}", self.display(name).display()),
            )
        })?;
        Ok(fd)
    }

    /// Atomically renames `from` to `to` within this directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(Into::into)
    }

    /// `lstat` of `name`; `None` if absent.
    pub fn stat(&self, name: &str) -> io::Result<Option<Stat>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the name `name` (a file, link, FIFO, or an empty directory); absent is fine.
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(rustix::io::Errno::ISDIR | rustix::io::Errno::PERM) => {
                match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `name` only if it is still the inode `(dev, ino)` that was checked, so a
    /// fresh entry published meanwhile by another process is not thrown away.
    pub fn unlink_if_same(&self, name: &str, dev: u64, ino: u64) -> io::Result<()> {
        match self.stat(name)? {
            Some(st) if st.st_dev == dev && st.st_ino == ino => self.unlink(name),
            _ => Ok(()),
        }
    }

    /// The names in this directory (without `.` and `..`); names that are not UTF-8 are
    /// returned lossily (they are never entries).
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            out.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(out)
    }

    /// Removes `name` and, if it is a directory, everything below it, never following a
    /// symlink.
    pub fn remove_tree(&self, name: &str) -> io::Result<()> {
        let Some(st) = self.stat(name)? else {
            return Ok(());
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = match open_dir_at(&self.fd, name) {
                Ok(fd) => SecureDir {
                    fd,
                    path: self.path.join(name),
                    policy: Policy { strict: false },
                },
                Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            for child in sub.names()? {
                sub.remove_tree(&child)?;
            }
        }
        self.unlink(name)
    }

    /// `fsync` of the directory itself (makes renames durable).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(Into::into)
    }

    /// The directory handle every `*at` call is made relative to.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

fn open_dir_at(dir: &impl AsFd, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir_following(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOTDIR => refuse(path, "it is not a directory"),
        e => Error::io(format!("cannot open {}", path.display()), e.into()),
    })
}

fn dir_open_error(parent: &OwnedFd, name: &OsStr, full: &Path, e: rustix::io::Errno) -> Error {
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    match st.map(|s| FileType::from_raw_mode(s.st_mode)) {
        Some(FileType::Symlink) => refuse(full, "it is a symbolic link"),
        Some(FileType::Directory) | None => {
            Error::io(format!("cannot open {}", full.display()), e.into())
        }
        Some(t) => refuse(full, format!("it is {}", file_type_name(t))),
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    hex::encode(b)
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// Takes an exclusive `flock` without waiting: true if it was free (no live holder).
pub fn try_lock_exclusive(fd: &impl AsFd) -> bool {
    rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// Opens `path` (a directory or file) without following a final symlink, for `flock`
/// probes and ownership checks; never reads it.
pub fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

/// A fresh anonymous memory file (never on disk), close-on-exec and sealable.
pub fn memfd(name: &str) -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::MemfdFlags;
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        Ok(File::from(fd))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = name;
        tempfile::tempfile()
    }
}

/// Seals a memory file against any further change of size or content.
pub fn seal(file: &File) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::SealFlags;
        rustix::fs::fcntl_add_seals(
            file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = file;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::PermissionsExt;

    const STRICT: Policy = Policy { strict: true };

    #[test]
    fn creates_missing_components_0700() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("a/b/c");
        let d = SecureDir::open_root(&root, STRICT).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            let m = std::fs::metadata(t.path().join(p)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{p}");
        }
        assert_eq!(d.path(), root);
    }

    #[test]
    fn refuses_symlinked_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let e = SecureDir::open_root(&t.path().join("link"), STRICT).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // Not even the unsafe mode follows it.
        let e = SecureDir::open_root(&t.path().join("link"), Policy { strict: false }).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn refuses_parent_components() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        let e = SecureDir::open_root(&t.path().join("a/.."), STRICT).unwrap_err();
        assert!(e.to_string().contains("'..'"), "{e}");
    }

    #[test]
    fn refuses_world_writable_and_foreign_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = SecureDir::open_root(&root, STRICT).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        assert!(SecureDir::open_root(&root, Policy { strict: false }).is_ok());
        if euid() == 0 {
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
            let e = SecureDir::open_root(&root, STRICT).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn refuses_foreign_component_created_by_someone_else_in_between() {
        if euid() != 0 {
            return;
        }
        // A subdirectory owned by another user is refused when reached.
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open_root(t.path(), STRICT).unwrap();
        std::fs::create_dir(t.path().join("ab")).unwrap();
        std::os::unix::fs::chown(t.path().join("ab"), Some(65534), None).unwrap();
        let e = d.subdir("ab", true).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }

    #[test]
    fn temp_files_are_0600_exclusive_and_locked() {
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open_root(t.path(), STRICT).unwrap();
        let (mut f, name) = d.create_temp().unwrap();
        f.write_all(b"x").unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert_eq!(st.st_mode & 0o777, 0o600);
        let probe = d.open_read(&name).unwrap().unwrap();
        assert!(
            !try_lock_exclusive(&probe),
            "live writer's lock must be visible"
        );
        drop(f);
        assert!(try_lock_exclusive(&probe));
    }

    #[test]
    fn open_read_does_not_follow_symlinks_or_block_on_fifos() {
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open_root(t.path(), STRICT).unwrap();
        std::fs::write(t.path().join("target"), b"secret").unwrap();
        std::os::unix::fs::symlink(t.path().join("target"), t.path().join("link")).unwrap();
        assert!(d.open_read("link").is_err());
        rustix::fs::mkfifoat(d.fd(), "fifo", Mode::from_raw_mode(0o600)).unwrap();
        let f = d.open_read("fifo").unwrap().unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert!(
            check_file_stat(&st, STRICT, None, 10)
                .unwrap_err()
                .contains("FIFO")
        );
    }

    #[test]
    fn file_checks() {
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open_root(t.path(), STRICT).unwrap();
        let (mut f, name) = d.create_temp().unwrap();
        f.write_all(b"12345").unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert!(check_file_stat(&st, STRICT, Some(5), 5).is_ok());
        assert!(
            check_file_stat(&st, STRICT, Some(4), 5)
                .unwrap_err()
                .contains("record says 4")
        );
        assert!(
            check_file_stat(&st, STRICT, None, 4)
                .unwrap_err()
                .contains("limit")
        );
        std::fs::hard_link(d.display(&name), t.path().join("other")).unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert!(
            check_file_stat(&st, STRICT, None, 5)
                .unwrap_err()
                .contains("2 hard links")
        );
        std::fs::remove_file(t.path().join("other")).unwrap();
        rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644)).unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert!(
            check_file_stat(&st, STRICT, None, 5)
                .unwrap_err()
                .contains("0644")
        );
        assert!(check_file_stat(&st, Policy { strict: false }, None, 5).is_ok());
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open_root(t.path(), STRICT).unwrap();
        std::fs::create_dir_all(t.path().join("x/y")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("x/y/evil")).unwrap();
        d.remove_tree("x").unwrap();
        assert!(!t.path().join("x").exists());
        assert!(outside.path().join("keep").exists());
    }

    #[test]
    fn sealed_memfd_cannot_change() {
        let mut m = memfd("t").unwrap();
        m.write_all(b"abc").unwrap();
        seal(&m).unwrap();
        m.rewind().unwrap();
        let mut s = String::new();
        m.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
        #[cfg(target_os = "linux")]
        {
            assert!(m.write_all(b"x").is_err());
            assert!(m.set_len(1).is_err());
        }
    }
}
