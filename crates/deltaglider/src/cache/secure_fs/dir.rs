//! An open directory: everything below it is reached relative to its handle, with
//! `O_NOFOLLOW`, created with `O_EXCL` and mode 0600, and checked with `fstat`.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, Stat};

use super::sys::random_hex;
use super::{
    DIR_MODE, FILE_MODE, Policy, TEMP_PREFIX, check_dir_stat, check_file_stat, euid,
    file_type_name, refuse,
};
use crate::error::{Error, Result};

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
