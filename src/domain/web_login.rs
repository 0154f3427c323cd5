//! Browser login for the npm CLI (`POST /-/v1/login` → `loginUrl` / `doneUrl`).
//! The ids live only in the URLs; the database keeps their keyed hashes. A login is
//! single-use and expires after ten minutes.

use super::access::{self, act};
use super::{Caller, Error, Result, tokens};
use crate::app::App;
use crate::crypto::server_key::keyed_hash;
use crate::crypto::token_format::random_base62;

/// How long a browser login stays open.
pub const LIFETIME_MS: i64 = 10 * 60 * 1000;

/// URLs handed to the CLI.
#[derive(Debug)]
pub struct Started {
    pub login_url: String,
    pub done_url: String,
}

/// Opens a browser login.
pub async fn start(app: &App, client: &str) -> Result<Started> {
    let now = app.now();
    app.store.delete_expired_web_logins(now).await?;
    let id = random_base62(32);
    let done = random_base62(32);
    app.store
        .insert_web_login(
            &keyed_hash(&app.keys.lookup, &id),
            &keyed_hash(&app.keys.lookup, &done),
            Some(&client.chars().take(64).collect::<String>()),
            now,
            now + LIFETIME_MS,
        )
        .await?;
    Ok(Started {
        login_url: format!("{}/login/cli/{id}", app.public_url),
        done_url: format!("{}/-/v1/done/{done}", app.public_url),
    })
}

/// State of a login for its approval page.
pub async fn pending(app: &App, id: &str) -> Result<Option<String>> {
    match app
        .store
        .web_login_by_id(&keyed_hash(&app.keys.lookup, id))
        .await?
    {
        Some(row) if row.expires_at > app.now() && row.user_id.is_none() => {
            Ok(Some(row.client_name.unwrap_or_else(|| "npm".into())))
        }
        _ => Ok(None),
    }
}

/// The signed-in user approves the login (a website session only, with a one-time
/// password when the account has 2FA: the approval mints a publish token).
pub async fn approve(app: &App, caller: &Caller, id: &str) -> Result<()> {
    let hash = keyed_hash(&app.keys.lookup, id);
    match app.store.web_login_by_id(&hash).await? {
        Some(row) if row.expires_at > app.now() => {
            let grant = access::authorize_account::<act::ApproveWebLogin>(app, caller).await?;
            if app.store.approve_web_login(&grant, &hash).await? {
                Ok(())
            } else {
                Err(Error::Conflict("this login was already approved".into()))
            }
        }
        _ => Err(Error::NotFound(
            "this login request expired or does not exist; run npm login again".into(),
        )),
    }
}

/// Result of polling the done URL.
#[derive(Debug)]
pub enum Poll {
    Waiting,
    Done(Box<tokens::Created>),
}

/// Polls: waiting, or (exactly once) the new token.
pub async fn poll(app: &App, done: &str, ip: &str) -> Result<Poll> {
    let hash = keyed_hash(&app.keys.lookup, done);
    let Some(row) = app.store.web_login_by_done(&hash).await? else {
        return Err(Error::NotFound("unknown or finished login".into()));
    };
    if row.expires_at <= app.now() {
        return Err(Error::NotFound("login expired; run npm login again".into()));
    }
    let Some(user_id) = row.user_id else {
        return Ok(Poll::Waiting);
    };
    if !app.store.consume_web_login(&hash).await? {
        return Err(Error::NotFound("login already used".into()));
    }
    let user = app
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| Error::NotFound("user gone".into()))?;
    let client = row.client_name.unwrap_or_else(|| "npm".into());
    let grant = access::gate::approved_web_login_grant(user.id);
    Ok(Poll::Done(Box::new(
        tokens::issue_login_token(app, &grant, &user, &format!("{client} (browser)"), ip).await?,
    )))
}
