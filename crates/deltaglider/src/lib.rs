//! DeltaGlider: store versioned binary artifacts in S3-compatible storage as one reference
//! file per prefix plus small binary deltas, and get byte-exact originals back.
//!
//! The crate is the SDK; the `deltaglider` binary is a thin command line over it.
//! [`Client`] is the front door: built like the command line is configured
//! ([`config::Settings`] over `DG_*`/`AWS_*` over the config file), or from a caller's own
//! store, cache, codec, AWS SDK configuration or S3 client, it offers the operations of an
//! S3 client and says how each object is stored.
//!
//! Underneath, the seams are narrow traits, each with implementations in their own files:
//! [`storage::ObjectStore`] (S3, local directory; bucket administration and presigning as
//! capability traits of their own), [`codec::DeltaCodec`] (the built-in VCDIFF codec, the
//! `xdelta3` program) and [`cache::ReferenceCache`] (process-private directory, persistent
//! signed directory, encrypted memory LRU, none); the client applies the on-bucket format
//! over them. What the operations take and report is re-exported here; [`keys`] says how
//! a key maps onto the format (its deltaspace, its reference).
//!
//! The S3 backend is the cargo feature `s3` (on by default); without it the crate works on
//! local stores only and does not depend on the AWS SDK.
//!
//! ```no_run
//! use deltaglider::Client;
//! use deltaglider::config::Settings;
//!
//! # async fn demo() -> deltaglider::Result<()> {
//! // These settings over DG_* / AWS_* over the config file, as for the command line.
//! let client = Client::builder()
//!     .settings(Settings::default().max_ratio(0.4))
//!     .build()
//!     .await?;
//! let report = client
//!     .upload_file("app-1.1.zip".as_ref(), "releases", "app/app-1.1.zip")
//!     .await?;
//! println!("stored {} of {} bytes", report.stored_size, report.original_size);
//! client
//!     .download_file("releases", "app/app-1.1.zip", "restored.zip".as_ref())
//!     .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod codec;
pub mod config;
pub mod keys;
pub mod storage;
pub mod testing;

mod analyze;
mod client;
mod deltaspace;
mod engine;
mod error;
mod hashing;
mod metadata;
mod stats;
mod task;
mod transfer;
mod url;

pub use client::{Body, Client, ClientBuilder, ListObjectsOptions, ObjectPages, VerifiedObject};
pub use error::{Error, Result};
pub use url::S3Url;

// What the operations take and report.
pub use analyze::{AnalyzeReport, AnalyzeSource, DeltaspaceEstimate};
pub use engine::{
    AbortedUpload, Activity, DeleteReport, GetReport, KeyDeleted, ListEntry, Listing,
    ObjectDetails, Phase, PresignedUrl, Progress, PurgeOptions, PurgeReport, PutReport,
    PutRequestOptions, StorageFormat, StoreReason, StoredAs, VerifiedReader, VerifyReport,
    logical_etag,
};
pub use metadata::UserMetadata;
pub use stats::{BucketStats, DeltaspaceStats, StatsMode};
pub use transfer::filter::{FilterKind, Filters};
pub use transfer::plan::CompareOptions;
pub use transfer::{
    DeleteTreeOptions, DeleteTreeReport, EventSink, Location, MigrateOptions, MigrationPlan,
    MoveOptions, Moved, TransferEvent, TransferOptions, TransferSummary,
};
