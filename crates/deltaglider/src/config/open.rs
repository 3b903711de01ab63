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
        Ok(match &self.cache {
            CacheConfig::Disabled => Arc::new(NoCache),
            CacheConfig::Ephemeral {
                encrypt,
                encryption_key,
            } => Arc::new(StoreCache::private(encrypt.then(|| {
                encryption_key.clone().unwrap_or_else(CacheKey::per_process)
            }))?),
            CacheConfig::Memory {
                budget_bytes,
                encryption_key,
            } => Arc::new(StoreCache::memory(*budget_bytes, encryption_key.clone())),
            CacheConfig::Persistent(p) => Arc::new(StoreCache::persistent(PersistentOptions {
                root: p.dir.clone(),
                max_bytes: Some(p.max_bytes),
                ttl: p.ttl,
                unsafe_shared: p.unsafe_shared,
                signing_key: match &p.signing_key {
                    SigningKey::Key(k) => k.clone(),
                    SigningKey::File(path) => CacheKey::hmac_from_file(path)?,
                },
                encryption_key: p.encryption_key.clone(),
                monitor: p.monitor,
            })?),
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
    pub(crate) fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            policy: self.policy.clone(),
            max_ratio: self.max_ratio,
            format: self.format,
            ..EngineSettings::default()
        }
    }

    /// A client over the store, codec and cache this configuration names, as
    /// [`crate::ClientBuilder::build`] makes one from settings.
    pub async fn build_client(&self) -> Result<Client> {
        let engine = Engine::new(
            self.open_store().await?,
            self.open_codec(),
            self.open_cache()?,
            self.engine_settings(),
        );
        Ok(Client::from_engine(engine))
    }
}
