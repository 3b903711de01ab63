//! Why savings were poor, said once per cause: the uploads of a command are grouped by the
//! client's [`StoreReason`], and each cause gets one line on stderr with what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use deltaglider::{PutReport, StoreReason};

use super::output::human_size;

#[derive(Debug, Default)]
struct Cause {
    files: usize,
    bytes: u64,
    extensions: BTreeSet<String>,
    /// `s3://bucket/deltaspace/` of the files.
    deltaspaces: BTreeSet<String>,
    /// Names the references of those deltaspaces were made from.
    references: BTreeSet<String>,
}

/// The causes seen so far.
#[derive(Debug, Default)]
pub struct Advice {
    causes: Mutex<BTreeMap<StoreReason, Cause>>,
}

/// The extension of `name` as users write it (`.tar.gz`, `.whl`), or `(none)`.
pub fn extension(name: &str) -> String {
    let lower = deltaglider::keys::file_name(name).to_lowercase();
    for double in [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"] {
        if lower.ends_with(double) {
            return double.to_string();
        }
    }
    match lower.rfind('.') {
        Some(i) if i > 0 => lower[i..].to_string(),
        _ => "(none)".to_string(),
    }
}

/// At most three items, then how many more.
fn some(items: &BTreeSet<String>) -> String {
    let mut shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
    let more = items.len().saturating_sub(3);
    let more = format!("{more} more");
    if items.len() > 3 {
        shown.push(&more);
    }
    shown.join(", ")
}

fn files(n: usize, bytes: u64) -> String {
    let s = if n == 1 { "file" } else { "files" };
    format!("{n} {s} ({})", human_size(bytes))
}

impl Advice {
    /// Records why `report` (an upload or a copy) was stored as it was.
    pub fn note(&self, report: &PutReport) {
        let Some(reason) = report.reason else { return };
        let mut causes = self.causes.lock().unwrap_or_else(|e| e.into_inner());
        let cause = causes.entry(reason).or_default();
        cause.files += 1;
        cause.bytes += report.original_size;
        cause.extensions.insert(extension(&report.key));
        let space = deltaglider::keys::deltaspace(&report.key);
        cause.deltaspaces.insert(if space.is_empty() {
            format!("s3://{}/", report.bucket)
        } else {
            format!("s3://{}/{space}/", report.bucket)
        });
        if let Some(r) = &report.reference_name {
            cause.references.insert(r.clone());
        }
    }

    /// One line per cause worth explaining, in a fixed order. A new reference, `--no-delta`
    /// and empty files are what the user expects and get none.
    pub fn lines(&self) -> Vec<String> {
        let causes = self.causes.lock().unwrap_or_else(|e| e.into_inner());
        causes
            .iter()
            .filter_map(|(reason, c)| explain(*reason, c))
            .map(|line| format!("note: {line}"))
            .collect()
    }
}

fn explain(reason: StoreReason, c: &Cause) -> Option<String> {
    let n = files(c.files, c.bytes);
    let exts = some(&c.extensions);
    Some(match reason {
        StoreReason::NewReference | StoreReason::NoDelta | StoreReason::Empty => return None,
        StoreReason::NotEligible => {
            let add: Vec<&str> = c
                .extensions
                .iter()
                .filter(|e| e.starts_with('.'))
                .map(|e| &e[1..])
                .collect();
            let fix = if add.is_empty() {
                "give them an extension that is".to_string()
            } else {
                format!(
                    "if they are releases of one archive, add --delta-extensions +{} (or DG_DELTA_EXTENSIONS)",
                    add.join(",")
                )
            };
            let is = if c.extensions.len() > 1 {
                "are not delta-eligible extensions"
            } else {
                "is not a delta-eligible extension"
            };
            format!("{n} stored whole without trying a delta: {exts} {is}; {fix}")
        }
        StoreReason::Compressed => format!(
            "{n} stored whole: {exts} files are compressed as one stream, so a small change alters most of their bytes and their deltas are large; store the uncompressed archive (.tar) to get small deltas, or pass --no-delta to skip encoding them"
        ),
        StoreReason::MixedDeltaspace => format!(
            "{n} stored whole or with little saved: {} mixes products, and every file there is a delta against the first one stored ({}); give each product its own prefix (for example {}<product>/)",
            some(&c.deltaspaces),
            some(&c.references),
            c.deltaspaces.iter().next().map_or("", String::as_str),
        ),
        StoreReason::DeltaTooLarge => format!(
            "{n} stored whole: their deltas against the reference ({}) were not below --max-ratio; they differ too much from it (a new major version?): under a new prefix, the first of them becomes a new reference",
            some(&c.references)
        ),
        StoreReason::NotRebuilt => format!(
            "{n} stored whole: their compact form did not rebuild them exactly, so it was not written (the reason is in each file's report); this is a defect worth reporting with the file"
        ),
        StoreReason::LowSavings => format!(
            "{n} saved less than half: their deltas against the reference ({}) are large; files that differ this much from it are better under a new prefix, where the first becomes a new reference",
            some(&c.references)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltaglider::StoredAs;

    fn report(key: &str, reason: Option<StoreReason>, reference: Option<&str>) -> PutReport {
        PutReport {
            bucket: "b".into(),
            key: key.into(),
            stored_key: key.into(),
            stored_as: StoredAs::Direct,
            created_reference: false,
            original_size: 1024,
            stored_size: 1024,
            sha256: None,
            direct_reason: None,
            reason,
            reference_name: reference.map(str::to_string),
            expansion: None,
        }
    }

    #[test]
    fn one_line_per_cause_however_many_files() {
        let a = Advice::default();
        for i in 0..12 {
            a.note(&report(
                &format!("npm/pkg-1.{i}.tgz"),
                Some(StoreReason::Compressed),
                Some("pkg-1.0.tgz"),
            ));
        }
        a.note(&report("w/x-1.bin", Some(StoreReason::NotEligible), None));
        a.note(&report("w/y-1.bin", Some(StoreReason::NotEligible), None));
        a.note(&report("w/z-1.zip", Some(StoreReason::NewReference), None));
        a.note(&report("w/z-2.zip", None, Some("z-1.zip")));
        let lines = a.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("2 files (2.0 KiB)") && lines[0].contains("+bin"));
        assert!(
            lines[1]
                .starts_with("note: 12 files (12.0 KiB) stored whole: .tgz files are compressed")
        );
        assert!(lines[1].contains("--no-delta"));
    }

    #[test]
    fn mixed_deltaspaces_name_the_prefix_and_the_reference() {
        let a = Advice::default();
        a.note(&report(
            "rel/ansible-9.0.zip",
            Some(StoreReason::MixedDeltaspace),
            Some("botocore-1.0.zip"),
        ));
        let lines = a.lines();
        assert!(lines[0].contains("s3://b/rel/ mixes products"), "{lines:?}");
        assert!(lines[0].contains("(botocore-1.0.zip)"));
    }

    #[test]
    fn extensions_as_written() {
        assert_eq!(extension("a/b-1.0.tar.gz"), ".tar.gz");
        assert_eq!(extension("b-1.0.TGZ"), ".tgz");
        assert_eq!(extension("README"), "(none)");
        assert_eq!(extension(".hidden"), "(none)");
    }
}
