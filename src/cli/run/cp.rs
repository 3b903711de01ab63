//! `cp`: one object or file, and trees (`cp -r`), in either direction or between prefixes.

use super::*;

pub(super) fn describe_put(r: &PutReport) -> String {
    match r.stored_as {
        StoredAs::Delta if r.created_reference => format!(
            "(new reference for s3://{}/{}, {})",
            r.bucket,
            deltaglider::keys::reference_key(&r.key),
            human_size(r.original_size)
        ),
        StoredAs::Delta => format!(
            "(delta {} of {}, {}% stored, {}% saved)",
            human_size(r.stored_size),
            human_size(r.original_size),
            pct(percent(r.stored_size, r.original_size)),
            saved(r.stored_size, r.original_size)
        ),
        _ => match &r.direct_reason {
            Some(why) => format!("(stored whole, {}: {why})", human_size(r.original_size)),
            None => format!("(stored whole, {})", human_size(r.original_size)),
        },
    }
}

pub(super) async fn cp(client: &Client, p: &Printer, args: CpArgs) -> Result<()> {
    copy_one(client, p, args, false).await
}

/// One file or object: copied, or with `moving` moved (the source goes once the copy is
/// stored; a source that had to be kept fails the command after the copy is shown).
pub(super) async fn copy_one(
    client: &Client,
    p: &Printer,
    args: CpArgs,
    moving: bool,
) -> Result<()> {
    let mut kept = None;
    let options = upload_options::put_options(
        &args.object,
        args.storage.no_delta,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    match (S3Url::is_s3(&args.source), S3Url::is_s3(&args.destination)) {
        (false, true) if args.source == "-" => {
            let dest = parse_s3(&args.destination)?;
            if dest.is_dir_like() {
                return Err(usage(format!(
                    "cp - needs a full key to store standard input as, not the prefix {}",
                    args.destination
                )));
            }
            if args.transfer.dryrun {
                client.check_put_target(&dest.bucket, &dest.key).await?;
                p.show(&TextOnly(|out: &dyn Text| {
                    out.line(&format!(
                        "(dryrun) {}: - to s3://{}/{}",
                        p.verb("upload"),
                        dest.bucket,
                        dest.key
                    ))
                }));
                return Ok(());
            }
            let report = client
                .put_object_stream(
                    &dest.bucket,
                    &dest.key,
                    tokio::io::stdin(),
                    "standard input",
                    args.expected_size,
                    &options,
                )
                .await?;
            p.show(&Doc {
                json: &report,
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "{}: - to s3://{}/{} {}",
                        p.verb("upload"),
                        report.bucket,
                        report.key,
                        describe_put(&report)
                    ))
                },
            });
            p.note(&report);
            p.advise();
        }
        (false, true) => {
            let src = PathBuf::from(&args.source);
            let meta = std::fs::metadata(&src)
                .with_context(|| format!("cannot read source file {}", src.display()))?;
            if meta.is_dir() {
                return Err(usage(format!(
                    "{} is a directory (use --recursive)",
                    src.display()
                )));
            }
            let dest = parse_s3(&args.destination)?;
            let key = object_key_for_upload(&dest, &src)?;
            if args.transfer.dryrun {
                // Everything an upload checks before it writes, and nothing else.
                std::fs::File::open(&src)
                    .with_context(|| format!("cannot read source file {}", src.display()))?;
                client.check_put_target(&dest.bucket, &key).await?;
                let to = format!("s3://{}/{key}", dest.bucket);
                p.show(&Doc {
                    json: TransferEvent::WouldCopy {
                        from: src.display().to_string(),
                        to: to.clone(),
                    },
                    text: |out: &dyn Text| {
                        out.line(&format!(
                            "(dryrun) {}: {} to {to}",
                            p.verb("upload"),
                            src.display()
                        ))
                    },
                });
                return Ok(());
            }
            p.working(format!(
                "storing {} (hashing, encoding, uploading)",
                src.display()
            ));
            let report = if moving {
                client
                    .move_file(&src, &dest.bucket, &key, &options)
                    .await
                    .map(|m| {
                        kept = m.source_kept;
                        m.copy
                    })
            } else {
                client
                    .put_object(&dest.bucket, &key, src.as_path(), &options)
                    .await
            };
            p.done();
            let report = report?;
            p.show(&Doc {
                json: &report,
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "{}: {} to s3://{}/{} {}",
                        p.verb("upload"),
                        src.display(),
                        report.bucket,
                        report.key,
                        describe_put(&report)
                    ))
                },
            });
            p.note(&report);
            p.advise();
        }
        (true, false) => {
            let src = parse_s3(&args.source)?;
            if src.is_dir_like() {
                return Err(usage(format!(
                    "{src} names a prefix, not an object (use --recursive)"
                )));
            }
            if args.destination == "-" {
                // The verified bytes alone on stdout, streamed as they are rebuilt.
                client
                    .download_to_writer(&src.bucket, &src.key, std::io::stdout(), "stdout")
                    .await?;
                return Ok(());
            }
            let dest = local_destination(&src, &args.destination);
            if args.transfer.dryrun {
                client.head_object(&src.bucket, &src.key).await?;
                p.show(&Doc {
                    json: TransferEvent::WouldCopy {
                        from: src.to_string(),
                        to: dest.display().to_string(),
                    },
                    text: |out: &dyn Text| {
                        out.line(&format!(
                            "(dryrun) {}: {src} to {}",
                            p.verb("download"),
                            dest.display()
                        ))
                    },
                });
                return Ok(());
            }
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create directory {}", parent.display()))?;
            }
            p.working(format!(
                "fetching {src} (downloading, rebuilding, verifying)"
            ));
            let report = if moving {
                client
                    .move_to_file(&src.bucket, &src.key, &dest)
                    .await
                    .map(|m| {
                        kept = m.source_kept;
                        m.copy
                    })
            } else {
                client.download_file(&src.bucket, &src.key, &dest).await
            };
            p.done();
            let report = report?;
            p.show(&Doc {
                json: &report,
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "{}: s3://{}/{} to {}{}",
                        p.verb("download"),
                        report.bucket,
                        report.key,
                        dest.display(),
                        if report.verified {
                            " (sha256 verified)"
                        } else {
                            ""
                        }
                    ))
                },
            });
        }
        (true, true) => {
            let src = parse_s3(&args.source)?;
            let dest = parse_s3(&args.destination)?;
            if src.is_dir_like() {
                return Err(usage(format!(
                    "{src} names a prefix, not an object (use --recursive)"
                )));
            }
            let name = deltaglider::keys::file_name(&src.key).to_string();
            let key = if dest.is_dir_like() {
                format!("{}{}", dest.key, name)
            } else {
                dest.key.clone()
            };
            if args.transfer.dryrun {
                client.head_object(&src.bucket, &src.key).await?;
                client.check_put_target(&dest.bucket, &key).await?;
                let to = format!("s3://{}/{key}", dest.bucket);
                p.show(&Doc {
                    json: TransferEvent::WouldCopy {
                        from: src.to_string(),
                        to: to.clone(),
                    },
                    text: |out: &dyn Text| {
                        out.line(&format!("(dryrun) {}: {src} to {to}", p.verb("copy")))
                    },
                });
                return Ok(());
            }
            let report = if moving {
                let m = client
                    .move_object(&src.bucket, &src.key, &dest.bucket, &key, &options)
                    .await?;
                kept = m.source_kept;
                m.copy
            } else {
                client
                    .copy_object(&src.bucket, &src.key, &dest.bucket, &key, &options)
                    .await?
            };
            p.show(&Doc {
                json: &report,
                text: |out: &dyn Text| {
                    out.line(&format!(
                        "{}: {src} to s3://{}/{} {}",
                        p.verb("copy"),
                        dest.bucket,
                        key,
                        describe_put(&report)
                    ))
                },
            });
            p.note(&report);
            p.advise();
        }
        (false, false) => return Err(both_local(&args.source, &args.destination)),
    }
    match kept {
        Some(why) => Err(why.into()),
        None => Ok(()),
    }
}

/// Two local paths: this is not `cp(1)`.
pub(super) fn both_local(source: &str, destination: &str) -> anyhow::Error {
    usage(format!(
        "one of '{source}' and '{destination}' must be an s3:// URL (both are local paths)"
    ))
}

/// Fails with "bucket does not exist" (exit 3) unless it does.
/// AWS semantics: a destination ending in `/` (or a bare bucket) is a prefix to put the file
/// under; anything else is the exact key.
pub(super) fn object_key_for_upload(dest: &S3Url, src: &Path) -> Result<String> {
    if dest.is_dir_like() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", src.display()))?;
        Ok(format!("{}{}", dest.key, name))
    } else {
        Ok(dest.key.clone())
    }
}

/// AWS semantics: an existing directory or a path ending in `/` receives the object's name.
pub(super) fn local_destination(src: &S3Url, dest: &str) -> PathBuf {
    let name = deltaglider::keys::file_name(&src.key);
    let path = PathBuf::from(dest);
    if dest.ends_with('/') || path.is_dir() {
        path.join(name)
    } else {
        path
    }
}

pub(super) fn transfer_options(
    t: &TransferArgs,
    filters: Filters,
    compare: CompareOptions,
    put: PutRequestOptions,
) -> TransferOptions {
    TransferOptions::default()
        .compare(compare)
        .filters(filters)
        .dry_run(t.dryrun)
        .concurrency(concurrency(t))
        .put(put)
        .follow_symlinks(!t.no_follow_symlinks)
}

/// `--concurrency`, or the library's default for trees (16 files in flight).
pub(super) fn concurrency(t: &TransferArgs) -> usize {
    t.concurrency
        .unwrap_or_else(|| TransferOptions::default().concurrency)
}

/// Runs a tree transfer in the direction the two arguments imply.
pub(super) async fn tree(
    client: &Client,
    p: &Printer,
    source: &str,
    destination: &str,
    options: &TransferOptions,
) -> Result<TransferSummary> {
    let (from, to) = locations(source, destination)?;
    Ok(client
        .transfer_tree(&from, &to, options, &event_printer(p))
        .await?)
}

/// The two ends of a tree transfer, refused as usage errors when they cannot work: a local
/// source that is not a directory, two local paths.
pub(super) fn locations(source: &str, destination: &str) -> Result<(Location, Location)> {
    match (S3Url::is_s3(source), S3Url::is_s3(destination)) {
        (false, true) => {
            let dest = parse_s3(destination)?;
            match std::fs::metadata(source) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(usage(format!(
                        "{source} is not a directory (without --recursive, cp and mv take one file)"
                    )));
                }
                Err(e) => return Err(usage(format!("cannot read directory {source}: {e}"))),
            }
            Ok((Location::Local(source.into()), Location::S3(dest)))
        }
        (true, false) => Ok((
            Location::S3(parse_s3(source)?),
            Location::Local(destination.into()),
        )),
        (true, true) => Ok((
            Location::S3(parse_s3(source)?),
            Location::S3(parse_s3(destination)?),
        )),
        (false, false) => Err(both_local(source, destination)),
    }
}

pub(super) async fn cp_recursive(
    client: &Client,
    p: &Printer,
    args: CpArgs,
    filters: Filters,
) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.storage.no_delta,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let compare = CompareOptions::default().always_copy(true);
    let options = transfer_options(&args.transfer, filters, compare, put);
    let summary = tree(client, p, &args.source, &args.destination, &options).await?;
    finish(p, "cp", options.dry_run, &summary)
}

/// Upload options from the flags every storing command shares.
pub(super) fn put_options(no_delta: bool) -> PutRequestOptions {
    PutRequestOptions::default().no_delta(no_delta)
}
