//! A 6 GiB object through `deltaglider serve`: the aws CLI uploads it in parts and reads it
//! back by ranges, the `deltaglider` CLI downloads it too, byte-exact, while the server's
//! peak memory stays far below the object's size.
//!
//! It writes about three times the object's size to disk for a while (the spooled parts,
//! the library's private copy, the stored object), so it runs where there is room for
//! that: `DG_BIG_SIZE` (bytes) sets the size, `DG_BIG_BACKENDS=local,s3` the backends
//! (the local store by default; the S3 server's disk takes the object once more).
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::Stdio;

use cli_support::{Backend, Dg, support};
use serve_support::{Serve, client_bin};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
/// The server's peak resident memory must stay under this, whatever the object's size.
const RSS_BOUND: u64 = 512 * MIB;

fn size() -> u64 {
    std::env::var("DG_BIG_SIZE")
        .ok()
        .map(|v| v.parse().expect("DG_BIG_SIZE in bytes"))
        .unwrap_or(6 << 30)
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    st.f_bavail * st.f_frsize
}

/// A sparse file of `size` bytes with 1 MiB of noise every 256 MiB (so that a misplaced
/// range shows), and its SHA-256.
fn sparse_file(path: &std::path::Path, size: u64) -> String {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut at = 0;
    let mut seed = 1;
    while at + MIB <= size {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&support::noise(MIB as usize, seed)).unwrap();
        at += 256 * MIB;
        seed += 1;
    }
    drop(f);
    sha256_of(std::fs::File::open(path).unwrap())
}

fn sha256_of(mut r: impl Read) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

#[test]
fn a_6_gib_multipart_upload_round_trips_in_bounded_memory() {
    let Some(bin) = client_bin() else { return };
    let size = size();
    let backends = std::env::var("DG_BIG_BACKENDS").unwrap_or_else(|_| "local".into());
    let mut dgs = Vec::new();
    if backends.split(',').any(|b| b == "local") {
        dgs.push(Dg::local());
    }
    if backends.split(',').any(|b| b == "s3") {
        dgs.extend(Dg::s3("serve-big"));
    }
    for dg in dgs {
        let free = free_bytes(dg.dir.path());
        if free < 3 * size + (2 << 30) {
            eprintln!(
                "\n*** SKIPPED [{}]: {} GiB free, a {} GiB round trip needs {} GiB ***\n",
                dg.name(),
                free >> 30,
                size >> 30,
                (3 * size + (2 << 30)) >> 30
            );
            continue;
        }
        let source = dg.work().join("disk-image.img");
        let sha = sparse_file(&source, size);
        // The spool on the test's own disk, not a small /tmp.
        let spool = dg.dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let serve = Serve::start_with(&dg, &bin, &["--spool-dir", spool.to_str().unwrap()]);
        let url = dg.url("images/disk-image.img");

        // Uploaded in 64 MiB parts, ten at a time (the aws CLI's concurrency).
        let config = serve.home_path().join("config");
        std::fs::write(
            &config,
            "[default]\ns3 =\n  multipart_chunksize = 64MB\n  multipart_threshold = 64MB\n",
        )
        .unwrap();
        serve.aws_ok(&["s3", "cp", source.to_str().unwrap(), &url]);
        let after_upload = serve.peak_rss();

        let ls = serve.aws_ok(&["s3", "ls", &dg.url("images/")]);
        assert!(ls.contains(&format!(" {size} disk-image.img")), "{ls}");
        // Read back by the aws CLI (ranges of 64 MiB) into this process's hasher.
        let mut child = serve
            .client("aws", (serve_support::KEY_ID, serve_support::SECRET))
            .args(["--endpoint-url", &serve.endpoint, "s3", "cp", &url, "-"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let back = sha256_of(child.stdout.take().unwrap());
        assert!(child.wait().unwrap().success());
        assert_eq!(back, sha, "[{}] aws CLI download", dg.name());
        let peak = serve.peak_rss();
        assert!(
            peak < RSS_BOUND,
            "[{}] serve peaked at {} MiB (upload {} MiB) for a {} MiB object",
            dg.name(),
            peak / MIB,
            after_upload / MIB,
            size / MIB
        );
        assert!(serve.stop().success());
        // Nothing of the upload is left in the spool.
        let left: Vec<_> = walk(&spool);
        assert!(left.is_empty(), "spool after stop: {left:?}");

        // The CLI reads what serve stored.
        let mut cp = dg.command(&["cp", &url, "-"]);
        let mut child = cp.stdout(Stdio::piped()).spawn().unwrap();
        let back = sha256_of(child.stdout.take().unwrap());
        assert!(child.wait().unwrap().success());
        assert_eq!(back, sha, "[{}] deltaglider cp download", dg.name());
        if let Backend::S3 = dg.backend {
            dg.ok(&["rm", &url]);
        }
        eprintln!(
            "[{}] {} MiB through serve: upload peak {} MiB, overall {} MiB",
            dg.name(),
            size / MIB,
            after_upload / MIB,
            peak / MIB
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
