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
mod orgs;
mod packages;
mod read_cache;
mod security;
mod sessions;
mod tokens;
mod transfer;
mod trust;
mod users;

pub use backup::{SnapshotFacts, TableCount};
pub use columns::Stored;
pub use orgs::*;
pub use packages::*;
pub use security::*;
pub use sessions::*;
pub use tokens::*;
pub use transfer::CopyReport;
pub use trust::*;
pub use users::*;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Only for the embedded SQLite store (see `read_cache`).
    reads: Option<Arc<ReadCache>>,
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

/// Starts a write transaction. DIALECT: SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`) so read-then-write transactions never fail to upgrade; on
/// PostgreSQL row locks (`UPDATE … RETURNING` first) serialise writers instead.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

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
                .after_release(|conn, _| Box::pin(release_outside_transaction(conn)))
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            Store {
                pool: Pool::Sqlite(pool),
                reads: Some(Arc::default()),
                bypass_cache: false,
                file: sqlite_file(url),
                last_full: Arc::default(),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Store {
                pool: Pool::Postgres(pool),
                reads: None,
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
            crate::auth::token::random_base62(8)
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
        let ticket = cache.and_then(ReadCache::ticket);
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

    /// Closes the pool, waiting for in-flight statements (clean shutdown).
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await);
    }
}
