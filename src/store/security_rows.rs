//! The security log and the failed-credential counters (kept in the database so the
//! throttle holds across instances).

use super::{Store, StoreResult, Stored, on_pool};
use crate::domain::access::{AccountGrant, UnknownValue, act};

/// What a security-log entry is about. Stored by its name (`as_str`), which must never
/// change for a kind already written: existing logs are read with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    TokenCreated,
    TokenRevoked,
    TokenRotated,
    TokenExposed,
    TokenNewAddress,
    Login,
    Logout,
    WebSignIn,
    PasswordFailures,
    OtpFailures,
    LeakReports,
    EmailChanged,
    PasswordChanged,
    RecoveryCodeUsed,
    TfaEnabled,
    TfaDisabled,
    TfaModeChanged,
    TrustCreated,
    TrustRevoked,
    TrustPolicy,
    TrustedPublishing,
    TrustedPublish,
    StageApproved,
    StageRejected,
}

impl SecurityEventKind {
    pub const ALL: [SecurityEventKind; 24] = [
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::TokenRotated,
        Self::TokenExposed,
        Self::TokenNewAddress,
        Self::Login,
        Self::Logout,
        Self::WebSignIn,
        Self::PasswordFailures,
        Self::OtpFailures,
        Self::LeakReports,
        Self::EmailChanged,
        Self::PasswordChanged,
        Self::RecoveryCodeUsed,
        Self::TfaEnabled,
        Self::TfaDisabled,
        Self::TfaModeChanged,
        Self::TrustCreated,
        Self::TrustRevoked,
        Self::TrustPolicy,
        Self::TrustedPublishing,
        Self::TrustedPublish,
        Self::StageApproved,
        Self::StageRejected,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenCreated => "token-created",
            Self::TokenRevoked => "token-revoked",
            Self::TokenRotated => "token-rotated",
            Self::TokenExposed => "token-exposed",
            Self::TokenNewAddress => "token-new-address",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::WebSignIn => "web-sign-in",
            Self::PasswordFailures => "password-failures",
            Self::OtpFailures => "otp-failures",
            Self::LeakReports => "leak-reports",
            Self::EmailChanged => "email-changed",
            Self::PasswordChanged => "password-changed",
            Self::RecoveryCodeUsed => "recovery-code-used",
            Self::TfaEnabled => "2fa-enabled",
            Self::TfaDisabled => "2fa-disabled",
            Self::TfaModeChanged => "2fa-mode-changed",
            Self::TrustCreated => "trust-created",
            Self::TrustRevoked => "trust-revoked",
            Self::TrustPolicy => "trust-policy",
            Self::TrustedPublishing => "trusted-publishing",
            Self::TrustedPublish => "trusted-publish",
            Self::StageApproved => "stage-approved",
            Self::StageRejected => "stage-rejected",
        }
    }
}

impl std::str::FromStr for SecurityEventKind {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownValue(text.chars().take(64).collect()))
    }
}

/// One security-log entry. A kind this build does not know (written by a newer one)
/// stays readable as text; the log shows it as a generic account event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecurityEventRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: Stored<SecurityEventKind>,
    pub detail: String,
    pub ip: Option<String>,
    pub created_at: i64,
}

impl Store {
    pub async fn add_security_event(
        &self,
        user_id: i64,
        kind: SecurityEventKind,
        detail: &str,
        ip: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |p| sqlx::query(Self::INSERT_SECURITY_EVENT)
            .bind(user_id)
            .bind(kind.as_str())
            .bind(detail)
            .bind(ip)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Appends one entry; also run inside the transaction of a decision it records
    /// (staged approval and rejection).
    pub(super) const INSERT_SECURITY_EVENT: &str = "INSERT INTO security_events (user_id, kind, detail, ip, created_at) \
        VALUES ($1, $2, $3, $4, $5)";

    pub async fn security_events(
        &self,
        grant: &AccountGrant<act::ReadSecurityLog>,
        limit: i64,
    ) -> StoreResult<Vec<SecurityEventRow>> {
        const SQL: &str = "SELECT id, kind, detail, ip, created_at FROM security_events WHERE user_id = $1 \
                           ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SecurityEventRow>(
            SQL
        )
        .bind(grant.user_id())
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }
}

/// Which secret a failed check was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Password,
    OneTimePassword,
    /// Not a secret: reports to the leak endpoint, counted per address like failures.
    LeakReport,
}

impl Factor {
    fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::OneTimePassword => "otp",
            Factor::LeakReport => "leak-report",
        }
    }
}

/// Failures within a window: how many, and the oldest (to compute `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCount {
    pub count: i64,
    pub oldest: Option<i64>,
}

impl Store {
    /// Records a failed password or one-time-password check (`user_id` is `None` when
    /// the account does not exist).
    pub async fn record_auth_failure(
        &self,
        factor: Factor,
        user_id: Option<i64>,
        ip: &str,
        now: i64,
    ) -> StoreResult<()> {
        const SQL: &str =
            "INSERT INTO auth_failures (factor, user_id, ip, created_at) VALUES ($1, $2, $3, $4)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(factor.as_str())
            .bind(user_id)
            .bind(ip)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Failures of `factor` since `since`: for the account (when known) and for the
    /// client address.
    pub async fn auth_failures_since(
        &self,
        factor: Factor,
        user_id: Option<i64>,
        ip: &str,
        since: i64,
    ) -> StoreResult<(FailureCount, FailureCount)> {
        const BY_USER: &str = "SELECT COUNT(*), MIN(created_at) FROM auth_failures \
                               WHERE factor = $1 AND user_id = $2 AND created_at >= $3";
        const BY_IP: &str = "SELECT COUNT(*), MIN(created_at) FROM auth_failures \
                             WHERE factor = $1 AND ip = $2 AND created_at >= $3";
        let by_user = match user_id {
            Some(id) => {
                let (count, oldest): (i64, Option<i64>) =
                    on_pool!(self, |p| sqlx::query_as(BY_USER)
                        .bind(factor.as_str())
                        .bind(id)
                        .bind(since)
                        .fetch_one(p)
                        .await)?;
                FailureCount { count, oldest }
            }
            None => FailureCount::default(),
        };
        let (count, oldest): (i64, Option<i64>) = on_pool!(self, |p| sqlx::query_as(BY_IP)
            .bind(factor.as_str())
            .bind(ip)
            .bind(since)
            .fetch_one(p)
            .await)?;
        Ok((by_user, FailureCount { count, oldest }))
    }

    /// Forgets an account's failures of `factor` from one address after a success
    /// there (failures from other addresses still count).
    pub async fn clear_auth_failures(
        &self,
        factor: Factor,
        user_id: i64,
        ip: &str,
    ) -> StoreResult<()> {
        const SQL: &str =
            "DELETE FROM auth_failures WHERE factor = $1 AND user_id = $2 AND ip = $3";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(factor.as_str())
            .bind(user_id)
            .bind(ip)
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

    /// Deletes password and one-time-password failure rows recorded before `before`;
    /// returns how many.
    pub async fn prune_auth_failures(&self, before: i64) -> StoreResult<u64> {
        const SQL: &str = "DELETE FROM auth_failures WHERE id IN \
                           (SELECT id FROM auth_failures WHERE created_at < $1 LIMIT $2)";
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
