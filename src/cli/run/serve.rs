//! `deltaglider serve`: the backend as an S3 endpoint until SIGTERM or ctrl-c.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use deltaglider::Client;
use deltaglider_serve::{Access, Server, Spool};

use crate::cli::args::ServeArgs;
use crate::cli::output::out_line;

/// The environment variables of the one read-write key.
const KEY_ID_VAR: &str = "DG_SERVE_ACCESS_KEY_ID";
const SECRET_VAR: &str = "DG_SERVE_SECRET_ACCESS_KEY";

/// Who may call: the key from the environment, or anyone with `--anonymous`; neither is a
/// refusal to start.
fn access(args: &ServeArgs) -> Result<Access> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var(KEY_ID_VAR), var(SECRET_VAR), args.anonymous) {
        (Some(_), Some(_), true) => {
            bail!("--anonymous and {KEY_ID_VAR}/{SECRET_VAR} exclude each other: choose one")
        }
        (Some(access_key_id), Some(secret_access_key), false) => Ok(Access::Key {
            access_key_id,
            secret_access_key,
        }),
        (None, None, true) => Ok(Access::Anonymous),
        (Some(_), None, _) | (None, Some(_), _) => {
            bail!("{KEY_ID_VAR} and {SECRET_VAR} must be set together")
        }
        (None, None, false) => bail!(
            "no access key: set {KEY_ID_VAR} and {SECRET_VAR}, or pass --anonymous to serve \
             without authentication"
        ),
    }
}

/// Serves until a signal, then lets the requests in flight finish.
pub async fn serve(client: Client, args: &ServeArgs) -> Result<()> {
    let access = access(args)?;
    let spool = match &args.spool_dir {
        Some(dir) => Spool::new(dir),
        None => Spool::in_temp_dir(),
    }
    .with_context(|| match &args.spool_dir {
        Some(dir) => format!("cannot make a spool directory in {}", dir.display()),
        None => "cannot make a spool directory in the temporary directory (set TMPDIR or \
                 --spool-dir)"
            .to_string(),
    })?;
    let server = Server::bind(args.listen).await?;
    let addr = server.local_addr()?;
    let anonymous = matches!(access, Access::Anonymous);
    let service = deltaglider_serve::service(client, access, spool.clone());
    // Handlers first: a signal right after the address is printed stops the server cleanly.
    let stop = stopped()?;
    // The one line on stdout: where to point clients (tests read the port from it).
    out_line(&format!("listening on http://{addr}"));
    crate::cli::output::stdout_result()?;
    if anonymous {
        tracing::warn!("serving without authentication: anyone who can connect has full access");
    }
    server
        .run(service, stop, Duration::from_secs(args.grace))
        .await?;
    // Uploads that were never completed end with the server.
    if let Err(e) = spool.remove() {
        tracing::warn!("cannot remove {}: {e}", spool.path().display());
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT; the handlers are installed before it returns.
fn stopped() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
