//! What commands print: result lines, warnings, progress, and the summary of a transfer.

use super::*;

/// Settings the command needs besides the engine.
pub(super) struct Printer {
    pub(super) json: bool,
    pub(super) quiet: bool,
    /// Progress on stderr; hidden unless stderr is a terminal and output is for people.
    pub(super) progress: ProgressBar,
    /// What the engine reports goes to `progress` through it.
    pub(super) reporter: std::sync::Arc<crate::cli::progress::BarProgress>,
    /// `mv`: transfer lines say `move`.
    pub(super) moving: bool,
    /// Why uploads saved little, told once per cause at the end.
    pub(super) advice: crate::cli::advice::Advice,
}

impl Printer {
    /// `verb`, or `move` when the command is `mv` (as `aws s3 mv` prints it).
    pub(super) fn verb<'a>(&self, verb: &'a str) -> &'a str {
        if self.moving { "move" } else { verb }
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

/// Prints one line per file event (or one JSON object per event) as they happen.
pub(super) fn event_printer(p: &Printer) -> impl Fn(&TransferEvent) + Send + Sync + '_ {
    move |e: &TransferEvent| {
        if let TransferEvent::Planned {
            copies,
            deletes,
            bytes,
        } = e
        {
            p.planned(copies + deletes, *bytes);
            if p.json {
                print_json(e);
            }
            return;
        }
        if let TransferEvent::Skipped { path, reason } = e {
            // As `aws s3` words it; on stderr even with -q or --json (the exit code is 2).
            p.warn(format!("warning: Skipping file {path}. {reason}"));
            if p.json {
                print_json(e);
            }
            return;
        }
        match e {
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
        if p.json {
            print_json(e);
            return;
        }
        match e {
            TransferEvent::Uploaded { path, report } => p.line(format!(
                "{}: {} to s3://{}/{} {}",
                p.verb("upload"),
                path.display(),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Downloaded { report } => p.line(format!(
                "{}: s3://{}/{} to {}",
                p.verb("download"),
                report.bucket,
                report.key,
                report
                    .destination
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            )),
            TransferEvent::Copied { from, report } => p.line(format!(
                "{}: {from} to s3://{}/{} {}",
                p.verb("copy"),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Deleted { target } => p.line(format!("delete: {target}")),
            TransferEvent::WouldCopy { from, to } => {
                let verb = match (S3Url::is_s3(from), S3Url::is_s3(to)) {
                    (false, _) => "upload",
                    (true, false) => "download",
                    (true, true) => "copy",
                };
                p.line(format!("(dryrun) {}: {from} to {to}", p.verb(verb)))
            }
            TransferEvent::WouldDelete { target } => p.line(format!("(dryrun) delete: {target}")),
            // Failures always reach stderr, even with -q.
            TransferEvent::Failed { target, error } => p.warn(format!("failed: {target}: {error}")),
            TransferEvent::Planned { .. } | TransferEvent::Skipped { .. } => {}
        }
    }
}

pub(super) fn finish(p: &Printer, what: &str, dry_run: bool, s: &TransferSummary) -> Result<()> {
    p.done();
    if p.json {
        print_json(&json!({ "summary": s, "dryrun": dry_run }));
    } else if !p.quiet {
        let mut line = match (what, dry_run) {
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
        p.warn(line);
    }
    p.advise();
    if s.failed > 0 {
        bail!("{} of the files failed (see the lines above)", s.failed);
    }
    if s.skipped > 0 {
        return Err(crate::cli::exit::CliError::Skipped(s.skipped).into());
    }
    Ok(())
}
