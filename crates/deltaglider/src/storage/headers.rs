//! What a writer can set on an object besides its bytes and user metadata, the way
//! `aws s3 cp` sets it: standard HTTP headers, and S3's storage class, encryption and ACL.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PutOptions;
use crate::metadata::UserMetadata;

/// HTTP headers kept with an object and returned when it is read, besides `Content-Type`.
/// Both stores keep them (the local store in its object header).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding`. Recorded only: the bytes are stored and returned as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Expires`: when caches must consider the object stale (sent as an HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl ObjectHeaders {
    /// True when no header is set.
    pub fn is_empty(&self) -> bool {
        *self == ObjectHeaders::default()
    }
}

/// Server-side encryption of an object's bytes at rest (`--sse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case")]
pub enum Encryption {
    /// S3-managed keys (`AES256`).
    #[serde(rename = "AES256")]
    Aes256,
    /// AWS KMS (`aws:kms`), with the given key or the account's default key.
    #[serde(rename = "aws:kms")]
    Kms {
        /// `--sse-kms-key-id`; `None` for the AWS-managed key.
        #[serde(skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
}

/// Where S3 keeps an object's bytes, how they are encrypted, who may read them. The local
/// store has none of these and ignores them. Not metadata: copies never inherit them, they
/// come from the writer each time (as with S3's `CopyObject`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageProtection {
    /// Storage class (`STANDARD_IA`, `GLACIER`, ...); `None` for the bucket's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Server-side encryption; `None` for the bucket's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Canned ACL (`private`, `public-read`, ...); `None` for the bucket's default. Never
    /// reported by reads (S3 returns ACLs only through a separate request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
}

impl StorageProtection {
    /// True when nothing is asked of the store.
    pub fn is_empty(&self) -> bool {
        *self == StorageProtection::default()
    }

    /// Each setting of `self` that is given, else `fallback`'s: what an object written
    /// again (a reference restored) gets when the writer asks for some settings only.
    pub fn or(&self, fallback: &StorageProtection) -> StorageProtection {
        StorageProtection {
            storage_class: self
                .storage_class
                .clone()
                .or_else(|| fallback.storage_class.clone()),
            encryption: self
                .encryption
                .clone()
                .or_else(|| fallback.encryption.clone()),
            acl: self.acl.clone().or_else(|| fallback.acl.clone()),
        }
    }
}

/// Whether an S3-to-S3 copy keeps the source's user metadata, `Content-Type` and headers
/// (`COPY`, the default) or takes them from the request (`REPLACE`), as in S3's
/// `x-amz-metadata-directive`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetadataDirective {
    /// Keep the source's.
    #[default]
    Copy,
    /// Use the request's (and only those).
    Replace,
}

/// What a caller sets on every object an upload or copy writes, besides the user metadata
/// and `Content-Type` of [`crate::engine::PutRequestOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    /// Headers of the delta or direct object (references carry none: they are not served).
    pub headers: ObjectHeaders,
    /// Storage class, encryption and ACL of every object written, references included: a
    /// reference holds the same bytes as its first delta and must be as protected.
    pub protection: StorageProtection,
    /// Without an explicit `Content-Type`, guess one from the object name's extension.
    pub guess_content_type: bool,
    /// How copies treat the source's metadata.
    pub metadata_directive: MetadataDirective,
}

impl ObjectSettings {
    /// The `Content-Type` to record for an object named `name`.
    pub fn content_type(&self, explicit: Option<&str>, name: &str) -> Option<String> {
        match explicit {
            Some(ct) => Some(ct.to_string()),
            None if self.guess_content_type => guess_content_type(name),
            None => None,
        }
    }

    /// Options of the put of a delta or direct object named `name`.
    pub fn object_put(
        &self,
        metadata: UserMetadata,
        explicit_content_type: Option<&str>,
        name: &str,
    ) -> PutOptions {
        PutOptions {
            metadata,
            content_type: self.content_type(explicit_content_type, name),
            headers: self.headers.clone(),
            protection: self.protection.clone(),
            if_none_match: false,
        }
    }

    /// Options of the put of a deltaspace's reference: protection only, created only if
    /// absent.
    pub fn reference_put(&self, metadata: UserMetadata) -> PutOptions {
        PutOptions {
            metadata,
            protection: self.protection.clone(),
            if_none_match: true,
            ..Default::default()
        }
    }
}

/// The MIME type of a file name from its extension, as `aws s3 cp` guesses one; `None`
/// when the extension is unknown (the store then records its default).
pub fn guess_content_type(name: &str) -> Option<String> {
    let name = name.rsplit('/').next().unwrap_or(name);
    // Python's mimetypes (which the AWS CLI uses) treats the compression suffix of a
    // tarball as an encoding and reports the archive type.
    for (suffix, ty) in [
        (".tar.gz", "application/x-tar"),
        (".tgz", "application/x-tar"),
        (".tar.bz2", "application/x-tar"),
        (".tar.xz", "application/x-tar"),
        (".tar.zst", "application/x-tar"),
    ] {
        if name.len() > suffix.len() && name.to_ascii_lowercase().ends_with(suffix) {
            return Some(ty.to_string());
        }
    }
    if !name.contains('.') || name.ends_with('.') {
        return None;
    }
    mime_guess::from_path(name).first_raw().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_guessed_from_the_extension() {
        assert_eq!(guess_content_type("a.txt").as_deref(), Some("text/plain"));
        assert_eq!(
            guess_content_type("dir/page.HTML").as_deref(),
            Some("text/html")
        );
        assert_eq!(
            guess_content_type("app.zip").as_deref(),
            Some("application/zip")
        );
        assert_eq!(
            guess_content_type("app.json").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            guess_content_type("app-1.2.tar.gz").as_deref(),
            Some("application/x-tar")
        );
        assert_eq!(guess_content_type("logo.png").as_deref(), Some("image/png"));
        assert_eq!(guess_content_type("README"), None);
        assert_eq!(guess_content_type("blob.unknown-ext-zz"), None);
        assert_eq!(guess_content_type("trailing."), None);
    }

    #[test]
    fn explicit_beats_guess_and_guessing_is_opt_in() {
        let guessing = ObjectSettings {
            guess_content_type: true,
            ..Default::default()
        };
        assert_eq!(
            guessing.content_type(Some("x/y"), "a.txt").as_deref(),
            Some("x/y")
        );
        assert_eq!(
            guessing.content_type(None, "a.txt").as_deref(),
            Some("text/plain")
        );
        let plain = ObjectSettings::default();
        assert_eq!(plain.content_type(None, "a.txt"), None);
    }

    #[test]
    fn protection_given_wins_setting_by_setting() {
        let original = StorageProtection {
            storage_class: Some("STANDARD_IA".into()),
            encryption: Some(Encryption::Aes256),
            acl: None,
        };
        let asked = StorageProtection {
            acl: Some("private".into()),
            encryption: Some(Encryption::Kms { key_id: None }),
            ..Default::default()
        };
        let merged = asked.or(&original);
        assert_eq!(merged.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(merged.encryption, Some(Encryption::Kms { key_id: None }));
        assert_eq!(merged.acl.as_deref(), Some("private"));
        assert_eq!(StorageProtection::default().or(&original), original);
    }

    #[test]
    fn references_get_protection_but_no_headers() {
        let s = ObjectSettings {
            headers: ObjectHeaders {
                cache_control: Some("no-cache".into()),
                ..Default::default()
            },
            protection: StorageProtection {
                storage_class: Some("STANDARD_IA".into()),
                encryption: Some(Encryption::Aes256),
                acl: Some("private".into()),
            },
            guess_content_type: true,
            metadata_directive: MetadataDirective::Copy,
        };
        let r = s.reference_put(UserMetadata::new());
        assert!(r.if_none_match);
        assert_eq!(r.protection, s.protection);
        assert!(r.headers.is_empty());
        assert_eq!(r.content_type, None);
        let o = s.object_put(UserMetadata::new(), None, "a.zip");
        assert_eq!(o.headers, s.headers);
        assert_eq!(o.content_type.as_deref(), Some("application/zip"));
        assert!(!o.if_none_match);
    }
}
