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
