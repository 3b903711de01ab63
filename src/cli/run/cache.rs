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
        p.show(&FoundCaches {
            found: &found,
            yes: *yes,
        });
        if !yes {
            return Ok(());
        }
        let removed = deltaglider::cache::migrate::remove_legacy_caches(&found);
        p.show(&Doc {
            json: json!({ "found": found, "removed": removed }),
            text: |out: &dyn Text| {
                for r in removed.iter().filter(|r| r.error.is_none() && r.removed) {
                    out.line(&format!("delete: {}", r.path.display()));
                }
            },
        });
        // Failures reach stderr in either mode.
        let mut failed = 0;
        for r in &removed {
            if let Some(e) = &r.error {
                p.warn(format!("failed: {}: {e}", r.path.display()));
                failed += 1;
            }
        }
        if failed > 0 {
            bail!("{failed} old cache(s) could not be deleted");
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
            p.show(&Doc {
                json: &info,
                text: |out: &dyn Text| {
                    out.line(&format!("backend:     {}", info.backend));
                    out.line(&format!("description: {}", info.description));
                    if let Some(l) = &info.location {
                        out.line(&format!("location:    {}", l.display()));
                    }
                    out.line(&format!(
                        "entries:     {} ({})",
                        info.entries,
                        human_size(info.bytes)
                    ));
                    if let Some(m) = info.max_bytes {
                        out.line(&format!("budget:      {}", human_size(m)));
                    }
                    if let Some(t) = info.ttl_seconds {
                        out.line(&format!(
                            "ttl:         {} ({t} seconds)",
                            humantime::format_duration(std::time::Duration::from_secs(t))
                        ));
                    }
                    if let Some(k) = &info.signing_key {
                        out.line(&format!("signing key: {k}"));
                    }
                    if let Some(k) = &info.encryption_key {
                        out.line(&format!("encryption:  {k}"));
                    }
                    if info.unsafe_shared {
                        out.line(
                            "WARNING: ownership and mode checks are off (DG_UNSAFE_SHARED_CACHE)",
                        );
                    }
                },
            });
        }
        CacheCommand::Clear => {
            let before = cache.info()?;
            cache.clear()?;
            p.show(&Doc {
                json: json!({ "removed_entries": before.entries }),
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "cache cleared: {} entries removed",
                        before.entries
                    ))
                },
            });
        }
        CacheCommand::Verify => {
            let summary = cache.verify_all()?;
            p.show(&Doc {
                json: &summary,
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "cache verify: {} checked, {} valid, {} removed",
                        summary.checked, summary.valid, summary.removed
                    ))
                },
            });
        }
        CacheCommand::Migrate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// The caches of older versions found; with `--yes` they are removed next, and the JSON is
/// the document that says so.
struct FoundCaches<'a> {
    found: &'a [deltaglider::cache::migrate::LegacyCache],
    yes: bool,
}

impl Render for FoundCaches<'_> {
    fn json(&self) -> Option<Json> {
        (!self.yes).then(|| Json::of(&json!({ "found": self.found })))
    }
    fn text(&self, out: &dyn Text) {
        for c in self.found {
            out.line(&format!(
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
        if !self.yes {
            out.line(&format!("{} old cache(s) found; run with --yes to delete them (their contents are never read)", self.found.len()));
        }
    }
}
