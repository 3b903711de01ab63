//! The body of a PUT as a reader for the library, checked against the digests the client
//! sent (`Content-MD5`, `x-amz-checksum-*` as headers or as aws-chunked trailers).
//!
//! The library copies a body to a private file before it stores anything, so a digest
//! that fails at the end of the body fails the last read and nothing is stored.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, TrailingHeaders};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

/// The digests a PUT declared.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    /// `Content-MD5`, base64.
    pub content_md5: Option<String>,
    /// `x-amz-checksum-*` headers, base64.
    pub checksums: Checksum,
    /// Lowercased names in `x-amz-trailer` (`x-amz-checksum-crc32`, ...).
    pub trailer_names: Vec<String>,
}

/// A digest that did not match; the PUT answers with its S3 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {algorithm} you specified did not match the calculated checksum")]
pub(crate) struct DigestMismatch {
    pub algorithm: &'static str,
}

impl From<DigestMismatch> for S3Error {
    fn from(m: DigestMismatch) -> Self {
        S3Error::with_message(S3ErrorCode::BadDigest, m.to_string())
    }
}

/// What a [`CheckedBody`] found at the end of the body, for the PUT's answer.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// The first declared digest that differs.
    pub mismatch: Option<DigestMismatch>,
    /// The `x-amz-checksum-*` values declared (as headers or trailers) and found right,
    /// which S3 echoes in its answer.
    pub verified: Checksum,
}

/// Where a [`CheckedBody`] leaves its [`Verdict`].
pub(crate) type VerdictSlot = Arc<Mutex<Verdict>>;

impl Verdict {
    /// Takes the verdict out of its slot.
    pub(crate) fn take(slot: &VerdictSlot) -> Verdict {
        std::mem::take(&mut *slot.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

type BlobReader = StreamReader<Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>, Bytes>;

/// The request body, hashed as it is read; its end is an error when a digest differs.
pub(crate) struct CheckedBody {
    inner: BlobReader,
    md5: Option<(Md5, String)>,
    hasher: Option<ChecksumHasher>,
    declared: Checksum,
    trailers: Option<TrailingHeaders>,
    trailer_names: Vec<String>,
    verdict: VerdictSlot,
    /// The end was reached and judged (a reader may read past the end again).
    judged: bool,
}

impl CheckedBody {
    /// Wraps `blob`; `InvalidDigest` when `Content-MD5` is not a base64 MD5.
    pub(crate) fn new(
        blob: StreamingBlob,
        declared: Declared,
        trailers: Option<TrailingHeaders>,
    ) -> Result<(Self, VerdictSlot), S3Error> {
        let md5 = match declared.content_md5 {
            Some(b64) => {
                let ok = b64.len() == 24 && b64.ends_with("==");
                if !ok {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidDigest,
                        "The Content-MD5 you specified is not valid",
                    ));
                }
                Some((Md5::new(), b64))
            }
            None => None,
        };
        let wanted = |name: &str, header: &Option<String>| {
            header.is_some() || declared.trailer_names.iter().any(|t| t == name)
        };
        let c = &declared.checksums;
        let hasher = ChecksumHasher {
            crc32: wanted("x-amz-checksum-crc32", &c.checksum_crc32).then(Crc32::new),
            crc32c: wanted("x-amz-checksum-crc32c", &c.checksum_crc32c).then(Crc32c::new),
            sha1: wanted("x-amz-checksum-sha1", &c.checksum_sha1).then(Sha1::new),
            sha256: wanted("x-amz-checksum-sha256", &c.checksum_sha256).then(Sha256::new),
            crc64nvme: wanted("x-amz-checksum-crc64nvme", &c.checksum_crc64nvme)
                .then(Crc64Nvme::new),
        };
        let stream: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> =
            Box::pin(blob.map_err(io::Error::other));
        let verdict = VerdictSlot::default();
        Ok((
            CheckedBody {
                inner: StreamReader::new(stream),
                md5,
                hasher: Some(hasher),
                declared: declared.checksums,
                trailers,
                trailer_names: declared.trailer_names,
                verdict: verdict.clone(),
                judged: false,
            },
            verdict,
        ))
    }

    /// At the end of the body: the first declared digest that differs, or the checksums
    /// found right.
    fn verify(&mut self) -> Result<Checksum, DigestMismatch> {
        if let Some((md5, expected)) = self.md5.take() {
            let actual = base64(md5.finalize().as_ref());
            if actual != expected {
                return Err(DigestMismatch {
                    algorithm: "Content-MD5",
                });
            }
        }
        let Some(hasher) = self.hasher.take() else {
            return Ok(Checksum::default());
        };
        let computed = hasher.finalize();
        let trailed = self.trailers.as_ref().and_then(|t| t.take());
        let from_trailer = |name: &str| {
            trailed
                .as_ref()
                .and_then(|h| h.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let d = &self.declared;
        let mut verified = Checksum::default();
        let checks = [
            (
                "CRC32",
                "x-amz-checksum-crc32",
                &d.checksum_crc32,
                &computed.checksum_crc32,
                &mut verified.checksum_crc32,
            ),
            (
                "CRC32C",
                "x-amz-checksum-crc32c",
                &d.checksum_crc32c,
                &computed.checksum_crc32c,
                &mut verified.checksum_crc32c,
            ),
            (
                "SHA1",
                "x-amz-checksum-sha1",
                &d.checksum_sha1,
                &computed.checksum_sha1,
                &mut verified.checksum_sha1,
            ),
            (
                "SHA256",
                "x-amz-checksum-sha256",
                &d.checksum_sha256,
                &computed.checksum_sha256,
                &mut verified.checksum_sha256,
            ),
            (
                "CRC64NVME",
                "x-amz-checksum-crc64nvme",
                &d.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
                &mut verified.checksum_crc64nvme,
            ),
        ];
        for (algorithm, name, header, actual, right) in checks {
            let expected = header.clone().or_else(|| {
                self.trailer_names
                    .iter()
                    .any(|t| t == name)
                    .then(|| from_trailer(name))
                    .flatten()
            });
            if let Some(expected) = expected {
                if actual.as_deref() != Some(expected.as_str()) {
                    return Err(DigestMismatch { algorithm });
                }
                *right = Some(expected);
            }
        }
        Ok(verified)
    }
}

/// The [`Declared`] digests of an input that has the PutObject fields (`content_md5`,
/// `checksum_*`), with the `x-amz-trailer` names.
macro_rules! declared {
    ($input:expr, $trailer_names:expr) => {
        $crate::upload::Declared {
            content_md5: $input.content_md5,
            checksums: s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                ..Default::default()
            },
            trailer_names: $trailer_names,
        }
    };
}
pub(crate) use declared;

/// A request's body, or an empty one when it has none.
pub(crate) fn body_or_empty(body: Option<StreamingBlob>) -> StreamingBlob {
    body.unwrap_or_else(
        || StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, io::Error>>()),
    )
}

/// The lowercased names the client announced in `x-amz-trailer`.
pub(crate) fn trailer_names(headers: &hyper::HeaderMap) -> Vec<String> {
    headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

impl AsyncRead for CheckedBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            if let Some((md5, _)) = &mut this.md5 {
                md5.update(new);
            }
            if let Some(h) = &mut this.hasher {
                h.update(new);
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // The end of the body: the digests decide whether it ends or fails.
        if this.judged {
            return Poll::Ready(Ok(()));
        }
        this.judged = true;
        let verdict = this.verify();
        let mut slot = this.verdict.lock().unwrap_or_else(|p| p.into_inner());
        match verdict {
            Ok(verified) => {
                slot.verified = verified;
                Poll::Ready(Ok(()))
            }
            Err(m) => {
                slot.mismatch = Some(m.clone());
                Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, m)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn blob(data: &'static [u8]) -> StreamingBlob {
        let chunks: Vec<Result<Bytes, io::Error>> =
            data.chunks(3).map(|c| Ok(Bytes::from_static(c))).collect();
        StreamingBlob::wrap(futures::stream::iter(chunks))
    }

    async fn read(declared: Declared) -> (io::Result<Vec<u8>>, Option<DigestMismatch>) {
        let (mut body, slot) = CheckedBody::new(blob(b"hello world"), declared, None).unwrap();
        let mut out = Vec::new();
        let r = body.read_to_end(&mut out).await.map(|_| out);
        let m = slot.lock().unwrap().mismatch.clone();
        (r, m)
    }

    #[tokio::test]
    async fn a_body_without_digests_reads_through() {
        let (r, m) = read(Declared::default()).await;
        assert_eq!(r.unwrap(), b"hello world");
        assert_eq!(m, None);
    }

    #[tokio::test]
    async fn the_right_content_md5_and_checksums_pass() {
        let mut declared = Declared {
            content_md5: Some("XrY7u+Ae7tCTyyK7j1rNww==".into()),
            ..Default::default()
        };
        declared.checksums.checksum_crc32 = Some("DUoRhQ==".into());
        declared.checksums.checksum_sha256 =
            Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=".into());
        let (r, m) = read(declared).await;
        assert_eq!(r.unwrap(), b"hello world");
        assert_eq!(m, None);
    }

    #[tokio::test]
    async fn the_checksums_found_right_are_kept_for_the_answer_once() {
        let mut declared = Declared::default();
        declared.checksums.checksum_crc32 = Some("DUoRhQ==".into());
        let (mut body, slot) = CheckedBody::new(blob(b"hello world"), declared, None).unwrap();
        let mut out = Vec::new();
        body.read_to_end(&mut out).await.unwrap();
        // Reading past the end again judges nothing twice.
        assert_eq!(body.read(&mut [0u8; 8]).await.unwrap(), 0);
        let verdict = Verdict::take(&slot);
        assert_eq!(verdict.mismatch, None);
        assert_eq!(verdict.verified.checksum_crc32.as_deref(), Some("DUoRhQ=="));
        assert_eq!(verdict.verified.checksum_sha256, None);
    }

    #[tokio::test]
    async fn a_wrong_digest_fails_the_last_read_and_says_which() {
        let declared = Declared {
            content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()),
            ..Default::default()
        };
        let (r, m) = read(declared).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let m = m.unwrap();
        assert_eq!(m.algorithm, "Content-MD5");
        assert_eq!(S3Error::from(m).code(), &S3ErrorCode::BadDigest);

        let mut declared = Declared::default();
        declared.checksums.checksum_crc32 = Some("AAAAAA==".into());
        let (r, m) = read(declared).await;
        assert!(r.is_err());
        let m = m.unwrap();
        assert_eq!(m.algorithm, "CRC32");
        assert_eq!(S3Error::from(m).code(), &S3ErrorCode::BadDigest);
    }

    #[test]
    fn a_malformed_content_md5_is_invalid_digest() {
        let declared = Declared {
            content_md5: Some("not-md5".into()),
            ..Default::default()
        };
        let e = CheckedBody::new(blob(b"x"), declared, None).err().unwrap();
        assert_eq!(e.code(), &S3ErrorCode::InvalidDigest);
    }
}
