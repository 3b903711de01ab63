//! `deltaglider serve`: the backend as an S3 endpoint until SIGTERM or ctrl-c.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use deltaglider::Client;
use deltaglider_serve::{Limits, Metrics, Policy, Server, Spool};

use crate::cli::args::ServeArgs;
use crate::cli::output::out_line;

/// The environment variables of the one read-write key.
const KEY_ID_VAR: &str = "DG_SERVE_ACCESS_KEY_ID";
const SECRET_VAR: &str = "DG_SERVE_SECRET_ACCESS_KEY";

/// Who may call: the access file, the key from the environment, or anyone with
/// `--anonymous`; none of them is a refusal to start.
fn policy(args: &ServeArgs) -> Result<Policy> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let (id, secret) = (var(KEY_ID_VAR), var(SECRET_VAR));
    if let Some(file) = &args.access_file {
        if id.is_some() || secret.is_some() {
            bail!(
                "--access-file and {KEY_ID_VAR}/{SECRET_VAR} exclude each other: put the key \
                 in the file"
            );
        }
        return access_file(file);
    }
    match (id, secret, args.anonymous) {
        (Some(_), Some(_), true) => {
            bail!("--anonymous and {KEY_ID_VAR}/{SECRET_VAR} exclude each other: choose one")
        }
        (Some(id), Some(secret), false) => Ok(Policy::single_key(id, secret)),
        (None, None, true) => Ok(Policy::anonymous()),
        (Some(_), None, _) | (None, Some(_), _) => {
            bail!("{KEY_ID_VAR} and {SECRET_VAR} must be set together")
        }
        (None, None, false) => bail!(
            "no access key: set {KEY_ID_VAR} and {SECRET_VAR}, give --access-file, or pass \
             --anonymous to serve without authentication"
        ),
    }
}

/// The policy of an access file, which holds secrets: refused when others may read it.
fn access_file(path: &Path) -> Result<Policy> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{shown} holds secret keys but other users may read it (mode {mode:o}): \
             chmod 600 {shown}"
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    Policy::from_toml(&text).with_context(|| format!("{shown} is not a valid access file"))
}

/// Serves until a signal, then lets the requests in flight finish.
pub async fn serve(client: Client, args: &ServeArgs) -> Result<()> {
    let policy = policy(args)?;
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
    let anonymous = policy.anonymous_access();
    let limits = Limits::default()
        .requests(
            args.max_requests as usize,
            Duration::from_secs(args.queue_timeout),
        )
        .max_object_size(args.max_object_size)
        .range_copies(args.range_cache_size)
        .idle_uploads(
            (args.abort_idle_uploads > 0).then(|| Duration::from_secs(args.abort_idle_uploads)),
        );
    let metrics = Arc::new(Metrics::for_client(&client));
    let endpoint =
        deltaglider_serve::endpoint(client, policy, spool.clone(), &limits, Arc::clone(&metrics));
    let metrics_server = match args.metrics_listen {
        Some(addr) => Some(Server::bind(addr).await?),
        None => None,
    };
    // Handlers first: a signal right after the address is printed stops the server cleanly.
    let stop = stopped()?;
    // The one line on stdout: where to point clients (tests read the port from it).
    out_line(&format!("listening on http://{addr}"));
    if let Some(server) = metrics_server {
        out_line(&format!("metrics on http://{}", server.local_addr()?));
        // It answers until the process ends, after the endpoint has stopped.
        tokio::spawn(async move {
            if let Err(e) = server.run_metrics(metrics, std::future::pending()).await {
                tracing::warn!("the metrics listener stopped: {e}");
            }
        });
    }
    crate::cli::output::stdout_result()?;
    if let Some(what) = anonymous {
        tracing::warn!("unsigned requests are served: anyone who can connect has {what}");
    }
    server
        .run(endpoint, stop, Duration::from_secs(args.grace))
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
