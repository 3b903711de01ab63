//! `sync`: copy what is missing or changed, optionally delete what is gone.

use super::*;

pub(super) async fn sync(
    client: &Client,
    p: &Printer,
    args: SyncArgs,
    filters: Filters,
) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.storage.no_delta,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let compare = CompareOptions::default()
        .size_only(args.size_only)
        .exact_timestamps(args.exact_timestamps)
        .delete(args.delete);
    let options = transfer_options(&args.transfer, filters, compare, put);
    let summary = tree(client, p, &args.source, &args.destination, &options).await?;
    finish(p, "sync", options.dry_run, &summary)
}
