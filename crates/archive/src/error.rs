//! Errors of the crate.

/// What can go wrong reading an archive, a deflate stream, or a form made of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be read, or the output not written.
    #[error("deflate I/O failed")]
    Io(#[from] std::io::Error),
    /// The input ended inside a block.
    #[error("the {0} ends before its last block does")]
    Truncated(Input),
    /// The input breaks the deflate format or the token form; the text says where.
    #[error("invalid {input}: {reason}")]
    Invalid {
        /// Which input.
        input: Input,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// Valid deflate that the token form cannot record exactly.
    #[error("this deflate stream cannot be split exactly: {0}")]
    Unsupported(&'static str),
}

/// Which of the two inputs an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A deflate stream given to [`split`](crate::deflate::split).
    Deflate,
    /// A token form given to [`rebuild`](crate::deflate::rebuild).
    Tokens,
    /// An expanded form given to [`restore`](crate::restore).
    Expanded,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::Deflate => "deflate stream",
            Input::Tokens => "token form",
            Input::Expanded => "expanded form",
        })
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
