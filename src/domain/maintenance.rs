//! Scheduled pruning of rows that only matter for a while: one-time-password and
//! sign-in failure counters once they are older than any throttling window,
//! security-log entries older than `security_log_retention_days`, expired website
//! sessions, expired browser logins and the replay records of expired OIDC id tokens. `tessera serve` runs it at start and every
//! hour; with several instances each one prunes, and the deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use super::Result;
use crate::app::App;

/// How often `run` prunes.
pub const INTERVAL: Duration = Duration::from_secs(60 * 60);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Failure rows are kept this long: at least a day, and never less than the windows
/// the throttles count them in.
pub const FAILURE_RETENTION_MS: i64 = DAY_MS;
const _: () = assert!(FAILURE_RETENTION_MS >= super::credentials::WINDOW_MS);

/// Rows deleted by one `prune`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub auth_failures: u64,
    pub security_events: u64,
    pub sessions: u64,
    pub web_logins: u64,
    /// Exchanged OIDC id tokens past their expiry (they can no longer be replayed).
    pub oidc_token_ids: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.auth_failures
            + self.security_events
            + self.sessions
            + self.web_logins
            + self.oidc_token_ids
    }
}

/// Deletes everything that is past its time at the app's clock.
pub async fn prune(app: &App) -> Result<Pruned> {
    use super::sessions::{ABSOLUTE_MS, IDLE_MS, PENDING_OTP_MS};
    let now = app.now();
    let retention_days = i64::from(app.config.security_log_retention_days);
    let security_events = if retention_days == 0 {
        0
    } else {
        app.store
            .prune_security_events(now - retention_days * DAY_MS)
            .await?
    };
    Ok(Pruned {
        auth_failures: app
            .store
            .prune_auth_failures(now - FAILURE_RETENTION_MS)
            .await?,
        security_events,
        sessions: app
            .store
            .prune_sessions(now - IDLE_MS, now - ABSOLUTE_MS, now - PENDING_OTP_MS)
            .await?,
        web_logins: app.store.delete_expired_web_logins(now).await?,
        oidc_token_ids: app.store.prune_oidc_token_ids(now).await?,
    })
}

/// Prunes now and then every `INTERVAL`, until the task is aborted.
pub async fn run(app: Arc<App>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match prune(&app).await {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(
                auth_failures = pruned.auth_failures,
                security_events = pruned.security_events,
                sessions = pruned.sessions,
                web_logins = pruned.web_logins,
                oidc_token_ids = pruned.oidc_token_ids,
                "pruned expired rows"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pruning expired rows failed; retrying in an hour")
            }
        }
    }
}
