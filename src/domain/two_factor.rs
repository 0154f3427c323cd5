//! Two-factor authentication: enrolment (pending until the first valid code),
//! mode switches, disable, OTP checks with replay protection, recovery codes and
//! throttling. State that must hold across instances (last step, failures) lives in
//! the database.

use super::access::{Action, TfaMode};
use super::{Caller, Error, Result, authorize, security_log};
use crate::app::App;
use crate::auth::{secret_box, server_key::keyed_hash, totp};

/// Failures allowed per account and per address within the window.
pub const MAX_FAILURES: i64 = 10;
/// The throttling window.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

const OTP_MESSAGE: &str = "This operation requires a one-time password from your authenticator. \
    You must provide a one-time pass (npm-otp header or --otp=<code>).";

/// Demands a valid OTP from `caller` (called when the access check says so).
pub async fn require_otp(app: &App, caller: &Caller) -> Result<()> {
    match caller
        .otp
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Err(Error::OtpRequired(OTP_MESSAGE.into())),
        Some(code) => verify_code(app, &caller.user, code, &caller.ip_text()).await,
    }
}

fn secret_of(app: &App, user: &crate::store::UserRow) -> Result<Vec<u8>> {
    let sealed = user
        .tfa_secret
        .as_deref()
        .ok_or_else(|| Error::Forbidden("two-factor authentication is not set up".into()))?;
    secret_box::open(&app.keys.totp, sealed).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "TOTP secret cannot be decrypted with this server key"
        ))
    })
}

async fn throttle(app: &App, user_id: i64, ip: &str) -> Result<()> {
    let now = app.now();
    let (by_user, user_oldest, by_ip, ip_oldest) = app
        .store
        .otp_failures_since(Some(user_id), ip, now - WINDOW_MS)
        .await?;
    let oldest = if by_user >= MAX_FAILURES {
        user_oldest
    } else if by_ip >= MAX_FAILURES {
        ip_oldest
    } else {
        return Ok(());
    };
    let wait = oldest.map_or(WINDOW_MS, |t| t + WINDOW_MS - now).max(1000);
    Err(Error::TooManyAttempts {
        retry_after_secs: (wait as u64).div_ceil(1000),
    })
}

/// Checks a TOTP code (or a recovery code) for `user`. Throttled, single-use.
pub async fn verify_code(
    app: &App,
    user: &crate::store::UserRow,
    code: &str,
    ip: &str,
) -> Result<()> {
    throttle(app, user.id, ip).await?;
    let now = app.now();
    let secret = secret_of(app, user)?;
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(step) = totp::matching_step(&secret, &compact, (now / 1000) as u64) {
        if app.store.claim_totp_step(user.id, step as i64).await? {
            app.store.clear_otp_failures(user.id, ip).await?;
            return Ok(());
        }
        // A code already used (a replay) counts as a failure.
    } else if is_recovery_code_shape(&compact) {
        let hash = keyed_hash(&app.keys.lookup, &normalise_recovery(&compact));
        if app.store.consume_recovery_code(user.id, &hash, now).await? {
            security_log::record(
                app,
                user.id,
                "recovery-code-used",
                "a recovery code was used",
                Some(ip),
            )
            .await;
            return Ok(());
        }
    }
    app.store.record_otp_failure(Some(user.id), ip, now).await?;
    let (by_user, _, _, _) = app
        .store
        .otp_failures_since(Some(user.id), ip, now - WINDOW_MS)
        .await?;
    if by_user == MAX_FAILURES {
        security_log::record(
            app,
            user.id,
            "otp-failures",
            &format!("{MAX_FAILURES} wrong one-time passwords within 15 minutes; further attempts are throttled"),
            Some(ip),
        )
        .await;
    }
    Err(Error::OtpRequired(
        "Invalid or already used one-time password. You must provide a valid one-time pass.".into(),
    ))
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

/// What `POST /-/npm/v1/user` with a `tfa` object produced.
#[derive(Debug)]
pub enum TfaChange {
    /// New enrolment: the otpauth URL (pending until confirmed).
    Pending {
        otpauth_url: String,
        secret_base32: String,
    },
    ModeChanged(String),
    Disabled,
}

fn check_password(caller: &Caller, password: &str) -> Result<()> {
    if crate::auth::password::verify_password(password, &caller.user.password_hash) {
        Ok(())
    } else {
        Err(Error::BadPassword("Incorrect password.".into()))
    }
}

/// Starts enrolment, switches mode, or (mode `disable`) turns 2FA off.
pub async fn change(app: &App, caller: &Caller, mode: &str, password: &str) -> Result<TfaChange> {
    let current = TfaMode::from_row(
        caller.user.tfa_mode.as_deref(),
        caller.user.tfa_pending != 0,
    );
    let ip = caller.ip_text();
    if mode == "disable" {
        if current == TfaMode::Off {
            // Resetting a pending enrolment needs only the password.
            authorize_without_otp(app, caller)?;
            check_password(caller, password)?;
            app.store
                .set_two_factor(caller.user.id, None, false, None, app.now())
                .await?;
            return Ok(TfaChange::Disabled);
        }
        authorize(app, Some(caller), Action::ChangeTwoFactor, None).await?;
        check_password(caller, password)?;
        app.store
            .set_two_factor(caller.user.id, None, false, None, app.now())
            .await?;
        app.store
            .replace_recovery_codes(caller.user.id, &[])
            .await?;
        security_log::record(
            app,
            caller.user.id,
            "2fa-disabled",
            "two-factor authentication disabled",
            Some(&ip),
        )
        .await;
        return Ok(TfaChange::Disabled);
    }
    if mode != "auth-only" && mode != "auth-and-writes" {
        return Err(Error::Invalid(format!(
            "unknown two-factor mode {mode:?}; use auth-only or auth-and-writes"
        )));
    }
    if current != TfaMode::Off {
        authorize(app, Some(caller), Action::ChangeTwoFactor, None).await?;
        check_password(caller, password)?;
        app.store
            .set_mode_keep_secret(
                caller.user.id,
                mode,
                caller.user.tfa_secret.as_deref(),
                app.now(),
            )
            .await?;
        security_log::record(
            app,
            caller.user.id,
            "2fa-mode-changed",
            &format!("two-factor mode set to {mode}"),
            Some(&ip),
        )
        .await;
        return Ok(TfaChange::ModeChanged(mode.to_owned()));
    }
    authorize_without_otp(app, caller)?;
    check_password(caller, password)?;
    let secret = totp::generate_secret();
    let sealed = secret_box::seal(&app.keys.totp, &secret);
    app.store
        .set_two_factor(caller.user.id, Some(mode), true, Some(&sealed), app.now())
        .await?;
    Ok(TfaChange::Pending {
        otpauth_url: totp::otpauth_url(&secret, &caller.user.name),
        secret_base32: totp::secret_base32(&secret),
    })
}

fn authorize_without_otp(app: &App, caller: &Caller) -> Result<()> {
    // Enrolment happens while 2FA is off, so the policy never asks for an OTP here.
    match super::access::decide(
        Some(&caller.principal),
        Action::ChangeTwoFactor,
        None,
        app.config.anonymous_read,
    ) {
        super::access::Decision::Deny(super::access::Denial::Forbidden(m)) => {
            Err(Error::Forbidden(m))
        }
        super::access::Decision::Deny(_) => {
            Err(Error::Unauthenticated("authentication required".into()))
        }
        _ => Ok(()),
    }
}

/// Confirms a pending enrolment with the first code; returns the recovery codes.
pub async fn confirm(app: &App, caller: &Caller, code: &str) -> Result<Vec<String>> {
    authorize_without_otp(app, caller)?;
    if caller.user.tfa_pending == 0 || caller.user.tfa_mode.is_none() {
        return Err(Error::Invalid(
            "two-factor authentication is not pending; start with enable-2fa".into(),
        ));
    }
    let secret = secret_of(app, &caller.user)?;
    let ip = caller.ip_text();
    throttle(app, caller.user.id, &ip).await?;
    let now = app.now();
    let Some(step) = totp::matching_step(&secret, code, (now / 1000) as u64) else {
        app.store
            .record_otp_failure(Some(caller.user.id), &ip, now)
            .await?;
        return Err(Error::OtpRequired(
            "Invalid one-time password; enrolment is still pending.".into(),
        ));
    };
    let mode = caller.user.tfa_mode.clone().unwrap_or_default();
    app.store
        .set_two_factor(
            caller.user.id,
            Some(&mode),
            false,
            caller.user.tfa_secret.as_deref(),
            now,
        )
        .await?;
    app.store
        .claim_totp_step(caller.user.id, step as i64)
        .await?;
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<[u8; 32]> = codes
        .iter()
        .map(|c| keyed_hash(&app.keys.lookup, c))
        .collect();
    app.store
        .replace_recovery_codes(caller.user.id, &hashes)
        .await?;
    security_log::record(
        app,
        caller.user.id,
        "2fa-enabled",
        &format!("two-factor authentication enabled ({mode})"),
        Some(&ip),
    )
    .await;
    Ok(codes)
}
