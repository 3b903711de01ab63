//! Times as S3 reports them.

use chrono::{DateTime, Utc};
use s3s::dto::Timestamp;

/// An S3 timestamp of a library time.
pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(t))
}
