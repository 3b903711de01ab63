//! Interop matrix for the native VCDIFF codec against the `xdelta3` program:
//! ours -> xdelta3, xdelta3 `-e -9` -> ours, ours -> ours; all byte-exact.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use deltaglider::codec::DeltaCodec;
use deltaglider::testing::codec::{
    DecodeOptions, EncodeOptions, NativeCodec, decode, decode_slices,
};
use deltaglider::testing::hashing::HashingWriter;

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    (0..n).map(|_| r() as u8).collect()
}

/// Text-like data: words from a small vocabulary, so there is structure to find.
fn texty(n: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 12] = [
        b"delta ",
        b"glider ",
        b"window ",
        b"source ",
        b"target ",
        b"copy ",
        b"add ",
        b"run\n",
        b"lzma ",
        b"adler32 ",
        b"reference ",
        b"0x1f2e ",
    ];
    let mut r = rng(seed);
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        v.extend_from_slice(words[(r() % 12) as usize]);
        if r().is_multiple_of(7) {
            v.push(r() as u8);
        }
    }
    v.truncate(n);
    v
}

struct Case {
    name: &'static str,
    reference: Vec<u8>,
    target: Vec<u8>,
    /// Extra xdelta3 encoder flags (window size) and our window size.
    xdelta_window: Option<usize>,
}

fn cases() -> Vec<Case> {
    let base = random_bytes(300_000, 1);
    let text = texty(400_000, 2);
    let mut one_byte = base.clone();
    one_byte[150_000] ^= 0x55;
    let mut moved = Vec::new();
    for i in [5usize, 2, 7, 0, 9, 1, 3, 8, 6, 4] {
        moved.extend_from_slice(&base[i * 30_000..(i + 1) * 30_000]);
    }
    let mut text_edit = text.clone();
    text_edit.splice(1000..1000, b"inserted words here".iter().copied());
    text_edit.drain(200_000..200_500);
    text_edit[300_000] = b'#';
    let big_ref = random_bytes(3_000_000, 3);
    let mut big_tgt = big_ref[1_500_000..].to_vec();
    big_tgt.extend_from_slice(&random_bytes(100_000, 4));
    big_tgt.extend_from_slice(&big_ref[..1_500_000]);
    big_tgt[2_000_000] ^= 1;
    let mut runs = vec![0u8; 50_000];
    runs.extend_from_slice(&base[..10_000]);
    runs.extend(std::iter::repeat_n(0xAB, 70_000));
    vec![
        Case {
            name: "empty",
            reference: vec![],
            target: vec![],
            xdelta_window: None,
        },
        Case {
            name: "empty-target",
            reference: base.clone(),
            target: vec![],
            xdelta_window: None,
        },
        Case {
            name: "empty-reference",
            reference: vec![],
            target: text[..50_000].to_vec(),
            xdelta_window: None,
        },
        Case {
            name: "tiny",
            reference: b"hello".to_vec(),
            target: b"hello, world".to_vec(),
            xdelta_window: None,
        },
        Case {
            name: "identical",
            reference: base.clone(),
            target: base.clone(),
            xdelta_window: None,
        },
        Case {
            name: "totally-different",
            reference: base.clone(),
            target: random_bytes(200_000, 9),
            xdelta_window: None,
        },
        Case {
            name: "one-byte-change",
            reference: base.clone(),
            target: one_byte,
            xdelta_window: None,
        },
        Case {
            name: "moved-blocks",
            reference: base.clone(),
            target: moved,
            xdelta_window: None,
        },
        Case {
            name: "text-edits",
            reference: text,
            target: text_edit,
            xdelta_window: None,
        },
        Case {
            name: "runs",
            reference: base.clone(),
            target: runs,
            xdelta_window: None,
        },
        Case {
            name: "multi-window",
            reference: big_ref,
            target: big_tgt,
            xdelta_window: Some(1 << 20),
        },
    ]
}

fn xdelta3_available() -> bool {
    Command::new("xdelta3").arg("-V").output().is_ok()
}

fn write(path: &Path, bytes: &[u8]) {
    File::create(path).unwrap().write_all(bytes).unwrap();
}

fn xdelta3(args: &[&str]) {
    let out = Command::new("xdelta3")
        .args(args)
        .output()
        .expect("run xdelta3");
    assert!(
        out.status.success(),
        "xdelta3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `xdelta3 -c ARGS` and returns the SHA-256 of what it writes to stdout, streamed.
fn xdelta3_stdout_sha256(args: &[&str]) -> String {
    let mut child = Command::new("xdelta3")
        .arg("-c")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run xdelta3");
    let (sha, _) =
        deltaglider::testing::hashing::sha256_reader(child.stdout.take().unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "xdelta3 -c {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha
}

fn codec(lzma: Option<u32>, window: Option<usize>) -> NativeCodec {
    NativeCodec {
        encode_options: EncodeOptions {
            lzma_preset: lzma,
            window_size: window.unwrap_or(EncodeOptions::default().window_size),
            ..EncodeOptions::default()
        },
        ..NativeCodec::default()
    }
}

fn run_case(dir: &Path, case: &Case) -> Vec<String> {
    let p = |s: &str| -> PathBuf { dir.join(format!("{}.{s}", case.name)) };
    let (rp, tp) = (p("ref"), p("tgt"));
    write(&rp, &case.reference);
    write(&tp, &case.target);
    let (rf, tf) = (File::open(&rp).unwrap(), File::open(&tp).unwrap());
    let mut report = Vec::new();

    // ours -> xdelta3 and ours -> ours, with and without LZMA.
    for lzma in [Some(9), None] {
        let c = codec(lzma, case.xdelta_window);
        let mut delta = Vec::new();
        c.encode(&rf, &tf, &mut delta).unwrap();
        let dp = p(if lzma.is_some() {
            "ours-lzma.vcdiff"
        } else {
            "ours-plain.vcdiff"
        });
        write(&dp, &delta);
        let op = p("xdelta3-out");
        xdelta3(&[
            "-d",
            "-D",
            "-f",
            "-s",
            rp.to_str().unwrap(),
            dp.to_str().unwrap(),
            op.to_str().unwrap(),
        ]);
        assert!(
            std::fs::read(&op).unwrap() == case.target,
            "{}: ours({lzma:?}) -> xdelta3 differs",
            case.name
        );
        let mut back = Vec::new();
        c.decode(&rf, &File::open(&dp).unwrap(), &mut back).unwrap();
        assert!(
            back == case.target,
            "{}: ours({lzma:?}) -> ours differs",
            case.name
        );
        report.push(format!(
            "{}: ours({lzma:?}) {} bytes",
            case.name,
            delta.len()
        ));
    }

    // xdelta3 -e -9 (Debian default: LZMA secondary) -> ours.
    let xp = p("xd3.vcdiff");
    let mut args = vec!["-e", "-9", "-f"];
    let w;
    if let Some(win) = case.xdelta_window {
        w = win.to_string();
        args.extend_from_slice(&["-W", &w]);
    }
    args.extend_from_slice(&[
        "-s",
        rp.to_str().unwrap(),
        tp.to_str().unwrap(),
        xp.to_str().unwrap(),
    ]);
    xdelta3(&args);
    let xdelta = std::fs::read(&xp).unwrap();
    let mut out = Vec::new();
    codec(Some(9), None)
        .decode(&rf, &File::open(&xp).unwrap(), &mut out)
        .unwrap();
    assert!(out == case.target, "{}: xdelta3 -> ours differs", case.name);
    assert_eq!(
        decode_slices(&xdelta, &case.reference).unwrap(),
        case.target
    );
    report.push(format!("{}: xdelta3 {} bytes", case.name, xdelta.len()));
    report
}

#[test]
fn interop_matrix() {
    assert!(
        xdelta3_available(),
        "the tests need xdelta3 (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        for line in run_case(dir.path(), &case) {
            eprintln!("{line}");
        }
    }
}

#[test]
fn xdelta3_without_secondary_and_unsupported_djw() {
    assert!(
        xdelta3_available(),
        "the tests need xdelta3 (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let reference = texty(100_000, 5);
    let mut target = reference.clone();
    target.splice(500..500, b"new bytes".iter().copied());
    let (rp, tp) = (dir.path().join("r"), dir.path().join("t"));
    write(&rp, &reference);
    write(&tp, &target);
    let plain = dir.path().join("plain");
    xdelta3(&[
        "-e",
        "-9",
        "-f",
        "-S",
        "none",
        "-s",
        rp.to_str().unwrap(),
        tp.to_str().unwrap(),
        plain.to_str().unwrap(),
    ]);
    assert_eq!(
        decode_slices(&std::fs::read(&plain).unwrap(), &reference).unwrap(),
        target
    );
    // xdelta3 without -n writes checksums; corrupt one byte of the target window data.
    let djw = dir.path().join("djw");
    xdelta3(&[
        "-e",
        "-9",
        "-f",
        "-S",
        "djw",
        "-s",
        rp.to_str().unwrap(),
        tp.to_str().unwrap(),
        djw.to_str().unwrap(),
    ]);
    let err = decode_slices(&std::fs::read(&djw).unwrap(), &reference).unwrap_err();
    assert!(err.to_string().contains("DJW"), "{err}");
}

#[test]
fn checksum_mismatch_is_detected() {
    let reference = random_bytes(10_000, 7);
    let target = random_bytes(5_000, 8);
    let c = codec(None, None);
    let dir = tempfile::tempdir().unwrap();
    let (rp, tp) = (dir.path().join("r"), dir.path().join("t"));
    write(&rp, &reference);
    write(&tp, &target);
    let mut delta = Vec::new();
    c.encode(
        &File::open(&rp).unwrap(),
        &File::open(&tp).unwrap(),
        &mut delta,
    )
    .unwrap();
    // Flip a byte near the end (inside the ADD data of the only window).
    let n = delta.len();
    delta[n - 100] ^= 0x01;
    let err = decode_slices(&delta, &reference).unwrap_err();
    assert!(err.to_string().contains("adler32"), "{err}");
}

/// SHA-256 of a file, streamed.
fn file_sha256(path: &Path) -> String {
    deltaglider::testing::hashing::sha256_reader(File::open(path).unwrap())
        .unwrap()
        .0
}

/// Encodes `target` against `reference` with the default native codec into `delta`;
/// returns the delta's length.
fn native_encode_file(reference: &File, target: &File, delta: &Path) -> u64 {
    NativeCodec::default()
        .encode(
            reference,
            target,
            &mut std::io::BufWriter::new(File::create(delta).unwrap()),
        )
        .unwrap();
    std::fs::metadata(delta).unwrap().len()
}

/// SHA-256 and length of what the default native codec decodes from `delta`, hashed as it
/// streams (nothing is written to disk).
fn native_decode_sha256(reference: &File, delta: &Path) -> (String, u64) {
    let mut sink = HashingWriter::new(std::io::sink());
    NativeCodec::default()
        .decode(reference, &File::open(delta).unwrap(), &mut sink)
        .unwrap();
    sink.finish()
}

/// A sparse file of `len` bytes: zeros, with 1 MiB of noise every 256 MiB, plus `extra`
/// (offset, bytes) writes.
fn sparse_file(path: &Path, len: u64, extra: &[(u64, &[u8])]) {
    use std::os::unix::fs::FileExt;
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut off = 0;
    while off + (1 << 20) <= len {
        f.write_all_at(&random_bytes(1 << 20, off >> 20), off)
            .unwrap();
        off += 256 << 20;
    }
    for (at, bytes) in extra {
        f.write_all_at(bytes, *at).unwrap();
    }
}

/// A temporary directory holding `big.ref`, a sparse file of `len` bytes (see
/// [`sparse_file`]), and `big.tgt`, the same with `target_edits` written over it.
fn sparse_pair(len: u64, target_edits: &[(u64, &[u8])]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    assert!(
        xdelta3_available(),
        "the tests need xdelta3 (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (rp, tp) = (dir.path().join("big.ref"), dir.path().join("big.tgt"));
    sparse_file(&rp, len, &[]);
    sparse_file(&tp, len, target_edits);
    (dir, rp, tp)
}

/// Offsets past 2 GiB (and past u32 in the decoder's arithmetic): a 2.25 GiB sparse
/// reference and a target that differs from it near the end and has a block copied from
/// the start to the end. ours -> xdelta3, xdelta3 -> ours and ours -> ours, compared by hash.
#[test]
fn larger_than_2_gib_sparse() {
    const LEN: u64 = (2 << 30) + (256 << 20);
    let head = random_bytes(1 << 20, 0);
    let (dir, rp, tp) = sparse_pair(
        LEN,
        &[
            (LEN - 100_000, b"changed beyond 2 GiB"),
            ((2 << 30) + 12_345, &head),
            (1 << 31, b"at exactly 2 GiB"),
        ],
    );
    let expected = (file_sha256(&tp), LEN);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (rf, tf) = (File::open(&rp).unwrap(), File::open(&tp).unwrap());

    let ours = dir.path().join("ours.vcdiff");
    let ours_len = native_encode_file(&rf, &tf, &ours);
    assert!(ours_len < 1 << 20, "delta of {ours_len} bytes");
    assert_eq!(
        xdelta3_stdout_sha256(&["-d", "-B", "2147483648", "-s", &s(&rp), &s(&ours)]),
        expected.0,
        "ours -> xdelta3 differs"
    );
    assert_eq!(
        native_decode_sha256(&rf, &ours),
        expected,
        "ours -> ours differs"
    );

    let theirs = dir.path().join("xd3.vcdiff");
    xdelta3(&[
        "-e",
        "-9",
        "-f",
        "-B",
        "2147483648",
        "-s",
        &s(&rp),
        &s(&tp),
        &s(&theirs),
    ]);
    assert_eq!(
        native_decode_sha256(&rf, &theirs),
        expected,
        "xdelta3 -> ours differs"
    );
    eprintln!(
        "2.25 GiB sparse: ours {ours_len} bytes, xdelta3 {} bytes",
        std::fs::metadata(&theirs).unwrap().len()
    );
}

/// A reference and a target past 4 GiB (offsets past `u32`): the target differs
/// beyond 4 GiB, has a block from the start of the reference written past 4 GiB, and ends
/// in bytes found nowhere else. Our encoder keeps each window's segment below xdelta3's
/// 4 GiB limit with offsets above it; ours -> xdelta3 and ours -> ours, compared by hash
/// as they stream (xdelta3 encodes such inputs too slowly for CI).
#[test]
fn larger_than_4_gib_sparse() {
    const LEN: u64 = (4 << 30) + (320 << 20);
    let head = random_bytes(1 << 20, 0);
    let tail = random_bytes(70_000, 99);
    let (dir, rp, tp) = sparse_pair(
        LEN,
        &[
            ((4 << 30) - 3, b"across the 4 GiB line"),
            ((4 << 30) + 54_321, &head),
            (LEN - 70_000, &tail),
        ],
    );
    let expected = (file_sha256(&tp), LEN);
    let (rf, tf) = (File::open(&rp).unwrap(), File::open(&tp).unwrap());
    let ours = dir.path().join("ours.vcdiff");
    let ours_len = native_encode_file(&rf, &tf, &ours);
    assert!(ours_len < 1 << 20, "delta of {ours_len} bytes");
    assert_eq!(
        native_decode_sha256(&rf, &ours),
        expected,
        "ours -> ours differs"
    );
    let path = |p: &Path| p.to_str().unwrap().to_string();
    assert_eq!(
        xdelta3_stdout_sha256(&["-d", "-B", "1073741824", "-s", &path(&rp), &path(&ours)]),
        expected.0,
        "ours -> xdelta3 differs"
    );
    eprintln!("4.3 GiB sparse: ours {ours_len} bytes");
}

/// Compresses `bytes` with `program -c` through a pipe (as `tar czf` does: no name, no
/// timestamp from a file).
fn compress_with(program: &str, bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// xdelta3 without `-D` (as the Python tool runs it) decompresses gzip/xz inputs first and
/// records that in the application header; the native decoder reproduces what xdelta3's
/// own decoder gives back, through the same programs.
#[test]
fn externally_compressed_deltas_decode_like_xdelta3() {
    assert!(
        xdelta3_available(),
        "the tests need xdelta3 (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let reference = texty(600_000, 11);
    let mut target = reference.clone();
    target.splice(300_000..300_000, b"a new release line\n".iter().copied());
    for program in ["gzip", "xz"] {
        let (rz, tz) = (
            compress_with(program, &reference),
            compress_with(program, &target),
        );
        let (rp, tp, dp, op) = (
            dir.path().join(format!("r.{program}")),
            dir.path().join(format!("t.{program}")),
            dir.path().join(format!("d.{program}.vcdiff")),
            dir.path().join(format!("o.{program}")),
        );
        write(&rp, &rz);
        write(&tp, &tz);
        let s = |p: &Path| p.to_str().unwrap().to_string();
        xdelta3(&["-e", "-9", "-f", "-s", &s(&rp), &s(&tp), &s(&dp)]);
        let delta = std::fs::read(&dp).unwrap();
        let header =
            deltaglider::testing::codec::read_header(&File::open(&dp).unwrap(), "test").unwrap();
        assert!(
            header.uses_external_compression(),
            "{program}: xdelta3 did not decompress its inputs"
        );
        // The delta is of the decompressed bytes: far smaller than the compressed change.
        assert!(
            delta.len() < 2_000,
            "{program}: delta of {} bytes",
            delta.len()
        );
        xdelta3(&["-d", "-f", "-s", &s(&rp), &s(&dp), &s(&op)]);
        let oracle = std::fs::read(&op).unwrap();

        let mut ours = Vec::new();
        NativeCodec::default()
            .decode(
                &File::open(&rp).unwrap(),
                &File::open(&dp).unwrap(),
                &mut ours,
            )
            .unwrap();
        assert!(ours == oracle, "{program}: ours differs from xdelta3 -d");
        // Piped compression is deterministic: here the upload comes back exactly.
        assert!(
            ours == tz,
            "{program}: recompression did not reproduce the file"
        );
        // The delta itself is of the decompressed bytes: applied raw to the decompressed
        // reference it gives the decompressed target. Raw decoding refuses it by default.
        assert!(decode_slices(&delta, &reference).is_err());
        let mut raw = Vec::new();
        let options = DecodeOptions {
            reject_external_compression: false,
            ..DecodeOptions::default()
        };
        decode(&reference, &delta[..], &mut raw, &options).unwrap();
        assert!(
            raw == target,
            "{program}: raw decode is not the decompressed target"
        );
    }
}

/// Real data: the first consecutive pairs of wheels of each set in the corpus (`DG_CORPUS`, fetched by
/// `scripts/corpus/fetch.sh`; the test command sets it). Skipped with a message elsewhere.
#[test]
fn corpus_wheels() {
    let Some(dir) = std::env::var_os("DG_CORPUS").map(PathBuf::from) else {
        eprintln!(
            "SKIPPED corpus_wheels: set DG_CORPUS=$(scripts/corpus/fetch.sh) to run it on real releases"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut pairs = 0;
    for name in ["botocore", "ansible"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(name))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        // The corpus holds each wheel twice, as .whl and as .zip.
        files.retain(|f| f.extension().is_some_and(|e| e == "zip"));
        files.sort();
        for pair in files.windows(2).take(2) {
            let case = Case {
                name: "corpus",
                reference: std::fs::read(&pair[0]).unwrap(),
                target: std::fs::read(&pair[1]).unwrap(),
                xdelta_window: None,
            };
            for line in run_case(tmp.path(), &case) {
                eprintln!("{}: {line}", pair[1].display());
            }
            pairs += 1;
        }
    }
    assert!(pairs > 0, "no release pairs under {}", dir.display());
}
