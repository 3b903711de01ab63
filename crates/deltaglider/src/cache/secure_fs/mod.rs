//! File-system primitives for the caches: directories held open as handles, every file opened
//! relative to one with `O_NOFOLLOW` (so a planted symlink is never followed), created with
//! `O_EXCL` and mode 0600, and checked with `fstat` on the very handle that will be read.
//! Also sealed anonymous memory files (`memfd`), where decrypted bytes live.
//!
//! `mod.rs` holds the checks (what a directory or file must be); `dir.rs` the open directory
//! everything is reached through; `sys.rs` the small system calls around them.

mod dir;
mod sys;

pub use dir::SecureDir;
pub use sys::{fill_random, memfd, open_nofollow, random_hex, seal, try_lock_exclusive};

use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::error::Error;

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

pub(super) fn file_type_name(t: FileType) -> &'static str {
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

pub(super) fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "refusing cache directory {}: {why} (set DG_UNSAFE_SHARED_CACHE=true to accept a shared directory at your own risk)",
        path.display()
    ))
}

#[cfg(test)]
mod tests;
