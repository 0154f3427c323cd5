//! Two-factor authentication: enrolment (pending until the first valid code), mode
//! switches, disable and recovery codes. The one-time password checks themselves
//! (throttled, single use) live in `credentials`.

use secrecy::SecretString;

use super::access::{self, TfaMode, act};
use super::{Caller, Error, Result, credentials, security_log};
use crate::app::App;
use crate::crypto::{secret_box, server_key::keyed_hash, totp};
use crate::store::SecurityEventKind;

/// The account's TOTP secret, opened with the server key.
pub fn secret_of(app: &App, user: &crate::store::UserRow) -> Result<Vec<u8>> {
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

/// What a two-factor change (`POST /-/npm/v1/user` with `tfa`, or the website) did.
#[derive(Debug)]
pub enum TfaChange {
    /// New enrolment: the otpauth URL (pending until confirmed).
    Pending {
        otpauth_url: String,
        secret_base32: String,
    },
    ModeChanged(TfaMode),
    Disabled,
}

/// What a two-factor request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfaRequest {
    Enable(TfaMode),
    Disable,
}

impl TfaRequest {
    /// npm's wire values: `auth-only`, `auth-and-writes`, `disable`.
    pub fn parse(mode: &str) -> Result<TfaRequest> {
        match mode {
            "auth-only" => Ok(TfaRequest::Enable(TfaMode::AuthOnly)),
            "auth-and-writes" => Ok(TfaRequest::Enable(TfaMode::AuthAndWrites)),
            "disable" => Ok(TfaRequest::Disable),
            other => Err(Error::Invalid(format!(
                "unknown two-factor mode {:?}; use auth-only or auth-and-writes",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// Starts enrolment, switches mode, or turns 2FA off. Every path passes the access
/// check (with its one-time password once 2FA is on) and re-checks the password.
pub async fn change(
    app: &App,
    caller: &Caller,
    request: TfaRequest,
    password: &SecretString,
) -> Result<TfaChange> {
    let current = caller.user.tfa_mode();
    let ip = caller.ip_text();
    let grant = access::authorize_account::<act::ChangeTwoFactor>(app, caller).await?;
    credentials::check_password(
        app,
        Some(&caller.user),
        password,
        caller.ip,
        "Incorrect password.",
    )
    .await?;
    let now = app.now();
    match request {
        TfaRequest::Disable => {
            app.store
                .set_two_factor(&grant, TfaMode::Off, false, None, now)
                .await?;
            app.store.replace_recovery_codes(&grant, &[]).await?;
            if current != TfaMode::Off {
                security_log::record(
                    app,
                    caller.user.id,
                    SecurityEventKind::TfaDisabled,
                    "two-factor authentication disabled",
                    Some(&ip),
                )
                .await;
            }
            Ok(TfaChange::Disabled)
        }
        TfaRequest::Enable(mode) if current != TfaMode::Off => {
            app.store
                .set_mode_keep_secret(&grant, mode, caller.user.tfa_secret.as_deref(), now)
                .await?;
            security_log::record(
                app,
                caller.user.id,
                SecurityEventKind::TfaModeChanged,
                &format!("two-factor mode set to {}", mode.as_str()),
                Some(&ip),
            )
            .await;
            Ok(TfaChange::ModeChanged(mode))
        }
        TfaRequest::Enable(mode) => {
            let secret = totp::generate_secret();
            let sealed = secret_box::seal(&app.keys.totp, &secret);
            app.store
                .set_two_factor(&grant, mode, true, Some(&sealed), now)
                .await?;
            Ok(TfaChange::Pending {
                otpauth_url: totp::otpauth_url(&secret, &caller.user.name),
                secret_base32: totp::secret_base32(&secret),
            })
        }
    }
}

/// Confirms a pending enrolment with the first code; returns the recovery codes.
pub async fn confirm(app: &App, caller: &Caller, code: &str) -> Result<Vec<String>> {
    let grant = access::authorize_account::<act::ChangeTwoFactor>(app, caller).await?;
    let user = &caller.user;
    let Some(mode) = user
        .tfa_mode
        .get()
        .filter(|m| user.tfa_pending != 0 && *m != TfaMode::Off)
    else {
        return Err(Error::Invalid(
            "two-factor authentication is not pending; start with enable-2fa".into(),
        ));
    };
    let secret = secret_of(app, user)?;
    let step = credentials::check_enrolment_code(app, user, &secret, code, caller.ip).await?;
    let now = app.now();
    app.store
        .set_two_factor(&grant, mode, false, user.tfa_secret.as_deref(), now)
        .await?;
    app.store.claim_totp_step(user.id, step as i64).await?;
    let codes = totp::generate_recovery_codes();
    let hashes: Vec<[u8; 32]> = codes
        .iter()
        .map(|c| keyed_hash(&app.keys.lookup, c))
        .collect();
    app.store.replace_recovery_codes(&grant, &hashes).await?;
    security_log::record(
        app,
        user.id,
        SecurityEventKind::TfaEnabled,
        &format!("two-factor authentication enabled ({})", mode.as_str()),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(codes)
}

/// While an enrolment is pending, its otpauth URL and base32 secret (to show the QR
/// code again until the first code confirms it); `None` otherwise.
pub async fn pending_enrolment(app: &App, caller: &Caller) -> Result<Option<(String, String)>> {
    access::authorize_account::<act::ReadProfile>(app, caller).await?;
    if caller.user.tfa_pending == 0 || caller.user.tfa_mode.get() == Some(TfaMode::Off) {
        return Ok(None);
    }
    let secret = secret_of(app, &caller.user)?;
    Ok(Some((
        totp::otpauth_url(&secret, &caller.user.name),
        totp::secret_base32(&secret),
    )))
}

/// Number of unused recovery codes.
pub async fn recovery_codes_left(app: &App, caller: &Caller) -> Result<i64> {
    access::authorize_account::<act::ReadProfile>(app, caller).await?;
    Ok(app.store.unused_recovery_codes(caller.user.id).await?)
}
