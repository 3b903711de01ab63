//! DeltaGlider: store versioned binary artifacts in S3-compatible storage as one reference
//! file per prefix plus small binary deltas, and get byte-exact originals back.
//!
//! The crate is the SDK; the `deltaglider` binary is a thin command line over it.
//! The seams are narrow traits, each with implementations in their own files:
//! [`storage::ObjectStore`] (S3, local directory), [`codec::DeltaCodec`] (the built-in
//! VCDIFF codec, the `xdelta3` program) and [`cache::ReferenceCache`] (process-private
//! directory, persistent signed directory, encrypted memory LRU, none). [`Client`] is the SDK's front door.
//! [`engine::Engine`] applies the on-bucket format over them, and [`config::Config`] resolves
//! [`config::Settings`] from flags, environment, config file and defaults in one place.
//!
//! The S3 backend is the cargo feature `s3` (on by default); without it the crate works on
//! local stores only and does not depend on the AWS SDK.
//!
//! ```no_run
//! use deltaglider::config::{Config, Settings};
//!
//! # async fn demo() -> deltaglider::Result<()> {
//! // Same configuration as the CLI: these settings over DG_* / AWS_* over the config file.
//! let engine = Config::load(Settings::default().max_ratio(0.4))?
//!     .build_engine()
//!     .await?;
//! let report = engine
//!     .put_file("app-1.1.zip".as_ref(), "releases", "app/app-1.1.zip", &Default::default())
//!     .await?;
//! println!("stored {} of {} bytes", report.stored_size, report.original_size);
//! engine.get_to_file("releases", "app/app-1.1.zip", "restored.zip".as_ref()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod analyze;
pub mod cache;
pub mod client;
pub mod codec;
pub mod config;
pub mod deltaspace;
pub mod engine;
pub mod error;
pub mod hashing;
pub mod metadata;
pub mod stats;
pub mod storage;
mod task;
pub mod testing;
pub mod transfer;
pub mod url;

pub use client::{Body, Client, ClientBuilder, VerifiedObject};
pub use engine::{Engine, EngineSettings, StoredAs};
pub use error::{Error, Result};
pub use url::S3Url;
