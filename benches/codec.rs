//! Native VCDIFF codec vs the `xdelta3` program, side by side.
//!
//! `cargo bench --bench codec -- [REF TARGET]...` (default: consecutive wheels from
//! /root/.cache/dg-corpus, or `DG_CORPUS_DIR`). Each side runs as its own process (this
//! binary re-executes itself for ours) under `/usr/bin/time`, so times include start-up
//! and RSS is the process peak. Prints delta size, encode and decode time ratios for the
//! encoder profiles `default` (LZMA secondary compression of all sections), `fast`
//! (`EncodeOptions::fast()`: no LZMA for incompressible data sections) and `plain` (no
//! secondary compression). Wall times on a loaded machine are noisy: compare ratios.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deltaglider::codec::DeltaCodec;
use deltaglider::codec::native::{EncodeOptions, Mapped, NativeCodec, encode};

const RUNS: usize = 3;

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

/// Runs `cmd` under /usr/bin/time RUNS times: best wall time and peak RSS (KiB).
fn measure(program: &str, args: &[&str]) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut rss = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "RSS=%M"])
            .arg(program)
            .args(args)
            .output()
            .expect("run /usr/bin/time");
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{program} {args:?}: {stderr}");
        best = best.min(elapsed);
        rss = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("RSS="))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0)
            .max(rss);
    }
    (best, rss)
}

fn default_pairs() -> Vec<(PathBuf, PathBuf)> {
    let dir = PathBuf::from(
        std::env::var("DG_CORPUS_DIR").unwrap_or_else(|_| "/root/.cache/dg-corpus".into()),
    );
    let mut pairs = Vec::new();
    for name in ["botocore", "ansible"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(name))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        if files.len() >= 2 {
            pairs.push((files[0].clone(), files[1].clone()));
        }
    }
    pairs
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
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
    let files: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    let pairs: Vec<(PathBuf, PathBuf)> = if files.len() >= 2 {
        files
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone().into(), c[1].clone().into()))
            .collect()
    } else {
        default_pairs()
    };
    if pairs.is_empty() {
        eprintln!("no input pairs: pass REF TARGET or fetch the corpus");
        return;
    }
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
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
    for (r, tg) in pairs {
        let (rs, ts) = (r.to_str().unwrap(), tg.to_str().unwrap());
        let (xd, xo) = (t("x.vcdiff"), t("x.out"));
        let (xe, xe_rss) = measure("xdelta3", &["-e", "-9", "-f", "-s", rs, ts, &xd]);
        let (xdt, xd_rss) = measure("xdelta3", &["-d", "-D", "-f", "-s", rs, &xd, &xo]);
        assert!(same_file(&tg, Path::new(&xo)));
        let xsize = std::fs::metadata(&xd).unwrap().len();
        let label = tg
            .file_name()
            .unwrap()
            .to_string_lossy()
            .chars()
            .take(26)
            .collect::<String>();
        for preset in ["default", "fast", "plain"] {
            let (od, oo) = (t("o.vcdiff"), t("o.out"));
            let (oe, oe_rss) = measure(me, &["--worker", "encode", preset, rs, ts, &od]);
            let (odt, od_rss) = measure(me, &["--worker", "decode", preset, rs, &od, &oo]);
            assert!(same_file(&tg, Path::new(&oo)), "ours -> ours differs");
            // The program must read what we write.
            let status = Command::new("xdelta3")
                .args(["-d", "-D", "-f", "-s", rs, &od, &xo])
                .status()
                .unwrap();
            assert!(
                status.success() && same_file(&tg, Path::new(&xo)),
                "ours -> xdelta3 differs"
            );
            // And we must read what it writes (timed above through the program).
            let (xod, _) = measure(me, &["--worker", "decode", preset, rs, &xd, &oo]);
            assert!(same_file(&tg, Path::new(&oo)), "xdelta3 -> ours differs");
            let osize = std::fs::metadata(&od).unwrap().len();
            let ms = |d: Duration| format!("{:.0}ms", d.as_secs_f64() * 1e3);
            println!(
                "{:<34} {:>10} {:>10} {:>7.4} {:>9} {:>9} {:>6.1}x {:>9} {:>9} {:>6.1}x {:>8}M {:>8}M",
                format!("{label} {preset}"),
                xsize,
                osize,
                osize as f64 / xsize as f64,
                ms(xe),
                ms(oe),
                xe.as_secs_f64() / oe.as_secs_f64(),
                ms(xdt),
                ms(odt),
                xdt.as_secs_f64() / odt.as_secs_f64(),
                xe_rss.max(xd_rss) / 1024,
                oe_rss.max(od_rss) / 1024,
            );
            println!(
                "{:<34} decoding xdelta3's delta: ours {} vs xdelta3 {} ({:.1}x); RSS enc {}M/{}M dec {}M/{}M",
                "",
                ms(xod),
                ms(xdt),
                xdt.as_secs_f64() / xod.as_secs_f64(),
                xe_rss / 1024,
                oe_rss / 1024,
                xd_rss / 1024,
                od_rss / 1024
            );
        }
    }
}
