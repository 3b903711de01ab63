//! `mb` and `rb`.

use super::*;

pub(super) fn bucket_only(s: &str) -> Result<String> {
    let url = parse_s3(s)?;
    if !url.key.is_empty() {
        return Err(usage(format!(
            "'{s}' names an object; expected s3://bucket"
        )));
    }
    Ok(url.bucket)
}

pub(super) async fn mb(client: &Client, p: &Printer, args: BucketArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    client.create_bucket(&bucket).await?;
    p.show(&Doc {
        json: json!({ "bucket": bucket, "created": true }),
        text: |out: &dyn Text| out.line(&format!("make_bucket: {bucket}")),
    });
    Ok(())
}

pub(super) async fn rb(client: &Client, p: &Printer, args: RbArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    // With `--force`, a store that cannot delete buckets is refused before anything goes.
    let deleted = if args.force {
        client.delete_bucket_and_contents(&bucket).await.map(Some)
    } else {
        client.delete_bucket(&bucket).await.map(|()| None)
    };
    match deleted {
        Ok(Some(removed)) => p.show(&TextOnly(|out: &dyn Text| {
            out.line(&format!("deleted {removed} objects from {bucket}"))
        })),
        Ok(None) => {}
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
