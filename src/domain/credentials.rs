//! Every check of a password or a one-time password goes through this module, and
//! through its one throttle: failures are counted per factor, per account and per
//! client address, in the database (so the limit holds across instances). An account
//! locks after `ACCOUNT_LIMIT` failures in the window, for that factor only; an address
//! only after `ADDRESS_LIMIT`, several times more, so one noisy address does not lock
//! the other accounts used from it. A success clears that account's failures from that
//! address.
//!
//! Argon2 runs on the blocking pool behind a semaphore (`Hashing`), so a burst of
//! logins queues here instead of stalling downloads on the async workers.
//!
//! A successful check returns a proof (`PasswordOk`, `OtpOk`) that only this module
//! can make; the access gate asks for them where a login or a one-time password is
//! required.

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::{Error, Result, security_log};
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::crypto::server_key::keyed_hash;
use crate::crypto::{password, totp};
use crate::store::{Factor, FailureCount, SecurityEventKind, UserRow};

/// Failures of one factor allowed per account within the window.
pub const ACCOUNT_LIMIT: i64 = 10;
/// Failures of one factor allowed per client address within the window.
pub const ADDRESS_LIMIT: i64 = 50;
/// The throttling window.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// Proof that `user_id`'s password was checked just now.
#[derive(Debug)]
pub struct PasswordOk {
    user_id: i64,
}

impl PasswordOk {
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Proof that `user_id` gave a valid, unused one-time password (or recovery code).
#[derive(Debug)]
pub struct OtpOk {
    user_id: i64,
}

impl OtpOk {
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Bounded Argon2 work: at most `permits` hashes at once, off the async runtime.
#[derive(Debug)]
pub struct Hashing {
    permits: Semaphore,
}

impl Hashing {
    /// Half the cores (at least one): logins never take every core from downloads.
    pub fn for_this_machine() -> Hashing {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hashing {
            permits: Semaphore::new((cores / 2).max(1)),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(e.into()))
    }
}

/// The proof for an account whose password was set in this very request (`npm
/// adduser` signs in the account it creates).
pub(super) fn password_just_set(user: &UserRow) -> PasswordOk {
    PasswordOk { user_id: user.id }
}

/// The proof carried by a website session that passed its password step earlier and
/// now its one-time password.
pub(super) fn session_upgrade(user: &UserRow) -> PasswordOk {
    PasswordOk { user_id: user.id }
}

/// Hashes a new password (sign-up, password change) off the runtime.
pub async fn hash_new_password(app: &App, new: &SecretString) -> Result<String> {
    let new = new.clone();
    app.hashing
        .run(move || password::hash_password(new.expose_secret()))
        .await?
        .map_err(Error::Internal)
}

fn factor_words(factor: Factor) -> &'static str {
    match factor {
        Factor::Password => "wrong passwords",
        Factor::OneTimePassword => "wrong one-time passwords",
        Factor::LeakReport => "leak reports",
    }
}

/// Refuses the check outright when the account or the address is over its limit.
async fn throttle(app: &App, factor: Factor, user_id: Option<i64>, ip: ClientAddr) -> Result<()> {
    let now = app.now();
    let (by_user, by_ip) = app
        .store
        .auth_failures_since(factor, user_id, &ip.to_string(), now - WINDOW_MS)
        .await?;
    let (limited, whose) = if by_user.count >= ACCOUNT_LIMIT {
        (by_user, "for this account")
    } else if by_ip.count >= ADDRESS_LIMIT {
        (by_ip, "from your address")
    } else {
        return Ok(());
    };
    let FailureCount { oldest, .. } = limited;
    let wait_ms = oldest.map_or(WINDOW_MS, |t| t + WINDOW_MS - now).max(1000);
    let retry_after_secs = (wait_ms as u64).div_ceil(1000);
    Err(Error::TooManyAttempts {
        message: format!(
            "Too many {} {whose}; try again in {retry_after_secs} seconds.",
            factor_words(factor)
        ),
        retry_after_secs,
    })
}

async fn failed(app: &App, factor: Factor, user: Option<&UserRow>, ip: ClientAddr) -> Result<()> {
    let now = app.now();
    let ip_text = ip.to_string();
    app.store
        .record_auth_failure(factor, user.map(|u| u.id), &ip_text, now)
        .await?;
    app.metrics.auth_failure(match factor {
        Factor::Password => "bad_password",
        Factor::OneTimePassword => "bad_otp",
        Factor::LeakReport => "leak_report",
    });
    if let Some(user) = user {
        let (by_user, _) = app
            .store
            .auth_failures_since(factor, Some(user.id), &ip_text, now - WINDOW_MS)
            .await?;
        if by_user.count == ACCOUNT_LIMIT {
            security_log::record(
                app,
                user.id,
                match factor {
                    Factor::Password => SecurityEventKind::PasswordFailures,
                    Factor::OneTimePassword => SecurityEventKind::OtpFailures,
                    Factor::LeakReport => SecurityEventKind::LeakReports,
                },
                &format!(
                    "{ACCOUNT_LIMIT} {} within 15 minutes; further attempts are refused for a while",
                    factor_words(factor)
                ),
                Some(&ip_text),
            )
            .await;
        }
    }
    Ok(())
}

/// Counts one anonymous leak report from `ip` in the same throttle as failed
/// credentials (`ADDRESS_LIMIT` per window and address), refusing it when over.
pub async fn count_leak_report(app: &App, ip: ClientAddr) -> Result<()> {
    throttle(app, Factor::LeakReport, None, ip).await?;
    failed(app, Factor::LeakReport, None, ip).await
}

/// A hash verified in place of an unknown account's, so the time a check takes
/// does not tell whether an account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0f8Ajd8nLs3IxK0d/L0Zb1QyQqm8OQx1aQZWQ0CwPbw";

/// Checks a password for `user` (or spends the same effort when `user` is `None`).
/// `wrong` is the message a wrong password gets in this context.
pub async fn check_password(
    app: &App,
    user: Option<&UserRow>,
    given: &SecretString,
    ip: ClientAddr,
    wrong: &'static str,
) -> Result<PasswordOk> {
    throttle(app, Factor::Password, user.map(|u| u.id), ip).await?;
    let hash = user.map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let candidate = given.clone();
    let matches = app
        .hashing
        .run(move || password::verify_password(candidate.expose_secret(), &hash))
        .await?;
    match user {
        Some(u) if matches => {
            app.store
                .clear_auth_failures(Factor::Password, u.id, &ip.to_string())
                .await?;
            Ok(PasswordOk { user_id: u.id })
        }
        _ => {
            failed(app, Factor::Password, user, ip).await?;
            Err(Error::BadPassword(wrong.into()))
        }
    }
}

/// Asks for a one-time password: the message npm recognises.
pub const OTP_MESSAGE: &str = "This operation requires a one-time password from your authenticator. \
    You must provide a one-time pass (npm-otp header or --otp=<code>).";

/// Checks a TOTP code (or a recovery code) for `user`: throttled, single use.
pub async fn check_otp(app: &App, user: &UserRow, code: &str, ip: ClientAddr) -> Result<OtpOk> {
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(Error::OtpRequired(OTP_MESSAGE.into()));
    }
    throttle(app, Factor::OneTimePassword, Some(user.id), ip).await?;
    let now = app.now();
    let secret = super::two_factor::secret_of(app, user)?;
    if let Some(step) = totp::matching_step(&secret, &compact, (now / 1000) as u64) {
        if app.store.claim_totp_step(user.id, step as i64).await? {
            app.store
                .clear_auth_failures(Factor::OneTimePassword, user.id, &ip.to_string())
                .await?;
            return Ok(OtpOk { user_id: user.id });
        }
        // A code already used (a replay) counts as a failure.
    } else if is_recovery_code_shape(&compact) {
        let hash = keyed_hash(&app.keys.lookup, &normalise_recovery(&compact));
        if app.store.consume_recovery_code(user.id, &hash, now).await? {
            security_log::record(
                app,
                user.id,
                SecurityEventKind::RecoveryCodeUsed,
                "a recovery code was used",
                Some(&ip.to_string()),
            )
            .await;
            return Ok(OtpOk { user_id: user.id });
        }
    }
    failed(app, Factor::OneTimePassword, Some(user), ip).await?;
    Err(Error::OtpRequired(
        "Invalid or already used one-time password. You must provide a valid one-time pass.".into(),
    ))
}

/// Checks the first code of a pending enrolment against the new secret (throttled
/// like every other one-time password). Returns the TOTP step it matched.
pub async fn check_enrolment_code(
    app: &App,
    user: &UserRow,
    secret: &[u8],
    code: &str,
    ip: ClientAddr,
) -> Result<u64> {
    throttle(app, Factor::OneTimePassword, Some(user.id), ip).await?;
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    match totp::matching_step(secret, &compact, (app.now() / 1000) as u64) {
        Some(step) => Ok(step),
        None => {
            failed(app, Factor::OneTimePassword, Some(user), ip).await?;
            Err(Error::OtpRequired(
                "Invalid one-time password; enrolment is still pending.".into(),
            ))
        }
    }
}

fn is_recovery_code_shape(code: &str) -> bool {
    let plain: String = code.chars().filter(|c| *c != '-').collect();
    plain.len() == 10 && plain.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn normalise_recovery(code: &str) -> String {
    let plain: String = code
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{}-{}", &plain[..5], &plain[5..])
}
