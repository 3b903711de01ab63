//! Configuration from the parsed flags, and the filters in the order they were given.

use super::*;

/// Resolves configuration from the command line and environment.
pub fn config(cli: &Cli) -> Result<Config> {
    let (max_ratio, delta_extensions) = match &cli.command {
        Command::Cp(a) => (a.max_ratio, a.delta_extensions.clone()),
        Command::Migrate(a) => (a.max_ratio, None),
        Command::Sync(a) => (a.max_ratio, a.delta_extensions.clone()),
        _ => (None, None),
    };
    let cache = CacheOverrides {
        cache_dir: cli.global.cache_dir.clone(),
        backend: cli.global.cache_backend.clone(),
        ephemeral: cli.global.ephemeral_cache.then_some(true),
        ttl: cli.global.cache_ttl.clone(),
        ..Default::default()
    };
    let mut config = Config::from_env_with(
        &Overrides {
            endpoint_url: cli.global.endpoint_url.clone(),
            region: cli.global.region.clone(),
            profile: cli.global.profile.clone(),
            max_ratio,
            delta_extensions,
            config_file: cli.global.config.clone(),
            no_cache: cli.global.no_cache,
        },
        &cache,
    )?;
    config.s3_client = upload_options::client_settings(&cli.global.connection);
    if !matches!(cli.command, Command::Cache(_) | Command::Completions(_)) {
        upload_options::warn_inapplicable(cli, &config);
    }
    Ok(config)
}

/// `--include`/`--exclude` of the subcommand, in the order they were given.
pub fn ordered_filters(matches: &clap::ArgMatches) -> Vec<(FilterKind, String)> {
    let Some((_, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let mut rules: Vec<(usize, FilterKind, String)> = Vec::new();
    for (id, kind) in [
        ("include", FilterKind::Include),
        ("exclude", FilterKind::Exclude),
    ] {
        // Only the transfer commands have filters; indices_of panics on unknown ids.
        if let Ok(Some(values)) = sub.try_get_many::<String>(id)
            && let Some(indices) = sub.indices_of(id)
        {
            rules.extend(indices.zip(values).map(|(i, v)| (i, kind, v.clone())));
        }
    }
    rules.sort_by_key(|(i, _, _)| *i);
    rules.into_iter().map(|(_, k, v)| (k, v)).collect()
}
