//! `migrate`: bring objects of another tool (or plain S3) into the DeltaGlider format.

use super::*;

pub(super) async fn migrate(
    engine: &Engine,
    p: &Printer,
    args: MigrateArgs,
    filters: Filters,
) -> Result<()> {
    let (src, dest) = (parse_s3(&args.source)?, parse_s3(&args.destination)?);
    let src_prefix = if src.key.is_empty() || src.key.ends_with('/') {
        src.key.clone()
    } else {
        format!("{}/", src.key)
    };
    let mut dest_prefix = if dest.key.is_empty() || dest.key.ends_with('/') {
        dest.key.clone()
    } else {
        format!("{}/", dest.key)
    };
    if !args.no_preserve_prefix
        && let Some(last) = src_prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    {
        dest_prefix = format!("{dest_prefix}{last}/");
    }
    let put = put_options(args.no_delta);
    // Resumable: files already at the destination with the same size are skipped.
    let compare = CompareOptions {
        size_only: true,
        ..Default::default()
    };
    let transfer = TransferArgs {
        dryrun: true,
        concurrency: args.concurrency,
        follow_symlinks: false,
        no_follow_symlinks: false,
    };
    let plan_options = transfer_options(&transfer, filters.clone(), compare, put.clone());
    let quiet_sink = |_: &TransferEvent| {};
    let planned = engine
        .copy_tree(
            &src.bucket,
            &src_prefix,
            &dest.bucket,
            &dest_prefix,
            &plan_options,
            &quiet_sink,
        )
        .await?;
    p.line(format!(
        "{}migrate: s3://{}/{} to s3://{}/{}: {} to copy, {} already there",
        if args.dry_run { "(dryrun) " } else { "" },
        src.bucket,
        src_prefix,
        dest.bucket,
        dest_prefix,
        planned.copied,
        planned.unchanged
    ));
    if p.json {
        print_json(&json!({
            "event": "migration-planned",
            "source": format!("s3://{}/{}", src.bucket, src_prefix),
            "destination": format!("s3://{}/{}", dest.bucket, dest_prefix),
            "to_copy": planned.copied,
            "already_there": planned.unchanged,
            "dryrun": args.dry_run,
        }));
    }
    if args.dry_run {
        let summary = engine
            .copy_tree(
                &src.bucket,
                &src_prefix,
                &dest.bucket,
                &dest_prefix,
                &plan_options,
                &event_printer(p),
            )
            .await?;
        return finish(p, "migrate", true, &summary);
    }
    if planned.copied == 0 {
        return finish(p, "migrate", false, &planned);
    }
    if !args.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(usage(format!(
                "migrate copies {} objects; confirm with --yes (no terminal to ask on)",
                planned.copied
            )));
        }
        {
            use std::io::Write;
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "Copy {} objects? [y/N] ", planned.copied);
            let _ = stderr.flush();
        }
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("migration cancelled");
        }
    }
    let run = TransferArgs {
        dryrun: false,
        concurrency: args.concurrency,
        follow_symlinks: false,
        no_follow_symlinks: false,
    };
    let options = transfer_options(&run, filters, compare, put);
    let summary = engine
        .copy_tree(
            &src.bucket,
            &src_prefix,
            &dest.bucket,
            &dest_prefix,
            &options,
            &event_printer(p),
        )
        .await?;
    finish(p, "migrate", false, &summary)
}
