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

#[derive(Debug)]
pub(crate) struct State {
    pub parts: BTreeMap<i32, Part>,
    pub phase: Phase,
    /// When the upload was created or last began or ended a part.
    pub active: std::time::Instant,
    /// Parts being received now: an upload with one is never idle, however slow.
    pub parts_in_flight: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            parts: BTreeMap::new(),
            phase: Phase::default(),
            active: std::time::Instant::now(),
            parts_in_flight: 0,
        }
    }
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

    /// Aborts `upload`: forgotten at once, its parts removed (by the completion, when one
    /// is reading them).
    fn abort(&self, upload: &Upload) {
        self.abort_if(upload, |_| true);
    }

    /// Aborts `upload` if `now` holds of its state, judged under the same lock that the
    /// abort takes (a part or a completion that begins meanwhile is seen); whether it did.
    fn abort_if(&self, upload: &Upload, now: impl FnOnce(&State) -> bool) -> bool {
        let mut state = upload.state();
        if state.phase == Phase::Aborted || !now(&state) {
            return false;
        }
        self.forget(&upload.id);
        let was = std::mem::replace(&mut state.phase, Phase::Aborted);
        if was == Phase::Open {
            state.parts.clear();
            drop(state);
            upload.remove_parts();
        }
        true
    }

    /// Aborts the open uploads that have been idle (no part in flight, none begun or ended)
    /// for `idle`; how many.
    pub(crate) fn abort_idle(&self, idle: std::time::Duration) -> usize {
        let open: Vec<_> = lock(&self.open).values().cloned().collect();
        let mut aborted = 0;
        for upload in open {
            let idle_now = |state: &State| {
                state.phase == Phase::Open
                    && state.parts_in_flight == 0
                    && state.active.elapsed() >= idle
            };
            if self.abort_if(&upload, idle_now) {
                tracing::info!(bucket = %upload.bucket, key = %upload.key, upload_id = %upload.id,
                    "multipart upload aborted after {idle:?} without a part");
                aborted += 1;
            }
        }
        aborted
    }

    /// Aborts idle uploads every so often, for as long as `uploads` is in use.
    pub(crate) fn watch_idle(uploads: &Arc<Uploads>, idle: std::time::Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(uploads);
        let every = (idle / 4).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        );
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(uploads) = weak.upgrade() else { break };
                uploads.abort_idle(idle);
            }
        });
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
    uploads.abort(&upload);
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_upload(uploads: &Uploads, id: &str) -> Arc<Upload> {
        let dir = uploads.spool.path().join(id);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("00001-part"), b"part").unwrap();
        let upload = Arc::new(Upload {
            id: id.into(),
            bucket: "b".into(),
            key: "k".into(),
            initiated: Utc::now(),
            content_type: None,
            headers: Default::default(),
            metadata: Vec::new(),
            dir,
            state: Mutex::default(),
        });
        lock(&uploads.open).insert(id.into(), upload.clone());
        upload
    }

    #[test]
    fn idle_uploads_are_aborted_with_their_parts_and_busy_ones_kept() {
        let uploads = Uploads::new(Spool::in_temp_dir().unwrap());
        let idle = open_upload(&uploads, "idle");
        let completing = open_upload(&uploads, "completing");
        completing.state().phase = Phase::Completing;
        assert_eq!(uploads.abort_idle(std::time::Duration::from_secs(3600)), 0);
        assert!(uploads.get("b", "k", "idle").is_ok());
        // A part still arriving, however long it takes, keeps its upload.
        let receiving = open_upload(&uploads, "receiving");
        receiving.state().parts_in_flight = 1;

        assert_eq!(uploads.abort_idle(std::time::Duration::ZERO), 1);
        assert!(uploads.get("b", "k", "idle").is_err(), "forgotten");
        assert!(!idle.dir.exists(), "its parts are removed");
        assert_eq!(idle.state().phase, Phase::Aborted);
        // A completion in progress is never cut short.
        assert!(uploads.get("b", "k", "completing").is_ok());
        assert!(completing.dir.exists());
        assert!(uploads.get("b", "k", "receiving").is_ok());
        receiving.state().parts_in_flight = 0;
        assert_eq!(uploads.abort_idle(std::time::Duration::ZERO), 1);
        assert!(uploads.get("b", "k", "receiving").is_err());
    }
}
