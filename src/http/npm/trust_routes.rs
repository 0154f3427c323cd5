//! Trusted publishing and staged releases, as npm 11.19.1 calls them: the OIDC
//! token exchange (`npm publish` in CI), `npm trust` (under `/-/package/<name>/trust`,
//! see `meta::package_endpoint`) and `npm stage`.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

use super::package_routes::{BodyError, answer_early, content_length, read_limited, too_large};
use super::user_routes::no_store;
use crate::domain::access::ActorType;
use crate::domain::{self, publish, staging, trust};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, Auth, ClientIp, RequireAuth};
use crate::npm::name::PackageName;
use crate::npm::packument::iso_time;
use crate::npm::publish_body::PutBody;
use crate::store::StagedRow;

/// A package name from the path after `prefix` (`@scope%2fname` or `@scope/name`).
fn name_after(uri: &Uri, prefix: &str) -> Result<PackageName, ApiError> {
    let rest = uri
        .path()
        .strip_prefix(prefix)
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let decoded = percent_encoding::percent_decode_str(rest).decode_utf8_lossy();
    PackageName::parse(&decoded).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Errors of the exchange also carry `message`, the field npm logs when it falls
/// back to the configured credentials.
fn exchange_error(e: domain::Error) -> Response {
    let api = ApiError::from(e);
    let mut response = (
        api.status,
        axum::Json(json!({"error": api.message, "message": api.message})),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `POST /-/npm/v1/oidc/token/exchange/package/<name>` with the CI id token as the
/// bearer token: `201 {token_type, token, created, expires}`. The bearer is not a
/// Tessera credential, so this endpoint reads it itself instead of through `Auth`.
pub async fn exchange(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let name = match name_after(&uri, "/-/npm/v1/oidc/token/exchange/package/") {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let id_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .unwrap_or_default();
    match trust::exchange::exchange(&app, &id_token, &name, ip).await {
        Ok(minted) => no_store(
            StatusCode::CREATED,
            json!({
                "token_type": "oidc",
                "token": minted.created.plain.expose(),
                "created": iso_time(minted.created.row.created_at),
                "expires": iso_time(minted.expires_at),
            }),
        ),
        Err(e) => exchange_error(e),
    }
}

/// `npm trust list|github|gitlab|circleci|revoke` (under `/-/package/<name>/`).
pub async fn trust_endpoint(
    app: &AppState,
    caller: &domain::Caller,
    method: &str,
    name: &PackageName,
    rest: &[&str],
    body: &[u8],
) -> ApiResult<Response> {
    match (method, rest) {
        ("GET", []) => {
            let configs = trust::list(app, caller, name).await?;
            Ok(no_store(
                StatusCode::OK,
                Value::Array(configs.iter().map(trust::TrustConfig::to_json).collect()),
            ))
        }
        ("POST", []) => {
            let body: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
            let created = trust::create(app, caller, name, &body).await?;
            Ok(no_store(
                StatusCode::CREATED,
                Value::Array(created.iter().map(trust::TrustConfig::to_json).collect()),
            ))
        }
        ("DELETE", [id]) => {
            trust::revoke(app, caller, name, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::not_found("no such endpoint")),
    }
}

/// A staged version as `npm stage list|view` reads it.
fn stage_item(row: &StagedRow) -> Value {
    json!({
        "id": row.id,
        "packageName": row.package_name,
        "version": row.version,
        "tag": row.tag,
        "createdAt": iso_time(row.created_at),
        "actor": row.actor,
        "actorType": row.actor_type.get().map_or("unreadable", ActorType::as_str),
        "shasum": row.shasum,
        "integrity": row.integrity,
    })
}

/// `POST /-/stage/package/<name>` (`npm stage publish`): the publish body, read
/// under the same rules as a publish (`packages::put_document`).
pub async fn stage_publish(
    State(app): State<AppState>,
    Auth(caller): Auth,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let max = app.config.max_body_bytes;
    let name = name_after(&parts.uri, "/-/stage/package/")?;
    let Some(caller) = caller else {
        return Err(answer_early(
            &parts.headers,
            body,
            max,
            domain::Error::Unauthenticated("You must be logged in to stage packages.".into())
                .into(),
        ));
    };
    let refusal = publish::stage_preflight(&app, &caller, &name).await?;
    let announced = content_length(&parts.headers);
    if let Some(refusal) = refusal {
        return Err(answer_early(&parts.headers, body, max, refusal.into()));
    }
    if announced.is_some_and(|n| n > max as u64) {
        return Err(answer_early(&parts.headers, body, max, too_large()));
    }
    let _slot = app
        .publish_slots
        .acquire()
        .await
        .map_err(|e| domain::Error::Internal(e.into()))?;
    let bytes = match read_limited(body, max, announced).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Read(e)) => {
            return Err(ApiError::bad_request(format!(
                "could not read request body: {e}"
            )));
        }
    };
    match publish::parse_body(bytes, &caller).await? {
        (buf, PutBody::Publish(body)) => {
            let staged = publish::stage(&app, &caller, &name, buf, body).await?;
            Ok(no_store(
                StatusCode::CREATED,
                json!({
                    "message": format!("{}@{} staged; a maintainer approves it with `npm stage approve {}`", staged.name, staged.version, staged.id),
                    "stageId": staged.id,
                }),
            ))
        }
        _ => Err(ApiError::bad_request(
            "a stage publish carries a publish body with _attachments",
        )),
    }
}

/// `GET /-/stage?page=&perPage=&package=` (`npm stage list`).
pub async fn stage_list(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let package = query
        .get("package")
        .map(|p| PackageName::parse(p).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()?;
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per_page: usize = query
        .get("perPage")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let rows = staging::list(&app, &caller, package.as_ref()).await?;
    let total = rows.len();
    let items: Vec<Value> = rows
        .iter()
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .map(stage_item)
        .collect();
    Ok(no_store(
        StatusCode::OK,
        json!({"items": items, "total": total, "page": page, "perPage": per_page}),
    ))
}

/// `GET /-/stage/<id>` (`npm stage view`).
pub async fn stage_view(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let row = staging::view(&app, &caller, &id).await?;
    Ok(no_store(StatusCode::OK, stage_item(&row)))
}

/// `DELETE /-/stage/<id>` (`npm stage reject`).
pub async fn stage_reject(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    staging::reject(&app, &caller, &id).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `POST /-/stage/<id>/approve` (`npm stage approve`).
pub async fn stage_approve(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let row = staging::approve(&app, &caller, &id).await?;
    Ok(no_store(
        StatusCode::OK,
        json!({"ok": true, "id": row.id, "packageName": row.package_name, "version": row.version}),
    ))
}

/// `GET /-/stage/<id>/tarball` (`npm stage download`).
pub async fn stage_tarball(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let (_, bytes) = staging::tarball(&app, &caller, &id).await?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
