//! `s3://bucket/key` locations.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed `s3://bucket[/key]` location. `key` is empty for the bucket itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Url {
    /// Bucket name.
    pub bucket: String,
    /// Object key or prefix (may be empty, may end in `/`).
    pub key: String,
}

impl S3Url {
    /// Builds a location from its parts.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3Url {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Parses `s3://bucket`, `s3://bucket/`, `s3://bucket/some/key`.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://bucket/key"))?;
        let (bucket, key) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        validate_bucket_name(bucket)?;
        Ok(S3Url::new(bucket, key))
    }

    /// True if `s` looks like an S3 URL (used to tell local paths from remote ones).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// True if the key names a "directory" (empty or ending in `/`).
    pub fn is_dir_like(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Checks a bucket name against the S3 naming rules that matter for path-style access and
/// for the local store, where a bucket is a directory name.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidBucketName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.len() < 3 || name.len() > 63 {
        return Err(bad("must be 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(bad(
            "only lowercase letters, digits, '-' and '.' are allowed",
        ));
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(bad("must begin and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(bad("must not contain '..'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_bucket_and_key() {
        assert_eq!(S3Url::parse("s3://abc").unwrap(), S3Url::new("abc", ""));
        assert_eq!(S3Url::parse("s3://abc/").unwrap(), S3Url::new("abc", ""));
        assert_eq!(
            S3Url::parse("s3://abc/a/b.zip").unwrap(),
            S3Url::new("abc", "a/b.zip")
        );
        assert_eq!(
            S3Url::parse("s3://abc/a/").unwrap(),
            S3Url::new("abc", "a/")
        );
        assert!(S3Url::parse("s3://abc/a/").unwrap().is_dir_like());
        assert!(!S3Url::parse("s3://abc/a").unwrap().is_dir_like());
    }

    #[test]
    fn rejects_bad_urls_with_reason() {
        for bad in [
            "abc",
            "s3://",
            "s3:///key",
            "http://x/y",
            "s3://AB",
            "s3://a_b/x",
        ] {
            let err = S3Url::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(bad.trim_start_matches("s3://").split('/').next().unwrap())
                    || err.contains(bad),
                "{err}"
            );
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", key in "[a-zA-Z0-9/._ -]{0,40}") {
            let url = S3Url::new(bucket.clone(), key.clone());
            let parsed = S3Url::parse(&url.to_string()).unwrap();
            prop_assert_eq!(parsed, url);
        }
    }
}
