//! Website sessions: a random id in an HttpOnly cookie, its keyed hash in the
//! database, idle and absolute expiry, and a per-session CSRF token.

use super::{Caller, Result, auth::session_caller};
use crate::app::App;
use crate::auth::server_key::keyed_hash;
use crate::auth::token::random_base62;
use std::net::IpAddr;

/// A session expires after this long without a request.
pub const IDLE_MS: i64 = 2 * 60 * 60 * 1000;
/// And after this long in any case.
pub const ABSOLUTE_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A loaded session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub csrf: String,
    /// Signed in with the password but still owes a one-time password.
    pub pending_otp: bool,
    pub caller: Caller,
}

/// Creates a session and returns its cookie value.
pub async fn create(app: &App, user_id: i64, pending_otp: bool) -> Result<String> {
    let id = random_base62(43);
    let csrf = random_base62(32);
    app.store
        .insert_session(
            &keyed_hash(&app.keys.lookup, &id),
            user_id,
            &csrf,
            pending_otp,
            app.now(),
        )
        .await?;
    Ok(id)
}

pub fn hash_id(app: &App, id: &str) -> Vec<u8> {
    keyed_hash(&app.keys.lookup, id).to_vec()
}

/// Loads a live session from its cookie value (expired ones are deleted).
pub async fn load(app: &App, id: &str, ip: IpAddr) -> Result<Option<Session>> {
    if id.len() != 43 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let id_hash = hash_id(app, id);
    let Some(row) = app.store.session(&id_hash).await? else {
        return Ok(None);
    };
    let now = app.now();
    if now - row.last_seen_at > IDLE_MS || now - row.created_at > ABSOLUTE_MS {
        app.store.delete_session(&id_hash).await?;
        return Ok(None);
    }
    let Some(user) = app.store.user_by_id(row.user_id).await? else {
        return Ok(None);
    };
    if now - row.last_seen_at > 60_000 {
        app.store.touch_session(&id_hash, now).await?;
    }
    Ok(Some(Session {
        id_hash,
        csrf: row.csrf,
        pending_otp: row.pending_otp != 0,
        caller: session_caller(user, ip),
    }))
}

/// Failed sign-ins allowed per account and per address within `SIGN_IN_WINDOW_MS`.
pub const MAX_SIGN_IN_FAILURES: i64 = 10;
/// The sign-in throttling window.
pub const SIGN_IN_WINDOW_MS: i64 = 15 * 60 * 1000;
/// A session waiting for its one-time password lives this long.
pub const PENDING_OTP_MS: i64 = 10 * 60 * 1000;

/// Result of the password step of a website sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session's cookie value.
    pub cookie: String,
    /// The account has 2FA: the session is unusable until `finish_otp`.
    pub needs_otp: bool,
}

fn signin_keys(user_id: Option<i64>, ip: IpAddr) -> (String, Option<String>) {
    (
        format!("signin-ip:{ip}"),
        user_id.map(|id| format!("signin-user:{id}")),
    )
}

async fn sign_in_throttle(app: &App, keys: &(String, Option<String>)) -> Result<()> {
    let now = app.now();
    let since = now - SIGN_IN_WINDOW_MS;
    let mut oldest = None;
    let (by_ip, ip_oldest) = app.store.keyed_failures_since(&keys.0, since).await?;
    if by_ip >= 2 * MAX_SIGN_IN_FAILURES {
        oldest = Some(ip_oldest);
    }
    if let Some(user_key) = &keys.1 {
        let (by_user, user_oldest) = app.store.keyed_failures_since(user_key, since).await?;
        if by_user >= MAX_SIGN_IN_FAILURES {
            oldest = Some(user_oldest);
        }
    }
    match oldest {
        None => Ok(()),
        Some(t) => {
            let wait = t
                .map_or(SIGN_IN_WINDOW_MS, |t| t + SIGN_IN_WINDOW_MS - now)
                .max(1000);
            Err(super::Error::TooManyAttempts {
                retry_after_secs: (wait as u64).div_ceil(1000),
            })
        }
    }
}

/// The password step of a website sign-in: throttled per address and per account;
/// creates the session (pending its one-time password when the account has 2FA).
pub async fn sign_in(app: &App, name: &str, password: &str, ip: IpAddr) -> Result<SignedIn> {
    let known = app.store.user_by_name(name).await?;
    let keys = signin_keys(known.as_ref().map(|u| u.id), ip);
    sign_in_throttle(app, &keys).await?;
    let caller = match super::auth::authenticate_password(app, name, password, ip).await {
        Ok(c) => c,
        Err(e) => {
            let now = app.now();
            app.store.record_keyed_failure(&keys.0, now).await?;
            if let (Some(user_key), Some(user)) = (&keys.1, &known) {
                app.store.record_keyed_failure(user_key, now).await?;
                let (count, _) = app
                    .store
                    .keyed_failures_since(user_key, now - SIGN_IN_WINDOW_MS)
                    .await?;
                if count == MAX_SIGN_IN_FAILURES {
                    super::security_log::record(
                        app,
                        user.id,
                        "sign-in-failures",
                        &format!("{MAX_SIGN_IN_FAILURES} failed website sign-ins within 15 minutes; further attempts are throttled"),
                        Some(&ip.to_string()),
                    )
                    .await;
                }
            }
            return Err(e);
        }
    };
    let user = &caller.user;
    let needs_otp =
        super::access::TfaMode::from_row(user.tfa_mode.as_deref(), user.tfa_pending != 0)
            != super::access::TfaMode::Off;
    let cookie = create(app, user.id, needs_otp).await?;
    if !needs_otp {
        signed_in(app, user.id, &keys, ip).await?;
    }
    Ok(SignedIn { cookie, needs_otp })
}

async fn signed_in(
    app: &App,
    user_id: i64,
    keys: &(String, Option<String>),
    ip: IpAddr,
) -> Result<()> {
    if let Some(user_key) = &keys.1 {
        app.store.clear_keyed_failures(user_key).await?;
    }
    super::security_log::record(
        app,
        user_id,
        "web-sign-in",
        "signed in to the website",
        Some(&ip.to_string()),
    )
    .await;
    Ok(())
}

/// The one-time-password step: checks the code (or a recovery code) and replaces the
/// pending session with a fresh one, whose cookie value is returned.
pub async fn finish_otp(app: &App, session: &Session, code: &str) -> Result<String> {
    if !session.pending_otp {
        return Err(super::Error::Invalid(
            "this session is already signed in".into(),
        ));
    }
    let row = app.store.session(&session.id_hash).await?;
    if row.is_none_or(|r| app.now() - r.created_at > PENDING_OTP_MS) {
        app.store.delete_session(&session.id_hash).await?;
        return Err(super::Error::Unauthenticated(
            "the sign-in took too long; sign in again".into(),
        ));
    }
    let user = &session.caller.user;
    let ip = session.caller.ip;
    super::users::check_login_otp(app, user, Some(code), &ip.to_string()).await?;
    app.store.delete_session(&session.id_hash).await?;
    let cookie = create(app, user.id, false).await?;
    signed_in(app, user.id, &signin_keys(Some(user.id), ip), ip).await?;
    Ok(cookie)
}

/// Signs out: the session row is deleted, so the cookie is worthless.
pub async fn sign_out(app: &App, session: &Session) -> Result<()> {
    app.store.delete_session(&session.id_hash).await?;
    Ok(())
}

/// A one-time message carried to the next page load, sealed in the session row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub enum Flash {
    /// A freshly generated token: (token key, full token).
    NewToken { key: String, token: String },
    /// Recovery codes after enabling 2FA.
    RecoveryCodes(Vec<String>),
}

/// Stores a flash for the session (sealed with the server key).
pub async fn set_flash(app: &App, session: &Session, flash: &Flash) -> Result<()> {
    let json = serde_json::to_vec(flash).map_err(|e| super::Error::Internal(e.into()))?;
    let sealed = crate::auth::secret_box::seal(&app.keys.totp, &json);
    app.store
        .set_session_flash(&session.id_hash, Some(&sealed))
        .await?;
    Ok(())
}

/// Takes the session's flash: returns it once, then never again.
pub async fn take_flash(app: &App, session: &Session) -> Result<Option<Flash>> {
    let Some(sealed) = app.store.take_session_flash(&session.id_hash).await? else {
        return Ok(None);
    };
    Ok(crate::auth::secret_box::open(&app.keys.totp, &sealed)
        .and_then(|b| serde_json::from_slice(&b).ok()))
}
