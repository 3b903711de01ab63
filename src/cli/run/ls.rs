//! `ls`: buckets, prefixes and objects with their original sizes.

use super::*;
use deltaglider::engine::StorageFormat;

pub(super) async fn ls(engine: &Engine, p: &Printer, args: LsArgs) -> Result<()> {
    let size = |n: u64| {
        if args.human_readable {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let Some(target) = args.target else {
        let buckets = deltaglider::storage::bucket_admin(&**engine.store())?
            .list_buckets()
            .await?;
        p.show(&Doc {
            json: json!({ "buckets": buckets.iter().map(|b| json!({"name": b.name, "created": b.created})).collect::<Vec<_>>() }),
            text: |out: &dyn Text| {
                for b in &buckets {
                    out.line(&format!("{} {}", listing_time(b.created), b.name));
                }
            },
        });
        return Ok(());
    };
    let url = parse_s3(&target)?;
    if !engine.store().bucket_exists(&url.bucket).await? {
        return Err(deltaglider::Error::NoSuchBucket(url.bucket).into());
    }
    let listing = engine.list(&url.bucket, &url.key, args.recursive).await?;
    let base_len = if args.recursive {
        0
    } else {
        url.key.rfind('/').map_or(0, |i| i + 1)
    };
    let total: u64 = listing.objects.iter().map(|o| o.size).sum();
    let stored: u64 = listing.objects.iter().map(|o| o.stored_size).sum();
    p.show(&Doc {
        json: json!({
            "bucket": url.bucket,
            "prefix": url.key,
            "prefixes": listing.prefixes,
            "objects": listing.objects,
            "total_objects": listing.objects.len(),
            "total_size": total,
            "total_stored_size": stored + listing.reference_bytes,
            "reference_bytes": listing.reference_bytes,
        }),
        text: |out: &dyn Text| {
            for prefix in &listing.prefixes {
                out.line(&format!(
                    "{:>30} {}",
                    "PRE",
                    &prefix[base_len.min(prefix.len())..]
                ));
            }
            for o in &listing.objects {
                let name = &o.key[base_len.min(o.key.len())..];
                if args.long {
                    let how = if o.format == Some(StorageFormat::Compact) {
                        // a delta of the compact format
                        "compact".to_string()
                    } else {
                        serde_json::to_value(o.stored_as)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    };
                    out.line(&format!(
                        "{} {:>10} {:>10} {:>6}% {:<6} {name}",
                        listing_time(o.last_modified),
                        size(o.size),
                        size(o.stored_size),
                        saved(o.stored_size, o.size),
                        how,
                    ));
                } else {
                    out.line(&format!(
                        "{} {:>10} {name}",
                        listing_time(o.last_modified),
                        size(o.size)
                    ));
                }
            }
            if args.summarize {
                // One line per call: a line break inside a printed line is escaped like a key's.
                let stored_all = stored + listing.reference_bytes;
                out.line("");
                out.line(&format!("Total Objects: {}", listing.objects.len()));
                out.line(&format!("   Total Size: {}", size(total)));
                out.line(&format!(
                    "  Stored Size: {} (references: {})",
                    size(stored_all),
                    size(listing.reference_bytes)
                ));
                out.line(&format!("      Savings: {}%", saved(stored_all, total)));
            }
        },
    });
    Ok(())
}
