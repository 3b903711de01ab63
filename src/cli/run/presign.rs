//! `presign` and `purge`: shareable download URLs, and the clean-up of what they left.

use super::*;

pub(super) async fn presign(client: &Client, p: &Printer, args: PresignArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let signed = client
        .presigned_get_url(
            &url.bucket,
            &url.key,
            std::time::Duration::from_secs(args.expires_in),
        )
        .await?;
    p.show(&Doc {
        json: &signed,
        // The URL alone on stdout, even with -q, so that scripts can capture it.
        text: |out: &dyn Text| out.value(&signed.url),
    });
    Ok(())
}

pub(super) async fn purge(client: &Client, p: &Printer, args: PurgeArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.bucket)?;
    let options = deltaglider::PurgeOptions::default()
        .stale_upload_age(std::time::Duration::from_secs(args.uploads_older_than));
    let report = client.purge_with(&url.bucket, &options).await?;
    p.show(&Doc {
        json: &report,
        text: |out: &dyn Text| purged(out, &url.bucket, &report),
    });
    Ok(())
}

fn purged(out: &dyn Text, bucket: &str, report: &deltaglider::PurgeReport) {
    for key in report
        .deleted
        .iter()
        .chain(&report.references.orphans_removed)
    {
        out.line(&format!("delete: s3://{bucket}/{key}"));
    }
    for key in &report.references.restored {
        out.line(&format!("restore: s3://{bucket}/{key}"));
    }
    for u in &report.uploads_aborted {
        let begun = u
            .initiated
            .map(|t| format!(", begun {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        out.line(&format!(
            "abort: s3://{bucket}/{} (unfinished multipart upload {}{begun})",
            u.key, u.upload_id
        ));
    }
    out.line(&format!(
        "purge: {} expired deleted, {} kept; {} orphaned references removed, {} restored, {} retired copies removed; {} unfinished uploads aborted, {} kept",
        report.deleted.len(),
        report.kept,
        report.references.orphans_removed.len(),
        report.references.restored.len(),
        report.references.retired_removed,
        report.uploads_aborted.len(),
        report.uploads_kept
    ));
}
