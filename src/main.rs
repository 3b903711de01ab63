//! `deltaglider`: the command-line front end of the library.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use cli::args::Cli;

fn init_logging(verbose: u8, configured: Option<&str>) {
    let level = match verbose {
        0 => configured.unwrap_or("warn").to_string(),
        1 => "info".into(),
        2 => "debug".into(),
        _ => "trace".into(),
    };
    let filter = EnvFilter::try_new(format!(
        "{level},aws_config=error,aws_smithy_runtime=error,hyper=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// One line: the error and its causes.
fn report(err: &anyhow::Error) -> ExitCode {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    eprintln!("deltaglider: error: {line}");
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<deltaglider::Error>())
        .map_or(1, |e| e.exit_code());
    ExitCode::from(code as u8)
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupted",
    }
}

fn main() -> ExitCode {
    // Test builds only: the failpoints named in the FAILPOINTS environment variable.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`deltaglider ls | head`); results are printed only after work is complete.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filters = cli::run::ordered_filters(&matches);
    if let cli::args::Command::Completions(args) = &cli.command {
        cli::run::completions(args.shell);
        return ExitCode::SUCCESS;
    }
    let config = match cli::run::config(&cli) {
        Ok(c) => c,
        Err(e) => {
            init_logging(cli.global.verbose, None);
            return report(&e);
        }
    };
    init_logging(cli.global.verbose, config.log_level.as_deref());
    if let cli::args::Command::Cache(command) = &cli.command {
        return match cli::run::cache(&cli, config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report(&e),
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        let engine = config.build_engine().await?;
        // Dropping the command future on a signal drops its temporary files and the private
        // cache directory before the process exits.
        tokio::select! {
            r = cli::run::run(cli, filters, engine) => r,
            why = interrupted() => Err(anyhow::anyhow!("{why}; temporary files removed, nothing partial was stored")),
        }
    });
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}
