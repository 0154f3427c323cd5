//! Access Tokens: the list (masked, newest first), "Generate New Token", the new
//! token shown once at the top of the list in the response to the form that created
//! it (it is stored nowhere, in no form), and revocation with a confirmation step.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use std::ops::Not;

use super::account_pages::{NextQuery, notice};
use super::page::{self, Layout, PageResult, fmt_time};
use super::session::{Posted, Viewer, csrf_form, tfa_on, with_otp, writes_need_otp};
use crate::crypto::token_format::masked;
use crate::domain::access::{Limits, TokenKind, TokenOrigin};
use crate::domain::tokens::{self, CreateRequest};
use crate::http::extract::AppState;

/// One token as the list shows it.
struct TokenView {
    key: String,
    name: String,
    kind: &'static str,
    masked: String,
    cidr: String,
    created: String,
    expires: String,
    last_used: String,
    last_used_ip: String,
    limits: String,
    /// "Replaced by tsr_AbCd… by rotation; stops working …" or "Successor of …".
    rotation: String,
}

/// A token the registry revoked, with why.
struct RevokedView {
    masked: String,
    name: String,
    revoked: String,
    reason: String,
}

struct NewToken {
    name: String,
    token: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenView>,
    total: i64,
    new_token: Option<NewToken>,
    revoke_needs_otp: bool,
    /// A rotation creates a token: a one-time password whenever 2FA is on.
    rotate_needs_otp: bool,
    notice: Option<&'static str>,
    revoked_by_registry: Vec<RevokedView>,
    overlap: String,
}

fn describe_limits(row: &crate::store::TokenRow) -> String {
    tokens::limits_of(row)
        .map(|l| limits_text(&l))
        .unwrap_or_default()
}

/// A granular token's limits in one line: `@acme/lib, @tools · read-write · orgs: acme`.
pub(super) fn limits_text(l: &Limits) -> String {
    let mut parts = Vec::new();
    if l.packages_all {
        parts.push("all packages".to_owned());
    } else if l.selects_packages() {
        let mut names: Vec<String> = l.packages.clone();
        names.extend(l.scopes.iter().map(|s| format!("@{s}")));
        parts.push(names.join(", "));
    } else {
        parts.push("no packages".to_owned());
    }
    if let Some(p) = l.permission {
        parts.push(p.as_str().to_owned());
    }
    if !l.orgs.is_empty() {
        parts.push(format!("orgs: {}", l.orgs.join(", ")));
    }
    parts.join(" · ")
}

fn rotation_text(row: &crate::store::TokenRow, others: &[crate::store::TokenRow]) -> String {
    let prefix_of = |id: i64| {
        others.iter().find(|o| o.id == id).map_or_else(
            || "an older token".to_owned(),
            |o| format!("{}…", o.display_prefix),
        )
    };
    match (row.replaced_by, row.rotated_from) {
        (Some(next), _) => format!(
            "Replaced by {} by rotation; stops working {}",
            prefix_of(next),
            row.expires_at.map(fmt_time).unwrap_or_default()
        ),
        (None, Some(prev)) => format!("Successor of {}", prefix_of(prev)),
        (None, None) => String::new(),
    }
}

fn view(row: &crate::store::TokenRow, others: &[crate::store::TokenRow]) -> TokenView {
    TokenView {
        rotation: rotation_text(row, others),
        key: row.key.clone(),
        name: row.name.clone().unwrap_or_default(),
        kind: tokens::display_kind(row),
        masked: masked(&row.display_prefix, &row.last_four),
        cidr: tokens::cidr_of(row)
            .map(|c| c.to_strings().join(", "))
            .unwrap_or_default(),
        created: fmt_time(row.created_at),
        expires: row
            .expires_at
            .map(fmt_time)
            .unwrap_or_else(|| "Never".into()),
        last_used: row.last_used_at.map(fmt_time).unwrap_or_default(),
        last_used_ip: row.last_used_ip.clone().unwrap_or_default(),
        limits: describe_limits(row),
    }
}

/// The list, with the token just created (if any) at the top.
async fn render_list(
    app: &AppState,
    viewer: &Viewer,
    notice_code: Option<&str>,
    new_token: Option<NewToken>,
    status: StatusCode,
) -> PageResult {
    let caller = viewer.require("/settings/tokens")?;
    let (rows, total) = tokens::list(app, caller, 0, 500).await?;
    let revoked = tokens::revoked_by_registry(app, caller).await?;
    Ok(page::render(
        status,
        &TokensPage {
            layout: Layout::new(app, viewer, "Access Tokens").section("tokens"),
            tokens: rows.iter().map(|r| view(r, &rows)).collect(),
            total,
            new_token,
            revoke_needs_otp: writes_need_otp(caller),
            rotate_needs_otp: tfa_on(caller),
            notice: notice(notice_code),
            revoked_by_registry: revoked
                .iter()
                .map(|r| RevokedView {
                    masked: masked(&r.display_prefix, &r.last_four),
                    name: r.name.clone().unwrap_or_default(),
                    revoked: r.revoked_at.map(fmt_time).unwrap_or_default(),
                    reason: r.revoked_reason.clone().unwrap_or_default(),
                })
                .collect(),
            overlap: humantime::format_duration(app.config.token_rotation_overlap).to_string(),
        },
    ))
}

/// `GET /settings/tokens`.
pub async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> PageResult {
    render_list(&app, &viewer, q.notice.as_deref(), None, StatusCode::OK).await
}

/// The "Generate New Token" form, as posted (and as re-shown after an error).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewTokenForm {
    csrf: String,
    name: String,
    kind: String,
    cidr: String,
    expires: String,
    custom_days: String,
    packages: String,
    permission: String,
    password: secrecy::SecretString,
    otp: String,
}

csrf_form!(NewTokenForm, RevokeForm, RotateForm);

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewTokenPage {
    layout: Layout,
    form: NewTokenForm,
    needs_otp: bool,
    error: Option<String>,
    /// The operator's cap on tokens that can write, in days.
    write_cap_days: Option<i64>,
}

/// What each type does on this registry, as the form explains it (the rules are in
/// `domain::access::decision`; keep the two in step).
pub const READ_ONLY_TEXT: &str = "Installs and views packages, private ones included, wherever your account may read them. It never writes: no publish, unpublish, deprecate or dist-tag change, no package settings, nothing on your account. A good fit for CI jobs and machines that only install.";
pub const AUTOMATION_TEXT: &str = "Installs and publishes (also unpublish, deprecate and dist-tags) without ever asking for a one-time password, even when your account has two-factor authentication; a package set to require 2FA and refuse tokens still refuses it. It cannot change package settings, your account or your tokens. Meant for release pipelines: narrow it to their packages and their runners' addresses below.";
pub const PUBLISH_TEXT: &str = "Acts as you: installs, publishes, changes package settings (visibility, maintainers, 2FA policy), and manages your account and tokens. When your account has two-factor authentication, its writes ask for a one-time password as your 2FA mode says. Keep it on your own machine.";

impl NewTokenPage {
    fn kinds(&self) -> [(&'static str, &'static str, &'static str); 3] {
        [
            (TokenKind::ReadOnly.as_str(), "Read-only", READ_ONLY_TEXT),
            (
                TokenKind::Automation.as_str(),
                "Automation",
                AUTOMATION_TEXT,
            ),
            (TokenKind::Publish.as_str(), "Publish", PUBLISH_TEXT),
        ]
    }

    fn expirations(&self) -> [(&'static str, &'static str); 5] {
        [
            ("never", "No expiration"),
            ("7", "7 days"),
            ("30", "30 days"),
            ("90", "90 days"),
            ("custom", "Custom…"),
        ]
    }
}

/// `GET /settings/tokens/new`.
pub async fn new_page(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    let caller = viewer.require("/settings/tokens/new")?;
    let form = NewTokenForm {
        kind: TokenKind::ReadOnly.as_str().into(),
        expires: "never".into(),
        ..Default::default()
    };
    Ok(page::ok(&NewTokenPage {
        layout: Layout::new(&app, &viewer, "Generate New Token").section("tokens"),
        form,
        needs_otp: tfa_on(caller),
        error: None,
        write_cap_days: tokens::write_cap_days(&app),
    }))
}

fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Turns the form into the domain's request; the domain validates everything.
fn request_of(form: &NewTokenForm) -> Result<CreateRequest, String> {
    let expires_days = match form.expires.as_str() {
        "" | "never" => None,
        "custom" => Some(form.custom_days.trim().parse::<i64>().map_err(|_| {
            "Enter the custom expiration as a whole number of days (1 to 3650).".to_owned()
        })?),
        days => Some(
            days.parse::<i64>()
                .map_err(|_| format!("Unknown expiration {days:?}."))?,
        ),
    };
    if matches!(expires_days, Some(d) if d < 1) {
        return Err("Enter the custom expiration as a whole number of days (1 to 3650).".into());
    }
    // The form's own names only (not npm's legacy `readonly`).
    if !TokenKind::ALL.iter().any(|k| k.as_str() == form.kind) {
        return Err("Select the type of access token.".into());
    }
    let mut packages = Vec::new();
    let mut scopes = Vec::new();
    for entry in split_list(&form.packages) {
        match entry.strip_prefix('@') {
            Some(scope) if !scope.contains('/') => scopes.push(scope.to_owned()),
            _ => packages.push(entry),
        }
    }
    let cidr = form.cidr.trim();
    Ok(CreateRequest {
        name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
        password: form.password.clone(),
        kind: Some(form.kind.clone()),
        packages_all: form.permission.is_empty().not() && packages.is_empty() && scopes.is_empty(),
        packages,
        scopes,
        permission: Some(form.permission.clone()).filter(|p| !p.is_empty()),
        expires_days,
        cidr: if cidr.is_empty() {
            Vec::new()
        } else {
            vec![cidr.to_owned()]
        },
        ..Default::default()
    })
}

/// `POST /settings/tokens/new`: creates the token through `domain::tokens::create`
/// and answers with the list, the new token shown once at its top.
pub async fn create(
    State(app): State<AppState>,
    Posted { viewer, mut form }: Posted<NewTokenForm>,
) -> PageResult {
    let caller = viewer.require("/settings/tokens/new")?;
    let result = match request_of(&form) {
        Ok(req) => tokens::create(&app, &with_otp(caller, &form.otp), req, TokenOrigin::Web)
            .await
            .map_err(page::describe),
        Err(message) => Err((StatusCode::BAD_REQUEST, message)),
    };
    match result {
        Ok(created) => {
            let new_token = NewToken {
                name: created.row.name.clone().unwrap_or_default(),
                token: created.plain.expose().to_owned(),
            };
            let mut response =
                render_list(&app, &viewer, None, Some(new_token), StatusCode::CREATED).await?;
            // Never cached, and the address bar shows the list, not the form.
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err((status, message)) => {
            // Keep what was typed, except the secrets.
            form.password = Default::default();
            form.otp.clear();
            Ok(page::render(
                status,
                &NewTokenPage {
                    layout: Layout::new(&app, &viewer, "Generate New Token").section("tokens"),
                    form,
                    needs_otp: tfa_on(caller),
                    error: Some(message),
                    write_cap_days: tokens::write_cap_days(&app),
                },
            ))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeForm {
    csrf: String,
    otp: String,
}

/// `POST /settings/tokens/<key>/revoke`: the confirmed revocation.
pub async fn revoke(
    State(app): State<AppState>,
    Path(key): Path<String>,
    Posted { viewer, form }: Posted<RevokeForm>,
) -> PageResult {
    let caller = viewer.require("/settings/tokens")?;
    tokens::revoke(&app, &with_otp(caller, &form.otp), &key)
        .await
        .map_err(|e| {
            super::PageError::from(e).with_layout(Layout::new(&app, &viewer, "Access Tokens"))
        })?;
    Ok(Redirect::to("/settings/tokens?notice=revoked").into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RotateForm {
    csrf: String,
    password: secrecy::SecretString,
    otp: String,
    overlap: String,
}

/// `POST /settings/tokens/<key>/rotate`: "Regenerate". Answers like a creation: the
/// list with the successor shown once at its top.
pub async fn rotate(
    State(app): State<AppState>,
    Path(key): Path<String>,
    Posted { viewer, form }: Posted<RotateForm>,
) -> PageResult {
    let caller = viewer.require("/settings/tokens")?;
    let overlap = match form.overlap.trim() {
        "" => Ok(None),
        text => crate::config::parse_overlap(text)
            .map(Some)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("Overlap: {e}"))),
    };
    let result = match overlap {
        Ok(overlap) => tokens::rotate(
            &app,
            &with_otp(caller, &form.otp),
            tokens::RotateRequest {
                key_or_token: key,
                password: form.password.clone(),
                overlap,
            },
        )
        .await
        .map_err(page::describe),
        Err(e) => Err(e),
    };
    match result {
        Ok(rotated) => {
            let new_token = NewToken {
                name: rotated.created.row.name.clone().unwrap_or_default(),
                token: rotated.created.plain.expose().to_owned(),
            };
            let mut response =
                render_list(&app, &viewer, None, Some(new_token), StatusCode::CREATED).await?;
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err((status, message)) => Err(super::PageError::new(status, message)
            .with_layout(Layout::new(&app, &viewer, "Access Tokens"))),
    }
}
