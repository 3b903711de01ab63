//! ListObjectsV2 and ListObjects (V1): logical objects with their original sizes;
//! references and internal objects are never listed.
//!
//! A page is collected from the start of the prefix, skipping what sorts at or before
//! the marker (the continuation token is the last key returned): a logical key can sort
//! before the stored key that holds it (`a` is stored as `a.delta`), so store order alone
//! cannot resume a listing.

use std::collections::BTreeMap;

use deltaglider::{Client, ListEntry, ListObjectsOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::s3_error;
use crate::time::timestamp;

/// What a delta's stored key adds to its logical key (docs/format.md).
const DELTA_SUFFIX: &str = ".delta";

/// S3's default and largest page.
const MAX_KEYS: usize = 1000;

/// One page of a listing as S3 returns it.
#[derive(Debug, Default)]
struct Page {
    objects: Vec<ListEntry>,
    prefixes: Vec<String>,
    /// The last key or prefix returned, when more follow.
    next_marker: Option<String>,
}

/// What to list.
struct Query<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    marker: Option<&'a str>,
    max_keys: usize,
}

/// A listed name: an object, or a common prefix.
enum Item {
    Object(ListEntry),
    Prefix,
}

/// The common prefix `key` rolls up into under `delimiter`, if any.
fn rolled_up(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}

async fn page(client: &Client, q: &Query<'_>) -> S3Result<Page> {
    if q.max_keys == 0 {
        return Ok(Page::default());
    }
    // `/` is grouped by the library (and by the store); any other delimiter over a
    // recursive listing.
    let library_groups = q.delimiter == Some("/");
    let options = ListObjectsOptions::default()
        .recursive(!library_groups)
        .page_size(MAX_KEYS);
    let mut pages = client.list_objects(q.bucket, q.prefix, &options);
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let after = |name: &str| q.marker.is_none_or(|m| name > m);
    // A logical key is stored as itself or as `<key>.delta`, which can sort far after it
    // (`build-0001`..`build-3000` lie between `build` and `build.delta`). The page is
    // complete once the store has listed every stored form of a key up to its last one.
    let mut reached = String::new();
    while let Some(listing) = pages.next_page().await {
        let listing = listing.map_err(s3_error)?;
        for p in listing.prefixes {
            if p > reached {
                reached.clone_from(&p);
            }
            if after(&p) {
                items.insert(p, Item::Prefix);
            }
        }
        for o in listing.objects {
            if o.stored_key > reached {
                reached.clone_from(&o.stored_key);
            }
            let name = match q.delimiter {
                Some(d) if !library_groups => rolled_up(&o.key, q.prefix, d),
                _ => None,
            };
            match name {
                Some(p) if after(&p) => {
                    items.insert(p, Item::Prefix);
                }
                Some(_) => {}
                None if after(&o.key) => {
                    items.insert(o.key.clone(), Item::Object(o));
                }
                None => {}
            }
        }
        if items.len() > q.max_keys {
            let complete = match q.max_keys.checked_sub(1) {
                Some(last) => items
                    .keys()
                    .nth(last)
                    .is_some_and(|boundary| reached >= furthest_stored_form(boundary)),
                None => true,
            };
            if complete {
                break;
            }
        }
    }
    let truncated = items.len() > q.max_keys;
    let mut page = Page::default();
    let mut last = None;
    for (name, item) in items.into_iter().take(q.max_keys) {
        match item {
            Item::Object(o) => page.objects.push(o),
            Item::Prefix => page.prefixes.push(name.clone()),
        }
        last = Some(name);
    }
    if truncated {
        page.next_marker = last;
    }
    Ok(page)
}

/// The last stored key that can hold a logical key at or before `boundary`: a key that
/// is not a prefix of `boundary` differs from it at a smaller byte, and so does its
/// `.delta` form; a prefix `k` of it is stored as late as `k.delta`.
fn furthest_stored_form(boundary: &str) -> String {
    (1..=boundary.len())
        .filter(|&i| boundary.is_char_boundary(i))
        .map(|i| format!("{}{DELTA_SUFFIX}", &boundary[..i]))
        .max()
        .unwrap_or_default()
}

/// Percent-encodes a name for `encoding-type=url` (all but unreserved characters and `/`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names as the response carries them.
struct Encoding(bool);

impl Encoding {
    fn of(encoding_type: Option<&EncodingType>) -> S3Result<Self> {
        match encoding_type.map(|e| e.as_str()) {
            None => Ok(Encoding(false)),
            Some("url") => Ok(Encoding(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other}"
            )),
        }
    }

    fn name(&self, s: &str) -> String {
        if self.0 { url_encode(s) } else { s.to_string() }
    }

    fn echo(&self) -> Option<EncodingType> {
        self.0.then(|| EncodingType::from_static(EncodingType::URL))
    }
}

/// The owner a listing shows (V1 always, V2 with `fetch-owner`): the key the request was
/// signed with, which is allowed to read the bucket; none for an unsigned request.
fn owner(credentials: Option<&s3s::auth::Credentials>) -> Option<Owner> {
    credentials.map(|c| Owner {
        display_name: Some(c.access_key.clone()),
        id: Some(c.access_key.clone()),
    })
}

fn contents(page: &Page, enc: &Encoding, owner: Option<&Owner>) -> Vec<Object> {
    page.objects
        .iter()
        .map(|o| Object {
            owner: owner.cloned(),
            key: Some(enc.name(&o.key)),
            size: Some(o.size as i64),
            last_modified: o.last_modified.map(timestamp),
            e_tag: o
                .etag
                .as_deref()
                .map(|t| ETag::Strong(t.trim_matches('"').to_string())),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect()
}

fn common_prefixes(page: &Page, enc: &Encoding) -> Vec<CommonPrefix> {
    page.prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.name(p)),
        })
        .collect()
}

fn max_keys(requested: Option<MaxKeys>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

pub(crate) async fn list_objects_v2(
    client: &Client,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let owner = owner(req.credentials.as_ref()).filter(|_| i.fetch_owner == Some(true));
    let enc = Encoding::of(i.encoding_type.as_ref())?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
    let marker = i.continuation_token.as_deref().or(i.start_after.as_deref());
    let max = max_keys(i.max_keys)?;
    let page = page(
        client,
        &Query {
            bucket: &i.bucket,
            prefix: &prefix,
            delimiter: delimiter.as_deref(),
            marker,
            max_keys: max,
        },
    )
    .await?;
    let objects = contents(&page, &enc, owner.as_ref());
    let prefixes = common_prefixes(&page, &enc);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(enc.name(&prefix)),
        delimiter: delimiter.map(|d| enc.name(&d)),
        max_keys: Some(max as i32),
        key_count: Some((objects.len() + prefixes.len()) as i32),
        continuation_token: i.continuation_token,
        start_after: i.start_after.map(|s| enc.name(&s)),
        is_truncated: Some(page.next_marker.is_some()),
        next_continuation_token: page.next_marker,
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        encoding_type: enc.echo(),
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    client: &Client,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let owner = owner(req.credentials.as_ref());
    let enc = Encoding::of(i.encoding_type.as_ref())?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
    let max = max_keys(i.max_keys)?;
    let page = page(
        client,
        &Query {
            bucket: &i.bucket,
            prefix: &prefix,
            delimiter: delimiter.as_deref(),
            marker: i.marker.as_deref(),
            max_keys: max,
        },
    )
    .await?;
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        // S3 encodes a V1 listing's keys, prefixes, delimiter and markers, but not its
        // prefix (and clients decode only those).
        prefix: Some(prefix),
        delimiter: delimiter.map(|d| enc.name(&d)),
        marker: Some(i.marker.map(|m| enc.name(&m)).unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(page.next_marker.is_some()),
        next_marker: page.next_marker.as_deref().map(|m| enc.name(m)),
        contents: Some(contents(&page, &enc, owner.as_ref())),
        common_prefixes: Some(common_prefixes(&page, &enc)),
        encoding_type: enc.echo(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roll_up_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(rolled_up("a/b/c", "", "/").as_deref(), Some("a/"));
        assert_eq!(rolled_up("a/b/c", "a/", "/").as_deref(), Some("a/b/"));
        assert_eq!(rolled_up("a/b", "a/", "/"), None);
        assert_eq!(rolled_up("x-1-2", "x", "-").as_deref(), Some("x-"));
        assert_eq!(rolled_up("x-1-2", "x-", "-").as_deref(), Some("x-1-"));
        assert_eq!(rolled_up("ab::cd", "", "::").as_deref(), Some("ab::"));
    }

    #[test]
    fn url_encoding_keeps_unreserved_characters_and_slashes() {
        assert_eq!(url_encode("a/b-c_d.e~f"), "a/b-c_d.e~f");
        assert_eq!(url_encode("a b+c%d"), "a%20b%2Bc%25d");
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn max_keys_defaults_to_and_stops_at_1000() {
        assert_eq!(max_keys(None).unwrap(), 1000);
        assert_eq!(max_keys(Some(5)).unwrap(), 5);
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert!(max_keys(Some(-1)).is_err());
    }
}
