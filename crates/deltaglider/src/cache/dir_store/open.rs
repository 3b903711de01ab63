//! The validated open of an entry: the only way an entry already on disk is handed out.
//!
//! An entry this process invalidated is a miss. Otherwise the record is opened first
//! (relative to the leaf handle, `O_NOFOLLOW`, non-blocking), `fstat`-checked and decoded; it
//! must name this very hash and be unexpired. Only then are the bytes opened, and the handle
//! that will be read is `fstat`-checked: a regular file with one link, exactly the record's
//! size, under the entry limit, and (unless the shared-cache policy relaxes it) owned by
//! this user with a private mode. Anything else is treated as planted: logged as a
//! `security` event, both files removed, and a miss returned. Errors that do not say
//! something was planted (out of descriptors, I/O) remove nothing, so a passing fault never
//! costs a good entry.
//!
//! This layer does not hash: the layer on top hashes the bytes through the handle returned
//! here, which is what keeps wrong bytes out.

use std::fs::File;
use std::io::{self, Read};
use std::time::SystemTime;

use super::{Inner, RECORD_SUFFIX};
use crate::cache::record::{RECORD_LEN, Record};
use crate::cache::secure_fs::{self, SecureDir};
use crate::cache::store::{Entry, EntryData};
use crate::error::{IoContext, Result};

/// Errors opening an entry that mean something other than our file is there (a symlink,
/// someone else's file, a socket); transient errors (out of descriptors, I/O) do not remove.
fn planted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP | libc::EACCES | libc::EPERM | libc::ENXIO | libc::ENOTDIR | libc::EISDIR)
    )
}

impl Inner {
    /// Logs a planted or damaged entry as a `security` event, removes both its files and
    /// reports a miss.
    fn reject(&self, leaf: &SecureDir, sha: &str, name: &str, why: &str) -> Result<Option<Entry>> {
        tracing::warn!(
            target: "security",
            path = %leaf.display(name).display(),
            "cache entry rejected and removed: {why}"
        );
        self.remove_in(leaf, sha);
        Ok(None)
    }

    /// Reads and checks the record `name` in `leaf`; `Err(reason)` if it is unusable.
    pub(super) fn read_record(&self, file: &mut File) -> std::result::Result<Record, String> {
        let st = rustix::fs::fstat(&*file).map_err(|e| e.to_string())?;
        secure_fs::check_file_stat(
            &st,
            self.opts.policy,
            Some(RECORD_LEN as u64),
            RECORD_LEN as u64,
        )?;
        let mut buf = [0u8; RECORD_LEN];
        file.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Record::decode(&buf).map_err(|e| e.to_string())
    }

    /// The entry, checked as the module says, or `None` (a miss).
    pub(super) fn open(&self, sha: &str) -> Result<Option<Entry>> {
        if self.is_invalidated(sha) {
            return Ok(None);
        }
        let leaf = match self.leaf(sha, false) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(target: "security", sha256 = %sha, "cache directory unusable: {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let rec_name = format!("{sha}{RECORD_SUFFIX}");
        let mut rec_file = match leaf.open_read(&rec_name) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // Records are published before bytes, so bytes alone were planted.
                if leaf.stat(sha).ok().flatten().is_some() {
                    return self.reject(&leaf, sha, sha, "bytes without a record");
                }
                return Ok(None);
            }
            Err(e) if planted(&e) => {
                return self.reject(
                    &leaf,
                    sha,
                    &rec_name,
                    &format!("cannot open record: {}", crate::error::chain(&e)),
                );
            }
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot open cache record (treated as a miss): {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let record = match self.read_record(&mut rec_file) {
            Ok(r) => r,
            Err(why) => return self.reject(&leaf, sha, &rec_name, &format!("bad record: {why}")),
        };
        if record.sha256_hex() != sha {
            return self.reject(&leaf, sha, &rec_name, "record names another hash");
        }
        if record.is_expired(crate::cache::now_secs()) {
            tracing::debug!(sha256 = %sha, "cache entry expired; removed");
            self.remove_in(&leaf, sha);
            return Ok(None);
        }
        let data = match leaf.open_read(sha) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) if planted(&e) => {
                return self.reject(
                    &leaf,
                    sha,
                    sha,
                    &format!("cannot open: {}", crate::error::chain(&e)),
                );
            }
            Err(e) => {
                tracing::warn!(sha256 = %sha, "cannot open cache entry (treated as a miss): {}", crate::error::chain(&e));
                return Ok(None);
            }
        };
        let st = rustix::fs::fstat(&data)
            .map_err(std::io::Error::from)
            .ctx(|| format!("cannot stat cache entry {sha}"))?;
        if let Err(why) = secure_fs::check_file_stat(
            &st,
            self.opts.policy,
            Some(record.size),
            self.opts.max_entry_bytes,
        ) {
            return self.reject(&leaf, sha, sha, &why);
        }
        // Least-recently-used bookkeeping: a hit sets the record's access time. Reads never
        // move it (files are opened with O_NOATIME), and changing the access time alone is
        // not an attribute change, so the integrity monitor of another process sharing the
        // cache does not take a hit for tampering.
        let _ = rec_file.set_times(std::fs::FileTimes::new().set_accessed(SystemTime::now()));
        Ok(Some(Entry {
            data: EntryData::File(data),
            record,
            hashed: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::test_support::{fill, read, store};
    use super::super::{DirStore, DirStoreOptions};
    use crate::cache::ReferenceCache;
    use crate::cache::record::Record;
    use crate::cache::store::StoreCache;
    use crate::hashing::sha256_hex;

    #[test]
    fn appended_flipped_and_swapped_entries_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        // Appended: size no longer matches the record.
        let sha = fill(&c, b"original");
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.entry_path(&sha))
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists() && !s.record_path(&sha).exists());
        // Flipped: same size, wrong hash.
        let sha = fill(&c, b"original");
        std::fs::write(s.entry_path(&sha), b"0riginal").unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
        // Swapped: another valid entry's bytes and record moved over this one.
        let a = fill(&c, b"aaaa");
        let b = fill(&c, b"bbbb");
        std::fs::copy(s.entry_path(&b), s.entry_path(&a)).unwrap();
        assert!(c.lookup(&a).unwrap().is_none());
        std::fs::copy(s.record_path(&b), s.record_path(&a)).unwrap();
        let a2 = fill(&c, b"aaaa");
        assert_eq!(a, a2);
        std::fs::copy(s.record_path(&b), s.record_path(&a)).unwrap();
        assert!(
            c.lookup(&a).unwrap().is_none(),
            "record naming another hash"
        );
        assert_eq!(read(c.lookup(&b).unwrap().unwrap()), b"bbbb");
    }

    #[test]
    fn planted_symlink_hardlink_fifo_and_oversize_are_rejected_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (s, c) = store(
            &t.path().join("c"),
            DirStoreOptions {
                max_entry_bytes: 100,
                ..Default::default()
            },
        );
        let bytes = b"planted bytes";
        let sha = fill(&c, bytes);
        let target = outside.path().join("t");
        std::fs::write(&target, bytes).unwrap();
        // Symlink at the entry path.
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        std::os::unix::fs::symlink(&target, s.entry_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(
            std::fs::symlink_metadata(s.entry_path(&sha)).is_err(),
            "symlink removed"
        );
        assert!(target.exists(), "its target untouched");
        // Hard link to a file elsewhere.
        let sha = fill(&c, bytes);
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        std::fs::hard_link(&target, s.entry_path(&sha)).unwrap();
        std::fs::set_permissions(s.entry_path(&sha), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
        assert_eq!(std::fs::read(&target).unwrap(), bytes);
        // FIFO.
        let sha = fill(&c, bytes);
        std::fs::remove_file(s.entry_path(&sha)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            s.entry_path(&sha),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(std::fs::symlink_metadata(s.entry_path(&sha)).is_err());
        // Symlinked record.
        let sha = fill(&c, bytes);
        let rec = std::fs::read(s.record_path(&sha)).unwrap();
        std::fs::write(outside.path().join("rec"), rec).unwrap();
        std::fs::remove_file(s.record_path(&sha)).unwrap();
        std::os::unix::fs::symlink(outside.path().join("rec"), s.record_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        // Oversize: over the entry limit even if the record agrees.
        let big = vec![7u8; 101];
        let sha = sha256_hex(&big);
        let mut w = c.writer(&sha).unwrap();
        w.write_all(&big).unwrap();
        assert_eq!(read(w.commit("t").unwrap()), big, "served, just not cached");
        assert!(!s.entry_path(&sha).exists());
        assert!(c.lookup(&sha).unwrap().is_none());
        let small = fill(&c, b"x");
        let mut rec = Record::decode(&std::fs::read(s.record_path(&small)).unwrap()).unwrap();
        rec.size = 101;
        std::fs::write(s.record_path(&small), rec.encode()).unwrap();
        std::fs::write(s.entry_path(&small), &big).unwrap();
        assert!(c.lookup(&small).unwrap().is_none());
        assert!(!s.entry_path(&small).exists());
    }

    #[test]
    fn bytes_without_record_are_planted() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        let sha = fill(&c, b"abc");
        std::fs::remove_file(s.record_path(&sha)).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
    }

    #[test]
    fn expired_entries_are_misses_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = DirStore::open(t.path(), DirStoreOptions::default()).unwrap();
        let c = StoreCache::new(
            Arc::new(s.clone()),
            Some(Duration::from_secs(3600)),
            "persistent",
            true,
        );
        let sha = fill(&c, b"ttl");
        assert!(c.lookup(&sha).unwrap().is_some());
        let mut rec = Record::decode(&std::fs::read(s.record_path(&sha)).unwrap()).unwrap();
        assert!(rec.expires >= rec.created + 3600);
        rec.expires = crate::cache::now_secs() - 1;
        std::fs::write(s.record_path(&sha), rec.encode()).unwrap();
        assert!(c.lookup(&sha).unwrap().is_none());
        assert!(!s.entry_path(&sha).exists());
    }

    #[test]
    fn verify_all_counts_and_removes() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(t.path(), DirStoreOptions::default());
        fill(&c, b"good");
        let bad = fill(&c, b"bad!");
        std::fs::write(s.entry_path(&bad), b"BAD!").unwrap();
        let v = c.verify_all().unwrap();
        assert_eq!((v.checked, v.valid, v.removed), (2, 1, 1));
        assert!(!s.entry_path(&bad).exists());
    }
}
