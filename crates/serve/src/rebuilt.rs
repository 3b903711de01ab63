//! Verified rebuilt copies of delta-stored objects, so that ranged GETs do not rebuild the
//! whole object each (the `aws` CLI downloads anything over 8 MiB as 8 MiB ranges, ten at
//! a time). Objects stored whole need none: their ranges are read from the backend.
//!
//! The first ranged GET of a delta rebuilds it once, to its end, into an anonymous file of
//! the server's spool: created unlinked (`O_TMPFILE`), it has no name another process could
//! open, replace or write, and it is read only through the descriptor this server holds.
//! A copy is kept only once the rebuild has passed the SHA-256 check, and it is found by
//! that hash and the size (a HEAD of the object gives both), so an object that changes is a
//! new copy, never a stale one. Copies are dropped least recently used first past the
//! budget; a copy being read stays readable until its readers are done.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use deltaglider::{Client, ObjectDetails, StoredAs};
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conditions::Window;
use crate::multipart::lock;
use crate::spool::Spool;

/// Bytes read from a copy per chunk of a response.
const CHUNK: usize = 256 * 1024;

type Key = (String, u64);

/// The copies this server keeps, within a byte budget.
#[derive(Debug)]
pub(crate) struct RebuiltCopies {
    spool: Spool,
    budget: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    copies: HashMap<Key, Arc<Copy>>,
    /// Least recently used first.
    order: VecDeque<Key>,
    used: u64,
    /// One rebuild per object at a time; the others wait for it.
    filling: HashMap<Key, Arc<tokio::sync::Mutex<()>>>,
}

/// One verified rebuilt object.
#[derive(Debug)]
pub(crate) struct Copy {
    file: File,
    size: u64,
}

/// Why no copy was made.
pub(crate) enum NoCopy {
    /// The object changed between its HEAD and its rebuild: serve it the usual way.
    Changed,
    /// The rebuild or the spool failed.
    Failed(s3s::S3Error),
}

impl RebuiltCopies {
    pub(crate) fn new(spool: Spool, budget: u64) -> Self {
        RebuiltCopies {
            spool,
            budget,
            state: Mutex::default(),
        }
    }

    fn key(details: &ObjectDetails) -> Option<Key> {
        let sha = details.sha256.clone()?;
        Some((sha, details.size))
    }

    /// Whether a ranged GET of this object is served from a copy.
    pub(crate) fn admits(&self, details: &ObjectDetails) -> bool {
        details.stored_as == StoredAs::Delta
            && details.sha256.is_some()
            && details.size > 0
            && details.size <= self.budget
    }

    /// The copy of the object, if one is kept (it becomes the most recently used).
    pub(crate) fn get(&self, details: &ObjectDetails) -> Option<Arc<Copy>> {
        let key = Self::key(details)?;
        let mut state = lock(&self.state);
        let copy = state.copies.get(&key).cloned()?;
        state.order.retain(|k| k != &key);
        state.order.push_back(key);
        Some(copy)
    }

    /// The copy of the object described by `details`, rebuilt now unless it is kept or
    /// another request is rebuilding it (then this one waits for that one).
    pub(crate) async fn get_or_rebuild(
        &self,
        client: &Client,
        details: &ObjectDetails,
        rebuilt: impl FnOnce(),
    ) -> Result<Arc<Copy>, NoCopy> {
        let key = Self::key(details).ok_or(NoCopy::Changed)?;
        let gate = {
            let mut state = lock(&self.state);
            Arc::clone(state.filling.entry(key.clone()).or_default())
        };
        let turn = gate.lock().await;
        let result = match self.get(details) {
            Some(copy) => Ok(copy),
            None => self.rebuild(client, details).await.map(Arc::new),
        };
        drop(turn);
        let mut state = lock(&self.state);
        // The gate goes when no other request waits on it (the map's and ours are left).
        let ours = state
            .filling
            .get(&key)
            .is_some_and(|g| Arc::ptr_eq(g, &gate));
        if ours && Arc::strong_count(&gate) <= 2 {
            state.filling.remove(&key);
        }
        let copy = result?;
        if state
            .copies
            .get(&key)
            .is_some_and(|kept| Arc::ptr_eq(kept, &copy))
        {
            return Ok(copy);
        }
        rebuilt();
        if let Some(replaced) = state.copies.insert(key.clone(), Arc::clone(&copy)) {
            state.used -= replaced.size;
        }
        state.used += copy.size;
        state.order.retain(|k| k != &key);
        state.order.push_back(key.clone());
        while state.used > self.budget {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            if let Some(dropped) = state.copies.remove(&oldest) {
                state.used -= dropped.size;
            }
        }
        Ok(copy)
    }

    async fn rebuild(&self, client: &Client, details: &ObjectDetails) -> Result<Copy, NoCopy> {
        let failed = |e: io::Error| {
            NoCopy::Failed(s3s::s3_error!(
                e,
                InternalError,
                "cannot keep a rebuilt copy in the spool"
            ))
        };
        let object = client
            .get_object(&details.bucket, &details.key)
            .await
            .map_err(|e| NoCopy::Failed(crate::error::s3_error(e)))?;
        if object.details.sha256 != details.sha256 || object.details.size != details.size {
            return Err(NoCopy::Changed);
        }
        let file = tempfile::tempfile_in(self.spool.path()).map_err(failed)?;
        let mut out = tokio::fs::File::from_std(file);
        let mut body = object.body;
        let mut buf = vec![0u8; CHUNK];
        loop {
            // The body's end is its verification: a mismatch is an error here.
            let n = body.read(&mut buf).await.map_err(|e| {
                NoCopy::Failed(s3s::s3_error!(
                    e,
                    InternalError,
                    "the object could not be rebuilt intact"
                ))
            })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).await.map_err(failed)?;
        }
        out.flush().await.map_err(failed)?;
        let file = out.into_std().await;
        let size = file.metadata().map_err(failed)?.len();
        if size != details.size {
            return Err(NoCopy::Changed);
        }
        Ok(Copy { file, size })
    }
}

impl Copy {
    /// The bytes of `window`, read from the copy as the client takes them.
    pub(crate) fn body(self: Arc<Self>, window: Window) -> StreamingBlob {
        let stream = futures::stream::try_unfold(window.start, move |at| {
            let copy = Arc::clone(&self);
            async move {
                if at >= window.end {
                    return Ok::<_, io::Error>(None);
                }
                let len = CHUNK.min((window.end - at) as usize);
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    copy.file.read_exact_at(&mut buf, at).map(|()| buf)
                })
                .await
                .map_err(io::Error::other)??;
                Ok(Some((Bytes::from(chunk), at + len as u64)))
            }
        });
        StreamingBlob::wrap(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_copy_serves_any_window_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i % 253) as u8).collect();
        let file = tempfile::tempfile_in(dir.path()).unwrap();
        file.write_all_at(&data, 0).unwrap();
        let copy = Arc::new(Copy {
            file,
            size: data.len() as u64,
        });
        let size = data.len() as u64;
        for (start, end) in [(0, size), (1, 2), (CHUNK as u64 - 3, 2 * CHUNK as u64 + 9)] {
            let mut blob = Arc::clone(&copy).body(Window { start, end, size });
            let mut got = Vec::new();
            while let Some(chunk) = blob.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(got, &data[start as usize..end as usize]);
        }
    }
}
