//! Consistent copies of the database for `tessera backup`, and the facts a backup
//! manifest records (row counts, the blob keys versions refer to).
//!
//! SQLite is copied with `VACUUM INTO`: it reads the live database inside one read
//! transaction, so the copy is exactly the database as of one commit, while writers
//! go on (WAL readers do not block them). It needs no unsafe FFI (unlike the C
//! backup API, which sqlx does not wrap) and writes a compact, self-contained file
//! with no WAL to carry along. PostgreSQL is copied with `pg_dump`, outside Tessera.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;

use super::{Pool, Store, StoreError, StoreResult, on_pool};

/// Rows in one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// What one consistent view of a database holds.
#[derive(Debug, Clone)]
pub struct SnapshotFacts {
    /// Every blob key a version refers to, sorted, without duplicates.
    pub blob_keys: Vec<String>,
    /// Rows per table, in dependency order.
    pub counts: Vec<TableCount>,
}

impl Store {
    /// Writes a transactionally consistent copy of the live SQLite database to
    /// `dest` (which must not exist) and fsyncs it. PostgreSQL is refused.
    pub async fn snapshot_into(&self, dest: &Path) -> anyhow::Result<()> {
        let Pool::Sqlite(pool) = &self.pool else {
            anyhow::bail!("PostgreSQL databases are copied with pg_dump (see docs/backup.md)");
        };
        let target = dest
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the backup path is not valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await
            .map_err(StoreError::from)?;
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dest)?.sync_all()).await??;
        Ok(())
    }

    /// Row counts and referenced blob keys, read in one transaction so they agree.
    pub async fn facts(&self) -> StoreResult<SnapshotFacts> {
        const KEYS: &str = "SELECT DISTINCT blob_key FROM versions ORDER BY blob_key";
        let dialect = self.dialect();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            // DIALECT: a PostgreSQL transaction sees one snapshot only when asked to;
            // an SQLite read transaction always does.
            if dialect == super::Dialect::Postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await?;
            }
            let blob_keys: Vec<String> = sqlx::query_scalar(KEYS).fetch_all(&mut *tx).await?;
            let mut counts = Vec::new();
            for table in super::transfer::table_names() {
                let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table}"
                )))
                .fetch_one(&mut *tx)
                .await?;
                counts.push(TableCount {
                    table: table.to_owned(),
                    rows,
                });
            }
            tx.commit().await?;
            Ok(SnapshotFacts { blob_keys, counts })
        })
    }

    /// The versions (`name@version`) whose tarball is the blob `key`.
    pub async fn versions_using_blob(&self, key: &str) -> StoreResult<Vec<String>> {
        const SQL: &str = "SELECT p.name, v.version FROM versions v \
            JOIN packages p ON p.id = v.package_id WHERE v.blob_key = $1 ORDER BY p.name, v.version";
        let rows: Vec<(String, String)> =
            on_pool!(self, |p| sqlx::query_as(SQL).bind(key).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(name, version)| format!("{name}@{version}"))
            .collect())
    }

    /// Opens an SQLite database file read-only, without migrations (a snapshot).
    pub async fn open_snapshot(path: &Path) -> anyhow::Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            reads: None,
            feed: None,
            bypass_cache: true,
            file: None,
            last_full: Default::default(),
        })
    }
}
