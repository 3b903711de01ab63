//! The `aws s3` object and connection flags, turned into library options; and `head`,
//! which shows what they recorded.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use deltaglider::PutRequestOptions;
use deltaglider::UserMetadata;
use deltaglider::config::{Config, Endpoint};
use deltaglider::storage::{
    Encryption, MetadataDirective, ObjectHeaders, ObjectSettings, StorageProtection,
};

use super::args::{Cli, Command, ObjectArgs};

/// A bad flag value: exit code 2, like every bad argument.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(super::exit::usage(format!($($t)*)))
    };
}

/// `--storage-class` values `aws s3` accepts.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

/// `--acl` values `aws s3` accepts.
const ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// Upload options from a storing command's flags. `copy` is true when both ends are
/// `s3://` (the metadata directive matters only there).
pub fn put_options(object: &ObjectArgs, no_delta: bool, copy: bool) -> Result<PutRequestOptions> {
    let user_metadata = match &object.metadata {
        Some(m) => parse_metadata(m)?,
        None => UserMetadata::new(),
    };
    let metadata_directive = match object.metadata_directive.as_deref() {
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => MetadataDirective::Replace,
        Some(_) => MetadataDirective::Copy,
        // As `aws s3`: new metadata on a copy replaces the source's.
        None if object.metadata.is_some() => MetadataDirective::Replace,
        None => MetadataDirective::Copy,
    };
    let headers = ObjectHeaders {
        cache_control: object.cache_control.clone(),
        content_disposition: object.content_disposition.clone(),
        content_encoding: object.content_encoding.clone(),
        content_language: object.content_language.clone(),
        expires: object.expires.as_deref().map(parse_expires).transpose()?,
    };
    if copy && metadata_directive == MetadataDirective::Copy {
        let ignored = header_flags(object);
        if !ignored.is_empty() {
            eprintln!(
                "deltaglider: warning: {} ignored: copies keep the source's Content-Type, \
                 headers and metadata (add --metadata-directive REPLACE to set them)",
                ignored.join(", ")
            );
        }
    }
    let mut options = PutRequestOptions::default()
        .no_delta(no_delta)
        .object(ObjectSettings {
            headers,
            protection: protection(object)?,
            guess_content_type: !object.no_guess_mime_type,
            metadata_directive,
        });
    options.content_type = object.content_type.clone();
    options.user_metadata = user_metadata;
    Ok(options)
}

/// The header flags given (those a `COPY` copy does not apply).
fn header_flags(o: &ObjectArgs) -> Vec<&'static str> {
    [
        (o.content_type.is_some(), "--content-type"),
        (o.cache_control.is_some(), "--cache-control"),
        (o.content_disposition.is_some(), "--content-disposition"),
        (o.content_encoding.is_some(), "--content-encoding"),
        (o.content_language.is_some(), "--content-language"),
        (o.expires.is_some(), "--expires"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect()
}

/// The protection flags given (those the local store has no use for).
fn protection_flags(o: &ObjectArgs) -> Vec<&'static str> {
    [
        (o.storage_class.is_some(), "--storage-class"),
        (o.sse.is_some(), "--sse"),
        (o.sse_kms_key_id.is_some(), "--sse-kms-key-id"),
        (o.acl.is_some(), "--acl"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect()
}

fn protection(o: &ObjectArgs) -> Result<StorageProtection> {
    if let Some(c) = &o.storage_class
        && !STORAGE_CLASSES.contains(&c.as_str())
    {
        bail!(
            "--storage-class {c}: not a storage class (one of {})",
            STORAGE_CLASSES.join(", ")
        );
    }
    if let Some(a) = &o.acl
        && !ACLS.contains(&a.as_str())
    {
        bail!("--acl {a}: not a canned ACL (one of {})", ACLS.join(", "));
    }
    Ok(StorageProtection {
        storage_class: o.storage_class.clone(),
        encryption: parse_sse(o.sse.as_deref(), o.sse_kms_key_id.as_deref())?,
        acl: o.acl.clone(),
    })
}

/// `--sse` and `--sse-kms-key-id`.
pub fn parse_sse(sse: Option<&str>, kms_key: Option<&str>) -> Result<Option<Encryption>> {
    match (sse, kms_key) {
        (None, None) => Ok(None),
        (Some("AES256"), None) => Ok(Some(Encryption::Aes256)),
        (Some("aws:kms"), key) => Ok(Some(Encryption::Kms {
            key_id: key.map(str::to_string),
        })),
        (Some("AES256"), Some(_)) | (None, Some(_)) => {
            bail!("--sse-kms-key-id needs --sse aws:kms")
        }
        (Some(other), _) => bail!("--sse {other}: use AES256 or aws:kms"),
    }
}

/// `--metadata`: `KEY=VALUE,KEY2=VALUE2` or a JSON object of strings, as `aws s3` takes it.
pub fn parse_metadata(s: &str) -> Result<UserMetadata> {
    let mut out = UserMetadata::new();
    let trimmed = s.trim();
    let pairs: Vec<(String, String)> = if trimmed.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| super::exit::usage(format!("--metadata: not a JSON object: {e}")))?;
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(v) => Ok((k, v)),
                other => bail!("--metadata: the value of '{k}' must be a string, not {other}"),
            })
            .collect::<Result<_>>()?
    } else {
        trimmed
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => Ok((k.trim().to_string(), v.to_string())),
                None => bail!("--metadata: '{p}' is not KEY=VALUE"),
            })
            .collect::<Result<_>>()?
    };
    if pairs.is_empty() {
        bail!("--metadata: no KEY=VALUE given");
    }
    for (k, v) in pairs {
        let valid = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            bail!("--metadata: key '{k}': use ASCII letters, digits, '-' and '_'");
        }
        // S3 folds metadata keys to lowercase; two keys that fold together would collide.
        if out.insert(k.to_ascii_lowercase(), v).is_some() {
            bail!("--metadata: key '{k}' given twice");
        }
    }
    Ok(out)
}

/// `--expires`: RFC 3339 / ISO 8601 (`2030-01-31T12:00:00Z`, without zone meaning UTC), a
/// date, an HTTP date (`Thu, 31 Jan 2030 12:00:00 GMT`) or Unix seconds.
pub fn parse_expires(s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(secs) = t.parse::<i64>()
        && let Some(d) = DateTime::from_timestamp(secs, 0)
    {
        return Ok(d);
    }
    bail!(
        "--expires '{s}': use an ISO 8601 time (2030-01-31T12:00:00Z), a date (2030-01-31), \
         an HTTP date (Thu, 31 Jan 2030 12:00:00 GMT) or Unix seconds"
    )
}

/// One warning naming the flags the local store has no use for, if any were given.
pub fn warn_inapplicable(cli: &Cli, config: &Config) {
    let Endpoint::Local(root) = &config.endpoint else {
        return;
    };
    // Only flags: an AWS_CA_BUNDLE set for other tools is no reason to warn.
    let c = &cli.global.connection;
    let mut flags: Vec<&str> = [
        (c.page_size.is_some(), "--page-size"),
        (c.no_verify_ssl, "--no-verify-ssl"),
        (c.ca_bundle.is_some(), "--ca-bundle"),
        (c.cli_read_timeout.is_some(), "--cli-read-timeout"),
        (c.cli_connect_timeout.is_some(), "--cli-connect-timeout"),
        (c.no_sign_request, "--no-sign-request"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    let object = match &cli.command {
        Command::Cp(a) => Some(&a.object),
        Command::Mv(a) => Some(&a.object),
        Command::Sync(a) => Some(&a.object),
        _ => None,
    };
    if let Some(o) = object {
        flags.extend(protection_flags(o));
    }
    if flags.is_empty() {
        return;
    }
    eprintln!(
        "deltaglider: warning: the local store ({}) has no storage classes, encryption, ACLs, \
         TLS, request signing or listing pages; ignored: {}",
        root.display(),
        flags.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_shorthand_and_json_forms() {
        let m = parse_metadata("Build=42,branch=main").unwrap();
        assert_eq!(m["build"], "42");
        assert_eq!(m["branch"], "main");
        let j = parse_metadata(r#"{"Build": "42", "note": "a=b, c"}"#).unwrap();
        assert_eq!(j["build"], "42");
        assert_eq!(j["note"], "a=b, c");
        // A value may hold '=' in the shorthand too.
        assert_eq!(parse_metadata("k=a=b").unwrap()["k"], "a=b");
        assert_eq!(parse_metadata("k=").unwrap()["k"], "");
    }

    #[test]
    fn bad_metadata_names_what_is_wrong() {
        for (input, needle) in [
            ("novalue", "'novalue' is not KEY=VALUE"),
            ("=v", "key ''"),
            ("a b=v", "key 'a b'"),
            (r#"{"n": 1}"#, "must be a string"),
            ("{not json", "not a JSON object"),
            ("K=1,k=2", "given twice"),
            ("", "no KEY=VALUE"),
        ] {
            let e = parse_metadata(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input:?}: {e}");
            assert!(e.contains("--metadata"), "{e}");
        }
    }

    #[test]
    fn expires_accepts_the_aws_forms() {
        let want = DateTime::parse_from_rfc3339("2030-01-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for s in [
            "2030-01-31T12:00:00Z",
            "2030-01-31T13:00:00+01:00",
            "2030-01-31T12:00:00",
            "2030-01-31 12:00:00",
            "Thu, 31 Jan 2030 12:00:00 GMT",
            "1896091200",
        ] {
            assert_eq!(parse_expires(s).unwrap(), want, "{s}");
        }
        assert_eq!(
            parse_expires("2030-01-31").unwrap(),
            want - chrono::Duration::hours(12)
        );
        let e = parse_expires("next tuesday").unwrap_err().to_string();
        assert!(e.contains("--expires 'next tuesday'"), "{e}");
    }

    #[test]
    fn sse_forms() {
        assert_eq!(parse_sse(None, None).unwrap(), None);
        assert_eq!(
            parse_sse(Some("AES256"), None).unwrap(),
            Some(Encryption::Aes256)
        );
        assert_eq!(
            parse_sse(Some("aws:kms"), Some("k1")).unwrap(),
            Some(Encryption::Kms {
                key_id: Some("k1".into())
            })
        );
        assert!(parse_sse(None, Some("k1")).is_err());
        assert!(parse_sse(Some("AES256"), Some("k1")).is_err());
        assert!(parse_sse(Some("rot13"), None).is_err());
    }

    #[test]
    fn metadata_on_a_copy_replaces_unless_told_otherwise() {
        let with_meta = ObjectArgs {
            metadata: Some("a=1".into()),
            ..Default::default()
        };
        let o = put_options(&with_meta, false, true).unwrap();
        assert_eq!(o.object.metadata_directive, MetadataDirective::Replace);
        let keep = ObjectArgs {
            metadata_directive: Some("copy".into()),
            ..with_meta
        };
        let o = put_options(&keep, false, true).unwrap();
        assert_eq!(o.object.metadata_directive, MetadataDirective::Copy);
        let o = put_options(&ObjectArgs::default(), false, true).unwrap();
        assert_eq!(o.object.metadata_directive, MetadataDirective::Copy);
        assert!(o.object.guess_content_type);
    }

    #[test]
    fn storage_class_and_acl_are_checked() {
        let bad = ObjectArgs {
            storage_class: Some("CHEAP".into()),
            ..Default::default()
        };
        let e = put_options(&bad, false, false).unwrap_err().to_string();
        assert!(e.contains("--storage-class CHEAP"), "{e}");
        let bad = ObjectArgs {
            acl: Some("everyone".into()),
            ..Default::default()
        };
        let e = put_options(&bad, false, false).unwrap_err().to_string();
        assert!(e.contains("--acl everyone"), "{e}");
    }
}
