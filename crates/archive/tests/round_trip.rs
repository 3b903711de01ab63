//! Every deflate stream splits into its token form and rebuilds to the same bytes, whatever
//! made it; what is not deflate is refused without a panic.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use deltaglider_archive::Error;
use deltaglider_archive::deflate::{rebuild, split};
use flate2::Compression;
use proptest::prelude::*;

fn round_trip(deflate: &[u8]) -> Vec<u8> {
    let mut tokens = Vec::new();
    let s = split(deflate, &mut tokens).expect("a valid deflate stream splits");
    assert_eq!(s.deflate_len as usize, deflate.len());
    assert_eq!(s.tokens_len as usize, tokens.len());
    assert!(s.leftover.is_empty());
    let mut rebuilt = Vec::new();
    let mut reader = &tokens[..];
    let n = rebuild(&mut reader, &mut rebuilt).expect("a token form rebuilds");
    assert!(reader.is_empty(), "rebuild consumes exactly the token form");
    assert_eq!(n as usize, rebuilt.len());
    assert_eq!(rebuilt, deflate, "rebuilt bytes differ");
    tokens
}

fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn plain(deflate: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflate)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Text-like data with repeats at every distance, so matches of all lengths occur.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let words: Vec<&[u8]> = vec![
        b"alpha ",
        b"beta ",
        b"{\"key\": ",
        b"0123456789",
        b"\n",
        b"zeta",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(7) && out.len() > 300 {
            let back = (x as usize >> 8) % out.len().min(40_000) + 1;
            let n = ((x >> 32) % 300) as usize;
            for _ in 0..n {
                out.push(out[out.len() - back]);
            }
        } else if x.is_multiple_of(5) {
            out.push((x >> 40) as u8);
        } else {
            out.extend_from_slice(words[(x >> 20) as usize % words.len()]);
        }
    }
    out.truncate(len);
    out
}

#[test]
fn every_level_of_a_rust_encoder_round_trips() {
    let data = sample(400_000, 7);
    for level in 0..=9 {
        let d = deflate(&data, level);
        round_trip(&d);
    }
}

#[test]
fn gnu_gzip_streams_round_trip() {
    let data = sample(300_000, 11);
    for level in ["-1", "-6", "-9"] {
        let mut child = Command::new("gzip")
            .args(["-c", "-n", level])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        // 10-byte header without a name (-n), 8-byte trailer.
        let body = &out.stdout[10..];
        let mut tokens = Vec::new();
        let s = split(body, &mut tokens).unwrap();
        assert_eq!(s.leftover.len(), 8, "the gzip trailer is left over");
        assert_eq!(s.plain_len as usize, data.len());
        round_trip(&body[..body.len() - 8]);
    }
}

#[test]
fn odd_bits_are_kept_stored_padding_and_tail() {
    // A fixed block holding "a", then a final stored block whose alignment padding and the
    // stream's tail bits are not zero: encoders never write that, the format allows it.
    let bits: [(u32, u32); 6] = [
        (0, 1),                                   // not final
        (1, 2),                                   // fixed
        (0b1001_0001u32.reverse_bits() >> 24, 8), // 'a': 0x30 + 0x61, 8 bits
        (0, 7),                                   // end of block
        (1, 1),                                   // final
        (0, 2),                                   // stored
    ];
    let mut w = BitPacker::default();
    for (v, n) in bits {
        w.push(v, n);
    }
    let pad = w.to_boundary();
    w.push((1 << pad) - 1, pad); // padding bits set
    for b in [3u8, 0, !3, 0xff, b'x', b'y', b'z'] {
        w.push(u32::from(b), 8);
    }
    let stream = w.bytes;
    assert_eq!(plain(&stream), b"axyz");
    round_trip(&stream);

    // Tail bits after the final block are kept too.
    let mut d = deflate(b"hello hello hello", 9);
    let last = d.len() - 1;
    let used = 8 - d[last].leading_zeros();
    if used < 8 {
        d[last] |= 0x80;
        assert_eq!(plain(&d), b"hello hello hello");
        round_trip(&d);
    }
}

#[test]
fn what_is_not_deflate_is_refused() {
    for bad in [
        &[0xffu8, 0xff, 0xff][..],
        &[0x07],
        &[],
        &[0x01, 0x00, 0x00, 0x00, 0x00],
    ] {
        let e = split(bad, Vec::new()).unwrap_err();
        assert!(
            matches!(e, Error::Invalid { .. } | Error::Truncated(_)),
            "{e:?}"
        );
    }
    // A truncated valid stream.
    let d = deflate(&sample(50_000, 3), 6);
    assert!(matches!(
        split(&d[..d.len() / 2], Vec::new()),
        Err(Error::Truncated(_))
    ));
}

#[test]
fn token_forms_of_similar_content_share_their_bytes() {
    // The reason the form exists: an edit early in the content changes the deflate bytes
    // from there on, but leaves most tokens as they were.
    let a = sample(200_000, 5);
    let mut b = a.clone();
    b.splice(1000..1000, b"an inserted line\n".iter().copied());
    let (da, db) = (deflate(&a, 6), deflate(&b, 6));
    let (ta, tb) = (round_trip(&da), round_trip(&db));
    let common_tail = |x: &[u8], y: &[u8]| {
        x.iter()
            .rev()
            .zip(y.iter().rev())
            .take_while(|(p, q)| p == q)
            .count()
    };
    assert!(
        common_tail(&da, &db) < 1000,
        "deflate bytes differ to the end"
    );
    let same = ta
        .windows(64)
        .step_by(64)
        .filter(|w| tb.windows(64).any(|v| v == *w))
        .count();
    assert!(
        same * 64 * 10 > ta.len() * 9,
        "most 64-byte pieces of the token form recur"
    );
}

#[derive(Default)]
struct BitPacker {
    bytes: Vec<u8>,
    nbits: u32,
}

impl BitPacker {
    fn push(&mut self, v: u32, n: u32) {
        for i in 0..n {
            if self.nbits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = (v >> i) & 1;
            *self.bytes.last_mut().unwrap() |= (bit as u8) << (self.nbits % 8);
            self.nbits += 1;
        }
    }
    fn to_boundary(&self) -> u32 {
        (8 - self.nbits % 8) % 8
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_data_at_any_level_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 0u32..=9, repeat in 1usize..4) {
        let data: Vec<u8> = data.iter().cycle().take(data.len() * repeat).copied().collect();
        round_trip(&deflate(&data, level));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut tokens = Vec::new();
        if let Ok(s) = split(&bytes[..], &mut tokens) {
            let mut rebuilt = Vec::new();
            rebuild(&mut &tokens[..], &mut rebuilt).unwrap();
            prop_assert_eq!(&rebuilt[..], &bytes[..s.deflate_len as usize]);
        }
        let _ = rebuild(&mut &bytes[..], Vec::new());
    }
}

/// Stock zlib (through Python's `zlib`) at every level, window, memLevel and strategy: the
/// encoder that made most zip and gzip files.
#[test]
fn stock_zlib_at_every_setting_round_trips() {
    let script = r#"
import sys, zlib, struct
data = b"".join(b'{"op%d": {"input": "Shape%d", "doc": "Returns the thing."}}\n' % (i % 97, i % 13) for i in range(1500))
data += bytes(range(256)) * 40
out = sys.stdout.buffer
for level in range(0, 10):
    for wbits in (9, 12, 15):
        for mem in (1, 8, 9):
            for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED):
                c = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem, strategy)
                d = c.compress(data) + c.flush()
                out.write(struct.pack("<I", len(d)) + d)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = &out.stdout[..];
    let mut streams = 0;
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        round_trip(&rest[4..4 + n]);
        rest = &rest[4 + n..];
        streams += 1;
    }
    assert_eq!(streams, 10 * 3 * 3 * 5);
}
