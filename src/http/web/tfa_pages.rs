//! Two-Factor Authentication: enrol (QR code rendered here as SVG, plus the secret
//! as text), confirm with a first code, recovery codes shown once, switch mode,
//! disable. Every step is `domain::two_factor`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use base64::Engine;
use serde::Deserialize;

use super::account_pages::{NextQuery, notice};
use super::page::{self, Layout, PageResult};
use super::session::{Posted, Viewer, csrf_form, with_otp};
use crate::domain::access::TfaMode;
use crate::domain::two_factor::{self, TfaChange, TfaRequest};
use crate::http::extract::AppState;

struct Pending {
    qr: String,
    secret: String,
    otpauth: String,
}

#[derive(Template)]
#[template(path = "tfa.html")]
struct TfaPage {
    layout: Layout,
    mode: &'static str,
    pending: Option<Pending>,
    recovery_codes: Vec<String>,
    codes_left: i64,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// The otpauth URL as a QR code (`data:` URI of an SVG).
fn qr_data_uri(url: &str) -> String {
    let svg = match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .dark_color(qrcode::render::svg::Color("#111"))
            .light_color(qrcode::render::svg::Color("#fff"))
            .build(),
        Err(_) => String::new(),
    };
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// Renders the page; `recovery_codes` are shown only in the response to the request
/// that created them (nothing keeps them).
async fn render(
    app: &AppState,
    viewer: &Viewer,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
    recovery_codes: Vec<String>,
) -> PageResult {
    let caller = viewer.require("/settings/2fa")?;
    let pending = two_factor::pending_enrolment(app, caller)
        .await?
        .map(|(url, secret)| Pending {
            qr: qr_data_uri(&url),
            secret,
            otpauth: url,
        });
    let codes_left = if caller.principal.tfa == TfaMode::Off {
        0
    } else {
        two_factor::recovery_codes_left(app, caller).await?
    };
    Ok(page::render(
        status,
        &TfaPage {
            layout: Layout::new(app, viewer, "Two-Factor Authentication").section("2fa"),
            mode: caller.principal.tfa.as_str(),
            pending,
            recovery_codes,
            codes_left,
            notice,
            error,
        },
    ))
}

/// `GET /settings/2fa`.
pub async fn page(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> PageResult {
    render(
        &app,
        &viewer,
        notice(q.notice.as_deref()),
        None,
        StatusCode::OK,
        Vec::new(),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeForm {
    csrf: String,
    mode: String,
    password: secrecy::SecretString,
    otp: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    csrf: String,
    code: String,
}

csrf_form!(ChangeForm, ConfirmForm);

async fn change(app: AppState, viewer: Viewer, form: ChangeForm, mode: &str) -> PageResult {
    let caller = viewer.require("/settings/2fa")?;
    let result = match TfaRequest::parse(mode) {
        Ok(request) => {
            two_factor::change(&app, &with_otp(caller, &form.otp), request, &form.password).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(TfaChange::Pending { .. }) => Ok(Redirect::to("/settings/2fa").into_response()),
        Ok(TfaChange::ModeChanged(_)) => {
            Ok(Redirect::to("/settings/2fa?notice=2fa-mode").into_response())
        }
        Ok(TfaChange::Disabled) => {
            Ok(Redirect::to("/settings/2fa?notice=2fa-disabled").into_response())
        }
        Err(e) => {
            let (status, message) = page::describe(e);
            render(&app, &viewer, None, Some(message), status, Vec::new()).await
        }
    }
}

/// `POST /settings/2fa/enable`: starts enrolment (pending until confirmed).
pub async fn enable(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<ChangeForm>,
) -> PageResult {
    let mode = form.mode.clone();
    change(app, viewer, form, &mode).await
}

/// `POST /settings/2fa/mode`: switches between auth-only and auth-and-writes.
pub async fn mode(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<ChangeForm>,
) -> PageResult {
    let mode = form.mode.clone();
    change(app, viewer, form, &mode).await
}

/// `POST /settings/2fa/disable` (also cancels a pending enrolment).
pub async fn disable(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<ChangeForm>,
) -> PageResult {
    change(app, viewer, form, "disable").await
}

/// `POST /settings/2fa/confirm`: the first code turns 2FA on; the recovery codes are
/// shown once, in this response.
pub async fn confirm(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<ConfirmForm>,
) -> PageResult {
    let caller = viewer.require("/settings/2fa")?;
    match two_factor::confirm(&app, caller, form.code.trim()).await {
        Ok(codes) => {
            // The viewer was loaded before 2FA was on: reload it so the page shows the
            // new mode.
            let viewer = reload(&app, &viewer).await?;
            render(&app, &viewer, None, None, StatusCode::OK, codes).await
        }
        Err(e) => {
            let (status, message) = page::describe(e);
            render(&app, &viewer, None, Some(message), status, Vec::new()).await
        }
    }
}

/// The viewer with its account read again (after a change to it).
async fn reload(app: &AppState, viewer: &Viewer) -> Result<Viewer, super::PageError> {
    let mut fresh = viewer.clone();
    if let Some(session) = fresh.session.as_mut() {
        session.caller = crate::domain::sessions::reload_caller(app, &session.caller).await?;
    }
    Ok(fresh)
}
