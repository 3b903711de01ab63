//! Layering and validation of the configuration.

use super::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// `flags` over `env` over the config file (`/dev/null` unless the flags name one).
fn resolve(flags: &Settings, env: &[(&str, &str)]) -> Result<Config> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut flags = flags.clone();
    flags.config_file = flags
        .config_file
        .or_else(|| Some(PathBuf::from("/dev/null")));
    let env = |k: &str| map.get(k).cloned();
    Config::resolve_in(flags.layered(&env)?, &env)
}

fn with_file(path: &Path) -> Settings {
    Settings::default().config_file(path)
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
    let with_file = with_file(&file);
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
    let flags = with_file.max_ratio(0.1).endpoint_url("file:///flag");
    let c = resolve(
        &flags,
        &[("DG_MAX_RATIO", "0.2"), ("DG_ENDPOINT_URL", "file:///env")],
    )
    .unwrap();
    assert_eq!(c.max_ratio, 0.1);
    assert_eq!(c.endpoint, Endpoint::Local("/flag".into()));
    let c = resolve(&Settings::default(), &[]).unwrap();
    assert_eq!(c.max_ratio, 0.5);
    assert_eq!(c.endpoint, Endpoint::S3(None));
    assert!(matches!(c.cache, CacheConfig::Ephemeral { .. }));
}

#[cfg(not(feature = "s3"))]
#[tokio::test]
async fn an_s3_endpoint_without_the_s3_feature_is_a_clear_error() {
    let c = resolve(
        &Settings::default(),
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
    )
    .unwrap();
    let Err(err) = c.open_store().await else {
        panic!("an S3 store opened in a build without the S3 backend");
    };
    assert!(err.to_string().contains("without S3 support"), "{err}");
    let c = resolve(&Settings::default(), &[("DG_ENDPOINT_URL", "file:///x")]).unwrap();
    assert_eq!(c.endpoint, Endpoint::Local("/x".into()));
}

#[test]
fn dg_endpoint_beats_aws_endpoint() {
    let c = resolve(
        &Settings::default(),
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
    let e = resolve(&Settings::default(), &[("DG_MAX_RATIO", "lots")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("DG_MAX_RATIO"), "{e}");
    let e = resolve(&Settings::default().max_ratio(2.0), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-ratio"), "{e}");
    let e = resolve(&Settings::default().endpoint_url("ftp://x"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ftp://x"), "{e}");
    let e = resolve(&Settings::default(), &[("DG_NO_CACHE", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("DG_NO_CACHE"), "{e}");
}

#[test]
fn broken_config_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "max_ratoi = 0.3\n").unwrap();
    let e = resolve(&with_file(&file), &[]).unwrap_err().to_string();
    assert!(e.contains("c.toml") && e.contains("max_ratoi"), "{e}");
}

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

#[test]
fn the_file_is_settings_in_toml() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let read = |text: &str| {
        std::fs::write(&file, text).unwrap();
        Settings::from_file(&file)
    };
    let s = read("cache_ttl = 90\ncodec = \"XDELTA3\"\ncache_backend = \"memory\"\n").unwrap();
    assert_eq!(s.cache_ttl, Some(Some(Duration::from_secs(90))));
    assert_eq!(s.codec, Some(CodecChoice::Xdelta3));
    assert_eq!(s.cache_backend, Some(CacheBackend::Memory));
    let s = read("cache_ttl = \"never\"\n").unwrap();
    assert_eq!(s.cache_ttl, Some(None));
    for (text, needle) in [
        (
            "cache_ttl = true\n",
            "cache_ttl in the config file: expected seconds",
        ),
        ("cache_ttl = \"soon\"\n", "cache_ttl in the config file"),
        ("codec = \"zstd\"\n", "codec in the config file"),
        (
            "cache_backend = \"tape\"\n",
            "cache_backend in the config file",
        ),
        // Secrets never come from the file.
        ("cache_key = \"x\"\n", "cache_key"),
    ] {
        let e = read(text).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("c.toml"), "{text}: {e}");
    }
    // Values out of range are named as before resolution.
    for (text, needle) in [
        ("max_ratio = 3.0\n", "max_ratio in the config file"),
        (
            "cache_memory_size_mb = 0\n",
            "cache_memory_size_mb in the config file",
        ),
    ] {
        let e = read(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    let e = Settings::from_file(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read config file"), "{e}");
}

#[test]
fn merge_takes_each_field_from_the_upper_layer_if_set() {
    let upper = Settings::default().region("upper").endpoint_url("");
    let lower = Settings::default()
        .region("lower")
        .profile("lower")
        .endpoint_url("file:///lower");
    let s = upper.merge(lower);
    assert_eq!(s.region.as_deref(), Some("upper"));
    assert_eq!(s.profile.as_deref(), Some("lower"));
    // An empty string is not a setting, as an empty variable is not.
    assert_eq!(s.endpoint_url.as_deref(), Some("file:///lower"));
    let env = Settings::from_env(&|k| (k == "DG_MAX_RATIO").then(|| "3".to_string()));
    assert!(env.unwrap_err().to_string().contains("DG_MAX_RATIO"));
}
