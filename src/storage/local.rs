//! A local directory as an object store: the embedded default for single machines and tests.
//!
//! Layout under the root: one directory per bucket. A key's segments map to nested
//! directories named `<segment>.d`, and the object itself to a file `<last segment>.o`, so
//! that keys `a` and `a/b` can coexist as they do on S3. Each object file starts with a small
//! header (magic, length, JSON with user metadata) followed by the object's bytes, so that
//! data and metadata are published together by a single `rename` (or `link`, for
//! create-if-absent). Temporary files end in `.t` and are ignored by readers.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{
    BucketInfo, CopyOptions, ListPage, ListRequest, ObjectHeaders, ObjectInfo, ObjectReader,
    ObjectStore, PutOptions, PutOutcome, PutSource,
};
use crate::error::{Error, IoContext, Result};
use crate::metadata::UserMetadata;
use crate::url::validate_bucket_name;

const MAGIC: &[u8; 8] = b"DGLOBJ1\n";
const DIR_SUFFIX: &str = ".d";
const OBJECT_SUFFIX: &str = ".o";
const TEMP_SUFFIX: &str = ".t";
/// Longest key segment that still fits a 255-byte file name with our suffix.
const MAX_SEGMENT: usize = 250;
/// Largest header we accept when reading (metadata is limited to a few KiB on S3 anyway).
const MAX_HEADER: u32 = 1 << 20;
/// Page size when the caller sets none. Every page walks the bucket's directories, so pages
/// are as large as the listing: paging through N keys 1000 at a time would cost N²/1000.
const DEFAULT_MAX_KEYS: usize = usize::MAX;

#[derive(Debug, Serialize, Deserialize, Default)]
struct Header {
    metadata: UserMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    /// Cache-Control and the like, kept and returned as S3 does. Storage class, encryption
    /// and ACLs have no meaning here and are not recorded.
    #[serde(default, skip_serializing_if = "ObjectHeaders::is_empty")]
    headers: ObjectHeaders,
}

/// Object store over a local directory (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (and creates if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .ctx(|| format!("cannot create local store directory {}", root.display()))?;
        Ok(LocalStore { root })
    }

    /// Opens a store from a `file:///path` URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("file://")
            .ok_or_else(|| Error::Config(format!("'{url}' is not a file:// URL")))?;
        if path.is_empty() {
            return Err(Error::Config(format!("'{url}' names no directory")));
        }
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| Error::Config(format!("'{url}' is not valid UTF-8")))?;
        LocalStore::new(PathBuf::from(decoded.as_ref()))
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        validate_bucket_name(bucket)?;
        Ok(self.root.join(bucket))
    }

    fn existing_bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        let dir = self.bucket_dir(bucket)?;
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(Error::NoSuchBucket(bucket.to_string()))
        }
    }

    fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        let mut path = self.existing_bucket_dir(bucket)?;
        let segments: Vec<&str> = key.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            if seg.len() > MAX_SEGMENT || key.contains('\0') || key.is_empty() {
                return Err(Error::InvalidKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    reason: format!(
                        "the local store needs non-empty keys without NUL and path segments of at most {MAX_SEGMENT} bytes"
                    ),
                });
            }
            let suffix = if i + 1 == segments.len() {
                OBJECT_SUFFIX
            } else {
                DIR_SUFFIX
            };
            path.push(format!("{seg}{suffix}"));
        }
        Ok(path)
    }

    fn head_sync(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.object_path(bucket, key)?;
        match File::open(&path) {
            Ok(mut f) => read_info(&mut f, key).map(|(info, _)| Some(info)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(format!("cannot open {}", path.display()), e)),
        }
    }

    fn put_sync(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let reader: Box<dyn Read> = match &source {
            PutSource::File(p) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(p).ctx(|| format!("cannot read {}", p.display()))?,
            )),
            PutSource::Bytes(b) => Box::new(io::Cursor::new(b.clone())),
        };
        self.put_reader(
            bucket,
            key,
            reader,
            Header {
                metadata: options.metadata,
                content_type: options.content_type,
                headers: options.headers,
            },
            options.if_none_match,
        )
    }

    fn put_reader(
        &self,
        bucket: &str,
        key: &str,
        mut source_reader: Box<dyn Read>,
        header: Header,
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        let path = self.object_path(bucket, key)?;
        let dir = path
            .parent()
            .expect("object path has a parent")
            .to_path_buf();
        let header = serde_json::to_vec(&header).expect("header serializes");
        // A concurrent delete may remove the empty directories we just created; retry once.
        let mut temp = None;
        for _ in 0..3 {
            fs::create_dir_all(&dir).ctx(|| format!("cannot create {}", dir.display()))?;
            match tempfile::Builder::new()
                .prefix(".put-")
                .suffix(TEMP_SUFFIX)
                .tempfile_in(&dir)
            {
                Ok(t) => {
                    temp = Some(t);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("cannot write in {}", dir.display()), e)),
            }
        }
        let mut temp = temp.ok_or_else(|| {
            Error::io(
                format!("cannot write in {}", dir.display()),
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        let write_err = |e| Error::io(format!("cannot write {}", path.display()), e);
        {
            let f = temp.as_file_mut();
            f.write_all(MAGIC).map_err(write_err)?;
            f.write_all(&(header.len() as u32).to_le_bytes())
                .map_err(write_err)?;
            f.write_all(&header).map_err(write_err)?;
            io::copy(&mut source_reader, f).map_err(write_err)?;
            f.sync_all().map_err(write_err)?;
        }
        if if_none_match {
            // link() fails if the name exists: an atomic create-if-absent.
            match fs::hard_link(temp.path(), &path) {
                Ok(()) => Ok(PutOutcome::Stored { etag: None }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(write_err(e)),
            }
        } else {
            temp.persist(&path).map_err(|e| write_err(e.error))?;
            Ok(PutOutcome::Stored { etag: None })
        }
    }

    fn list_sync(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        let bucket_dir = self.existing_bucket_dir(bucket)?;
        let prefix = request.prefix.as_str();
        // Start the walk at the deepest directory the prefix fully determines.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let mut start = bucket_dir.clone();
        let mut key_base = String::new();
        if !dir_part.is_empty() || prefix.starts_with('/') {
            for seg in dir_part.split('/') {
                start.push(format!("{seg}{DIR_SUFFIX}"));
                key_base.push_str(seg);
                key_base.push('/');
            }
        }
        let mut entries = Vec::new();
        walk(&start, &key_base, prefix, &mut entries)?;
        entries.sort();

        let max_keys = request.max_keys.unwrap_or(DEFAULT_MAX_KEYS).max(1);
        let token = request
            .continuation_token
            .as_deref()
            .map(Token::parse)
            .transpose()?;
        let mut page = ListPage::default();
        let mut emitted = 0usize;
        let mut last: Option<Token> = None;
        for (key, path) in entries {
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
                    let mut f = match File::open(&path) {
                        Ok(f) => f,
                        // Deleted while we were listing.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(Error::io(format!("cannot open {}", path.display()), e));
                        }
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
}

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
            _ => Err(Error::Config(format!("invalid continuation token '{s}'"))),
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

/// Collects `(key, path)` of every object below `dir` whose key starts with `prefix`.
fn walk(dir: &Path, key_base: &str, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()), e)),
    };
    for entry in rd {
        let entry = entry.ctx(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let file_type = entry.file_type().ctx(|| format!("cannot stat {name}"))?;
        if let Some(seg) = name.strip_suffix(DIR_SUFFIX).filter(|_| file_type.is_dir()) {
            let sub = format!("{key_base}{seg}/");
            // Only descend where keys can still match the prefix.
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &sub, prefix, out)?;
            }
        } else if let Some(seg) = name
            .strip_suffix(OBJECT_SUFFIX)
            .filter(|_| file_type.is_file())
        {
            let key = format!("{key_base}{seg}");
            if key.starts_with(prefix) {
                out.push((key, entry.path()));
            }
        }
    }
    Ok(())
}

/// Reads the header of an object file; leaves the file positioned at the object's bytes.
fn read_info(f: &mut File, key: &str) -> Result<(ObjectInfo, Header)> {
    let corrupt = |why: &str| Error::Storage {
        operation: "read".into(),
        bucket: String::new(),
        key: key.to_string(),
        detail: format!("local object file is corrupt: {why}"),
    };
    let meta = f.metadata().ctx(|| format!("cannot stat object {key}"))?;
    let mut fixed = [0u8; 12];
    f.read_exact(&mut fixed)
        .map_err(|_| corrupt("short header"))?;
    if &fixed[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let len = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if len > MAX_HEADER || u64::from(len) + 12 > meta.len() {
        return Err(corrupt("bad header length"));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)
        .map_err(|_| corrupt("short header"))?;
    let header: Header = serde_json::from_slice(&buf).map_err(|_| corrupt("bad header"))?;
    let modified: Option<DateTime<Utc>> = meta.modified().ok().map(DateTime::<Utc>::from);
    let info = ObjectInfo {
        key: key.to_string(),
        size: meta.len() - 12 - u64::from(len),
        last_modified: modified,
        etag: None,
        metadata: Some(header.metadata.clone()),
        content_type: header.content_type.clone(),
        headers: header.headers.clone(),
        protection: Default::default(),
    };
    Ok((info, header))
}

/// Removes empty directories from `dir` up to (not including) `stop`.
fn prune_empty_dirs(mut dir: &Path, stop: &Path) {
    while dir != stop && dir.starts_with(stop) {
        if fs::remove_dir(dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
}

fn any_object_below(dir: &Path) -> Result<bool> {
    let mut found = Vec::new();
    walk(dir, "", "", &mut found)?;
    Ok(!found.is_empty())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io("local store worker failed", io::Error::other(e)))?
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        format!("local store at {}", self.root.display())
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&root).ctx(|| format!("cannot list {}", root.display()))? {
                let entry = entry.ctx(|| format!("cannot list {}", root.display()))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if validate_bucket_name(&name).is_err() || !entry.path().is_dir() {
                    continue;
                }
                let created = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .map(DateTime::<Utc>::from);
                out.push(BucketInfo { name, created });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.bucket_dir(bucket)?;
        let bucket = bucket.to_string();
        blocking(move || match fs::create_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(Error::BucketAlreadyExists(bucket))
            }
            Err(e) => Err(Error::io(format!("cannot create {}", dir.display()), e)),
        })
        .await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.existing_bucket_dir(bucket)?;
        let bucket = bucket.to_string();
        blocking(move || {
            if any_object_below(&dir)? {
                return Err(Error::BucketNotEmpty(bucket));
            }
            fs::remove_dir_all(&dir).ctx(|| format!("cannot remove {}", dir.display()))
        })
        .await
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        Ok(self.bucket_dir(bucket)?.is_dir())
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        let this = self.clone();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        blocking(move || this.head_sync(&bucket, &key)).await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectReader> {
        let path = self.object_path(bucket, key)?;
        let key_owned = key.to_string();
        let not_found = || Error::NotFound {
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        let (info, file) = blocking(move || {
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
            };
            let (info, _) = read_info(&mut f, &key_owned)?;
            let pos = f
                .stream_position()
                .ctx(|| format!("cannot read {}", path.display()))?;
            f.seek(SeekFrom::Start(pos))
                .ctx(|| format!("cannot read {}", path.display()))?;
            Ok(Some((info, f)))
        })
        .await?
        .ok_or_else(not_found)?;
        let size = info.size;
        let body = tokio::fs::File::from_std(file).take(size);
        Ok(ObjectReader {
            info,
            body: Box::pin(body),
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let this = self.clone();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        blocking(move || this.put_sync(&bucket, &key, source, options)).await
    }

    async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        let this = self.clone();
        let bucket = bucket.to_string();
        let request = request.clone();
        blocking(move || this.list_sync(&bucket, &request)).await
    }

    async fn presign_get(
        &self,
        _bucket: &str,
        _key: &str,
        _expires_in: std::time::Duration,
        _download_name: Option<&str>,
    ) -> Result<String> {
        Err(Error::Config(
            "presigned URLs need an S3 endpoint; the local store serves no HTTP".into(),
        ))
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: CopyOptions,
    ) -> Result<()> {
        let this = self.clone();
        let (sb, sk, db, dk) = (
            src_bucket.to_string(),
            src_key.to_string(),
            dst_bucket.to_string(),
            dst_key.to_string(),
        );
        blocking(move || {
            let src = this.object_path(&sb, &sk)?;
            let mut f = match File::open(&src) {
                Ok(f) => f,
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    return Err(Error::NotFound {
                        bucket: sb,
                        key: sk,
                    });
                }
                Err(e) => return Err(Error::io(format!("cannot open {}", src.display()), e)),
            };
            let (_, mut header) = read_info(&mut f, &sk)?;
            if let Some(m) = options.replace {
                header = Header {
                    metadata: m.metadata,
                    content_type: m.content_type,
                    headers: m.headers,
                };
            }
            // Re-read through the same handle: the copy is of exactly the object we opened.
            let mut data = tempfile::tempfile().ctx(|| "cannot create a temporary file".into())?;
            io::copy(&mut f, &mut data).ctx(|| format!("cannot read {}", src.display()))?;
            data.seek(SeekFrom::Start(0))
                .ctx(|| "cannot rewind".into())?;
            this.put_reader(&db, &dk, Box::new(data), header, false)
                .map(|_| ())
        })
        .await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let path = self.object_path(bucket, key)?;
        let stop = self.existing_bucket_dir(bucket)?;
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(Error::io(format!("cannot delete {}", path.display()), e)),
            }
            if let Some(parent) = path.parent() {
                prune_empty_dirs(parent, &stop);
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn put(store: &LocalStore, key: &str, body: &'static [u8]) {
        rt().block_on(store.put_object(
            "bkt",
            key,
            PutSource::Bytes(body.into()),
            PutOptions::default(),
        ))
        .unwrap();
    }

    fn list_all(
        store: &LocalStore,
        prefix: &str,
        delimiter: Option<&str>,
        page: usize,
    ) -> (Vec<String>, Vec<String>) {
        let mut keys = Vec::new();
        let mut prefixes = Vec::new();
        let mut token = None;
        loop {
            let req = ListRequest {
                prefix: prefix.into(),
                delimiter: delimiter.map(str::to_string),
                continuation_token: token.clone(),
                max_keys: Some(page),
            };
            let p = rt().block_on(store.list_objects("bkt", &req)).unwrap();
            keys.extend(p.objects.into_iter().map(|o| o.key));
            prefixes.extend(p.common_prefixes);
            match p.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        (keys, prefixes)
    }

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path()).unwrap();
        rt().block_on(s.create_bucket("bkt")).unwrap();
        (dir, s)
    }

    #[test]
    fn key_and_prefix_coexist_and_metadata_round_trips() {
        let (_d, s) = store();
        put(&s, "a", b"1");
        put(&s, "a/b", b"22");
        let mut opts = PutOptions::default();
        opts.metadata.insert("dg-x".into(), "y".into());
        rt().block_on(s.put_object("bkt", "m", PutSource::Bytes("abc".into()), opts))
            .unwrap();
        let info = rt().block_on(s.head_object("bkt", "m")).unwrap().unwrap();
        assert_eq!(info.size, 3);
        assert_eq!(info.metadata.unwrap()["dg-x"], "y");
        let mut r = rt().block_on(s.get_object("bkt", "a/b")).unwrap();
        let mut buf = Vec::new();
        rt().block_on(r.body.read_to_end(&mut buf)).unwrap();
        assert_eq!(buf, b"22");
    }

    #[test]
    fn if_none_match_does_not_overwrite() {
        let (_d, s) = store();
        put(&s, "r", b"first");
        let opts = PutOptions {
            if_none_match: true,
            ..Default::default()
        };
        let out = rt()
            .block_on(s.put_object("bkt", "r", PutSource::Bytes("second".into()), opts))
            .unwrap();
        assert_eq!(out, PutOutcome::AlreadyExists);
        assert_eq!(
            rt().block_on(s.head_object("bkt", "r"))
                .unwrap()
                .unwrap()
                .size,
            5
        );
    }

    #[test]
    fn missing_bucket_and_object_are_typed() {
        let (_d, s) = store();
        assert!(matches!(
            rt().block_on(s.head_object("nope", "k")),
            Err(Error::NoSuchBucket(_))
        ));
        assert!(rt().block_on(s.head_object("bkt", "k")).unwrap().is_none());
        assert!(matches!(
            rt().block_on(s.get_object("bkt", "k")),
            Err(Error::NotFound { .. })
        ));
        put(&s, "k", b"x");
        assert!(matches!(
            rt().block_on(s.delete_bucket("bkt")),
            Err(Error::BucketNotEmpty(_))
        ));
        rt().block_on(s.delete_object("bkt", "k")).unwrap();
        rt().block_on(s.delete_bucket("bkt")).unwrap();
    }

    #[test]
    fn delimiter_groups_and_prefix_filters() {
        let (_d, s) = store();
        for k in ["a/1", "a/2", "a/b/3", "ab", "b", "a-"] {
            put(&s, k, b"x");
        }
        let (keys, prefixes) = list_all(&s, "", Some("/"), 1000);
        assert_eq!(keys, ["a-", "ab", "b"]);
        assert_eq!(prefixes, ["a/"]);
        let (keys, prefixes) = list_all(&s, "a/", Some("/"), 1000);
        assert_eq!(keys, ["a/1", "a/2"]);
        assert_eq!(prefixes, ["a/b/"]);
        let (keys, _) = list_all(&s, "a", None, 1000);
        assert_eq!(keys, ["a-", "a/1", "a/2", "a/b/3", "ab"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn pagination_returns_every_key_once(keys in proptest::collection::btree_set("[ab/]{1,6}", 1..25), page in 1usize..5) {
            let keys: Vec<String> = keys.into_iter().filter(|k| !k.split('/').any(str::is_empty)).collect();
            let (_d, s) = store();
            for k in &keys {
                rt().block_on(s.put_object("bkt", k, PutSource::Bytes("x".into()), PutOptions::default())).unwrap();
            }
            let (got, _) = list_all(&s, "", None, page);
            prop_assert_eq!(&got, &keys);
            let (flat, prefixes) = list_all(&s, "", Some("/"), page);
            let mut expect_flat: Vec<String> = keys.iter().filter(|k| !k.contains('/')).cloned().collect();
            expect_flat.sort();
            let mut expect_prefixes: Vec<String> = keys.iter().filter_map(|k| k.find('/').map(|i| k[..=i].to_string())).collect();
            expect_prefixes.sort();
            expect_prefixes.dedup();
            prop_assert_eq!(flat, expect_flat);
            prop_assert_eq!(prefixes, expect_prefixes);
        }
    }
}
