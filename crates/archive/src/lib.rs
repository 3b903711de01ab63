//! Compressed archives expanded into a form whose deltas are small, and rebuilt bit for bit.
//!
//! A byte-level delta between two releases of a zip, wheel, jar or tar.gz sees compressed
//! bytes, which differ almost everywhere after the first change. [`expand`] finds the
//! deflate streams of a gzip file (every member) or of a zip-family file (every entry) by
//! their content, not by the file's name, and writes the file's *expanded form*: the bytes
//! around the streams as they are, and each stream either as its plain bytes with the zlib
//! parameters that compress them back into exactly that stream (when some do), or else in
//! its token form ([`deflate`]); in both, two releases of similar content look similar.
//! Plain bytes that are themselves a gzip or zip file (a `.json.gz` inside a wheel) are
//! expanded in turn, to [`Limits::max_nesting`]. [`restore`] writes the exact original bytes
//! back from the expanded form; its plain segments are independent of each other, so it
//! compresses them on several threads ([`restore_with`], [`Parallelism`]) and writes them in
//! order, holding a bounded window of them.
//!
//! Nothing is lost by trying: a stream that does not parse, or whose token form would be
//! out of proportion to it ([`Limits`]), stays as it is, so every input has an expanded form
//! and restores exactly, and an input that is no archive expands to itself plus a few bytes.
//!
//! # Expanded form, version 1
//! `DGX` and the version byte 1, then segments, each a tag byte: `1` followed by a varint `n`
//! and `n` bytes copied as they are; `2` followed by a deflate stream's token form; `3` a
//! deflate stream in plain form; `0` ends the form. Varints are unsigned LEB128.
//!
//! A plain segment: a varint length and the encoder's name ([`plain_encoder_id`]: `zlib `,
//! the version of the zlib this crate is built with and a fingerprint of its output; a
//! reader with another refuses the segment as [`Error::Unsupported`]), four bytes level (1-9), window bits (9-15), memory level (1-9)
//! and strategy (0-4) of a raw deflate encoder, one content byte, a varint `n`, and `n`
//! bytes: with content `0` the plain bytes, with `1` an expanded form of them (whose
//! restored bytes are the plain bytes).

mod counter;
pub mod deflate;
mod error;
mod expand;
mod limits;
mod plain;
mod restore;
mod scan;
mod varint;
mod window;
mod zlib;

pub use error::{Error, Input, Result};
pub use expand::expand;
pub use limits::{Expansion, Limits, MAX_NESTING};
pub use restore::{restore, restore_with};
pub use scan::Container;
pub use window::Parallelism;
pub use zlib::encoder_id as plain_encoder_id;
