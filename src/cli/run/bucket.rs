//! `mb` and `rb`.

use super::*;
use deltaglider::storage::bucket_admin;

pub(super) fn bucket_only(s: &str) -> Result<String> {
    let url = parse_s3(s)?;
    if !url.key.is_empty() {
        return Err(usage(format!(
            "'{s}' names an object; expected s3://bucket"
        )));
    }
    Ok(url.bucket)
}

pub(super) async fn mb(engine: &Engine, p: &Printer, args: BucketArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    bucket_admin(&**engine.store())?
        .create_bucket(&bucket)
        .await?;
    p.show(&Doc {
        json: json!({ "bucket": bucket, "created": true }),
        text: |out: &dyn Text| out.line(&format!("make_bucket: {bucket}")),
    });
    Ok(())
}

pub(super) async fn rb(engine: &Engine, p: &Printer, args: RbArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    // Before `--force` empties anything: a store that cannot delete buckets is refused now.
    let admin = bucket_admin(&**engine.store())?;
    if args.force {
        let removed = engine.delete_everything(&bucket).await?;
        p.show(&TextOnly(|out: &dyn Text| {
            out.line(&format!("deleted {removed} objects from {bucket}"))
        }));
    }
    match admin.delete_bucket(&bucket).await {
        Ok(()) => {}
        Err(deltaglider::Error::BucketNotEmpty(_)) => bail!(
            "bucket '{bucket}' is not empty; `deltaglider rb --force s3://{bucket}` deletes \
             everything in it, then the bucket"
        ),
        Err(e) => return Err(e.into()),
    }
    p.show(&Doc {
        json: json!({ "bucket": bucket, "removed": true }),
        text: |out: &dyn Text| out.line(&format!("remove_bucket: {bucket}")),
    });
    Ok(())
}
