//! The lifecycle of a deltaspace's reference (`reference.bin`, or `reference.dgx` in the
//! compact format): finding it, holding verified bytes of it, restoring it, and deleting it
//! only when no delta can need it. Both formats follow the same rules, told apart only by the
//! reference key: a compact reference is stored as xz and known by the SHA-256 of its content
//! (the expanded form), which is what the cache holds and what deltas name.
//!
//! Writers take no lock, so the rules (docs/format.md, "Lifecycle") are written for any
//! interleaving of writers, deleters and crashes:
//! - a writer never deletes a reference it made visible, even when its own upload fails;
//! - after storing a delta, a writer checks that the reference it encoded against is still
//!   there, and restores it (create-if-absent) from the verified bytes it holds if not;
//! - deleters of one reference take turns (`lease.rs`); the one whose turn it is copies the
//!   reference to a *retired* copy under `.deltaglider/retired/`, deletes it, looks for
//!   deltas again and restores it if any appeared, and only then removes the retired copy.
//!   A deleter that dies on the way leaves the retired copy, which readers fall back on (by
//!   content hash) and `purge` puts back or collects.

mod confirm;
mod fetch;
mod retire;

use super::Engine;
use crate::deltaspace::{self, COMPACT_REFERENCE_NAME};
use crate::error::{Error, Result};
use crate::metadata::{DgMetadata, FORMAT_COMPACT, UserMetadata};
use crate::storage::StorageProtection;

/// Where retired references wait: `.deltaglider/retired/<reference key>/<sha256>.<random>`.
pub const RETIRED_PREFIX: &str = ".deltaglider/retired/";

/// A reference as it is in the store now.
#[derive(Debug, Clone)]
pub(crate) struct LiveReference {
    /// Its content's SHA-256: the recorded `dg-file-sha256`, or for a compact reference
    /// `dg-expanded-sha256`.
    pub sha256: String,
    /// Its metadata, to write it back exactly as it was.
    pub metadata: UserMetadata,
    /// Its storage class and encryption as the store reports them (never its ACL), kept
    /// by its retired copy and by a restore that asks for nothing else.
    pub protection: StorageProtection,
}

/// The stored key of a retired copy of `ref_key` with content `sha256`.
fn retired_key(ref_key: &str, sha256: &str) -> String {
    format!(
        "{RETIRED_PREFIX}{ref_key}/{sha256}.{:016x}",
        rand::random::<u64>()
    )
}

/// `(reference key, sha256)` of a retired copy's key.
pub(super) fn parse_retired_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(RETIRED_PREFIX)?;
    let (ref_key, leaf) = rest.rsplit_once('/')?;
    let (sha, _) = leaf.split_once('.')?;
    (deltaspace::is_reference_name(deltaspace::file_name(ref_key)) && sha.len() == 64)
        .then_some((ref_key, sha))
}

/// True if `ref_key` names a compact reference, whose stored bytes are the xz of its
/// content.
pub(crate) fn is_compact_reference(ref_key: &str) -> bool {
    deltaspace::file_name(ref_key) == COMPACT_REFERENCE_NAME
}

/// The listing prefixes (with delimiter `/`) that together hold exactly the keys of
/// deltaspace `space`: `<space>/` for a named one; for the bucket root both the keys without
/// any `/` and those whose only `/` leads (`/app.zip`: everything before its last `/` is
/// empty, so it belongs to the root too).
fn member_prefixes(space: &str) -> Vec<String> {
    if space.is_empty() {
        vec![String::new(), "/".to_string()]
    } else {
        vec![format!("{space}/")]
    }
}

impl Engine {
    /// The reference at `ref_key` now, `None` if there is none. A reference without a
    /// recorded hash is refused: nothing can be built or verified against it.
    pub(crate) async fn live_reference(
        &self,
        bucket: &str,
        ref_key: &str,
    ) -> Result<Option<LiveReference>> {
        let Some(info) = self.store.head_object(bucket, ref_key).await? else {
            return Ok(None);
        };
        let protection = info.protection;
        let metadata = info.metadata.unwrap_or_default();
        let meta = DgMetadata::parse(&metadata);
        let format = super::compact::object_format(bucket, ref_key, &meta)?;
        let (sha256, field) = if is_compact_reference(ref_key) {
            if format != super::StorageFormat::Compact {
                return Err(Error::InvalidMetadata {
                    bucket: bucket.to_string(),
                    key: ref_key.to_string(),
                    reason: format!("a compact reference without dg-format {FORMAT_COMPACT}"),
                });
            }
            (meta.expanded_sha256, "dg-expanded-sha256")
        } else {
            (meta.file_sha256, "dg-file-sha256")
        };
        let sha256 = sha256.ok_or_else(|| Error::InvalidMetadata {
            bucket: bucket.to_string(),
            key: ref_key.to_string(),
            reason: format!("reference has no {field}; refusing to build deltas against it"),
        })?;
        Ok(Some(LiveReference {
            sha256,
            metadata,
            protection,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_keys_name_their_reference_and_hash() {
        let sha = "a".repeat(64);
        for ref_key in ["reference.bin", "app/v1/reference.bin", "/reference.bin"] {
            let k = retired_key(ref_key, &sha);
            assert!(deltaspace::is_hidden(&k), "{k}");
            assert_eq!(parse_retired_key(&k), Some((ref_key, sha.as_str())));
        }
        assert_eq!(parse_retired_key(".deltaglider/retired/x/y.z"), None);
    }

    #[test]
    fn the_root_deltaspace_includes_keys_with_a_leading_slash() {
        assert_eq!(deltaspace::of_key("/app-2.zip.delta"), "");
        assert_eq!(member_prefixes(""), ["", "/"]);
        assert_eq!(member_prefixes("a"), ["a/"]);
    }
}
