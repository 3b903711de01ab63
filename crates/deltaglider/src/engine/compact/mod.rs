//! The compact format (docs/format.md, "Compact format"): deltas between *expanded* forms.
//!
//! A file is expanded (`deltaglider_archive::expand`: its deflate streams in token form, in
//! which two releases of similar content look similar) into a private temporary file. The
//! deltaspace's reference is `reference.dgx`, the xz of the expanded form of its first file;
//! every file is then a VCDIFF delta from the reference's expanded form to its own. Reading
//! decodes the expanded form and restores the exact original bytes from it.
//!
//! Nothing is written that was not rebuilt first: before a reference or a delta is stored,
//! the original is rebuilt from exactly the bytes that will be stored and its SHA-256
//! compared with the upload's. What fails that check is stored whole instead, and the report
//! says why.

mod expanded;
mod get;
mod put;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metadata::{DgMetadata, FORMAT_COMPACT};

pub(super) use expanded::{compress_xz, xz_content_sha256};
pub(super) use get::{drain_xz_into, restore_into};

/// The xz preset of compact references unless configured. An expanded form is mostly
/// token streams, which xz shrinks by a few percent only: on a 16.7 MB botocore wheel's
/// expanded form, preset 0 saves 1.6% in 6 s, preset 3 2.7% in 16 s (34 MB of encoder
/// memory), preset 9 3.3% in 55 s; any preset's dictionary is capped
/// ([`expanded::DICT_CAP`]) so that the encoder stays far below the 512 MiB bound.
pub const DEFAULT_XZ_PRESET: u32 = 3;

/// How a deltaspace stores its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StorageFormat {
    /// `reference.bin` and VCDIFF deltas of the files as they are: what the Python tool and
    /// the proxy read.
    #[default]
    Compatible,
    /// `reference.dgx` and deltas between expanded forms: far smaller for compressed
    /// archives, readable only by this tool.
    Compact,
}

impl StorageFormat {
    /// Parses `compatible` or `compact`.
    pub fn parse(s: &str) -> Option<StorageFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compatible" => Some(StorageFormat::Compatible),
            "compact" => Some(StorageFormat::Compact),
            _ => None,
        }
    }

    /// The name used in settings and listings.
    pub fn name(self) -> &'static str {
        match self {
            StorageFormat::Compatible => "compatible",
            StorageFormat::Compact => "compact",
        }
    }
}

/// The format of a stored object from its metadata: compatible without `dg-format`, compact
/// with `compact/1`, and refused otherwise (a newer writer made it).
pub(crate) fn object_format(bucket: &str, key: &str, meta: &DgMetadata) -> Result<StorageFormat> {
    match meta.format.as_deref() {
        None => Ok(StorageFormat::Compatible),
        Some(FORMAT_COMPACT) => Ok(StorageFormat::Compact),
        Some(other) => Err(Error::NewerFormat {
            bucket: bucket.to_string(),
            key: key.to_string(),
            format: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_read_from_dg_format_and_newer_ones_refused() {
        let with = |f: Option<&str>| DgMetadata {
            format: f.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            object_format("b", "k", &with(None)).unwrap(),
            StorageFormat::Compatible
        );
        assert_eq!(
            object_format("b", "k", &with(Some("compact/1"))).unwrap(),
            StorageFormat::Compact
        );
        for newer in ["compact/2", "dense/1"] {
            let e = object_format("b", "a/k.delta", &with(Some(newer))).unwrap_err();
            assert!(matches!(e, Error::NewerFormat { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("s3://b/a/k.delta") && text.contains("newer") && text.contains(newer),
                "{text}"
            );
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in [StorageFormat::Compatible, StorageFormat::Compact] {
            assert_eq!(StorageFormat::parse(f.name()), Some(f));
        }
        assert_eq!(StorageFormat::parse("dense"), None);
    }
}
