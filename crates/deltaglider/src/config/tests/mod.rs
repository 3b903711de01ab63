//! Layering and validation of the configuration.

use super::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

mod cache;

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

#[test]
fn the_format_is_layered_like_every_setting_and_bad_values_are_named() {
    use crate::engine::StorageFormat;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "format = \"compact\"\n").unwrap();
    let with_file = with_file(&file);
    assert_eq!(
        resolve(&Settings::default(), &[]).unwrap().format,
        StorageFormat::Compatible,
        "compatible unless configured"
    );
    assert_eq!(
        resolve(&with_file, &[]).unwrap().format,
        StorageFormat::Compact
    );
    let env = [("DG_FORMAT", "compatible")];
    assert_eq!(
        resolve(&with_file, &env).unwrap().format,
        StorageFormat::Compatible
    );
    let flags = with_file.clone().format(StorageFormat::Compact);
    assert_eq!(
        resolve(&flags, &env).unwrap().format,
        StorageFormat::Compact
    );

    let e = resolve(&Settings::default(), &[("DG_FORMAT", "tiny")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("DG_FORMAT") && e.contains("tiny"), "{e}");
    std::fs::write(&file, "format = \"tiny\"\n").unwrap();
    let e = resolve(&with_file, &[]).unwrap_err().to_string();
    assert!(e.contains("c.toml") && e.contains("tiny"), "{e}");
}
