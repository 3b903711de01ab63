//! Configuration, resolved in one place: command-line flags, then environment (`DG_*`,
//! `AWS_*`), then the config file, then defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::{ReferenceCache, disabled::NoCache, ephemeral::EphemeralCache};
use crate::codec::xdelta3::Xdelta3Codec;
use crate::deltaspace::DeltaPolicy;
use crate::engine::{Engine, EngineSettings};
use crate::error::{Error, Result};
use crate::storage::ObjectStore;
use crate::storage::local::LocalStore;
use crate::storage::s3::{S3Settings, S3Store};

/// Values given on the command line (or by an SDK caller); `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub max_ratio: Option<f64>,
    pub delta_extensions: Option<String>,
    pub config_file: Option<PathBuf>,
    pub no_cache: bool,
}

/// The optional TOML config file (`$XDG_CONFIG_HOME/deltaglider/config.toml` or `DG_CONFIG`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    endpoint_url: Option<String>,
    region: Option<String>,
    profile: Option<String>,
    max_ratio: Option<f64>,
    delta_extensions: Option<String>,
    xdelta3: Option<PathBuf>,
    no_cache: Option<bool>,
    log_level: Option<String>,
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS S3 (`None`) or an S3-compatible server at a URL.
    S3(Option<String>),
    /// A local directory (`file:///path`).
    Local(PathBuf),
}

/// Reference-cache selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Process-private directory, removed on exit.
    Ephemeral,
    /// No cache.
    Disabled,
}

/// Fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: Endpoint,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub max_ratio: f64,
    pub policy: DeltaPolicy,
    pub xdelta3: PathBuf,
    pub cache: CacheMode,
    pub log_level: Option<String>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(Error::Config(format!(
            "{name}: expected true or false, got '{other}'"
        ))),
    }
}

fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("deltaglider").join("config.toml"))
}

fn read_file_config(path: &Path, explicit: bool) -> Result<Option<FileConfig>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(Error::io(
            format!("cannot read config file {}", path.display()),
            e,
        )),
    }
}

impl Config {
    /// Resolves from the process environment.
    pub fn from_env(overrides: &Overrides) -> Result<Self> {
        Config::resolve(overrides, &|k| std::env::var(k).ok())
    }

    /// Resolves with an explicit environment lookup (tests pass a map).
    pub fn resolve(overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let env = |k: &str| non_empty(env(k));
        let (file_path, explicit) = match (overrides.config_file.clone(), env("DG_CONFIG")) {
            (Some(p), _) => (Some(p), true),
            (None, Some(p)) => (Some(PathBuf::from(p)), true),
            (None, None) => (default_config_path(), false),
        };
        let file = match &file_path {
            Some(p) => read_file_config(p, explicit)?,
            None => None,
        };
        let config_file = file.as_ref().and(file_path);
        let file = file.unwrap_or_default();

        let endpoint_url = non_empty(overrides.endpoint_url.clone())
            .or_else(|| env("DG_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(non_empty(file.endpoint_url));
        let endpoint = match endpoint_url {
            Some(u) if u.starts_with("file://") => {
                let path = u.trim_start_matches("file://");
                if path.is_empty() {
                    return Err(Error::Config(format!("endpoint '{u}' names no directory")));
                }
                Endpoint::Local(PathBuf::from(path))
            }
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Endpoint::S3(Some(u))
            }
            Some(u) => {
                return Err(Error::Config(format!(
                    "endpoint '{u}' must start with http://, https:// or file://"
                )));
            }
            None => Endpoint::S3(None),
        };

        let max_ratio = match overrides.max_ratio {
            Some(r) => (r, "--max-ratio".to_string()),
            None => match env("DG_MAX_RATIO") {
                Some(s) => (
                    s.trim().parse::<f64>().map_err(|_| {
                        Error::Config(format!("DG_MAX_RATIO: '{s}' is not a number"))
                    })?,
                    "DG_MAX_RATIO".to_string(),
                ),
                None => (
                    file.max_ratio.unwrap_or(0.5),
                    "max_ratio in the config file".to_string(),
                ),
            },
        };
        if !(max_ratio.0 > 0.0 && max_ratio.0 <= 1.0) {
            return Err(Error::Config(format!(
                "{}: must be greater than 0 and at most 1, got {}",
                max_ratio.1, max_ratio.0
            )));
        }

        let policy = non_empty(overrides.delta_extensions.clone())
            .or_else(|| env("DG_DELTA_EXTENSIONS"))
            .or(file.delta_extensions)
            .map(|s| DeltaPolicy::parse(&s))
            .unwrap_or_default();

        let no_cache = if overrides.no_cache {
            true
        } else if let Some(v) = env("DG_NO_CACHE") {
            parse_bool("DG_NO_CACHE", &v)?
        } else {
            file.no_cache.unwrap_or(false)
        };

        Ok(Config {
            endpoint,
            region: non_empty(overrides.region.clone())
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or(file.region),
            profile: non_empty(overrides.profile.clone())
                .or_else(|| env("AWS_PROFILE"))
                .or(file.profile),
            max_ratio: max_ratio.0,
            policy,
            xdelta3: env("DG_XDELTA3")
                .map(PathBuf::from)
                .or(file.xdelta3)
                .unwrap_or_else(|| PathBuf::from("xdelta3")),
            cache: if no_cache {
                CacheMode::Disabled
            } else {
                CacheMode::Ephemeral
            },
            log_level: env("DG_LOG_LEVEL").or(file.log_level),
            config_file,
        })
    }

    /// Connects to the configured store.
    pub async fn open_store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(match &self.endpoint {
            Endpoint::Local(path) => Arc::new(LocalStore::new(path.clone())?),
            Endpoint::S3(url) => Arc::new(
                S3Store::connect(S3Settings {
                    endpoint_url: url.clone(),
                    region: self.region.clone(),
                    profile: self.profile.clone(),
                    limits: None,
                })
                .await?,
            ),
        })
    }

    /// Creates the configured reference cache.
    pub fn open_cache(&self) -> Result<Arc<dyn ReferenceCache>> {
        Ok(match self.cache {
            CacheMode::Ephemeral => Arc::new(EphemeralCache::new()?),
            CacheMode::Disabled => Arc::new(NoCache),
        })
    }

    /// Builds an engine from this configuration.
    pub async fn build_engine(&self) -> Result<Engine> {
        let store = self.open_store().await?;
        Ok(Engine::new(
            store,
            Arc::new(Xdelta3Codec::new(self.xdelta3.clone())),
            self.open_cache()?,
            EngineSettings {
                policy: self.policy.clone(),
                max_ratio: self.max_ratio,
                ..EngineSettings::default()
            },
        ))
    }
}

#[cfg(test)]
mod tests {
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
}
