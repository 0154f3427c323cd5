//! The HTTP server. `bind` opens the listener and the app; `serve` runs an accept
//! loop that hands each TCP connection to hyper (HTTP/1.1, and HTTP/2 with prior
//! knowledge) through `connection`, which enforces the header-read, idle and
//! slow-body limits. When `shutdown` completes, `serve` stops accepting, answers the
//! requests already received (with `Connection: close`), closes idle connections,
//! waits for in-flight requests up to `shutdown_timeout`, cuts what is left and
//! flushes background writes. `main` and every test call this same `serve`.

mod connection;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::app::App;
use crate::clock::Clock;
use crate::config::{Config, setting};

/// After the shutdown signal, the time given to the reactor to deliver input that
/// arrived before it, so a request already sent on an idle keep-alive connection
/// is read (and answered) rather than taken for an idle connection and dropped.
const SETTLE: Duration = Duration::from_millis(20);

/// Longest wait for the last background writes (token last-used records) and the
/// database pool to close after the connections are done.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the configured address and opens the app; the public URL defaults to the
/// bound address.
pub async fn bind(
    config: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(TcpListener, Arc<App>)> {
    let listener = listen(config.listen).map_err(|e| {
        anyhow::anyhow!(
            "{} {}: cannot listen: {e}",
            setting("listen"),
            config.listen
        )
    })?;
    let local = listener.local_addr()?;
    crate::config::ensure_dir("data_dir", &config.data_dir)?;
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

/// Connections the kernel may complete and queue while the accept loop is behind
/// (or out of file descriptors); capped by `net.core.somaxconn`. The usual default of
/// 128 makes clients beyond it retry their SYN after one, then three seconds.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // Restarting must not wait for the previous process's sockets to time out.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
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
        crate::config::ensure_dir("database_url", dir)?;
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

/// Serves until `shutdown` completes, then drains (see the module comment).
/// Acknowledged writes are committed before a response is sent, and background
/// writes are flushed before returning.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = connection::Shared::new(app.clone());
    let maintenance = tokio::spawn(crate::domain::maintenance::run(app.clone()));
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    accept_errors.clear();
                    connections.spawn(connection::serve(stream, peer, shared.clone()));
                }
                Err(e) => accept_errors.pause_after(e).await,
            },
        }
    }

    let started = Instant::now();
    shared.stop_keeping_alive();
    // Connections the kernel completed before the signal may carry a request
    // already: take them too, then refuse new ones.
    let mut late = 0;
    while let Some(Ok((stream, peer))) = listener.accept().now_or_never() {
        connections.spawn(connection::serve(stream, peer, shared.clone()));
        late += 1;
    }
    drop(listener);
    tokio::time::sleep(SETTLE).await;
    shared.start_draining();
    let deadline = app.config.limits.shutdown_timeout;
    let open = connections.len();
    tracing::info!(open, late, deadline = ?deadline, "draining connections");
    let drained = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            cut = connections.len(),
            "shutdown deadline reached; closing the connections still open"
        );
        connections.shutdown().await;
    }
    maintenance.abort();
    if tokio::time::timeout(FLUSH_TIMEOUT, app.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("background writes did not finish within {FLUSH_TIMEOUT:?}");
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "stopped after draining"
    );
    Ok(())
}

/// Accept failures: a connection that died in the backlog is skipped; running out of
/// file descriptors (or memory) pauses accepting briefly instead of spinning, and is
/// logged once per streak.
#[derive(Default)]
struct AcceptErrors {
    streak: u64,
}

impl AcceptErrors {
    fn clear(&mut self) {
        if self.streak > 0 {
            tracing::info!(failures = self.streak, "accepting connections again");
        }
        self.streak = 0;
    }

    async fn pause_after(&mut self, e: std::io::Error) {
        use std::io::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return;
        }
        if self.streak == 0 {
            tracing::warn!(error = %e, "cannot accept connections; retrying every 50 ms");
        }
        self.streak += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Raises the soft limit on open files to the hard limit, so idle clients cannot
/// exhaust a low default (often 1024); logs the limit in force.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        if limit.current == limit.maximum {
            tracing::info!(limit = %show(limit.current), "open file limit");
            return;
        }
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(
                from = %show(limit.current),
                to = %show(limit.maximum),
                "raised the open file limit"
            ),
            Err(e) => tracing::warn!(
                limit = %show(limit.current),
                hard = %show(limit.maximum),
                error = %e,
                "cannot raise the open file limit"
            ),
        }
    }
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
