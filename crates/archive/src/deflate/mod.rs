//! Deflate streams (RFC 1951) with their Huffman layer undone, and rebuilt bit for bit.
//!
//! [`split`] reads a deflate stream and writes its *token form*: every block's header and
//! Huffman table description as they were, and its LZ77 tokens (literal bytes, length and
//! distance pairs) in place of their Huffman codes. [`rebuild`] turns the token form back
//! into the exact original bytes, whatever encoder made them: nothing is recompressed, only
//! the Huffman codes are written again from the recorded tables, so rebuilding is fast and
//! needs no knowledge of the encoder's settings.
//!
//! Two releases of the same content make nearly the same tokens (an LZ77 encoder's choices
//! depend on the last 32 KiB of input only), so the token forms of two releases differ about
//! as little as their contents do, while their deflate bytes differ almost everywhere after
//! the first change. That is what makes deltas between compressed archives small.
//!
//! Both directions stream: memory is the current block's tables and a fixed buffer, never
//! the stream. Input is never trusted: a stream that is not valid deflate, or that uses an
//! encoding the token form cannot record (a length of 258 written with code 284), is refused
//! with an error and nothing is assumed about it.
//!
//! # Token form
//! All integers are unsigned LEB128 varints unless said otherwise. Per block, in order:
//! - one byte: bit 0 BFINAL, bits 1-2 BTYPE as in the stream (0 stored, 1 fixed, 2 dynamic);
//! - stored: one byte holding the padding bits that aligned the block to a byte (low bits
//!   first), then LEN as two bytes little-endian, then the LEN bytes;
//! - dynamic: the bit count of the table description (HLIT through the last code length),
//!   then those bits packed low bit first;
//! - fixed and dynamic: tokens up to the end of the block: `2n` followed by `n` literal bytes
//!   (n >= 1), `2(len - 3) + 1` followed by `dist - 1` for a match, and `0` for the end of
//!   the block.
//!
//! After the final block, one byte: the bits of the stream's last byte that follow it.

mod bits;
mod huffman;
mod rebuild;
mod split;

pub use rebuild::rebuild;
pub use split::{Split, split};

/// Base lengths of length symbols 257..=285, and their extra bits.
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances of distance symbols 0..=29, and their extra bits.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// End-of-block symbol.
const END_OF_BLOCK: u16 = 256;

/// The length symbol (257..=285) and extra-bit value that deflate uses for `len` (3..=258).
fn length_code(len: u16) -> (u16, u16) {
    let i = LENGTH_BASE.partition_point(|&b| b <= len) - 1;
    (257 + i as u16, len - LENGTH_BASE[i])
}

/// The distance symbol (0..=29) and extra-bit value for `dist` (1..=32768).
fn dist_code(dist: u16) -> (u16, u16) {
    let i = DIST_BASE.partition_point(|&b| b <= dist) - 1;
    (i as u16, dist - DIST_BASE[i])
}
