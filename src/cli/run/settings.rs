//! Configuration from the parsed flags, and the filters in the order they were given.

use std::time::Duration;

use deltaglider::config::{CacheBackend, Settings, parse_ttl};

use super::*;

/// Resolves configuration: the flags over the environment over the config file.
pub fn config(cli: &Cli) -> Result<Config> {
    let config = Config::load(flag_settings(cli)?)?;
    if !matches!(cli.command, Command::Cache(_) | Command::Completions(_)) {
        upload_options::warn_inapplicable(cli, &config);
    }
    Ok(config)
}

/// The settings the command line gives; flags not given are unset (a switch not given
/// leaves the environment and the file to decide).
fn flag_settings(cli: &Cli) -> Result<Settings> {
    let storage = match &cli.command {
        Command::Cp(a) => Some(&a.storage),
        Command::Mv(a) => Some(&a.storage),
        Command::Sync(a) => Some(&a.storage),
        Command::Migrate(a) => Some(&a.storage),
        _ => None,
    };
    let g = &cli.global;
    let c = &g.connection;
    let mut s = Settings::default();
    s.endpoint_url = g.endpoint_url.clone();
    s.region = g.region.clone();
    s.profile = g.profile.clone();
    s.config_file = g.config.clone();
    if let Some(storage) = storage {
        s.max_ratio = storage.max_ratio;
        s.format = storage
            .format
            .as_deref()
            .and_then(deltaglider::StorageFormat::parse);
        s.delta_extensions = storage.delta_extensions.clone();
    }
    s.no_cache = g.no_cache.then_some(true);
    s.cache_dir = g.cache_dir.clone();
    s.cache_backend = g
        .cache_backend
        .as_deref()
        .map(|b| CacheBackend::parse("--cache-backend", b))
        .transpose()?;
    s.ephemeral_cache = g.ephemeral_cache.then_some(true);
    s.cache_ttl = g
        .cache_ttl
        .as_deref()
        .map(|t| parse_ttl("--cache-ttl", t))
        .transpose()?;
    s.page_size = c.page_size.map(|n| n as usize);
    s.no_verify_ssl = c.no_verify_ssl.then_some(true);
    s.ca_bundle = c.ca_bundle.clone();
    s.read_timeout = c.cli_read_timeout.map(Duration::from_secs);
    s.connect_timeout = c.cli_connect_timeout.map(Duration::from_secs);
    s.no_sign_request = c.no_sign_request.then_some(true);
    Ok(s)
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
