//! The entity tag a logical object is reported with.

use super::StoredAs;

/// The entity tag of a logical object, the same from a HEAD, a GET and a listing.
///
/// An object stored whole keeps the store's tag (on S3 the MD5 of its bytes, which are the
/// original's). A delta's stored tag describes the delta, not the original, so it gets the
/// quoted SHA-256 of the original instead: 64 hex digits, which no client mistakes for an
/// MD5. Whole objects in a store without tags (the local store) take the SHA-256 too.
pub fn logical_etag(
    stored_as: StoredAs,
    store_etag: Option<&str>,
    sha256: Option<&str>,
) -> Option<String> {
    match (stored_as, store_etag, sha256) {
        (StoredAs::Delta, _, Some(sha)) => Some(format!("\"{sha}\"")),
        (StoredAs::Delta, _, None) => None,
        (_, Some(tag), _) => Some(tag.to_string()),
        (_, None, sha) => sha.map(|sha| format!("\"{sha}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_delta_is_tagged_by_the_sha256_of_its_original_not_by_its_stored_tag() {
        let tag = logical_etag(
            StoredAs::Delta,
            Some("\"d41d8cd98f00b204e9800998ecf8427e\""),
            Some(SHA),
        );
        assert_eq!(tag.as_deref(), Some(format!("\"{SHA}\"").as_str()));
        assert_eq!(logical_etag(StoredAs::Delta, Some("\"x\""), None), None);
    }

    #[test]
    fn an_object_stored_whole_keeps_the_stores_tag_or_else_its_sha256() {
        let md5 = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        for kind in [StoredAs::Direct, StoredAs::Plain, StoredAs::Whole] {
            assert_eq!(
                logical_etag(kind, Some(md5), Some(SHA)).as_deref(),
                Some(md5)
            );
            assert_eq!(
                logical_etag(kind, None, Some(SHA)),
                Some(format!("\"{SHA}\""))
            );
            assert_eq!(logical_etag(kind, None, None), None);
        }
    }
}
