//! A local directory as an object store: the embedded default for single machines and tests.
//!
//! Layout under the root: one directory per bucket. A key's segments map to nested
//! directories named `<segment>.d`, and the object itself to a file `<last segment>.o`, so
//! that keys `a` and `a/b` can coexist as they do on S3. Each object file starts with a small
//! header ([`format`]) followed by the object's bytes, so that data and metadata are
//! published together by a single `rename` (or `link`, for create-if-absent; see [`write`]).
//!
//! The tree may be damaged or hostile: everything is reached by handle from the root, opened
//! once (`tree`), no symlink below the root is ever followed, and nothing but a regular file
//! is ever read or replaced as an object, nor anything but a directory entered.

mod format;
mod list;
mod tree;
mod write;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use tokio::io::AsyncReadExt;

use super::{
    BucketAdmin, BucketInfo, CopyOptions, DeleteFailure, ListPage, ListRequest, ObjectInfo,
    ObjectReader, ObjectStore, PendingUploads, Presign, PutOptions, PutOutcome, PutSource,
};
use crate::error::{Error, IoContext, Result};
use crate::url::validate_bucket_name;
use format::{Header, read_info};
use tree::{Chain, Fault};

const DIR_SUFFIX: &str = ".d";
const OBJECT_SUFFIX: &str = ".o";
/// Longest key segment that still fits a 255-byte file name with our suffix.
const MAX_SEGMENT: usize = 250;

/// Object store over a local directory (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// The root directory, opened once: a symlink in the path the user gave is theirs to
    /// choose, nothing below it is followed.
    root_fd: Arc<OwnedFd>,
}

/// Where a key lives: directory names from the bucket down, and the object's file name.
struct KeyPath {
    dirs: Vec<String>,
    file: String,
}

fn key_path(bucket: &str, key: &str) -> Result<KeyPath> {
    let segments: Vec<&str> = key.split('/').collect();
    if key.is_empty() || key.contains('\0') || segments.iter().any(|s| s.len() > MAX_SEGMENT) {
        return Err(Error::InvalidKey {
            bucket: bucket.to_string(),
            key: key.to_string(),
            reason: format!(
                "the local store needs non-empty keys without NUL and path segments of at most {MAX_SEGMENT} bytes"
            ),
        });
    }
    let (last, dirs) = segments.split_last().expect("split yields one item");
    Ok(KeyPath {
        dirs: dirs.iter().map(|s| format!("{s}{DIR_SUFFIX}")).collect(),
        file: format!("{last}{OBJECT_SUFFIX}"),
    })
}

impl LocalStore {
    /// Opens (and creates if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .ctx(|| format!("cannot create local store directory {}", root.display()))?;
        let fd = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::io(
                format!("cannot open local store directory {}", root.display()),
                e.into(),
            )
        })?;
        Ok(LocalStore {
            root,
            root_fd: Arc::new(fd),
        })
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

    /// The bucket's directory, or `None` if there is no such bucket.
    fn try_bucket_fd(&self, bucket: &str) -> Result<Option<OwnedFd>> {
        validate_bucket_name(bucket)?;
        tree::open_dir(self.root_fd.as_fd(), bucket, bucket)
            .map_err(|f| f.into_error("open bucket", bucket, ""))
    }

    fn bucket_fd(&self, bucket: &str) -> Result<OwnedFd> {
        self.try_bucket_fd(bucket)?
            .ok_or_else(|| Error::NoSuchBucket(bucket.to_string()))
    }

    /// The object file of `key`, checked to be a regular file; `None` if absent.
    fn open_object(
        &self,
        operation: &'static str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<File>> {
        let bucket_fd = self.bucket_fd(bucket)?;
        let kp = key_path(bucket, key)?;
        let fault = |f: Fault| f.into_error(operation, bucket, key);
        let Some(chain) = Chain::walk(bucket_fd, bucket, &kp.dirs, false).map_err(fault)? else {
            return Ok(None);
        };
        tree::open_file(chain.last(), &kp.file, &chain.shown_name(&kp.file)).map_err(fault)
    }

    fn head_sync(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        match self.open_object("head", bucket, key)? {
            Some(mut f) => read_info(&mut f, key).map(|(info, _)| Some(info)),
            None => Ok(None),
        }
    }

    fn put_sync(
        &self,
        bucket: &str,
        key: &str,
        source: PutSource,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let mut reader: Box<dyn Read> = match &source {
            PutSource::File(p) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(p).ctx(|| format!("cannot read {}", p.display()))?,
            )),
            PutSource::Bytes(b) => Box::new(io::Cursor::new(b.clone())),
        };
        let header = Header {
            metadata: options.metadata,
            content_type: options.content_type,
            headers: options.headers,
        };
        self.put_reader(bucket, key, &mut reader, &header, options.if_none_match)
    }

    fn put_reader(
        &self,
        bucket: &str,
        key: &str,
        source: &mut dyn Read,
        header: &Header,
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        self.bucket_fd(bucket)?;
        let kp = key_path(bucket, key)?;
        let target = write::Target {
            bucket,
            key,
            dirs: &kp.dirs,
            file: &kp.file,
        };
        write::put(
            &|| self.bucket_fd(bucket),
            &target,
            &header.encode(),
            source,
            if_none_match,
        )
    }

    fn delete_sync(&self, bucket: &str, key: &str) -> Result<()> {
        let bucket_fd = self.bucket_fd(bucket)?;
        let kp = key_path(bucket, key)?;
        let fault = |f: Fault| f.into_error("delete", bucket, key);
        let Some(chain) = Chain::walk(bucket_fd, bucket, &kp.dirs, false).map_err(fault)? else {
            return Ok(());
        };
        let shown = chain.shown_name(&kp.file);
        let io_fault = |e: io::Error| Fault::Io {
            path: shown.clone(),
            source: e,
        };
        match tree::type_at(chain.last(), &kp.file).map_err(|e| fault(io_fault(e)))? {
            None => return Ok(()),
            Some(FileType::RegularFile) => {}
            Some(t) => {
                return Err(fault(Fault::Refused {
                    path: shown,
                    found: tree::type_name(t),
                    expected: "a regular file",
                }));
            }
        }
        // unlinkat removes the name itself: were it swapped for a symlink since the check,
        // the link goes, never what it points to.
        match rustix::fs::unlinkat(chain.last(), kp.file.as_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(fault(io_fault(e.into()))),
        }
        write::sweep(chain.last(), chain.shown());
        chain.prune_empty();
        Ok(())
    }

    /// Storage class, encryption and ACL in `options` mean nothing here and are ignored.
    fn copy_sync(
        &self,
        sb: &str,
        sk: &str,
        db: &str,
        dk: &str,
        options: CopyOptions,
    ) -> Result<()> {
        let mut f = self
            .open_object("copy", sb, sk)?
            .ok_or_else(|| Error::NotFound {
                bucket: sb.to_string(),
                key: sk.to_string(),
            })?;
        let (_, mut header) = read_info(&mut f, sk)?;
        if let Some(m) = options.replace {
            header = Header {
                metadata: m.metadata,
                content_type: m.content_type,
                headers: m.headers,
            };
        }
        // Straight from the handle we checked: a concurrent overwrite of the source publishes
        // a new file and leaves this one as it was.
        let mut data = BufReader::with_capacity(1 << 20, f);
        self.put_reader(db, dk, &mut data, &header, false)
            .map(|_| ())
    }

    fn list_buckets_sync(&self) -> Result<Vec<BucketInfo>> {
        let entries = tree::read_dir(self.root_fd.as_fd())
            .ctx(|| format!("cannot list {}", self.root.display()))?;
        let mut out = Vec::new();
        for entry in entries {
            let Some(name) = entry.name else { continue };
            if validate_bucket_name(&name).is_err() {
                continue;
            }
            if entry.kind != Some(FileType::Directory) {
                if entry.kind.is_some() {
                    tracing::warn!(
                        "local store: skipping {name}: it is {}, not a bucket directory",
                        entry.kind.map_or("gone", tree::type_name)
                    );
                }
                continue;
            }
            let created = tree::stat_at(self.root_fd.as_fd(), &name)
                .ok()
                .flatten()
                .and_then(|st| {
                    DateTime::<Utc>::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
                });
            out.push(BucketInfo { name, created });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete_bucket_sync(&self, bucket: &str) -> Result<()> {
        let fd = self.bucket_fd(bucket)?;
        let mut found = Vec::new();
        list::walk(fd.as_fd(), bucket, "", "", &mut found)?;
        if !found.is_empty() {
            return Err(Error::BucketNotEmpty(bucket.to_string()));
        }
        tree::remove_tree(self.root_fd.as_fd(), bucket, bucket).ctx(|| {
            format!(
                "cannot remove bucket directory {bucket} in {}",
                self.root.display()
            )
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    crate::task::blocking("local store worker", f).await
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        format!("local store at {}", self.root.display())
    }

    fn bucket_admin(&self) -> Option<&dyn BucketAdmin> {
        Some(self)
    }

    /// The local store serves no HTTP: nothing to sign a URL for.
    fn presigner(&self) -> Option<&dyn Presign> {
        None
    }

    fn pending_uploads(&self) -> Option<&dyn PendingUploads> {
        None
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        let this = self.clone();
        let bucket = bucket.to_string();
        blocking(move || Ok(this.try_bucket_fd(&bucket)?.is_some())).await
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        let this = self.clone();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        blocking(move || this.head_sync(&bucket, &key)).await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectReader> {
        let this = self.clone();
        let (b, k) = (bucket.to_string(), key.to_string());
        let (info, file) = blocking(move || {
            let Some(mut f) = this.open_object("download", &b, &k)? else {
                return Err(Error::NotFound { bucket: b, key: k });
            };
            // Leaves the handle at the object's bytes.
            let (info, _) = read_info(&mut f, &k)?;
            Ok((info, f))
        })
        .await?;
        let size = info.size;
        let body = tokio::fs::File::from_std(file).take(size);
        Ok(ObjectReader {
            info,
            body: Box::pin(body),
        })
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<ObjectReader> {
        use std::io::{Seek, SeekFrom};
        let this = self.clone();
        let (b, k) = (bucket.to_string(), key.to_string());
        let file = blocking(move || {
            let Some(mut f) = this.open_object("download", &b, &k)? else {
                return Err(Error::NotFound { bucket: b, key: k });
            };
            let (info, _) = read_info(&mut f, &k)?;
            if range.start > range.end || range.end > info.size {
                return Err(Error::InvalidArgument {
                    what: format!("the range {range:?} of {b}/{k}"),
                    reason: format!("the object has {} bytes", info.size),
                });
            }
            // From the object's first byte (where the header left the handle) to the range.
            f.seek(SeekFrom::Current(range.start as i64))
                .ctx(|| format!("cannot read {b}/{k}"))?;
            Ok((info, f, range.end - range.start))
        })
        .await?;
        let (info, f, len) = file;
        Ok(ObjectReader {
            info,
            body: Box::pin(tokio::fs::File::from_std(f).take(len)),
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
        blocking(move || list::list(this.bucket_fd(&bucket)?, &bucket, &request)).await
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
        blocking(move || this.copy_sync(&sb, &sk, &db, &dk, options)).await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let this = self.clone();
        let (bucket, key) = (bucket.to_string(), key.to_string());
        blocking(move || this.delete_sync(&bucket, &key)).await
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> Result<Vec<DeleteFailure>> {
        let this = self.clone();
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        blocking(move || {
            Ok(keys
                .into_iter()
                .filter_map(|key| match this.delete_sync(&bucket, &key) {
                    Ok(()) => None,
                    Err(error) => Some(DeleteFailure { key, error }),
                })
                .collect())
        })
        .await
    }
}

#[async_trait]
impl BucketAdmin for LocalStore {
    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let this = self.clone();
        blocking(move || this.list_buckets_sync()).await
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        validate_bucket_name(bucket)?;
        let this = self.clone();
        let bucket = bucket.to_string();
        blocking(move || {
            match rustix::fs::mkdirat(
                this.root_fd.as_fd(),
                bucket.as_str(),
                Mode::from_raw_mode(0o777),
            ) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) => Err(Error::BucketAlreadyExists(bucket)),
                Err(e) => Err(Error::io(
                    format!(
                        "cannot create bucket directory {bucket} in {}",
                        this.root.display()
                    ),
                    e.into(),
                )),
            }
        })
        .await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let this = self.clone();
        let bucket = bucket.to_string();
        blocking(move || this.delete_bucket_sync(&bucket)).await
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
