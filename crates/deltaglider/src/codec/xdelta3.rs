//! The `xdelta3` program as a codec: the reference implementation every DeltaGlider bucket
//! was written with, and the oracle for any other codec.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::DeltaCodec;
use crate::error::{Error, Result};

/// File descriptor number under which the child sees the reference.
const SOURCE_FD: i32 = 3;
/// xdelta3 refuses source windows below this size.
const MIN_SOURCE_WINDOW: u64 = 512 * 1024;
/// Largest source window xdelta3 accepts.
const MAX_SOURCE_WINDOW: u64 = 1 << 31;

/// Runs `xdelta3` as a child process. The reference is handed over as an inherited file
/// descriptor (`-s /dev/fd/3`), the input on stdin and the output read from stdout, so no
/// path is ever re-opened by name.
#[derive(Debug, Clone)]
pub struct Xdelta3Codec {
    program: PathBuf,
}

impl Default for Xdelta3Codec {
    fn default() -> Self {
        Xdelta3Codec::new("xdelta3")
    }
}

impl Xdelta3Codec {
    /// Uses the given program (a name looked up on `PATH`, or a path).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Xdelta3Codec {
            program: program.into(),
        }
    }

    /// Checks that the program can be started, with the install hint if not.
    pub fn check_available(&self) -> Result<()> {
        match Command::new(&self.program)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.spawn_error(e)),
        }
    }

    fn spawn_error(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::CodecMissing {
                program: self.program.display().to_string(),
                hint: "install xdelta3 (Debian/Ubuntu: `apt-get install xdelta3`, Fedora: `dnf install xdelta`, macOS: `brew install xdelta`) or set DG_XDELTA3 to its path".into(),
            }
        } else {
            Error::Codec {
                operation: "start".into(),
                detail: format!("cannot run {}: {e}", self.program.display()),
            }
        }
    }

    /// `-B`: a power of two at least the reference size, so every match in the reference
    /// is found (xdelta3's default of 64 MiB misses far-moved blocks), capped at 2 GiB.
    fn source_window(reference: &File) -> Result<u64> {
        let len = reference
            .metadata()
            .map_err(|e| Error::io("cannot stat the reference", e))?
            .len();
        Ok(len
            .max(MIN_SOURCE_WINDOW)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SOURCE_WINDOW)
            .min(MAX_SOURCE_WINDOW))
    }

    fn run(
        &self,
        operation: &str,
        args: &[String],
        reference: &File,
        input: &File,
        out: &mut dyn Write,
    ) -> Result<()> {
        let mut input = input
            .try_clone()
            .map_err(|e| Error::io("cannot duplicate the input handle", e))?;
        input
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot rewind the input", e))?;
        let source_fd = reference.as_raw_fd();
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .arg("-s")
            .arg(format!("/dev/fd/{SOURCE_FD}"))
            .stdin(Stdio::from(input))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if source_fd == SOURCE_FD {
                    let flags = libc::fcntl(SOURCE_FD, libc::F_GETFD);
                    if flags < 0
                        || libc::fcntl(SOURCE_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(source_fd, SOURCE_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let copied = io::copy(&mut stdout, out);
        drop(stdout);
        let status = child
            .wait()
            .map_err(|e| Error::io("cannot wait for xdelta3", e))?;
        let stderr_text = stderr_reader.join().unwrap_or_default();
        if !status.success() {
            return Err(Error::Codec {
                operation: operation.into(),
                detail: format!(
                    "xdelta3 exited with {status}: {}",
                    stderr_text.trim().lines().last().unwrap_or("no message")
                ),
            });
        }
        copied.map_err(|e| Error::io(format!("cannot write the {operation} output"), e))?;
        Ok(())
    }
}

impl DeltaCodec for Xdelta3Codec {
    fn name(&self) -> &str {
        "xdelta3"
    }

    fn encode(&self, reference: &File, target: &File, out: &mut dyn Write) -> Result<()> {
        let window = Self::source_window(reference)?;
        // -D: raw-byte deltas, never xdelta3's external gzip/xz re-compression.
        // -A: no application header (it would only hold "/dev/fd/3").
        let args = ["-e", "-9", "-D", "-A", "-c", "-B", &window.to_string()].map(String::from);
        self.run("encode", &args, reference, target, out)
    }

    fn decode(&self, reference: &File, delta: &File, out: &mut dyn Write) -> Result<()> {
        let window = Self::source_window(reference)?;
        let header = super::read_header(delta, "decode")?;
        let mut args = vec![
            "-d".to_string(),
            "-c".into(),
            "-B".into(),
            window.to_string(),
        ];
        if header.uses_external_compression() {
            // Written by xdelta3 without -D from compressed files: reproducing the upload
            // needs the same external recompression; the caller's SHA-256 check decides.
            tracing::warn!(
                "delta was made from externally decompressed data; recompressing as xdelta3 does (result verified by SHA-256)"
            );
        } else {
            args.push("-D".into());
        }
        self.run("decode", &args, reference, delta, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn round_trip_through_the_program() {
        let codec = Xdelta3Codec::default();
        codec
            .check_available()
            .expect("the tests need xdelta3 (scripts/install-deps.sh)");
        let reference: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut target = reference.clone();
        target[1000] ^= 0xff;
        target.extend_from_slice(b"tail");
        let (r, t) = (file_with(&reference), file_with(&target));
        let mut delta = Vec::new();
        codec.encode(&r, &t, &mut delta).unwrap();
        assert!(delta.len() < 1000, "delta is {} bytes", delta.len());
        let mut out = Vec::new();
        codec.decode(&r, &file_with(&delta), &mut out).unwrap();
        assert_eq!(out, target);
    }

    #[test]
    fn corrupt_delta_is_an_error() {
        let codec = Xdelta3Codec::default();
        codec
            .check_available()
            .expect("the tests need xdelta3 (scripts/install-deps.sh)");
        let r = file_with(b"reference");
        let err = codec
            .decode(&r, &file_with(b"not a delta"), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("VCDIFF"), "{err}");
    }

    #[test]
    fn missing_program_names_the_fix() {
        let err = Xdelta3Codec::new("/nonexistent/xdelta3")
            .check_available()
            .unwrap_err();
        assert!(err.to_string().contains("apt-get install xdelta3"), "{err}");
    }
}
