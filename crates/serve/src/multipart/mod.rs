//! Multipart uploads: parts spooled to the server's private directory, the assembled
//! object stored through the library at completion (a delta when eligible, any size).
//!
//! The uploads in progress live in this server's memory: another `serve` process over the
//! same bucket does not know their ids (`NoSuchUpload`), and a server that stops forgets
//! them and removes their parts. What is stored is only ever a completed upload.

mod complete;
mod list;
mod parts;

pub(crate) use complete::complete_multipart_upload;
pub(crate) use list::{list_multipart_uploads, list_parts};
pub(crate) use parts::{upload_part, upload_part_copy};

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use deltaglider::Client;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::s3_error;
use crate::spool::Spool;

/// S3's limits on parts.
pub(crate) const MAX_PART_NUMBER: i32 = 10_000;
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub(crate) const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The uploads in progress on this server, by upload id.
#[derive(Debug)]
pub(crate) struct Uploads {
    spool: Spool,
    open: Mutex<BTreeMap<String, Arc<Upload>>>,
    /// The last uploads completed, by id (bucket, key, entity tag): a client that retries a
    /// completion whose answer it lost gets the same answer, as from S3.
    completed: Mutex<VecDeque<(String, Completed)>>,
}

/// What a completion answered.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    pub bucket: String,
    pub key: String,
    pub etag: Option<String>,
}

/// Completions remembered for retries.
const REMEMBERED: usize = 1000;

/// One multipart upload: where it goes, what it will be stored with, its parts so far.
#[derive(Debug)]
pub(crate) struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated: DateTime<Utc>,
    pub content_type: Option<String>,
    /// `Cache-Control`, `Expires` and the like, recorded with the object.
    pub headers: deltaglider::storage::ObjectHeaders,
    pub metadata: Vec<(String, String)>,
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub parts: BTreeMap<i32, Part>,
    pub phase: Phase,
}

/// Where an upload is in its life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Taking parts.
    #[default]
    Open,
    /// Its object is being stored: parts are neither added nor removed.
    Completing,
    /// Aborted: takes no parts; if it was completing, the completion removes the parts
    /// when it ends.
    Aborted,
}

/// A spooled part.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub path: PathBuf,
    pub size: u64,
    /// Hex MD5 of the part, as S3 reports a part's entity tag.
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

impl Uploads {
    pub(crate) fn new(spool: Spool) -> Self {
        Uploads {
            spool,
            open: Mutex::default(),
            completed: Mutex::default(),
        }
    }

    /// Remembers that `id` completed (again: with its entity tag), for a retried
    /// completion.
    fn remember(&self, id: &str, completed: Completed) {
        let mut done = lock(&self.completed);
        done.retain(|(i, _)| i != id);
        if done.len() == REMEMBERED {
            done.pop_front();
        }
        done.push_back((id.to_string(), completed));
    }

    /// The answer of the completed upload `id` of `bucket`/`key`, if it is remembered.
    fn completed(&self, bucket: &str, key: &str, id: &str) -> Option<Completed> {
        lock(&self.completed)
            .iter()
            .find(|(i, c)| i == id && c.bucket == bucket && c.key == key)
            .map(|(_, c)| c.clone())
    }

    /// The upload `id` of `bucket`/`key`, or S3's `NoSuchUpload`.
    pub(crate) fn get(&self, bucket: &str, key: &str, id: &str) -> S3Result<Arc<Upload>> {
        lock(&self.open)
            .get(id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .cloned()
            .ok_or_else(no_such_upload)
    }

    /// Forgets `id` (after completion or abort).
    fn forget(&self, id: &str) -> Option<Arc<Upload>> {
        lock(&self.open).remove(id)
    }

    /// The uploads of `bucket`, ordered by key, then by initiation.
    pub(crate) fn of_bucket(&self, bucket: &str) -> Vec<Arc<Upload>> {
        let mut uploads: Vec<_> = lock(&self.open)
            .values()
            .filter(|u| u.bucket == bucket)
            .cloned()
            .collect();
        uploads.sort_by(|a, b| (&a.key, a.initiated, &a.id).cmp(&(&b.key, b.initiated, &b.id)));
        uploads
    }

    /// A name for a new file of the spool: `<upload id>-<part>-<unique>`.
    fn part_path(&self, upload: &Upload, number: i32) -> PathBuf {
        upload
            .dir
            .join(format!("{number:05}-{}", self.spool.unique()))
    }
}

impl Upload {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Removes every spooled part.
    fn remove_parts(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may \
         have been aborted or completed."
    )
}

/// A random upload id: 128 bits in hex.
fn new_upload_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) async fn create_multipart_upload(
    client: &Client,
    uploads: &Uploads,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = req.input;
    // Refused now, as a PUT would be, rather than after every part has been sent.
    client
        .check_put_target(&i.bucket, &i.key)
        .await
        .map_err(s3_error)?;
    let id = new_upload_id();
    let dir = uploads.spool.path().join(&id);
    tokio::fs::create_dir(&dir)
        .await
        .map_err(|e| s3_error!(e, InternalError, "cannot spool the upload"))?;
    let upload = Arc::new(Upload {
        id: id.clone(),
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        initiated: Utc::now(),
        headers: crate::headers::requested!(i),
        content_type: i.content_type,
        metadata: i.metadata.unwrap_or_default().into_iter().collect(),
        dir,
        state: Mutex::default(),
    });
    lock(&uploads.open).insert(id.clone(), upload);
    tracing::debug!(bucket = %i.bucket, key = %i.key, upload_id = %id, "multipart upload created");
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub(crate) async fn abort_multipart_upload(
    uploads: &Uploads,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    let upload = uploads.get(&i.bucket, &i.key, &i.upload_id)?;
    uploads.forget(&upload.id);
    let mut state = upload.state();
    let was = std::mem::replace(&mut state.phase, Phase::Aborted);
    // While completing, the completion reads the parts; it removes them when it ends.
    if was == Phase::Open {
        state.parts.clear();
        drop(state);
        upload.remove_parts();
    }
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}
