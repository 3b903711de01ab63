//! Native VCDIFF codec vs the `xdelta3` program, side by side.
//!
//! `cargo bench --bench codec -- [--generated] [REF TARGET]...` (default: the first two
//! releases of each set in the corpus, `DG_CORPUS` or `~/.cache/deltaglider-corpus`;
//! `--generated` adds a 1 GiB reference with a rotated target, see [`generated_rotated`],
//! measured once). Each side runs as its own process (this binary re-executes itself for
//! ours), so times include start-up and RSS is each process's own peak. xdelta3 runs as the
//! xdelta3 codec runs it: `-9` with a source window covering the whole reference.
//!
//! Prints delta size, encode and decode time ratios for the encoder profiles `default`
//! (LZMA secondary compression of all sections), `fast` (`EncodeOptions::fast()`) and
//! `plain` (no secondary compression). Times are the best of [`RUNS`] runs, ours and the
//! program's alternating, so that a slow phase of a shared machine slows both alike:
//! compare the ratios, not the absolute times.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deltaglider::codec::DeltaCodec;
use deltaglider::testing::codec::{EncodeOptions, Mapped, NativeCodec, encode};

const RUNS: usize = 5;

fn worker(args: &[String]) {
    // worker encode|decode default|fast|plain REF IN OUT
    let mut options = match args[1].as_str() {
        "default" => EncodeOptions::default(),
        "fast" => EncodeOptions::fast(),
        "plain" => EncodeOptions {
            lzma_preset: None,
            ..EncodeOptions::default()
        },
        other => panic!("unknown profile {other}"),
    };
    // Tuning knobs for experiments.
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(v) = env("DG_BENCH_ACCEL_AFTER") {
        options.accel_after = v;
    }
    if let Some(v) = env("DG_BENCH_MAX_STRIDE") {
        options.max_stride = v;
    }
    if let Some(v) = env("DG_BENCH_STEP") {
        options.sample_step = v;
    }
    if let Some(v) = std::env::var("DG_BENCH_ENTROPY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.incompressible_entropy = v;
    }
    if let Some(v) = env("DG_BENCH_DATA_PRESET") {
        options.data_lzma_preset = v as u32;
    }
    if let Some(v) = env("DG_BENCH_LZMA_PRESET") {
        options.lzma_preset = options.lzma_preset.map(|_| v as u32);
    }
    if let Some(v) = env("DG_BENCH_INDEX_MIB") {
        options.max_index_bytes = v << 20;
    }
    if let Some(v) = env("DG_BENCH_WINDOW") {
        options.window_size = v;
    }
    let codec = NativeCodec {
        encode_options: options,
        ..NativeCodec::default()
    };
    let r = File::open(&args[2]).unwrap();
    let input = File::open(&args[3]).unwrap();
    let mut out = std::io::BufWriter::new(File::create(&args[4]).unwrap());
    match args[0].as_str() {
        "encode" if std::env::var_os("DG_BENCH_VERBOSE").is_some() => {
            let (rm, tm) = (Mapped::new(&r).unwrap(), Mapped::new(&input).unwrap());
            let s = encode(rm.bytes(), tm.bytes(), &mut out, &codec.encode_options).unwrap();
            eprintln!("{s:?}");
        }
        "encode" => codec.encode(&r, &input, &mut out).unwrap(),
        "decode" => codec.decode(&r, &input, &mut out).unwrap(),
        other => panic!("unknown worker mode {other}"),
    }
    out.flush().unwrap();
}

/// Runs `program` once: wall time and peak RSS (KiB), read from `wait4`'s resource usage
/// of that child alone.
fn measure_once(program: &str, args: &[&str]) -> (Duration, u64) {
    let start = Instant::now();
    let mut stderr = tempfile::tempfile().unwrap();
    // Reaped by wait4 below, which also reports this child's own peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI; `usage` is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(waited, pid, "wait4 {program}");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let mut err = String::new();
        std::io::Seek::rewind(&mut stderr).unwrap();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        panic!("{program} {args:?} failed: {err}");
    }
    (elapsed, usage.ru_maxrss as u64)
}

/// Best wall time and largest peak RSS over runs.
#[derive(Clone, Copy)]
struct Measured {
    best: Duration,
    rss_kib: u64,
}

impl Measured {
    const NONE: Measured = Measured {
        best: Duration::MAX,
        rss_kib: 0,
    };

    fn add(&mut self, (elapsed, rss): (Duration, u64)) {
        self.best = self.best.min(elapsed);
        self.rss_kib = self.rss_kib.max(rss);
    }
}

/// Runs two commands `runs` times each, alternating, so that a slow phase of a shared
/// machine slows both sides alike: the ratio of the two best times is what is compared.
fn measure_pair(runs: usize, a: (&str, &[&str]), b: (&str, &[&str])) -> (Measured, Measured) {
    let (mut ma, mut mb) = (Measured::NONE, Measured::NONE);
    for _ in 0..runs {
        ma.add(measure_once(a.0, a.1));
        mb.add(measure_once(b.0, b.1));
    }
    (ma, mb)
}

fn write_noise(path: &Path, len: u64, seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut w = std::io::BufWriter::new(File::create(path).unwrap());
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            word.copy_from_slice(&s.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
}

/// The generated case: a 1 GiB reference of noise, and a target that is the reference
/// rotated by 384 MiB (every byte moved farther than xdelta3's default 64 MiB source
/// window) with 16 bytes changed every 64 MiB.
fn generated_rotated(dir: &Path) -> (PathBuf, PathBuf) {
    const LEN: u64 = 1 << 30;
    const SHIFT: u64 = 384 << 20;
    let (r, t) = (dir.join("gen-1GiB.ref"), dir.join("gen-1GiB-rotated.tgt"));
    write_noise(&r, LEN, 77);
    let src = File::open(&r).unwrap();
    let mut out = std::io::BufWriter::new(File::create(&t).unwrap());
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 8 << 20];
    let mut written = 0u64;
    while written < LEN {
        let from = (written + SHIFT) % LEN;
        let n = (buf.len() as u64).min(LEN - written).min(LEN - from) as usize;
        src.read_exact_at(&mut buf[..n], from).unwrap();
        if written.is_multiple_of(64 << 20) {
            buf[4096..4112].copy_from_slice(b"changed 16 bytes");
        }
        out.write_all(&buf[..n]).unwrap();
        written += n as u64;
    }
    out.flush().unwrap();
    (r, t)
}

fn default_pairs() -> Vec<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("DG_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/deltaglider-corpus")
        });
    let mut pairs = Vec::new();
    for name in ["botocore", "ansible"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(name))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        // The corpus holds each wheel twice, as .whl and as .zip.
        files.retain(|f| f.extension().is_some_and(|e| e == "zip"));
        files.sort();
        if files.len() >= 2 {
            pairs.push((files[0].clone(), files[1].clone()));
        }
    }
    pairs
}

/// Compares two files 8 MiB at a time.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// The source window the xdelta3 codec passes with `-B`: the reference size rounded up to
/// a power of two, between 512 KiB and 2 GiB.
fn source_window(reference: &Path) -> String {
    let len = std::fs::metadata(reference).unwrap().len();
    len.next_power_of_two()
        .clamp(512 << 10, 1 << 31)
        .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs bench binaries too; only `cargo bench` passes --bench.
    if !args.iter().any(|a| a == "--bench" || a == "--worker") {
        eprintln!("codec benchmark: run it with `cargo bench --bench codec`");
        return;
    }
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1..]);
    }
    let generated = args.iter().any(|a| a == "--generated");
    let files: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    // (reference, target, runs, encoder profiles)
    let all_profiles: &[&str] = &["default", "fast", "plain"];
    let mut pairs: Vec<(PathBuf, PathBuf, usize, &[&str])> = if files.len() >= 2 {
        files
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone().into(), c[1].clone().into(), RUNS, all_profiles))
            .collect()
    } else {
        default_pairs()
            .into_iter()
            .map(|(r, t)| (r, t, RUNS, all_profiles))
            .collect()
    };
    let tmp = tempfile::tempdir().unwrap();
    if generated {
        eprintln!("writing the generated 1 GiB case");
        let (r, t) = generated_rotated(tmp.path());
        pairs.push((r, t, 1, &["default"]));
    }
    if pairs.is_empty() {
        eprintln!("no input pairs: pass REF TARGET, fetch the corpus or pass --generated");
        return;
    }
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap();
    let t = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    println!(
        "{:<34} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "pair / codec",
        "xd3 size",
        "our size",
        "size x",
        "xd3 enc",
        "our enc",
        "enc x",
        "xd3 dec",
        "our dec",
        "dec x",
        "xd3 RSS",
        "our RSS"
    );
    for (r, tg, runs, profiles) in pairs {
        let (rs, ts) = (r.to_str().unwrap(), tg.to_str().unwrap());
        let (xd, xo) = (t("x.vcdiff"), t("x.out"));
        let window = source_window(&r);
        let xd3_encode: &[&str] = &["-e", "-9", "-f", "-B", &window, "-s", rs, ts, &xd];
        // Timed decodes write to /dev/null: writing a new file of the target's size costs
        // both sides the same and, at 1 GiB, varies by seconds with the page cache. Each
        // result is then checked through an untimed decode into a file.
        let null = "/dev/null";
        let xd3_decode: &[&str] = &["-d", "-D", "-f", "-B", &window, "-s", rs, &xd, null];
        measure_once("xdelta3", xd3_encode);
        measure_once(
            "xdelta3",
            &["-d", "-D", "-f", "-B", &window, "-s", rs, &xd, &xo],
        );
        assert!(same_file(&tg, Path::new(&xo)));
        let xsize = std::fs::metadata(&xd).unwrap().len();
        let label = tg
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .take(26)
            .collect::<String>();
        for &preset in profiles {
            let (od, oo) = (t("o.vcdiff"), t("o.out"));
            let (xe, oe) = measure_pair(
                runs,
                ("xdelta3", xd3_encode),
                (me, &["--worker", "encode", preset, rs, ts, &od]),
            );
            let (xdt, odt) = measure_pair(
                runs,
                ("xdelta3", xd3_decode),
                (me, &["--worker", "decode", preset, rs, &od, null]),
            );
            measure_once(me, &["--worker", "decode", preset, rs, &od, &oo]);
            assert!(same_file(&tg, Path::new(&oo)), "ours -> ours differs");
            // The program must read what we write.
            let status = Command::new("xdelta3")
                .args(["-d", "-D", "-f", "-B", &window, "-s", rs, &od, &xo])
                .status()
                .unwrap();
            assert!(
                status.success() && same_file(&tg, Path::new(&xo)),
                "ours -> xdelta3 differs"
            );
            // And we must read what it writes, timed against the program reading it.
            let (xdt2, xod) = measure_pair(
                runs,
                ("xdelta3", xd3_decode),
                (me, &["--worker", "decode", preset, rs, &xd, null]),
            );
            measure_once(me, &["--worker", "decode", preset, rs, &xd, &oo]);
            assert!(same_file(&tg, Path::new(&oo)), "xdelta3 -> ours differs");
            let osize = std::fs::metadata(&od).unwrap().len();
            let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
            let ratio = |a: Measured, b: Measured| a.best.as_secs_f64() / b.best.as_secs_f64();
            println!(
                "{:<34} {:>10} {:>10} {:>7.4} {:>9} {:>9} {:>6.1}x {:>9} {:>9} {:>6.1}x {:>8}M {:>8}M",
                format!("{label} {preset}"),
                xsize,
                osize,
                osize as f64 / xsize as f64,
                ms(xe.best),
                ms(oe.best),
                ratio(xe, oe),
                ms(xdt.best),
                ms(odt.best),
                ratio(xdt, odt),
                xe.rss_kib.max(xdt.rss_kib) / 1024,
                oe.rss_kib.max(odt.rss_kib) / 1024,
            );
            println!(
                "{:<34} decoding xdelta3's delta: ours {} vs xdelta3 {} ({:.1}x); RSS enc {}M/{}M dec {}M/{}M",
                "",
                ms(xod.best),
                ms(xdt2.best),
                ratio(xdt2, xod),
                xe.rss_kib / 1024,
                oe.rss_kib / 1024,
                xdt.rss_kib / 1024,
                odt.rss_kib / 1024
            );
        }
    }
}
