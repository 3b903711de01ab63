//! Downloads as a stream: the bytes reach the reader as they are rebuilt, and the end of the
//! stream says whether they were the object.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::Engine;
use super::get::ObjectDetails;
use crate::error::Result;

/// Bytes handed to the reader at a time.
const CHUNK: usize = 256 << 10;
/// Chunks rebuilt ahead of the reader: memory stays at `CHUNK * AHEAD` whatever the size.
const AHEAD: usize = 4;

/// The bytes of one object as they are rebuilt. Reading to the end is what verifies them:
/// the last read returns `Ok(0)` only if the bytes hash to the recorded SHA-256 (and have
/// the recorded size); otherwise it returns the error, of kind [`io::ErrorKind::InvalidData`]
/// for a mismatch, with the crate's [`Error`](crate::Error) inside
/// (`err.into_inner()` and downcast). Bytes read before an error are not the object and
/// must be discarded. Dropping the reader stops the rebuild.
pub struct VerifiedReader {
    inner: StreamReader<ChunkStream, Bytes>,
}

impl AsyncRead for VerifiedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl std::fmt::Debug for VerifiedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedReader")
    }
}

/// The receiving end of the rebuild, as a stream of chunks.
struct ChunkStream(mpsc::Receiver<io::Result<Bytes>>);

impl futures::Stream for ChunkStream {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The sending end: a synchronous writer (the decoder's output) that hands chunks over and
/// waits while the reader is `AHEAD` chunks behind. Only used from blocking threads.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader was dropped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffered()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

impl Engine {
    /// Streams the logical object `key`: resolved (and its metadata checked) before this
    /// returns, then rebuilt in a task of its own as the reader reads. See
    /// [`VerifiedReader`] for how the end of the stream reports the verification.
    pub async fn get_stream(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectDetails, VerifiedReader)> {
        let resolved = self.resolve(bucket, key).await?;
        let details = ObjectDetails::new(bucket, key, &resolved);
        let (tx, rx) = mpsc::channel(AHEAD);
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let (engine, bucket, key) = (self.clone(), bucket.to_string(), key.to_string());
        tokio::spawn(async move {
            let what = format!("s3://{bucket}/{key}");
            if let Err(e) = engine.stream(&bucket, &key, resolved, writer, &what).await {
                // The rebuild failed after or before bytes went out: either way the reader's
                // last read is this error, not the end of the object.
                let inner = match e {
                    crate::Error::OutputDiscarded { source, .. } => *source,
                    other => other,
                };
                let kind = match inner {
                    crate::Error::IntegrityMismatch { .. }
                    | crate::Error::SizeMismatch { .. }
                    | crate::Error::InvalidMetadata { .. } => io::ErrorKind::InvalidData,
                    _ => io::ErrorKind::Other,
                };
                let _ = tx.send(Err(io::Error::new(kind, inner))).await;
            }
        });
        let inner = StreamReader::new(ChunkStream(rx));
        Ok((details, VerifiedReader { inner }))
    }
}
