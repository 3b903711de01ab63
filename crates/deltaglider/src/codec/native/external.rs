//! xdelta3's external compression, reproduced for decoding.
//!
//! Without `-D`, xdelta3 notices gzip/bzip2/xz/compress magic in its inputs, encodes the
//! *decompressed* bytes, and records the compressor in the application header. Decoding such a
//! delta means decompressing the reference with the same program, applying the delta, and
//! compressing the output again, which is what xdelta3 does. Whether the recompressed bytes
//! equal the original upload depends on the compressor's version and settings; the caller's
//! SHA-256 check decides.
//!
//! The programs run as children with pipes: no input or output is reopened by name, and the
//! decompressed reference lives in an anonymous temporary file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::{Child, Command, Stdio};

use super::NativeError;
use super::PositionalReader;

/// One external compressor xdelta3 knows, as in its `extcomp_types` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressor {
    /// The letter xdelta3 records in the application header.
    pub ident: u8,
    /// Program and arguments that compress stdin to stdout.
    pub compress: (&'static str, &'static [&'static str]),
    /// Program and arguments that decompress stdin to stdout.
    pub decompress: (&'static str, &'static [&'static str]),
}

const COMPRESSORS: [Compressor; 4] = [
    Compressor {
        ident: b'B',
        compress: ("bzip2", &["-c"]),
        decompress: ("bzip2", &["-dc"]),
    },
    Compressor {
        ident: b'G',
        compress: ("gzip", &["-c"]),
        decompress: ("gzip", &["-dc"]),
    },
    Compressor {
        ident: b'Z',
        compress: ("compress", &["-c"]),
        decompress: ("uncompress", &["-c"]),
    },
    Compressor {
        ident: b'Y',
        compress: ("xz", &["-c"]),
        decompress: ("xz", &["-dc"]),
    },
];

impl Compressor {
    /// The compressor xdelta3 records as `ident`.
    pub fn from_ident(ident: u8) -> Result<&'static Compressor, NativeError> {
        COMPRESSORS
            .iter()
            .find(|c| c.ident == ident)
            .ok_or_else(|| {
                NativeError::Unsupported(format!(
                    "external compressor '{}' in the application header",
                    char::from(ident).escape_default()
                ))
            })
    }

    /// The program's name, for messages.
    pub fn name(&self) -> &'static str {
        self.compress.0
    }
}

fn spawn(
    (program, args): (&'static str, &'static [&'static str]),
    stdout: Stdio,
) -> Result<Child, NativeError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                NativeError::Unsupported(format!(
                    "the delta was made from {program}-compressed data and rebuilding it needs the `{program}` program, which is not installed (Debian/Ubuntu: apt-get install {program})"
                ))
            } else {
                NativeError::Io(io::Error::new(e.kind(), format!("cannot start {program}: {e}")))
            }
        })
}

/// Waits for `child` and turns a failure exit into an error naming the program.
fn finish(mut child: Child, program: &str) -> Result<(), NativeError> {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(NativeError::Corrupt(format!(
            "{program} exited with {status}: {}",
            stderr.trim().lines().last().unwrap_or("no message")
        )))
    }
}

/// Feeds `input` (read from offset 0 with `pread`) to `child`'s stdin on a thread of `scope`.
fn feed<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    child: &mut Child,
    input: &'scope File,
) -> std::thread::ScopedJoinHandle<'scope, io::Result<u64>> {
    let mut stdin = child.stdin.take().expect("stdin is piped");
    scope.spawn(move || {
        let copied = io::copy(
            &mut PositionalReader {
                file: input,
                pos: 0,
            },
            &mut stdin,
        );
        drop(stdin);
        copied
    })
}

/// Decompresses `input` with `compressor` into an anonymous temporary file, rewound.
pub fn decompress_to_tempfile(compressor: &Compressor, input: &File) -> Result<File, NativeError> {
    let out = tempfile::tempfile()?;
    let mut child = spawn(compressor.decompress, Stdio::from(out.try_clone()?))?;
    let fed = std::thread::scope(|scope| feed(scope, &mut child, input).join());
    let fed = fed.map_err(|_| NativeError::Io(io::Error::other("feeder thread panicked")));
    finish(child, compressor.decompress.0)?;
    // A decompressor that stops reading early (bad input) breaks the pipe; its exit status,
    // checked first, says why.
    fed??;
    let mut out = out;
    io::Seek::rewind(&mut out)?;
    Ok(out)
}

/// Runs `produce` with a writer whose bytes go through `compressor`, and copies the
/// compressed result to `out`.
pub fn recompress(
    compressor: &Compressor,
    out: &mut dyn Write,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), NativeError> + Send,
) -> Result<(), NativeError> {
    let mut child = spawn(compressor.compress, Stdio::piped())?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (produced, copied) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut w = io::BufWriter::with_capacity(1 << 20, &mut stdin);
            let r = produce(&mut w).and_then(|()| w.flush().map_err(NativeError::from));
            drop(w);
            drop(stdin);
            r
        });
        let copied = io::copy(&mut stdout, out);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(NativeError::Io(io::Error::other("decoder thread panicked"))));
        (produced, copied)
    });
    finish(child, compressor.compress.0)?;
    produced?;
    copied?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.rewind().unwrap();
        f
    }

    #[test]
    fn idents_of_xdelta3() {
        assert_eq!(Compressor::from_ident(b'G').unwrap().name(), "gzip");
        assert_eq!(Compressor::from_ident(b'Y').unwrap().name(), "xz");
        let err = Compressor::from_ident(b'Q').unwrap_err().to_string();
        assert!(err.contains("'Q'"), "{err}");
    }

    #[test]
    fn gzip_round_trip_through_the_programs() {
        let gzip = Compressor::from_ident(b'G').unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
        let mut compressed = Vec::new();
        recompress(gzip, &mut compressed, |w| {
            w.write_all(&plain)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(&compressed[..2], b"\x1f\x8b");
        let mut back = Vec::new();
        decompress_to_tempfile(gzip, &file_with(&compressed))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn bad_input_names_the_program() {
        let gzip = Compressor::from_ident(b'G').unwrap();
        let err = decompress_to_tempfile(gzip, &file_with(b"not gzip at all"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gzip exited"), "{err}");
    }

    #[test]
    fn producer_error_wins() {
        let gzip = Compressor::from_ident(b'G').unwrap();
        let err = recompress(gzip, &mut Vec::new(), |_| {
            Err(NativeError::Corrupt("broken window".into()))
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("broken window"), "{err}");
    }
}
