//! Signing in (password, then the one-time password when the account has 2FA),
//! signing up and out, the profile page and the security log.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::page::{self, Layout, PageError, PageResult, fmt_time, safe_next};
use super::session::{self, Posted, Viewer, csrf_form, with_otp, writes_need_otp};
use crate::domain::security_log::SecurityEventKind;
use crate::domain::{self, security_log, sessions, users};
use crate::http::extract::AppState;
use crate::store::{ProfileUpdate, Stored};

/// Query of pages that may come back somewhere afterwards.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    pub next: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    username: String,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: SecretString,
    next: String,
}

#[derive(Template)]
#[template(path = "login_otp.html")]
struct OtpPage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OtpForm {
    csrf: String,
    otp: String,
    next: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    layout: Layout,
    username: String,
    email: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignupForm {
    csrf: String,
    username: String,
    email: String,
    password: SecretString,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfOnly {
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    csrf: String,
    fullname: String,
    email: String,
    otp: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    current: SecretString,
    new: SecretString,
    confirm: SecretString,
    otp: String,
}

csrf_form!(
    LoginForm,
    OtpForm,
    SignupForm,
    CsrfOnly,
    ProfileForm,
    PasswordForm
);

fn with_cookie(mut response: Response, value: axum::http::HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

/// `GET /login`.
pub async fn login_page(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref()).unwrap_or_else(|| "/".into());
    if viewer.caller().is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(page::ok(&LoginPage {
        layout: Layout::new(&app, &viewer, "Sign in"),
        username: String::new(),
        next,
        error: None,
    }))
}

/// `POST /login`: the password step.
pub async fn login_post(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<LoginForm>,
) -> PageResult {
    let next = safe_next(Some(&form.next)).unwrap_or_else(|| "/".into());
    let username = form.username.trim().to_owned();
    match sessions::sign_in(&app, &username, &form.password, viewer.ip).await {
        Ok(signed) => {
            if let Some(old) = &viewer.session {
                sessions::sign_out(&app, old).await?;
            }
            let to = if signed.needs_otp {
                let n: String = percent_encoding::utf8_percent_encode(
                    &next,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .collect();
                format!("/login/otp?next={n}")
            } else {
                next
            };
            Ok(with_cookie(
                Redirect::to(&to).into_response(),
                session::session_cookie(&app, signed.cookie.expose()),
            ))
        }
        Err(e) => {
            let (status, message) = page::describe(e);
            Ok(page::render(
                status,
                &LoginPage {
                    layout: Layout::new(&app, &viewer, "Sign in"),
                    username,
                    next,
                    error: Some(message),
                },
            ))
        }
    }
}

/// `GET /login/otp`: the second step.
pub async fn otp_page(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref()).unwrap_or_else(|| "/".into());
    match &viewer.session {
        Some(s) if s.pending_otp => Ok(page::ok(&OtpPage {
            layout: Layout::new(&app, &viewer, "One-time password"),
            next,
            error: None,
        })),
        Some(_) => Ok(Redirect::to(&next).into_response()),
        None => Ok(Redirect::to("/login").into_response()),
    }
}

/// `POST /login/otp`.
pub async fn otp_post(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<OtpForm>,
) -> PageResult {
    let next = safe_next(Some(&form.next)).unwrap_or_else(|| "/".into());
    let Some(session) = viewer.session.as_ref().filter(|s| s.pending_otp) else {
        return Ok(Redirect::to("/login").into_response());
    };
    match sessions::finish_otp(&app, session, &form.otp).await {
        Ok(cookie) => Ok(with_cookie(
            Redirect::to(&next).into_response(),
            session::session_cookie(&app, cookie.expose()),
        )),
        Err(domain::Error::Unauthenticated(_)) => Ok(with_cookie(
            Redirect::to("/login").into_response(),
            session::clear_session_cookie(&app),
        )),
        Err(e) => {
            let (status, message) = page::describe(e);
            Ok(page::render(
                status,
                &OtpPage {
                    layout: Layout::new(&app, &viewer, "One-time password"),
                    next,
                    error: Some(message),
                },
            ))
        }
    }
}

/// `GET /signup`.
pub async fn signup_page(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    if !app.config.open_signup {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Sign-up is closed on this registry; ask an administrator.",
        )
        .with_layout(Layout::new(&app, &viewer, "Sign up")));
    }
    Ok(page::ok(&SignupPage {
        layout: Layout::new(&app, &viewer, "Sign up"),
        username: String::new(),
        email: String::new(),
        error: None,
    }))
}

/// `POST /signup`: creates the account and signs in.
pub async fn signup_post(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<SignupForm>,
) -> PageResult {
    let username = form.username.trim().to_owned();
    let email = form.email.trim().to_owned();
    let result = async {
        users::sign_up(&app, &username, &email, &form.password).await?;
        sessions::sign_in(&app, &username, &form.password, viewer.ip).await
    }
    .await;
    match result {
        Ok(signed) => Ok(with_cookie(
            Redirect::to("/").into_response(),
            session::session_cookie(&app, signed.cookie.expose()),
        )),
        Err(e) => {
            let (status, message) = page::describe(e);
            Ok(page::render(
                status,
                &SignupPage {
                    layout: Layout::new(&app, &viewer, "Sign up"),
                    username,
                    email,
                    error: Some(message),
                },
            ))
        }
    }
}

/// `POST /logout`: deletes the session.
pub async fn logout(
    State(app): State<AppState>,
    Posted { viewer, .. }: Posted<CsrfOnly>,
) -> PageResult {
    if let Some(s) = &viewer.session {
        sessions::sign_out(&app, s).await?;
    }
    Ok(with_cookie(
        Redirect::to("/").into_response(),
        session::clear_session_cookie(&app),
    ))
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    name: String,
    fullname: String,
    email: String,
    created: String,
    needs_otp: bool,
    notice: Option<&'static str>,
    profile_error: Option<String>,
    password_error: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "saved" => "Your profile was saved.",
        "password" => "Your password was changed. Your other sessions were signed out.",
        "revoked" => "The token was revoked. Anything that used it can no longer sign in with it.",
        "2fa-disabled" => "Two-factor authentication is off.",
        "2fa-mode" => "The two-factor mode was changed.",
        "approved" => "The login was approved.",
        "settings" => "The package settings were saved.",
        "approved-version" => "The staged version was approved and published.",
        _ => return None,
    })
}

pub(super) fn notice(code: Option<&str>) -> Option<&'static str> {
    notice_text(code)
}

async fn profile_render(
    app: &AppState,
    viewer: &Viewer,
    notice: Option<&'static str>,
    profile_error: Option<String>,
    password_error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let caller = viewer.require("/settings/profile")?;
    let user = users::profile(app, caller).await?;
    Ok(page::render(
        status,
        &ProfilePage {
            layout: Layout::new(app, viewer, "Profile").section("profile"),
            name: user.name.clone(),
            fullname: user.fullname.clone().unwrap_or_default(),
            email: user.email.clone(),
            created: page::fmt_date(user.created_at),
            needs_otp: writes_need_otp(caller),
            notice,
            profile_error,
            password_error,
        },
    ))
}

/// `GET /settings/profile`.
pub async fn profile_page(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> PageResult {
    profile_render(
        &app,
        &viewer,
        notice_text(q.notice.as_deref()),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /settings/profile`: name and email.
pub async fn profile_post(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<ProfileForm>,
) -> PageResult {
    let (caller, session) = viewer.require_session("/settings/profile")?;
    let fullname = form.fullname.trim();
    let update = ProfileUpdate {
        email: Some(form.email.trim().to_owned()),
        fullname: Some((!fullname.is_empty()).then(|| fullname.to_owned())),
        ..Default::default()
    };
    match users::update_profile(
        &app,
        &with_otp(caller, &form.otp),
        update,
        None,
        Some(&session.id_hash),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to("/settings/profile?notice=saved").into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            profile_render(&app, &viewer, None, Some(message), None, status).await
        }
    }
}

/// `POST /settings/password`: revokes every other session of the user.
pub async fn password_post(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<PasswordForm>,
) -> PageResult {
    let (caller, session) = viewer.require_session("/settings/profile")?;
    if form.new.expose_secret() != form.confirm.expose_secret() {
        return profile_render(
            &app,
            &viewer,
            None,
            None,
            Some("The new password and its confirmation differ.".into()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let result = users::update_profile(
        &app,
        &with_otp(caller, &form.otp),
        ProfileUpdate::default(),
        Some((form.current, form.new)),
        Some(&session.id_hash),
    )
    .await;
    match result {
        Ok(_) => Ok(Redirect::to("/settings/profile?notice=password").into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            profile_render(&app, &viewer, None, None, Some(message), status).await
        }
    }
}

/// One row of the security log.
struct EventView {
    what: &'static str,
    detail: String,
    ip: String,
    at: String,
}

/// How the log names a kind; a kind this build cannot read is a generic event.
fn event_label(kind: &Stored<SecurityEventKind>) -> &'static str {
    use SecurityEventKind as K;
    let Some(kind) = kind.get() else {
        return "Account event";
    };
    match kind {
        K::TokenCreated => "Token created",
        K::TokenRevoked => "Token revoked",
        K::TokenRotated => "Token rotated",
        K::TokenExposed => "Token revoked: exposed",
        K::TokenNewAddress => "Token used from a new address",
        K::Login => "npm login",
        K::Logout => "npm logout",
        K::WebSignIn => "Website sign-in",
        K::PasswordFailures => "Wrong passwords",
        K::OtpFailures => "Wrong one-time passwords",
        K::LeakReports => "Leak reports",
        K::EmailChanged => "Email changed",
        K::RecoveryCodeUsed => "Recovery code used",
        K::TfaEnabled => "2FA enabled",
        K::TfaDisabled => "2FA disabled",
        K::TfaModeChanged => "2FA mode changed",
        K::PasswordChanged => "Password changed",
        K::TrustCreated => "Trusted publishing added",
        K::TrustRevoked => "Trusted publishing removed",
        K::TrustPolicy => "Trusted publishing policy",
        K::TrustedPublishing => "Trusted publishing token",
        K::TrustedPublish => "Published by trusted publishing",
        K::StageApproved => "Staged version approved",
        K::StageRejected => "Staged version rejected",
    }
}

#[derive(Template)]
#[template(path = "security_log.html")]
struct SecurityLogPage {
    layout: Layout,
    events: Vec<EventView>,
}

/// `GET /settings/security-log`.
pub async fn security_log(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    let caller = viewer.require("/settings/security-log")?;
    let events = security_log::list(&app, caller, 200)
        .await?
        .into_iter()
        .map(|e| EventView {
            what: event_label(&e.kind),
            detail: e.detail,
            ip: e.ip.unwrap_or_default(),
            at: fmt_time(e.created_at),
        })
        .collect();
    Ok(page::ok(&SecurityLogPage {
        layout: Layout::new(&app, &viewer, "Security Log").section("security-log"),
        events,
    }))
}
