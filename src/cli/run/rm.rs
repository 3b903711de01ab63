//! `rm`: one object, or every object under a prefix (`rm -r`), in batches.

use super::*;

pub(super) async fn rm(client: &Client, p: &Printer, args: RmArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    if url.is_dir_like() {
        return Err(usage(format!(
            "{url} names a prefix, not an object (use --recursive)"
        )));
    }
    if deltaglider::keys::is_reference(&url.key) {
        return Err(deltaglider::Error::InvalidKey {
            bucket: url.bucket,
            key: url.key,
            reason: "references are removed automatically with their last delta".into(),
        }
        .into());
    }
    if args.dryrun {
        let exists = match client.head_object(&url.bucket, &url.key).await {
            Ok(_) => true,
            Err(deltaglider::Error::NotFound { .. }) if !args.fail_if_missing => false,
            Err(e) => return Err(e.into()),
        };
        p.show(&Doc {
            json: json!({
                "event": "would-delete",
                "target": url.to_string(),
                "exists": exists,
            }),
            text: |out: &dyn Text| {
                out.line(&format!(
                    "(dryrun) delete: {url}{}",
                    if exists { "" } else { " (does not exist)" }
                ))
            },
        });
        return Ok(());
    }
    let report = match client.delete_object(&url.bucket, &url.key).await {
        Ok(r) => r,
        // `aws s3 rm` of a missing key succeeds: the object is gone either way.
        Err(deltaglider::Error::NotFound { .. }) if !args.fail_if_missing => {
            p.show(&Doc {
                json: deltaglider::DeleteReport {
                    bucket: url.bucket.clone(),
                    key: url.key.clone(),
                    deleted: Vec::new(),
                    reference_removed: None,
                },
                text: |out: &dyn Text| out.line(&format!("delete: {url} (did not exist)")),
            });
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    p.show(&Doc {
        json: &report,
        text: |out: &dyn Text| {
            out.line(&format!("delete: s3://{}/{}", report.bucket, report.key));
            if let Some(r) = &report.reference_removed {
                out.line(&format!(
                    "delete: s3://{}/{r} (reference no longer used)",
                    report.bucket
                ));
            }
        },
    });
    Ok(())
}

pub(super) async fn rm_recursive(
    client: &Client,
    p: &Printer,
    args: RmArgs,
    filters: Filters,
) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let options = DeleteTreeOptions::default()
        .filters(filters)
        .dry_run(args.dryrun);
    let report = client
        .delete_tree(&url.bucket, &url.key, &options, &event_printer(p))
        .await?;
    finish(p, "rm", args.dryrun, &report.summary)
}
