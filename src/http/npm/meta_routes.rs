//! `/-/package/<name>/…` (dist-tags, access, visibility, collaborators, owners), search,
//! ping, audit, and the operational endpoints (health, readiness, metrics).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

use super::user_routes::no_store;
use crate::domain::access::PackagePermission;
use crate::domain::packages::{self, AccessChange, MfaPolicy};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, Auth, RequireAuth};
use crate::npm::name::PackageName;
use crate::npm::packument::iso_time;

/// `GET /-/npm/v1/keys`: the public keys `dist.signatures` are checked against
/// (`npm audit signatures` falls back to this when Sigstore's TUF repository has no
/// keys for the registry). Retired keys stay, with their expiry.
pub async fn signing_keys(State(app): State<AppState>) -> ApiResult<Response> {
    let keys = crate::domain::signing::public_keys(&app).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({
                "expires": k.expires_at.map(iso_time),
                "keyid": k.keyid,
                "keytype": crate::crypto::registry_key::KEY_TYPE,
                "scheme": crate::crypto::registry_key::KEY_TYPE,
                "key": k.key,
            })
        })
        .collect();
    let mut response = axum::Json(json!({ "keys": keys })).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

/// `GET /-/ping`.
pub async fn ping() -> Response {
    no_store(StatusCode::OK, json!({}))
}

/// `GET /-/health`: the process answers.
pub async fn health() -> Response {
    no_store(StatusCode::OK, json!({"status": "ok"}))
}

/// `GET /-/ready`: the database and the blob store answer, and neither is out of
/// space (`"storage": "full"` with the message writes answer, then 503).
pub async fn ready(State(app): State<AppState>) -> Response {
    let crate::domain::Readiness {
        database: db,
        blobs,
        full,
    } = crate::domain::readiness(&app).await;
    let status = if db && blobs && !full {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "database": db,
        "blob_store": blobs,
        "storage": if full { "full" } else { "ok" },
    });
    if full {
        body["error"] = json!(crate::http::error::STORAGE_FULL);
    }
    no_store(status, body)
}

/// `GET /-/metrics`.
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        app.metrics.render(),
    )
        .into_response()
}

/// `POST /-/npm/v1/security/advisories/bulk`: forwarded, for the proxied packages
/// in it, to the uplinks that serve them. Without an uplink (or when none has an
/// audit service) the answer is 404, which npm reports as "audit unavailable"
/// rather than as "0 vulnerabilities". The body arrives decompressed (the request
/// decompression layer) and is compressed again for each uplink.
pub async fn audit(
    State(app): State<AppState>,
    Auth(caller): Auth,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    use crate::domain::proxy::{self, AuditAnswer};
    let unavailable = || {
        no_store(
            StatusCode::NOT_FOUND,
            json!({"error": "this registry has no audit service for these packages"}),
        )
    };
    if app.config.uplinks.is_empty() {
        return Ok(unavailable());
    }
    let request: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("audit body must be a JSON object: {e}")))?;
    Ok(match proxy::audit(&app, caller.as_ref(), &request).await? {
        AuditAnswer::Unavailable => unavailable(),
        AuditAnswer::Advisories(m) => no_store(StatusCode::OK, Value::Object(m)),
    })
}

/// `POST /-/npm/v1/security/audits/quick` (npm 10 and older): no longer used by
/// npm 11; answered 404 so older clients report audit as unavailable.
pub async fn audit_quick() -> Response {
    no_store(
        StatusCode::NOT_FOUND,
        json!({"error": "this registry has no audit service; use npm 11 or later"}),
    )
}

/// Splits `/-/package/<name>/<rest…>` into a package name and the rest.
fn split_package(uri: &Uri) -> Result<(PackageName, Vec<String>), ApiError> {
    let path = uri
        .path()
        .strip_prefix("/-/package/")
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (name, rest) =
        if segments[0].starts_with('@') && !segments[0].contains('/') && segments.len() > 1 {
            (
                format!("{}/{}", segments[0], segments[1]),
                segments[2..].to_vec(),
            )
        } else {
            (segments[0].clone(), segments[1..].to_vec())
        };
    let name = PackageName::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((name, rest))
}

/// Whether the client is pnpm 12 or later, whose `access list collaborators` reads a
/// list of `{user, email, permissions}` where npm (and pnpm up to 11) read an object
/// of `user: read|write`. Both send the same path, so only the user agent tells.
fn wants_collaborator_list(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.strip_prefix("pnpm/"))
        .and_then(|rest| rest.split('.').next())
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 12)
}

/// Every `/-/package/<name>/…` endpoint.
pub async fn package_endpoint(
    State(app): State<AppState>,
    Auth(caller): Auth,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let (name, rest) = split_package(&uri)?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let json_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
    };
    let need = |c: &Option<crate::domain::Caller>| -> Result<crate::domain::Caller, ApiError> {
        c.clone().ok_or_else(|| {
            crate::domain::Error::Unauthenticated("authentication required".into()).into()
        })
    };
    match (method.as_str(), rest.as_slice()) {
        ("GET", ["dist-tags"]) => {
            let tags = packages::dist_tags(&app, caller.as_ref(), &name).await?;
            let map: Map<String, Value> = tags
                .into_iter()
                .map(|(t, v)| (t, Value::String(v)))
                .collect();
            Ok(no_store(StatusCode::OK, Value::Object(map)))
        }
        ("PUT" | "POST", ["dist-tags", tag]) => {
            let version = match json_body()? {
                Value::String(v) => v,
                _ => {
                    return Err(ApiError::bad_request(
                        "the body must be a JSON string holding a version",
                    ));
                }
            };
            packages::set_dist_tag(&app, &need(&caller)?, &name, tag, &version).await?;
            Ok(no_store(StatusCode::OK, json!({"ok": true})))
        }
        ("DELETE", ["dist-tags", tag]) => {
            packages::remove_dist_tag(&app, &need(&caller)?, &name, tag).await?;
            Ok(no_store(StatusCode::OK, json!({"ok": true})))
        }
        ("GET", ["visibility"]) => {
            let settings = packages::settings(&app, caller.as_ref(), &name).await?;
            let mfa = settings.mfa.as_str();
            let mut response = no_store(
                StatusCode::OK,
                json!({"public": settings.public, "mfa": mfa}),
            );
            // npm prints this header, so `npm access get status` also shows the 2FA policy.
            let trusted = if settings.trusted_publishing_only {
                "; new versions only through trusted publishing"
            } else {
                ""
            };
            let notice = match settings.mfa {
                MfaPolicy::Publish => format!(
                    "{name}: mfa=publish (two-factor authentication required; tokens that skip it are refused)"
                ),
                MfaPolicy::Automation => format!(
                    "{name}: mfa=automation (two-factor authentication required; automation tokens may publish)"
                ),
                MfaPolicy::None => format!(
                    "{name}: mfa=none (publishing does not require two-factor authentication)"
                ),
            } + trusted;
            if let Ok(value) = axum::http::HeaderValue::from_str(&notice) {
                response.headers_mut().insert("npm-notice", value);
            }
            Ok(response)
        }
        ("GET", ["access"]) => {
            let settings = packages::settings(&app, caller.as_ref(), &name).await?;
            let public = settings.public;
            Ok(no_store(
                StatusCode::OK,
                json!({"public": public, "access": if public {"public"} else {"restricted"}, "mfa": settings.mfa.as_str(), "trusted_publishing_only": settings.trusted_publishing_only}),
            ))
        }
        ("POST" | "PUT", ["access"]) => {
            let body = json_body()?;
            let change = AccessChange {
                access: body
                    .get("access")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                publish_requires_tfa: body.get("publish_requires_tfa").and_then(Value::as_bool),
                automation_token_overrides_tfa: body
                    .get("automation_token_overrides_tfa")
                    .and_then(Value::as_bool),
            };
            // Tessera's own field (`tessera package trust only on|off`); npm's
            // `access set mfa=` leaves it alone.
            let trusted_only = match body.get("trusted_publishing_only") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "trusted_publishing_only must be true or false",
                    ));
                }
            };
            if change.access.is_none()
                && change.publish_requires_tfa.is_none()
                && trusted_only.is_none()
            {
                return Err(ApiError::bad_request(
                    "nothing to change: send access, publish_requires_tfa or trusted_publishing_only",
                ));
            }
            let caller = need(&caller)?;
            if let Some(on) = trusted_only {
                crate::domain::trust::set_trusted_only(&app, &caller, &name, on).await?;
            }
            if change.access.is_some() || change.publish_requires_tfa.is_some() {
                packages::change_access(&app, &caller, &name, change).await?;
            }
            Ok(no_store(StatusCode::OK, json!({"ok": true})))
        }
        (method, ["trust", rest @ ..]) => {
            super::trust_routes::trust_endpoint(&app, &need(&caller)?, method, &name, rest, &body)
                .await
        }
        ("GET", ["credentials"]) => {
            let caller = need(&caller)?;
            let view = crate::domain::publishers::for_package(&app, &caller, &name).await?;
            Ok(no_store(
                StatusCode::OK,
                super::org_routes::credentials_view(&view),
            ))
        }
        ("GET", ["collaborators"]) => {
            let collaborators = packages::collaborators(&app, caller.as_ref(), &name).await?;
            let wanted = query.get("user");
            let collaborators = collaborators
                .into_iter()
                .filter(|(user, _)| wanted.is_none_or(|u| u == user));
            let body = if wants_collaborator_list(&headers) {
                collaborators
                    .map(|(user, p)| {
                        // npm knows two collaborator permissions.
                        let permissions = if p == PackagePermission::ReadWrite {
                            PackagePermission::ReadWrite
                        } else {
                            PackagePermission::ReadOnly
                        };
                        json!({"user": user, "permissions": permissions.as_str()})
                    })
                    .collect::<Vec<_>>()
                    .into()
            } else {
                Value::Object(
                    collaborators
                        .map(|(user, p)| {
                            let level = if p == PackagePermission::ReadWrite {
                                "write"
                            } else {
                                "read"
                            };
                            (user, json!(level))
                        })
                        .collect(),
                )
            };
            Ok(no_store(StatusCode::OK, body))
        }
        // pnpm's `owner ls|add|rm` (npm reads and rewrites the packument instead).
        ("GET", ["owners"]) => {
            let owners = packages::owners(&app, caller.as_ref(), &name).await?;
            let list: Vec<Value> = owners
                .into_iter()
                .map(|m| json!({"username": m.name, "email": m.email}))
                .collect();
            Ok(no_store(StatusCode::OK, Value::Array(list)))
        }
        ("PUT" | "POST", ["owners"]) => {
            let body = json_body()?;
            let user = body.get("user").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request("the body must name the new owner: {\"user\": \"name\"}")
            })?;
            packages::add_owner(&app, &need(&caller)?, &name, user).await?;
            Ok(no_store(StatusCode::OK, json!({"ok": true})))
        }
        ("DELETE", ["owners", user]) => {
            packages::remove_owner(&app, &need(&caller)?, &name, user).await?;
            Ok(no_store(StatusCode::OK, json!({"ok": true})))
        }
        _ => Err(ApiError::not_found("no such endpoint")),
    }
}

/// `GET /-/user/<name>/package` and `/-/org/<name>/package`: what `npm access list
/// packages` reads; only the packages the calling credential reaches.
pub async fn user_packages(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    uri: Uri,
) -> ApiResult<Response> {
    let who = uri.path().split('/').nth(3).unwrap_or("");
    let packages = packages::user_packages(&app, &caller, who).await?;
    let map: Map<String, Value> = packages
        .into_iter()
        .map(|(n, p)| {
            let level = if p == PackagePermission::ReadWrite {
                "write"
            } else {
                "read"
            };
            (n, json!(level))
        })
        .collect();
    Ok(no_store(StatusCode::OK, Value::Object(map)))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    text: Option<String>,
    size: Option<i64>,
    from: Option<i64>,
}

/// `GET /-/v1/search`.
pub async fn search(
    State(app): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Response> {
    let text = q.text.unwrap_or_default();
    let results = packages::search(
        &app,
        caller.as_ref(),
        &text,
        q.from.unwrap_or(0).max(0),
        q.size.unwrap_or(20),
    )
    .await?;
    let objects: Vec<Value> = results
        .hits
        .iter()
        .map(|h| {
            let maintainers: Vec<Value> =
                h.maintainers.iter().map(|m| json!({"username": m.name, "email": m.email})).collect();
            let mut package = json!({
                "name": h.row.name,
                "scope": h.row.name.strip_prefix('@').and_then(|s| s.split('/').next()).unwrap_or("unscoped"),
                "version": h.version,
                "description": h.row.description,
                "keywords": h.keywords,
                "date": iso_time(h.row.modified_at),
                "links": {"npm": format!("{}/package/{}", app.public_url, h.row.name)},
                "maintainers": maintainers,
            });
            if let Some((name, email)) = &h.publisher {
                package["publisher"] = json!({"username": name, "email": email});
            }
            // Only how well the text matched is known: no popularity or quality data.
            let score = h.score();
            json!({"package": package, "score": {"final": score, "detail": {"quality": score, "popularity": score, "maintenance": score}}, "searchScore": score})
        })
        .collect();
    let total = results.total;
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "private, no-cache")],
        axum::Json(json!({"objects": objects, "total": total, "time": iso_time(app.now())})),
    )
        .into_response())
}
