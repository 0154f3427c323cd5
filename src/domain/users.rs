//! Accounts: sign-up, password login (the CouchDB-style endpoint), profiles and the
//! user documents npm reads.
//!
//! What a stranger can learn about accounts: a login with an unknown name and a wrong
//! password answer alike (401, same message, same Argon2 effort); a user document
//! needs a signed-in caller, and only its owner sees the email. Sign-up necessarily
//! says when a name is taken.

use secrecy::{ExposeSecret, SecretString};

use super::access::{self, TfaMode, act};
use super::credentials::{self, OtpOk};
use super::tokens::{self, Created};
use super::{Caller, Error, Result, security_log};
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::store::{ProfileUpdate, SecurityEventKind, UserRow};

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
        Err(Error::Invalid(format!(
            "invalid email address {:?}",
            email.chars().take(260).collect::<String>()
        )))
    }
}

fn validate_password(password: &SecretString) -> Result<()> {
    let text = password.expose_secret();
    if text.chars().count() < 8 {
        return Err(Error::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    if text.len() > 1024 {
        return Err(Error::Invalid("password is too long".into()));
    }
    Ok(())
}

/// Creates an account (used by sign-up and the operator command).
pub async fn create_user(
    app: &App,
    name: &str,
    email: &str,
    password: &SecretString,
) -> Result<UserRow> {
    validate_username(name)?;
    validate_email(email)?;
    validate_password(password)?;
    let hash = credentials::hash_new_password(app, password).await?;
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
    pub password: &'a SecretString,
    /// Present for `npm adduser`.
    pub email: Option<&'a str>,
    pub otp: Option<&'a str>,
    pub ip: ClientAddr,
    pub client: &'a str,
}

/// Logs in (or signs up) and issues a login token.
pub async fn password_login(app: &App, req: LoginRequest<'_>) -> Result<Created> {
    const WRONG: &str = "Incorrect username or password.";
    let existing = app.store.user_by_name(req.name).await?;
    let (user, password_ok) = match existing {
        Some(user) => {
            let ok =
                credentials::check_password(app, Some(&user), req.password, req.ip, WRONG).await?;
            (user, ok)
        }
        None => match req.email {
            // `npm adduser` of a new name creates the account.
            Some(email) if app.config.open_signup => {
                let user = create_user(app, req.name, email, req.password).await?;
                let ok = credentials::password_just_set(&user);
                (user, ok)
            }
            Some(_) => {
                return Err(Error::Forbidden(
                    "Sign-up is closed on this registry; ask an administrator.".into(),
                ));
            }
            // A login with an unknown name looks exactly like a wrong password.
            None => {
                credentials::check_password(app, None, req.password, req.ip, WRONG).await?;
                return Err(Error::BadPassword(WRONG.into()));
            }
        },
    };
    let otp = login_otp(app, &user, req.otp, req.ip).await?;
    let grant = access::login_grant(&user, password_ok, otp)?;
    tokens::issue_login_token(app, &grant, &user, req.client, &req.ip.to_string()).await
}

/// The one-time password a login needs when the account has 2FA (`None` otherwise).
pub async fn login_otp(
    app: &App,
    user: &UserRow,
    otp: Option<&str>,
    ip: ClientAddr,
) -> Result<Option<OtpOk>> {
    if user.tfa_mode() == TfaMode::Off {
        return Ok(None);
    }
    match otp.map(str::trim).filter(|s| !s.is_empty()) {
        None => Err(Error::OtpRequired(
            "This account has two-factor authentication: you must provide a one-time pass.".into(),
        )),
        Some(code) => credentials::check_otp(app, user, code, ip).await.map(Some),
    }
}

/// Reads the caller's profile.
pub async fn profile(app: &App, caller: &Caller) -> Result<UserRow> {
    access::authorize_account::<act::ReadProfile>(app, caller).await?;
    Ok(UserRow::clone(&caller.user))
}

/// A user document (`GET /-/user/org.couchdb.user:<name>`): the account's name for
/// any signed-in caller, the email only for its owner.
pub async fn user_document(
    app: &App,
    caller: Option<&Caller>,
    name: &str,
) -> Result<(String, Option<String>)> {
    let Some(caller) = caller else {
        return Err(Error::Unauthenticated("log in to look up users".into()));
    };
    if caller.user.name == name {
        let own = access::preflight(app, Some(caller), access::Action::ReadProfile, None);
        let email = (own == access::Decision::Allow).then(|| caller.user.email.clone());
        return Ok((caller.user.name.clone(), email));
    }
    match app.store.user_by_name(name).await? {
        Some(user) => Ok((user.name, None)),
        None => Err(Error::NotFound(format!("user {name} not found"))),
    }
}

/// Updates profile fields and, when given, the password (`old` must match).
pub async fn update_profile(
    app: &App,
    caller: &Caller,
    update: ProfileUpdate,
    password: Option<(SecretString, SecretString)>,
    keep_session: Option<&[u8]>,
) -> Result<UserRow> {
    let grant = access::authorize_account::<act::ChangeProfile>(app, caller).await?;
    if let Some(email) = &update.email {
        validate_email(email)?;
    }
    let now = app.now();
    if let Some((old, new)) = password {
        credentials::check_password(
            app,
            Some(&caller.user),
            &old,
            caller.ip,
            "Current password is incorrect.",
        )
        .await?;
        validate_password(&new)?;
        let hash = credentials::hash_new_password(app, &new).await?;
        app.store.set_password_hash(&grant, &hash, now).await?;
        app.store
            .delete_other_sessions(&grant, keep_session)
            .await?;
        security_log::record(
            app,
            caller.user.id,
            SecurityEventKind::PasswordChanged,
            "password changed; other sessions signed out",
            Some(&caller.ip_text()),
        )
        .await;
    }
    if let Some(email) = &update.email
        && *email != caller.user.email
    {
        security_log::record(
            app,
            caller.user.id,
            SecurityEventKind::EmailChanged,
            "email address changed",
            Some(&caller.ip_text()),
        )
        .await;
    }
    app.store.update_profile(&grant, &update, now).await?;
    app.store
        .user_by_id(caller.user.id)
        .await?
        .ok_or_else(|| Error::NotFound("this account no longer exists".into()))
}

/// Website sign-up: creates an account when sign-up is open.
pub async fn sign_up(
    app: &App,
    name: &str,
    email: &str,
    password: &SecretString,
) -> Result<UserRow> {
    if !app.config.open_signup {
        return Err(Error::Forbidden(
            "Sign-up is closed on this registry; ask an administrator.".into(),
        ));
    }
    create_user(app, name, email, password).await
}
