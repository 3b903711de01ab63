//! Errors of the command line itself, and the one place where any error becomes an exit code.
//!
//! The codes follow `aws s3`: 0 success, 1 failure, 2 bad arguments or configuration (and,
//! as a second meaning, "some files were skipped, the rest transferred"), 3 bucket or object
//! not found, 4 integrity check failed, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
//! docs/cli.md has the table; tests/cli_exit.rs tests every row.

/// What the command line refuses or reports on its own, besides library errors.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments that cannot work together (two local paths, a directory without `-r`...).
    #[error("{0}")]
    Usage(String),
    /// Files that could not be read were skipped with a warning; the others were transferred.
    #[error("{0} file(s) could not be read and were skipped (see the warnings above)")]
    Skipped(usize),
    /// A signal ended the command; nothing partial was stored.
    #[error("{what}; temporary files removed, nothing partial was stored")]
    Interrupted {
        /// `interrupted` or `terminated`.
        what: &'static str,
        /// 128 + the signal number.
        code: u8,
    },
    /// Results could not be written to standard output (`> /dev/full`, a closed descriptor).
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
}

/// A usage error (exit 2) with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    CliError::Usage(message.into()).into()
}

/// The process exit code for an error: the first typed error in its chain decides.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return match e {
                CliError::Usage(_) | CliError::Skipped(_) => 2,
                CliError::Interrupted { code, .. } => *code,
                CliError::Stdout(_) => 1,
            };
        }
        if let Some(e) = cause.downcast_ref::<deltaglider::Error>() {
            return library_code(e);
        }
        // Clap's own errors (bad flags) are reported by clap with its code 2; a value
        // refused after parsing is a usage error too.
        if cause.downcast_ref::<clap::Error>().is_some() {
            return 2;
        }
    }
    1
}

/// The exit code of a library error, as docs/cli.md's table has it.
pub fn library_code(e: &deltaglider::Error) -> u8 {
    use deltaglider::Error;
    match e {
        Error::InvalidUrl { .. }
        | Error::InvalidBucketName { .. }
        | Error::InvalidKey { .. }
        | Error::InvalidArgument { .. }
        | Error::Unsupported { .. }
        | Error::Config(_) => 2,
        Error::NotFound { .. } | Error::NoSuchBucket(_) | Error::ReferenceMissing { .. } => 3,
        Error::IntegrityMismatch { .. }
        | Error::InvalidMetadata { .. }
        | Error::NewerFormat { .. }
        | Error::SizeMismatch { .. } => 4,
        // A delta that does not decode (bad VCDIFF, adler32 mismatch) is corrupt data,
        // not a failure of the machine running the decoder.
        Error::Codec { operation, .. } if operation == "decode" => 4,
        Error::OutputDiscarded { source, .. } => library_code(source),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_decide_the_code_through_context() {
        use anyhow::Context;
        let e: anyhow::Result<()> = Err(usage("two local paths"));
        assert_eq!(code(&e.context("cp").unwrap_err()), 2);
        let lib = anyhow::Error::new(deltaglider::Error::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        })
        .context("downloading");
        assert_eq!(code(&lib), 3);
        assert_eq!(code(&anyhow::anyhow!("plain")), 1);
        let int = anyhow::Error::new(CliError::Interrupted {
            what: "interrupted",
            code: 130,
        });
        assert_eq!(code(&int), 130);
        assert_eq!(code(&CliError::Skipped(1).into()), 2);
    }
}
