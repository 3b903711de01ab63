//! The small system calls around the cache's files: randomness, `flock` probes, opening
//! without following, and sealed anonymous memory files.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};

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
