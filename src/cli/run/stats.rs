//! `stats`: objects, sizes and savings per deltaspace.

use super::*;

pub(super) async fn stats(engine: &Engine, p: &Printer, args: StatsArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.target)?;
    let mode = if args.sampled {
        deltaglider::stats::StatsMode::Sampled { per_deltaspace: 8 }
    } else {
        deltaglider::stats::StatsMode::Exact
    };
    let mut s = engine.stats(&url.bucket, &url.key, mode).await?;
    if !args.detailed {
        s.deltaspaces.clear();
    }
    if p.json {
        print_json(&s);
        return Ok(());
    }
    let approx = if s.estimated {
        " (estimated from a sample)"
    } else {
        ""
    };
    p.line(format!("Bucket:          s3://{}/{}", s.bucket, s.prefix));
    p.line(format!(
        "Objects:         {} ({} deltas, {} whole)",
        s.objects, s.deltas, s.whole
    ));
    p.line(format!(
        "Original size:   {} ({} bytes){approx}",
        human_size(s.original_bytes),
        s.original_bytes
    ));
    p.line(format!(
        "Stored size:     {} ({} bytes, references {})",
        human_size(s.stored_bytes),
        s.stored_bytes,
        human_size(s.reference_bytes)
    ));
    p.line(format!("Savings:         {}%", pct(s.savings_percent)));
    if !s.orphaned_references.is_empty() {
        p.line(format!(
            "Orphaned references ({}):",
            s.orphaned_references.len()
        ));
        for r in &s.orphaned_references {
            p.line(format!("  s3://{}/{r}", s.bucket));
        }
    }
    if args.detailed {
        p.line("");
        p.line(format!(
            "{:<40} {:>7} {:>7} {:>12} {:>12} {:>8}",
            "deltaspace", "deltas", "whole", "original", "stored", "savings"
        ));
        for d in &s.deltaspaces {
            let name = if d.deltaspace.is_empty() {
                "(root)"
            } else {
                d.deltaspace.as_str()
            };
            p.line(format!(
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
    Ok(())
}
