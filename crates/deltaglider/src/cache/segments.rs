//! Streaming authenticated encryption of cache entries: XChaCha20-Poly1305 over fixed-size
//! segments (1 MiB by default), so a large reference is encrypted and decrypted with one
//! segment of plaintext in memory at a time.
//!
//! Layout: a 32-byte header, then segments of `ciphertext || 16-byte tag`; every segment but
//! the last holds exactly one segment of plaintext, the last holds the rest (possibly none).
//!
//! | header offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `DGE1` |
//! | 4 | 1 | version (1) |
//! | 5 | 1 | log2 of the segment size (6..=24) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 8 | key id ([`SecretBytes::id`] for `"encrypt"`) |
//! | 16 | 16 | random nonce prefix, fresh per entry |
//!
//! The 24-byte nonce of segment `i` is `prefix || i (u32 BE) || last (0 or 1) || 000`; the
//! associated data is `header || sha256(plaintext)`. So a ciphertext only decrypts as the
//! entry it was written for (no swapping between entries), segments cannot be reordered,
//! dropped or repeated, and cutting the stream anywhere (even at a segment boundary) or
//! appending to it fails authentication.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::keys::SecretBytes;

/// Length of the ciphertext header, in bytes.
pub const HEADER_LEN: usize = 32;
/// Length of the Poly1305 tag after each segment, in bytes.
pub const TAG_LEN: usize = 16;
/// Default segment size: 1 MiB.
pub const DEFAULT_SEGMENT_LOG2: u8 = 20;
const MIN_SEGMENT_LOG2: u8 = 6;
const MAX_SEGMENT_LOG2: u8 = 24;
const MAGIC: &[u8; 4] = b"DGE1";
const VERSION: u8 = 1;
/// Purpose label of the key id stored in the header.
pub const KEY_PURPOSE: &str = "encrypt";

/// Why a ciphertext does not open.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Reading the ciphertext or writing the plaintext failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The header is malformed (what is wrong with it).
    #[error("bad encryption header: {0}")]
    Header(&'static str),
    /// The header's key id is not this key's: the entry was written under another key.
    #[error("written under another encryption key")]
    WrongKey,
    /// A segment's tag does not verify.
    #[error("segment {segment} does not authenticate (tampered, reordered, truncated or swapped)")]
    Tampered {
        /// Index of the failing segment, from 0.
        segment: u32,
    },
    /// The stream ends before a complete header or segment tag.
    #[error("ciphertext is truncated")]
    Truncated,
}

/// Length of the ciphertext for `plaintext` bytes at the given segment size.
#[cfg(test)]
pub fn ciphertext_len(plaintext: u64, segment_log2: u8) -> u64 {
    let seg = 1u64 << segment_log2;
    let segments = plaintext.div_ceil(seg).max(1);
    HEADER_LEN as u64 + plaintext + segments * TAG_LEN as u64
}

fn cipher(key: &SecretBytes) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key.as_bytes()).expect("32-byte key")
}

fn nonce(prefix: &[u8], index: u32, last: bool) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(prefix);
    n[16..20].copy_from_slice(&index.to_be_bytes());
    n[20] = u8::from(last);
    XNonce::from(n)
}

fn aad(header: &[u8; HEADER_LEN], sha256: &[u8; 32]) -> [u8; HEADER_LEN + 32] {
    let mut a = [0u8; HEADER_LEN + 32];
    a[..HEADER_LEN].copy_from_slice(header);
    a[HEADER_LEN..].copy_from_slice(sha256);
    a
}

/// Encrypts everything written to it into `out`, one segment at a time.
pub struct Sealer<W: Write> {
    cipher: XChaCha20Poly1305,
    header: [u8; HEADER_LEN],
    aad: [u8; HEADER_LEN + 32],
    segment: usize,
    buf: Zeroizing<Vec<u8>>,
    index: u32,
    out: W,
    written: u64,
}

impl<W: Write> Sealer<W> {
    /// Starts a ciphertext for the plaintext whose SHA-256 is `sha256`; writes the header.
    pub fn new(key: &SecretBytes, sha256: &[u8; 32], out: W) -> io::Result<Self> {
        Self::with_segment_log2(key, sha256, out, DEFAULT_SEGMENT_LOG2)
    }

    /// As [`Sealer::new`] with segments of `2^log2` bytes.
    pub fn with_segment_log2(
        key: &SecretBytes,
        sha256: &[u8; 32],
        mut out: W,
        log2: u8,
    ) -> io::Result<Self> {
        assert!((MIN_SEGMENT_LOG2..=MAX_SEGMENT_LOG2).contains(&log2));
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4] = VERSION;
        header[5] = log2;
        header[8..16].copy_from_slice(&key.id(KEY_PURPOSE));
        super::secure_fs::fill_random(&mut header[16..32]);
        out.write_all(&header)?;
        let segment = 1usize << log2;
        Ok(Sealer {
            cipher: cipher(key),
            aad: aad(&header, sha256),
            header,
            segment,
            buf: Zeroizing::new(Vec::with_capacity(segment + TAG_LEN)),
            index: 0,
            out,
            written: HEADER_LEN as u64,
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.header[16..32], self.index, last);
        let tag = self
            .cipher
            .encrypt_inout_detached(&n, &self.aad, self.buf.as_mut_slice().into())
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(&tag)?;
        self.written += (self.buf.len() + TAG_LEN) as u64;
        self.buf.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| io::Error::other("entry too large to encrypt"))?;
        Ok(())
    }

    /// Writes the final segment; returns the output and the ciphertext length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.emit(true)?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, mut input: &[u8]) -> io::Result<usize> {
        let total = input.len();
        while !input.is_empty() {
            // A full segment is only sealed once more bytes prove it is not the last.
            if self.buf.len() == self.segment {
                self.emit(false)?;
            }
            let take = (self.segment - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads as many bytes as fit in `buf`, stopping early only at end of input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decrypts a ciphertext written by [`Sealer`] for `sha256` into `out`, one segment at a
/// time; returns the plaintext length. Nothing unauthenticated is ever written to `out`
/// (each segment is checked before it is written); on error the caller discards `out`.
pub fn open_to<R: Read, W: Write + ?Sized>(
    key: &SecretBytes,
    sha256: &[u8; 32],
    mut input: R,
    out: &mut W,
) -> Result<u64, SegmentError> {
    let mut header = [0u8; HEADER_LEN];
    if read_full(&mut input, &mut header)? != HEADER_LEN {
        return Err(SegmentError::Truncated);
    }
    if &header[..4] != MAGIC {
        return Err(SegmentError::Header("no DGE1 magic"));
    }
    if header[4] != VERSION {
        return Err(SegmentError::Header("unsupported version"));
    }
    if !(MIN_SEGMENT_LOG2..=MAX_SEGMENT_LOG2).contains(&header[5]) {
        return Err(SegmentError::Header("segment size out of range"));
    }
    if header[6..8] != [0, 0] {
        return Err(SegmentError::Header("reserved bytes set"));
    }
    if header[8..16] != key.id(KEY_PURPOSE) {
        return Err(SegmentError::WrongKey);
    }
    let cipher = cipher(key);
    let aad = aad(&header, sha256);
    let chunk = (1usize << header[5]) + TAG_LEN;
    // One extra byte tells a full segment followed by more from the last one.
    let mut buf = Zeroizing::new(vec![0u8; chunk + 1]);
    let mut have = 0usize;
    let mut index = 0u32;
    let mut total = 0u64;
    loop {
        have += read_full(&mut input, &mut buf[have..])?;
        let last = have <= chunk;
        let n = if last { have } else { chunk };
        if n < TAG_LEN {
            return Err(SegmentError::Truncated);
        }
        let (body, _) = buf.split_at_mut(n);
        let (ct, tag) = body.split_at_mut(n - TAG_LEN);
        let tag = chacha20poly1305::Tag::try_from(&*tag).expect("16 bytes");
        cipher
            .decrypt_inout_detached(&nonce(&header[16..32], index, last), &aad, ct.into(), &tag)
            .map_err(|_| SegmentError::Tampered { segment: index })?;
        out.write_all(ct)?;
        total += ct.len() as u64;
        if last {
            return Ok(total);
        }
        buf[0] = buf[chunk];
        have = 1;
        index = index
            .checked_add(1)
            .ok_or(SegmentError::Header("too many segments"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seal(key: &SecretBytes, sha: &[u8; 32], data: &[u8], log2: u8) -> Vec<u8> {
        let mut s = Sealer::with_segment_log2(key, sha, Vec::new(), log2).unwrap();
        // Uneven writes exercise the buffering.
        for chunk in data.chunks(37) {
            s.write_all(chunk).unwrap();
        }
        let (out, len) = s.finish().unwrap();
        assert_eq!(len, out.len() as u64);
        assert_eq!(len, ciphertext_len(data.len() as u64, log2));
        out
    }

    fn open(key: &SecretBytes, sha: &[u8; 32], ct: &[u8]) -> Result<Vec<u8>, SegmentError> {
        let mut out = Vec::new();
        open_to(key, sha, ct, &mut out).map(|_| out)
    }

    fn key() -> SecretBytes {
        SecretBytes::random(32)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roundtrips(data in proptest::collection::vec(any::<u8>(), 0..700), log2 in 6u8..9) {
            let k = key();
            let sha = [7u8; 32];
            let ct = seal(&k, &sha, &data, log2);
            prop_assert_eq!(open(&k, &sha, &ct).unwrap(), data);
        }

        #[test]
        fn any_bit_flip_is_detected(data in proptest::collection::vec(any::<u8>(), 0..400), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = key();
            let sha = [1u8; 32];
            let mut ct = seal(&k, &sha, &data, 6);
            let i = at.index(ct.len());
            ct[i] ^= 1 << bit;
            prop_assert!(open(&k, &sha, &ct).is_err());
        }

        #[test]
        fn any_truncation_or_extension_is_detected(data in proptest::collection::vec(any::<u8>(), 0..400), cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..40)) {
            let k = key();
            let sha = [2u8; 32];
            let ct = seal(&k, &sha, &data, 6);
            let n = cut.index(ct.len());
            prop_assert!(open(&k, &sha, &ct[..n]).is_err());
            let mut longer = ct.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(open(&k, &sha, &longer).is_err());
        }

        #[test]
        fn reordered_segments_are_detected(data in proptest::collection::vec(any::<u8>(), 129..600), a in 0usize..2, b in 2usize..4) {
            let k = key();
            let sha = [3u8; 32];
            let ct = seal(&k, &sha, &data, 6);
            let chunk = 64 + TAG_LEN;
            let segs = (ct.len() - HEADER_LEN).div_ceil(chunk);
            prop_assume!(b + 1 < segs);
            let mut swapped = ct.clone();
            let (x, y) = (HEADER_LEN + a * chunk, HEADER_LEN + b * chunk);
            let seg_a = ct[x..x + chunk].to_vec();
            swapped[x..x + chunk].copy_from_slice(&ct[y..y + chunk]);
            swapped[y..y + chunk].copy_from_slice(&seg_a);
            prop_assert!(open(&k, &sha, &swapped).is_err());
        }
    }

    #[test]
    fn dropping_whole_final_segments_is_detected() {
        let k = key();
        let sha = [4u8; 32];
        let data = vec![9u8; 64 * 3];
        let ct = seal(&k, &sha, &data, 6);
        let chunk = 64 + TAG_LEN;
        assert_eq!(ct.len(), HEADER_LEN + 3 * chunk);
        for keep in 0..3 {
            let cut = &ct[..HEADER_LEN + keep * chunk];
            assert!(open(&k, &sha, cut).is_err(), "kept {keep} segments");
        }
    }

    #[test]
    fn ciphertext_of_another_entry_or_key_does_not_open() {
        let k = key();
        let ct = seal(&k, &[5u8; 32], b"entry five", 6);
        assert!(matches!(
            open(&k, &[6u8; 32], &ct),
            Err(SegmentError::Tampered { segment: 0 })
        ));
        assert!(matches!(
            open(&key(), &[5u8; 32], &ct),
            Err(SegmentError::WrongKey)
        ));
        assert_eq!(open(&k, &[5u8; 32], &ct).unwrap(), b"entry five");
    }

    #[test]
    fn same_plaintext_encrypts_differently() {
        let k = key();
        assert_ne!(seal(&k, &[0; 32], b"x", 6), seal(&k, &[0; 32], b"x", 6));
    }

    #[test]
    fn default_segments_stream() {
        let k = key();
        let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 251) as u8).collect();
        let mut s = Sealer::new(&k, &[8; 32], Vec::new()).unwrap();
        s.write_all(&data).unwrap();
        let (ct, _) = s.finish().unwrap();
        assert_eq!(
            ct.len() as u64,
            ciphertext_len(data.len() as u64, DEFAULT_SEGMENT_LOG2)
        );
        assert_eq!(open(&k, &[8; 32], &ct).unwrap(), data);
    }
}
