//! Listing a bucket: a walk of its directories by handle, S3's prefix/delimiter grouping and
//! continuation tokens on top.
//!
//! Entries that do not fit the layout (a symlink, FIFO, socket or device where a directory
//! `<segment>.d` or an object `<segment>.o` should be) are skipped with a warning, never
//! followed or opened in a way that could block; temporary files are skipped silently.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::FileType;

use super::format::read_info;
use super::tree::{self, Chain, Fault};
use super::write::is_temp_name;
use super::{DIR_SUFFIX, OBJECT_SUFFIX};
use crate::error::{Error, Result};
use crate::storage::{ListPage, ListRequest};

/// Page size when the caller sets none. Every page walks the bucket's directories, so pages
/// are as large as the listing: paging through N keys 1000 at a time would cost N²/1000.
const DEFAULT_MAX_KEYS: usize = usize::MAX;

/// Continuation token: the last item of the previous page.
enum Token {
    Key(String),
    Prefix(String),
}

impl Token {
    fn parse(s: &str) -> Result<Token> {
        match s.split_at_checked(2) {
            Some(("k:", k)) => Ok(Token::Key(k.to_string())),
            Some(("p:", p)) => Ok(Token::Prefix(p.to_string())),
            _ => Err(Error::invalid(
                format!("continuation token '{s}'"),
                "not one this store issued",
            )),
        }
    }
    fn render(&self) -> String {
        match self {
            Token::Key(k) => format!("k:{k}"),
            Token::Prefix(p) => format!("p:{p}"),
        }
    }
    /// True if `key` comes after this token (and is not inside an already-returned prefix).
    fn is_before(&self, key: &str) -> bool {
        match self {
            Token::Key(k) => key > k.as_str(),
            Token::Prefix(p) => key > p.as_str() && !key.starts_with(p.as_str()),
        }
    }
}

fn skip(path: &str, what: impl std::fmt::Display) {
    tracing::warn!("local store: skipping {path}: {what}");
}

/// Collects the key of every object below `dir` (shown as `shown`, its keys starting with
/// `key_base`) whose key starts with `prefix`.
pub(super) fn walk(
    dir: BorrowedFd<'_>,
    shown: &str,
    key_base: &str,
    prefix: &str,
    out: &mut Vec<String>,
) -> Result<()> {
    let entries = match tree::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(Error::io(
                format!("cannot list local store directory {shown}"),
                e,
            ));
        }
    };
    for tree::Entry { name, kind: t, .. } in entries {
        let Some(name) = name else {
            skip(shown, "a name that is not UTF-8");
            continue;
        };
        let path = format!("{shown}/{name}");
        if is_temp_name(&name) {
            continue;
        }
        if let Some(seg) = name.strip_suffix(DIR_SUFFIX) {
            if t != Some(FileType::Directory) {
                skip(&path, format!("it is {}, not a directory", found(t)));
                continue;
            }
            let sub = format!("{key_base}{seg}/");
            // Only descend where keys can still match the prefix.
            if !(sub.starts_with(prefix) || prefix.starts_with(&sub)) {
                continue;
            }
            match tree::open_dir(dir, &name, &path) {
                Ok(Some(fd)) => walk(fd.as_fd(), &path, &sub, prefix, out)?,
                // Removed while we were listing.
                Ok(None) => {}
                Err(Fault::Refused { found, .. }) => skip(&path, format!("it is {found}")),
                Err(Fault::Io { source, .. }) => {
                    return Err(Error::io(
                        format!("cannot list local store directory {path}"),
                        source,
                    ));
                }
            }
        } else if let Some(seg) = name.strip_suffix(OBJECT_SUFFIX) {
            if t != Some(FileType::RegularFile) {
                skip(&path, format!("it is {}, not a regular file", found(t)));
                continue;
            }
            let key = format!("{key_base}{seg}");
            if key.starts_with(prefix) {
                out.push(key);
            }
        } else {
            skip(&path, "not an object or directory of the store's layout");
        }
    }
    Ok(())
}

fn found(t: Option<FileType>) -> &'static str {
    t.map_or("gone", tree::type_name)
}

/// One page of the listing of the bucket whose directory `bucket_fd` is.
pub(super) fn list(bucket_fd: OwnedFd, bucket: &str, request: &ListRequest) -> Result<ListPage> {
    let prefix = request.prefix.as_str();
    // Start the walk at the deepest directory the prefix fully determines.
    let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let mut start_dirs = Vec::new();
    let mut key_base = String::new();
    if !dir_part.is_empty() || prefix.starts_with('/') {
        for seg in dir_part.split('/') {
            start_dirs.push(format!("{seg}{DIR_SUFFIX}"));
            key_base.push_str(seg);
            key_base.push('/');
        }
    }
    let bucket_dup = rustix::io::dup(&bucket_fd).map_err(|e| Error::io("cannot list", e.into()))?;
    let mut keys = Vec::new();
    match Chain::walk(bucket_dup, bucket, &start_dirs, false) {
        Ok(Some(start)) => walk(start.last(), start.shown(), &key_base, prefix, &mut keys)?,
        Ok(None) => {}
        Err(Fault::Refused { path, found, .. }) => skip(&path, format!("it is {found}")),
        Err(f) => return Err(f.into_error("list", bucket, prefix)),
    }
    keys.sort();

    let max_keys = request.max_keys.unwrap_or(DEFAULT_MAX_KEYS).max(1);
    let token = request
        .continuation_token
        .as_deref()
        .map(Token::parse)
        .transpose()?;
    let mut opener = Opener {
        bucket_fd,
        bucket,
        cached: None,
    };
    let mut page = ListPage::default();
    let mut emitted = 0usize;
    let mut last: Option<Token> = None;
    for key in keys {
        if token.as_ref().is_some_and(|t| !t.is_before(&key)) {
            continue;
        }
        let grouped = request
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|i| key[..prefix.len() + i + d.len()].to_string())
            });
        if let Some(cp) = &grouped
            && matches!(&last, Some(Token::Prefix(p)) if p == cp)
        {
            continue;
        }
        if emitted == max_keys {
            page.next_token = last.map(|t| t.render());
            break;
        }
        match grouped {
            Some(cp) => {
                page.common_prefixes.push(cp.clone());
                last = Some(Token::Prefix(cp));
            }
            None => {
                let Some(mut f) = opener.open(&key)? else {
                    continue;
                };
                let (info, _) = read_info(&mut f, &key)?;
                page.objects.push(info);
                last = Some(Token::Key(key));
            }
        }
        emitted += 1;
    }
    Ok(page)
}

/// Opens listed objects, keeping the last directory open (keys of one directory sort
/// together, mostly).
struct Opener<'a> {
    bucket_fd: OwnedFd,
    bucket: &'a str,
    cached: Option<(Vec<String>, Chain)>,
}

impl Opener<'_> {
    /// The object file of `key`; `None` if it vanished or is no longer a regular file.
    fn open(&mut self, key: &str) -> Result<Option<std::fs::File>> {
        let segs: Vec<&str> = key.split('/').collect();
        let (file, dirs) = segs.split_last().expect("split yields one item");
        let dirs: Vec<String> = dirs.iter().map(|s| format!("{s}{DIR_SUFFIX}")).collect();
        let file = format!("{file}{OBJECT_SUFFIX}");
        if self.cached.as_ref().is_none_or(|(d, _)| *d != dirs) {
            let dup =
                rustix::io::dup(&self.bucket_fd).map_err(|e| Error::io("cannot list", e.into()))?;
            match Chain::walk(dup, self.bucket, &dirs, false) {
                Ok(Some(chain)) => self.cached = Some((dirs, chain)),
                Ok(None) => return Ok(None),
                Err(Fault::Refused { path, found, .. }) => {
                    skip(&path, format!("it is {found}"));
                    return Ok(None);
                }
                Err(f) => return Err(f.into_error("list", self.bucket, key)),
            }
        }
        let (_, chain) = self.cached.as_ref().expect("cached above");
        match tree::open_file(chain.last(), &file, &chain.shown_name(&file)) {
            Ok(f) => Ok(f),
            Err(Fault::Refused { path, found, .. }) => {
                skip(&path, format!("it is {found}"));
                Ok(None)
            }
            Err(f) => Err(f.into_error("list", self.bucket, key)),
        }
    }
}
