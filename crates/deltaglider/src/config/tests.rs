//! Layering and validation of the configuration.

use super::*;
use std::collections::HashMap;

fn resolve(flags: &Overrides, env: &[(&str, &str)]) -> Result<Config> {
    let mut map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry("DG_CONFIG".into())
        .or_insert_with(|| "/nonexistent-dg-config-for-tests.toml".into());
    let explicit_missing = map["DG_CONFIG"] == "/nonexistent-dg-config-for-tests.toml";
    if explicit_missing {
        map.remove("DG_CONFIG");
    }
    let flags = Overrides {
        config_file: flags
            .config_file
            .clone()
            .or_else(|| Some(PathBuf::from("/dev/null"))),
        ..flags.clone()
    };
    Config::resolve(&flags, &|k| map.get(k).cloned())
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "max_ratio = 0.3\nendpoint_url = \"file:///from-file\"\n",
    )
    .unwrap();
    let with_file = Overrides {
        config_file: Some(file),
        ..Default::default()
    };
    let c = resolve(&with_file, &[]).unwrap();
    assert_eq!(c.max_ratio, 0.3);
    assert_eq!(c.endpoint, Endpoint::Local("/from-file".into()));
    let c = resolve(
        &with_file,
        &[
            ("DG_MAX_RATIO", "0.2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ],
    )
    .unwrap();
    assert_eq!(c.max_ratio, 0.2);
    assert_eq!(c.endpoint, Endpoint::S3(Some("http://127.0.0.1:1".into())));
    let flags = Overrides {
        max_ratio: Some(0.1),
        endpoint_url: Some("file:///flag".into()),
        ..with_file
    };
    let c = resolve(
        &flags,
        &[("DG_MAX_RATIO", "0.2"), ("DG_ENDPOINT_URL", "file:///env")],
    )
    .unwrap();
    assert_eq!(c.max_ratio, 0.1);
    assert_eq!(c.endpoint, Endpoint::Local("/flag".into()));
    let c = resolve(&Overrides::default(), &[]).unwrap();
    assert_eq!(c.max_ratio, 0.5);
    assert_eq!(c.endpoint, Endpoint::S3(None));
    assert_eq!(c.cache, CacheMode::Ephemeral);
}

#[cfg(not(feature = "s3"))]
#[tokio::test]
async fn an_s3_endpoint_without_the_s3_feature_is_a_clear_error() {
    let c = resolve(
        &Overrides::default(),
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
    )
    .unwrap();
    let Err(err) = c.open_store().await else {
        panic!("an S3 store opened in a build without the S3 backend");
    };
    assert!(err.to_string().contains("without S3 support"), "{err}");
    let c = resolve(&Overrides::default(), &[("DG_ENDPOINT_URL", "file:///x")]).unwrap();
    assert_eq!(c.endpoint, Endpoint::Local("/x".into()));
}

#[test]
fn dg_endpoint_beats_aws_endpoint() {
    let c = resolve(
        &Overrides::default(),
        &[
            ("DG_ENDPOINT_URL", "file:///x"),
            ("AWS_ENDPOINT_URL", "http://h"),
        ],
    )
    .unwrap();
    assert_eq!(c.endpoint, Endpoint::Local("/x".into()));
}

#[test]
fn bad_values_name_their_source() {
    let e = resolve(&Overrides::default(), &[("DG_MAX_RATIO", "lots")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("DG_MAX_RATIO"), "{e}");
    let e = resolve(
        &Overrides {
            max_ratio: Some(2.0),
            ..Default::default()
        },
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--max-ratio"), "{e}");
    let e = resolve(
        &Overrides {
            endpoint_url: Some("ftp://x".into()),
            ..Default::default()
        },
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ftp://x"), "{e}");
    let e = resolve(&Overrides::default(), &[("DG_NO_CACHE", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("DG_NO_CACHE"), "{e}");
}

#[test]
fn broken_config_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "max_ratoi = 0.3\n").unwrap();
    let e = resolve(
        &Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        },
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c.toml") && e.contains("max_ratoi"), "{e}");
}

fn resolve_cache(flags: &CacheOverrides, env: &[(&str, &str)]) -> Result<Config> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let o = Overrides {
        config_file: Some(PathBuf::from("/dev/null")),
        ..Default::default()
    };
    Config::resolve_with(&o, flags, &|k| map.get(k).cloned())
}

const KEY32: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[test]
fn cache_mode_selection() {
    let none = CacheOverrides::default();
    let mode = |env: &[(&str, &str)]| resolve_cache(&none, env).unwrap().cache;
    assert_eq!(mode(&[]), CacheMode::Ephemeral);
    assert_eq!(
        mode(&[("DG_NO_CACHE", "true"), ("DG_CACHE_DIR", "/x")]),
        CacheMode::Disabled
    );
    assert_eq!(mode(&[("DG_CACHE_BACKEND", "memory")]), CacheMode::Memory);
    assert_eq!(
        mode(&[("DG_CACHE_BACKEND", "filesystem")]),
        CacheMode::Ephemeral
    );
    assert_eq!(mode(&[("DG_CACHE_DIR", "/x")]), CacheMode::Persistent);
    assert_eq!(
        mode(&[("DG_CACHE_DIR", "/x"), ("DG_EPHEMERAL_CACHE", "true")]),
        CacheMode::Ephemeral
    );
    let c = resolve_cache(
        &none,
        &[("DG_EPHEMERAL_CACHE", "false"), ("XDG_CACHE_HOME", "/xdg")],
    )
    .unwrap();
    assert_eq!(c.cache, CacheMode::Persistent);
    assert_eq!(
        c.cache_settings.dir,
        Some(PathBuf::from("/xdg/deltaglider/v2"))
    );
    let c = resolve_cache(
        &none,
        &[("DG_UNSAFE_SHARED_CACHE", "true"), ("HOME", "/home/u")],
    )
    .unwrap();
    assert_eq!(c.cache, CacheMode::Persistent);
    assert!(c.cache_settings.unsafe_shared);
    assert_eq!(
        c.cache_settings.dir,
        Some(PathBuf::from("/home/u/.cache/deltaglider/v2"))
    );
    // Defaults.
    let s = resolve_cache(&none, &[]).unwrap().cache_settings;
    assert_eq!(s.memory_budget_bytes, 100 << 20);
    assert_eq!(s.ttl, Some(Duration::from_secs(7 * 24 * 3600)));
    assert!(!s.encrypt && s.monitor && !s.unsafe_shared);
}

#[test]
fn cache_settings_precedence_flag_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "cache_dir = \"/from-file\"\ncache_ttl = 60\ncache_memory_size_mb = 7\n",
    )
    .unwrap();
    let o = Overrides {
        config_file: Some(file),
        ..Default::default()
    };
    let run = |flags: &CacheOverrides, env: &[(&str, &str)]| {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::resolve_with(&o, flags, &|k| map.get(k).cloned()).unwrap()
    };
    let c = run(&CacheOverrides::default(), &[]);
    assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-file")));
    assert_eq!(c.cache_settings.ttl, Some(Duration::from_secs(60)));
    assert_eq!(c.cache_settings.memory_budget_bytes, 7 << 20);
    let env = [
        ("DG_CACHE_DIR", "/from-env"),
        ("DG_CACHE_TTL", "2h"),
        ("DG_CACHE_MEMORY_SIZE_MB", "8"),
    ];
    let c = run(&CacheOverrides::default(), &env);
    assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-env")));
    assert_eq!(c.cache_settings.ttl, Some(Duration::from_secs(7200)));
    assert_eq!(c.cache_settings.memory_budget_bytes, 8 << 20);
    let flags = CacheOverrides {
        cache_dir: Some("/from-flag".into()),
        ttl: Some("never".into()),
        memory_size_mb: Some(9),
        ..Default::default()
    };
    let c = run(&flags, &env);
    assert_eq!(c.cache_settings.dir, Some(PathBuf::from("/from-flag")));
    assert_eq!(c.cache_settings.ttl, None);
    assert_eq!(c.cache_settings.memory_budget_bytes, 9 << 20);
    let c = run(
        &CacheOverrides {
            ephemeral: Some(true),
            ..Default::default()
        },
        &env,
    );
    assert_eq!(c.cache, CacheMode::Ephemeral);
}

#[test]
fn bad_cache_values_name_their_variable() {
    let none = CacheOverrides::default();
    for (var, value, needle) in [
        ("DG_CACHE_BACKEND", "disk-ish", "filesystem or memory"),
        ("DG_CACHE_MEMORY_SIZE_MB", "lots", "MiB"),
        ("DG_CACHE_MEMORY_SIZE_MB", "0", "greater than 0"),
        ("DG_CACHE_MAX_SIZE_MB", "-1", "MiB"),
        ("DG_CACHE_TTL", "soon", "duration"),
        ("DG_CACHE_ENCRYPTION_KEY", "c2hvcnQ=", "exactly 32"),
        ("DG_CACHE_ENCRYPTION_KEY", "not base64!", "base64"),
        ("DG_CACHE_KEY", "c2hvcnQ=", "at least 32"),
        ("DG_EPHEMERAL_CACHE", "maybe", "true or false"),
        ("DG_UNSAFE_SHARED_CACHE", "perhaps", "true or false"),
        ("DG_CACHE_ENCRYPT", "sure", "true or false"),
    ] {
        let e = resolve_cache(&none, &[(var, value)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(var) && e.contains(needle), "{var}={value}: {e}");
    }
    let e = resolve_cache(
        &CacheOverrides {
            backend: Some("tape".into()),
            ..Default::default()
        },
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--cache-backend"), "{e}");
    let e = resolve_cache(
        &none,
        &[("DG_CACHE_DIR", "/x"), ("DG_CACHE_ENCRYPT", "true")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("DG_CACHE_ENCRYPTION_KEY"), "{e}");
    // Secrets never show up in Debug output.
    let c = resolve_cache(
        &none,
        &[("DG_CACHE_ENCRYPTION_KEY", KEY32), ("DG_CACHE_KEY", KEY32)],
    )
    .unwrap();
    assert!(c.cache_settings.encrypt);
    assert!(!format!("{c:?}").contains("AQEB"));
    assert!(!format!("{c:?}").contains("1, 1, 1"));
}

#[test]
fn open_cache_builds_each_backend() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cache");
    let key_file = t.path().join("cfg/cache.key");
    let info = |env: &[(&str, &str)]| {
        resolve_cache(&CacheOverrides::default(), env)
            .unwrap()
            .open_cache()
            .unwrap()
            .info()
            .unwrap()
    };
    let d = dir.to_str().unwrap();
    let k = key_file.to_str().unwrap();
    let i = info(&[
        ("DG_CACHE_DIR", d),
        ("DG_CACHE_KEY_FILE", k),
        ("DG_CACHE_MONITOR", "false"),
    ]);
    assert_eq!(i.backend, "persistent");
    assert_eq!(i.location.as_deref(), Some(dir.as_path()));
    assert_eq!(
        i.signing_key,
        Some(crate::cache::KeySource::File {
            path: key_file.clone()
        })
    );
    assert!(key_file.exists() && i.encryption_key.is_none() && !i.monitored);
    let i = info(&[
        ("DG_CACHE_DIR", d),
        ("DG_CACHE_KEY", KEY32),
        ("DG_CACHE_ENCRYPTION_KEY", KEY32),
    ]);
    assert!(matches!(
        i.signing_key,
        Some(crate::cache::KeySource::Environment { .. })
    ));
    assert!(matches!(
        i.encryption_key,
        Some(crate::cache::KeySource::Environment { .. })
    ));
    assert_eq!(info(&[("DG_CACHE_BACKEND", "memory")]).backend, "memory");
    assert_eq!(info(&[]).backend, "ephemeral");
    let i = info(&[("DG_CACHE_ENCRYPT", "true")]);
    assert_eq!(
        (i.backend.as_str(), i.encryption_key),
        ("ephemeral", Some(crate::cache::KeySource::PerProcess))
    );
    assert_eq!(info(&[("DG_NO_CACHE", "1")]).backend, "disabled");
    // A world-writable directory is refused when the cache opens.
    std::fs::create_dir(t.path().join("open")).unwrap();
    std::fs::set_permissions(
        t.path().join("open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let e = resolve_cache(
        &CacheOverrides::default(),
        &[
            ("DG_CACHE_DIR", t.path().join("open").to_str().unwrap()),
            ("DG_CACHE_KEY", KEY32),
        ],
    )
    .unwrap()
    .open_cache()
    .unwrap_err()
    .to_string();
    assert!(e.contains("refusing cache directory"), "{e}");
}
