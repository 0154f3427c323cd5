//! The security log and failed-OTP counters (shared in the database so throttling
//! holds across instances).

use super::{Store, StoreResult, on_pool};

/// One security-log entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecurityEventRow {
    pub id: i64,
    pub kind: String,
    pub detail: String,
    pub ip: Option<String>,
    pub created_at: i64,
}

impl Store {
    pub async fn add_security_event(
        &self,
        user_id: i64,
        kind: &str,
        detail: &str,
        ip: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO security_events (user_id, kind, detail, ip, created_at) VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(kind)
            .bind(detail)
            .bind(ip)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn security_events(
        &self,
        user_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<SecurityEventRow>> {
        const SQL: &str = "SELECT id, kind, detail, ip, created_at FROM security_events WHERE user_id = $1 \
                           ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SecurityEventRow>(
            SQL
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    pub async fn record_otp_failure(
        &self,
        user_id: Option<i64>,
        ip: &str,
        now: i64,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO otp_failures (user_id, ip, created_at) VALUES ($1, $2, $3)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(ip)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Failures since `since` for the account and for the address, and the oldest of
    /// each window's failures (to compute `retry-after`).
    pub async fn otp_failures_since(
        &self,
        user_id: Option<i64>,
        ip: &str,
        since: i64,
    ) -> StoreResult<(i64, Option<i64>, i64, Option<i64>)> {
        const BY_USER: &str = "SELECT COUNT(*), MIN(created_at) FROM otp_failures WHERE user_id = $1 AND created_at >= $2";
        const BY_IP: &str =
            "SELECT COUNT(*), MIN(created_at) FROM otp_failures WHERE ip = $1 AND created_at >= $2";
        let (user_count, user_oldest): (i64, Option<i64>) =
            on_pool!(self, |p| sqlx::query_as(BY_USER)
                .bind(user_id.unwrap_or(-1))
                .bind(since)
                .fetch_one(p)
                .await)?;
        let (ip_count, ip_oldest): (i64, Option<i64>) = on_pool!(self, |p| sqlx::query_as(BY_IP)
            .bind(ip)
            .bind(since)
            .fetch_one(p)
            .await)?;
        Ok((user_count, user_oldest, ip_count, ip_oldest))
    }

    /// Clears an account's failure count after a successful code from the same address
    /// (so the owner is not locked out by an attacker elsewhere for long).
    pub async fn clear_otp_failures(&self, user_id: i64, ip: &str) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM otp_failures WHERE user_id = $1 AND ip = $2";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(ip)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// Records a failure under a free-form key (sign-in throttling uses
    /// `signin-ip:<addr>` and `signin-user:<id>`; such rows have no `user_id`, so they
    /// never count towards the one-time-password limits).
    pub async fn record_keyed_failure(&self, key: &str, now: i64) -> StoreResult<()> {
        self.record_otp_failure(None, key, now).await
    }

    /// Failures recorded under `key` since `since`, and the oldest of them.
    pub async fn keyed_failures_since(
        &self,
        key: &str,
        since: i64,
    ) -> StoreResult<(i64, Option<i64>)> {
        const SQL: &str = "SELECT COUNT(*), MIN(created_at) FROM otp_failures WHERE user_id IS NULL AND ip = $1 AND created_at >= $2";
        Ok(on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(key)
            .bind(since)
            .fetch_one(p)
            .await)?)
    }

    /// Forgets the failures recorded under `key`.
    pub async fn clear_keyed_failures(&self, key: &str) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM otp_failures WHERE user_id IS NULL AND ip = $1";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(key)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// Rows deleted per statement when pruning, so a large backlog never holds the
/// (SQLite) write lock for long.
pub(crate) const PRUNE_BATCH: i64 = 5000;

impl Store {
    /// Deletes security-log entries created before `before`; returns how many.
    pub async fn prune_security_events(&self, before: i64) -> StoreResult<u64> {
        const SQL: &str = "DELETE FROM security_events WHERE id IN \
                           (SELECT id FROM security_events WHERE created_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, before).await
    }

    /// Deletes OTP and sign-in failure rows recorded before `before`; returns how many.
    pub async fn prune_otp_failures(&self, before: i64) -> StoreResult<u64> {
        const SQL: &str = "DELETE FROM otp_failures WHERE id IN \
                           (SELECT id FROM otp_failures WHERE created_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, before).await
    }

    /// Runs `sql` (binding `$1` = `cutoff`, `$2` = the batch size) until a batch
    /// deletes fewer rows than the batch size.
    pub(crate) async fn delete_in_batches(
        &self,
        sql: &'static str,
        cutoff: i64,
    ) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let deleted = on_pool!(self, |p| sqlx::query(sql)
                .bind(cutoff)
                .bind(PRUNE_BATCH)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
