//! The only module that contains SQL. One `Store` serves SQLite and PostgreSQL from
//! one set of SQL text (`$N` placeholders, portable types: i64, String, Vec<u8>; times
//! are unix milliseconds, small lists are JSON text). Where the dialects differ, an
//! explicit arm says `Sqlite`/`Postgres` (grep `DIALECT:`).
//!
//! The store never decides policy: it reads and writes rows.

mod columns;
mod packages;
mod read_cache;
mod security;
mod sessions;
mod tokens;
mod transfer;
mod users;

pub use columns::Stored;
pub use packages::*;
pub use security::*;
pub use sessions::*;
pub use tokens::*;
pub use transfer::CopyReport;
pub use users::*;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use read_cache::{ReadCache, ReadTicket, WriteGuard};

/// Errors from the store, already classified for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    Conflict,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
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
}

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
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            Store {
                pool: Pool::Sqlite(pool),
                reads: Some(Arc::default()),
                bypass_cache: false,
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
        result
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
