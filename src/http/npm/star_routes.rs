//! Stars: who starred what, read by `npm stars` (CouchDB's `starredByUser` view) and
//! `pnpm stars`, and written by `pnpm star`/`unstar` through `/-/user/v1/star` (npm,
//! and pnpm when that route is missing, send the package document instead; see
//! `packages`). Listings show only packages the caller may read.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::user_routes::no_store;
use crate::domain::packages;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, Auth, NpmJson, RequireAuth};
use crate::npm::name::PackageName;

#[derive(Deserialize)]
pub struct ViewQuery {
    key: Option<String>,
}

/// `GET /-/_view/starredByUser?key="<user>"`: `{"rows": [{"key", "value": <package>}]}`.
pub async fn starred_by_user_view(
    State(app): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<ViewQuery>,
) -> ApiResult<Response> {
    // The key is a JSON string (`"alice"`), as CouchDB views take it.
    let user = q
        .key
        .as_deref()
        .and_then(|k| serde_json::from_str::<String>(k).ok())
        .ok_or_else(|| ApiError::bad_request("key must be a user name in JSON quotes"))?;
    let starred = packages::starred_by(&app, caller.as_ref(), &user).await?;
    let rows: Vec<Value> = starred
        .into_iter()
        .map(|name| json!({"key": user, "value": name}))
        .collect();
    Ok(no_store(StatusCode::OK, json!({ "rows": rows })))
}

/// `GET /-/user/<user>/stars`: the names, as a list.
pub async fn user_stars(
    State(app): State<AppState>,
    Auth(caller): Auth,
    Path(user): Path<String>,
) -> ApiResult<Response> {
    let starred = packages::starred_by(&app, caller.as_ref(), &user).await?;
    Ok(no_store(StatusCode::OK, json!(starred)))
}

/// `GET /-/user/v1/star`: the caller's own stars, as a list.
pub async fn own_stars(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
) -> ApiResult<Response> {
    let starred = packages::starred_by(&app, Some(&caller), &caller.user.name).await?;
    Ok(no_store(StatusCode::OK, json!(starred)))
}

/// The body pnpm sends: `{"name": "<package>", "package": "<package>"}`.
#[derive(Deserialize)]
pub struct StarBody {
    name: Option<String>,
    package: Option<String>,
}

fn starred_package(body: StarBody) -> Result<PackageName, ApiError> {
    let text = body.package.or(body.name).ok_or_else(|| {
        ApiError::bad_request("the body must name the package: {\"package\": \"name\"}")
    })?;
    PackageName::parse(&text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `PUT /-/user/v1/star`: stars a package for the caller.
pub async fn star(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    NpmJson(body): NpmJson<StarBody>,
) -> ApiResult<Response> {
    let name = starred_package(body)?;
    packages::star(&app, &caller, &name, true).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `DELETE /-/user/v1/star`: unstars it.
pub async fn unstar(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    NpmJson(body): NpmJson<StarBody>,
) -> ApiResult<Response> {
    let name = starred_package(body)?;
    packages::star(&app, &caller, &name, false).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}
