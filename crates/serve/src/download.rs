//! The body of a GET: the verified rebuild of the original, cut to the requested window.
//!
//! The object is rebuilt from its first byte whatever the window (a range costs a whole
//! rebuild), and read to its end even past the window: only the end of the stream proves
//! the bytes hash to the recorded SHA-256. The last chunk sent is held back until then, so
//! a client never receives a complete body of a corrupt object; it gets a cut connection.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use s3s::dto::StreamingBlob;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::conditions::Window;
use crate::metrics::Metrics;

/// Bytes read from the rebuild per chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks queued between the rebuild and the connection (memory stays at a few chunks).
const QUEUED: usize = 4;

/// The bytes of `window` from `reader`, as a response body; the rebuild runs in a task of
/// its own and stops when the client goes away.
pub(crate) fn body(
    reader: impl AsyncRead + Send + Unpin + 'static,
    window: Window,
    metrics: Option<Arc<Metrics>>,
) -> StreamingBlob {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(QUEUED);
    tokio::spawn(async move {
        let result = cut(reader, window, &tx, metrics.as_deref()).await;
        if let Err(e) = result {
            tracing::warn!("rebuild failed, response cut: {e}");
            let _ = tx.send(Err(e)).await;
        }
    });
    StreamingBlob::wrap(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Sends the bytes of `window` to `tx`, the last one only after the reader's verified end.
/// Returns early, without error, when the receiver is gone.
async fn cut(
    mut reader: impl AsyncRead + Unpin,
    window: Window,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    metrics: Option<&Metrics>,
) -> io::Result<()> {
    let send = |chunk: Bytes| {
        if let Some(m) = metrics {
            m.sent(chunk.len() as u64);
        }
        tx.send(Ok(chunk))
    };
    let mut pos = 0u64;
    let mut held: Option<Bytes> = None;
    loop {
        let mut buf = BytesMut::zeroed(CHUNK);
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            if let Some(last) = held {
                let _ = send(last).await;
            }
            return Ok(());
        }
        buf.truncate(n);
        let chunk_start = pos;
        pos += n as u64;
        let lo = window.start.max(chunk_start);
        let hi = window.end.min(pos);
        if lo < hi {
            let piece = buf
                .freeze()
                .slice((lo - chunk_start) as usize..(hi - chunk_start) as usize);
            if let Some(previous) = held.replace(piece)
                && send(previous).await.is_err()
            {
                return Ok(());
            }
        } else if tx.is_closed() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    async fn collect(blob: StreamingBlob) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut blob = blob;
        while let Some(chunk) = blob.next().await {
            out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_window_is_cut_from_the_stream_across_chunk_boundaries() {
        let bytes = data(3 * CHUNK + 17);
        let size = bytes.len() as u64;
        for (start, end) in [
            (0, size),
            (0, 1),
            (CHUNK as u64 - 1, CHUNK as u64 + 1),
            (size - 5, size),
            (10, 2 * CHUNK as u64 + 3),
        ] {
            let window = Window { start, end, size };
            let got = collect(body(std::io::Cursor::new(bytes.clone()), window, None)).await;
            assert_eq!(got.unwrap(), &bytes[start as usize..end as usize]);
        }
    }

    /// Yields its bytes, then fails where a verified reader reports a hash mismatch.
    struct FailsAtEnd(std::io::Cursor<Vec<u8>>);

    impl AsyncRead for FailsAtEnd {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.0).poll_read(cx, buf);
            if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "mismatch")));
            }
            r
        }
    }

    #[tokio::test]
    async fn a_failed_verification_ends_the_body_with_an_error_before_its_last_bytes() {
        let bytes = data(2 * CHUNK + 3);
        let size = bytes.len() as u64;
        for window in [
            Window::all(size),
            Window {
                start: 0,
                end: 10,
                size,
            },
        ] {
            let mut blob = body(
                FailsAtEnd(std::io::Cursor::new(bytes.clone())),
                window,
                None,
            );
            let mut received = 0usize;
            let mut failed = false;
            while let Some(chunk) = blob.next().await {
                match chunk {
                    Ok(c) => received += c.len(),
                    Err(_) => failed = true,
                }
            }
            assert!(failed);
            assert!(
                (received as u64) < window.len(),
                "{received} of {}",
                window.len()
            );
        }
    }
}
