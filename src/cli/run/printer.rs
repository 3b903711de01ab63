//! What commands print: result lines, warnings, progress, and the summary of a transfer.

use super::*;

/// Settings the command needs besides the client.
pub(super) struct Printer {
    pub(super) json: bool,
    pub(super) quiet: bool,
    /// Progress on stderr; hidden unless stderr is a terminal and output is for people.
    pub(super) progress: ProgressBar,
    /// What the client reports goes to `progress` through it.
    pub(super) reporter: std::sync::Arc<crate::cli::progress::BarProgress>,
    /// `mv`: transfer lines say `move`.
    pub(super) moving: bool,
    /// Why uploads saved little, told once per cause at the end.
    pub(super) advice: crate::cli::advice::Advice,
}

impl Printer {
    /// `verb`, or `move` when the command is `mv` (as `aws s3 mv` prints it).
    pub(super) fn verb<'a>(&self, v: &'a str) -> &'a str {
        verb(self.moving, v)
    }

    /// `no_progress`: `--no-progress`, results without the progress display.
    pub(super) fn new(json: bool, quiet: bool, no_progress: bool) -> Self {
        use std::io::IsTerminal;
        let progress = if json || quiet || no_progress || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        crate::cli::output::register_progress(&progress);
        Printer {
            json,
            quiet,
            reporter: std::sync::Arc::new(crate::cli::progress::BarProgress::new(progress.clone())),
            progress,
            moving: false,
            advice: Default::default(),
        }
    }

    /// One line of results on stdout, escaped for the terminal (see `output::escape`).
    pub(super) fn line(&self, s: impl AsRef<str>) {
        if !self.quiet && !self.json {
            self.progress.suspend(|| out_line(&escape(s.as_ref())));
        }
    }

    /// One line on stderr, escaped; shown even with `-q` and `--json` (warnings, failures).
    pub(super) fn warn(&self, s: impl AsRef<str>) {
        self.progress.suspend(|| err_line(&escape(s.as_ref())));
    }

    /// Shows a spinner with `message` while a single long operation runs.
    pub(super) fn working(&self, message: String) {
        self.progress.set_message(message);
        self.progress
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    /// Turns the spinner into a bar over the `bytes` of `files` files.
    pub(super) fn planned(&self, files: usize, bytes: u64) {
        self.reporter.planned(files, bytes);
        self.progress
            .enable_steady_tick(std::time::Duration::from_millis(250));
    }

    pub(super) fn done(&self) {
        self.progress.finish_and_clear();
    }

    /// Notes why an upload or copy saved little (see `advice`).
    pub(super) fn note(&self, report: &PutReport) {
        self.advice.note(report);
    }

    /// The causes of poor savings, one line each on stderr (not with `-q`).
    pub(super) fn advise(&self) {
        if !self.quiet {
            for line in self.advice.lines() {
                self.warn(line);
            }
        }
    }
}

impl Text for Printer {
    fn line(&self, s: &str) {
        Printer::line(self, s)
    }
    fn value(&self, s: &str) {
        self.progress.suspend(|| out_line(&escape(s)));
    }
    fn raw(&self, s: &str) {
        if !self.quiet && !self.json {
            self.progress.suspend(|| out_line(s));
        }
    }
    fn note(&self, s: &str) {
        if !self.quiet {
            Printer::warn(self, s)
        }
    }
    fn warn(&self, s: &str) {
        Printer::warn(self, s)
    }
}

impl Printer {
    /// Prints a result: its JSON document with `--json`, its text otherwise.
    pub(super) fn show(&self, report: &dyn Render) {
        if self.json {
            if let Some(Json(line)) = report.json() {
                out_line(&line);
            }
        } else {
            report.text(self);
        }
    }
}

/// `verb`, or `move` when the command is `mv` (as `aws s3 mv` prints it).
pub(super) fn verb(moving: bool, verb: &str) -> &str {
    if moving { "move" } else { verb }
}

/// One file event as it happens: a line (failures on stderr), or the event as JSON.
pub(super) struct EventLine<'a> {
    pub(super) event: &'a TransferEvent,
    /// `mv`: lines say `move`.
    pub(super) moving: bool,
}

impl Render for EventLine<'_> {
    fn json(&self) -> Option<Json> {
        Some(Json::of(self.event))
    }
    fn text(&self, out: &dyn Text) {
        let verb = |v| verb(self.moving, v);
        match self.event {
            TransferEvent::Uploaded { path, report } => out.line(&format!(
                "{}: {} to s3://{}/{} {}",
                verb("upload"),
                path.display(),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Downloaded { report } => out.line(&format!(
                "{}: s3://{}/{} to {}",
                verb("download"),
                report.bucket,
                report.key,
                report
                    .destination
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            )),
            TransferEvent::Copied { from, report } => out.line(&format!(
                "{}: {from} to s3://{}/{} {}",
                verb("copy"),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Deleted { target } => out.line(&format!("delete: {target}")),
            TransferEvent::WouldCopy { from, to } => {
                let direction = match (S3Url::is_s3(from), S3Url::is_s3(to)) {
                    (false, _) => "upload",
                    (true, false) => "download",
                    (true, true) => "copy",
                };
                out.line(&format!("(dryrun) {}: {from} to {to}", verb(direction)))
            }
            TransferEvent::WouldDelete { target } => {
                out.line(&format!("(dryrun) delete: {target}"))
            }
            // Failures always reach stderr, even with -q.
            TransferEvent::Failed { target, error } => {
                out.warn(&format!("failed: {target}: {error}"))
            }
            // Told on stderr as they happen, in either mode (see `event_printer`).
            TransferEvent::Planned { .. } | TransferEvent::Skipped { .. } => {}
        }
    }
}

/// Prints one line per file event (or one JSON object per event) as they happen, and
/// moves the progress display along.
pub(super) fn event_printer(p: &Printer) -> impl Fn(&TransferEvent) + Send + Sync + '_ {
    move |e: &TransferEvent| {
        match e {
            TransferEvent::Planned {
                copies,
                deletes,
                bytes,
            } => p.planned(copies + deletes, *bytes),
            // As `aws s3` words it; on stderr even with -q or --json (the exit code is 2).
            TransferEvent::Skipped { path, reason } => {
                p.warn(format!("warning: Skipping file {path}. {reason}"))
            }
            TransferEvent::Uploaded { report, .. } | TransferEvent::Copied { report, .. } => {
                p.note(report);
                p.reporter
                    .file_done(Some(&report.key), report.original_size)
            }
            TransferEvent::Downloaded { report } => {
                p.reporter.file_done(Some(&report.key), report.size)
            }
            _ => p.reporter.file_done(None, 0),
        }
        p.show(&EventLine {
            event: e,
            moving: p.moving,
        });
    }
}

/// The totals of a tree transfer: a line on stderr, or `{"summary", "dryrun"}`.
pub(super) struct SummaryLine<'a> {
    /// The command, as the line names it.
    pub(super) what: &'a str,
    pub(super) dry_run: bool,
    pub(super) summary: &'a TransferSummary,
}

impl Render for SummaryLine<'_> {
    fn json(&self) -> Option<Json> {
        Some(Json::of(
            &json!({ "summary": self.summary, "dryrun": self.dry_run }),
        ))
    }
    fn text(&self, out: &dyn Text) {
        let (what, s) = (self.what, self.summary);
        let mut line = match (what, self.dry_run) {
            ("rm", false) => format!("{what}: {} deleted", s.deleted),
            ("rm", true) => format!("(dryrun) {what}: would delete {}", s.deleted),
            (_, false) => format!(
                "{what}: {} copied, {} deleted, {} unchanged",
                s.copied, s.deleted, s.unchanged
            ),
            (_, true) => format!(
                "(dryrun) {what}: would copy {}, would delete {}, {} unchanged",
                s.copied, s.deleted, s.unchanged
            ),
        };
        if s.stored_bytes > 0 {
            line.push_str(&format!(
                "; {} uploaded as {} ({}% saved)",
                human_size(s.bytes),
                human_size(s.stored_bytes),
                saved(s.stored_bytes, s.bytes)
            ));
        }
        if s.skipped > 0 {
            line.push_str(&format!(", {} skipped", s.skipped));
        }
        if s.failed > 0 {
            line.push_str(&format!(", {} FAILED", s.failed));
        }
        out.note(&line);
    }
}

pub(super) fn finish(p: &Printer, what: &str, dry_run: bool, s: &TransferSummary) -> Result<()> {
    p.done();
    p.show(&SummaryLine {
        what,
        dry_run,
        summary: s,
    });
    p.advise();
    if s.failed > 0 {
        bail!("{} of the files failed (see the lines above)", s.failed);
    }
    if s.skipped > 0 {
        return Err(crate::cli::exit::CliError::Skipped(s.skipped).into());
    }
    Ok(())
}
