//! `/-/npm/v1/user`: the profile `npm profile get|set` reads and writes, and the
//! two-factor enrolment `npm profile enable-2fa|disable-2fa` drives.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::user_routes::no_store;
use crate::domain::access::TfaMode;
use crate::domain::two_factor::{self, TfaChange, TfaRequest};
use crate::domain::users;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, NpmJson, RequireAuth};
use crate::npm::packument::iso_time;
use crate::store::{ProfileUpdate, Stored, UserRow};

/// Wire view of a profile.
pub fn profile_view(user: &UserRow) -> Value {
    // An unreadable stored mode is shown as stored (it counts as the strictest).
    let mode = match &user.tfa_mode {
        Stored::Known(TfaMode::Off) => None,
        Stored::Known(mode) => Some(mode.as_str()),
        Stored::Unreadable(text) => Some(text.as_str()),
    };
    let tfa = match mode {
        Some(mode) => json!({"pending": user.tfa_pending != 0, "mode": mode}),
        None => Value::Bool(false),
    };
    json!({
        "name": user.name,
        "email": user.email,
        "email_verified": false,
        "tfa": tfa,
        "fullname": user.fullname,
        "homepage": user.homepage,
        "freenode": user.freenode,
        "twitter": user.twitter,
        "github": user.github,
        "created": iso_time(user.created_at),
        "updated": iso_time(user.updated_at),
    })
}

/// `GET /-/npm/v1/user`.
pub async fn get_profile(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
) -> ApiResult<Response> {
    let user = users::profile(&app, &caller).await?;
    Ok(no_store(StatusCode::OK, profile_view(&user)))
}

fn text_field(body: &Value, key: &str) -> Option<Option<String>> {
    match body.get(key) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.chars().take(512).collect())),
        Some(_) => Some(None),
    }
}

/// A password field of a JSON body, kept out of `Debug` from here on.
fn secret_field(value: Option<&Value>) -> SecretString {
    SecretString::from(value.and_then(Value::as_str).unwrap_or("").to_owned())
}

/// `POST /-/npm/v1/user`.
pub async fn post_profile(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    NpmJson(body): NpmJson<Value>,
) -> ApiResult<Response> {
    match body.get("tfa") {
        Some(Value::Object(tfa)) => {
            let mode = tfa
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("auth-and-writes");
            let request = TfaRequest::parse(mode)?;
            let password = secret_field(tfa.get("password"));
            let out = match two_factor::change(&app, &caller, request, &password).await? {
                TfaChange::Pending { otpauth_url, .. } => json!({"tfa": otpauth_url}),
                TfaChange::ModeChanged(mode) => {
                    json!({"tfa": {"mode": mode.as_str(), "pending": false}})
                }
                TfaChange::Disabled => json!({"tfa": false}),
            };
            return Ok(no_store(StatusCode::OK, out));
        }
        Some(Value::Array(codes)) => {
            let code = codes.first().and_then(Value::as_str).unwrap_or("");
            let recovery = two_factor::confirm(&app, &caller, code).await?;
            return Ok(no_store(StatusCode::OK, json!({"tfa": recovery})));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "tfa must be an object or an array of one code",
            ));
        }
        None => {}
    }
    let update = ProfileUpdate {
        email: match body.get("email") {
            Some(Value::String(s)) if !s.is_empty() && *s != caller.user.email => Some(s.clone()),
            _ => None,
        },
        fullname: text_field(&body, "fullname"),
        homepage: text_field(&body, "homepage"),
        twitter: text_field(&body, "twitter"),
        github: text_field(&body, "github"),
        freenode: text_field(&body, "freenode"),
    };
    let password = body
        .get("password")
        .map(|p| (secret_field(p.get("old")), secret_field(p.get("new"))));
    let user = users::update_profile(&app, &caller, update, password, None).await?;
    Ok(no_store(StatusCode::OK, profile_view(&user)))
}
