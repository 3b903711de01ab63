//! The one place where the library's errors become S3 errors (code, status, message).

use s3s::{S3Error, S3ErrorCode};

/// The S3 error a client receives for a library error. The library's message is kept as
/// the S3 message and the error itself as the source (logged, never sent).
pub(crate) fn s3_error(error: deltaglider::Error) -> S3Error {
    let code = code_of(&error);
    let mut out = S3Error::with_message(code, error.to_string());
    out.set_source(Box::new(error));
    out
}

/// The S3 error code for a library error.
pub(crate) fn code_of(error: &deltaglider::Error) -> S3ErrorCode {
    use deltaglider::Error as E;
    match error {
        E::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        E::NotFound { .. } => S3ErrorCode::NoSuchKey,
        // One set of credentials owns every bucket this endpoint serves.
        E::BucketAlreadyExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
        E::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
        E::InvalidBucketName { .. } => S3ErrorCode::InvalidBucketName,
        E::InvalidKey { .. } | E::InvalidArgument { .. } | E::InvalidUrl { .. } => {
            S3ErrorCode::InvalidArgument
        }
        // A body shorter or longer than its Content-Length.
        E::SizeMismatch { .. } => S3ErrorCode::IncompleteBody,
        E::Unsupported { .. } => S3ErrorCode::NotImplemented,
        // What the backend said, when it said it in S3's words.
        E::Storage {
            code: Some(code), ..
        } => S3ErrorCode::from_bytes(code.as_bytes())
            .filter(|c| c.status_code().is_some())
            .unwrap_or(S3ErrorCode::InternalError),
        // The object cannot be given back intact: never a success, and not the client's fault.
        _ => S3ErrorCode::InternalError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(code: Option<&str>) -> deltaglider::Error {
        deltaglider::Error::Storage {
            operation: "head",
            bucket: "b".into(),
            key: "k".into(),
            detail: "d".into(),
            code: code.map(Into::into),
            source: None,
        }
    }

    #[test]
    fn missing_things_get_the_codes_s3_clients_test_for() {
        let e = s3_error(deltaglider::Error::NoSuchBucket("b".into()));
        assert_eq!(e.code(), &S3ErrorCode::NoSuchBucket);
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(404));
        let e = s3_error(deltaglider::Error::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        });
        assert_eq!(e.code(), &S3ErrorCode::NoSuchKey);
        assert_eq!(e.message(), Some("object s3://b/k does not exist"));
        assert!(e.source().is_some());
    }

    #[test]
    fn bucket_errors_map_to_their_s3_codes() {
        let cases = [
            (
                deltaglider::Error::BucketNotEmpty("b".into()),
                S3ErrorCode::BucketNotEmpty,
                409,
            ),
            (
                deltaglider::Error::BucketAlreadyExists("b".into()),
                S3ErrorCode::BucketAlreadyOwnedByYou,
                409,
            ),
            (
                deltaglider::Error::InvalidBucketName {
                    name: "B".into(),
                    reason: "r".into(),
                },
                S3ErrorCode::InvalidBucketName,
                400,
            ),
        ];
        for (error, code, status) in cases {
            let e = s3_error(error);
            assert_eq!(e.code(), &code);
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(status));
        }
    }

    #[test]
    fn a_backend_code_passes_through_and_an_unknown_one_is_an_internal_error() {
        assert_eq!(
            code_of(&storage(Some("AccessDenied"))),
            S3ErrorCode::AccessDenied
        );
        assert_eq!(code_of(&storage(Some("SlowDown"))), S3ErrorCode::SlowDown);
        assert_eq!(
            code_of(&storage(Some("NoSuchThing"))),
            S3ErrorCode::InternalError
        );
        assert_eq!(code_of(&storage(None)), S3ErrorCode::InternalError);
    }

    #[test]
    fn a_failed_integrity_check_is_a_server_error() {
        let e = s3_error(deltaglider::Error::IntegrityMismatch {
            what: "w".into(),
            expected: "a".into(),
            actual: "b".into(),
        });
        assert_eq!(e.code(), &S3ErrorCode::InternalError);
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(500));
    }
}
