//! `presign` and `purge`: shareable download URLs, and the clean-up of what they left.

use super::*;

pub(super) async fn presign(engine: &Engine, p: &Printer, args: PresignArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let signed = engine
        .presign_get(
            &url.bucket,
            &url.key,
            std::time::Duration::from_secs(args.expires_in),
        )
        .await?;
    if p.json {
        print_json(&signed);
    } else {
        // The URL alone on stdout, so that scripts can capture it.
        out_line(&escape(&signed.url));
    }
    Ok(())
}

pub(super) async fn purge(engine: &Engine, p: &Printer, args: PurgeArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.bucket)?;
    let report = engine.purge(&url.bucket).await?;
    if p.json {
        print_json(&report);
    }
    for key in report
        .deleted
        .iter()
        .chain(&report.references.orphans_removed)
    {
        p.line(format!("delete: s3://{}/{key}", url.bucket));
    }
    for key in &report.references.restored {
        p.line(format!("restore: s3://{}/{key}", url.bucket));
    }
    p.line(format!(
        "purge: {} expired deleted, {} kept; {} orphaned references removed, {} restored, {} retired copies removed",
        report.deleted.len(),
        report.kept,
        report.references.orphans_removed.len(),
        report.references.restored.len(),
        report.references.retired_removed
    ));
    Ok(())
}
