//! `mv`: copy, then remove the source only once the copy is stored (the library's moves).

use super::*;

pub(super) async fn mv(client: &Client, p: &Printer, args: MvArgs, filters: Filters) -> Result<()> {
    if args.recursive {
        return mv_recursive(client, p, args, filters).await;
    }
    if args.source == "-" || args.destination == "-" {
        return Err(usage("mv cannot move standard input or output; use cp"));
    }
    let copy = CpArgs {
        source: args.source,
        destination: args.destination,
        recursive: false,
        filters: Default::default(),
        transfer: args.transfer,
        expected_size: None,
        object: args.object,
        storage: args.storage,
    };
    copy_one(client, p, copy, true).await
}

/// `mv -r`: `cp -r`, then each source file or object goes once its copy is stored.
pub(super) async fn mv_recursive(
    client: &Client,
    p: &Printer,
    args: MvArgs,
    filters: Filters,
) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.storage.no_delta,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let options = MoveOptions::default()
        .filters(filters)
        .dry_run(args.transfer.dryrun)
        .concurrency(concurrency(&args.transfer))
        .put(put)
        .follow_symlinks(!args.transfer.no_follow_symlinks);
    let (from, to) = locations(&args.source, &args.destination)?;
    let summary = client
        .move_tree(&from, &to, &options, &event_printer(p))
        .await?;
    finish(p, "mv", options.dry_run, &summary)
}
