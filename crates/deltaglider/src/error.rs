//! Typed errors of the library. The CLI adds context and prints them as one line.

use std::io;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in DeltaGlider's library.
#[derive(Debug, thiserror::Error)]
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
        operation: String,
        /// Bucket involved; empty for operations on no bucket, and then the message shows
        /// neither bucket nor key.
        bucket: String,
        /// Key (or listing prefix) involved; empty for bucket operations.
        key: String,
        /// The backend's explanation (S3: the server's code and message, or what failed on
        /// the way to it).
        detail: String,
    },

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, usually naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Configuration that cannot be used.
    #[error("configuration: {0}")]
    Config(String),

    /// A local file changed while it was being stored.
    #[error("{path} changed while it was being uploaded; nothing was stored")]
    SourceChanged {
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

    /// Process exit code for this error, documented in the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidUrl { .. }
            | Error::InvalidBucketName { .. }
            | Error::InvalidKey { .. }
            | Error::Config(_) => 2,
            Error::NotFound { .. } | Error::NoSuchBucket(_) | Error::ReferenceMissing { .. } => 3,
            Error::IntegrityMismatch { .. }
            | Error::InvalidMetadata { .. }
            | Error::SizeMismatch { .. } => 4,
            // A delta that does not decode (bad VCDIFF, adler32 mismatch) is corrupt data,
            // not a failure of the machine running the decoder.
            Error::Codec { operation, .. } if operation == "decode" => 4,
            Error::OutputDiscarded { source, .. } => source.exit_code(),
            _ => 1,
        }
    }
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
