//! Times as S3 reports them.

use chrono::{DateTime, Utc};
use s3s::dto::Timestamp;

/// An S3 timestamp of a library time.
pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(t))
}

/// A library time of an S3 timestamp (`Expires`); `None` out of chrono's range.
pub(crate) fn chrono_time(t: &Timestamp) -> Option<DateTime<Utc>> {
    let t = time::OffsetDateTime::from(t.clone());
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
}
