//! The website: server-rendered pages (askama templates, escaped by default) and
//! form posts. Every page calls the same `domain` functions as the npm API; this
//! module only parses forms, checks the session's CSRF token and the `Origin`, and
//! renders. Routes sit beside the npm registry's catch-all `/{*path}`, so a request
//! that is not from a browser (no `text/html` in `Accept`, or a PUT/DELETE) on a
//! website path is handed to the registry (`npm_passthrough`): a package may be
//! called `login` or `search`.

mod account_pages;
mod assets;
mod cli_login_pages;
mod identicon;
mod org_pages;
mod package_pages;
mod page;
mod publisher_pages;
mod session;
mod tfa_pages;
mod token_pages;
mod trust_pages;

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::extract::AppState;
use crate::http::npm::package_routes as npm_packages;

pub use page::{Layout, PageError};
pub use session::{Posted, Viewer};

/// Website routes.
pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(package_pages::home))
        .route("/search", get(package_pages::search))
        .route(
            "/package/{*rest}",
            get(package_pages::package_get).post(package_pages::package_post),
        )
        .route(
            "/login",
            get(account_pages::login_page).post(account_pages::login_post),
        )
        .route(
            "/login/otp",
            get(account_pages::otp_page).post(account_pages::otp_post),
        )
        .route(
            "/login/cli/{id}",
            get(cli_login_pages::page).post(cli_login_pages::approve),
        )
        .route(
            "/signup",
            get(account_pages::signup_page).post(account_pages::signup_post),
        )
        .route("/logout", post(account_pages::logout))
        .route(
            "/settings",
            get(|| async { Redirect::to("/settings/profile") }),
        )
        .route(
            "/settings/profile",
            get(account_pages::profile_page).post(account_pages::profile_post),
        )
        .route("/settings/password", post(account_pages::password_post))
        .route("/settings/security-log", get(account_pages::security_log))
        .route("/settings/tokens", get(token_pages::list))
        .route(
            "/settings/tokens/new",
            get(token_pages::new_page).post(token_pages::create),
        )
        .route("/settings/tokens/{key}/revoke", post(token_pages::revoke))
        .route("/settings/tokens/{key}/rotate", post(token_pages::rotate))
        .route("/orgs", get(org_pages::list).post(org_pages::create))
        .route("/org/{org}", get(org_pages::org_page))
        .route("/org/{org}/members", post(org_pages::set_member))
        .route("/org/{org}/members/remove", post(org_pages::remove_member))
        .route("/org/{org}/teams", post(org_pages::create_team))
        .route("/org/{org}/team/{team}", get(org_pages::team_page))
        .route(
            "/org/{org}/team/{team}/members",
            post(org_pages::add_team_member),
        )
        .route(
            "/org/{org}/team/{team}/members/remove",
            post(org_pages::remove_team_member),
        )
        .route("/org/{org}/team/{team}/packages", post(org_pages::grant))
        .route(
            "/org/{org}/team/{team}/packages/revoke",
            post(org_pages::revoke),
        )
        .route(
            "/org/{org}/team/{team}/delete",
            post(org_pages::delete_team),
        )
        .route("/settings/2fa", get(tfa_pages::page))
        .route("/settings/2fa/enable", post(tfa_pages::enable))
        .route("/settings/2fa/confirm", post(tfa_pages::confirm))
        .route("/settings/2fa/mode", post(tfa_pages::mode))
        .route("/settings/2fa/disable", post(tfa_pages::disable))
        .route("/static/{file}", get(assets::serve))
        .layer(middleware::from_fn_with_state(app, npm_passthrough))
}

/// Whether the client asked for HTML (browsers always do for navigations).
fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Sends non-browser requests on website paths to the npm registry handlers.
async fn npm_passthrough(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/static/") || path == "/" {
        return next.run(request).await;
    }
    let method = request.method().clone();
    if (method == Method::GET || method == Method::HEAD) && !wants_html(&request) {
        return npm_packages::get_package_path.call(request, app).await;
    }
    if method == Method::PUT {
        return npm_packages::put_package_path.call(request, app).await;
    }
    if method == Method::DELETE {
        return npm_packages::delete_package_path.call(request, app).await;
    }
    let mut request = request;
    let minted = (method == Method::GET && !session::has_pre_cookie(request.headers()))
        .then(|| crate::crypto::token_format::random_base62(32));
    if let Some(value) = &minted {
        request
            .extensions_mut()
            .insert(session::NewPreCsrf(value.clone()));
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.append(header::VARY, header::HeaderValue::from_static("accept"));
    if let Some(value) = minted {
        headers.append(header::SET_COOKIE, session::pre_cookie(&app, &value));
    }
    response.into_response()
}
