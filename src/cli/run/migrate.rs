//! `migrate`: bring objects of another tool (or plain S3) into the DeltaGlider format; the
//! library plans and copies, the command shows the plan and asks before copying.

use super::*;
use deltaglider::MigrationPlan;

pub(super) async fn migrate(
    client: &Client,
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
                .unwrap_or_else(|| TransferOptions::default().concurrency),
        )
        .put(put_options(args.storage.no_delta));
    let plan = client.plan_migration(&src, &dest, &options).await?;
    p.show(&Planned {
        plan: &plan,
        dry_run: args.dry_run,
    });
    if args.dry_run {
        let options = options.dry_run(true);
        let summary = client.migrate(&plan, &options, &event_printer(p)).await?;
        return finish(p, "migrate", true, &summary);
    }
    if plan.to_copy == 0 {
        return finish(p, "migrate", false, &plan.planned);
    }
    if !args.yes {
        confirm(plan.to_copy)?;
    }
    let summary = client.migrate(&plan, &options, &event_printer(p)).await?;
    finish(p, "migrate", false, &summary)
}

/// What the migration will do, shown before it starts.
struct Planned<'a> {
    plan: &'a MigrationPlan,
    dry_run: bool,
}

impl Render for Planned<'_> {
    fn text(&self, out: &dyn Text) {
        out.line(&format!(
            "{}migrate: {} to {}: {} to copy, {} already there",
            if self.dry_run { "(dryrun) " } else { "" },
            self.plan.source,
            self.plan.destination,
            self.plan.to_copy,
            self.plan.already_there
        ));
    }
    fn json(&self) -> Option<Json> {
        Some(Json::of(&json!({
            "event": "migration-planned",
            "source": self.plan.source.to_string(),
            "destination": self.plan.destination.to_string(),
            "to_copy": self.plan.to_copy,
            "already_there": self.plan.already_there,
            "dryrun": self.dry_run,
        })))
    }
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
