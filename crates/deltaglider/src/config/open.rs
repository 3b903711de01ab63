//! From a resolved configuration to the parts it names: the one place that knows every
//! concrete store, codec and cache.

use super::*;

impl Config {
    /// Connects to the configured store.
    pub async fn open_store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(match &self.endpoint {
            Endpoint::Local(path) => Arc::new(LocalStore::new(path.clone())?),
            #[cfg(feature = "s3")]
            Endpoint::S3(url) => Arc::new(
                S3Store::connect_with(
                    S3Settings {
                        endpoint_url: url.clone(),
                        region: self.region.clone(),
                        profile: self.profile.clone(),
                        limits: None,
                    },
                    &self.s3_client,
                )
                .await?,
            ),
            #[cfg(not(feature = "s3"))]
            Endpoint::S3(_) => {
                return Err(Error::Config(
                    "this deltaglider was built without S3 support (cargo feature `s3`); \
                     use a local store (--endpoint-url file:///path) or rebuild with the feature"
                        .into(),
                ));
            }
        })
    }

    /// Creates the configured reference cache. For the persistent cache this loads (or
    /// creates) the signing key and refuses an unsafe directory.
    pub fn open_cache(&self) -> Result<Arc<dyn ReferenceCache>> {
        let s = &self.cache_settings;
        Ok(match self.cache {
            CacheMode::Disabled => Arc::new(NoCache),
            CacheMode::Ephemeral => Arc::new(StoreCache::private(s.encrypt.then(|| {
                s.encryption_key
                    .clone()
                    .unwrap_or_else(CacheKey::per_process)
            }))?),
            CacheMode::Memory => Arc::new(StoreCache::memory(
                s.memory_budget_bytes,
                s.encryption_key.clone(),
            )),
            CacheMode::Persistent => {
                let signing_key = match (&s.signing_key, &s.key_file) {
                    (Some(k), _) => k.clone(),
                    (None, Some(path)) => CacheKey::hmac_from_file(path)?,
                    (None, None) => {
                        return Err(Error::Config(
                            "no place for the cache signing key: set DG_CACHE_KEY or DG_CACHE_KEY_FILE".into(),
                        ));
                    }
                };
                Arc::new(StoreCache::persistent(PersistentOptions {
                    root: s.dir.clone().expect("resolved for persistent mode"),
                    max_bytes: Some(s.max_bytes),
                    ttl: s.ttl,
                    unsafe_shared: s.unsafe_shared,
                    signing_key,
                    encryption_key: s.encrypt.then(|| s.encryption_key.clone()).flatten(),
                    monitor: s.monitor,
                })?)
            }
        })
    }

    /// The configured delta codec.
    pub fn open_codec(&self) -> Arc<dyn DeltaCodec> {
        match self.codec {
            CodecChoice::Xdelta3 => Arc::new(Xdelta3Codec::new(self.xdelta3.clone())),
            CodecChoice::Native => Arc::new(crate::codec::native::NativeCodec::default()),
        }
    }

    /// The engine's settings from this configuration.
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            policy: self.policy.clone(),
            max_ratio: self.max_ratio,
            ..EngineSettings::default()
        }
    }

    /// Builds an engine from this configuration.
    pub async fn build_engine(&self) -> Result<Engine> {
        Ok(Engine::new(
            self.open_store().await?,
            self.open_codec(),
            self.open_cache()?,
            self.engine_settings(),
        ))
    }
}
