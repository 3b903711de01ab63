//! The headers S3 records with an object besides `Content-Type` and returns on GET and
//! HEAD: `Cache-Control`, `Content-Disposition`, `Content-Encoding`, `Content-Language`
//! and `Expires`.

use deltaglider::storage::ObjectHeaders;

/// The headers a PutObject, CreateMultipartUpload or CopyObject (`REPLACE`) input asks
/// to record.
macro_rules! requested {
    ($input:expr) => {
        $crate::headers::recorded(
            $input.cache_control.clone(),
            $input.content_disposition.clone(),
            $input.content_encoding.as_deref(),
            $input.content_language.clone(),
            $input.expires.as_ref(),
        )
    };
}
pub(crate) use requested;

/// The headers to record. `aws-chunked` in `Content-Encoding` describes how the request
/// body was sent, not the object, and is dropped as S3 drops it.
pub(crate) fn recorded(
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<&str>,
    content_language: Option<String>,
    expires: Option<&s3s::dto::Timestamp>,
) -> ObjectHeaders {
    let content_encoding = content_encoding.and_then(|v| {
        let kept: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    ObjectHeaders {
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires: expires.and_then(crate::time::chrono_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_encoding_of_the_body_is_not_recorded() {
        let h = recorded(None, None, Some("aws-chunked"), None, None);
        assert_eq!(h.content_encoding, None);
        let h = recorded(None, None, Some("gzip, aws-chunked"), None, None);
        assert_eq!(h.content_encoding.as_deref(), Some("gzip"));
        let h = recorded(Some("no-cache".into()), None, Some("br"), None, None);
        assert_eq!(h.content_encoding.as_deref(), Some("br"));
        assert_eq!(h.cache_control.as_deref(), Some("no-cache"));
    }

    #[test]
    fn expires_is_kept_to_the_second() {
        let t = s3s::dto::Timestamp::parse(
            s3s::dto::TimestampFormat::HttpDate,
            "Wed, 21 Oct 2026 07:28:00 GMT",
        )
        .unwrap();
        let h = recorded(None, None, None, None, Some(&t));
        assert_eq!(h.expires.unwrap().to_rfc3339(), "2026-10-21T07:28:00+00:00");
    }
}
