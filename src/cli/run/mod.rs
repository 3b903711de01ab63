//! Runs one parsed command against the library: the dispatch here, each command in a file
//! of its own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use deltaglider::config::Config;
use deltaglider::{Client, S3Url, StoredAs};
use deltaglider::{PutReport, PutRequestOptions};
use serde_json::json;

use deltaglider::{CompareOptions, FilterKind, Filters};
use deltaglider::{
    DeleteTreeOptions, Location, MigrateOptions, MoveOptions, TransferEvent, TransferOptions,
    TransferSummary,
};
use indicatif::ProgressBar;

use super::args::{
    BucketArgs, Cli, Command, CpArgs, HeadArgs, LsArgs, MigrateArgs, MvArgs, PresignArgs,
    PurgeArgs, RbArgs, RmArgs, StatsArgs, SyncArgs, TransferArgs, VerifyArgs,
};
use super::exit::usage;
use super::output::{err_line, escape, human_size, listing_time, out_line, pct, percent, saved};
use super::report::{Doc, Json, Render, Text, TextOnly};
use super::upload_options;

mod bucket;
mod cache;
mod cp;
mod head;
mod ls;
mod migrate;
mod mv;
mod presign;
mod printer;
mod rm;
#[cfg(feature = "serve")]
mod serve;
mod settings;
mod stats;
mod sync;
mod verify;

use bucket::*;
pub use cache::cache;
use cp::*;
use head::*;
use ls::*;
use migrate::*;
use mv::*;
use presign::*;
use printer::*;
use rm::*;
#[cfg(feature = "serve")]
pub use serve::serve;
pub use settings::{config, ordered_filters};
use stats::*;
use sync::*;
use verify::*;

/// Runs the command.
pub async fn run(cli: Cli, filters: Vec<(FilterKind, String)>, client: Client) -> Result<()> {
    let mut printer = Printer::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.connection.no_progress,
    );
    printer.moving = matches!(cli.command, Command::Mv(_));
    let client = if printer.progress.is_hidden() {
        client
    } else {
        client.with_progress(printer.reporter.clone())
    };
    let filters = Filters::new(filters)?;
    match cli.command {
        Command::Cp(args) if args.recursive => cp_recursive(&client, &printer, args, filters).await,
        Command::Cp(args) => cp(&client, &printer, args).await,
        Command::Sync(args) => sync(&client, &printer, args, filters).await,
        Command::Mv(args) => mv(&client, &printer, args, filters).await,
        Command::Head(args) => {
            let head = head(&client, args).await?;
            printer.show(&head);
            Ok(())
        }
        Command::Stats(args) => stats(&client, &printer, args).await,
        Command::Presign(args) => presign(&client, &printer, args).await,
        Command::Analyze(args) => {
            let limit = (!args.all).then_some(args.top);
            let report = super::analyze::run(&client, &printer.progress, &args).await?;
            printer.show(&Doc {
                json: &report,
                text: |out: &dyn Text| {
                    for line in super::analyze::summary(&report, limit) {
                        out.line(&line);
                    }
                    for line in super::analyze::warnings(&report) {
                        out.note(&line);
                    }
                },
            });
            Ok(())
        }
        Command::Purge(args) => purge(&client, &printer, args).await,
        Command::Completions(_) | Command::Cache(_) => {
            unreachable!("handled before the client is built")
        }
        #[cfg(feature = "serve")]
        Command::Serve(_) => unreachable!("run by main, which leaves its signals to it"),
        Command::Migrate(args) => migrate(&client, &printer, args, filters).await,
        Command::Ls(args) => ls(&client, &printer, args).await,
        Command::Rm(args) if args.recursive => rm_recursive(&client, &printer, args, filters).await,
        Command::Rm(args) => rm(&client, &printer, args).await,
        Command::Verify(args) => verify(&client, &printer, args).await,
        Command::Mb(args) => mb(&client, &printer, args).await,
        Command::Rb(args) => rb(&client, &printer, args).await,
    }
}

fn parse_s3(s: &str) -> Result<S3Url> {
    Ok(S3Url::parse(s)?)
}

/// `BUCKET`, `s3://bucket` or `s3://bucket/prefix`.
fn bucket_and_prefix(target: &str) -> Result<S3Url> {
    if S3Url::is_s3(target) {
        parse_s3(target)
    } else {
        parse_s3(&format!("s3://{target}"))
    }
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    // Into memory first: clap_complete panics on a write error, we report it.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "deltaglider", &mut script);
    super::output::out_bytes(&script);
}
