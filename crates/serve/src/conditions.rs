//! Conditional requests (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) and byte ranges, decided against what a HEAD tells of the
//! original, before any byte is rebuilt.

use chrono::{DateTime, Utc};
use s3s::dto::{ETagCondition, Range, Timestamp};
use s3s::{S3Error, S3ErrorCode};

/// The preconditions of a GET or HEAD.
#[derive(Debug, Default, Clone)]
pub(crate) struct Preconditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

/// Why a conditional GET or HEAD is answered without the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 304: the client's copy is current.
    NotModified,
    /// 412: the object is not the one the client expects.
    PreconditionFailed,
}

impl From<Refusal> for S3Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotModified => S3Error::new(S3ErrorCode::NotModified),
            Refusal::PreconditionFailed => S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ),
        }
    }
}

impl Preconditions {
    /// RFC 9110 §13.2.2 as S3 applies it: `If-Match` (else `If-Unmodified-Since`) decides
    /// 412; then `If-None-Match` (else `If-Modified-Since`) decides 304.
    pub(crate) fn check(
        &self,
        etag: Option<&str>,
        last_modified: Option<DateTime<Utc>>,
    ) -> Result<(), Refusal> {
        // HTTP dates have whole seconds: compare at that precision.
        let modified = last_modified.map(|t| t.timestamp());
        if let Some(cond) = &self.if_match {
            if !matches(cond, etag) {
                return Err(Refusal::PreconditionFailed);
            }
        } else if let (Some(since), Some(modified)) = (&self.if_unmodified_since, modified)
            && modified > seconds(since)
        {
            return Err(Refusal::PreconditionFailed);
        }
        if let Some(cond) = &self.if_none_match {
            if matches(cond, etag) {
                return Err(Refusal::NotModified);
            }
        } else if let (Some(since), Some(modified)) = (&self.if_modified_since, modified)
            && modified <= seconds(since)
        {
            return Err(Refusal::NotModified);
        }
        Ok(())
    }
}

fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// Whether an `If-Match`/`If-None-Match` value names the object (weak comparison, as S3
/// does; `*` names any object that exists).
fn matches(cond: &ETagCondition, etag: Option<&str>) -> bool {
    match (cond, etag) {
        (ETagCondition::Any, _) => true,
        (ETagCondition::ETag(wanted), Some(etag)) => wanted.value() == etag.trim_matches('"'),
        (ETagCondition::ETag(_), None) => false,
    }
}

/// The bytes a ranged GET returns: `start..end` of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: u64,
    pub end: u64,
    pub size: u64,
}

impl Window {
    /// The whole object.
    pub(crate) fn all(size: u64) -> Self {
        Window {
            start: 0,
            end: size,
            size,
        }
    }

    /// The window of `range` in an object of `size` bytes; `InvalidRange` (416) when it
    /// starts past the end.
    pub(crate) fn of(range: &Range, size: u64) -> Result<Self, S3Error> {
        // An empty object has no byte to name (a suffix range of it would be empty).
        if size == 0 {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRange,
                "The requested range is not satisfiable: the object is empty",
            ));
        }
        let r = range.check(size)?;
        Ok(Window {
            start: r.start,
            end: r.end,
            size,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// The `Content-Range` header of a 206 answer.
    pub(crate) fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use s3s::dto::ETag;

    const TAG: &str = "\"abc\"";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(secs).unwrap())
    }

    fn tag(v: &str) -> Option<ETagCondition> {
        Some(ETagCondition::parse_http_header(v.as_bytes()).unwrap())
    }

    #[test]
    fn no_conditions_always_hold() {
        assert_eq!(Preconditions::default().check(None, None), Ok(()));
        assert_eq!(
            Preconditions::default().check(Some(TAG), Some(at(5))),
            Ok(())
        );
    }

    #[test]
    fn if_match_holds_for_the_same_tag_or_a_star_and_fails_with_412_otherwise() {
        for (value, expected) in [
            ("\"abc\"", Ok(())),
            ("*", Ok(())),
            ("W/\"abc\"", Ok(())),
            ("\"abd\"", Err(Refusal::PreconditionFailed)),
        ] {
            let p = Preconditions {
                if_match: tag(value),
                ..Default::default()
            };
            assert_eq!(p.check(Some(TAG), Some(at(5))), expected, "{value}");
        }
    }

    #[test]
    fn if_none_match_gives_304_for_the_current_tag() {
        let p = Preconditions {
            if_none_match: tag(TAG),
            ..Default::default()
        };
        assert_eq!(p.check(Some(TAG), None), Err(Refusal::NotModified));
        assert_eq!(p.check(Some("\"other\""), None), Ok(()));
    }

    #[test]
    fn dates_compare_in_whole_seconds() {
        let modified = Utc.timestamp_opt(100, 900_000_000).unwrap();
        let since = |s| Preconditions {
            if_modified_since: Some(ts(s)),
            ..Default::default()
        };
        assert_eq!(
            since(100).check(None, Some(modified)),
            Err(Refusal::NotModified)
        );
        assert_eq!(since(99).check(None, Some(modified)), Ok(()));
        let unmodified = |s| Preconditions {
            if_unmodified_since: Some(ts(s)),
            ..Default::default()
        };
        assert_eq!(unmodified(100).check(None, Some(modified)), Ok(()));
        assert_eq!(
            unmodified(99).check(None, Some(modified)),
            Err(Refusal::PreconditionFailed)
        );
    }

    #[test]
    fn if_match_overrides_if_unmodified_since_and_if_none_match_overrides_if_modified_since() {
        // As S3 documents: If-Match true and If-Unmodified-Since false is a 200 ...
        let p = Preconditions {
            if_match: tag(TAG),
            if_unmodified_since: Some(ts(1)),
            ..Default::default()
        };
        assert_eq!(p.check(Some(TAG), Some(at(50))), Ok(()));
        // ... and If-None-Match false with If-Modified-Since true is a 304 only by the tag.
        let p = Preconditions {
            if_none_match: tag("\"other\""),
            if_modified_since: Some(ts(100)),
            ..Default::default()
        };
        assert_eq!(p.check(Some(TAG), Some(at(50))), Ok(()));
    }

    #[test]
    fn ranges_become_windows_with_their_content_range() {
        let size = 1000;
        let cases = [
            ("bytes=0-499", (0, 500), "bytes 0-499/1000"),
            ("bytes=500-", (500, 1000), "bytes 500-999/1000"),
            ("bytes=-100", (900, 1000), "bytes 900-999/1000"),
            ("bytes=900-5000", (900, 1000), "bytes 900-999/1000"),
            ("bytes=-5000", (0, 1000), "bytes 0-999/1000"),
            ("bytes=999-999", (999, 1000), "bytes 999-999/1000"),
        ];
        for (header, (start, end), content_range) in cases {
            let w = Window::of(&Range::parse(header).unwrap(), size).unwrap();
            assert_eq!((w.start, w.end), (start, end), "{header}");
            assert_eq!(w.len(), end - start);
            assert_eq!(w.content_range(), content_range, "{header}");
        }
    }

    #[test]
    fn a_range_past_the_end_is_invalid_range() {
        for header in ["bytes=1000-", "bytes=1000-1001", "bytes=-0"] {
            let e = Window::of(&Range::parse(header).unwrap(), 1000).unwrap_err();
            assert_eq!(e.code(), &S3ErrorCode::InvalidRange, "{header}");
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(416));
        }
        // An empty object has no satisfiable range.
        assert!(Window::of(&Range::parse("bytes=0-").unwrap(), 0).is_err());
    }

    #[test]
    fn etags_are_compared_without_their_quotes() {
        let wanted = ETagCondition::ETag(ETag::Strong("abc".into()));
        assert!(matches(&wanted, Some("\"abc\"")));
        assert!(!matches(&wanted, None));
    }
}
