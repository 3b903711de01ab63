//! Blocking work (file I/O, the codec) run off the async threads, with one way of reporting
//! a task that died.

/// Runs `f` on the blocking pool; `what` names the work if the task itself dies (a panic).
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::io(format!("{what} task failed"), std::io::Error::other(e)))?
}
