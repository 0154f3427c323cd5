//! `npm login` through the browser: the CLI prints `<public_url>/login/cli/<id>`;
//! this page asks the signed-in user (sending them to sign in first) to approve,
//! and `domain::web_login::approve` lets the CLI's poll of `doneUrl` succeed.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::page::{self, Layout, PageError, PageResult};
use super::session::{Posted, Viewer, csrf_form, tfa_on, with_otp};
use crate::domain::web_login;
use crate::http::extract::AppState;

#[derive(Template)]
#[template(path = "cli_login.html")]
struct CliLoginPage {
    layout: Layout,
    id: String,
    client: String,
    approved: bool,
    needs_otp: bool,
    error: Option<String>,
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn gone(app: &AppState, viewer: &Viewer) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "This login request expired, was already used, or does not exist. Run npm login again.",
    )
    .with_layout(Layout::new(app, viewer, "Log in to npm"))
}

/// `GET /login/cli/<id>`.
pub async fn page(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    if !valid_id(&id) {
        return Err(gone(&app, &viewer));
    }
    let caller = viewer.require(&format!("/login/cli/{id}"))?;
    let client = web_login::pending(&app, &id)
        .await?
        .ok_or_else(|| gone(&app, &viewer))?;
    Ok(page::ok(&CliLoginPage {
        layout: Layout::new(&app, &viewer, "Log in to npm"),
        id,
        client,
        approved: false,
        needs_otp: tfa_on(caller),
        error: None,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ApproveForm {
    csrf: String,
    otp: String,
}

csrf_form!(ApproveForm);

/// `POST /login/cli/<id>`: approves the login.
pub async fn approve(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { viewer, form }: Posted<ApproveForm>,
) -> PageResult {
    if !valid_id(&id) {
        return Err(gone(&app, &viewer));
    }
    let caller = viewer.require(&format!("/login/cli/{id}"))?;
    let client = web_login::pending(&app, &id)
        .await?
        .ok_or_else(|| gone(&app, &viewer))?;
    if let Err(e) = web_login::approve(&app, &with_otp(caller, &form.otp), &id).await {
        let (status, message) = page::describe(e);
        return Ok(page::render(
            status,
            &CliLoginPage {
                layout: Layout::new(&app, &viewer, "Log in to npm"),
                id,
                client,
                approved: false,
                needs_otp: tfa_on(caller),
                error: Some(message),
            },
        ));
    }
    Ok(page::ok(&CliLoginPage {
        layout: Layout::new(&app, &viewer, "Logged in"),
        id,
        client,
        approved: true,
        needs_otp: false,
        error: None,
    }))
}
