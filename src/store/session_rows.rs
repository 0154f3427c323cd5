//! Website sessions and browser-login requests for the npm CLI. Both are keyed by the
//! keyed hash of their random id; the id itself lives only in the cookie or URL.

use super::{Store, StoreResult, on_pool};
use crate::domain::access::{AccountGrant, act};

/// A website session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf: String,
    pub pending_otp: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A browser login started by `npm login`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebLoginRow {
    pub user_id: Option<i64>,
    pub client_name: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_session(
        &self,
        id_hash: &[u8],
        user_id: i64,
        csrf: &str,
        pending_otp: bool,
        now: i64,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO sessions (id_hash, user_id, csrf, pending_otp, created_at, last_seen_at) \
                           VALUES ($1, $2, $3, $4, $5, $5)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(id_hash.to_vec())
            .bind(user_id)
            .bind(csrf)
            .bind(i64::from(pending_otp))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &[u8]) -> StoreResult<Option<SessionRow>> {
        const SQL: &str = "SELECT user_id, csrf, pending_otp, created_at, last_seen_at \
                           FROM sessions WHERE id_hash = $1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(SQL)
            .bind(id_hash.to_vec())
            .fetch_optional(p)
            .await)?)
    }

    pub async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()> {
        const SQL: &str = "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(id_hash.to_vec())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn complete_session_otp(&self, id_hash: &[u8]) -> StoreResult<()> {
        const SQL: &str = "UPDATE sessions SET pending_otp = 0 WHERE id_hash = $1";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(id_hash.to_vec())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM sessions WHERE id_hash = $1"
        )
        .bind(id_hash.to_vec())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends every session of a user except `keep` (after a password change).
    pub async fn delete_other_sessions(
        &self,
        grant: &AccountGrant<act::ChangeProfile>,
        keep: Option<&[u8]>,
    ) -> StoreResult<()> {
        let user_id = grant.user_id();
        const SQL: &str = "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(keep.map(<[u8]>::to_vec).unwrap_or_default())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn insert_web_login(
        &self,
        id_hash: &[u8],
        done_hash: &[u8],
        client_name: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO web_logins (id_hash, done_hash, client_name, created_at, expires_at) \
                           VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(id_hash.to_vec())
            .bind(done_hash.to_vec())
            .bind(client_name)
            .bind(now)
            .bind(expires_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn web_login_by_id(&self, id_hash: &[u8]) -> StoreResult<Option<WebLoginRow>> {
        const SQL: &str = "SELECT user_id, client_name, created_at, expires_at FROM web_logins WHERE id_hash = $1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, WebLoginRow>(SQL)
            .bind(id_hash.to_vec())
            .fetch_optional(p)
            .await)?)
    }

    pub async fn web_login_by_done(&self, done_hash: &[u8]) -> StoreResult<Option<WebLoginRow>> {
        const SQL: &str = "SELECT user_id, client_name, created_at, expires_at FROM web_logins WHERE done_hash = $1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, WebLoginRow>(SQL)
            .bind(done_hash.to_vec())
            .fetch_optional(p)
            .await)?)
    }

    /// Approves a pending browser login for `user_id`; false if unknown or already approved.
    pub async fn approve_web_login(
        &self,
        grant: &AccountGrant<act::ApproveWebLogin>,
        id_hash: &[u8],
    ) -> StoreResult<bool> {
        let user_id = grant.user_id();
        const SQL: &str =
            "UPDATE web_logins SET user_id = $2 WHERE id_hash = $1 AND user_id IS NULL";
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(id_hash.to_vec())
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Deletes an approved login by its done id; true exactly once (single use).
    pub async fn consume_web_login(&self, done_hash: &[u8]) -> StoreResult<bool> {
        const SQL: &str = "DELETE FROM web_logins WHERE done_hash = $1 AND user_id IS NOT NULL";
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(done_hash.to_vec())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Deletes browser logins that expired before `now`; returns how many.
    pub async fn delete_expired_web_logins(&self, now: i64) -> StoreResult<u64> {
        const SQL: &str = "DELETE FROM web_logins WHERE id_hash IN \
                           (SELECT id_hash FROM web_logins WHERE expires_at < $1 LIMIT $2)";
        self.delete_in_batches(SQL, now).await
    }

    /// Deletes sessions last seen before `idle_before` or created before
    /// `created_before`, and sessions still waiting for their one-time password that
    /// were created before `pending_before`; returns how many.
    pub async fn prune_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
        pending_before: i64,
    ) -> StoreResult<u64> {
        const SQL: &str = "DELETE FROM sessions WHERE id_hash IN \
                           (SELECT id_hash FROM sessions WHERE last_seen_at < $1 OR created_at < $2 \
                            OR (pending_otp = 1 AND created_at < $3) LIMIT $4)";
        let mut total = 0;
        loop {
            let deleted = on_pool!(self, |p| sqlx::query(SQL)
                .bind(idle_before)
                .bind(created_before)
                .bind(pending_before)
                .bind(super::security_rows::PRUNE_BATCH)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            total += deleted;
            if deleted < super::security_rows::PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
