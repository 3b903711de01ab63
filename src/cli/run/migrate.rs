//! `migrate`: bring objects of another tool (or plain S3) into the DeltaGlider format; the
//! library plans and copies, the command shows the plan and asks before copying.

use super::*;

pub(super) async fn migrate(
    engine: &Engine,
    p: &Printer,
    args: MigrateArgs,
    filters: Filters,
) -> Result<()> {
    let (src, dest) = (parse_s3(&args.source)?, parse_s3(&args.destination)?);
    let options = MigrateOptions::default()
        .preserve_prefix(!args.no_preserve_prefix)
        .filters(filters)
        .concurrency(
            args.concurrency
                .unwrap_or_else(deltaglider::transfer::default_concurrency),
        )
        .put(put_options(args.no_delta, args.max_ratio));
    let plan = engine.plan_migration(&src, &dest, &options).await?;
    p.line(format!(
        "{}migrate: {} to {}: {} to copy, {} already there",
        if args.dry_run { "(dryrun) " } else { "" },
        plan.source,
        plan.destination,
        plan.to_copy,
        plan.already_there
    ));
    if p.json {
        print_json(&json!({
            "event": "migration-planned",
            "source": plan.source.to_string(),
            "destination": plan.destination.to_string(),
            "to_copy": plan.to_copy,
            "already_there": plan.already_there,
            "dryrun": args.dry_run,
        }));
    }
    if args.dry_run {
        let options = options.dry_run(true);
        let summary = engine.migrate(&plan, &options, &event_printer(p)).await?;
        return finish(p, "migrate", true, &summary);
    }
    if plan.to_copy == 0 {
        return finish(p, "migrate", false, &plan.planned);
    }
    if !args.yes {
        confirm(plan.to_copy)?;
    }
    let summary = engine.migrate(&plan, &options, &event_printer(p)).await?;
    finish(p, "migrate", false, &summary)
}

/// Asks on the terminal before `count` objects are copied.
fn confirm(count: usize) -> Result<()> {
    use std::io::{IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "migrate copies {count} objects; confirm with --yes (no terminal to ask on)"
        )));
    }
    {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "Copy {count} objects? [y/N] ");
        let _ = stderr.flush();
    }
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("migration cancelled");
    }
    Ok(())
}
