//! Throughput of split and rebuild against inflating the same stream, measured in one run:
//! `cargo bench -p deltaglider-archive [-- FILE.gz ...]`. Without files it uses a generated
//! 48 MB text, deflated by GNU gzip -9 (install gzip) and by flate2 at level 6.
//! Prints MB/s of plain data and the ratio to inflate (flate2), best of 3.

use std::io::{BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

fn best_of_3(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// The raw deflate stream of a single-member gzip file without optional header fields.
fn gzip_body(gz: &[u8]) -> &[u8] {
    assert_eq!(
        &gz[..4],
        &[0x1f, 0x8b, 8, 0],
        "a gzip file without optional fields"
    );
    &gz[10..]
}

fn generated() -> Vec<(String, Vec<u8>)> {
    let mut text = Vec::new();
    let mut i = 0u64;
    while text.len() < 48_000_000 {
        writeln!(
            text,
            "{{\"operation{}\": {{\"input\": \"Shape{}\", \"http\": {{\"method\": \"POST\", \"requestUri\": \"/{}\"}}}}}}",
            i % 5003,
            i % 211,
            i.wrapping_mul(2654435761) % 100_000
        )
        .unwrap();
        i += 1;
    }
    let mut cases = Vec::new();
    if let Ok(mut child) = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        let mut stdin = child.stdin.take().unwrap();
        let input = text.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        cases.push((
            "generated text, gzip -9".into(),
            gzip_body(&out.stdout).to_vec(),
        ));
    }
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&text).unwrap();
    cases.push(("generated text, flate2 level 6".into(), e.finish().unwrap()));
    cases
}

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases = if files.is_empty() {
        generated()
    } else {
        files
            .iter()
            .map(|f| (f.clone(), gzip_body(&std::fs::read(f).unwrap()).to_vec()))
            .collect()
    };
    for (name, deflate) in cases {
        let mut tokens = Vec::new();
        let s = deltaglider_archive::deflate::split(&deflate[..], &mut tokens).expect("splits");
        let plain_mb = s.plain_len as f64 / 1e6;
        let inflate = best_of_3(|| {
            let mut out = Vec::with_capacity(s.plain_len as usize);
            flate2::read::DeflateDecoder::new(&deflate[..])
                .read_to_end(&mut out)
                .unwrap();
        });
        let split = best_of_3(|| {
            let mut t = Vec::with_capacity(tokens.len());
            deltaglider_archive::deflate::split(&deflate[..], &mut t).unwrap();
        });
        let mut rebuilt = Vec::new();
        let rebuild = best_of_3(|| {
            rebuilt = Vec::with_capacity(deflate.len());
            deltaglider_archive::deflate::rebuild(&mut BufReader::new(&tokens[..]), &mut rebuilt)
                .unwrap();
        });
        assert_eq!(
            &rebuilt[..],
            &deflate[..s.deflate_len as usize],
            "rebuilt exactly"
        );
        println!(
            "{name}: deflate {:.1} MB, plain {plain_mb:.1} MB, token form {:.1} MB\n  \
             inflate {:.0} MB/s | split {:.0} MB/s ({:.2}x inflate) | rebuild {:.0} MB/s ({:.2}x inflate)",
            s.deflate_len as f64 / 1e6,
            s.tokens_len as f64 / 1e6,
            plain_mb / inflate,
            plain_mb / split,
            inflate / split,
            plain_mb / rebuild,
            inflate / rebuild,
        );
    }
}
