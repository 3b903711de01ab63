//! Peak memory of uploads against a large reference, through the binary: the encoder's
//! memory is bounded whatever the reference's size (docs/format.md, "Memory"), for a file
//! that shares content with part of the reference and for one that shares none.
//!
//! The 400 MiB reference is generated in the test's temp dir and removed with it.

mod cli_support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use cli_support::Dg;

const MIB: u64 = 1 << 20;
const REFERENCE: u64 = 400 * MIB;
const UPLOAD: u64 = 16 * MIB;
/// Peak RSS allowed for an upload against the reference. Without the bound it was about
/// 340 MiB (related file) and 710 MiB (unrelated file: candidates all over the reference
/// brought most of it into memory); with it, about 110 and 140 MiB: the index (64 MiB),
/// the upload's mapping, two windows and the reference pages read between two releases.
const MAX_RSS: u64 = 176 * MIB;

/// Writes `len` bytes of xorshift noise, 8 MiB at a time.
fn write_noise(path: &Path, len: u64, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut w = BufWriter::new(File::create(path).unwrap());
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
}

/// Runs `cp FILE s3://bucket/rel/` and returns its stdout and its own peak RSS in bytes
/// (from `wait4`, which reports that child alone).
fn cp_peak_rss(dg: &Dg, file: &str) -> (String, u64) {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    // Reaped by wait4 below.
    #[allow(clippy::zombie_processes)]
    let child = dg
        .command(&["cp", &dg.path(file), &dg.url("rel/")])
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI; the kernel fills `usage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let read = |f: &File| {
        let mut s = String::new();
        let mut f = f;
        std::io::Seek::rewind(&mut f).unwrap();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        s
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "cp {file} failed: {}",
        read(&err)
    );
    // ru_maxrss is in KiB on Linux.
    (read(&out), usage.ru_maxrss as u64 * 1024)
}

#[test]
fn uploads_against_a_400_mib_reference_stay_within_bounded_memory() {
    let dg = Dg::local();
    let work = dg.work();
    let reference = work.join("base.zip");
    write_noise(&reference, REFERENCE, 11);
    // Related: 16 MiB from the reference's second half, 16 bytes changed in each MiB.
    let mut related = vec![0u8; UPLOAD as usize];
    File::open(&reference)
        .unwrap()
        .read_exact_at(&mut related, 300 * MIB)
        .unwrap();
    for mib in related.chunks_mut(MIB as usize) {
        mib[1000..1016].copy_from_slice(b"changed 16 bytes");
    }
    std::fs::write(work.join("related.zip"), &related).unwrap();
    drop(related);
    write_noise(&work.join("unrelated.zip"), UPLOAD, 12);

    let (out, first) = cp_peak_rss(&dg, "base.zip");
    assert!(out.contains("new reference"), "{out}");
    let (out, related) = cp_peak_rss(&dg, "related.zip");
    assert!(out.contains("delta"), "{out}");
    let stored = dg
        .runtime
        .block_on(dg.store.head_object(&dg.bucket, "rel/related.zip.delta"))
        .unwrap()
        .expect("the related file is stored as a delta")
        .size;
    assert!(stored < 64 << 10, "related delta is {stored} bytes");
    let (out, unrelated) = cp_peak_rss(&dg, "unrelated.zip");
    assert!(out.contains("stored whole"), "{out}");

    let mib = |b: u64| b / MIB;
    eprintln!(
        "peak RSS: reference {} MiB, related {} MiB, unrelated {} MiB",
        mib(first),
        mib(related),
        mib(unrelated)
    );
    for (what, rss) in [("related", related), ("unrelated", unrelated)] {
        assert!(
            rss < MAX_RSS,
            "{what} 16 MiB upload against a 400 MiB reference peaked at {} MiB (limit {})",
            mib(rss),
            mib(MAX_RSS)
        );
    }
}
