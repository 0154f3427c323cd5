//! Website sessions: a random id in an HttpOnly cookie, its keyed hash in the
//! database, idle and absolute expiry, and a per-session CSRF token. Signing in checks
//! the password through `credentials` (the same throttle as every other password
//! check); an account with 2FA gets a session that can do nothing until its one-time
//! password is checked.

use secrecy::{ExposeSecret, SecretString};

use super::credentials::{self, PasswordOk};
use super::{Result, auth::session_caller};
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::crypto::server_key::keyed_hash;
use crate::crypto::token_format::random_base62;
use crate::domain::Caller;
use crate::store::SecurityEventKind;

/// A session expires after this long without a request.
pub const IDLE_MS: i64 = 2 * 60 * 60 * 1000;
/// And after this long in any case.
pub const ABSOLUTE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// A session waiting for its one-time password lives this long.
pub const PENDING_OTP_MS: i64 = 10 * 60 * 1000;

/// A loaded session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub csrf: String,
    /// Signed in with the password but still owes a one-time password.
    pub pending_otp: bool,
    pub caller: Caller,
}

/// The cookie value of a new session: the only place the session id exists.
pub struct SessionCookie(SecretString);

impl SessionCookie {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCookie(<redacted>)")
    }
}

/// Creates a session for an account whose password was just checked.
async fn create(app: &App, password: &PasswordOk, pending_otp: bool) -> Result<SessionCookie> {
    let id = random_base62(43);
    let csrf = random_base62(32);
    app.store
        .insert_session(
            &keyed_hash(&app.keys.lookup, &id),
            password.user_id(),
            &csrf,
            pending_otp,
            app.now(),
        )
        .await?;
    Ok(SessionCookie(SecretString::from(id)))
}

pub fn hash_id(app: &App, id: &str) -> Vec<u8> {
    keyed_hash(&app.keys.lookup, id).to_vec()
}

/// Loads a live session from its cookie value (expired ones are deleted).
pub async fn load(app: &App, id: &str, ip: ClientAddr) -> Result<Option<Session>> {
    if id.len() != 43 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let id_hash = hash_id(app, id);
    let Some(row) = app.store.session(&id_hash).await? else {
        return Ok(None);
    };
    let now = app.now();
    let pending_otp = row.pending_otp != 0;
    let expired = now - row.last_seen_at > IDLE_MS
        || now - row.created_at > ABSOLUTE_MS
        || (pending_otp && now - row.created_at > PENDING_OTP_MS);
    if expired {
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
        pending_otp,
        caller: session_caller(user, ip),
    }))
}

/// Result of the password step of a website sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub cookie: SessionCookie,
    /// The account has 2FA: the session is unusable until `finish_otp`.
    pub needs_otp: bool,
}

/// The password step of a website sign-in; creates the session (pending its one-time
/// password when the account has 2FA).
pub async fn sign_in(
    app: &App,
    name: &str,
    password: &SecretString,
    ip: ClientAddr,
) -> Result<SignedIn> {
    let user = app.store.user_by_name(name).await?;
    let proof = credentials::check_password(
        app,
        user.as_ref(),
        password,
        ip,
        "Incorrect username or password.",
    )
    .await?;
    let Some(user) = user else {
        return Err(super::Error::BadPassword(
            "Incorrect username or password.".into(),
        ));
    };
    let needs_otp = user.tfa_mode() != super::access::TfaMode::Off;
    let cookie = create(app, &proof, needs_otp).await?;
    if !needs_otp {
        signed_in(app, user.id, ip).await;
    }
    Ok(SignedIn { cookie, needs_otp })
}

async fn signed_in(app: &App, user_id: i64, ip: ClientAddr) {
    super::security_log::record(
        app,
        user_id,
        SecurityEventKind::WebSignIn,
        "signed in to the website",
        Some(&ip.to_string()),
    )
    .await;
}

/// The one-time-password step: checks the code (or a recovery code) and replaces the
/// pending session with a fresh one, whose cookie value is returned.
pub async fn finish_otp(app: &App, session: &Session, code: &str) -> Result<SessionCookie> {
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
    super::users::login_otp(app, user, Some(code), ip).await?;
    app.store.delete_session(&session.id_hash).await?;
    let proof = credentials::session_upgrade(user);
    let cookie = create(app, &proof, false).await?;
    signed_in(app, user.id, ip).await;
    Ok(cookie)
}

/// Signs out: the session row is deleted, so the cookie is worthless.
pub async fn sign_out(app: &App, session: &Session) -> Result<()> {
    app.store.delete_session(&session.id_hash).await?;
    Ok(())
}

/// The same session caller with its account read again (after a change to it).
pub async fn reload_caller(app: &App, caller: &Caller) -> Result<Caller> {
    let user = app
        .store
        .user_by_id(caller.user.id)
        .await?
        .ok_or_else(|| super::Error::Unauthenticated("the account no longer exists".into()))?;
    let mut fresh = session_caller(user, caller.ip);
    fresh.otp = None;
    Ok(fresh)
}
