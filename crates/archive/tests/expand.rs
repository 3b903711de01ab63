//! Archives expand into a form that restores to exactly their bytes; their deflate streams
//! are found by content, and anything else is kept as it is.

use std::io::Cursor;
use std::process::{Command, Stdio};

use deltaglider_archive::{Container, Error, Expansion, Limits, expand, restore};
use proptest::prelude::*;

fn round_trip(original: &[u8], limits: &Limits) -> (Expansion, Vec<u8>) {
    let mut expanded = Vec::new();
    let report = expand(Cursor::new(original), &mut expanded, limits).expect("everything expands");
    assert_eq!(report.input_len as usize, original.len());
    assert_eq!(report.expanded_len as usize, expanded.len());
    let mut restored = Vec::new();
    let n = restore(&expanded[..], &mut restored).expect("its own expanded form restores");
    assert_eq!(n as usize, restored.len());
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
import io, sys, zipfile, gzip
files = [("pkg/__init__.py", b"VERSION = '1.0'\n" * 50),
         ("pkg/data/model.json", b"".join(b'{"op%d": {"input": "S%d", "n": %d}}\n' % (i, i % 7, (i * 2654435761) % 1000003) for i in range(3000))),
         ("pkg/empty.txt", b""),
         ("pkg/random.bin", bytes((i * 7919) % 251 for i in range(20000)))]
"#;

#[test]
fn a_zip_expands_every_deflated_entry_and_keeps_stored_ones() {
    let zip = python(&format!(
        "{FILES}
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w') as z:
    for i, (name, data) in enumerate(files):
        z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if i % 2 == 0 else zipfile.ZIP_STORED)
    z.comment = b'built by a test'
sys.stdout.buffer.write(buf.getvalue())"
    ));
    let (report, _) = round_trip(&zip, &Limits::default());
    assert_eq!(report.container, Container::Zip);
    assert_eq!(report.streams, 2);
    assert_eq!(report.streams_left, 0);
}

#[test]
fn a_zip_written_as_a_stream_with_data_descriptors_expands() {
    // Written to an unseekable stream, zipfile records sizes in data descriptors.
    let zip = python(&format!(
        "{FILES}
class Unseekable(io.RawIOBase):
    def __init__(self): self.b = bytearray()
    def writable(self): return True
    def write(self, d): self.b += d; return len(d)
out = Unseekable()
with zipfile.ZipFile(out, 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for name, data in files:
        with z.open(name, 'w') as f:
            f.write(data)
sys.stdout.buffer.write(bytes(out.b))"
    ));
    let (report, _) = round_trip(&zip, &Limits::default());
    assert_eq!(report.streams, 4, "{report:?}");
}

#[test]
fn every_member_of_a_multi_member_gzip_expands() {
    let gz = python(&format!(
        "{FILES}
out = b''
for name, data in files:
    out += gzip.compress(data, compresslevel=9, mtime=1234)
sys.stdout.buffer.write(out + b'trailing garbage')"
    ));
    let (report, _) = round_trip(&gz, &Limits::default());
    assert_eq!(report.container, Container::Gzip);
    assert_eq!(report.streams, 4);
}

#[test]
fn gnu_gzip_with_a_name_expands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "a line of notes\n".repeat(5000)).unwrap();
    let out = Command::new("gzip").arg("-kc").arg(&path).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout[3] & 8, 8, "the name is recorded");
    let (report, _) = round_trip(&out.stdout, &Limits::default());
    assert_eq!(report.streams, 1);
}

#[test]
fn what_is_not_an_archive_is_kept_as_it_is() {
    for data in [
        &b""[..],
        b"plain text, not an archive",
        b"PK\x03\x04 but cut short",
        &[0x1f, 0x8b, 8, 0, 0],
    ] {
        let (report, expanded) = round_trip(data, &Limits::default());
        assert_eq!(report.streams, 0);
        assert!(expanded.len() <= data.len() + 16);
    }
}

#[test]
fn a_stream_past_the_limits_stays_compressed() {
    let gz = python(&format!(
        "{FILES}\nsys.stdout.buffer.write(gzip.compress(files[1][1], mtime=0))"
    ));
    let tokens_only = Limits::default().plain_attempts_per_stream(0);
    let (report, _) = round_trip(&gz, &tokens_only.clone().max_stream_ratio(0));
    assert_eq!((report.streams, report.streams_left), (0, 1));
    assert!(
        report
            .first_left_reason
            .unwrap()
            .contains("out of proportion")
    );
    let (report, _) = round_trip(&gz, &Limits::default().max_expanded_len(100));
    assert_eq!((report.streams, report.streams_left), (0, 1));
    // The plain tier has its own bound, after which the token form is tried.
    let (report, _) = round_trip(&gz, &Limits::default().max_plain_ratio(1));
    assert_eq!((report.streams, report.plain_streams), (1, 0));
}

#[test]
fn a_corrupt_stream_is_kept_and_the_rest_still_expands() {
    let zip = python(&format!(
        "{FILES}
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for name, data in files:
        z.writestr(name, data)
b = bytearray(buf.getvalue())
# the first entry's data starts after its 30-byte header and its name
start = 30 + len(files[0][0])
b[start] = 0xff  # block type 3: not deflate
sys.stdout.buffer.write(bytes(b))"
    ));
    let (report, _) = round_trip(&zip, &Limits::default());
    assert_eq!(report.streams_left, 1);
    assert_eq!(
        report.streams, 3,
        "the other entries (the empty one is deflated too)"
    );
}

#[test]
fn a_damaged_or_newer_expanded_form_is_refused() {
    let gz = python(&format!(
        "{FILES}\nsys.stdout.buffer.write(gzip.compress(files[0][1], mtime=0))"
    ));
    let (_, expanded) = round_trip(&gz, &Limits::default());
    let mut newer = expanded.clone();
    newer[3] = 2;
    assert!(matches!(
        restore(&newer[..], Vec::new()),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        restore(&expanded[..expanded.len() - 1], Vec::new()),
        Err(Error::Truncated(_))
    ));
    let mut extra = expanded.clone();
    extra.push(0);
    assert!(matches!(
        restore(&extra[..], Vec::new()),
        Err(Error::Invalid { .. })
    ));
    assert!(restore(&b"not it"[..], Vec::new()).is_err());
}

#[test]
fn releases_of_a_tarball_expand_to_forms_with_much_in_common() {
    let make = |edit: &str| {
        python(&format!(
            "{FILES}
import tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w:gz') as t:
    for name, data in [('pkg/VERSION', b'{edit}')] + files:
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
        t.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(buf.getvalue())"
        ))
    };
    let (a, b) = (make("op1000"), make("op1000-renamed"));
    let (_, ea) = round_trip(&a, &Limits::default());
    let (_, eb) = round_trip(&b, &Limits::default());
    let shared = |x: &[u8], y: &[u8]| {
        x.chunks(32)
            .filter(|c| c.len() == 32 && y.windows(32).any(|w| w == *c))
            .count()
            * 32
    };
    let (compressed, expanded) = (shared(&a, &b), shared(&ea, &eb));
    let report = format!(
        "shared: compressed {compressed} of {}, expanded {expanded} of {}",
        a.len(),
        ea.len()
    );
    assert!(
        compressed * 4 < a.len(),
        "compressed bytes share little; {report}"
    );
    assert!(
        expanded * 4 > ea.len() * 3,
        "expanded forms share most; {report}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_expand_and_restore(mut data in proptest::collection::vec(any::<u8>(), 0..3000), kind in 0u8..3) {
        // Give some inputs an archive's magic so the scanners run on garbage.
        let magic: &[u8] = match kind {
            0 => &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
            1 => b"PK\x03\x04",
            _ => b"",
        };
        data.splice(0..0, magic.iter().copied());
        round_trip(&data, &Limits::default());
        let _ = restore(&data[..], Vec::new());
    }
}
