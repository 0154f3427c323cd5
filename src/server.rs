//! `serve`: runs the router on a bound listener until `shutdown` resolves, then
//! drains in-flight requests and flushes background writes. `main` and every test
//! call this same function.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;

/// Binds the configured address and opens the app; the public URL defaults to the
/// bound address.
pub async fn bind(
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(TcpListener, Arc<App>)> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let lock = lock_embedded_database(&config.database_url)?;
    let app = App::open(config, clock, format!("http://{local}")).await?;
    if let Some(file) = lock {
        let _ = app.serve_lock.set(file);
    }
    // Temporary files of writes a crash or a kill interrupted.
    match app.blobs.sweep_temporary(crate::blob::GRACE_PERIOD).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed abandoned temporary blob files"),
        Err(e) => tracing::warn!(error = %e, "could not sweep temporary blob files"),
    }
    Ok((listener, app))
}

/// The embedded SQLite database belongs to one serving process: its read cache
/// relies on seeing every write (see `store::read_cache`). A second `serve` on the
/// same file is refused; operator commands (`user add`, `gc`) stay possible.
fn lock_embedded_database(database_url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = crate::store::sqlite_file(database_url) else {
        return Ok(None);
    };
    let mut lock_path = path.into_os_string();
    lock_path.push(".serve-lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the database {} is already served by another `tessera serve`; the embedded \
             SQLite store belongs to one process (run several instances on PostgreSQL)",
            database_url
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", lock_path.display())
        }
    }
}

/// Serves until `shutdown` completes; acknowledged writes are committed before a
/// response is sent, and background writes are flushed before returning.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = crate::http::router(app.clone());
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    app.shutdown().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
