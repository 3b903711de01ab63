//! Expansion and restore throughput of one file, in MB/s of the original:
//! `cargo run --release -p deltaglider-archive --example throughput -- FILE...`
//! Restore is timed on one thread and with the default parallelism.

use std::io::Cursor;
use std::time::Instant;

use deltaglider_archive::{Limits, Parallelism, expand, restore_with};

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("a readable file");
        let mb = bytes.len() as f64 / 1e6;
        let t = Instant::now();
        let mut expanded = Vec::new();
        let report = expand(Cursor::new(&bytes[..]), &mut expanded, &Limits::default())
            .expect("every file expands");
        let expand_s = t.elapsed().as_secs_f64();
        let mut restore_s = Vec::new();
        for parallelism in [Parallelism::sequential(), Parallelism::default()] {
            let t = Instant::now();
            let mut back = Vec::with_capacity(bytes.len());
            restore_with(&expanded[..], &mut back, &parallelism).expect("it restores");
            restore_s.push(t.elapsed().as_secs_f64());
            assert!(back == bytes, "{path}: restored bytes differ");
        }
        println!(
            "{path}: {mb:.1} MB, expanded {:.1} MB ({} streams, {} plain, {} nested); \
             expand {:.2} s = {:.1} MB/s; restore 1 thread {:.2} s = {:.1} MB/s, \
             {} workers {:.2} s = {:.1} MB/s",
            expanded.len() as f64 / 1e6,
            report.streams,
            report.plain_streams,
            report.nested_streams,
            expand_s,
            mb / expand_s,
            restore_s[0],
            mb / restore_s[0],
            Parallelism::default().workers,
            restore_s[1],
            mb / restore_s[1],
        );
    }
}
