//! The plain tier: streams that the bundled zlib reproduces are stored as their plain bytes
//! (and a gzip or zip inside them expanded in turn); any other stream falls back to its token
//! form, and every input still restores bit for bit.

use std::io::Cursor;
use std::process::{Command, Stdio};

use deltaglider_archive::{Error, Expansion, Limits, expand, plain_encoder_id, restore};

fn round_trip(original: &[u8], limits: &Limits) -> (Expansion, Vec<u8>) {
    let mut expanded = Vec::new();
    let report = expand(Cursor::new(original), &mut expanded, limits).expect("everything expands");
    assert_eq!(report.expanded_len as usize, expanded.len());
    let mut restored = Vec::new();
    restore(&expanded[..], &mut restored).expect("its own expanded form restores");
    assert!(restored == original, "restored bytes differ");
    (report, expanded)
}

/// Runs a Python snippet that writes an archive to stdout.
fn python(script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const FILES: &str = r#"
import io, sys, zipfile, gzip, tarfile
files = [("pkg/__init__.py", b"VERSION = '1.0'\n" * 50),
         ("pkg/data/model.json", b"".join(b'{"op%d": {"input": "S%d", "n": %d}}\n' % (i, i % 7, (i * 2654435761) % 1000003) for i in range(3000))),
         ("pkg/empty.txt", b""),
         ("pkg/random.bin", bytes((i * 7919 + (i >> 5) * 31) % 251 for i in range(50000)))]
"#;

#[test]
fn zips_of_python_at_every_level_expand_to_plain_bytes() {
    for level in [1, 3, 6, 9] {
        let zip = python(&format!(
            "{FILES}
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel={level}) as z:
    for name, data in files:
        z.writestr(name, data)
sys.stdout.buffer.write(buf.getvalue())"
        ));
        let (report, _) = round_trip(&zip, &Limits::default());
        assert_eq!(report.streams, 4, "level {level}: {report:?}");
        assert_eq!(report.plain_streams, 4, "level {level}: {report:?}");
    }
}

#[test]
fn gzip_and_tarfile_outputs_expand_to_plain_bytes() {
    let gz = python(&format!(
        "{FILES}
sys.stdout.buffer.write(b''.join(gzip.compress(d, compresslevel=l, mtime=0) for l in range(1, 10) for _, d in files[:2]))"
    ));
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!(
        (report.streams, report.plain_streams),
        (18, 18),
        "{report:?}"
    );
    let tgz = python(&format!(
        "{FILES}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w:gz') as t:
    for name, data in files:
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
        t.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(buf.getvalue())"
    ));
    let (report, expanded) = round_trip(&tgz, &Limits::default());
    assert_eq!((report.streams, report.plain_streams), (1, 1), "{report:?}");
    // The tar itself is in the expanded form, as it is.
    assert!(expanded.windows(19).any(|w| w == b"pkg/data/model.json"));
}

#[test]
fn a_stream_zlib_does_not_reproduce_falls_back_to_its_token_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text: String = (0..20_000)
        .map(|i| format!("line {i}: value {}\n", (i * 7919) % 10007))
        .collect();
    std::fs::write(&path, text).unwrap();
    // GNU gzip has its own deflate, whose choices differ from zlib's.
    let out = Command::new("gzip")
        .arg("-9nc")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (report, _) = round_trip(&out.stdout, &Limits::default());
    assert_eq!((report.streams, report.plain_streams), (1, 0), "{report:?}");
    // Its first block is not as long as any zlib block: no candidate needs trying.
    assert_eq!(report.plain_misses, 0, "{report:?}");
}

#[test]
fn the_search_stops_at_its_budgets() {
    // zlib with the filtered strategy: blocks as long as the default's, other choices.
    let gz = python(&format!(
        "{FILES}
import struct, zlib
c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_FILTERED)
d = files[1][1] * 3
body = c.compress(d) + c.flush()
sys.stdout.buffer.write(b'\\x1f\\x8b\\x08\\x00' + bytes(6) + body + struct.pack('<II', zlib.crc32(d), len(d)))"
    ));
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!((report.streams, report.plain_streams), (1, 0), "{report:?}");
    assert_eq!(report.plain_misses, 9, "every candidate was tried once");
    // A spent budget of misses stops the search early.
    let limits = Limits::default().plain_misses_per_file(3);
    let (report, _) = round_trip(&gz, &limits);
    assert_eq!((report.streams, report.plain_misses), (1, 3), "{report:?}");
    let limits = Limits::default().plain_attempts_per_stream(2);
    let (report, _) = round_trip(&gz, &limits);
    assert_eq!((report.streams, report.plain_misses), (1, 2), "{report:?}");
}

#[test]
fn the_last_matching_parameters_are_tried_first() {
    let gz = python(&format!(
        "{FILES}
sys.stdout.buffer.write(b''.join(gzip.compress(d + b'%d' % i, compresslevel=2, mtime=0) for i in range(20) for d in [files[1][1]]))"
    ));
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!(report.plain_streams, 20);
    // Level 2 is the fourth candidate: three misses on the first stream, none after.
    assert_eq!(report.plain_misses, 3, "{report:?}");
}

/// A wheel-like zip whose entries include `.json.gz` files.
const WHEEL: &str = r#"
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for name, data in files:
        z.writestr(name, data)
        z.writestr(name + '.gz', gzip.compress(data, compresslevel=9, mtime=0))
sys.stdout.buffer.write(buf.getvalue())"#;

#[test]
fn gzip_files_inside_a_zip_are_expanded_in_turn() {
    let zip = python(&format!("{FILES}{WHEEL}"));
    let (report, expanded) = round_trip(&zip, &Limits::default());
    assert_eq!((report.streams, report.plain_streams), (8, 8), "{report:?}");
    assert_eq!(report.nested_streams, 4, "{report:?}");
    // Each depth starts from its own last parameters (the zip's level 6, the gzip files'
    // level 9): one miss in all, on the first gzip file.
    assert_eq!(report.plain_misses, 1, "{report:?}");
    let (flat, flat_expanded) = round_trip(&zip, &Limits::default().max_nesting(0));
    assert_eq!(flat.nested_streams, 0);
    // Nested, the JSON appears as text twice (as itself and inside its .gz).
    let needle = b"{\"op2999\"";
    let count = |e: &[u8]| e.windows(needle.len()).filter(|w| w == needle).count();
    assert_eq!((count(&expanded), count(&flat_expanded)), (2, 1));
    let (small, _) = round_trip(&zip, &Limits::default().max_nested_len(16));
    assert_eq!(small.nested_streams, 0, "too large to hold in memory");
}

#[test]
fn deep_nesting_stops_at_the_limit_and_still_restores() {
    // gzip inside gzip inside gzip ..., twelve deep.
    let gz = python(
        "import gzip, sys
d = b'the innermost text ' * 1000
for _ in range(12):
    d = gzip.compress(d, compresslevel=6, mtime=0)
sys.stdout.buffer.write(d)",
    );
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!(
        (report.streams, report.nested_streams),
        (1, 2),
        "{report:?}"
    );
    let (report, _) = round_trip(&gz, &Limits::default().max_nesting(100));
    assert_eq!(
        report.nested_streams,
        u64::from(deltaglider_archive::MAX_NESTING),
        "{report:?}"
    );
}

#[test]
fn a_bomb_stays_in_its_token_form() {
    // 64 MiB of zeros deflate to about 64 KiB: far past the plain ratio.
    let gz = python(
        "import gzip, sys
sys.stdout.buffer.write(gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0))",
    );
    let (report, expanded) = round_trip(&gz, &Limits::default());
    assert_eq!(report.plain_streams, 0, "{report:?}");
    assert!(expanded.len() < 16 * gz.len());
    let limits = Limits::default()
        .max_expanded_len(1 << 20)
        .max_plain_ratio(10_000);
    let (report, expanded) = round_trip(&gz, &limits);
    assert_eq!(report.plain_streams, 0, "past the expansion budget");
    assert!(expanded.len() < 1 << 20);
}

fn gzip_expanded() -> (Vec<u8>, Vec<u8>) {
    let gz = python(&format!(
        "{FILES}\nsys.stdout.buffer.write(gzip.compress(files[1][1], compresslevel=6, mtime=0))"
    ));
    let (report, expanded) = round_trip(&gz, &Limits::default());
    assert_eq!(report.plain_streams, 1);
    (gz, expanded)
}

#[test]
fn a_form_made_by_another_encoder_is_refused() {
    let (_, expanded) = gzip_expanded();
    let id = plain_encoder_id();
    let at = expanded
        .windows(id.len())
        .position(|w| w == id.as_bytes())
        .expect("the encoder is named");
    let mut other = expanded.clone();
    other[at + 7] = b'9'; // another version
    assert!(matches!(
        restore(&other[..], Vec::new()),
        Err(Error::Unsupported(_))
    ));
    let mut other = expanded.clone();
    other[at + id.len() - 1] ^= 1; // the same version, other output
    assert!(matches!(
        restore(&other[..], Vec::new()),
        Err(Error::Unsupported(_))
    ));
    // Parameters zlib does not have.
    let mut bad = expanded.clone();
    bad[at + id.len()] = 12; // level
    assert!(matches!(
        restore(&bad[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    // Cut anywhere, it is refused, never restored short.
    for cut in (0..expanded.len()).step_by(97) {
        assert!(
            restore(&expanded[..cut], Vec::new()).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn hostile_plain_segments_are_refused_without_a_panic() {
    let id = plain_encoder_id();
    let id = id.as_bytes();
    let segment = |kind: u8, len: u64, body: &[u8]| {
        let mut s = vec![3u8, id.len() as u8];
        s.extend_from_slice(id);
        s.extend_from_slice(&[6, 15, 8, 0, kind]);
        let mut n = len;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            s.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                break;
            }
        }
        s.extend_from_slice(body);
        s
    };
    let form = |inner: &[u8]| [&b"DGX\x01"[..], inner, &[0]].concat();
    // A length that lies: longer than what follows.
    let lying = form(&segment(0, 1 << 40, b"abc"));
    assert!(matches!(
        restore(&lying[..], Vec::new()),
        Err(Error::Truncated(_))
    ));
    // An unknown kind of content.
    let unknown = form(&segment(7, 0, b""));
    assert!(matches!(
        restore(&unknown[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    // Nested deeper than any reader follows.
    let mut nested = form(&segment(0, 5, b"hello"));
    for _ in 0..20 {
        nested = form(&segment(1, nested.len() as u64, &nested));
    }
    assert!(matches!(
        restore(&nested[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    // Within the depth, a valid nesting restores to deflate of deflate.
    let mut ok = form(&segment(0, 5, b"hello"));
    for _ in 0..3 {
        ok = form(&segment(1, ok.len() as u64, &ok));
    }
    let mut out = Vec::new();
    restore(&ok[..], &mut out).unwrap();
    assert!(!out.is_empty());
    // A nested form that ends before its segment does.
    let mut short = form(&segment(0, 5, b"hello"));
    short = form(&segment(
        1,
        short.len() as u64 + 1,
        &[&short[..], &[0]].concat(),
    ));
    assert!(restore(&short[..], Vec::new()).is_err());
}

#[test]
fn a_large_stream_is_compared_and_written_in_pieces() {
    // Larger than any buffer: 24 MiB of varied text through gzip level 6.
    let gz = python(
        "import gzip, sys
d = b''.join(b'%d,%d,%x\\n' % (i, i * i % 9973, i * 2654435761 % 4294967296) for i in range(1200000))
sys.stdout.buffer.write(gzip.compress(d, compresslevel=6, mtime=0))",
    );
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!(report.plain_streams, 1, "{report:?}");
}
