//! Accounts: sign-up, password login (the CouchDB-style endpoint), profiles.

use super::access::{Action, TfaMode};
use super::tokens::{self, Created};
use super::{Caller, Error, Result, authorize, security_log, two_factor};
use crate::app::App;
use crate::auth::password::{hash_password, verify_password};
use crate::store::{ProfileUpdate, UserRow};

/// Checks a username: lower-case, URL-safe, 1–64 characters, not starting with `.`.
pub fn validate_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid username {:?}: use 1-64 lower-case letters, digits, '-', '_' or '.'",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// Checks an email address the way npm does.
pub fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid email address {email:?}")))
    }
}

fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    if password.len() > 1024 {
        return Err(Error::Invalid("password is too long".into()));
    }
    Ok(())
}

/// Creates an account (used by sign-up and the operator command).
pub async fn create_user(app: &App, name: &str, email: &str, password: &str) -> Result<UserRow> {
    validate_username(name)?;
    validate_email(email)?;
    validate_password(password)?;
    let hash = hash_password(password)?;
    match app.store.insert_user(name, email, &hash, app.now()).await {
        Ok(user) => Ok(user),
        Err(crate::store::StoreError::Conflict) => {
            Err(Error::Conflict(format!("user {name} already exists")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A password login or sign-up request from `PUT /-/user/org.couchdb.user:<name>`.
pub struct LoginRequest<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// Present for `npm adduser`.
    pub email: Option<&'a str>,
    pub otp: Option<&'a str>,
    pub ip: &'a str,
    pub client: &'a str,
}

/// Logs in (or signs up) and issues a login token.
pub async fn password_login(app: &App, req: LoginRequest<'_>) -> Result<Created> {
    let user = match app.store.user_by_name(req.name).await? {
        Some(user) => {
            if !verify_password(req.password, &user.password_hash) {
                app.metrics.auth_failure("bad_password");
                return Err(Error::BadPassword("Incorrect username or password.".into()));
            }
            user
        }
        None => {
            let Some(email) = req.email else {
                return Err(Error::Invalid(format!(
                    "There is no user with the username \"{}\".",
                    req.name
                )));
            };
            if !app.config.open_signup {
                return Err(Error::Forbidden(
                    "Sign-up is closed on this registry; ask an administrator.".into(),
                ));
            }
            create_user(app, req.name, email, req.password).await?
        }
    };
    check_login_otp(app, &user, req.otp, req.ip).await?;
    tokens::issue_login_token(app, &user, req.client, req.ip).await
}

/// Asks for (and checks) a one-time password at login when the account has 2FA.
pub async fn check_login_otp(app: &App, user: &UserRow, otp: Option<&str>, ip: &str) -> Result<()> {
    if TfaMode::from_row(user.tfa_mode.as_deref(), user.tfa_pending != 0) == TfaMode::Off {
        return Ok(());
    }
    match otp.map(str::trim).filter(|s| !s.is_empty()) {
        None => Err(Error::OtpRequired(
            "This account has two-factor authentication: you must provide a one-time pass.".into(),
        )),
        Some(code) => two_factor::verify_code(app, user, code, ip).await,
    }
}

/// Reads the caller's profile.
pub async fn profile(app: &App, caller: &Caller) -> Result<UserRow> {
    authorize(app, Some(caller), Action::ReadProfile, None).await?;
    Ok(UserRow::clone(&caller.user))
}

/// Updates profile fields and, when given, the password (`old` must match).
pub async fn update_profile(
    app: &App,
    caller: &Caller,
    update: ProfileUpdate,
    password: Option<(String, String)>,
    keep_session: Option<&[u8]>,
) -> Result<UserRow> {
    authorize(app, Some(caller), Action::ChangeProfile, None).await?;
    if let Some(email) = &update.email {
        validate_email(email)?;
    }
    let now = app.now();
    if let Some((old, new)) = password {
        if !verify_password(&old, &caller.user.password_hash) {
            return Err(Error::BadPassword("Current password is incorrect.".into()));
        }
        validate_password(&new)?;
        app.store
            .set_password_hash(caller.user.id, &hash_password(&new)?, now)
            .await?;
        app.store
            .delete_other_sessions(caller.user.id, keep_session)
            .await?;
        security_log::record(
            app,
            caller.user.id,
            "password-changed",
            "password changed; other sessions signed out",
            Some(&caller.ip_text()),
        )
        .await;
    }
    app.store
        .update_profile(caller.user.id, &update, now)
        .await?;
    app.store
        .user_by_id(caller.user.id)
        .await?
        .ok_or_else(|| Error::NotFound("this account no longer exists".into()))
}

/// Website sign-up: creates an account when sign-up is open.
pub async fn sign_up(app: &App, name: &str, email: &str, password: &str) -> Result<UserRow> {
    if !app.config.open_signup {
        return Err(Error::Forbidden(
            "Sign-up is closed on this registry; ask an administrator.".into(),
        ));
    }
    create_user(app, name, email, password).await
}
