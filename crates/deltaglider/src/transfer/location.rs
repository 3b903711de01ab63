//! Either end of a tree transfer: a local directory or an `s3://bucket/prefix`, and the one
//! place that picks the transfer a pair of them implies.

use std::path::PathBuf;

use super::{EventSink, TransferOptions, TransferSummary};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::url::S3Url;

/// One end of a tree transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// A prefix in a bucket (an empty key is the whole bucket).
    S3(S3Url),
}

impl Location {
    /// `s3://bucket/prefix` is a prefix, anything else a local path.
    pub fn parse(s: &str) -> Result<Self> {
        if S3Url::is_s3(s) {
            Ok(Location::S3(S3Url::parse(s)?))
        } else {
            Ok(Location::Local(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3(url) => write!(f, "{url}"),
        }
    }
}

impl Engine {
    /// Copies (or, with `options.compare`, syncs) the tree at `from` to `to`: an upload, a
    /// download, or a copy between prefixes. Two local directories are refused.
    pub async fn transfer_tree(
        &self,
        from: &Location,
        to: &Location,
        options: &TransferOptions,
        events: EventSink<'_>,
    ) -> Result<TransferSummary> {
        match (from, to) {
            (Location::Local(dir), Location::S3(dst)) => {
                self.upload_tree(dir, &dst.bucket, &dst.key, options, events)
                    .await
            }
            (Location::S3(src), Location::Local(dir)) => {
                self.download_tree(&src.bucket, &src.key, dir, options, events)
                    .await
            }
            (Location::S3(src), Location::S3(dst)) => {
                self.copy_tree(
                    &src.bucket,
                    &src.key,
                    &dst.bucket,
                    &dst.key,
                    options,
                    events,
                )
                .await
            }
            (Location::Local(a), Location::Local(b)) => Err(Error::InvalidArgument {
                what: format!("transfer from {} to {}", a.display(), b.display()),
                reason: "one end must be an s3:// location (both are local paths)".into(),
            }),
        }
    }
}
