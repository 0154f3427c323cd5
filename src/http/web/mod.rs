//! The website: server-rendered pages (askama templates, escaped by default) and
//! form posts. Every page calls the same `domain` functions as the npm API; this
//! module only parses forms, checks the session's CSRF token and the `Origin`, and
//! renders. Routes sit beside the npm registry's catch-all `/{*path}`, so a request
//! that is not from a browser (no `text/html` in `Accept`, or a PUT/DELETE) on a
//! website path is handed to the registry (`npm_passthrough`): a package may be
//! called `login` or `search`.

mod account;
mod assets;
mod cli_login;
mod identicon;
mod orgs;
mod packages;
mod page;
mod publishers;
mod session;
mod tfa;
mod tokens;
mod trust;

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::extract::AppState;
use crate::http::npm::packages as npm_packages;

pub use page::{Layout, PageError};
pub use session::{Posted, Viewer};

/// Website routes.
pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(packages::home))
        .route("/search", get(packages::search))
        .route(
            "/package/{*rest}",
            get(packages::package_get).post(packages::package_post),
        )
        .route("/login", get(account::login_page).post(account::login_post))
        .route("/login/otp", get(account::otp_page).post(account::otp_post))
        .route(
            "/login/cli/{id}",
            get(cli_login::page).post(cli_login::approve),
        )
        .route(
            "/signup",
            get(account::signup_page).post(account::signup_post),
        )
        .route("/logout", post(account::logout))
        .route(
            "/settings",
            get(|| async { Redirect::to("/settings/profile") }),
        )
        .route(
            "/settings/profile",
            get(account::profile_page).post(account::profile_post),
        )
        .route("/settings/password", post(account::password_post))
        .route("/settings/security-log", get(account::security_log))
        .route("/settings/tokens", get(tokens::list))
        .route(
            "/settings/tokens/new",
            get(tokens::new_page).post(tokens::create),
        )
        .route("/settings/tokens/{key}/revoke", post(tokens::revoke))
        .route("/settings/tokens/{key}/rotate", post(tokens::rotate))
        .route("/orgs", get(orgs::list).post(orgs::create))
        .route("/org/{org}", get(orgs::org_page))
        .route("/org/{org}/members", post(orgs::set_member))
        .route("/org/{org}/members/remove", post(orgs::remove_member))
        .route("/org/{org}/teams", post(orgs::create_team))
        .route("/org/{org}/team/{team}", get(orgs::team_page))
        .route(
            "/org/{org}/team/{team}/members",
            post(orgs::add_team_member),
        )
        .route(
            "/org/{org}/team/{team}/members/remove",
            post(orgs::remove_team_member),
        )
        .route("/org/{org}/team/{team}/packages", post(orgs::grant))
        .route("/org/{org}/team/{team}/packages/revoke", post(orgs::revoke))
        .route("/org/{org}/team/{team}/delete", post(orgs::delete_team))
        .route("/settings/2fa", get(tfa::page))
        .route("/settings/2fa/enable", post(tfa::enable))
        .route("/settings/2fa/confirm", post(tfa::confirm))
        .route("/settings/2fa/mode", post(tfa::mode))
        .route("/settings/2fa/disable", post(tfa::disable))
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
        .then(|| crate::auth::token::random_base62(32));
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
