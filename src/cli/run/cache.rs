//! `cache`: the reference cache's own administration.

use super::*;

/// `deltaglider cache ...`: works on the configured cache without connecting to storage.
pub fn cache(
    cli: &Cli,
    mut config: Config,
    command: &crate::cli::args::CacheCommand,
) -> Result<()> {
    use crate::cli::args::CacheCommand;
    let p = Printer::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.connection.no_progress,
    );
    if let CacheCommand::Migrate { yes } = command {
        let found = deltaglider::cache::migrate::find_legacy_caches();
        if p.json && !yes {
            print_json(&json!({ "found": found }));
        }
        for c in &found {
            p.line(format!(
                "{} ({}){}",
                c.path.display(),
                serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", c.kind)),
                c.reason
                    .as_deref()
                    .map(|r| format!(" (kept: {r})"))
                    .unwrap_or_default()
            ));
        }
        if !yes {
            p.line(format!("{} old cache(s) found; run with --yes to delete them (their contents are never read)", found.len()));
            return Ok(());
        }
        let removed = deltaglider::cache::migrate::remove_legacy_caches(&found);
        if p.json {
            print_json(&json!({ "found": found, "removed": removed }));
        }
        let failed: Vec<_> = removed.iter().filter(|r| r.error.is_some()).collect();
        for r in &removed {
            match &r.error {
                Some(e) => p.warn(format!("failed: {}: {e}", r.path.display())),
                None if r.removed => p.line(format!("delete: {}", r.path.display())),
                None => {}
            }
        }
        if !failed.is_empty() {
            bail!("{} old cache(s) could not be deleted", failed.len());
        }
        return Ok(());
    }
    // Inspecting the cache must not start a watcher that reacts to our own verification.
    if let deltaglider::config::CacheConfig::Persistent(p) = &mut config.cache {
        p.monitor = false;
    }
    let cache = config.open_cache()?;
    match command {
        CacheCommand::Info => {
            let info = cache.info()?;
            if p.json {
                print_json(&info);
            } else {
                p.line(format!("backend:     {}", info.backend));
                p.line(format!("description: {}", info.description));
                if let Some(l) = &info.location {
                    p.line(format!("location:    {}", l.display()));
                }
                p.line(format!(
                    "entries:     {} ({})",
                    info.entries,
                    human_size(info.bytes)
                ));
                if let Some(m) = info.max_bytes {
                    p.line(format!("budget:      {}", human_size(m)));
                }
                if let Some(t) = info.ttl_seconds {
                    p.line(format!(
                        "ttl:         {} ({t} seconds)",
                        humantime::format_duration(std::time::Duration::from_secs(t))
                    ));
                }
                if let Some(k) = &info.signing_key {
                    p.line(format!("signing key: {k}"));
                }
                if let Some(k) = &info.encryption_key {
                    p.line(format!("encryption:  {k}"));
                }
                if info.unsafe_shared {
                    p.line("WARNING: ownership and mode checks are off (DG_UNSAFE_SHARED_CACHE)");
                }
            }
        }
        CacheCommand::Clear => {
            let before = cache.info()?;
            cache.clear()?;
            if p.json {
                print_json(&json!({ "removed_entries": before.entries }));
            }
            p.line(format!("cache cleared: {} entries removed", before.entries));
        }
        CacheCommand::Verify => {
            let summary = cache.verify_all()?;
            if p.json {
                print_json(&summary);
            }
            p.line(format!(
                "cache verify: {} checked, {} valid, {} removed",
                summary.checked, summary.valid, summary.removed
            ));
        }
        CacheCommand::Migrate { .. } => unreachable!("handled above"),
    }
    Ok(())
}
