//! The reference cache's settings: which cache, its directory, lifetime, budget and keys.

use super::*;

fn resolve_cache(flags: &Settings, env: &[(&str, &str)]) -> Result<Config> {
    resolve(flags, env)
}

/// The persistent cache's settings, or a panic naming what was chosen instead.
fn persistent(c: &Config) -> &PersistentCacheConfig {
    match &c.cache {
        CacheConfig::Persistent(p) => p,
        other => panic!("not the persistent cache: {other:?}"),
    }
}

const KEY32: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[test]
fn cache_mode_selection() {
    let none = Settings::default();
    let mode = |env: &[(&str, &str)]| resolve_cache(&none, env).unwrap().cache;
    assert!(matches!(mode(&[]), CacheConfig::Ephemeral { .. }));
    assert!(matches!(
        mode(&[("DG_NO_CACHE", "true"), ("DG_CACHE_DIR", "/x")]),
        CacheConfig::Disabled
    ));
    assert!(matches!(
        mode(&[("DG_CACHE_BACKEND", "memory")]),
        CacheConfig::Memory { .. }
    ));
    assert!(matches!(
        mode(&[("DG_CACHE_BACKEND", "filesystem")]),
        CacheConfig::Ephemeral { .. }
    ));
    assert!(matches!(
        mode(&[("DG_CACHE_DIR", "/x")]),
        CacheConfig::Persistent(_)
    ));
    assert!(matches!(
        mode(&[("DG_CACHE_DIR", "/x"), ("DG_EPHEMERAL_CACHE", "true")]),
        CacheConfig::Ephemeral { .. }
    ));
    let c = resolve_cache(
        &none,
        &[("DG_EPHEMERAL_CACHE", "false"), ("XDG_CACHE_HOME", "/xdg")],
    )
    .unwrap();
    assert_eq!(persistent(&c).dir, PathBuf::from("/xdg/deltaglider/v2"));
    let c = resolve_cache(
        &none,
        &[("DG_UNSAFE_SHARED_CACHE", "true"), ("HOME", "/home/u")],
    )
    .unwrap();
    let p = persistent(&c);
    assert!(p.unsafe_shared);
    assert_eq!(p.dir, PathBuf::from("/home/u/.cache/deltaglider/v2"));
    // Defaults, each where it applies.
    let c = resolve_cache(&none, &[("DG_CACHE_BACKEND", "memory")]).unwrap();
    assert!(matches!(
        c.cache,
        CacheConfig::Memory {
            budget_bytes,
            encryption_key: None
        } if budget_bytes == 100 << 20
    ));
    let c = resolve_cache(&none, &[("DG_CACHE_DIR", "/x"), ("HOME", "/home/u")]).unwrap();
    let p = persistent(&c);
    assert_eq!(p.ttl, Some(Duration::from_secs(7 * 24 * 3600)));
    assert_eq!(p.max_bytes, 2048 << 20);
    assert!(p.encryption_key.is_none() && p.monitor && !p.unsafe_shared);
    assert!(matches!(
        &p.signing_key,
        SigningKey::File(f) if f == Path::new("/home/u/.config/deltaglider/cache.key")
    ));
    assert!(matches!(
        resolve_cache(&none, &[]).unwrap().cache,
        CacheConfig::Ephemeral {
            encrypt: false,
            encryption_key: None
        }
    ));
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
    let run = |flags: Settings, env: &[(&str, &str)]| {
        let c = resolve(&flags.clone().config_file(&file), env).unwrap();
        // The memory budget, from the same layers with the memory backend chosen.
        let memory = resolve(
            &flags.config_file(&file).cache_backend(CacheBackend::Memory),
            env,
        )
        .unwrap();
        let CacheConfig::Memory { budget_bytes, .. } = memory.cache else {
            panic!("not the memory cache: {:?}", memory.cache);
        };
        (c, budget_bytes)
    };
    let (c, budget) = run(Settings::default(), &[]);
    assert_eq!(persistent(&c).dir, PathBuf::from("/from-file"));
    assert_eq!(persistent(&c).ttl, Some(Duration::from_secs(60)));
    assert_eq!(budget, 7 << 20);
    let env = [
        ("DG_CACHE_DIR", "/from-env"),
        ("DG_CACHE_TTL", "2h"),
        ("DG_CACHE_MEMORY_SIZE_MB", "8"),
    ];
    let (c, budget) = run(Settings::default(), &env);
    assert_eq!(persistent(&c).dir, PathBuf::from("/from-env"));
    assert_eq!(persistent(&c).ttl, Some(Duration::from_secs(7200)));
    assert_eq!(budget, 8 << 20);
    let flags = Settings::default()
        .cache_dir("/from-flag")
        .cache_ttl(None)
        .cache_memory_size_mb(9);
    let (c, budget) = run(flags, &env);
    assert_eq!(persistent(&c).dir, PathBuf::from("/from-flag"));
    assert_eq!(persistent(&c).ttl, None);
    assert_eq!(budget, 9 << 20);
    let (c, _) = run(Settings::default().ephemeral_cache(true), &env);
    assert!(matches!(c.cache, CacheConfig::Ephemeral { .. }));
}

#[test]
fn bad_cache_values_name_their_variable() {
    let none = Settings::default();
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
    let e = CacheBackend::parse("--cache-backend", "tape")
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cache-backend") && e.contains("tape"), "{e}");
    // A caller's own value out of range is named by its flag.
    let e = resolve_cache(&Settings::default().cache_memory_size_mb(0), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cache-memory-size-mb"), "{e}");
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
    assert!(matches!(
        c.cache,
        CacheConfig::Ephemeral {
            encrypt: true,
            encryption_key: Some(_)
        }
    ));
    assert!(!format!("{c:?}").contains("AQEB"));
    assert!(!format!("{c:?}").contains("1, 1, 1"));
    let c = resolve_cache(
        &none,
        &[
            ("DG_CACHE_DIR", "/x"),
            ("DG_CACHE_ENCRYPTION_KEY", KEY32),
            ("DG_CACHE_KEY", KEY32),
        ],
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("AQEB"));
    assert!(!format!("{c:?}").contains("1, 1, 1"));
}

#[test]
fn open_cache_builds_each_backend() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cache");
    let key_file = t.path().join("cfg/cache.key");
    let info = |env: &[(&str, &str)]| {
        resolve_cache(&Settings::default(), env)
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
        &Settings::default(),
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
