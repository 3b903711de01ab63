//! The preflate tier: a stream no zlib parameters reproduce (GNU gzip's) is stored as its
//! plain bytes and preflate's corrections, within its budgets, and restores bit for bit; a
//! hostile or foreign preflate segment is refused without a panic.

use std::io::{Cursor, Write};
use std::process::{Command, Stdio};

use deltaglider_archive::{
    Error, Expansion, Limits, MAX_PREFLATE_LEN, expand, preflate_encoder_id, restore,
};
use proptest::prelude::*;

fn round_trip(original: &[u8], limits: &Limits) -> (Expansion, Vec<u8>) {
    let mut expanded = Vec::new();
    let report = expand(Cursor::new(original), &mut expanded, limits).expect("everything expands");
    let mut restored = Vec::new();
    restore(&expanded[..], &mut restored).expect("its own expanded form restores");
    assert!(restored == original, "restored bytes differ");
    (report, expanded)
}

/// `data` through the `gzip` program at `level`.
fn gnu_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg(format!("-{level}nc"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn text(lines: usize, seed: u64) -> Vec<u8> {
    (0..lines as u64)
        .map(|i| {
            format!(
                "{{\"shape{}\": {{\"type\": \"string\", \"max\": {}}}}},\n",
                (i * 2654435761 + seed) % 977,
                (i * 7919 + seed) % 10007
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn gnu_gzip_streams_are_stored_as_plain_bytes_at_every_level() {
    let data = text(20_000, 1);
    for level in [1, 4, 6, 9] {
        let gz = gnu_gzip(&data, level);
        let (report, expanded) = round_trip(&gz, &Limits::default());
        assert_eq!(
            (
                report.streams,
                report.plain_streams,
                report.preflate_streams
            ),
            (1, 0, 1),
            "level {level}: {report:?}"
        );
        assert!(contains(&expanded, &data[..4000]), "level {level}");
        // Plain bytes and small corrections, not a token form larger than the stream.
        assert!(expanded.len() < data.len() + gz.len() / 2, "level {level}");
    }
}

#[test]
fn gnu_gzip_files_inside_a_zip_are_split_in_turn() {
    let inner = gnu_gzip(&text(5_000, 2), 9);
    let script = "import io, sys, zipfile
gz = sys.stdin.buffer.read()
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr('data/service-2.json.gz', gz)
    z.writestr('data/readme.txt', b'notes ' * 1000)
sys.stdout.buffer.write(buf.getvalue())";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    child.stdin.take().unwrap().write_all(&inner).unwrap();
    let zip = child.wait_with_output().unwrap();
    assert!(zip.status.success());
    let (report, expanded) = round_trip(&zip.stdout, &Limits::default());
    assert_eq!(
        (report.streams, report.plain_streams, report.nested_streams),
        (2, 2, 1),
        "{report:?}"
    );
    assert_eq!(report.preflate_streams, 1, "{report:?}");
    assert!(contains(&expanded, &text(5_000, 2)[..4000]));
}

#[test]
fn past_its_budgets_a_stream_stays_in_token_form() {
    let data = text(20_000, 3);
    let gz = gnu_gzip(&data, 9);
    let token_only = |limits: Limits| {
        let (report, expanded) = round_trip(&gz, &limits);
        assert_eq!(report.preflate_streams, 0, "{report:?}");
        assert!(!contains(&expanded, &data[..4000]));
    };
    token_only(Limits::default().preflate_bytes_per_file(0));
    token_only(Limits::default().preflate_bytes_per_file(data.len() as u64 - 1));
    token_only(Limits::default().max_preflate_corrections_pct(0));
    token_only(Limits::default().max_plain_ratio(1));
    // The budget is per file: two members, room for one.
    let twice = [&gz[..], &gz[..]].concat();
    let (report, _) = round_trip(
        &twice,
        &Limits::default().preflate_bytes_per_file(data.len() as u64 * 3 / 2),
    );
    assert_eq!(
        (report.streams, report.preflate_streams),
        (2, 1),
        "{report:?}"
    );
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
}

/// A form of one preflate segment.
fn segment(id: &[u8], corrections: &[u8], kind: u8, len: u64, body: &[u8]) -> Vec<u8> {
    let mut s = b"DGX\x01\x05".to_vec();
    varint(id.len() as u64, &mut s);
    s.extend_from_slice(id);
    varint(corrections.len() as u64, &mut s);
    s.extend_from_slice(corrections);
    s.push(kind);
    varint(len, &mut s);
    s.extend_from_slice(body);
    s.push(0);
    s
}

#[test]
fn foreign_and_hostile_preflate_segments_are_refused() {
    let id = preflate_encoder_id().as_bytes();
    let gz = gnu_gzip(&text(20_000, 4), 9);
    let (_, expanded) = round_trip(&gz, &Limits::default());
    let at = expanded
        .windows(id.len())
        .position(|w| w == id)
        .expect("the encoder is named");
    let mut other = expanded.clone();
    other[at + id.len() - 1] = b'9'; // another version
    assert!(matches!(
        restore(&other[..], Vec::new()),
        Err(Error::Unsupported(_))
    ));
    // Corrections damaged anywhere are refused or restore to some bytes, never a panic (the
    // arithmetic coder's last bytes may not matter; callers compare what they restore).
    let mut refused = 0;
    for i in (at + id.len() + 1..at + id.len() + 40).step_by(3) {
        let mut bad = expanded.clone();
        bad[i] ^= 0x55;
        refused += usize::from(restore(&bad[..], Vec::new()).is_err());
    }
    assert!(refused > 0);
    // Cut anywhere, it is refused, never restored short.
    for cut in (0..expanded.len()).step_by(101) {
        assert!(
            restore(&expanded[..cut], Vec::new()).is_err(),
            "cut at {cut}"
        );
    }
    // Lengths that lie or exceed the format's bound are refused before anything is read.
    let lying = segment(id, b"", 0, 1 << 20, b"abc");
    assert!(matches!(
        restore(&lying[..], Vec::new()),
        Err(Error::Truncated(_))
    ));
    let huge = segment(id, b"", 0, MAX_PREFLATE_LEN + 1, b"abc");
    assert!(matches!(
        restore(&huge[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    let unknown = segment(id, b"", 7, 0, b"");
    assert!(matches!(
        restore(&unknown[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    let garbage = segment(id, &[0xff; 64], 0, 5, b"hello");
    assert!(matches!(
        restore(&garbage[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gnu_gzip_of_any_data_restores_exactly(
        words in proptest::collection::vec(0u16..300, 0..6000),
        noise in proptest::collection::vec(any::<u8>(), 0..3000),
        level in 1u32..=9,
    ) {
        // Repetitive text with runs of noise: both matches and literals.
        let mut data: Vec<u8> = words.iter().flat_map(|w| format!("w{w} ").into_bytes()).collect();
        data.extend_from_slice(&noise);
        let gz = gnu_gzip(&data, level);
        let mut expanded = Vec::new();
        expand(Cursor::new(&gz[..]), &mut expanded, &Limits::default()).unwrap();
        let mut restored = Vec::new();
        restore(&expanded[..], &mut restored).unwrap();
        prop_assert!(restored == gz);
    }
}
