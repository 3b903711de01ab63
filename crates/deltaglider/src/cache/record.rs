//! The small sidecar record kept next to every stored entry (`<sha256>.rec`): what the entry
//! is (content hash, stored size), when it was made and expires, who wrote it, how its bytes
//! are transformed, and an optional HMAC over all of that.
//!
//! Fixed binary layout, 108 bytes, big-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `DGRC` |
//! | 4 | 1 | version (1) |
//! | 5 | 1 | flags (`FLAG_ENCRYPTED`, `FLAG_SIGNED`) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 32 | SHA-256 of the plaintext (the entry's name) |
//! | 40 | 8 | size of the stored bytes (ciphertext size if encrypted) |
//! | 48 | 8 | created, Unix seconds |
//! | 56 | 8 | expires, Unix seconds (0: never) |
//! | 64 | 4 | writer uid |
//! | 68 | 8 | signing key id (zero if unsigned) |
//! | 76 | 32 | HMAC-SHA-256 of bytes 0..76 (zero if unsigned) |

/// Encoded length of a record.
pub const RECORD_LEN: usize = 108;
/// Length of the part a MAC covers.
pub const SIGNED_LEN: usize = 76;
const MAGIC: &[u8; 4] = b"DGRC";
const VERSION: u8 = 1;
/// The stored bytes are segmented AEAD ciphertext ([`super::segments`]).
pub const FLAG_ENCRYPTED: u8 = 1;
/// The record carries a key id and a MAC ([`super::signed`]).
pub const FLAG_SIGNED: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_ENCRYPTED | FLAG_SIGNED;

/// Metadata of one stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// SHA-256 of the plaintext: the entry's name.
    pub sha256: [u8; 32],
    /// Length of the stored bytes (ciphertext length if `FLAG_ENCRYPTED`).
    pub size: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Expiry, Unix seconds; 0 means "never".
    pub expires: u64,
    /// Effective uid of the writer; a signed record naming another uid is refused.
    pub uid: u32,
    /// `FLAG_ENCRYPTED` and/or `FLAG_SIGNED`; other bits are rejected by [`Record::decode`].
    pub flags: u8,
    /// Id of the signing key (`SecretBytes::id`); zero if
    /// unsigned.
    pub key_id: [u8; 8],
    /// HMAC-SHA-256 over [`Record::signed_bytes`]; zero if unsigned.
    pub mac: [u8; 32],
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not [`RECORD_LEN`] bytes long (the actual length).
    #[error("record has {0} bytes, expected {RECORD_LEN}")]
    Length(usize),
    /// Does not start with `DGRC`.
    #[error("record has no DGRC magic")]
    Magic,
    /// A version other than 1.
    #[error("record version {0} is not supported")]
    Version(u8),
    /// Flag bits beyond `FLAG_ENCRYPTED` and `FLAG_SIGNED` (the whole flags byte).
    #[error("record has unknown flags {0:#04x}")]
    Flags(u8),
    /// Bytes 6..8 are not zero.
    #[error("record has non-zero reserved bytes")]
    Reserved,
}

impl Record {
    /// A record for `sha256` (hex, already validated) of `size` stored bytes written now by
    /// this user, expiring after `ttl_secs` if given.
    pub fn new(sha256_hex: &str, size: u64, ttl_secs: Option<u64>) -> Record {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(sha256_hex, &mut sha256).expect("validated SHA-256 hex");
        let created = super::now_secs();
        Record {
            sha256,
            size,
            created,
            expires: ttl_secs.map_or(0, |t| created.saturating_add(t).max(1)),
            uid: rustix::process::geteuid().as_raw(),
            flags: 0,
            key_id: [0; 8],
            mac: [0; 32],
        }
    }

    /// The content hash as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// True if the record names an expiry at or before `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires != 0 && now >= self.expires
    }

    /// True if any bit of `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The fixed-size encoding.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..SIGNED_LEN].copy_from_slice(&self.signed_bytes());
        out[SIGNED_LEN..].copy_from_slice(&self.mac);
        out
    }

    /// The bytes a MAC covers: everything but the MAC itself.
    pub fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[5] = self.flags;
        out[8..40].copy_from_slice(&self.sha256);
        out[40..48].copy_from_slice(&self.size.to_be_bytes());
        out[48..56].copy_from_slice(&self.created.to_be_bytes());
        out[56..64].copy_from_slice(&self.expires.to_be_bytes());
        out[64..68].copy_from_slice(&self.uid.to_be_bytes());
        out[68..76].copy_from_slice(&self.key_id);
        out
    }

    /// Parses an encoding; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() != RECORD_LEN {
            return Err(RecordError::Length(bytes.len()));
        }
        if &bytes[0..4] != MAGIC {
            return Err(RecordError::Magic);
        }
        if bytes[4] != VERSION {
            return Err(RecordError::Version(bytes[4]));
        }
        if bytes[5] & !KNOWN_FLAGS != 0 {
            return Err(RecordError::Flags(bytes[5]));
        }
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(RecordError::Reserved);
        }
        let u64_at = |o: usize| u64::from_be_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        Ok(Record {
            flags: bytes[5],
            sha256: bytes[8..40].try_into().expect("32 bytes"),
            size: u64_at(40),
            created: u64_at(48),
            expires: u64_at(56),
            uid: u32::from_be_bytes(bytes[64..68].try_into().expect("4 bytes")),
            key_id: bytes[68..76].try_into().expect("8 bytes"),
            mac: bytes[76..108].try_into().expect("32 bytes"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            0u8..=KNOWN_FLAGS,
            any::<[u8; 8]>(),
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(sha256, size, created, expires, uid, flags, key_id, mac)| Record {
                    sha256,
                    size,
                    created,
                    expires,
                    uid,
                    flags,
                    key_id,
                    mac,
                },
            )
    }

    proptest! {
        #[test]
        fn roundtrips(r in arb_record()) {
            prop_assert_eq!(Record::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn every_signed_byte_matters(r in arb_record(), at in 0usize..SIGNED_LEN, bit in 0u8..8) {
            let mut bytes = r.encode();
            bytes[at] ^= 1 << bit;
            // Either the result no longer parses, or it parses to a different record whose
            // signed bytes differ, so a MAC over them cannot carry over.
            if let Ok(other) = Record::decode(&bytes) {
                prop_assert_ne!(other.signed_bytes(), r.signed_bytes());
            }
        }
    }

    #[test]
    fn rejects_wrong_length_magic_version_flags() {
        let r = Record::new(&"ab".repeat(32), 5, Some(10));
        let good = r.encode();
        assert_eq!(
            Record::decode(&good[..RECORD_LEN - 1]),
            Err(RecordError::Length(RECORD_LEN - 1))
        );
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Record::decode(&b), Err(RecordError::Magic));
        let mut b = good;
        b[4] = 9;
        assert_eq!(Record::decode(&b), Err(RecordError::Version(9)));
        let mut b = good;
        b[5] = 0x80;
        assert_eq!(Record::decode(&b), Err(RecordError::Flags(0x80)));
        let mut b = good;
        b[7] = 1;
        assert_eq!(Record::decode(&b), Err(RecordError::Reserved));
    }

    #[test]
    fn expiry() {
        let mut r = Record::new(&"00".repeat(32), 0, None);
        assert!(!r.is_expired(u64::MAX));
        r.expires = 100;
        assert!(!r.is_expired(99));
        assert!(r.is_expired(100));
    }
}
