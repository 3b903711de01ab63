//! Walking the store's directory tree by handles, never by path.
//!
//! Every step opens one name relative to an already-open directory handle with `O_NOFOLLOW`,
//! starting from the store root (opened once, following the user's own path). The names are
//! ours: `<segment>.d` for directories, `<segment>.o` for objects, and a bucket name that
//! passed validation, so none contains `/` and none is `.` or `..` (checked by
//! [`is_plain_name`]). A one-name `openat(O_NOFOLLOW)` on such a name therefore resolves
//! exactly the entry below the directory handle and refuses a symlink there: the guarantee
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` gives for a whole path. We walk rather than
//! hand the kernel the whole path because (1) a put must create missing directories one level
//! at a time anyway, (2) a refusal must say which component is wrong and what was found
//! there, which one `ELOOP`/`ENOTDIR` for a whole path does not tell, and (3) one code path
//! then runs on every kernel, not an `openat2` path and an untested fallback.
//!
//! Files are opened with `O_NONBLOCK`, so a planted FIFO cannot block the open, then checked
//! with `fstat` on the handle itself: only regular files are read.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::Error;

/// Mode for directories the store creates (the umask applies, as for `mkdir -p`).
const DIR_MODE: u32 = 0o777;

/// Why a step of a walk failed.
#[derive(Debug)]
pub(super) enum Fault {
    /// Something other than what the layout puts there sits at `path`.
    Refused {
        /// The entry, relative to the store root (`bucket/a.d/b.o`).
        path: String,
        /// What was found, as a noun phrase (`a FIFO`).
        found: &'static str,
        /// What belongs there (`a directory`, `a regular file`).
        expected: &'static str,
    },
    /// The file system reported an error.
    Io {
        /// The entry, relative to the store root.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl Fault {
    fn io(path: String, e: Errno) -> Fault {
        Fault::Io {
            path,
            source: e.into(),
        }
    }

    /// The crate error for this fault, naming what was being done to which object.
    pub(super) fn into_error(self, operation: &'static str, bucket: &str, key: &str) -> Error {
        match self {
            Fault::Refused {
                path,
                found,
                expected,
            } => Error::storage(
                operation,
                bucket,
                key,
                format!(
                    "the local store holds {found} at {path}, where {expected} belongs; refusing to use it"
                ),
            ),
            Fault::Io { path, source } => Error::io(
                format!("cannot {operation} s3://{bucket}/{key} (local store entry {path})"),
                source,
            ),
        }
    }
}

/// A noun phrase for a file type, for messages.
pub(super) fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "a file of unknown type",
    }
}

/// True for a name that `openat` resolves as exactly one entry of the directory: not empty,
/// no `/`, no NUL, not `.` or `..`.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn check_name(name: &str, shown: &str) -> Result<(), Fault> {
    if is_plain_name(name) {
        Ok(())
    } else {
        // Unreachable with names built by the layout; refused rather than trusted.
        Err(Fault::Io {
            path: shown.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a single path component"),
        })
    }
}

/// `lstat` of `name` in `dir`; `None` if there is nothing by that name.
pub(super) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type at `name` in `dir` (symlinks not followed); `None` if absent.
pub(super) fn type_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<FileType>> {
    Ok(stat_at(dir, name)?.map(|st| FileType::from_raw_mode(st.st_mode)))
}

/// The refusal for a name whose open failed because it is the wrong kind of entry.
fn classify(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: String,
    expected: &'static str,
    e: Errno,
) -> Fault {
    match type_at(dir, name) {
        Ok(Some(t)) if type_name(t) != expected => Fault::Refused {
            path: shown,
            found: type_name(t),
            expected,
        },
        _ => Fault::io(shown, e),
    }
}

/// Opens the directory `name` below `dir` without following a symlink; `None` if absent.
/// `shown` names the entry in messages.
pub(super) fn open_dir(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> Result<Option<OwnedFd>, Fault> {
    check_name(name, shown)?;
    // O_DIRECTORY refuses a FIFO or device before any open of it can block; O_NONBLOCK is
    // there all the same, and harmless on a directory.
    let flags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e @ (Errno::NOTDIR | Errno::LOOP)) => {
            Err(classify(dir, name, shown.to_string(), "a directory", e))
        }
        Err(e) => Err(Fault::io(shown.to_string(), e)),
    }
}

/// Like [`open_dir`], creating the directory first if it is missing.
pub(super) fn create_dir(dir: BorrowedFd<'_>, name: &str, shown: &str) -> Result<OwnedFd, Fault> {
    check_name(name, shown)?;
    // A concurrent delete may remove an empty directory between our mkdir and open.
    for _ in 0..8 {
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Fault::io(shown.to_string(), e)),
        }
        if let Some(fd) = open_dir(dir, name, shown)? {
            return Ok(fd);
        }
    }
    Err(Fault::io(shown.to_string(), Errno::NOENT))
}

/// Opens the regular file `name` below `dir` for reading: no symlink followed, no blocking on
/// a FIFO or device, anything but a regular file refused. `None` if absent.
pub(super) fn open_file(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> Result<Option<File>, Fault> {
    check_name(name, shown)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        // ELOOP: a symlink; ENXIO: a socket (or a device without its driver).
        Err(e @ (Errno::LOOP | Errno::NXIO | Errno::ISDIR)) => {
            return Err(classify(dir, name, shown.to_string(), "a regular file", e));
        }
        Err(e) => return Err(Fault::io(shown.to_string(), e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Fault::io(shown.to_string(), e))?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(Fault::Refused {
            path: shown.to_string(),
            found: type_name(t),
            expected: "a regular file",
        });
    }
    // Reads of a regular file never block anyway; clear the flag so the handle behaves like
    // any other once handed on.
    let fl = rustix::fs::fcntl_getfl(&fd).map_err(|e| Fault::io(shown.to_string(), e))?;
    rustix::fs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)
        .map_err(|e| Fault::io(shown.to_string(), e))?;
    Ok(Some(File::from(fd)))
}

/// The directories from a bucket down to one of its subdirectories, each held open; the
/// first is the bucket directory.
#[derive(Debug)]
pub(super) struct Chain {
    fds: Vec<OwnedFd>,
    names: Vec<String>,
    shown: String,
}

impl Chain {
    /// The deepest directory.
    pub(super) fn last(&self) -> BorrowedFd<'_> {
        self.fds.last().expect("a chain holds the bucket").as_fd()
    }

    /// The deepest directory's path relative to the store root, for messages.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// `name` inside the deepest directory, relative to the store root, for messages.
    pub(super) fn shown_name(&self, name: &str) -> String {
        format!("{}/{name}", self.shown)
    }

    /// Walks `names` down from the bucket directory `bucket_fd` (shown as `bucket`).
    /// `Ok(None)` when a directory is missing and `create` is false.
    pub(super) fn walk(
        bucket_fd: OwnedFd,
        bucket: &str,
        names: &[String],
        create: bool,
    ) -> Result<Option<Chain>, Fault> {
        let mut chain = Chain {
            fds: vec![bucket_fd],
            names: Vec::with_capacity(names.len()),
            shown: bucket.to_string(),
        };
        for name in names {
            let shown = chain.shown_name(name);
            let next = if create {
                create_dir(chain.last(), name, &shown)?
            } else {
                match open_dir(chain.last(), name, &shown)? {
                    Some(fd) => fd,
                    None => return Ok(None),
                }
            };
            chain.fds.push(next);
            chain.names.push(name.clone());
            chain.shown = shown;
        }
        Ok(Some(chain))
    }

    /// Removes the directories of the chain that are empty, deepest first, stopping at the
    /// first that is not (and never removing the bucket directory). Best effort: a directory
    /// that another writer fills meanwhile simply stays.
    pub(super) fn prune_empty(self) {
        let Chain { fds, names, .. } = self;
        for (parent, name) in fds.iter().zip(names.iter()).rev() {
            // AT_REMOVEDIR on a symlink fails with ENOTDIR: nothing is removed through it.
            if rustix::fs::unlinkat(parent, name.as_str(), AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
    }
}

/// One name in a directory.
#[derive(Debug)]
pub(super) struct Entry {
    /// The name as stored.
    pub(super) raw: CString,
    /// The name, if it is UTF-8 (the layout never makes other names).
    pub(super) name: Option<String>,
    /// Its type, symlinks not followed; `None` if it vanished.
    pub(super) kind: Option<FileType>,
}

/// The entries of the directory `dir`, without `.` and `..`.
pub(super) fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut rd = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(entry) = rd.read() {
        let entry = entry?;
        let raw = entry.file_name();
        if raw.to_bytes() == b"." || raw.to_bytes() == b".." {
            continue;
        }
        let name = std::str::from_utf8(raw.to_bytes()).ok().map(str::to_string);
        let kind = match entry.file_type() {
            // Some file systems do not fill d_type.
            FileType::Unknown => rustix::fs::statat(dir, raw, AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|st| FileType::from_raw_mode(st.st_mode)),
            t => Some(t),
        };
        out.push(Entry {
            raw: raw.to_owned(),
            name,
            kind,
        });
    }
    Ok(out)
}

/// Removes `name` below `dir` and, if it is a directory, everything in it, never following a
/// symlink (a symlink is removed itself, not what it points to).
pub(super) fn remove_tree(dir: BorrowedFd<'_>, name: &str, shown: &str) -> io::Result<()> {
    match type_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = match open_dir(dir, name, shown) {
                Ok(Some(fd)) => fd,
                Ok(None) => return Ok(()),
                Err(Fault::Io { source, .. }) => return Err(source),
                // Replaced by something else meanwhile: remove that instead.
                Err(Fault::Refused { .. }) => {
                    return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into);
                }
            };
            for child in read_dir(sub.as_fd())? {
                match &child.name {
                    Some(n) => remove_tree(sub.as_fd(), n, &format!("{shown}/{n}"))?,
                    // Never a directory of ours: remove the name itself.
                    None => rustix::fs::unlinkat(&sub, child.raw.as_c_str(), AtFlags::empty())
                        .or_else(|_| {
                            rustix::fs::unlinkat(&sub, child.raw.as_c_str(), AtFlags::REMOVEDIR)
                        })?,
                }
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
        }
        Some(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let fd =
            rustix::fs::open(d.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (d, fd)
    }

    fn mkfifo(path: &std::path::Path) {
        rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_raw_mode(0o600)).unwrap();
    }

    #[test]
    fn plain_names_are_single_components() {
        for ok in ["a.d", "x.o", ".put-1.t", "...d", "bkt"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        let (_d, fd) = root();
        assert!(matches!(
            open_dir(fd.as_fd(), "..", "x"),
            Err(Fault::Io { .. })
        ));
        assert!(matches!(
            open_file(fd.as_fd(), "../etc", "x"),
            Err(Fault::Io { .. })
        ));
    }

    #[test]
    fn symlinked_directory_is_refused_not_followed() {
        let (d, fd) = root();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), d.path().join("a.d")).unwrap();
        for create in [false, true] {
            let err = Chain::walk(
                rustix::io::dup(&fd).unwrap(),
                "bkt",
                &["a.d".to_string(), "b.d".to_string()],
                create,
            )
            .unwrap_err();
            match err {
                Fault::Refused {
                    path,
                    found,
                    expected,
                } => {
                    assert_eq!(path, "bkt/a.d");
                    assert_eq!(found, "a symbolic link");
                    assert_eq!(expected, "a directory");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn fifo_as_directory_or_file_is_refused_without_blocking() {
        let (d, fd) = root();
        mkfifo(&d.path().join("f.d"));
        mkfifo(&d.path().join("f.o"));
        match open_dir(fd.as_fd(), "f.d", "bkt/f.d") {
            Err(Fault::Refused { found, .. }) => assert_eq!(found, "a FIFO"),
            other => panic!("{other:?}"),
        }
        match open_file(fd.as_fd(), "f.o", "bkt/f.o") {
            Err(Fault::Refused {
                found, expected, ..
            }) => {
                assert_eq!((found, expected), ("a FIFO", "a regular file"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn symlinked_or_directory_file_is_refused_and_regular_file_reads() {
        let (d, fd) = root();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        symlink(outside.path().join("secret"), d.path().join("l.o")).unwrap();
        std::fs::create_dir(d.path().join("dir.o")).unwrap();
        std::fs::write(d.path().join("ok.o"), b"fine").unwrap();
        std::fs::write(d.path().join("file.d"), b"").unwrap();
        match open_file(fd.as_fd(), "l.o", "l") {
            Err(Fault::Refused { found, .. }) => assert_eq!(found, "a symbolic link"),
            other => panic!("{other:?}"),
        }
        match open_file(fd.as_fd(), "dir.o", "d") {
            Err(Fault::Refused { found, .. }) => assert_eq!(found, "a directory"),
            other => panic!("{other:?}"),
        }
        match open_dir(fd.as_fd(), "file.d", "f") {
            Err(Fault::Refused { found, .. }) => assert_eq!(found, "a regular file"),
            other => panic!("{other:?}"),
        }
        let mut f = open_file(fd.as_fd(), "ok.o", "ok").unwrap().unwrap();
        let fl = rustix::fs::fcntl_getfl(&f).unwrap();
        assert!(!fl.contains(OFlags::NONBLOCK));
        let mut s = String::new();
        io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "fine");
        assert!(open_file(fd.as_fd(), "absent.o", "a").unwrap().is_none());
        assert!(open_dir(fd.as_fd(), "absent.d", "a").unwrap().is_none());
    }

    #[test]
    fn walk_creates_levels_and_prune_removes_only_empty_ones() {
        let (d, fd) = root();
        let names = ["a.d".to_string(), "b.d".to_string()];
        let chain = Chain::walk(rustix::io::dup(&fd).unwrap(), "bkt", &names, true)
            .unwrap()
            .unwrap();
        assert_eq!(chain.shown(), "bkt/a.d/b.d");
        assert!(d.path().join("a.d/b.d").is_dir());
        std::fs::write(d.path().join("a.d/keep.o"), b"").unwrap();
        chain.prune_empty();
        assert!(!d.path().join("a.d/b.d").exists());
        assert!(d.path().join("a.d").is_dir());
        assert!(
            Chain::walk(rustix::io::dup(&fd).unwrap(), "bkt", &names, false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn read_dir_reports_types_without_following() {
        let (d, fd) = root();
        std::fs::write(d.path().join("x.o"), b"").unwrap();
        symlink("/", d.path().join("s.d")).unwrap();
        mkfifo(&d.path().join("p.o"));
        let mut got: Vec<_> = read_dir(fd.as_fd())
            .unwrap()
            .into_iter()
            .map(|e| (e.name.unwrap(), e.kind.unwrap()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("p.o".to_string(), FileType::Fifo),
                ("s.d".to_string(), FileType::Symlink),
                ("x.o".to_string(), FileType::RegularFile),
            ]
        );
    }
}
