//! Compressed archives expanded into a form whose deltas are small, and rebuilt bit for bit.
//!
//! A byte-level delta between two releases of a zip, wheel, jar or tar.gz sees compressed
//! bytes, which differ almost everywhere after the first change. [`expand`] finds the
//! deflate streams of a gzip file (every member) or of a zip-family file (every entry) by
//! their content, not by the file's name, and writes the file's *expanded form*: the bytes
//! around the streams as they are, and each stream in its token form ([`deflate`]), in which
//! two releases of similar content look similar. [`restore`] writes the exact original bytes
//! back from the expanded form.
//!
//! Nothing is lost by trying: a stream that does not parse, or whose token form would be
//! out of proportion to it ([`Limits`]), stays as it is, so every input has an expanded form
//! and restores exactly, and an input that is no archive expands to itself plus a few bytes.
//!
//! # Expanded form, version 1
//! `DGX` and the version byte 1, then segments, each a tag byte: `1` followed by a varint `n`
//! and `n` bytes copied as they are; `2` followed by a deflate stream's token form; `0` ends
//! the form. Varints are unsigned LEB128.

mod counter;
pub mod deflate;
mod error;
mod expand;
mod scan;
mod varint;

pub use error::{Error, Input, Result};
pub use expand::{Expansion, Limits, expand, restore};
pub use scan::Container;
