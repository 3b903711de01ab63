//! Who may do what: access keys, each read-only or read-write over every bucket or over a
//! list of buckets and prefixes, and what unsigned requests may read.
//!
//! The access file (TOML, kept apart from the config file, which never holds secrets):
//!
//! ```toml
//! [[key]]
//! id = "ci-upload"
//! secret = "…"
//! access = "read-write"            # or "read-only"
//! scopes = ["releases/app/", "nightly"]   # bucket, or bucket/prefix; omitted: every bucket
//!
//! [anonymous]                      # unsigned requests; omitted: none
//! read = ["releases/public/"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// A bucket, or the keys of a bucket under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    bucket: String,
    prefix: String,
}

impl Scope {
    fn parse(text: &str) -> Result<Scope, PolicyError> {
        let (bucket, prefix) = text.split_once('/').unwrap_or((text, ""));
        if bucket.is_empty() {
            return Err(PolicyError::Invalid(format!(
                "scope {text:?}: it must start with a bucket name"
            )));
        }
        Ok(Scope {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn whole_bucket(&self, bucket: &str) -> bool {
        self.bucket == bucket && self.prefix.is_empty()
    }

    fn covers_key(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }

    /// A listing of `prefix` shows only keys of this scope.
    fn covers_listing(&self, bucket: &str, prefix: &str) -> bool {
        self.bucket == bucket && prefix.starts_with(&self.prefix)
    }
}

/// What one caller (a key, or unsigned requests) may do.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub writes: bool,
    /// `None`: every bucket.
    pub scopes: Option<Vec<Scope>>,
}

impl Grant {
    pub(crate) fn full() -> Grant {
        Grant {
            writes: true,
            scopes: None,
        }
    }

    fn any_scope(&self, f: impl Fn(&Scope) -> bool) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.iter().any(f))
    }

    /// May see `bucket` at all (HEAD, in ListBuckets, list some prefix of it).
    pub(crate) fn sees_bucket(&self, bucket: &str) -> bool {
        self.any_scope(|s| s.bucket == bucket)
    }

    /// May change `bucket` itself (create, delete it).
    pub(crate) fn owns_bucket(&self, bucket: &str) -> bool {
        self.writes && self.any_scope(|s| s.whole_bucket(bucket))
    }

    pub(crate) fn reads_key(&self, bucket: &str, key: &str) -> bool {
        self.any_scope(|s| s.covers_key(bucket, key))
    }

    pub(crate) fn writes_key(&self, bucket: &str, key: &str) -> bool {
        self.writes && self.reads_key(bucket, key)
    }

    pub(crate) fn lists(&self, bucket: &str, prefix: &str) -> bool {
        self.any_scope(|s| s.covers_listing(bucket, prefix))
    }
}

/// The keys and the anonymous grant an endpoint serves under.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub(crate) keys: BTreeMap<String, (String, Grant)>,
    pub(crate) anonymous: Option<Grant>,
}

/// An access file that cannot be used; the message names what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value that makes no sense.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    key: Vec<KeyEntry>,
    anonymous: Option<AnonymousEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    secret: String,
    access: AccessLevel,
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AccessLevel {
    ReadOnly,
    ReadWrite,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnonymousEntry {
    read: Vec<String>,
}

fn scopes(list: &[String]) -> Result<Vec<Scope>, PolicyError> {
    list.iter().map(|s| Scope::parse(s)).collect()
}

impl Policy {
    /// One key that may do everything.
    pub fn single_key(access_key_id: String, secret_access_key: String) -> Policy {
        let mut keys = BTreeMap::new();
        keys.insert(access_key_id, (secret_access_key, Grant::full()));
        Policy {
            keys,
            anonymous: None,
        }
    }

    /// Every request, signed or not, may do everything.
    pub fn anonymous() -> Policy {
        Policy {
            keys: BTreeMap::new(),
            anonymous: Some(Grant::full()),
        }
    }

    /// The policy of an access file's text.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: File = toml::from_str(text)?;
        let mut policy = Policy::default();
        for k in file.key {
            if k.id.is_empty() || k.secret.is_empty() {
                return Err(PolicyError::Invalid(
                    "a key needs a non-empty id and secret".into(),
                ));
            }
            let grant = Grant {
                writes: matches!(k.access, AccessLevel::ReadWrite),
                scopes: k.scopes.as_deref().map(scopes).transpose()?,
            };
            if policy.keys.contains_key(&k.id) {
                return Err(PolicyError::Invalid(format!(
                    "key {:?} is listed twice",
                    k.id
                )));
            }
            policy.keys.insert(k.id, (k.secret, grant));
        }
        if let Some(a) = file.anonymous {
            policy.anonymous = Some(Grant {
                writes: false,
                scopes: Some(scopes(&a.read)?),
            });
        }
        if policy.keys.is_empty() && policy.anonymous.is_none() {
            return Err(PolicyError::Invalid(
                "no [[key]] and no [anonymous] section: nobody could use the endpoint".into(),
            ));
        }
        Ok(policy)
    }

    /// Whether anyone, signed or not, may do everything (`--anonymous`).
    pub(crate) fn is_open(&self) -> bool {
        self.keys.is_empty()
            && self
                .anonymous
                .as_ref()
                .is_some_and(|g| g.writes && g.scopes.is_none())
    }

    /// What unsigned requests get, in words (for the log at start); `None`: nothing.
    pub fn anonymous_access(&self) -> Option<String> {
        let grant = self.anonymous.as_ref()?;
        Some(match (&grant.scopes, grant.writes) {
            (None, true) => "full access".to_string(),
            (None, false) => "read access to every bucket".to_string(),
            (Some(scopes), writes) => {
                let list: Vec<String> = scopes
                    .iter()
                    .map(|s| format!("{}/{}", s.bucket, s.prefix))
                    .collect();
                let what = if writes { "access" } else { "read access" };
                format!("{what} to {}", list.join(", "))
            }
        })
    }

    /// The grant of a signed request's key, or of an unsigned request.
    pub(crate) fn grant(&self, access_key: Option<&str>) -> Option<&Grant> {
        match access_key {
            Some(id) => self.keys.get(id).map(|(_, g)| g),
            None => self.anonymous.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[key]]
id = "writer"
secret = "w-secret"
access = "read-write"
scopes = ["releases/app/", "nightly"]

[[key]]
id = "reader"
secret = "r-secret"
access = "read-only"

[anonymous]
read = ["releases/public/"]
"#;

    #[test]
    fn scopes_limit_keys_to_buckets_and_prefixes() {
        let p = Policy::from_toml(FILE).unwrap();
        let w = p.grant(Some("writer")).unwrap();
        assert!(w.writes_key("releases", "app/v1.zip"));
        assert!(!w.writes_key("releases", "other/v1.zip"));
        assert!(!w.writes_key("releases", "ap"));
        assert!(w.writes_key("nightly", "anything"));
        assert!(!w.reads_key("elsewhere", "x"));
        assert!(w.lists("releases", "app/"));
        assert!(w.lists("releases", "app/sub"));
        assert!(
            !w.lists("releases", ""),
            "the bucket's root would show other prefixes"
        );
        assert!(!w.lists("releases", "ap"));
        assert!(w.sees_bucket("releases") && w.sees_bucket("nightly"));
        assert!(!w.sees_bucket("elsewhere"));
        assert!(w.owns_bucket("nightly") && !w.owns_bucket("releases"));

        let r = p.grant(Some("reader")).unwrap();
        assert!(r.reads_key("any", "thing") && r.lists("any", ""));
        assert!(!r.writes_key("any", "thing") && !r.owns_bucket("any"));

        let a = p.grant(None).unwrap();
        assert!(a.reads_key("releases", "public/x"));
        assert!(!a.reads_key("releases", "app/x"));
        assert!(!a.writes_key("releases", "public/x"));
        assert!(p.grant(Some("stranger")).is_none());
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        let e = |text: &str| Policy::from_toml(text).unwrap_err().to_string();
        assert!(e("").contains("nobody"));
        assert!(e("[[key]]\nid = \"a\"\nsecret = \"s\"\naccess = \"admin\"\n").contains("admin"));
        assert!(
            e("[[key]]\nid = \"a\"\nsecret = \"s\"\naccess = \"read-only\"\nscope = []\n")
                .contains("scope")
        );
        assert!(
            e("[[key]]\nid = \"a\"\nsecret = \"s\"\naccess = \"read-only\"\nscopes = [\"/x\"]\n")
                .contains("bucket")
        );
        let twice = "[[key]]\nid = \"a\"\nsecret = \"s\"\naccess = \"read-only\"\n".repeat(2);
        assert!(e(&twice).contains("twice"));
        assert!(e("[[key]]\nid = \"\"\nsecret = \"s\"\naccess = \"read-only\"\n").contains("id"));
    }

    #[test]
    fn the_simple_policies_grant_everything_to_their_caller_only() {
        let one = Policy::single_key("k".into(), "s".into());
        assert!(one.grant(Some("k")).unwrap().owns_bucket("b"));
        assert!(one.grant(None).is_none() && one.grant(Some("x")).is_none());
        let anyone = Policy::anonymous();
        assert!(anyone.grant(None).unwrap().writes_key("b", "k"));
        assert!(anyone.is_open() && !one.is_open());
        let reads_only = Policy::from_toml("[anonymous]\nread = [\"b/public/\"]\n").unwrap();
        assert!(
            !reads_only.is_open(),
            "an anonymous-only file still has a guard"
        );
        assert_eq!(anyone.anonymous_access().as_deref(), Some("full access"));
        assert_eq!(one.anonymous_access(), None);
        let file = Policy::from_toml(FILE).unwrap();
        assert_eq!(
            file.anonymous_access().as_deref(),
            Some("read access to releases/public/")
        );
    }
}
