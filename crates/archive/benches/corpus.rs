//! Stored bytes of each corpus set with its files expanded (token forms) against the files as
//! they are, measured in one run: `cargo bench -p deltaglider-archive --bench corpus`
//! (`DG_CORPUS`, or `~/.cache/deltaglider-corpus` from `scripts/corpus/fetch.sh`).
//!
//! For each set, the first file is the reference and every later file is a delta against it
//! (`xdelta3 -e -9 -D` with a source window covering the whole reference, as a deltaspace stores
//! them), kept when under half the file (the default max ratio) and else stored whole. As
//! they are: the reference as it is, plus the deltas of the files. Expanded: the
//! reference's expanded form under `xz -9e`, plus the deltas between expanded forms. Prints
//! both as fractions of the originals, their ratio, and expand/restore throughput.
//! Needs the `xdelta3` and `xz` programs (scripts/install-deps.sh installs xdelta3).
//! `DG_BENCH_TOKENS_ONLY=1` turns the plain tier off (every stream in token form), and
//! `DG_BENCH_SETS=botocore,ansible` measures only the sets named.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use deltaglider_archive::{Limits, expand, restore};

const SETS: [(&str, &str); 4] = [
    ("botocore", ".whl"),
    ("ansible", ".whl"),
    ("sdist-botocore", ".tar.gz"),
    ("npm-prettier", ".tgz"),
];

fn delta(reference: &Path, target: &Path, out: &Path) -> u64 {
    let status = Command::new("xdelta3")
        .args(["-e", "-9", "-D", "-f", "-B", "268435456", "-s"])
        .arg(reference)
        .arg(target)
        .arg(out)
        .status()
        .expect("xdelta3 is installed");
    assert!(status.success(), "xdelta3 failed on {}", target.display());
    std::fs::metadata(out).unwrap().len()
}

fn xz_size(path: &Path) -> u64 {
    let out = Command::new("xz")
        .args(["-9e", "-T1", "-c"])
        .arg(path)
        .output()
        .expect("xz is installed");
    assert!(out.status.success());
    out.stdout.len() as u64
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "corpus benchmark: run it with `cargo bench -p deltaglider-archive --bench corpus`"
        );
        return;
    }
    let corpus = std::env::var_os("DG_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/deltaglider-corpus")
        });
    let work = tempfile::tempdir().unwrap();
    let limits = if std::env::var_os("DG_BENCH_TOKENS_ONLY").is_some() {
        Limits::default().plain_attempts_per_stream(0)
    } else {
        Limits::default()
    };
    let only = std::env::var("DG_BENCH_SETS").ok();
    for (set, ext) in SETS {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|s| s == set))
        {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join(set))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.to_string_lossy().ends_with(ext));
        files.sort_by_key(|f| version_key(f));
        if files.len() < 2 {
            println!(
                "{set}: not in {} (run scripts/corpus/fetch.sh)",
                corpus.display()
            );
            continue;
        }
        let (mut original, mut expand_s, mut restore_s, mut plain_bytes) = (0u64, 0f64, 0f64, 0u64);
        let (mut streams, mut plain_streams, mut nested) = (0u64, 0u64, 0u64);
        let mut expanded = Vec::new();
        for (i, f) in files.iter().enumerate() {
            original += std::fs::metadata(f).unwrap().len();
            let out = work.path().join(format!("{set}-{i}.dgx"));
            let t = Instant::now();
            let report = expand(
                BufReader::new(File::open(f).unwrap()),
                BufWriter::new(File::create(&out).unwrap()),
                &limits,
            )
            .unwrap();
            expand_s += t.elapsed().as_secs_f64();
            plain_bytes += report.input_len;
            streams += report.streams;
            plain_streams += report.plain_streams;
            nested += report.nested_streams;
            let t = Instant::now();
            let mut restored = Vec::new();
            restore(BufReader::new(File::open(&out).unwrap()), &mut restored).unwrap();
            restore_s += t.elapsed().as_secs_f64();
            assert!(
                restored == std::fs::read(f).unwrap(),
                "{} restores exactly",
                f.display()
            );
            expanded.push(out);
        }
        let scratch = work.path().join("delta");
        // A delta is kept when under half its file (the default max ratio), else the file
        // is stored whole.
        let size = |i: usize| std::fs::metadata(&files[i]).unwrap().len();
        let kept = |d: u64, i: usize| if d * 2 < size(i) { d } else { size(i) };
        let as_is = size(0)
            + (1..files.len())
                .map(|i| kept(delta(&files[0], &files[i], &scratch), i))
                .sum::<u64>();
        let reference = xz_size(&expanded[0]);
        let deltas = (1..files.len())
            .map(|i| kept(delta(&expanded[0], &expanded[i], &scratch), i))
            .sum::<u64>();
        let compact = reference + deltas;
        let expanded_mb = std::fs::metadata(&expanded[0]).unwrap().len() as f64 / 1e6;
        let pct = |n: u64| 100.0 * n as f64 / original as f64;
        let mb = plain_bytes as f64 / 1e6;
        println!(
            "{set} ({} files, {:.1} MB): as they are {:.1}%, expanded {:.1}% ({:.2}x smaller); \
             expand {:.1} MB/s, restore {:.1} MB/s (of the files); {plain_streams} of {streams} \
             streams plain, {nested} nested streams expanded; the reference expands to \
             {expanded_mb:.1} MB, {:.2} MB under xz, deltas {:.2} MB",
            files.len(),
            original as f64 / 1e6,
            pct(as_is),
            pct(compact),
            as_is as f64 / compact as f64,
            mb / expand_s,
            mb / restore_s,
            reference as f64 / 1e6,
            deltas as f64 / 1e6,
        );
    }
}

/// Sorts `name-1.44.10` after `name-1.44.9`.
fn version_key(path: &Path) -> Vec<u64> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}
