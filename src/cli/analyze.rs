//! `deltaglider analyze`: the estimate as a short summary (the deltaspaces that would store
//! the most, then the total) and warnings about what keeps savings low.

use std::path::Path;

use anyhow::Result;
use deltaglider::{AnalyzeReport, AnalyzeSource, DeltaspaceEstimate};
use deltaglider::{Client, S3Url};
use indicatif::ProgressBar;

use super::args::AnalyzeArgs;
use super::exit::usage;
use super::output::{human_size, pct};

/// Runs the estimate, with a spinner while it encodes.
pub async fn run(
    client: &Client,
    progress: &ProgressBar,
    args: &AnalyzeArgs,
) -> Result<AnalyzeReport> {
    let url = S3Url::is_s3(&args.target)
        .then(|| S3Url::parse(&args.target))
        .transpose()?;
    let source = match &url {
        Some(u) => AnalyzeSource::Bucket {
            bucket: &u.bucket,
            prefix: &u.key,
        },
        None => {
            let dir = Path::new(&args.target);
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(usage(format!(
                        "{} is not a directory (analyze takes a directory or s3://bucket[/prefix])",
                        args.target
                    )));
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot analyze {}", args.target))
                    );
                }
            }
            AnalyzeSource::Local(dir)
        }
    };
    progress.set_message(format!(
        "analyzing {} (encoding a sample)",
        super::output::escape(&args.target)
    ));
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    let report = client.analyze(source, args.sample as usize).await;
    progress.finish_and_clear();
    Ok(report?)
}

fn name(d: &DeltaspaceEstimate) -> &str {
    if d.deltaspace.is_empty() {
        "(root)"
    } else {
        &d.deltaspace
    }
}

/// The lines on stdout: the `limit` deltaspaces that would store the most (all of them
/// with `None`), how many more there are, and the total.
pub fn summary(report: &AnalyzeReport, limit: Option<usize>) -> Vec<String> {
    let mut spaces: Vec<&DeltaspaceEstimate> = report.deltaspaces.iter().collect();
    spaces.sort_by(|a, b| {
        b.estimated_stored_bytes
            .cmp(&a.estimated_stored_bytes)
            .then_with(|| a.deltaspace.cmp(&b.deltaspace))
    });
    let shown = limit.unwrap_or(spaces.len()).min(spaces.len());
    let mut lines: Vec<String> = spaces[..shown]
        .iter()
        .map(|d| {
            let mut flags = Vec::new();
            if !d.mixed_products.is_empty() {
                flags.push(format!("mixes {}", d.mixed_products.join(", ")));
            }
            if d.compressed_files > 0 {
                flags.push(format!("{} compressed", d.compressed_files));
            }
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", flags.join("; "))
            };
            format!(
                "{}: {} files ({} eligible, {} encoded), {} -> ~{}{flags}",
                name(d),
                d.files,
                d.eligible,
                d.sampled,
                human_size(d.original_bytes),
                human_size(d.estimated_stored_bytes)
            )
        })
        .collect();
    if shown < spaces.len() {
        let rest = &spaces[shown..];
        lines.push(format!(
            "... {} more deltaspaces, {} -> ~{} (--all lists them)",
            rest.len(),
            human_size(rest.iter().map(|d| d.original_bytes).sum()),
            human_size(rest.iter().map(|d| d.estimated_stored_bytes).sum())
        ));
    }
    lines.push(format!(
        "{}: {} files in {} deltaspaces, {} would be stored as about {} ({}% saved)",
        report.source,
        report.files,
        report.deltaspaces.len(),
        human_size(report.original_bytes),
        human_size(report.estimated_stored_bytes),
        pct(report.estimated_savings_percent)
    ));
    lines
}

/// One warning per cause of poor savings, with what to do (stderr).
pub fn warnings(report: &AnalyzeReport) -> Vec<String> {
    let mut lines = Vec::new();
    if report.mixed_deltaspaces > 0 {
        let mixed: Vec<String> = report
            .deltaspaces
            .iter()
            .filter(|d| !d.mixed_products.is_empty())
            .take(3)
            .map(|d| format!("{} ({})", name(d), d.mixed_products.join(", ")))
            .collect();
        let more = report.mixed_deltaspaces.saturating_sub(mixed.len());
        lines.push(format!(
            "warning: {} deltaspace(s) mix products: {}{}; every file there would be a delta against the first, and deltas between products are large: give each product its own prefix",
            report.mixed_deltaspaces,
            mixed.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ));
    }
    if report.compressed_files > 0 {
        let exts: std::collections::BTreeSet<String> = report
            .deltaspaces
            .iter()
            .filter(|d| d.compressed_files > 0)
            .map(|d| d.deltaspace.clone())
            .collect();
        lines.push(format!(
            "warning: {} file(s) in {} deltaspace(s) are compressed as one stream (.tgz, .gz, .xz, ...): a small change alters most of their bytes, so their deltas are large; store the uncompressed archives (.tar) instead",
            report.compressed_files,
            exts.len()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(name: &str, original: u64, stored: u64) -> DeltaspaceEstimate {
        DeltaspaceEstimate {
            deltaspace: name.into(),
            files: 2,
            eligible: 2,
            sampled: 1,
            original_bytes: original,
            estimated_stored_bytes: stored,
            ..Default::default()
        }
    }

    #[test]
    fn the_largest_first_then_the_rest_in_one_line() {
        let report = AnalyzeReport {
            source: "dir".into(),
            files: 2600,
            deltaspaces: (0..1300)
                .map(|i| space(&format!("s{i:04}"), 1000, i))
                .collect(),
            ..Default::default()
        };
        let lines = summary(&report, Some(10));
        assert_eq!(lines.len(), 12, "ten, the rest, the total");
        assert!(lines[0].starts_with("s1299: "), "{}", lines[0]);
        assert!(
            lines[10].starts_with("... 1290 more deltaspaces"),
            "{}",
            lines[10]
        );
        assert!(lines[11].contains("2600 files in 1300 deltaspaces"));
        assert_eq!(summary(&report, None).len(), 1301);
    }

    #[test]
    fn mixed_and_compressed_are_flagged() {
        let mut mixed = space("rel", 10, 10);
        mixed.mixed_products = vec!["ansible".into(), "botocore".into()];
        let mut npm = space("npm", 10, 9);
        npm.compressed_files = 2;
        let report = AnalyzeReport {
            deltaspaces: vec![mixed, npm],
            mixed_deltaspaces: 1,
            compressed_files: 2,
            ..Default::default()
        };
        let lines = summary(&report, Some(10));
        assert!(lines[0].ends_with("[mixes ansible, botocore]"), "{lines:?}");
        assert!(lines[1].ends_with("[2 compressed]"), "{lines:?}");
        let w = warnings(&report);
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("rel (ansible, botocore)") && w[0].contains("own prefix"));
        assert!(w[1].starts_with("warning: 2 file(s) in 1 deltaspace(s) are compressed"));
        assert!(warnings(&AnalyzeReport::default()).is_empty());
    }
}
