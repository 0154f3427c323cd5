//! The only module that contains SQL. One `Store` serves SQLite and PostgreSQL from
//! one set of SQL text (`$N` placeholders, portable types: i64, String, Vec<u8>; times
//! are unix milliseconds, small lists are JSON text). Where the dialects differ, an
//! explicit arm says `Sqlite`/`Postgres` (grep `DIALECT:`).
//!
//! The store never decides policy: it reads and writes rows.
//!
//! Every write is a transaction whose commit is checked: a single `execute` statement
//! is its own transaction and reports a failed commit as its error; a write that
//! returns rows (`INSERT … RETURNING`) runs in an explicit transaction and reads its
//! row before the checked `COMMIT`. (Autocommit with `fetch_one` is not enough on
//! SQLite: the row comes back at the first step, the commit happens when the
//! statement is reset, and an error there — a full disk — is never seen.)

mod backup;
mod columns;
pub mod generation;
mod org_rows;
mod package_rows;
mod read_cache;
mod security_rows;
mod session_rows;
mod signing_key_rows;
mod token_rows;
mod transfer;
mod trust_rows;
mod uplink_cache_rows;
mod user_rows;

pub use backup::{SnapshotFacts, TableCount};
pub use columns::Stored;
pub use org_rows::*;
pub use package_rows::*;
pub use security_rows::*;
pub use session_rows::*;
pub use signing_key_rows::*;
pub use token_rows::*;
pub use transfer::CopyReport;
pub use trust_rows::*;
pub use uplink_cache_rows::*;
pub use user_rows::*;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use generation::GenerationFeed;
use read_cache::{ReadCache, ReadTicket, WriteGuard};

/// Errors from the store, already classified for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    Conflict,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's disk is full: nothing was written.
    #[error("database storage is full: {0}")]
    Full(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// SQLite's `SQLITE_FULL` (13, which has no extended variants) and PostgreSQL's
/// `disk_full` (53100).
fn is_disk_full_code(code: &str) -> bool {
    code == "13" || code == "53100"
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_disk_full_code(&c)) => {
                StoreError::Full(e.to_string())
            }
            sqlx::Error::Io(io) if crate::disk::is_full(io) => StoreError::Full(e.to_string()),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57") || c.starts_with("08")) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.into()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The file behind a `sqlite://` URL (`None` for PostgreSQL and in-memory SQLite).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

tokio::task_local! {
    /// The read-cache ticket of the request being served (see `one_request`).
    static REQUEST: Arc<tokio::sync::OnceCell<Option<ReadTicket>>>;
}

/// Runs one request: its cached reads share one ticket, taken at the first of them
/// (after the request arrived, which is all the generation rule asks).
pub async fn one_request<F: std::future::Future>(request: F) -> F::Output {
    REQUEST.scope(Arc::default(), request).await
}

/// Which database backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The read cache (see `read_cache`), shared by the requests of this instance.
    reads: Option<Arc<ReadCache>>,
    /// PostgreSQL: where the tickets of the read cache come from.
    feed: Option<Arc<GenerationFeed>>,
    /// Reads skip the cache (writes still advance its generation).
    bypass_cache: bool,
    /// The database file (embedded SQLite only), for the free-space probe.
    file: Option<PathBuf>,
    /// When a write last failed because the disk was full (cleared by a write that
    /// succeeds), shared by clones.
    last_full: Arc<Mutex<Option<Instant>>>,
}

/// How long a "disk full" write failure keeps readiness reporting a full store when
/// no write has succeeded since (after that only the probe decides, so an instance
/// taken out of rotation by its readiness check comes back once space is freed).
const FULL_REPORT_WINDOW: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.dialect())
    }
}

/// Runs `$body` with `$p` bound to whichever pool is configured. The body is
/// type-checked once per backend.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A write transaction. Its only way to commit first advances the authority
/// generation in the same transaction (so every instance's next request sees that
/// something changed), then commits; dropped, it rolls back. The store's writes get
/// their transaction only from `BeginWrite::begin_write`.
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
}

/// Advances the generation; the row lock also serialises writers, so generations
/// follow commit order.
const ADVANCE_GENERATION: &str = "UPDATE authority SET generation = generation + 1 WHERE id = 1";

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// One `commit` per backend (the bodies are the same text, checked per dialect).
macro_rules! write_tx_commit {
    ($db:ty) => {
        impl WriteTx<$db> {
            pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
                let advanced = sqlx::query(ADVANCE_GENERATION)
                    .execute(&mut *self.tx)
                    .await?
                    .rows_affected();
                if advanced != 1 {
                    // Without the row no instance could notice this write: refuse it.
                    return Err(sqlx::Error::Protocol(
                        "the authority row is missing; run `tessera migrate`".into(),
                    ));
                }
                self.tx.commit().await
            }

            /// Gives up: nothing of this transaction is kept, the generation included.
            pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
                self.tx.rollback().await
            }
        }
    };
}
write_tx_commit!(sqlx::Sqlite);
write_tx_commit!(sqlx::Postgres);

/// Starts a write transaction. DIALECT: SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`) so read-then-write transactions never fail to upgrade; on
/// PostgreSQL row locks (`UPDATE … RETURNING` first) serialise writers instead.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<WriteTx<Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        Ok(WriteTx {
            tx: self.begin_with("BEGIN IMMEDIATE").await?,
        })
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        Ok(WriteTx {
            tx: self.begin().await?,
        })
    }
}

/// One write statement in its own `WriteTx`; gives the rows it affected.
macro_rules! execute_write {
    ($store:expr, $query:expr) => {
        $crate::store::on_pool!($store, |p| async {
            let mut tx = $crate::store::BeginWrite::begin_write(p).await?;
            let n = $query.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await)
    };
}
pub(crate) use execute_write;

/// Whether a released SQLite connection may go back to the pool. When a `COMMIT`
/// fails (a full disk), SQLite rolls the transaction back itself, the `ROLLBACK`
/// sqlx then sends fails, and sqlx goes on believing the connection is inside a
/// transaction: every later `BEGIN` on it would fail. Such a connection is closed.
async fn release_outside_transaction(
    conn: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    // A dropped transaction's ROLLBACK may still be queued: let it run, then look again.
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a pooled connection may sit idle before it is checked on its way out.
const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(5);

/// Pings a connection before it is handed out only when it sat idle for a while (a
/// database restart or a dropped connection shows there first). sqlx's own check
/// pings on every acquire: on PostgreSQL one more round trip for every query, which
/// was a third of a publish's round trips and half of each generation read.
async fn check_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for >= IDLE_BEFORE_CHECK {
        conn.ping().await?;
    }
    Ok(true)
}

impl Store {
    /// Connects to `sqlite://PATH` or `postgres://…` and runs migrations. PostgreSQL
    /// migrations hold an advisory lock, so instances may start together.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .min_connections(1)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(check_if_idle(conn, meta)))
                .after_release(|conn, _| Box::pin(release_outside_transaction(conn)))
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            Store {
                pool: Pool::Sqlite(pool),
                reads: Some(Arc::default()),
                feed: None,
                bypass_cache: false,
                file: sqlite_file(url),
                last_full: Arc::default(),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Every statement is a prepared one, looked up by key or index: a generic plan
            // made once per connection serves it. PostgreSQL would otherwise plan the
            // first executions anew at each bind (half a millisecond for the publish
            // rights check) and may keep doing so for statements with subqueries.
            let options = PgConnectOptions::from_str(url)?
                .options([("plan_cache_mode", "force_generic_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(check_if_idle(conn, meta)))
                .connect_with(options.clone())
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Store {
                feed: Some(Arc::new(GenerationFeed::start(options))),
                pool: Pool::Postgres(pool),
                reads: Some(Arc::default()),
                bypass_cache: false,
                file: None,
                last_full: Arc::default(),
            }
        } else {
            anyhow::bail!("database URL must start with sqlite:// or postgres:// (got {url:?})");
        };
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one write. Every method that changes users, tokens or packages goes
    /// through here, so the read cache never outlives a write (see `read_cache`).
    pub(crate) async fn writing<T>(
        &self,
        write: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let guard = WriteGuard::new(self.reads.as_deref());
        let result = write.await;
        guard.finish();
        let mut last_full = self.last_full.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(_) => *last_full = None,
            Err(StoreError::Full(_)) => *last_full = Some(Instant::now()),
            Err(_) => {}
        }
        result
    }

    /// Whether the database cannot take writes for lack of space: a write failed
    /// with "disk full" recently and none succeeded since, or (embedded SQLite) a
    /// small probe file cannot be written beside the database file.
    pub async fn storage_full(&self) -> bool {
        let recent = self
            .last_full
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < FULL_REPORT_WINDOW);
        if recent {
            return true;
        }
        let Some(dir) = self
            .file
            .as_ref()
            .and_then(|f| f.parent())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    d
                }
            })
            .map(std::path::Path::to_path_buf)
        else {
            return false;
        };
        let name = format!(
            ".tessera-ready-{}.probe",
            crate::crypto::token_format::random_base62(8)
        );
        tokio::task::spawn_blocking(move || crate::disk::probe_full(&dir, &name))
            .await
            .unwrap_or(false)
    }

    /// One read through the cache: `hit` looks it up, else `read` goes to the database
    /// and a found answer is offered to `keep` under the ticket taken before the read.
    /// Absent answers are never kept (a token or package created a moment later must
    /// be found).
    pub(crate) async fn cached_read<T>(
        &self,
        hit: impl FnOnce(&ReadCache, ReadTicket) -> Option<T>,
        read: impl std::future::Future<Output = StoreResult<Option<T>>>,
        keep: impl FnOnce(&ReadCache, ReadTicket, &T),
    ) -> StoreResult<Option<T>> {
        let cache = self.read_cache();
        let ticket = match cache {
            Some(c) => self.request_ticket(c).await,
            None => None,
        };
        if let (Some(c), Some(t)) = (cache, ticket)
            && let Some(found) = hit(c, t)
        {
            return Ok(Some(found));
        }
        let found = read.await?;
        if let (Some(c), Some(t), Some(answer)) = (cache, ticket, &found) {
            keep(c, t, answer);
        }
        Ok(found)
    }

    /// The ticket of the current request (taken once, at its first cached read,
    /// inside `one_request`), or a fresh one outside a request. `None`: uncached.
    async fn request_ticket(&self, cache: &ReadCache) -> Option<ReadTicket> {
        match REQUEST.try_with(Arc::clone) {
            Ok(scope) => *scope.get_or_init(|| self.fresh_ticket(cache)).await,
            Err(_) => self.fresh_ticket(cache).await,
        }
    }

    /// SQLite: the local tag. PostgreSQL: a tag for a generation read that starts
    /// after this call (see `generation`).
    async fn fresh_ticket(&self, cache: &ReadCache) -> Option<ReadTicket> {
        match &self.feed {
            None => cache.ticket(),
            Some(feed) => feed.fresh().await.map(|g| cache.ticket_at(g)),
        }
    }

    /// The same database whose reads skip the read cache (for measuring what a
    /// cache miss costs); its writes still invalidate the shared cache.
    pub fn without_read_cache(mut self) -> Store {
        self.bypass_cache = true;
        self
    }

    /// The read cache, when reads may use one.
    pub(crate) fn read_cache(&self) -> Option<&ReadCache> {
        self.reads.as_deref().filter(|_| !self.bypass_cache)
    }

    /// Cheap reachability probe for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The authority generation as committed (tests and diagnostics).
    pub async fn authority_generation(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT generation FROM authority WHERE id = 1"
        )
        .fetch_one(p)
        .await)?)
    }

    /// Closes the pool, waiting for in-flight statements (clean shutdown).
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await);
    }
}

/// Every write of the store goes through a `WriteTx` (which advances the authority
/// generation before it commits) and `Store::writing` (which moves the local cache
/// tag), except the bookkeeping writes listed here: their tables are read from the
/// database on every use and feed no cached answer.
#[cfg(test)]
mod every_write_advances_the_generation {
    /// Writes that need not tell other instances: (file, method, why).
    const BOOKKEEPING: &[(&str, &str, &str)] = &[
        (
            "security_rows.rs",
            "add_security_event",
            "the security log is append-only and read uncached",
        ),
        (
            "security_rows.rs",
            "record_auth_failure",
            "failure counters are read uncached",
        ),
        (
            "security_rows.rs",
            "clear_auth_failures",
            "failure counters are read uncached",
        ),
        (
            "security_rows.rs",
            "delete_in_batches",
            "pruning of counters, log rows and expired logins",
        ),
        ("security_rows.rs", "prune_security_events", "pruning"),
        ("security_rows.rs", "prune_auth_failures", "pruning"),
        (
            "session_rows.rs",
            "insert_session",
            "sessions are read uncached on every request",
        ),
        (
            "session_rows.rs",
            "touch_session",
            "sessions are read uncached on every request",
        ),
        (
            "session_rows.rs",
            "complete_session_otp",
            "sessions are read uncached on every request",
        ),
        (
            "session_rows.rs",
            "delete_session",
            "sessions are read uncached on every request",
        ),
        (
            "session_rows.rs",
            "delete_other_sessions",
            "sessions are read uncached on every request",
        ),
        (
            "session_rows.rs",
            "insert_web_login",
            "browser logins are read uncached",
        ),
        (
            "session_rows.rs",
            "approve_web_login",
            "browser logins are read uncached",
        ),
        (
            "session_rows.rs",
            "consume_web_login",
            "browser logins are read uncached",
        ),
        ("session_rows.rs", "delete_expired_web_logins", "pruning"),
        ("session_rows.rs", "prune_sessions", "pruning"),
        (
            "token_rows.rs",
            "record_token_uses",
            "last-used time and address decide nothing",
        ),
        (
            "trust_rows.rs",
            "claim_oidc_token_id",
            "exchanged id-token ids are checked by an insert, never cached",
        ),
        ("trust_rows.rs", "prune_oidc_token_ids", "pruning"),
        (
            "uplink_cache_rows.rs",
            "put_cached_packument",
            "an upstream copy decides nothing: the shield reads local tables only",
        ),
        (
            "uplink_cache_rows.rs",
            "touch_cached_packument",
            "an upstream copy decides nothing: the shield reads local tables only",
        ),
        (
            "uplink_cache_rows.rs",
            "record_cached_tarball",
            "an upstream copy decides nothing: the shield reads local tables only",
        ),
        (
            "uplink_cache_rows.rs",
            "drop_cached_packument",
            "an upstream copy decides nothing: the shield reads local tables only",
        ),
    ];

    /// Sources of the store, split into (file, method name, body).
    fn methods() -> Vec<(&'static str, String, String)> {
        let files: &[(&str, &str)] = &[
            ("org_rows.rs", include_str!("org_rows.rs")),
            ("package_rows.rs", include_str!("package_rows.rs")),
            ("security_rows.rs", include_str!("security_rows.rs")),
            ("session_rows.rs", include_str!("session_rows.rs")),
            ("signing_key_rows.rs", include_str!("signing_key_rows.rs")),
            ("token_rows.rs", include_str!("token_rows.rs")),
            ("trust_rows.rs", include_str!("trust_rows.rs")),
            ("uplink_cache_rows.rs", include_str!("uplink_cache_rows.rs")),
            ("user_rows.rs", include_str!("user_rows.rs")),
        ];
        let mut out = Vec::new();
        for (file, text) in files {
            let text = text.split("#[cfg(test)]").next().unwrap_or(text);
            let mut starts: Vec<usize> = text.match_indices(" async fn ").map(|(i, _)| i).collect();
            starts.push(text.len());
            for w in starts.windows(2) {
                let body = &text[w[0]..w[1]];
                let name = body[" async fn ".len()..]
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                out.push((*file, name, body.to_owned()));
            }
        }
        out
    }

    fn writes(body: &str) -> bool {
        ["\"INSERT ", "\"UPDATE ", "\"DELETE ", "\"WITH "]
            .iter()
            .any(|k| body.contains(k))
            || body.contains("write_rows")
    }

    #[test]
    fn writes_use_write_transactions_and_the_write_guard() {
        let methods = methods();
        assert!(methods.len() > 60, "found the store's methods");
        let mut checked = 0;
        for (file, name, body) in &methods {
            if !writes(body) {
                continue;
            }
            if BOOKKEEPING.iter().any(|(f, n, _)| f == file && n == name) {
                continue;
            }
            checked += 1;
            assert!(
                body.contains("begin_write") || body.contains("execute_write!"),
                "{file}: {name} writes outside a WriteTx (use `begin_write` or `execute_write!`)"
            );
            assert!(
                !body.contains(".execute(p)") && !body.contains(".begin()"),
                "{file}: {name} writes on the pool beside its WriteTx"
            );
            assert!(
                body.contains("self.writing(") || name == "delete_blob_if_unreferenced",
                "{file}: {name} does not run inside `Store::writing`"
            );
        }
        assert!(checked > 30, "found the writes ({checked})");
        for (file, name, _) in BOOKKEEPING {
            assert!(
                methods.iter().any(|(f, n, b)| f == file
                    && n == name
                    && (writes(b) || b.contains("delete_in_batches"))),
                "{file}: {name} is listed as bookkeeping but is not a write"
            );
        }
    }
}
