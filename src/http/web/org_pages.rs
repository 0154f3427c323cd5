//! Organizations on the website: the viewer's organizations and the creation form
//! (`/orgs`), an organization's page (members and roles, teams, packages; for its
//! owners the log and every credential that can publish its packages, riskiest
//! first) and a team's page (members, packages with their permission). Every form
//! posts through `Posted` and calls `domain::orgs`, which passes the access gate; an
//! organization the viewer is not a member of is a 404, as on the npm wire.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::page::{self, Layout, PageError, PageResult, fmt_time};
use super::publisher_pages::{PublisherRow, policy_short, rows};
use super::session::{Posted, Viewer, csrf_form, with_otp, writes_need_otp};
use crate::domain::access::OrgRole;
use crate::domain::{self, Caller, orgs, publishers};
use crate::http::extract::AppState;
use crate::store::{OrgEventKind, Stored};

/// Characters left as they are in a path segment we redirect to.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@');

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `@acme` and `acme` name the same organization.
fn bare(org: &str) -> &str {
    org.trim_start_matches('@')
}

fn org_path(org: &str) -> String {
    format!("/org/{}", segment(bare(org)))
}

fn team_path(org: &str, team: &str) -> String {
    format!("{}/team/{}", org_path(org), segment(team))
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => {
            "The organization was created. Its scope is yours to publish in, and you are its owner."
        }
        "members" => "The member list was updated.",
        "team-created" => "The team was created. Add members and give it packages below.",
        "team" => "The team was updated.",
        "team-deleted" => "The team was deleted; its members lost what it granted them.",
        "left" => "You are no longer a member of that organization.",
        _ => return None,
    })
}

fn not_found(app: &AppState, viewer: &Viewer) -> PageError {
    PageError::not_found().with_layout(Layout::new(app, viewer, "Not found"))
}

/// A missing organization or team is the 404 page with the header.
fn page_error(app: &AppState, viewer: &Viewer, e: domain::Error) -> PageError {
    match e {
        domain::Error::NotFound(_) => not_found(app, viewer),
        e => PageError::from(e).with_layout(Layout::new(app, viewer, "Error")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

// ---- /orgs ----------------------------------------------------------------

struct Membership {
    name: String,
    role: &'static str,
}

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    layout: Layout,
    orgs: Vec<Membership>,
    /// What was typed into the creation form (kept after an error).
    name: String,
    needs_otp: bool,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn orgs_view(
    app: &AppState,
    viewer: &Viewer,
    name: String,
    error: Option<String>,
    status: StatusCode,
    notice: Option<&'static str>,
) -> PageResult {
    let caller = viewer.require("/orgs")?;
    let orgs = orgs::mine(app, caller)
        .await?
        .into_iter()
        .map(|(name, role)| Membership {
            name,
            role: role.as_str(),
        })
        .collect();
    Ok(page::render(
        status,
        &OrgsPage {
            layout: Layout::new(app, viewer, "Organizations").section("orgs"),
            orgs,
            name,
            needs_otp: writes_need_otp(caller),
            error,
            notice,
        },
    ))
}

/// `GET /orgs`.
pub async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let notice = notice_text(q.notice.as_deref());
    orgs_view(&app, &viewer, String::new(), None, StatusCode::OK, notice).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateForm {
    csrf: String,
    name: String,
    otp: String,
}

/// Every organization form: the fields an action does not use stay empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OrgForm {
    csrf: String,
    user: String,
    role: String,
    team: String,
    description: String,
    package: String,
    permission: String,
    otp: String,
}

csrf_form!(CreateForm, OrgForm);

/// `POST /orgs`: creates an organization owned by the viewer.
pub async fn create(
    State(app): State<AppState>,
    Posted { viewer, form }: Posted<CreateForm>,
) -> PageResult {
    let caller = viewer.require("/orgs")?;
    let name = bare(form.name.trim()).to_owned();
    match orgs::create(&app, &with_otp(caller, &form.otp), &name).await {
        Ok(()) => Ok(Redirect::to(&format!("{}?notice=created", org_path(&name))).into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            orgs_view(&app, &viewer, name, Some(message), status, None).await
        }
    }
}

// ---- /org/<name> ------------------------------------------------------------

struct MemberView {
    name: String,
    role: &'static str,
    me: bool,
    /// The viewer may change this member's role or remove them.
    changeable: bool,
}

struct TeamView {
    name: String,
    description: String,
}

struct PackageView {
    name: String,
    /// The viewer's permission on it.
    permission: &'static str,
    /// Its publishing 2FA policy (shown to owners, who see the credentials).
    policy: &'static str,
}

struct EventView {
    at: String,
    actor: String,
    what: &'static str,
    detail: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    layout: Layout,
    org: String,
    role: &'static str,
    /// Owner or admin: the member, team and grant forms.
    manage: bool,
    /// Owner: the log and the credentials.
    owner: bool,
    needs_otp: bool,
    members: Vec<MemberView>,
    /// The roles the viewer may give.
    roles: Vec<&'static str>,
    teams: Vec<TeamView>,
    packages: Vec<PackageView>,
    events: Vec<EventView>,
    publishers: Vec<PublisherRow>,
    show_package: bool,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn event_label(kind: &Stored<OrgEventKind>) -> &'static str {
    use OrgEventKind as K;
    let Some(kind) = kind.get() else {
        return "Organization event";
    };
    match kind {
        K::OrgCreated => "Organization created",
        K::MemberSet => "Member added or role changed",
        K::MemberRemoved => "Member removed",
        K::TeamCreated => "Team created",
        K::TeamDestroyed => "Team deleted",
        K::TeamMemberAdded => "Added to a team",
        K::TeamMemberRemoved => "Removed from a team",
        K::GrantSet => "Package access granted",
        K::GrantRevoked => "Package access revoked",
    }
}

/// The viewer's role, from the member list they were allowed to read.
fn role_in(members: &[crate::store::OrgMember], caller: &Caller) -> Option<OrgRole> {
    members
        .iter()
        .find(|m| m.user_id == caller.user.id)
        .map(|m| m.role)
}

async fn org_view(
    app: &AppState,
    viewer: &Viewer,
    org: &str,
    error: Option<String>,
    status: StatusCode,
    notice: Option<&'static str>,
) -> PageResult {
    let org = bare(org);
    let caller = viewer.require(&org_path(org))?;
    let members = orgs::members(app, caller, org)
        .await
        .map_err(|e| page_error(app, viewer, e))?;
    let role = role_in(&members, caller).ok_or_else(|| not_found(app, viewer))?;
    let owner = role == OrgRole::Owner;
    let manage = role >= OrgRole::Admin;
    let teams = orgs::teams(app, caller, org)
        .await?
        .into_iter()
        .map(|(name, description)| TeamView {
            name,
            description: description.unwrap_or_default(),
        })
        .collect();
    let mut policies = BTreeMap::new();
    let (events, publishers) = if owner {
        let events = orgs::events(app, caller, org)
            .await?
            .into_iter()
            .map(|e| EventView {
                at: fmt_time(e.created_at),
                actor: e.actor.unwrap_or_default(),
                what: event_label(&e.kind),
                detail: e.detail,
                ip: e.ip.unwrap_or_default(),
            })
            .collect();
        let views = publishers::for_org(app, caller, org).await?;
        for v in &views {
            policies.insert(v.package.clone(), policy_short(v.policy));
        }
        let riskiest = publishers::riskiest_first(&views);
        (events, rows(&riskiest, &caller.user.name))
    } else {
        (Vec::new(), Vec::new())
    };
    let packages = orgs::org_packages(app, caller, org)
        .await?
        .into_iter()
        .map(|(name, permission)| PackageView {
            policy: policies.get(&name).copied().unwrap_or(""),
            name,
            permission: permission.as_str(),
        })
        .collect();
    let members = members
        .into_iter()
        .map(|m| MemberView {
            me: m.user_id == caller.user.id,
            changeable: owner || (manage && m.role != OrgRole::Owner),
            role: m.role.as_str(),
            name: m.name,
        })
        .collect();
    let roles = OrgRole::ALL
        .iter()
        .filter(|r| owner || **r != OrgRole::Owner)
        .map(|r| r.as_str())
        .collect();
    Ok(page::render(
        status,
        &OrgPage {
            layout: Layout::new(app, viewer, format!("@{org}")),
            org: org.to_owned(),
            role: role.as_str(),
            manage,
            owner,
            needs_otp: writes_need_otp(caller),
            members,
            roles,
            teams,
            packages,
            events,
            publishers,
            show_package: true,
            error,
            notice,
        },
    ))
}

/// `GET /org/<name>`.
pub async fn org_page(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let notice = notice_text(q.notice.as_deref());
    org_view(&app, &viewer, &org, None, StatusCode::OK, notice).await
}

/// After an organization form: back to the page with a notice, or the page again
/// with the refusal.
async fn org_outcome(
    app: &AppState,
    viewer: &Viewer,
    org: &str,
    result: domain::Result<()>,
    done: &str,
) -> PageResult {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{}?notice={done}", org_path(org))).into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            org_view(app, viewer, org, Some(message), status, None).await
        }
    }
}

/// `POST /org/<name>/members`: adds a member or changes a role.
pub async fn set_member(
    State(app): State<AppState>,
    Path(org): Path<String>,
    Posted { viewer, form }: Posted<OrgForm>,
) -> PageResult {
    let caller = with_otp(viewer.require(&org_path(&org))?, &form.otp);
    let result = orgs::set_member(
        &app,
        &caller,
        &org,
        form.user.trim(),
        Some(form.role.as_str()),
    )
    .await
    .map(|_| ());
    org_outcome(&app, &viewer, &org, result, "members").await
}

/// `POST /org/<name>/members/remove`.
pub async fn remove_member(
    State(app): State<AppState>,
    Path(org): Path<String>,
    Posted { viewer, form }: Posted<OrgForm>,
) -> PageResult {
    let caller = with_otp(viewer.require(&org_path(&org))?, &form.otp);
    let user = form.user.trim();
    let result = orgs::remove_member(&app, &caller, &org, user).await;
    // Removing oneself ends one's access to the page.
    if result.is_ok() && user == caller.user.name {
        return Ok(Redirect::to("/orgs?notice=left").into_response());
    }
    org_outcome(&app, &viewer, &org, result, "members").await
}

/// `POST /org/<name>/teams`: creates a team and opens its page.
pub async fn create_team(
    State(app): State<AppState>,
    Path(org): Path<String>,
    Posted { viewer, form }: Posted<OrgForm>,
) -> PageResult {
    let caller = with_otp(viewer.require(&org_path(&org))?, &form.otp);
    let team = form.team.trim();
    match orgs::create_team(&app, &caller, &org, team, Some(&form.description)).await {
        Ok(()) => Ok(
            Redirect::to(&format!("{}?notice=team-created", team_path(&org, team))).into_response(),
        ),
        Err(e) => org_outcome(&app, &viewer, &org, Err(e), "").await,
    }
}

// ---- /org/<name>/team/<team> ----------------------------------------------------

struct GrantView {
    package: String,
    permission: &'static str,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    layout: Layout,
    org: String,
    team: String,
    description: String,
    manage: bool,
    needs_otp: bool,
    /// The `developers` team (every new member joins it) cannot be deleted.
    is_developers: bool,
    members: Vec<String>,
    /// Organization members not in the team yet.
    addable: Vec<String>,
    grants: Vec<GrantView>,
    /// The organization's packages (a grant on one already granted changes its level).
    packages: Vec<String>,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn team_view(
    app: &AppState,
    viewer: &Viewer,
    org: &str,
    team: &str,
    error: Option<String>,
    status: StatusCode,
    notice: Option<&'static str>,
) -> PageResult {
    let org = bare(org);
    let caller = viewer.require(&team_path(org, team))?;
    let org_members = orgs::members(app, caller, org)
        .await
        .map_err(|e| page_error(app, viewer, e))?;
    let role = role_in(&org_members, caller).ok_or_else(|| not_found(app, viewer))?;
    let members = orgs::team_members(app, caller, org, team)
        .await
        .map_err(|e| page_error(app, viewer, e))?;
    let description = orgs::teams(app, caller, org)
        .await?
        .into_iter()
        .find(|(name, _)| name == team)
        .and_then(|(_, d)| d)
        .unwrap_or_default();
    let grants = orgs::team_packages(app, caller, org, team)
        .await?
        .into_iter()
        .map(|(package, permission)| GrantView {
            package,
            permission: permission.as_str(),
        })
        .collect();
    let manage = role >= OrgRole::Admin;
    let packages = if manage {
        orgs::org_packages(app, caller, org)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    } else {
        Vec::new()
    };
    let addable = org_members
        .into_iter()
        .map(|m| m.name)
        .filter(|name| !members.contains(name))
        .collect();
    Ok(page::render(
        status,
        &TeamPage {
            layout: Layout::new(app, viewer, format!("@{org}:{team}")),
            org: org.to_owned(),
            team: team.to_owned(),
            description,
            manage,
            needs_otp: writes_need_otp(caller),
            is_developers: team == crate::store::DEVELOPERS_TEAM,
            members,
            addable,
            grants,
            packages,
            error,
            notice,
        },
    ))
}

/// `GET /org/<name>/team/<team>`.
pub async fn team_page(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((org, team)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let notice = notice_text(q.notice.as_deref());
    team_view(&app, &viewer, &org, &team, None, StatusCode::OK, notice).await
}

/// What a team form does, from the path after `/org/<name>/team/<team>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TeamAction {
    AddMember,
    RemoveMember,
    Grant,
    Revoke,
    Delete,
}

async fn team_action(
    app: AppState,
    org: String,
    team: String,
    Posted { viewer, form }: Posted<OrgForm>,
    action: TeamAction,
) -> PageResult {
    let caller = with_otp(viewer.require(&team_path(&org, &team))?, &form.otp);
    let (user, package) = (form.user.trim(), form.package.trim());
    let result = match action {
        TeamAction::AddMember => {
            orgs::set_team_member(&app, &caller, &org, &team, user, true).await
        }
        TeamAction::RemoveMember => {
            orgs::set_team_member(&app, &caller, &org, &team, user, false).await
        }
        TeamAction::Grant => {
            orgs::set_grant(
                &app,
                &caller,
                &org,
                &team,
                package,
                Some(form.permission.as_str()),
            )
            .await
        }
        TeamAction::Revoke => orgs::set_grant(&app, &caller, &org, &team, package, None).await,
        TeamAction::Delete => orgs::destroy_team(&app, &caller, bare(&org), &team).await,
    };
    match result {
        Ok(()) if action == TeamAction::Delete => {
            Ok(Redirect::to(&format!("{}?notice=team-deleted", org_path(&org))).into_response())
        }
        Ok(()) => {
            Ok(Redirect::to(&format!("{}?notice=team", team_path(&org, &team))).into_response())
        }
        Err(e) => {
            let (status, message) = page::describe(e);
            team_view(&app, &viewer, &org, &team, Some(message), status, None).await
        }
    }
}

/// `POST /org/<name>/team/<team>/members`.
pub async fn add_team_member(
    State(app): State<AppState>,
    Path((org, team)): Path<(String, String)>,
    posted: Posted<OrgForm>,
) -> PageResult {
    team_action(app, org, team, posted, TeamAction::AddMember).await
}

/// `POST /org/<name>/team/<team>/members/remove`.
pub async fn remove_team_member(
    State(app): State<AppState>,
    Path((org, team)): Path<(String, String)>,
    posted: Posted<OrgForm>,
) -> PageResult {
    team_action(app, org, team, posted, TeamAction::RemoveMember).await
}

/// `POST /org/<name>/team/<team>/packages`: grants (or changes) a permission.
pub async fn grant(
    State(app): State<AppState>,
    Path((org, team)): Path<(String, String)>,
    posted: Posted<OrgForm>,
) -> PageResult {
    team_action(app, org, team, posted, TeamAction::Grant).await
}

/// `POST /org/<name>/team/<team>/packages/revoke`.
pub async fn revoke(
    State(app): State<AppState>,
    Path((org, team)): Path<(String, String)>,
    posted: Posted<OrgForm>,
) -> PageResult {
    team_action(app, org, team, posted, TeamAction::Revoke).await
}

/// `POST /org/<name>/team/<team>/delete`.
pub async fn delete_team(
    State(app): State<AppState>,
    Path((org, team)): Path<(String, String)>,
    posted: Posted<OrgForm>,
) -> PageResult {
    team_action(app, org, team, posted, TeamAction::Delete).await
}
