//! `ls`: buckets, prefixes and objects with their original sizes.

use super::*;
use deltaglider::{ListObjectsOptions, StorageFormat};

pub(super) async fn ls(client: &Client, p: &Printer, args: LsArgs) -> Result<()> {
    let size = |n: u64| {
        if args.human_readable {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let Some(target) = args.target else {
        let buckets = client.list_buckets().await?;
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
    if !client.bucket_exists(&url.bucket).await? {
        return Err(deltaglider::Error::NoSuchBucket(url.bucket).into());
    }
    let options = ListObjectsOptions::default().recursive(args.recursive);
    let base_len = if args.recursive {
        0
    } else {
        url.key.rfind('/').map_or(0, |i| i + 1)
    };
    if p.json {
        // One document, with totals: every page first.
        let listing = client
            .list_all_objects(&url.bucket, &url.key, &options)
            .await?;
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
            text: |_: &dyn Text| {},
        });
        return Ok(());
    }
    // Lines page by page, as each listing request returns.
    let (mut objects, mut total, mut stored, mut references) = (0usize, 0u64, 0u64, 0u64);
    let mut pages = client.list_objects(&url.bucket, &url.key, &options);
    while let Some(page) = pages.next_page().await {
        let page = page?;
        objects += page.objects.len();
        total += page.objects.iter().map(|o| o.size).sum::<u64>();
        stored += page.objects.iter().map(|o| o.stored_size).sum::<u64>();
        references += page.reference_bytes;
        p.show(&TextOnly(|out: &dyn Text| {
            for prefix in &page.prefixes {
                out.line(&format!(
                    "{:>30} {}",
                    "PRE",
                    &prefix[base_len.min(prefix.len())..]
                ));
            }
            for o in &page.objects {
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
        }));
    }
    if args.summarize {
        p.show(&TextOnly(|out: &dyn Text| {
            // One line per call: a line break inside a printed line is escaped like a key's.
            let stored_all = stored + references;
            out.line("");
            out.line(&format!("Total Objects: {objects}"));
            out.line(&format!("   Total Size: {}", size(total)));
            out.line(&format!(
                "  Stored Size: {} (references: {})",
                size(stored_all),
                size(references)
            ));
            out.line(&format!("      Savings: {}%", saved(stored_all, total)));
        }));
    }
    Ok(())
}
