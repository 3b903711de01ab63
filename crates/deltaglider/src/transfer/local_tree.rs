//! The local side of a tree transfer: walking a directory as `aws s3` does, and the local
//! paths that keys may be written to.

use std::path::{Component, Path, PathBuf};

use super::filter::Filters;
use super::plan::Entry;
use crate::error::{Error, Result};

/// A relative key that is safe to join below a local directory.
pub(super) fn safe_local_path(root: &Path, relative: &str) -> Option<PathBuf> {
    let clean = relative
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    clean.then(|| root.join(relative))
}

/// A local file left out of a transfer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    /// The path as displayed.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// What a walk of a local tree found: the files to consider and the ones that cannot be read.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skip>,
}

/// Regular files below `dir`, with `/`-separated relative paths, filtered; anything that
/// cannot be read is skipped (for callers that only estimate, such as `analyze`).
pub(crate) fn scan_local(dir: &Path, filters: &Filters) -> Result<Vec<Entry>> {
    Ok(scan_local_tree(dir, filters, true)?.entries)
}

/// Walks `dir` like `aws s3` does: regular files (through symbolic links when
/// `follow_symlinks`) that pass the filters are entries; a broken link, a FIFO, socket or
/// device, a file that cannot be opened, a directory that cannot be listed or a link loop is
/// skipped with its reason, and the walk goes on. Links are skipped silently when not
/// followed, as `aws s3 --no-follow-symlinks` does.
pub(super) fn scan_local_tree(
    dir: &Path,
    filters: &Filters,
    follow_symlinks: bool,
) -> Result<Scan> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("cannot read directory {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            format!("cannot list {}", dir.display()),
            std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    let mut scan = Scan::default();
    let skip = |scan: &mut Scan, path: &Path, reason: String| {
        scan.skipped.push(Skip {
            path: path.display().to_string(),
            reason,
        })
    };
    for item in walkdir::WalkDir::new(dir)
        .follow_links(follow_symlinks)
        .sort_by_file_name()
    {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let excluded = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .is_some_and(|r| !filters.accepts(&r.replace(std::path::MAIN_SEPARATOR, "/")));
                if excluded {
                    continue;
                }
                let reason = match (e.loop_ancestor(), e.io_error()) {
                    (Some(ancestor), _) => {
                        format!("File system loop: a link back to {}.", ancestor.display())
                    }
                    (None, Some(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                        "File does not exist.".to_string()
                    }
                    (None, Some(io)) => format!("File/Directory is not readable: {io}."),
                    (None, None) => format!("{e}."),
                };
                skip(&mut scan, &path, reason);
                continue;
            }
        };
        let kind = item.file_type();
        if kind.is_dir() || kind.is_symlink() {
            // Directories are walked; a link is only seen here when links are not followed.
            continue;
        }
        // A download's not-yet-published bytes (or a crashed one's), never data.
        if crate::engine::is_download_temp_name(item.file_name()) {
            continue;
        }
        let rel = item
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays below its root");
        let Some(rel) = rel.to_str() else {
            skip(
                &mut scan,
                item.path(),
                "The name is not valid UTF-8 (S3 keys must be).".into(),
            );
            continue;
        };
        let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
        if !filters.accepts(&rel) {
            continue;
        }
        if !kind.is_file() {
            skip(
                &mut scan,
                item.path(),
                "File is character special device, block special device, FIFO, or socket.".into(),
            );
            continue;
        }
        let meta = match item.metadata() {
            Ok(m) => m,
            Err(e) => {
                skip(
                    &mut scan,
                    item.path(),
                    format!("File is not readable: {e}."),
                );
                continue;
            }
        };
        if let Err(e) = check_readable(item.path()) {
            skip(
                &mut scan,
                item.path(),
                format!("File is not readable: {e}."),
            );
            continue;
        }
        scan.entries.push(Entry {
            path: rel,
            size: meta.len(),
            modified: meta.modified().ok().map(Into::into),
        });
    }
    Ok(scan)
}

/// Opens the file for reading, as the upload will (`aws s3` checks the same way).
fn check_readable(path: &Path) -> std::io::Result<()> {
    // Test builds: `FAILPOINTS=transfer::scan-open=return(NAME)` makes the file named NAME
    // unreadable, since tests run as root and `chmod 000` does not stop root.
    fail::fail_point!("transfer::scan-open", |name: Option<String>| {
        if name.as_deref() == path.file_name().and_then(|n| n.to_str()) {
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        } else {
            open_for_reading(path)
        }
    });
    open_for_reading(path)
}

fn open_for_reading(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a file swapped for a FIFO after the walk must not hang the scan.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_directory_are_refused() {
        let root = Path::new("/dest");
        assert_eq!(
            safe_local_path(root, "a/b.zip"),
            Some(PathBuf::from("/dest/a/b.zip"))
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "",
            "dir/",
        ] {
            assert_eq!(safe_local_path(root, bad), None, "{bad}");
        }
    }
}
