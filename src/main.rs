//! `deltaglider`: the command-line front end of the library.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use cli::args::Cli;

/// Colours only for a person: stderr is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

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
        .with_writer(cli::output::LogWriter)
        .with_ansi(colour_logs())
        .with_target(false)
        .init();
}

/// One line: the error and its causes, escaped for the terminal (keys in messages can hold
/// control characters); the exit code from `cli::exit::code`. A storage error's own line
/// already says what its backend reported (without the SDK's debug text), so the chain
/// stops there.
fn report(err: &anyhow::Error) -> ExitCode {
    let mut line = String::new();
    for cause in err.chain() {
        let c = cause.to_string();
        if !line.contains(&c) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&c);
        }
        if matches!(
            cause.downcast_ref::<deltaglider::Error>(),
            Some(deltaglider::Error::Storage { .. })
        ) {
            break;
        }
    }
    cli::output::err_line(&format!(
        "deltaglider: error: {}",
        cli::output::escape(&line)
    ));
    ExitCode::from(cli::exit::code(err))
}

/// The end of a command: its result, then whether its output reached stdout.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result.and_then(|()| Ok(cli::output::stdout_result()?)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// How long an interrupted command waits for the aborts of its unfinished uploads.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for SIGINT or SIGTERM; the error carries the shell's code for it (128 + signal).
async fn interrupted() -> cli::exit::CliError {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let (what, code) = tokio::select! {
        _ = term.recv() => ("terminated", 128 + libc::SIGTERM as u8),
        _ = int.recv() => ("interrupted", 128 + libc::SIGINT as u8),
    };
    // No progress-bar frame is left on the terminal under the error line.
    cli::output::clear_progress();
    cli::exit::CliError::Interrupted { what, code }
}

/// `--help`, `--version` and parse errors, as clap prints them, but a failed write to
/// stdout (`--help > /dev/full`) is an error line and exit 1, not a silent success.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            use std::io::IsTerminal;
            let text = e.render();
            let text = if std::io::stdout().is_terminal() {
                text.ansi().to_string()
            } else {
                text.to_string()
            };
            cli::output::out_bytes(text.as_bytes());
            finish(Ok(()))
        }
        _ => e.exit(),
    }
}

fn is_serve(command: &cli::args::Command) -> bool {
    #[cfg(feature = "serve")]
    if matches!(command, cli::args::Command::Serve(_)) {
        return true;
    }
    let _ = command;
    false
}

fn main() -> ExitCode {
    // Test builds only (the library built with its failpoints): the failpoints named in
    // the FAILPOINTS environment variable.
    let _failpoints = deltaglider::testing::FAILPOINTS.then(fail::FailScenario::setup);
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_exit(e),
    };
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`deltaglider ls | head`); results are printed only after work is complete. Not
    // `serve`: there a client that hangs up mid-response is that request's end (EPIPE),
    // never the server's.
    if !is_serve(&cli.command) {
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filters = cli::run::ordered_filters(&matches);
    if let cli::args::Command::Completions(args) = &cli.command {
        cli::run::completions(args.shell);
        return finish(Ok(()));
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
        return finish(cli::run::cache(&cli, config, command));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        let client = config.build_client().await?;
        // serve stops on a signal by itself, finishing the requests in flight.
        #[cfg(feature = "serve")]
        if let cli::args::Command::Serve(args) = &cli.command {
            return cli::run::serve(client, args).await;
        }
        // Dropping the command future on a signal drops its temporary files and the private
        // cache directory before the process exits, and starts aborting its unfinished
        // multipart uploads, which are waited for here.
        let cleanup = client.clone();
        let why = tokio::select! {
            r = cli::run::run(cli, filters, client) => return r,
            why = interrupted() => why,
        };
        // The command's future is gone by now.
        if !cleanup.finish_cleanup(ABORT_WAIT).await {
            tracing::warn!(
                "an unfinished multipart upload could not be aborted in time; \
                 `deltaglider purge` aborts it"
            );
        }
        Err(why.into())
    });
    runtime.shutdown_background();
    finish(result)
}
