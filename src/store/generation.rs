//! The authority generation of a shared (PostgreSQL) database, as one instance sees it.
//!
//! Every write transaction advances `authority.generation` before it commits
//! (`WriteTx::commit`). A request may use the in-memory read cache only with a
//! generation value read by a query that *started after the request arrived*: every
//! write answered before the request arrived, on any instance, committed before that
//! query began, so the value read differs from the cache's if anything changed.
//!
//! `GenerationFeed` coalesces those reads: at most one is in flight per instance.
//! A request that arrives while one is in flight waits for the next one (the one in
//! flight began too early for it); every request waiting when a read starts shares
//! it. Under load that is one read per database round trip, whatever the request
//! rate. A read that fails, or a wait longer than `WAIT_LIMIT`, gives no value and
//! the request goes uncached (to the database, which answers or fails as it would
//! without a cache); a cached answer is never given without a fresh value.
//!
//! The reads go over one connection of their own, outside the pool: one database
//! backend stays hot for them (through the pool they woke whichever backend was
//! free, at four times the database CPU per read), no pool bookkeeping per read, and
//! a generation read never queues behind requests' queries. A failed read drops the
//! connection; the next round opens a new one.
//!
//! The value also names the database server (`pg_postmaster_start_time`): after a
//! failover or restart the generation may repeat a number the old server used with a
//! different history, and the name makes the pair differ anyway. It is read with
//! every value, not once per connection: behind a pooler (PgBouncer) one client
//! connection outlives a failover and reaches the new server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{Notify, watch};

/// How long a request waits for a generation read before going uncached.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// One generation read: the counter and the identity of the server that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub value: i64,
    pub server: i64,
}

/// What the background task publishes after each read: the round it belongs to and
/// what it found (`None`: the read failed).
type Round = (u64, Option<Generation>);

#[derive(Debug, Default)]
struct Demand {
    /// Rounds started so far (a round starts just before its query is sent).
    started: u64,
    /// A request is waiting for a round that has not started yet.
    wanted: bool,
}

#[derive(Debug)]
struct Shared {
    demand: Mutex<Demand>,
    wake: Notify,
    rounds: watch::Sender<Round>,
}

/// The per-instance source of fresh generation values; dropping it stops its task.
#[derive(Debug)]
pub struct GenerationFeed {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

const READ_SQL: &str = "SELECT generation, \
    CAST(EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000000 AS BIGINT) \
    FROM authority WHERE id = 1";

impl GenerationFeed {
    /// Starts the reading task, which connects with `options` (must be called inside
    /// a tokio runtime).
    pub fn start(options: PgConnectOptions) -> GenerationFeed {
        let (rounds, _) = watch::channel((0, None));
        let shared = Arc::new(Shared {
            demand: Mutex::default(),
            wake: Notify::new(),
            rounds,
        });
        let task = tokio::spawn(run(shared.clone(), options));
        GenerationFeed { shared, task }
    }

    /// A generation value read by a query that started after this call, or `None`
    /// when the read failed or took longer than `WAIT_LIMIT`.
    pub async fn fresh(&self) -> Option<Generation> {
        let mut rx = self.shared.rounds.subscribe();
        let target = {
            let mut d = self.shared.demand.lock().unwrap_or_else(|p| p.into_inner());
            d.wanted = true;
            // Rounds up to `started` began before now; the next one will not.
            d.started + 1
        };
        self.shared.wake.notify_one();
        let round = tokio::time::timeout(WAIT_LIMIT, rx.wait_for(|(r, _)| *r >= target)).await;
        match round {
            Ok(Ok(seen)) => seen.1,
            _ => None,
        }
    }
}

impl Drop for GenerationFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One read over the feed's connection (opened first when there is none); a
/// failure drops it.
async fn read_once(
    reader: &mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<Generation, sqlx::Error> {
    let conn = match reader {
        Some(conn) => conn,
        None => reader.insert(options.connect().await?),
    };
    match sqlx::query_as::<_, (i64, i64)>(READ_SQL)
        .fetch_one(conn)
        .await
    {
        Ok((value, server)) => Ok(Generation { value, server }),
        Err(e) => {
            // Dropped, not closed: a polite close may hang on a dead socket.
            *reader = None;
            Err(e)
        }
    }
}

async fn run(shared: Arc<Shared>, options: PgConnectOptions) {
    let mut reader: Option<PgConnection> = None;
    loop {
        shared.wake.notified().await;
        loop {
            let round = {
                let mut d = shared.demand.lock().unwrap_or_else(|p| p.into_inner());
                if !d.wanted {
                    break;
                }
                d.wanted = false;
                d.started += 1;
                d.started
            };
            let read = read_once(&mut reader, &options);
            let found = match tokio::time::timeout(WAIT_LIMIT, read).await {
                Ok(Ok(generation)) => Some(generation),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "generation read failed; requests go uncached");
                    None
                }
                Err(_) => {
                    reader = None;
                    tracing::warn!("generation read timed out; requests go uncached");
                    None
                }
            };
            shared.rounds.send_replace((round, found));
        }
    }
}
