//! `head`: what is stored for one object, with the properties its writer set.

use super::*;
use deltaglider::ObjectDetails;
use deltaglider::storage::{Encryption, ObjectInfo};

/// `head`: what is stored for one object, with the properties its writer set.
pub(super) async fn head(client: &Client, args: HeadArgs) -> Result<Head> {
    let url = S3Url::parse(&args.target)?;
    if url.is_dir_like() {
        bail!("{url} names a prefix, not an object");
    }
    let details = client.head_object(&url.bucket, &url.key).await?;
    let stored = client
        .head_stored_object(&url.bucket, &details.stored_key)
        .await?
        .ok_or_else(|| deltaglider::Error::NotFound {
            bucket: url.bucket.clone(),
            key: url.key.clone(),
        })?;
    Ok(Head {
        url,
        details,
        stored,
    })
}

/// What `head` found: the object as DeltaGlider describes it, and its stored headers.
pub(super) struct Head {
    url: S3Url,
    details: ObjectDetails,
    stored: ObjectInfo,
}

impl Render for Head {
    fn json(&self) -> Option<Json> {
        let mut doc = serde_json::to_value(&self.details).expect("reports serialize");
        doc["headers"] = serde_json::to_value(&self.stored.headers).expect("reports serialize");
        doc["protection"] =
            serde_json::to_value(&self.stored.protection).expect("reports serialize");
        Some(Json::of(&doc))
    }

    fn text(&self, out: &dyn Text) {
        let (url, details, stored) = (&self.url, &self.details, &self.stored);
        let how = serde_json::to_value(details.stored_as)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut lines = vec![
            format!("{url}"),
            format!(
                "  size:                {} ({})",
                details.size,
                human_size(details.size)
            ),
            format!(
                "  stored as:           {how} {} ({})",
                details.stored_key,
                human_size(details.stored_size)
            ),
        ];
        let mut field = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                lines.push(format!("  {:<20} {v}", format!("{name}:")));
            }
        };
        field("sha256", details.sha256.clone());
        field(
            "last-modified",
            details.last_modified.map(|t| t.to_rfc3339()),
        );
        field("content-type", details.content_type.clone());
        let h = &stored.headers;
        field("cache-control", h.cache_control.clone());
        field("content-disposition", h.content_disposition.clone());
        field("content-encoding", h.content_encoding.clone());
        field("content-language", h.content_language.clone());
        field("expires", h.expires.map(|t| t.to_rfc2822()));
        let p = &stored.protection;
        field("storage-class", p.storage_class.clone());
        field(
            "encryption",
            p.encryption.as_ref().map(|e| match e {
                Encryption::Aes256 => "AES256".to_string(),
                Encryption::Kms { key_id: None } => "aws:kms".to_string(),
                Encryption::Kms { key_id: Some(k) } => format!("aws:kms ({k})"),
            }),
        );
        for (k, v) in &details.user_metadata {
            field(&format!("metadata {k}"), Some(v.clone()));
        }
        for l in lines {
            out.raw(&l);
        }
    }
}
