//! `/-/npm/v1/tokens`: list (masked, paginated), create (shown once), revoke by key
//! or full value. Accepts both the legacy and the npm 11 granular bodies.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::user_routes::no_store;
use crate::crypto::token_format::masked;
use crate::domain::access::{TokenKind, TokenOrigin};
use crate::domain::tokens::{self, CreateRequest, cidr_of, limits_of};
use crate::http::error::ApiResult;
use crate::http::extract::{AppState, NpmJson, RequireAuth};
use crate::npm::packument::iso_time;
use crate::store::TokenRow;

/// Wire view of a stored token (never the secret). `others` resolves rotation
/// links (token ids) to keys; a link outside it is left out.
pub fn token_view(row: &TokenRow, others: &[TokenRow]) -> Value {
    let kind = tokens::display_kind(row);
    let limits = limits_of(row);
    let key_of = |id: Option<i64>| {
        id.and_then(|id| others.iter().find(|o| o.id == id))
            .map(|o| o.key.clone())
    };
    json!({
        "rotated_from": key_of(row.rotated_from),
        "replaced_by": key_of(row.replaced_by),
        "revoked": row.revoked_at.map(iso_time),
        "revoked_reason": row.revoked_reason,
        "key": row.key,
        "token": row.display_prefix,
        "masked": masked(&row.display_prefix, &row.last_four),
        "name": row.name,
        "description": row.description,
        "type": kind,
        "readonly": row.kind.get() == Some(TokenKind::ReadOnly),
        "automation": row.kind.get() == Some(TokenKind::Automation),
        "cidr_whitelist": cidr_of(row).map(|c| c.to_strings()),
        "packages": limits.as_ref().map(|l| l.packages.clone()),
        "scopes": limits.as_ref().map(|l| l.scopes.clone()),
        "packages_all": limits.as_ref().map(|l| l.packages_all),
        "packages_and_scopes_permission": limits.as_ref().and_then(|l| l.permission).map(|p| p.as_str()),
        "orgs": limits.as_ref().map(|l| l.orgs.clone()),
        "orgs_permission": limits.as_ref().and_then(|l| l.orgs_permission).map(|p| p.as_str()),
        "bypass_2fa": row.kind.get() == Some(TokenKind::Automation),
        "origin": tokens::display_origin(row),
        "created": iso_time(row.created_at),
        "updated": iso_time(row.updated_at),
        "expires": row.expires_at.map(iso_time),
        "last_used": row.last_used_at.map(iso_time),
        "last_used_ip": row.last_used_ip,
    })
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
    #[serde(rename = "perPage")]
    per_page: Option<i64>,
}

/// `GET /-/npm/v1/tokens`.
pub async fn list_tokens(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = q.page.unwrap_or(0).max(0);
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    let (rows, total) = tokens::list(&app, &caller, page, per_page).await?;
    let next = ((page + 1) * per_page < total).then(|| {
        format!(
            "{}/-/npm/v1/tokens?page={}&perPage={per_page}",
            app.public_url,
            page + 1
        )
    });
    Ok(no_store(
        StatusCode::OK,
        json!({"objects": rows.iter().map(|r| token_view(r, &rows)).collect::<Vec<_>>(), "total": total, "urls": {"next": next}}),
    ))
}

/// One string or a list of strings (npm sends arrays; people send strings).
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A number or a numeric string (`expires`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Days {
    Number(i64),
    Text(String),
}

/// Legacy and granular token-creation bodies.
#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    #[serde(default)]
    password: secrecy::SecretString,
    readonly: Option<bool>,
    automation: Option<bool>,
    #[serde(alias = "token_description")]
    description: Option<String>,
    #[serde(default)]
    packages: OneOrMany,
    #[serde(default)]
    scopes: OneOrMany,
    packages_all: Option<bool>,
    packages_and_scopes_permission: Option<String>,
    #[serde(default)]
    orgs: OneOrMany,
    orgs_permission: Option<String>,
    expires: Option<Days>,
    #[serde(default, alias = "cidr")]
    cidr_whitelist: Option<OneOrMany>,
    bypass_2fa: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Said whenever a creation request names no type at all, which is what npm 11's
/// `npm token create --read-only` sends: npm 11 no longer passes the flag on, so the
/// registry cannot tell, and the token it asked for would silently be able to publish.
/// Sent as an `npm-notice` header, which npm prints as `npm notice …`.
fn read_only_notice(public_url: &str) -> String {
    format!(
        "This new token can read and publish. npm 11 does not pass --read-only on to the registry; \
         for a token that can only read, run `npm token create --packages-all \
         --packages-and-scopes-permission=read-only` or `tessera token create --read-only`, \
         or create it at {public_url}/settings/tokens"
    )
}

/// `POST /-/npm/v1/tokens`.
pub async fn create_token(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    NpmJson(body): NpmJson<CreateBody>,
) -> ApiResult<Response> {
    let expires_days = match body.expires {
        None => None,
        Some(Days::Number(n)) => Some(n),
        Some(Days::Text(t)) => Some(t.trim().parse().map_err(|_| {
            crate::http::error::ApiError::bad_request(format!(
                "invalid expires {t:?}: a number of days"
            ))
        })?),
    };
    let request = CreateRequest {
        name: body.name,
        description: body.description,
        password: body.password,
        kind: body.kind,
        readonly: body.readonly.unwrap_or(false),
        automation: body.automation.unwrap_or(false),
        packages: body.packages.into_vec(),
        scopes: body.scopes.into_vec(),
        packages_all: body.packages_all.unwrap_or(false),
        permission: body.packages_and_scopes_permission,
        orgs: body.orgs.into_vec(),
        orgs_permission: body.orgs_permission,
        expires_days,
        cidr: body.cidr_whitelist.unwrap_or_default().into_vec(),
        bypass_2fa: body.bypass_2fa.unwrap_or(false),
    };
    let type_unsaid = request.kind.is_none()
        && body.readonly.is_none()
        && body.automation.is_none()
        && request.permission.is_none()
        && !request.bypass_2fa;
    let created = tokens::create(&app, &caller, request, TokenOrigin::Api).await?;
    let mut view = token_view(&created.row, &[]);
    let obj = view.as_object_mut().expect("a token view is an object");
    obj.insert("token".into(), json!(created.plain.expose()));
    if created.row.expires_at.is_none() {
        obj.remove("expires");
    }
    let mut response = no_store(StatusCode::CREATED, view);
    if type_unsaid
        && created.row.limits.is_none()
        && let Some(value) = crate::http::error::notice_value(&read_only_notice(&app.public_url))
    {
        response.headers_mut().insert("npm-notice", value);
    }
    Ok(response)
}

/// `DELETE /-/npm/v1/tokens/token/<key or token>`.
pub async fn revoke_token(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    tokens::revoke(&app, &caller, &key).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `POST /-/npm/v1/tokens/token/<key or token>/rotate` body: the password (as for a
/// creation) and, optionally, how long the old token keeps working (`"1h"`).
#[derive(Deserialize)]
pub struct RotateBody {
    #[serde(default)]
    password: secrecy::SecretString,
    overlap: Option<String>,
}

/// `POST /-/npm/v1/tokens/token/<key or token>/rotate` (Tessera's own): a successor
/// with the same settings, shown once; the old token stops after the overlap.
pub async fn rotate_token(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(key): Path<String>,
    NpmJson(body): NpmJson<RotateBody>,
) -> ApiResult<Response> {
    let overlap = body
        .overlap
        .as_deref()
        .map(crate::config::parse_overlap)
        .transpose()
        .map_err(|e| crate::http::error::ApiError::bad_request(format!("invalid overlap: {e}")))?;
    let rotated = tokens::rotate(
        &app,
        &caller,
        tokens::RotateRequest {
            key_or_token: key,
            password: body.password,
            overlap,
        },
    )
    .await?;
    let old = rotated.old;
    let mut view = token_view(&rotated.created.row, std::slice::from_ref(&old));
    let obj = view.as_object_mut().expect("a token view is an object");
    obj.insert("token".into(), json!(rotated.created.plain.expose()));
    obj.insert(
        "previous".into(),
        json!({
            "key": old.key,
            "token": old.display_prefix,
            "stops": iso_time(rotated.old_stops_at),
        }),
    );
    Ok(no_store(StatusCode::CREATED, view))
}

/// Most tokens one leak report may carry, and its largest body.
pub const LEAK_REPORT_MAX_TOKENS: usize = 100;
pub const LEAK_REPORT_MAX_BYTES: usize = 64 * 1024;

/// `POST /-/npm/v1/tokens/leaked` body: token strings found exposed, and where.
#[derive(Deserialize)]
pub struct LeakBody {
    #[serde(default)]
    tokens: OneOrMany,
    #[serde(default)]
    token: Option<String>,
    url: Option<String>,
}

/// `POST /-/npm/v1/tokens/leaked`: anyone holding a token may report it exposed; a
/// live one is revoked at once. The answer depends only on the report's shape (how
/// many strings were well-formed tokens), never on whether any was live.
pub async fn report_leaked(
    State(app): State<AppState>,
    crate::http::extract::ClientIp(ip): crate::http::extract::ClientIp,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    if body.len() > LEAK_REPORT_MAX_BYTES {
        return Err(crate::http::error::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a leak report is at most {LEAK_REPORT_MAX_BYTES} bytes"),
        ));
    }
    let parsed: LeakBody = serde_json::from_slice(&body).map_err(|e| {
        crate::http::error::ApiError::bad_request(format!(
            "malformed JSON body: {e}; send {{\"tokens\": [\"tsr_…\"], \"url\": \"where they were found\"}}"
        ))
    })?;
    let mut strings = parsed.tokens.into_vec();
    strings.extend(parsed.token);
    if strings.is_empty() {
        return Err(crate::http::error::ApiError::bad_request(
            "the report names no token: send {\"tokens\": [\"tsr_…\"], \"url\": \"…\"}",
        ));
    }
    if strings.len() > LEAK_REPORT_MAX_TOKENS {
        return Err(crate::http::error::ApiError::bad_request(format!(
            "a leak report names at most {LEAK_REPORT_MAX_TOKENS} tokens"
        )));
    }
    let outcome = crate::domain::leaks::report(&app, &strings, parsed.url.as_deref(), ip).await?;
    Ok(no_store(
        StatusCode::ACCEPTED,
        json!({
            "ok": true,
            "checked": outcome.well_formed,
            "ignored": outcome.not_tokens,
            "message": "Every live token in this report is now revoked and its owner told where it was found.",
        }),
    ))
}
