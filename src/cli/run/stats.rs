//! `stats`: objects, sizes and savings per deltaspace.

use super::*;

pub(super) async fn stats(client: &Client, p: &Printer, args: StatsArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.target)?;
    let mode = if args.sampled {
        deltaglider::StatsMode::Sampled { per_deltaspace: 8 }
    } else {
        deltaglider::StatsMode::Exact
    };
    let mut s = client.stats(&url.bucket, &url.key, mode).await?;
    if !args.detailed {
        s.deltaspaces.clear();
    }
    p.show(&Doc {
        json: &s,
        text: |out: &dyn Text| lines(out, &s, args.detailed),
    });
    Ok(())
}

fn lines(out: &dyn Text, s: &deltaglider::BucketStats, detailed: bool) {
    let approx = if s.estimated {
        " (estimated from a sample)"
    } else {
        ""
    };
    out.line(&format!("Bucket:          s3://{}/{}", s.bucket, s.prefix));
    out.line(&format!(
        "Objects:         {} ({} deltas, {} whole)",
        s.objects, s.deltas, s.whole
    ));
    out.line(&format!(
        "Original size:   {} ({} bytes){approx}",
        human_size(s.original_bytes),
        s.original_bytes
    ));
    out.line(&format!(
        "Stored size:     {} ({} bytes, references {})",
        human_size(s.stored_bytes),
        s.stored_bytes,
        human_size(s.reference_bytes)
    ));
    out.line(&format!("Savings:         {}%", pct(s.savings_percent)));
    if !s.orphaned_references.is_empty() {
        out.line(&format!(
            "Orphaned references ({}):",
            s.orphaned_references.len()
        ));
        for r in &s.orphaned_references {
            out.line(&format!("  s3://{}/{r}", s.bucket));
        }
    }
    if detailed {
        out.line("");
        out.line(&format!(
            "{:<40} {:>7} {:>7} {:>12} {:>12} {:>8}",
            "deltaspace", "deltas", "whole", "original", "stored", "savings"
        ));
        for d in &s.deltaspaces {
            let name = if d.deltaspace.is_empty() {
                "(root)"
            } else {
                d.deltaspace.as_str()
            };
            out.line(&format!(
                "{:<40} {:>7} {:>7} {:>12} {:>12} {:>7}%{}",
                name,
                d.deltas,
                d.whole,
                human_size(d.original_bytes),
                human_size(d.stored_bytes),
                saved(d.stored_bytes, d.original_bytes),
                if d.estimated { " ~" } else { "" }
            ));
        }
    }
}
