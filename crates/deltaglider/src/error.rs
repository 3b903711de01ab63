//! Typed errors of the library. Each variant names what is wrong; the error that caused it
//! (an I/O error, the S3 SDK's error) is kept as its [`source`](std::error::Error::source)
//! and is not repeated in its message, so a caller that prints the chain prints each part
//! once. Which process exit code an error gets is the command line's business, not this
//! crate's.

use std::io;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in DeltaGlider's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that should have been `s3://bucket[/key]` was not.
    #[error("invalid S3 URL '{url}': {reason}")]
    InvalidUrl {
        /// The string as given.
        url: String,
        /// What is wrong with it, in words for the user.
        reason: String,
    },

    /// The bucket does not exist on the store.
    #[error("bucket '{0}' does not exist")]
    NoSuchBucket(String),

    /// The object does not exist.
    #[error("object s3://{bucket}/{key} does not exist")]
    NotFound {
        /// Bucket searched.
        bucket: String,
        /// The logical key asked for, or the stored key when a backend reports the miss.
        key: String,
    },

    /// `mb` on a bucket that is already there.
    #[error("bucket '{0}' already exists")]
    BucketAlreadyExists(String),

    /// `rb` on a bucket that still holds objects.
    #[error("bucket '{0}' is not empty (remove its objects first)")]
    BucketNotEmpty(String),

    /// A bucket name that no S3 store accepts.
    #[error("invalid bucket name '{name}': {reason}")]
    InvalidBucketName {
        /// The name as given.
        name: String,
        /// Which S3 naming rule it breaks.
        reason: String,
    },

    /// A key that cannot be stored safely (reserved name, unrepresentable on the store, ...).
    #[error("cannot store s3://{bucket}/{key}: {reason}")]
    InvalidKey {
        /// Bucket the key was meant for.
        bucket: String,
        /// The refused key.
        key: String,
        /// Why it is refused, in words for the user.
        reason: String,
    },

    /// Bytes did not hash to what the metadata promised.
    #[error("integrity check failed for {what}: expected sha256 {expected}, got {actual}")]
    IntegrityMismatch {
        /// The object or file checked, as a URL or description for the message.
        what: String,
        /// Lowercase hex SHA-256 recorded in the metadata.
        expected: String,
        /// Lowercase hex SHA-256 of the bytes actually produced.
        actual: String,
    },

    /// Rebuilt bytes are not as long as the metadata (`dg-file-size`) records.
    #[error("integrity check failed for {what}: {}", size_mismatch(*expected, *actual))]
    SizeMismatch {
        /// The object checked, as a URL or description for the message.
        what: String,
        /// Size in bytes recorded in the metadata.
        expected: u64,
        /// Size rebuilt; `None` when the rebuild was stopped for growing past `expected`.
        actual: Option<u64>,
    },

    /// A download failed after some of its bytes had already been written to a destination
    /// that cannot be rolled back (standard output, a device, a FIFO).
    #[error(
        "{source}; the bytes already written to {destination} are not the object and must be discarded"
    )]
    OutputDiscarded {
        /// The destination, as displayed.
        destination: String,
        /// Why the download failed.
        #[source]
        source: Box<Error>,
    },

    /// DeltaGlider metadata on an object is missing a required field or is malformed.
    #[error("invalid DeltaGlider metadata on s3://{bucket}/{key}: {reason}")]
    InvalidMetadata {
        /// Bucket of the object.
        bucket: String,
        /// Stored key of the object whose metadata is at fault (for a missing reference,
        /// the delta that needs it).
        key: String,
        /// Which field is missing or wrong.
        reason: String,
    },

    /// The object is stored in a format this version cannot read: a newer DeltaGlider wrote
    /// it (`dg-format` of a later version, or unknown). Nothing was written.
    #[error(
        "s3://{bucket}/{key} is stored in format '{format}', written by a newer DeltaGlider than this one (which reads the compatible format and {}); upgrade to read it",
        crate::metadata::FORMAT_COMPACT
    )]
    NewerFormat {
        /// Bucket of the object.
        bucket: String,
        /// Stored key of the object.
        key: String,
        /// Its `dg-format`.
        format: String,
    },

    /// A delta's reference is gone (and no retired copy of it is left).
    #[error(
        "reference s3://{bucket}/{reference} is missing, and {needed_by} cannot be rebuilt without it"
    )]
    ReferenceMissing {
        /// Bucket of both.
        bucket: String,
        /// Key of the missing reference.
        reference: String,
        /// The object that needs it, as a URL.
        needed_by: String,
    },

    /// The delta codec program is not installed.
    #[error("{program} not found on PATH: {hint}")]
    CodecMissing {
        /// The program name or path that could not be run.
        program: String,
        /// How to install it or point DeltaGlider at it.
        hint: String,
    },

    /// The delta codec ran but failed.
    #[error("delta {operation} failed: {detail}")]
    Codec {
        /// `encode`, `decode` or `start`.
        operation: String,
        /// What went wrong (for xdelta3: exit status and last stderr line), prefixed with the
        /// object when decoding one.
        detail: String,
    },

    /// The storage backend reported an error.
    #[error("{}", storage_message(operation, bucket, key, detail))]
    Storage {
        /// What was being done, as a verb phrase (`upload`, `list buckets`, `copy to`).
        operation: &'static str,
        /// Bucket involved; empty for operations on no bucket, and then the message shows
        /// neither bucket nor key.
        bucket: String,
        /// Key (or listing prefix) involved; empty for bucket operations.
        key: String,
        /// The backend's explanation in one line (S3: the server's code and message, or what
        /// failed on the way to it), without the SDK's debug text.
        detail: String,
        /// The S3 error code (`AccessDenied`, `SlowDown`, ...), when the server sent one.
        code: Option<Box<str>>,
        /// The backend's own error (for S3, the SDK's `SdkError`), for callers that need
        /// more than the code; `None` when the backend has no error value of its own.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A local file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, usually naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Configuration that cannot be used: settings, keys, TLS, the cache's location.
    #[error("configuration: {0}")]
    Config(String),

    /// An argument of a call that no valid request has (a malformed content hash, a
    /// presign expiry out of range, a bad filter pattern, a foreign continuation token).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument, as the user would name it (`filter pattern '*.[z'`).
        what: String,
        /// Why it is refused.
        reason: String,
    },

    /// The store cannot do this at all (a presigned URL from the local store).
    #[error("{operation}: {reason}")]
    Unsupported {
        /// What was asked, naming the object.
        operation: String,
        /// Why this store cannot do it, and what can.
        reason: String,
    },

    /// A local file changed while it was being stored.
    #[error("{path} changed while it was being uploaded; nothing was stored")]
    SourceChanged {
        /// The local file, as displayed.
        path: String,
    },

    /// An object was replaced between the request that described it and the read of its
    /// bytes (a ranged read of an object stored whole): the bytes belong to another
    /// version than the size and entity tag already given.
    #[error("s3://{bucket}/{key} changed while it was being read; read it again")]
    ObjectChanged {
        /// Bucket of the object.
        bucket: String,
        /// The logical key.
        key: String,
    },

    /// A local file changed after a move began: it was stored, and it is kept, since what
    /// was stored may not be what is there now.
    #[error("{path} changed while it was moved: the copy is stored, the source was kept")]
    MovedSourceChanged {
        /// The local file, as displayed.
        path: String,
    },
}

fn size_mismatch(expected: u64, actual: Option<u64>) -> String {
    match actual {
        Some(n) => format!("recorded size {expected} bytes, rebuilt {n} bytes"),
        None => format!(
            "rebuilding produced more than the recorded size of {expected} bytes (stopped there)"
        ),
    }
}

fn storage_message(operation: &str, bucket: &str, key: &str, detail: &str) -> String {
    if bucket.is_empty() {
        format!("{operation}: {detail}")
    } else {
        format!("{operation} s3://{bucket}/{key}: {detail}")
    }
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The S3 error code the server sent (`AccessDenied`, `SlowDown`, ...), if this is a
    /// storage error that carried one.
    pub fn s3_code(&self) -> Option<&str> {
        match self {
            Error::Storage { code, .. } => code.as_deref(),
            Error::OutputDiscarded { source, .. } => source.s3_code(),
            _ => None,
        }
    }

    /// A storage error without an error value of the backend's own.
    pub(crate) fn storage(
        operation: &'static str,
        bucket: impl Into<String>,
        key: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Storage {
            operation,
            bucket: bucket.into(),
            key: key.into(),
            detail: detail.into(),
            code: None,
            source: None,
        }
    }

    /// An invalid argument (see [`Error::InvalidArgument`]).
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// An error and its causes on one line, `what: why: why`, each part once: what logs and
/// per-file warnings print. A storage error's line already summarizes its backend's error,
/// so the chain stops there (the SDK's own text is debug output, not a message).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        if matches!(c.downcast_ref::<Error>(), Some(Error::Storage { .. })) {
            break;
        }
        cause = c.source();
    }
    line
}

/// Extension to attach context to `io::Result`.
pub trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] with the given context.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_the_source_to_the_chain() {
        let e = Error::io(
            "cannot open /x",
            io::Error::new(io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.to_string(), "cannot open /x");
        assert_eq!(chain(&e), "cannot open /x: no such file");
        let nested = Error::OutputDiscarded {
            destination: "stdout".into(),
            source: Box::new(e),
        };
        assert!(
            chain(&nested).ends_with("must be discarded: no such file"),
            "{}",
            chain(&nested)
        );
    }

    #[test]
    fn storage_errors_keep_their_code_and_source_but_print_one_line() {
        let backend = io::Error::other("raw backend text");
        let e = Error::Storage {
            operation: "upload",
            bucket: "b".into(),
            key: "k".into(),
            detail: "SlowDown: reduce your request rate".into(),
            code: Some("SlowDown".into()),
            source: Some(Box::new(backend)),
        };
        assert_eq!(e.s3_code(), Some("SlowDown"));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            chain(&e),
            "upload s3://b/k: SlowDown: reduce your request rate"
        );
    }
}
