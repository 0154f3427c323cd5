//! Accounts on the npm wire: CouchDB-style login/adduser (with the 409 dance's
//! GET and `-rev` PUT), whoami, logout and the browser login for `npm login`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{tokens, users, web_login};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{
    AppState, Auth, ClientIp, LenientAuth, NpmJson, Otp, RequireAuth, UserAgent,
};

/// Adds `cache-control: no-store` to an account or token response.
pub fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn user_from_id(id: &str) -> Result<&str, ApiError> {
    id.strip_prefix("org.couchdb.user:")
        .ok_or_else(|| ApiError::not_found("no such user document"))
}

/// The CouchDB login/adduser body.
#[derive(Deserialize)]
pub struct CouchBody {
    name: Option<String>,
    password: Option<secrecy::SecretString>,
    email: Option<String>,
}

/// `PUT /-/user/org.couchdb.user:<name>` and its `/-rev/<rev>` form.
pub async fn put_user(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Otp(otp): Otp,
    UserAgent(agent): UserAgent,
    Path(params): Path<Vec<(String, String)>>,
    NpmJson(body): NpmJson<CouchBody>,
) -> ApiResult<Response> {
    let id = params.first().map(|(_, v)| v.as_str()).unwrap_or("");
    let url_name = user_from_id(id)?;
    let name = body.name.as_deref().unwrap_or(url_name);
    if name != url_name {
        return Err(ApiError::bad_request(
            "the name in the body does not match the URL",
        ));
    }
    let password = body
        .password
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("password is required"))?;
    let created = users::password_login(
        &app,
        users::LoginRequest {
            name,
            password,
            email: body.email.as_deref(),
            otp: otp.as_deref(),
            ip,
            client: &agent,
        },
    )
    .await?;
    Ok(no_store(
        StatusCode::CREATED,
        json!({"ok": true, "id": format!("org.couchdb.user:{name}"), "rev": "1-0", "token": created.plain.expose()}),
    ))
}

/// `GET /-/user/org.couchdb.user:<name>`: a user document for a signed-in caller;
/// the email only for its owner (npm's `owner add` reads the name from it).
pub async fn get_user(
    State(app): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let name = user_from_id(&id)?;
    let (name, email) = users::user_document(&app, caller.as_ref(), name).await?;
    let mut doc = json!({"_id": id, "_rev": "1-0", "name": name, "type": "user", "roles": []});
    if let Some(email) = email {
        doc["email"] = json!(email);
    }
    Ok(no_store(StatusCode::OK, doc))
}

/// `GET /-/whoami`.
pub async fn whoami(RequireAuth(caller): RequireAuth) -> Response {
    no_store(StatusCode::OK, json!({"username": caller.user.name}))
}

/// `DELETE /-/user/token/<token>`: `npm logout`.
pub async fn logout(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    tokens::logout(&app, &caller, &token).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `POST /-/v1/login`: starts a browser login.
pub async fn start_web_login(
    State(app): State<AppState>,
    LenientAuth(_): LenientAuth,
    UserAgent(agent): UserAgent,
) -> ApiResult<Response> {
    let started = web_login::start(&app, agent.split_whitespace().next().unwrap_or("npm")).await?;
    Ok(no_store(
        StatusCode::OK,
        json!({"loginUrl": started.login_url, "doneUrl": started.done_url}),
    ))
}

/// `GET /-/v1/done/<id>`: 202 until approved, then the token once.
pub async fn poll_web_login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(done): Path<String>,
) -> ApiResult<Response> {
    match web_login::poll(&app, &done, &ip.to_string()).await? {
        web_login::Poll::Waiting => {
            let mut r = no_store(StatusCode::ACCEPTED, json!({}));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(r)
        }
        web_login::Poll::Done(created) => Ok(no_store(
            StatusCode::OK,
            json!({"token": created.plain.expose()}),
        )),
    }
}
