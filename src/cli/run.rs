//! Runs one parsed command against the library.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use deltaglider::config::{CacheOverrides, Config, Overrides};
use deltaglider::engine::{PutReport, PutRequestOptions};
use deltaglider::{Engine, S3Url, StoredAs};
use serde_json::json;

use deltaglider::transfer::filter::{FilterKind, Filters};
use deltaglider::transfer::plan::CompareOptions;
use deltaglider::transfer::{TransferEvent, TransferOptions, TransferSummary};
use indicatif::ProgressBar;

use super::args::{
    BucketArgs, Cli, Command, CpArgs, LsArgs, MigrateArgs, MvArgs, PresignArgs, PurgeArgs, RbArgs,
    RmArgs, StatsArgs, SyncArgs, TransferArgs, VerifyArgs,
};
use super::exit::usage;
use super::output::{
    err_line, escape, human_size, listing_time, out_line, pct, percent, print_json, saved,
};
use super::upload_options;

/// Settings the command needs besides the engine.
struct Printer {
    json: bool,
    quiet: bool,
    /// Progress on stderr; hidden unless stderr is a terminal and output is for people.
    progress: ProgressBar,
    /// What the engine reports goes to `progress` through it.
    reporter: std::sync::Arc<super::progress::BarProgress>,
    /// `mv`: transfer lines say `move`.
    moving: bool,
    /// Why uploads saved little, told once per cause at the end.
    advice: super::advice::Advice,
}

impl Printer {
    /// `verb`, or `move` when the command is `mv` (as `aws s3 mv` prints it).
    fn verb<'a>(&self, verb: &'a str) -> &'a str {
        if self.moving { "move" } else { verb }
    }

    /// `no_progress`: `--no-progress`, results without the progress display.
    fn new(json: bool, quiet: bool, no_progress: bool) -> Self {
        use std::io::IsTerminal;
        let progress = if json || quiet || no_progress || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        super::output::register_progress(&progress);
        Printer {
            json,
            quiet,
            reporter: std::sync::Arc::new(super::progress::BarProgress::new(progress.clone())),
            progress,
            moving: false,
            advice: Default::default(),
        }
    }

    /// One line of results on stdout, escaped for the terminal (see `output::escape`).
    fn line(&self, s: impl AsRef<str>) {
        if !self.quiet && !self.json {
            self.progress.suspend(|| out_line(&escape(s.as_ref())));
        }
    }

    /// One line on stderr, escaped; shown even with `-q` and `--json` (warnings, failures).
    fn warn(&self, s: impl AsRef<str>) {
        self.progress.suspend(|| err_line(&escape(s.as_ref())));
    }

    /// Shows a spinner with `message` while a single long operation runs.
    fn working(&self, message: String) {
        self.progress.set_message(message);
        self.progress
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    /// Turns the spinner into a bar over the `bytes` of `files` files.
    fn planned(&self, files: usize, bytes: u64) {
        self.reporter.planned(files, bytes);
        self.progress
            .enable_steady_tick(std::time::Duration::from_millis(250));
    }

    fn done(&self) {
        self.progress.finish_and_clear();
    }

    /// Notes why an upload or copy saved little (see `advice`).
    fn note(&self, report: &PutReport) {
        self.advice.note(report);
    }

    /// The causes of poor savings, one line each on stderr (not with `-q`).
    fn advise(&self) {
        if !self.quiet {
            for line in self.advice.lines() {
                self.warn(line);
            }
        }
    }
}

/// Resolves configuration from the command line and environment.
pub fn config(cli: &Cli) -> Result<Config> {
    let (max_ratio, delta_extensions) = match &cli.command {
        Command::Cp(a) => (a.max_ratio, a.delta_extensions.clone()),
        Command::Migrate(a) => (a.max_ratio, None),
        Command::Sync(a) => (a.max_ratio, a.delta_extensions.clone()),
        _ => (None, None),
    };
    let cache = CacheOverrides {
        cache_dir: cli.global.cache_dir.clone(),
        backend: cli.global.cache_backend.clone(),
        ephemeral: cli.global.ephemeral_cache.then_some(true),
        ttl: cli.global.cache_ttl.clone(),
        ..Default::default()
    };
    let mut config = Config::from_env_with(
        &Overrides {
            endpoint_url: cli.global.endpoint_url.clone(),
            region: cli.global.region.clone(),
            profile: cli.global.profile.clone(),
            max_ratio,
            delta_extensions,
            config_file: cli.global.config.clone(),
            no_cache: cli.global.no_cache,
        },
        &cache,
    )?;
    config.s3_client = upload_options::client_settings(&cli.global.connection);
    if !matches!(cli.command, Command::Cache(_) | Command::Completions(_)) {
        upload_options::warn_inapplicable(cli, &config);
    }
    Ok(config)
}

/// `--include`/`--exclude` of the subcommand, in the order they were given.
pub fn ordered_filters(matches: &clap::ArgMatches) -> Vec<(FilterKind, String)> {
    let Some((_, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    let mut rules: Vec<(usize, FilterKind, String)> = Vec::new();
    for (id, kind) in [
        ("include", FilterKind::Include),
        ("exclude", FilterKind::Exclude),
    ] {
        // Only the transfer commands have filters; indices_of panics on unknown ids.
        if let Ok(Some(values)) = sub.try_get_many::<String>(id)
            && let Some(indices) = sub.indices_of(id)
        {
            rules.extend(indices.zip(values).map(|(i, v)| (i, kind, v.clone())));
        }
    }
    rules.sort_by_key(|(i, _, _)| *i);
    rules.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// Runs the command.
pub async fn run(cli: Cli, filters: Vec<(FilterKind, String)>, engine: Engine) -> Result<()> {
    let mut printer = Printer::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.connection.no_progress,
    );
    printer.moving = matches!(cli.command, Command::Mv(_));
    let engine = if printer.progress.is_hidden() {
        engine
    } else {
        engine.with_progress(printer.reporter.clone())
    };
    let filters = Filters::new(filters)?;
    match cli.command {
        Command::Cp(args) if args.recursive => cp_recursive(&engine, &printer, args, filters).await,
        Command::Cp(args) => cp(&engine, &printer, args).await,
        Command::Sync(args) => sync(&engine, &printer, args, filters).await,
        Command::Mv(args) => mv(&engine, &printer, args, filters).await,
        Command::Head(args) => {
            upload_options::head(&engine, cli.global.json, cli.global.quiet, args).await
        }
        Command::Stats(args) => stats(&engine, &printer, args).await,
        Command::Presign(args) => presign(&engine, &printer, args).await,
        Command::Analyze(args) => {
            let limit = (!args.all).then_some(args.top);
            let report = super::analyze::run(&engine, &printer.progress, &args).await?;
            if printer.json {
                print_json(&report);
            } else if !printer.quiet {
                for line in super::analyze::summary(&report, limit) {
                    printer.line(line);
                }
                for line in super::analyze::warnings(&report) {
                    printer.warn(line);
                }
            }
            Ok(())
        }
        Command::Purge(args) => purge(&engine, &printer, args).await,
        Command::Completions(_) | Command::Cache(_) => {
            unreachable!("handled before the engine is built")
        }
        Command::Migrate(args) => migrate(&engine, &printer, args, filters).await,
        Command::Ls(args) => ls(&engine, &printer, args).await,
        Command::Rm(args) if args.recursive => rm_recursive(&engine, &printer, args, filters).await,
        Command::Rm(args) => rm(&engine, &printer, args).await,
        Command::Verify(args) => verify(&engine, &printer, args).await,
        Command::Mb(args) => mb(&engine, &printer, args).await,
        Command::Rb(args) => rb(&engine, &printer, args).await,
    }
}

fn parse_s3(s: &str) -> Result<S3Url> {
    Ok(S3Url::parse(s)?)
}

fn describe_put(r: &PutReport) -> String {
    match r.stored_as {
        StoredAs::Delta if r.created_reference => format!(
            "(new reference for s3://{}/{}, {})",
            r.bucket,
            deltaglider::deltaspace::reference_key_for(&r.key),
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

async fn cp(engine: &Engine, p: &Printer, args: CpArgs) -> Result<()> {
    let options = upload_options::put_options(
        &args.object,
        args.no_delta,
        args.max_ratio,
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
                engine.check_upload_target(&dest.bucket, &dest.key).await?;
                p.line(format!(
                    "(dryrun) {}: - to s3://{}/{}",
                    p.verb("upload"),
                    dest.bucket,
                    dest.key
                ));
                return Ok(());
            }
            let report = engine
                .put_reader(
                    tokio::io::stdin(),
                    "standard input",
                    args.expected_size,
                    &dest.bucket,
                    &dest.key,
                    &options,
                )
                .await?;
            if p.json {
                print_json(&report);
            }
            p.line(format!(
                "{}: - to s3://{}/{} {}",
                p.verb("upload"),
                report.bucket,
                report.key,
                describe_put(&report)
            ));
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
                engine.check_upload_target(&dest.bucket, &key).await?;
                let to = format!("s3://{}/{key}", dest.bucket);
                if p.json {
                    print_json(&TransferEvent::WouldCopy {
                        from: src.display().to_string(),
                        to: to.clone(),
                    });
                }
                p.line(format!(
                    "(dryrun) {}: {} to {to}",
                    p.verb("upload"),
                    src.display()
                ));
                return Ok(());
            }
            p.working(format!(
                "storing {} (hashing, encoding, uploading)",
                src.display()
            ));
            let report = engine.put_file(&src, &dest.bucket, &key, &options).await;
            p.done();
            let report = report?;
            if p.json {
                print_json(&report);
            }
            p.line(format!(
                "{}: {} to s3://{}/{} {}",
                p.verb("upload"),
                src.display(),
                report.bucket,
                report.key,
                describe_put(&report)
            ));
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
                engine
                    .get_to_writer(&src.bucket, &src.key, std::io::stdout(), "stdout")
                    .await?;
                return Ok(());
            }
            let dest = local_destination(&src, &args.destination);
            if args.transfer.dryrun {
                engine.head(&src.bucket, &src.key).await?;
                if p.json {
                    print_json(&TransferEvent::WouldCopy {
                        from: src.to_string(),
                        to: dest.display().to_string(),
                    });
                }
                p.line(format!(
                    "(dryrun) {}: {src} to {}",
                    p.verb("download"),
                    dest.display()
                ));
                return Ok(());
            }
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create directory {}", parent.display()))?;
            }
            p.working(format!(
                "fetching {src} (downloading, rebuilding, verifying)"
            ));
            let report = engine.get_to_file(&src.bucket, &src.key, &dest).await;
            p.done();
            let report = report?;
            if p.json {
                print_json(&report);
            }
            p.line(format!(
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
            ));
        }
        (true, true) => {
            let src = parse_s3(&args.source)?;
            let dest = parse_s3(&args.destination)?;
            if src.is_dir_like() {
                return Err(usage(format!(
                    "{src} names a prefix, not an object (use --recursive)"
                )));
            }
            let name = deltaglider::deltaspace::file_name(&src.key).to_string();
            let key = if dest.is_dir_like() {
                format!("{}{}", dest.key, name)
            } else {
                dest.key.clone()
            };
            if args.transfer.dryrun {
                engine.head(&src.bucket, &src.key).await?;
                engine.check_upload_target(&dest.bucket, &key).await?;
                let to = format!("s3://{}/{key}", dest.bucket);
                if p.json {
                    print_json(&TransferEvent::WouldCopy {
                        from: src.to_string(),
                        to: to.clone(),
                    });
                }
                p.line(format!("(dryrun) {}: {src} to {to}", p.verb("copy")));
                return Ok(());
            }
            let report = engine
                .copy_object(&src.bucket, &src.key, &dest.bucket, &key, &options)
                .await?;
            if p.json {
                print_json(&report);
            }
            p.line(format!(
                "{}: {src} to s3://{}/{} {}",
                p.verb("copy"),
                dest.bucket,
                key,
                describe_put(&report)
            ));
            p.note(&report);
            p.advise();
        }
        (false, false) => return Err(both_local(&args.source, &args.destination)),
    }
    Ok(())
}

/// Two local paths: this is not `cp(1)`.
fn both_local(source: &str, destination: &str) -> anyhow::Error {
    usage(format!(
        "one of '{source}' and '{destination}' must be an s3:// URL (both are local paths)"
    ))
}

/// Fails with "bucket does not exist" (exit 3) unless it does.
/// AWS semantics: a destination ending in `/` (or a bare bucket) is a prefix to put the file
/// under; anything else is the exact key.
fn object_key_for_upload(dest: &S3Url, src: &Path) -> Result<String> {
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
fn local_destination(src: &S3Url, dest: &str) -> PathBuf {
    let name = deltaglider::deltaspace::file_name(&src.key);
    let path = PathBuf::from(dest);
    if dest.ends_with('/') || path.is_dir() {
        path.join(name)
    } else {
        path
    }
}

async fn ls(engine: &Engine, p: &Printer, args: LsArgs) -> Result<()> {
    let size = |n: u64| {
        if args.human_readable {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let Some(target) = args.target else {
        let buckets = engine.store().list_buckets().await?;
        if p.json {
            print_json(
                &json!({ "buckets": buckets.iter().map(|b| json!({"name": b.name, "created": b.created})).collect::<Vec<_>>() }),
            );
        }
        for b in buckets {
            p.line(format!("{} {}", listing_time(b.created), b.name));
        }
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
    if p.json {
        print_json(&json!({
            "bucket": url.bucket,
            "prefix": url.key,
            "prefixes": listing.prefixes,
            "objects": listing.objects,
            "total_objects": listing.objects.len(),
            "total_size": total,
            "total_stored_size": stored + listing.reference_bytes,
            "reference_bytes": listing.reference_bytes,
        }));
        return Ok(());
    }
    for prefix in &listing.prefixes {
        p.line(format!(
            "{:>30} {}",
            "PRE",
            &prefix[base_len.min(prefix.len())..]
        ));
    }
    for o in &listing.objects {
        let name = &o.key[base_len.min(o.key.len())..];
        if args.long {
            let how = serde_json::to_value(o.stored_as)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            p.line(format!(
                "{} {:>10} {:>10} {:>6}% {:<6} {name}",
                listing_time(o.last_modified),
                size(o.size),
                size(o.stored_size),
                saved(o.stored_size, o.size),
                how,
            ));
        } else {
            p.line(format!(
                "{} {:>10} {name}",
                listing_time(o.last_modified),
                size(o.size)
            ));
        }
    }
    if args.summarize {
        // One line per call: a line break inside a printed line is escaped like a key's.
        let stored_all = stored + listing.reference_bytes;
        p.line("");
        p.line(format!("Total Objects: {}", listing.objects.len()));
        p.line(format!("   Total Size: {}", size(total)));
        p.line(format!(
            "  Stored Size: {} (references: {})",
            size(stored_all),
            size(listing.reference_bytes)
        ));
        p.line(format!("      Savings: {}%", saved(stored_all, total)));
    }
    Ok(())
}

async fn rm(engine: &Engine, p: &Printer, args: RmArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    if url.is_dir_like() {
        return Err(usage(format!(
            "{url} names a prefix, not an object (use --recursive)"
        )));
    }
    if deltaglider::deltaspace::file_name(&url.key) == deltaglider::deltaspace::REFERENCE_NAME {
        return Err(deltaglider::Error::InvalidKey {
            bucket: url.bucket,
            key: url.key,
            reason: "references are removed automatically with their last delta".into(),
        }
        .into());
    }
    if args.dryrun {
        let exists = match engine.head(&url.bucket, &url.key).await {
            Ok(_) => true,
            Err(deltaglider::Error::NotFound { .. }) if !args.fail_if_missing => false,
            Err(e) => return Err(e.into()),
        };
        if p.json {
            print_json(&json!({
                "event": "would-delete",
                "target": url.to_string(),
                "exists": exists,
            }));
        }
        p.line(format!(
            "(dryrun) delete: {url}{}",
            if exists { "" } else { " (does not exist)" }
        ));
        return Ok(());
    }
    let report = match engine.delete(&url.bucket, &url.key).await {
        Ok(r) => r,
        // `aws s3 rm` of a missing key succeeds: the object is gone either way.
        Err(deltaglider::Error::NotFound { .. }) if !args.fail_if_missing => {
            if p.json {
                print_json(&deltaglider::engine::DeleteReport {
                    bucket: url.bucket.clone(),
                    key: url.key.clone(),
                    deleted: Vec::new(),
                    reference_removed: None,
                });
            }
            p.line(format!("delete: {url} (did not exist)"));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if p.json {
        print_json(&report);
    }
    p.line(format!("delete: s3://{}/{}", report.bucket, report.key));
    if let Some(r) = &report.reference_removed {
        p.line(format!(
            "delete: s3://{}/{r} (reference no longer used)",
            report.bucket
        ));
    }
    Ok(())
}

async fn verify(engine: &Engine, p: &Printer, args: VerifyArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let report = engine.verify(&url.bucket, &url.key).await?;
    if p.json {
        print_json(&report);
    }
    match (&report.expected_sha256, report.valid) {
        (Some(_), true) => p.line(format!("OK {url} sha256 {}", report.actual_sha256)),
        (None, _) => p.line(format!(
            "UNVERIFIED {url}: plain object without a recorded sha256 (sha256 {})",
            report.actual_sha256
        )),
        (Some(expected), false) => {
            return Err(deltaglider::Error::IntegrityMismatch {
                what: url.to_string(),
                expected: expected.clone(),
                actual: report.actual_sha256,
            }
            .into());
        }
    }
    Ok(())
}

fn bucket_only(s: &str) -> Result<String> {
    let url = parse_s3(s)?;
    if !url.key.is_empty() {
        return Err(usage(format!(
            "'{s}' names an object; expected s3://bucket"
        )));
    }
    Ok(url.bucket)
}

async fn mb(engine: &Engine, p: &Printer, args: BucketArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    engine.store().create_bucket(&bucket).await?;
    if p.json {
        print_json(&json!({ "bucket": bucket, "created": true }));
    }
    p.line(format!("make_bucket: {bucket}"));
    Ok(())
}

async fn rb(engine: &Engine, p: &Printer, args: RbArgs) -> Result<()> {
    let bucket = bucket_only(&args.bucket)?;
    if args.force {
        let removed = engine.delete_everything(&bucket).await?;
        p.line(format!("deleted {removed} objects from {bucket}"));
    }
    match engine.store().delete_bucket(&bucket).await {
        Ok(()) => {}
        Err(deltaglider::Error::BucketNotEmpty(_)) => bail!(
            "bucket '{bucket}' is not empty; `deltaglider rb --force s3://{bucket}` deletes \
             everything in it, then the bucket"
        ),
        Err(e) => return Err(e.into()),
    }
    if p.json {
        print_json(&json!({ "bucket": bucket, "removed": true }));
    }
    p.line(format!("remove_bucket: {bucket}"));
    Ok(())
}

/// Prints one line per file event (or one JSON object per event) as they happen.
fn event_printer(p: &Printer) -> impl Fn(&TransferEvent) + Send + Sync + '_ {
    move |e: &TransferEvent| {
        if let TransferEvent::Planned {
            copies,
            deletes,
            bytes,
        } = e
        {
            p.planned(copies + deletes, *bytes);
            if p.json {
                print_json(e);
            }
            return;
        }
        if let TransferEvent::Skipped { path, reason } = e {
            // As `aws s3` words it; on stderr even with -q or --json (the exit code is 2).
            p.warn(format!("warning: Skipping file {path}. {reason}"));
            if p.json {
                print_json(e);
            }
            return;
        }
        match e {
            TransferEvent::Uploaded { report, .. } | TransferEvent::Copied { report, .. } => {
                p.note(report);
                p.reporter
                    .file_done(Some(&report.key), report.original_size)
            }
            TransferEvent::Downloaded { report } => {
                p.reporter.file_done(Some(&report.key), report.size)
            }
            _ => p.reporter.file_done(None, 0),
        }
        if p.json {
            print_json(e);
            return;
        }
        match e {
            TransferEvent::Uploaded { path, report } => p.line(format!(
                "{}: {} to s3://{}/{} {}",
                p.verb("upload"),
                path.display(),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Downloaded { report } => p.line(format!(
                "{}: s3://{}/{} to {}",
                p.verb("download"),
                report.bucket,
                report.key,
                report
                    .destination
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            )),
            TransferEvent::Copied { from, report } => p.line(format!(
                "{}: {from} to s3://{}/{} {}",
                p.verb("copy"),
                report.bucket,
                report.key,
                describe_put(report)
            )),
            TransferEvent::Deleted { target } => p.line(format!("delete: {target}")),
            TransferEvent::WouldCopy { from, to } => {
                let verb = match (S3Url::is_s3(from), S3Url::is_s3(to)) {
                    (false, _) => "upload",
                    (true, false) => "download",
                    (true, true) => "copy",
                };
                p.line(format!("(dryrun) {}: {from} to {to}", p.verb(verb)))
            }
            TransferEvent::WouldDelete { target } => p.line(format!("(dryrun) delete: {target}")),
            // Failures always reach stderr, even with -q.
            TransferEvent::Failed { target, error } => p.warn(format!("failed: {target}: {error}")),
            TransferEvent::Planned { .. } | TransferEvent::Skipped { .. } => {}
        }
    }
}

fn transfer_options(
    t: &TransferArgs,
    filters: Filters,
    compare: CompareOptions,
    put: PutRequestOptions,
) -> TransferOptions {
    TransferOptions {
        compare,
        filters,
        dry_run: t.dryrun,
        concurrency: t
            .concurrency
            .unwrap_or_else(deltaglider::transfer::default_concurrency),
        put,
        follow_symlinks: !t.no_follow_symlinks,
    }
}

fn finish(p: &Printer, what: &str, dry_run: bool, s: &TransferSummary) -> Result<()> {
    p.done();
    if p.json {
        print_json(&json!({ "summary": s, "dryrun": dry_run }));
    } else if !p.quiet {
        let mut line = match (what, dry_run) {
            ("rm", false) => format!("{what}: {} deleted", s.deleted),
            ("rm", true) => format!("(dryrun) {what}: would delete {}", s.deleted),
            (_, false) => format!(
                "{what}: {} copied, {} deleted, {} unchanged",
                s.copied, s.deleted, s.unchanged
            ),
            (_, true) => format!(
                "(dryrun) {what}: would copy {}, would delete {}, {} unchanged",
                s.copied, s.deleted, s.unchanged
            ),
        };
        if s.stored_bytes > 0 {
            line.push_str(&format!(
                "; {} uploaded as {} ({}% saved)",
                human_size(s.bytes),
                human_size(s.stored_bytes),
                saved(s.stored_bytes, s.bytes)
            ));
        }
        if s.skipped > 0 {
            line.push_str(&format!(", {} skipped", s.skipped));
        }
        if s.failed > 0 {
            line.push_str(&format!(", {} FAILED", s.failed));
        }
        p.warn(line);
    }
    p.advise();
    if s.failed > 0 {
        bail!("{} of the files failed (see the lines above)", s.failed);
    }
    if s.skipped > 0 {
        return Err(super::exit::CliError::Skipped(s.skipped).into());
    }
    Ok(())
}

/// Runs a tree transfer in the direction the two arguments imply.
async fn tree(
    engine: &Engine,
    p: &Printer,
    source: &str,
    destination: &str,
    options: &TransferOptions,
) -> Result<TransferSummary> {
    tree_with(engine, source, destination, options, &event_printer(p)).await
}

/// [`tree`] with the events going to `sink`.
async fn tree_with(
    engine: &Engine,
    source: &str,
    destination: &str,
    options: &TransferOptions,
    sink: deltaglider::transfer::EventSink<'_>,
) -> Result<TransferSummary> {
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
            Ok(engine
                .upload_tree(Path::new(source), &dest.bucket, &dest.key, options, sink)
                .await?)
        }
        (true, false) => {
            let src = parse_s3(source)?;
            Ok(engine
                .download_tree(&src.bucket, &src.key, Path::new(destination), options, sink)
                .await?)
        }
        (true, true) => {
            let (src, dest) = (parse_s3(source)?, parse_s3(destination)?);
            Ok(engine
                .copy_tree(
                    &src.bucket,
                    &src.key,
                    &dest.bucket,
                    &dest.key,
                    options,
                    sink,
                )
                .await?)
        }
        (false, false) => Err(both_local(source, destination)),
    }
}

async fn cp_recursive(engine: &Engine, p: &Printer, args: CpArgs, filters: Filters) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.no_delta,
        args.max_ratio,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let compare = CompareOptions {
        always_copy: true,
        ..Default::default()
    };
    let options = transfer_options(&args.transfer, filters, compare, put);
    let summary = tree(engine, p, &args.source, &args.destination, &options).await?;
    finish(p, "cp", options.dry_run, &summary)
}

async fn sync(engine: &Engine, p: &Printer, args: SyncArgs, filters: Filters) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.no_delta,
        args.max_ratio,
        S3Url::is_s3(&args.source) && S3Url::is_s3(&args.destination),
    )?;
    let compare = CompareOptions {
        size_only: args.size_only,
        exact_timestamps: args.exact_timestamps,
        delete: args.delete,
        always_copy: false,
    };
    let options = transfer_options(&args.transfer, filters, compare, put);
    let summary = tree(engine, p, &args.source, &args.destination, &options).await?;
    finish(p, "sync", options.dry_run, &summary)
}

async fn rm_recursive(engine: &Engine, p: &Printer, args: RmArgs, filters: Filters) -> Result<()> {
    let url = parse_s3(&args.target)?;
    if !engine.store().bucket_exists(&url.bucket).await? {
        return Err(deltaglider::Error::NoSuchBucket(url.bucket).into());
    }
    let base = url.key.rfind('/').map_or(0, |i| i + 1);
    let keys: Vec<String> = engine
        .logical_keys(&url.bucket, &url.key)
        .await?
        .into_iter()
        .filter(|k| filters.accepts(&k[base.min(k.len())..]))
        .collect();
    let sink = event_printer(p);
    let mut summary = TransferSummary::default();
    for event in engine
        .delete_with_events(&url.bucket, keys, args.dryrun, &sink)
        .await
    {
        match event {
            TransferEvent::Failed { .. } => summary.failed += 1,
            _ => summary.deleted += 1,
        }
    }
    finish(p, "rm", args.dryrun, &summary)
}

async fn mv(engine: &Engine, p: &Printer, args: MvArgs, filters: Filters) -> Result<()> {
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
fn file_identity(path: &Path) -> Option<(u64, u64, u64, i64, i64, i64, i64)> {
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
async fn mv_recursive(engine: &Engine, p: &Printer, args: MvArgs, filters: Filters) -> Result<()> {
    let put = upload_options::put_options(
        &args.object,
        args.no_delta,
        None,
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

/// `BUCKET`, `s3://bucket` or `s3://bucket/prefix`.
fn bucket_and_prefix(target: &str) -> Result<S3Url> {
    if S3Url::is_s3(target) {
        parse_s3(target)
    } else {
        parse_s3(&format!("s3://{target}"))
    }
}

async fn stats(engine: &Engine, p: &Printer, args: StatsArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.target)?;
    let mode = if args.sampled {
        deltaglider::stats::StatsMode::Sampled { per_deltaspace: 8 }
    } else {
        deltaglider::stats::StatsMode::Exact
    };
    let mut s = engine.stats(&url.bucket, &url.key, mode).await?;
    if !args.detailed {
        s.deltaspaces.clear();
    }
    if p.json {
        print_json(&s);
        return Ok(());
    }
    let approx = if s.estimated {
        " (estimated from a sample)"
    } else {
        ""
    };
    p.line(format!("Bucket:          s3://{}/{}", s.bucket, s.prefix));
    p.line(format!(
        "Objects:         {} ({} deltas, {} whole)",
        s.objects, s.deltas, s.whole
    ));
    p.line(format!(
        "Original size:   {} ({} bytes){approx}",
        human_size(s.original_bytes),
        s.original_bytes
    ));
    p.line(format!(
        "Stored size:     {} ({} bytes, references {})",
        human_size(s.stored_bytes),
        s.stored_bytes,
        human_size(s.reference_bytes)
    ));
    p.line(format!("Savings:         {}%", pct(s.savings_percent)));
    if !s.orphaned_references.is_empty() {
        p.line(format!(
            "Orphaned references ({}):",
            s.orphaned_references.len()
        ));
        for r in &s.orphaned_references {
            p.line(format!("  s3://{}/{r}", s.bucket));
        }
    }
    if args.detailed {
        p.line("");
        p.line(format!(
            "{:<40} {:>7} {:>7} {:>12} {:>12} {:>8}",
            "deltaspace", "deltas", "whole", "original", "stored", "savings"
        ));
        for d in &s.deltaspaces {
            let name = if d.deltaspace.is_empty() {
                "(root)"
            } else {
                d.deltaspace.as_str()
            };
            p.line(format!(
                "{:<40} {:>7} {:>7} {:>12} {:>12} {:>7}%{}",
                name,
                d.deltas,
                d.whole,
                human_size(d.original_bytes),
                human_size(d.stored_bytes),
                saved(d.stored_bytes, d.original_bytes),
                if d.estimated { " ~" } else { "" }
            ));
        }
    }
    Ok(())
}

async fn migrate(engine: &Engine, p: &Printer, args: MigrateArgs, filters: Filters) -> Result<()> {
    let (src, dest) = (parse_s3(&args.source)?, parse_s3(&args.destination)?);
    let src_prefix = if src.key.is_empty() || src.key.ends_with('/') {
        src.key.clone()
    } else {
        format!("{}/", src.key)
    };
    let mut dest_prefix = if dest.key.is_empty() || dest.key.ends_with('/') {
        dest.key.clone()
    } else {
        format!("{}/", dest.key)
    };
    if !args.no_preserve_prefix
        && let Some(last) = src_prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    {
        dest_prefix = format!("{dest_prefix}{last}/");
    }
    let put = put_options(args.no_delta, args.max_ratio);
    // Resumable: files already at the destination with the same size are skipped.
    let compare = CompareOptions {
        size_only: true,
        ..Default::default()
    };
    let transfer = TransferArgs {
        dryrun: true,
        concurrency: args.concurrency,
        follow_symlinks: false,
        no_follow_symlinks: false,
    };
    let plan_options = transfer_options(&transfer, filters.clone(), compare, put.clone());
    let quiet_sink = |_: &TransferEvent| {};
    let planned = engine
        .copy_tree(
            &src.bucket,
            &src_prefix,
            &dest.bucket,
            &dest_prefix,
            &plan_options,
            &quiet_sink,
        )
        .await?;
    p.line(format!(
        "{}migrate: s3://{}/{} to s3://{}/{}: {} to copy, {} already there",
        if args.dry_run { "(dryrun) " } else { "" },
        src.bucket,
        src_prefix,
        dest.bucket,
        dest_prefix,
        planned.copied,
        planned.unchanged
    ));
    if p.json {
        print_json(&json!({
            "event": "migration-planned",
            "source": format!("s3://{}/{}", src.bucket, src_prefix),
            "destination": format!("s3://{}/{}", dest.bucket, dest_prefix),
            "to_copy": planned.copied,
            "already_there": planned.unchanged,
            "dryrun": args.dry_run,
        }));
    }
    if args.dry_run {
        let summary = engine
            .copy_tree(
                &src.bucket,
                &src_prefix,
                &dest.bucket,
                &dest_prefix,
                &plan_options,
                &event_printer(p),
            )
            .await?;
        return finish(p, "migrate", true, &summary);
    }
    if planned.copied == 0 {
        return finish(p, "migrate", false, &planned);
    }
    if !args.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(usage(format!(
                "migrate copies {} objects; confirm with --yes (no terminal to ask on)",
                planned.copied
            )));
        }
        {
            use std::io::Write;
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "Copy {} objects? [y/N] ", planned.copied);
            let _ = stderr.flush();
        }
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("migration cancelled");
        }
    }
    let run = TransferArgs {
        dryrun: false,
        concurrency: args.concurrency,
        follow_symlinks: false,
        no_follow_symlinks: false,
    };
    let options = transfer_options(&run, filters, compare, put);
    let summary = engine
        .copy_tree(
            &src.bucket,
            &src_prefix,
            &dest.bucket,
            &dest_prefix,
            &options,
            &event_printer(p),
        )
        .await?;
    finish(p, "migrate", false, &summary)
}

async fn presign(engine: &Engine, p: &Printer, args: PresignArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let signed = engine
        .presign_get(
            &url.bucket,
            &url.key,
            std::time::Duration::from_secs(args.expires_in),
        )
        .await?;
    if p.json {
        print_json(&signed);
    } else {
        // The URL alone on stdout, so that scripts can capture it.
        out_line(&escape(&signed.url));
    }
    Ok(())
}

async fn purge(engine: &Engine, p: &Printer, args: PurgeArgs) -> Result<()> {
    let url = bucket_and_prefix(&args.bucket)?;
    let report = engine.purge(&url.bucket).await?;
    if p.json {
        print_json(&report);
    }
    for key in report
        .deleted
        .iter()
        .chain(&report.references.orphans_removed)
    {
        p.line(format!("delete: s3://{}/{key}", url.bucket));
    }
    for key in &report.references.restored {
        p.line(format!("restore: s3://{}/{key}", url.bucket));
    }
    p.line(format!(
        "purge: {} expired deleted, {} kept; {} orphaned references removed, {} restored, {} retired copies removed",
        report.deleted.len(),
        report.kept,
        report.references.orphans_removed.len(),
        report.references.restored.len(),
        report.references.retired_removed
    ));
    Ok(())
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    // Into memory first: clap_complete panics on a write error, we report it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "deltaglider", &mut script);
    super::output::out_bytes(&script);
}

/// `deltaglider cache ...`: works on the configured cache without connecting to storage.
pub fn cache(cli: &Cli, mut config: Config, command: &super::args::CacheCommand) -> Result<()> {
    use super::args::CacheCommand;
    let p = Printer::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.connection.no_progress,
    );
    if let CacheCommand::Migrate { yes } = command {
        let found = deltaglider::cache::migrate::find_legacy_caches();
        if p.json && !yes {
            print_json(&json!({ "found": found }));
        }
        for c in &found {
            p.line(format!(
                "{} ({}){}",
                c.path.display(),
                serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", c.kind)),
                c.reason
                    .as_deref()
                    .map(|r| format!(" (kept: {r})"))
                    .unwrap_or_default()
            ));
        }
        if !yes {
            p.line(format!("{} old cache(s) found; run with --yes to delete them (their contents are never read)", found.len()));
            return Ok(());
        }
        let removed = deltaglider::cache::migrate::remove_legacy_caches(&found);
        if p.json {
            print_json(&json!({ "found": found, "removed": removed }));
        }
        let failed: Vec<_> = removed.iter().filter(|r| r.error.is_some()).collect();
        for r in &removed {
            match &r.error {
                Some(e) => p.warn(format!("failed: {}: {e}", r.path.display())),
                None if r.removed => p.line(format!("delete: {}", r.path.display())),
                None => {}
            }
        }
        if !failed.is_empty() {
            bail!("{} old cache(s) could not be deleted", failed.len());
        }
        return Ok(());
    }
    // Inspecting the cache must not start a watcher that reacts to our own verification.
    config.cache_settings.monitor = false;
    let cache = config.open_cache()?;
    match command {
        CacheCommand::Info => {
            let info = cache.info()?;
            if p.json {
                print_json(&info);
            } else {
                p.line(format!("backend:     {}", info.backend));
                p.line(format!("description: {}", info.description));
                if let Some(l) = &info.location {
                    p.line(format!("location:    {}", l.display()));
                }
                p.line(format!(
                    "entries:     {} ({})",
                    info.entries,
                    human_size(info.bytes)
                ));
                if let Some(m) = info.max_bytes {
                    p.line(format!("budget:      {}", human_size(m)));
                }
                if let Some(t) = info.ttl_seconds {
                    p.line(format!(
                        "ttl:         {} ({t} seconds)",
                        humantime::format_duration(std::time::Duration::from_secs(t))
                    ));
                }
                if let Some(k) = &info.signing_key {
                    p.line(format!("signing key: {k}"));
                }
                if let Some(k) = &info.encryption_key {
                    p.line(format!("encryption:  {k}"));
                }
                if info.unsafe_shared {
                    p.line("WARNING: ownership and mode checks are off (DG_UNSAFE_SHARED_CACHE)");
                }
            }
        }
        CacheCommand::Clear => {
            let before = cache.info()?;
            cache.clear()?;
            if p.json {
                print_json(&json!({ "removed_entries": before.entries }));
            }
            p.line(format!("cache cleared: {} entries removed", before.entries));
        }
        CacheCommand::Verify => {
            let summary = cache.verify_all()?;
            if p.json {
                print_json(&summary);
            }
            p.line(format!(
                "cache verify: {} checked, {} valid, {} removed",
                summary.checked, summary.valid, summary.removed
            ));
        }
        CacheCommand::Migrate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Upload options from the flags every storing command shares.
fn put_options(no_delta: bool, max_ratio: Option<f64>) -> PutRequestOptions {
    PutRequestOptions {
        no_delta,
        max_ratio,
        ..Default::default()
    }
}
