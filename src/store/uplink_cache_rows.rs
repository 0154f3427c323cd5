//! The uplink cache: packuments as an uplink sent them, and the tarballs fetched
//! from it (bytes in the blob store). Reads and writes of cached contents take a
//! `ProxyGrant`; whether a name is local (the shield) feeds the access decision and
//! is read without one (through the read cache, under the generation rule).

use super::package_rows::{blob_lock_id, blob_lock_sql};
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::domain::access::ProxyGrant;

/// A cached upstream packument.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CachedPackumentRow {
    pub uplink: String,
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub fetched_at: i64,
}

/// A verified tarball fetched from an uplink.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CachedTarballRow {
    pub integrity: String,
    pub blob_key: String,
    pub size: i64,
}

/// Counts for `tessera uplink status`.
#[derive(Debug, Clone, Default)]
pub struct UplinkCacheCount {
    pub uplink: String,
    pub packuments: i64,
    pub tarballs: i64,
    pub tarball_bytes: i64,
}

impl Store {
    /// Whether `name` is local: a package row, any version ever published (the
    /// history survives unpublish and deletion), or a tombstone; or its scope is
    /// owned here (an organization, a user's own scope, or a scope someone
    /// published in). Such a name is never served from an uplink. Answered from the
    /// read cache under its tag, like the package row (`read_cache`): every write that
    /// can make a name local moves the tag, on this instance at once and on the others
    /// through the authority generation.
    pub async fn name_is_local(&self, name: &str, scope: Option<&str>) -> StoreResult<bool> {
        const SQL: &str = "SELECT CAST(CASE WHEN \
              EXISTS (SELECT 1 FROM packages WHERE name = $1) \
              OR EXISTS (SELECT 1 FROM version_history WHERE name = $1) \
              OR EXISTS (SELECT 1 FROM package_tombstones WHERE name = $1) \
              OR EXISTS (SELECT 1 FROM scopes WHERE name = $2) \
              OR EXISTS (SELECT 1 FROM orgs WHERE name = $2) \
              OR EXISTS (SELECT 1 FROM users WHERE name = $2) \
            THEN 1 ELSE 0 END AS BIGINT)";
        let read = async {
            let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
                .bind(name)
                .bind(scope.unwrap_or(""))
                .fetch_one(p)
                .await)?;
            Ok(Some(n != 0))
        };
        let local = self
            .cached_read(
                |c, t| c.name_is_local(t, name),
                read,
                |c, t, local| c.put_name_is_local(t, name, *local),
            )
            .await?;
        Ok(local.unwrap_or(true))
    }

    pub async fn cached_packument(
        &self,
        grant: &ProxyGrant,
    ) -> StoreResult<Option<CachedPackumentRow>> {
        const SQL: &str = "SELECT uplink, body, etag, last_modified, fetched_at \
                           FROM uplink_packuments WHERE name = $1";
        Ok(on_pool!(self, |p| {
            sqlx::query_as::<_, CachedPackumentRow>(SQL)
                .bind(grant.name().as_str())
                .fetch_optional(p)
                .await
        })?)
    }

    /// Stores a fetched packument unless a newer fetch is stored already (writes may
    /// land out of order).
    pub async fn put_cached_packument(
        &self,
        grant: &ProxyGrant,
        row: &CachedPackumentRow,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO uplink_packuments \
            (name, uplink, body, etag, last_modified, fetched_at) VALUES ($1, $2, $3, $4, $5, $6) \
            ON CONFLICT (name) DO UPDATE SET uplink = excluded.uplink, body = excluded.body, \
            etag = excluded.etag, last_modified = excluded.last_modified, \
            fetched_at = excluded.fetched_at \
            WHERE excluded.fetched_at >= uplink_packuments.fetched_at";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(grant.name().as_str())
            .bind(&row.uplink)
            .bind(&row.body)
            .bind(&row.etag)
            .bind(&row.last_modified)
            .bind(row.fetched_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Marks the cached document fresh again (the uplink answered 304).
    pub async fn touch_cached_packument(&self, grant: &ProxyGrant, now: i64) -> StoreResult<()> {
        const SQL: &str = "UPDATE uplink_packuments SET fetched_at = $2 WHERE name = $1";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(grant.name().as_str())
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Forgets the cached document (the uplink no longer has the package).
    pub async fn drop_cached_packument(&self, grant: &ProxyGrant) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM uplink_packuments WHERE name = $1";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(grant.name().as_str())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn cached_tarball(
        &self,
        grant: &ProxyGrant,
        version: &str,
    ) -> StoreResult<Option<CachedTarballRow>> {
        const SQL: &str = "SELECT integrity, blob_key, size FROM uplink_tarballs \
                           WHERE name = $1 AND version = $2";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, CachedTarballRow>(
            SQL
        )
        .bind(grant.name().as_str())
        .bind(version)
        .fetch_optional(p)
        .await)?)
    }

    /// Records a verified tarball. Like a publish, the row commits only after
    /// `blob_present` made sure the bytes are stored, under the blob's lock, so gc
    /// never removes a blob a committed row refers to.
    pub async fn record_cached_tarball<F, Fut>(
        &self,
        grant: &ProxyGrant,
        version: &str,
        uplink: &str,
        row: &CachedTarballRow,
        now: i64,
        blob_present: F,
    ) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        const SQL: &str = "INSERT INTO uplink_tarballs \
            (name, version, uplink, integrity, blob_key, size, fetched_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7) \
            ON CONFLICT (name, version) DO UPDATE SET uplink = excluded.uplink, \
            integrity = excluded.integrity, blob_key = excluded.blob_key, \
            size = excluded.size, fetched_at = excluded.fetched_at";
        let dialect = self.dialect();
        on_pool!(self, |p| {
            let mut tx = p.begin_write().await?;
            sqlx::query(SQL)
                .bind(grant.name().as_str())
                .bind(version)
                .bind(uplink)
                .bind(&row.integrity)
                .bind(&row.blob_key)
                .bind(row.size)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if let Some(lock) = blob_lock_sql(dialect) {
                sqlx::query(lock)
                    .bind(blob_lock_id(&row.blob_key))
                    .execute(&mut *tx)
                    .await?;
            }
            blob_present().await?;
            tx.commit().await?;
            Ok::<_, anyhow::Error>(())
        })
    }

    /// Cached packuments and tarballs per uplink.
    pub async fn uplink_cache_counts(&self) -> StoreResult<Vec<UplinkCacheCount>> {
        const DOCS: &str = "SELECT uplink, COUNT(*) FROM uplink_packuments GROUP BY uplink";
        const TARBALLS: &str = "SELECT uplink, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) \
                                FROM uplink_tarballs GROUP BY uplink";
        let docs: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(DOCS).fetch_all(p).await)?;
        let tarballs: Vec<(String, i64, i64)> =
            on_pool!(self, |p| sqlx::query_as(TARBALLS).fetch_all(p).await)?;
        let mut out: Vec<UplinkCacheCount> = Vec::new();
        let mut entry = |name: &str| -> usize {
            match out.iter().position(|c| c.uplink == name) {
                Some(i) => i,
                None => {
                    out.push(UplinkCacheCount {
                        uplink: name.to_owned(),
                        ..Default::default()
                    });
                    out.len() - 1
                }
            }
        };
        let mut idx = Vec::new();
        for (u, n) in docs {
            let i = entry(&u);
            idx.push((i, n, 0, 0, true));
        }
        for (u, n, bytes) in tarballs {
            let i = entry(&u);
            idx.push((i, 0, n, bytes, false));
        }
        for (i, docs, tarballs, bytes, is_doc) in idx {
            if is_doc {
                out[i].packuments = docs;
            } else {
                out[i].tarballs = tarballs;
                out[i].tarball_bytes = bytes;
            }
        }
        Ok(out)
    }
}
