//! Organizations and teams on the npm wire (`npm org`, `npm team`, `npm access
//! grant|revoke|list packages`; npm-protocol §6.7 and §6.14), what Tessera adds
//! where npm has no command (`POST /-/org` creates, `GET /-/org` lists the caller's
//! organizations, `GET /-/org/<org>/log` reads the log), and the credentials views.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::user_routes::no_store;
use crate::domain::access::PackagePermission;
use crate::domain::publishers::{PackageCredentials, Publisher};
use crate::domain::{orgs, publishers};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, NpmJson, RequireAuth};
use crate::npm::packument::iso_time;
use crate::store::OrgEventKind;

fn level(p: PackagePermission) -> &'static str {
    if p == PackagePermission::ReadWrite {
        "write"
    } else {
        "read"
    }
}

/// `{ "name": … }` of `POST /-/org`.
#[derive(Deserialize)]
pub struct NewOrg {
    name: String,
}

/// `POST /-/org`: creates an organization owned by the caller.
pub async fn create_org(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    NpmJson(body): NpmJson<NewOrg>,
) -> ApiResult<Response> {
    orgs::create(&app, &caller, &body.name).await?;
    let name = body.name.trim_start_matches('@');
    Ok(no_store(
        StatusCode::CREATED,
        json!({"ok": true, "name": name, "scope": format!("@{name}"), "role": "owner"}),
    ))
}

/// `GET /-/org`: the caller's organizations and their role in each (`tessera org
/// list`; npm has no such command).
pub async fn list_mine(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
) -> ApiResult<Response> {
    let map: Map<String, Value> = orgs::mine(&app, &caller)
        .await?
        .into_iter()
        .map(|(name, role)| (name, json!(role.as_str())))
        .collect();
    Ok(no_store(StatusCode::OK, Value::Object(map)))
}

/// `GET /-/org/<org>/log`: the organization's log, newest first (owners; `tessera
/// org log`).
pub async fn org_log(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let events: Vec<Value> = orgs::events(&app, &caller, &org)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "time": iso_time(e.created_at),
                "actor": e.actor,
                "kind": e.kind.text(OrgEventKind::as_str),
                "detail": e.detail,
                "ip": e.ip,
            })
        })
        .collect();
    Ok(no_store(
        StatusCode::OK,
        json!({"org": org.trim_start_matches('@'), "events": events}),
    ))
}

/// `{ "user": …, "role": … }` of `npm org set|rm` and `npm team add|rm`.
#[derive(Deserialize)]
pub struct Membership {
    user: String,
    role: Option<String>,
}

/// `PUT /-/org/<org>/user`: `npm org set`.
pub async fn set_member(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
    NpmJson(body): NpmJson<Membership>,
) -> ApiResult<Response> {
    let set = orgs::set_member(&app, &caller, &org, &body.user, body.role.as_deref()).await?;
    Ok(no_store(
        StatusCode::OK,
        json!({"org": {"name": set.org, "size": set.size}, "user": set.user, "role": set.role.as_str()}),
    ))
}

/// `DELETE /-/org/<org>/user`: `npm org rm`.
pub async fn remove_member(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
    NpmJson(body): NpmJson<Membership>,
) -> ApiResult<Response> {
    orgs::remove_member(&app, &caller, &org, &body.user).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `GET /-/org/<org>/user`: `npm org ls` (`{user: role}`).
pub async fn list_members(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let members = orgs::members(&app, &caller, &org).await?;
    let map: Map<String, Value> = members
        .into_iter()
        .map(|m| (m.name, json!(m.role.as_str())))
        .collect();
    Ok(no_store(StatusCode::OK, Value::Object(map)))
}

/// `{ "name": …, "description": … }` of `npm team create`.
#[derive(Deserialize)]
pub struct NewTeam {
    name: String,
    description: Option<String>,
}

/// `PUT /-/org/<org>/team`: `npm team create`.
pub async fn create_team(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
    NpmJson(body): NpmJson<NewTeam>,
) -> ApiResult<Response> {
    orgs::create_team(&app, &caller, &org, &body.name, body.description.as_deref()).await?;
    Ok(no_store(
        StatusCode::CREATED,
        json!({"name": body.name, "description": body.description}),
    ))
}

/// `GET /-/org/<org>/team`: `npm team ls ORG` (`["org:team", …]`).
pub async fn list_teams(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let org = org.trim_start_matches('@').to_owned();
    let teams = orgs::teams(&app, &caller, &org).await?;
    let names: Vec<String> = teams
        .into_iter()
        .map(|(t, _)| format!("{org}:{t}"))
        .collect();
    Ok(no_store(StatusCode::OK, json!(names)))
}

/// `DELETE /-/team/<org>/<team>`: `npm team destroy`.
pub async fn destroy_team(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Response> {
    orgs::destroy_team(&app, &caller, &org, &team).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `GET /-/team/<org>/<team>/user`: `npm team ls ORG:TEAM`.
pub async fn list_team_members(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Response> {
    let members = orgs::team_members(&app, &caller, &org, &team).await?;
    Ok(no_store(StatusCode::OK, json!(members)))
}

/// `PUT /-/team/<org>/<team>/user`: `npm team add`.
pub async fn add_team_member(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson<Membership>,
) -> ApiResult<Response> {
    orgs::set_team_member(&app, &caller, &org, &team, &body.user, true).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `DELETE /-/team/<org>/<team>/user`: `npm team rm`.
pub async fn remove_team_member(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson<Membership>,
) -> ApiResult<Response> {
    orgs::set_team_member(&app, &caller, &org, &team, &body.user, false).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `{ "package": …, "permissions": … }` of `npm access grant|revoke`.
#[derive(Deserialize)]
pub struct TeamGrant {
    package: String,
    permissions: Option<String>,
}

/// `PUT /-/team/<org>/<team>/package`: `npm access grant`.
pub async fn grant_package(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson<TeamGrant>,
) -> ApiResult<Response> {
    let permission = body
        .permissions
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("permissions is required: read-only or read-write"))?;
    orgs::set_grant(&app, &caller, &org, &team, &body.package, Some(permission)).await?;
    Ok(no_store(StatusCode::CREATED, json!({"ok": true})))
}

/// `DELETE /-/team/<org>/<team>/package`: `npm access revoke`.
pub async fn revoke_package(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson<TeamGrant>,
) -> ApiResult<Response> {
    orgs::set_grant(&app, &caller, &org, &team, &body.package, None).await?;
    Ok(no_store(StatusCode::OK, json!({"ok": true})))
}

/// `GET /-/team/<org>/<team>/package`: `npm access list packages ORG:TEAM`.
pub async fn list_team_packages(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Response> {
    let packages = orgs::team_packages(&app, &caller, &org, &team).await?;
    let map: Map<String, Value> = packages
        .into_iter()
        .map(|(name, p)| (name, json!(level(p))))
        .collect();
    Ok(no_store(StatusCode::OK, Value::Object(map)))
}

/// `GET /-/org/<org>/package`: `npm access list packages ORG`. An unknown
/// organization is a 404, after which npm asks `/-/user/<name>/package`.
pub async fn list_org_packages(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let packages = orgs::org_packages(&app, &caller, &org).await?;
    let map: Map<String, Value> = packages
        .into_iter()
        .map(|(name, p)| (name, json!(level(p))))
        .collect();
    Ok(no_store(StatusCode::OK, Value::Object(map)))
}

/// Wire view of a package's credentials.
pub fn credentials_view(view: &PackageCredentials) -> Value {
    let publishers: Vec<Value> = view
        .publishers
        .iter()
        .map(|p| match p {
            Publisher::Token(t) => json!({
                "type": "token",
                "package": t.package,
                "user": t.user,
                "paths": t.paths,
                "key": t.key,
                "token": t.masked,
                "name": t.name,
                "token_type": t.kind.as_str(),
                "packages": t.limits.as_ref().map(|l| l.packages.clone()),
                "scopes": t.limits.as_ref().map(|l| l.scopes.clone()),
                "packages_all": t.limits.as_ref().map(|l| l.packages_all),
                "packages_and_scopes_permission": t.limits.as_ref().and_then(|l| l.permission).map(|p| p.as_str()),
                "cidr_whitelist": (!t.cidr.is_empty()).then(|| t.cidr.clone()),
                "created": iso_time(t.created_at),
                "expires": t.expires_at.map(iso_time),
                "last_used": t.last_used_at.map(iso_time),
                "origin": t.origin.as_str(),
                "needs_otp": t.needs_otp,
                "risks": t.risks.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            }),
        })
        .collect();
    let writers: Vec<Value> = view
        .writers
        .iter()
        .map(|w| json!({"user": w.user, "paths": w.paths}))
        .collect();
    json!({
        "package": view.package,
        "mfa": view.policy.as_str(),
        "writers": writers,
        "publishers": publishers,
    })
}

/// `GET /-/org/<org>/credentials`: every credential that can publish one of the
/// organization's packages, riskiest first (owners).
pub async fn org_credentials(
    State(app): State<AppState>,
    RequireAuth(caller): RequireAuth,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let views = publishers::for_org(&app, &caller, &org).await?;
    let packages: Vec<Value> = views
        .iter()
        .map(|view| {
            let v = credentials_view(view);
            json!({"package": view.package, "mfa": view.policy.as_str(), "writers": v["writers"]})
        })
        .collect();
    let riskiest = PackageCredentials {
        package: String::new(),
        policy: crate::domain::packages::MfaPolicy::None,
        writers: Vec::new(),
        publishers: publishers::riskiest_first(&views),
    };
    let all = credentials_view(&riskiest)["publishers"].clone();
    Ok(no_store(
        StatusCode::OK,
        json!({"org": org.trim_start_matches('@'), "packages": packages, "publishers": all}),
    ))
}
