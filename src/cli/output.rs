//! Human and JSON rendering of results.

use chrono::{DateTime, Local, Utc};

/// `1.5 MiB`-style sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} Bytes");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Local time as `aws s3 ls` prints it.
pub fn listing_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
    .unwrap_or_else(|| " ".repeat(19))
}

/// Percentage of `part` in `whole`, for savings lines.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// A percentage with one decimal, never `-0.0` (a tiny loss that rounds to zero is zero).
pub fn pct(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    // `+ 0.0` turns -0.0 into 0.0.
    format!("{:.1}", rounded + 0.0)
}

/// The share of `original` saved by storing `stored` bytes, as [`pct`] formats it.
pub fn saved(stored: u64, original: u64) -> String {
    if original == 0 {
        return pct(0.0);
    }
    pct(100.0 - percent(stored, original))
}

/// Text for a terminal: keys and file names can hold anything, and a control character or
/// escape sequence printed raw would drive the terminal (move the cursor, rewrite lines,
/// change the title). Every C0 control, DEL and C1 control is written as `\xNN`, the
/// invisible Unicode direction and line-separator marks as `\u{NNNN}`, and a backslash as
/// `\\`, so the shown text is unambiguous. JSON output keeps the exact strings.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    fn needs(c: char) -> bool {
        c == '\\'
            || c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }
    if !s.chars().any(needs) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if needs(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// The first error writing standard output; later writes are skipped.
static STDOUT_ERROR: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);

/// Writes one line to standard output. A write error (a full disk, a closed descriptor) is
/// kept for [`stdout_result`] instead of panicking as `println!` does; a reader that went
/// away (`| head`) ends the process quietly through SIGPIPE, as for other Unix tools.
pub fn out_line(line: &str) {
    use std::io::Write;
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        *failed = Some(e);
    }
}

/// Writes bytes to standard output, with the error handling of [`out_line`].
pub fn out_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        *failed = Some(e);
    }
}

/// Whether everything printed reached standard output.
pub fn stdout_result() -> Result<(), super::exit::CliError> {
    use std::io::Write;
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none()
        && let Err(e) = std::io::stdout().flush()
    {
        *failed = Some(e);
    }
    match failed.take() {
        Some(e) => Err(super::exit::CliError::Stdout(e)),
        None => Ok(()),
    }
}

/// The progress bar on screen, so that a signal can clear it before the process exits.
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Remembers the bar that [`clear_progress`] must clear.
pub fn register_progress(bar: &indicatif::ProgressBar) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
}

/// Runs `f` (which writes to the terminal) with the progress bar taken off the screen, and
/// draws it again afterwards: log lines never overlap a bar frame.
pub fn suspend_progress<R>(f: impl FnOnce() -> R) -> R {
    let bar = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// Standard error for log lines: each event is collected, then written in one piece with
/// the progress bar suspended (see [`suspend_progress`]).
pub struct LogWriter;

/// One log event on its way to standard error.
pub struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        use std::io::Write;
        if !self.0.is_empty() {
            suspend_progress(|| {
                let _ = std::io::stderr().lock().write_all(&self.0);
            });
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// Clears the progress bar (on Ctrl-C: no frame is left on the terminal).
pub fn clear_progress() {
    if let Some(bar) = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Writes one line to standard error; if even that fails there is nobody left to tell.
pub fn err_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 Bytes");
        assert_eq!(human_size(1023), "1023 Bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(1, 0), 0.0);
        assert_eq!(saved(1001, 1000), "-0.1");
        assert_eq!(saved(100_001, 100_000), "0.0", "never -0.0");
        assert_eq!(pct(-0.04), "0.0");
        assert_eq!(saved(0, 0), "0.0");
        assert_eq!(saved(1, 4), "75.0");
    }

    #[test]
    fn hostile_text_is_escaped_one_way() {
        assert_eq!(escape("app/v1.zip"), "app/v1.zip");
        assert_eq!(
            escape("a\x1b[2Jb\rc\nd\x07e"),
            "a\\x1b[2Jb\\x0dc\\x0ad\\x07e"
        );
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(
            escape("caf\u{e9}"),
            "caf\u{e9}",
            "printable non-ASCII stays"
        );
    }
}
