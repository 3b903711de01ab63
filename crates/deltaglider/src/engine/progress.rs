//! Byte progress of long operations, for callers that show it (the command line draws
//! bars; the library draws nothing and depends on no terminal crate).
//!
//! An upload goes through [`Phase::Hashing`] (the source is copied into its snapshot and
//! hashed), [`Phase::Encoding`] (delta-eligible files only) and [`Phase::Uploading`]; a
//! download through [`Phase::Rebuilding`]. Each phase is announced with
//! [`Progress::start`] and its bytes with [`Progress::advance`]; files of a tree transfer
//! report concurrently, told apart by their key.

use std::sync::Arc;

use serde::Serialize;

/// A step of a transfer whose bytes can be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Reading the source into the upload's snapshot and hashing it; its total is the file size.
    Hashing,
    /// Encoding the delta; its total is the file size.
    Encoding,
    /// Sending what is stored; its total is the stored bytes (delta, or whole file).
    Uploading,
    /// Downloading and rebuilding the object; its total is its original size.
    Rebuilding,
}

impl Phase {
    /// The phase as the command line names it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Hashing => "hashing",
            Phase::Encoding => "encoding",
            Phase::Uploading => "uploading",
            Phase::Rebuilding => "rebuilding",
        }
    }
}

/// Receives byte progress. Called from blocking threads as well as async tasks: keep it
/// cheap and never block.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// `key` starts `phase`, which covers `total` bytes.
    fn start(&self, key: &str, phase: Phase, total: u64);
    /// `bytes` more of `key`'s current phase are done.
    fn advance(&self, key: &str, bytes: u64);
}

/// A [`Progress`] bound to one key, or nothing (no reporter configured).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyProgress {
    sink: Option<(Arc<dyn Progress>, Arc<str>)>,
}

impl KeyProgress {
    pub(crate) fn new(sink: Option<&Arc<dyn Progress>>, key: &str) -> Self {
        KeyProgress {
            sink: sink.map(|s| (s.clone(), Arc::from(key))),
        }
    }

    pub(crate) fn start(&self, phase: Phase, total: u64) {
        if let Some((s, key)) = &self.sink {
            s.start(key, phase, total);
        }
    }

    pub(crate) fn advance(&self, bytes: u64) {
        if let Some((s, key)) = &self.sink
            && bytes > 0
        {
            s.advance(key, bytes);
        }
    }
}
