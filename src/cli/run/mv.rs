//! `mv`: copy, then remove the source only if what was stored is what is there.

use super::*;

pub(super) async fn mv(engine: &Engine, p: &Printer, args: MvArgs, filters: Filters) -> Result<()> {
    if args.recursive {
        return mv_recursive(engine, p, args, filters).await;
    }
    if args.source == "-" || args.destination == "-" {
        return Err(usage("mv cannot move standard input or output; use cp"));
    }
    let dry_run = args.transfer.dryrun;
    // What the local source is now: if it is not the same afterwards, what was stored may not
    // be what is there, and it is kept.
    let before = (!S3Url::is_s3(&args.source))
        .then(|| file_identity(Path::new(&args.source)))
        .flatten();
    let copy = CpArgs {
        source: args.source.clone(),
        destination: args.destination.clone(),
        recursive: false,
        filters: Default::default(),
        transfer: args.transfer,
        no_delta: args.no_delta,
        max_ratio: None,
        delta_extensions: None,
        expected_size: None,
        object: args.object.clone(),
    };
    cp(engine, p, copy).await?;
    if dry_run {
        return Ok(());
    }
    // Only after the copy is stored and verified does the source go.
    if S3Url::is_s3(&args.source) {
        let src = parse_s3(&args.source)?;
        engine.delete(&src.bucket, &src.key).await?;
    } else {
        if before.is_none() || file_identity(Path::new(&args.source)) != before {
            bail!(
                "{} changed while it was moved: the copy is stored, the source was kept",
                args.source
            );
        }
        std::fs::remove_file(&args.source)
            .with_context(|| format!("copied, but cannot remove {}", args.source))?;
    }
    Ok(())
}

/// Device, inode, size, modification and change time: the change time moves with any write
/// and cannot be set back.
pub(super) fn file_identity(path: &Path) -> Option<(u64, u64, u64, i64, i64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// `mv -r`: `cp -r`, then each source file or object goes once its copy is stored.
pub(super) async fn mv_recursive(
    engine: &Engine,
    p: &Printer,
    args: MvArgs,
    filters: Filters,
) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.no_delta,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let compare = CompareOptions {
        always_copy: true,
        ..Default::default()
    };
    let options = transfer_options(&args.transfer, filters, compare, put);
    let printer = event_printer(p);
    let copied = std::sync::Mutex::new(Vec::new());
    let sink = |e: &TransferEvent| {
        printer(e);
        if matches!(
            e,
            TransferEvent::Uploaded { .. }
                | TransferEvent::Downloaded { .. }
                | TransferEvent::Copied { .. }
        ) {
            copied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(e.clone());
        }
    };
    let mut summary = tree_with(engine, &args.source, &args.destination, &options, &sink).await?;
    let copied = copied.into_inner().unwrap_or_else(|e| e.into_inner());
    for e in copied {
        let (target, removed) = match &e {
            TransferEvent::Uploaded { path, .. } => (
                path.display().to_string(),
                std::fs::remove_file(path).map_err(anyhow::Error::from),
            ),
            TransferEvent::Downloaded { report } => (
                format!("s3://{}/{}", report.bucket, report.key),
                engine
                    .delete(&report.bucket, &report.key)
                    .await
                    .map(drop)
                    .map_err(Into::into),
            ),
            TransferEvent::Copied { from, .. } => {
                let removed = match parse_s3(from) {
                    Ok(u) => engine
                        .delete(&u.bucket, &u.key)
                        .await
                        .map(drop)
                        .map_err(Into::into),
                    Err(e) => Err(e),
                };
                (from.clone(), removed)
            }
            _ => continue,
        };
        if let Err(err) = removed {
            printer(&TransferEvent::Failed {
                target,
                error: format!(
                    "copied, but the source could not be removed: {}",
                    deltaglider::error::chain(err.as_ref())
                ),
            });
            summary.failed += 1;
        }
    }
    finish(p, "mv", options.dry_run, &summary)
}
