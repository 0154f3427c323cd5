//! The registry's signing keys (`signing_keys`): public halves, sealed secrets, the
//! one active key and the retired ones with their expiry. Server keys, not account
//! data: no grant guards them, and nothing here reaches a client but public keys.

use super::{BeginWrite, Store, StoreError, StoreResult, execute_write, on_pool};

/// A stored signing key; `sealed_secret` is AES-GCM under a key derived from the
/// server key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub id: i64,
    pub keyid: String,
    pub public_key: String,
    pub sealed_secret: String,
    pub active: Option<i64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewSigningKey<'a> {
    pub keyid: &'a str,
    pub public_key: &'a str,
    pub sealed_secret: &'a str,
    pub now: i64,
}

impl Store {
    /// Every key, newest first (retired keys stay: versions signed with them still
    /// verify against them).
    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        const SQL: &str = "SELECT id, keyid, public_key, sealed_secret, active, created_at, expires_at \
                           FROM signing_keys ORDER BY id DESC";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SigningKeyRow>(SQL)
            .fetch_all(p)
            .await)?)
    }

    /// The key that signs new versions, if any.
    pub async fn active_signing_key(&self) -> StoreResult<Option<SigningKeyRow>> {
        const SQL: &str = "SELECT id, keyid, public_key, sealed_secret, active, created_at, expires_at \
                           FROM signing_keys WHERE active = 1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SigningKeyRow>(SQL)
            .fetch_optional(p)
            .await)?)
    }

    /// Stores the first key as the active one. `Conflict` when another instance
    /// stored one first (`active` is unique).
    pub async fn insert_first_signing_key(&self, k: &NewSigningKey<'_>) -> StoreResult<()> {
        self.writing(async {
            const SQL: &str = "INSERT INTO signing_keys (keyid, public_key, sealed_secret, active, created_at) \
                               VALUES ($1, $2, $3, 1, $4)";
            execute_write!(
                self,
                sqlx::query(SQL)
                    .bind(k.keyid)
                    .bind(k.public_key)
                    .bind(k.sealed_secret)
                    .bind(k.now)
            )?;
            Ok(())
        })
        .await
    }

    /// Retires the active key (it expires now, and stays listed) and makes `k` the
    /// active one, in one transaction.
    pub async fn rotate_signing_key(&self, k: &NewSigningKey<'_>) -> StoreResult<Option<String>> {
        self.writing(async {
            const RETIRE: &str = "UPDATE signing_keys SET active = NULL, expires_at = $1 \
                                  WHERE active = 1 RETURNING keyid";
            const INSERT: &str = "INSERT INTO signing_keys (keyid, public_key, sealed_secret, active, created_at) \
                                  VALUES ($1, $2, $3, 1, $4)";
            let retired = on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let retired: Option<String> = sqlx::query_scalar(RETIRE)
                    .bind(k.now)
                    .fetch_optional(&mut *tx)
                    .await?;
                sqlx::query(INSERT)
                    .bind(k.keyid)
                    .bind(k.public_key)
                    .bind(k.sealed_secret)
                    .bind(k.now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(retired)
            })?;
            Ok(retired)
        })
        .await
    }
}
