//! Housekeeping ([`EntryStore::maintain`](crate::cache::store::EntryStore::maintain)): run
//! when a store is opened, by `cache verify`, and after a publication that went over the
//! size budget.
//!
//! One pass over every leaf (repairing planted level directories) removes:
//! - temporary files of killed writers: idle for `stale_after` and with no live writer
//!   holding their `flock` (a live writer's file is kept however old it is);
//! - entries in the wrong leaf, bytes without a record, and records without bytes once idle
//!   for `stale_after` (a writer renames the record first, the bytes a moment later);
//! - entries whose record is unreadable, names another hash, or whose bytes fail the same
//!   `stat` checks as the validated open (type, links, owner, mode, size), and expired ones;
//! - then, beyond the size budget, the least recently used entries (oldest record access
//!   time first).
//!
//! In a leaf, only names that belong to the layout are touched; anything else is logged and
//! left alone. Records are read without moving their access times, so housekeeping does not
//! change which entries count as recently used.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{Inner, LOCK_NAME, RECORD_SUFFIX};
use crate::cache::is_sha;
use crate::cache::secure_fs::{self, SecureDir, TEMP_PREFIX};
use crate::error::Result;

fn mtime(st: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn atime(st: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(st.st_atime).unwrap_or(0);
    let nanos = u32::try_from(st.st_atime_nsec).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos.min(999_999_999))
}

fn idle_for(st: &rustix::fs::Stat) -> Duration {
    SystemTime::now()
        .duration_since(mtime(st))
        .unwrap_or(Duration::ZERO)
}

impl Inner {
    /// One housekeeping pass; `keep` is never evicted for the size budget (the entry whose
    /// publication triggered the pass). Returns how many files or entries were removed.
    pub(super) fn maintain(&self, keep: Option<&str>) -> Result<u64> {
        let _guard = self.maintaining.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::cache::now_secs();
        let mut removed = 0u64;
        // (last use, size, sha, leaf index)
        let mut live: Vec<(SystemTime, u64, String, usize)> = Vec::new();
        let leaves = self.walk(true);
        for (i, (leaf, names)) in leaves.iter().enumerate() {
            let prefix = leaf.path().iter().rev().take(2).collect::<Vec<_>>();
            let expected_prefix = format!(
                "{}{}",
                prefix
                    .get(1)
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default(),
                prefix
                    .first()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let names: HashSet<&str> = names.iter().map(String::as_str).collect();
            for name in &names {
                if name.starts_with(TEMP_PREFIX) {
                    removed += u64::from(self.clean_temp(leaf, name));
                } else if *name == LOCK_NAME
                    || is_sha(name)
                    || name.strip_suffix(RECORD_SUFFIX).is_some_and(is_sha)
                {
                    continue;
                } else {
                    tracing::warn!(path = %leaf.display(name).display(), "unexpected file in the cache (left alone)");
                }
            }
            for name in &names {
                let (sha, has_data, has_rec) = if is_sha(name) {
                    let rec = format!("{name}{RECORD_SUFFIX}");
                    (*name, true, names.contains(rec.as_str()))
                } else if let Some(sha) = name.strip_suffix(RECORD_SUFFIX).filter(|s| is_sha(s)) {
                    if names.contains(sha) {
                        continue; // handled with its bytes
                    }
                    (sha, false, true)
                } else {
                    continue;
                };
                if !sha.starts_with(&expected_prefix) {
                    tracing::warn!(target: "security", path = %leaf.display(name).display(), "cache entry in the wrong directory; removed");
                    self.remove_in(leaf, sha);
                    removed += 1;
                    continue;
                }
                if !has_rec {
                    tracing::warn!(target: "security", path = %leaf.display(sha).display(), "cache bytes without a record; removed");
                    self.remove_in(leaf, sha);
                    removed += 1;
                    continue;
                }
                let rec_name = format!("{sha}{RECORD_SUFFIX}");
                let rec_st = match leaf.stat(&rec_name) {
                    Ok(Some(st)) => st,
                    _ => continue,
                };
                if !has_data {
                    if idle_for(&rec_st) > self.opts.stale_after {
                        self.remove_in(leaf, sha);
                        removed += 1;
                    }
                    continue;
                }
                let record = match leaf.open_read(&rec_name) {
                    Ok(Some(mut f)) => self.read_record(&mut f),
                    Ok(None) => continue,
                    Err(e) => Err(e.to_string()),
                };
                let data_st = leaf.stat(sha).ok().flatten();
                let verdict = match (&record, &data_st) {
                    (Err(why), _) => Err(format!("bad record: {why}")),
                    (_, None) => continue,
                    (Ok(r), Some(st)) if r.sha256_hex() != sha => {
                        let _ = st;
                        Err("record names another hash".to_string())
                    }
                    (Ok(r), Some(st)) => secure_fs::check_file_stat(
                        st,
                        self.opts.policy,
                        Some(r.size),
                        self.opts.max_entry_bytes,
                    ),
                };
                match verdict {
                    Err(why) => {
                        tracing::warn!(target: "security", path = %leaf.display(sha).display(), "cache entry rejected and removed: {why}");
                        self.remove_in(leaf, sha);
                        removed += 1;
                    }
                    Ok(()) => {
                        let r = record.expect("checked");
                        if r.is_expired(now) {
                            self.remove_in(leaf, sha);
                            removed += 1;
                        } else {
                            live.push((atime(&rec_st), r.size, sha.to_string(), i));
                        }
                    }
                }
            }
        }
        let mut total: u64 = live.iter().map(|e| e.1).sum();
        if let Some(max) = self.opts.max_bytes
            && total > max
        {
            live.sort_by_key(|e| e.0);
            for (_, size, sha, i) in &live {
                if total <= max {
                    break;
                }
                if Some(sha.as_str()) == keep {
                    continue;
                }
                tracing::debug!(sha256 = %sha, "evicting cache entry (size budget)");
                self.remove_in(&leaves[*i].0, sha);
                total -= size;
                removed += 1;
            }
        }
        self.approx_bytes.store(total, Ordering::Relaxed);
        Ok(removed)
    }

    /// Removes a temporary file if no live writer holds its lock and it has been idle for
    /// the grace period. True if removed.
    fn clean_temp(&self, leaf: &SecureDir, name: &str) -> bool {
        let Ok(Some(st)) = leaf.stat(name) else {
            return false;
        };
        if idle_for(&st) < self.opts.stale_after {
            return false;
        }
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
            match leaf.open_read(name) {
                Ok(Some(f)) if !secure_fs::try_lock_exclusive(&f) => return false,
                _ => {}
            }
        }
        tracing::info!(path = %leaf.display(name).display(), "removing a temporary cache file left by an interrupted writer");
        self.own.note(name);
        leaf.unlink(name).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use super::super::test_support::{fill, store};
    use super::super::{DirStore, DirStoreOptions};
    use crate::cache::secure_fs::TEMP_PREFIX;
    use crate::cache::store::EntryStore;
    use crate::hashing::sha256_hex;

    fn temps(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                temps(&p, out);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(TEMP_PREFIX)
            {
                out.push(p);
            }
        }
    }

    #[test]
    fn temp_left_by_killed_writer_is_cleaned_but_live_writer_kept() {
        let t = tempfile::tempdir().unwrap();
        let opts = DirStoreOptions {
            stale_after: Duration::from_secs(60),
            ..Default::default()
        };
        let (s, c) = store(t.path(), opts.clone());
        let sha = fill(&c, b"abc");
        let leaf = s.entry_path(&sha).parent().unwrap().to_path_buf();
        // A killed writer: a truncated temp file, nobody holds its lock, idle for 10 minutes.
        let dead = leaf.join(".tmp-deadbeefdeadbeef");
        std::fs::write(&dead, b"trunc").unwrap();
        let old = SystemTime::now() - Duration::from_secs(600);
        File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A live writer whose temp file is just as old, but whose lock is held.
        let mut w = c.writer(&sha256_hex(b"live")).unwrap();
        w.write_all(b"li").unwrap();
        w.flush().unwrap();
        let mut all = Vec::new();
        temps(t.path(), &mut all);
        let live: Vec<_> = all.into_iter().filter(|p| *p != dead).collect();
        assert_eq!(live.len(), 1, "{live:?}");
        File::options()
            .write(true)
            .open(&live[0])
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A fresh unlocked temp (a writer between create and lock) is kept too.
        let fresh = leaf.join(".tmp-0000000000000000");
        std::fs::write(&fresh, b"").unwrap();
        assert_eq!(s.maintain().unwrap(), 1);
        assert!(!dead.exists(), "dead writer's temp removed");
        assert!(live[0].exists(), "live writer's temp kept");
        assert!(fresh.exists(), "recent temp kept");
        w.write_all(b"ve").unwrap();
        w.commit("t").unwrap();
        assert!(c.lookup(&sha256_hex(b"live")).unwrap().is_some());
        // Opening the store again (a new process) cleans as well.
        std::fs::write(&dead, b"x").unwrap();
        File::options()
            .write(true)
            .open(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let _ = DirStore::open(t.path(), opts).unwrap();
        assert!(!dead.exists());
    }

    #[test]
    fn size_budget_evicts_least_recently_used() {
        let t = tempfile::tempdir().unwrap();
        let (s, c) = store(
            t.path(),
            DirStoreOptions {
                max_bytes: Some(2500),
                ..Default::default()
            },
        );
        let a = fill(&c, &[1u8; 1000]);
        let b = fill(&c, &[2u8; 1000]);
        // Make `a` the most recently used.
        let old = SystemTime::now() - Duration::from_secs(100);
        for sha in [&a, &b] {
            File::options()
                .write(true)
                .open(s.record_path(sha))
                .unwrap()
                .set_times(std::fs::FileTimes::new().set_accessed(old))
                .unwrap();
        }
        // Housekeeping reads records without moving their access times.
        s.maintain().unwrap();
        let atime = std::fs::metadata(s.record_path(&b))
            .unwrap()
            .accessed()
            .unwrap();
        assert!(atime < SystemTime::now() - Duration::from_secs(50));
        assert!(c.lookup(&a).unwrap().is_some());
        let cc = fill(&c, &[3u8; 1000]);
        assert!(s.entry_path(&a).exists() && s.entry_path(&cc).exists());
        assert!(!s.entry_path(&b).exists(), "least recently used evicted");
        assert!(s.usage().unwrap().bytes <= 2500);
    }
}
