//! One TCP connection: hyper serves it, `watch` decides when to close it.
//!
//! The socket wrapper (`Watched`) and the service (`Service`) record which phase the
//! connection is in (`ConnState`):
//! - waiting for a request: a fresh connection (closed `header_read_timeout` after
//!   accept) or a keep-alive one after its response (closed after `idle_timeout`);
//! - reading a request head: bytes arrived while no request was in flight (closed
//!   `header_read_timeout` after the first byte; after accept on a fresh connection);
//! - busy: a request is handled or its response written (no limit, except that a
//!   client that stops reading the response is closed after `idle_timeout`).
//!
//! Request bodies are timed by `TimedBody` (`body_read_timeout`, `min_body_rate`).
//! While draining, connections waiting for a request are closed and the others
//! finish, their responses carrying `Connection: close`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, Version, header};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::app::App;
use crate::config::ConnectionLimits;
use crate::http::SlowBody;
use crate::metrics::ConnectionClosed;

/// What every connection of one server shares.
pub(super) struct Shared {
    app: Arc<App>,
    router: axum::Router,
    limits: ConnectionLimits,
    builder: auto::Builder<TokioExecutor>,
    draining: AtomicBool,
    drain: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn new(app: Arc<App>) -> Arc<Shared> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // `watch` enforces the header-read limit: hyper's own needs a timer and
        // counts the wait for a keep-alive request as header time.
        builder.http1().header_read_timeout(None);
        Arc::new(Shared {
            router: crate::http::router(app.clone()),
            limits: app.config.limits,
            app,
            builder,
            draining: AtomicBool::new(false),
            drain: watch::channel(false).0,
        })
    }

    /// From now on HTTP/1 responses carry `Connection: close`.
    pub(super) fn stop_keeping_alive(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Closes the connections waiting for a request (now and as they become idle).
    pub(super) fn start_draining(&self) {
        self.stop_keeping_alive();
        self.drain.send_replace(true);
    }
}

/// Serves one accepted connection until the client or hyper ends it, or `watch`
/// closes it.
pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // Responses are written whole; do not let Nagle hold back their last segment.
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched {
        stream,
        state: state.clone(),
    });
    let service = Service {
        shared: shared.clone(),
        state: state.clone(),
        peer,
    };
    let conn = shared.builder.serve_connection(io, service);
    // Counted as cut at shutdown if the task is aborted at the deadline.
    let mut ended = Ended {
        app: shared.app.clone(),
        closed_by: Some(ConnectionClosed::Shutdown),
    };
    shared.app.metrics.connection_opened();
    ended.closed_by = watch(conn, &state, &shared).await;
    if let Some(reason) = ended.closed_by {
        tracing::debug!(%peer, reason = reason.label(), "closing connection");
    }
}

/// Records the end of a connection in the metrics, also when its task is aborted.
struct Ended {
    app: Arc<App>,
    closed_by: Option<ConnectionClosed>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.app.metrics.connection_ended(self.closed_by);
    }
}

/// Drives `conn` and returns why the server closed it (`None`: it ended by itself).
/// The limits are checked whenever something other than hyper wakes the task: a
/// periodic check no longer than the shortest limit (so no deadline is overshot),
/// the start of draining, and, while draining, the end of a request.
async fn watch<C, E>(conn: C, state: &ConnState, shared: &Shared) -> Option<ConnectionClosed>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let limits = &shared.limits;
    let period = limits.header_read_timeout.min(limits.idle_timeout);
    let mut conn = pin!(conn);
    let mut check = pin!(tokio::time::sleep(period));
    let mut drain = shared.drain.subscribe();
    let mut draining = false;
    loop {
        tokio::select! {
            // hyper first: input that is already there is read before any verdict.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return None;
            }
            _ = drain.wait_for(|d| *d), if !draining => {
                draining = true;
                state.draining.store(true, Ordering::SeqCst);
            }
            () = state.idle.notified(), if draining => {}
            () = check.as_mut() => {}
        }
        match state.verdict(limits, draining) {
            Verdict::Close(reason) => return Some(reason),
            Verdict::Wait(due) => {
                let next = due.map_or(period, |d| d.min(period));
                check.as_mut().reset(tokio::time::Instant::now() + next);
            }
        }
    }
}

enum Verdict {
    Close(ConnectionClosed),
    /// Keep the connection; the next deadline is this far (none while busy).
    Wait(Option<Duration>),
}

/// The phase of one connection. Written from inside hyper (socket wrapper,
/// service, response body), read by `watch`.
struct ConnState {
    epoch: Instant,
    /// Requests handed to the router whose response body is not finished.
    in_flight: AtomicUsize,
    /// Bytes arrived while no request was in flight: a request head is arriving.
    reading_head: AtomicBool,
    /// At least one request reached the router.
    served: AtomicBool,
    /// Start of the current wait (ms since `epoch`): the accept, the end of the
    /// last response, or the first byte of a later request head.
    since_ms: AtomicU64,
    /// 1 + ms since `epoch` of the first write that could not progress since the
    /// last one that did; 0 when writes progress.
    write_blocked_ms: AtomicU64,
    draining: AtomicBool,
    /// Woken when the last in-flight request finishes while draining.
    idle: Notify,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            reading_head: AtomicBool::new(false),
            served: AtomicBool::new(false),
            since_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Bytes were read from the client.
    fn on_input(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 && !self.reading_head.load(Ordering::Relaxed)
        {
            // A fresh connection's head is timed from the accept, so dribbling the
            // first byte late does not buy a second period.
            if self.served.load(Ordering::Relaxed) {
                self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            }
            self.reading_head.store(true, Ordering::SeqCst);
        }
    }

    /// A write returned: `progressed` when it wrote bytes, not when it was pending.
    fn on_write(&self, progressed: bool) {
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        if progressed && blocked != 0 {
            self.write_blocked_ms.store(0, Ordering::Relaxed);
        } else if !progressed && blocked == 0 {
            self.write_blocked_ms
                .store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.reading_head.store(false, Ordering::SeqCst);
        self.served.store(true, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            if self.draining.load(Ordering::SeqCst) {
                self.idle.notify_one();
            }
        }
    }

    fn verdict(&self, limits: &ConnectionLimits, draining: bool) -> Verdict {
        let now = self.now_ms();
        let due = |since: u64, limit: Duration, reason| {
            let end = since.saturating_add(limit.as_millis() as u64);
            if now >= end {
                Verdict::Close(reason)
            } else {
                Verdict::Wait(Some(Duration::from_millis(end - now)))
            }
        };
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        if blocked != 0 {
            return due(
                blocked - 1,
                limits.idle_timeout,
                ConnectionClosed::WriteStalled,
            );
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Verdict::Wait(None);
        }
        let since = self.since_ms.load(Ordering::Relaxed);
        if self.reading_head.load(Ordering::SeqCst) {
            due(
                since,
                limits.header_read_timeout,
                ConnectionClosed::HeaderTimeout,
            )
        } else if draining {
            Verdict::Close(ConnectionClosed::Shutdown)
        } else if self.served.load(Ordering::Relaxed) {
            due(since, limits.idle_timeout, ConnectionClosed::IdleTimeout)
        } else {
            due(
                since,
                limits.header_read_timeout,
                ConnectionClosed::HeaderTimeout,
            )
        }
    }
}

/// The socket, noting reads and write progress in the connection's state.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_input();
        }
        result
    }
}

impl Watched {
    fn noted(&self, result: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match &result {
            Poll::Ready(Ok(n)) if *n > 0 => self.state.on_write(true),
            Poll::Pending => self.state.on_write(false),
            _ => {}
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.noted(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.noted(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Hands requests to the router with the client address, times request bodies,
/// and tracks each request until its response body is finished.
struct Service {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> ResponseFuture {
        self.state.request_started();
        let in_flight = InFlight(self.state.clone());
        let version = request.version();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = if body.is_end_stream() {
            Body::new(body)
        } else {
            let slow = SlowBody::default();
            parts.extensions.insert(slow.clone());
            Body::new(TimedBody::new(body, &self.shared.limits, slow))
        };
        let shared = self.shared.clone();
        Box::pin(async move {
            let Ok(response) = shared
                .router
                .clone()
                .oneshot(Request::from_parts(parts, body))
                .await;
            let (mut parts, body) = response.into_parts();
            if version < Version::HTTP_2 && shared.draining.load(Ordering::SeqCst) {
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(Response::from_parts(
                parts,
                TrackedBody {
                    inner: body,
                    _in_flight: in_flight,
                },
            ))
        })
    }
}

/// One request in flight; dropped with its response body (or with the handler, if
/// the connection goes away first).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request counted as in flight until hyper is done
/// with it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must keep arriving: every `body_read_timeout` spent waiting
/// for it must bring `min_body_rate` × that period (at least one byte), else it
/// fails and marks the request's `SlowBody`.
struct TimedBody {
    inner: Incoming,
    period: Duration,
    min_bytes: u64,
    /// Bytes received in the current period.
    received: u64,
    /// End of the current period; started on the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    slow: SlowBody,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
struct BodyTooSlow;

impl TimedBody {
    fn new(inner: Incoming, limits: &ConnectionLimits, slow: SlowBody) -> TimedBody {
        let period = limits.body_read_timeout;
        let min_bytes = (u128::from(limits.min_body_rate) * period.as_millis() / 1000).max(1);
        TimedBody {
            inner,
            period,
            min_bytes: u64::try_from(min_bytes).unwrap_or(u64::MAX),
            received: 0,
            timer: None,
            slow,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let period = this.period;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
                if timer.as_mut().poll(cx).is_ready() {
                    if this.received < this.min_bytes {
                        this.slow.mark();
                        return Poll::Ready(Some(Err(BodyTooSlow.into())));
                    }
                    this.received = 0;
                    timer.as_mut().reset(tokio::time::Instant::now() + period);
                    // Registers the waker for the new period (it cannot be due yet).
                    let _ = timer.as_mut().poll(cx);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
