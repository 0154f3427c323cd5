//! Organizations and teams: an organization owns the scope `@name`; its members have
//! a role (owner, admin, developer); teams are granted packages of the scope. Every
//! operation passes the access gate (`authorize_org`), and every change is a store
//! write that the next request sees (rights are read per request).

use super::access::{self, Action, OrgGrant, OrgRole, PackagePermission, act};
use super::{Caller, Error, Result};
use crate::app::App;
use crate::npm::name::PackageName;
use crate::store::{
    Actor, DEVELOPERS_TEAM, OrgChange, OrgEventRow, OrgMember, StoreError, UserRow,
};

/// Checks an organization name: a valid npm scope, not one npm reserves.
pub fn validate_org_name(name: &str) -> Result<()> {
    let name = name.trim_start_matches('@');
    if name.is_empty() || PackageName::parse(&format!("@{name}/x")).is_err() {
        return Err(Error::Invalid(format!(
            "invalid organization name {:?}: use lower-case letters, digits, '-', '_' or '.'",
            name.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// `scope:team` or `@scope:team` → (scope, team).
pub fn split_team(entity: &str) -> Result<(&str, &str)> {
    entity
        .trim_start_matches('@')
        .split_once(':')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| Error::Invalid("a team is written scope:team".into()))
}

fn validate_team_name(team: &str) -> Result<()> {
    let ok = !team.is_empty()
        && team.len() <= 64
        && team.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid team name {:?}: use 1-64 lower-case letters, digits, '-', '_' or '.'",
            team.chars().take(80).collect::<String>()
        )))
    }
}

fn actor<'a>(app: &App, ip: &'a str) -> Actor<'a> {
    Actor { ip, now: app.now() }
}

async fn user_named(app: &App, name: &str) -> Result<UserRow> {
    app.store
        .user_by_name(name.trim_start_matches('@'))
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {name} not found")))
}

async fn org_grant<A: access::grant::OrgAct>(
    app: &App,
    caller: &Caller,
    org: &str,
) -> Result<OrgGrant<A>> {
    let target = access::org_facts(app, caller, org.trim_start_matches('@')).await?;
    access::authorize_org::<A>(app, caller, &target).await
}

fn change(result: OrgChange, what: &str) -> Result<()> {
    match result {
        OrgChange::Done | OrgChange::Unchanged => Ok(()),
        OrgChange::LastOwner => Err(Error::Conflict(
            "an organization needs at least one owner; make someone else an owner first".into(),
        )),
        OrgChange::NotMember => Err(Error::Invalid(format!(
            "{what} is not a member of the organization; add them with `npm org set` first"
        ))),
        OrgChange::NoTeam => Err(Error::NotFound(format!("team {what} not found"))),
        OrgChange::NoPackage => Err(Error::NotFound(format!(
            "package {what} not found in this organization's scope"
        ))),
    }
}

/// Creates an organization; the caller becomes its owner and joins its `developers`
/// team. The name must be free: no organization, no user, and no scope someone else
/// published in first.
pub async fn create(app: &App, caller: &Caller, name: &str) -> Result<()> {
    let name = name.trim_start_matches('@');
    validate_org_name(name)?;
    let grant = access::authorize_account::<act::CreateOrg>(app, caller).await?;
    match app
        .store
        .create_org(&grant, name, actor(app, &caller.ip_text()))
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict) => Err(Error::Conflict(format!(
            "the name {name} is taken (by an organization, a user, or a scope another user publishes in)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// What `npm org set` prints.
#[derive(Debug, Clone)]
pub struct MemberSet {
    pub org: String,
    pub size: usize,
    pub user: String,
    pub role: OrgRole,
}

/// `npm org set ORG USER [ROLE]`: adds a member or changes their role. Making or
/// unmaking an owner needs an owner; other changes an owner or admin.
pub async fn set_member(
    app: &App,
    caller: &Caller,
    org: &str,
    user: &str,
    role: Option<&str>,
) -> Result<MemberSet> {
    let org = org.trim_start_matches('@');
    let role: OrgRole = match role {
        None | Some("") => OrgRole::Developer,
        Some(text) => text.parse().map_err(|_| {
            Error::Invalid(format!(
                "unknown role {text:?}: use owner, admin or developer"
            ))
        })?,
    };
    let member = user_named(app, user).await?;
    let target = access::org_facts(app, caller, org).await?;
    let current = app
        .store
        .org_for_user(org, member.id)
        .await?
        .and_then(|(_, r)| r);
    let ip = caller.ip_text();
    let result = if role == OrgRole::Owner || current == Some(OrgRole::Owner) {
        let grant = access::authorize_org::<act::ManageOrgOwners>(app, caller, &target).await?;
        app.store
            .set_org_member(&grant, member.id, &member.name, role, actor(app, &ip))
            .await?
    } else {
        let grant = access::authorize_org::<act::ManageOrg>(app, caller, &target).await?;
        app.store
            .set_org_member(&grant, member.id, &member.name, role, actor(app, &ip))
            .await?
    };
    change(result, &member.name)?;
    let size = members(app, caller, org).await?.len();
    Ok(MemberSet {
        org: org.to_owned(),
        size,
        user: member.name,
        role,
    })
}

/// `npm org rm ORG USER`.
pub async fn remove_member(app: &App, caller: &Caller, org: &str, user: &str) -> Result<()> {
    let org = org.trim_start_matches('@');
    let member = user_named(app, user).await?;
    let target = access::org_facts(app, caller, org).await?;
    let current = app
        .store
        .org_for_user(org, member.id)
        .await?
        .and_then(|(_, r)| r);
    let ip = caller.ip_text();
    let result = if current == Some(OrgRole::Owner) {
        let grant = access::authorize_org::<act::ManageOrgOwners>(app, caller, &target).await?;
        app.store
            .remove_org_member(&grant, member.id, &member.name, actor(app, &ip))
            .await?
    } else {
        let grant = access::authorize_org::<act::ManageOrg>(app, caller, &target).await?;
        app.store
            .remove_org_member(&grant, member.id, &member.name, actor(app, &ip))
            .await?
    };
    change(result, &member.name)
}

/// `npm org ls ORG`: members and roles.
pub async fn members(app: &App, caller: &Caller, org: &str) -> Result<Vec<OrgMember>> {
    let grant = org_grant::<act::ReadOrg>(app, caller, org).await?;
    Ok(app.store.org_members(&grant).await?)
}

/// `npm team create ORG:TEAM`.
pub async fn create_team(
    app: &App,
    caller: &Caller,
    org: &str,
    team: &str,
    description: Option<&str>,
) -> Result<()> {
    validate_team_name(team)?;
    let grant = org_grant::<act::ManageOrg>(app, caller, org).await?;
    let description = description
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.chars().take(256).collect::<String>());
    match app
        .store
        .create_team(
            &grant,
            team,
            description.as_deref(),
            actor(app, &caller.ip_text()),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => {
            Err(Error::Conflict(format!("team {org}:{team} already exists")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `npm team destroy ORG:TEAM` (not `developers`: every member belongs to it).
pub async fn destroy_team(app: &App, caller: &Caller, org: &str, team: &str) -> Result<()> {
    let grant = org_grant::<act::ManageOrg>(app, caller, org).await?;
    if team == DEVELOPERS_TEAM {
        return Err(Error::Invalid(
            "the developers team cannot be deleted: every member belongs to it".into(),
        ));
    }
    let result = app
        .store
        .destroy_team(&grant, team, actor(app, &caller.ip_text()))
        .await?;
    change(result, &format!("{org}:{team}"))
}

/// `npm team ls ORG`: `org:team` names.
pub async fn teams(app: &App, caller: &Caller, org: &str) -> Result<Vec<(String, Option<String>)>> {
    let grant = org_grant::<act::ReadOrg>(app, caller, org).await?;
    Ok(app
        .store
        .org_teams(&grant)
        .await?
        .into_iter()
        .map(|t| (t.name, t.description))
        .collect())
}

/// `npm team ls ORG:TEAM`: the team's members.
pub async fn team_members(
    app: &App,
    caller: &Caller,
    org: &str,
    team: &str,
) -> Result<Vec<String>> {
    let grant = org_grant::<act::ReadOrg>(app, caller, org).await?;
    app.store
        .team_members(&grant, team)
        .await?
        .ok_or_else(|| Error::NotFound(format!("team {org}:{team} not found")))
}

/// `npm team add|rm ORG:TEAM USER`.
pub async fn set_team_member(
    app: &App,
    caller: &Caller,
    org: &str,
    team: &str,
    user: &str,
    add: bool,
) -> Result<()> {
    let member = user_named(app, user).await?;
    let grant = org_grant::<act::ManageOrg>(app, caller, org).await?;
    let result = app
        .store
        .set_team_member(
            &grant,
            team,
            member.id,
            &member.name,
            add,
            actor(app, &caller.ip_text()),
        )
        .await?;
    match result {
        OrgChange::NoTeam => change(result, &format!("{org}:{team}")),
        other => change(other, &member.name),
    }
}

/// `npm access grant|revoke … ORG:TEAM PACKAGE`: `None` revokes.
pub async fn set_grant(
    app: &App,
    caller: &Caller,
    org: &str,
    team: &str,
    package: &str,
    permission: Option<&str>,
) -> Result<()> {
    let level = match permission {
        None => None,
        Some("read-only") => Some(PackagePermission::ReadOnly),
        Some("read-write") => Some(PackagePermission::ReadWrite),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "unknown permission {other:?}: use read-only or read-write"
            )));
        }
    };
    let name = PackageName::parse(package).map_err(|e| Error::Invalid(e.to_string()))?;
    let grant = org_grant::<act::ManageOrg>(app, caller, org).await?;
    if name.scope() != Some(grant.name()) {
        return Err(Error::Invalid(format!(
            "{name} is not in the organization's scope @{}",
            grant.name()
        )));
    }
    let result = app
        .store
        .set_team_grant(
            &grant,
            team,
            name.as_str(),
            level,
            actor(app, &caller.ip_text()),
        )
        .await?;
    match result {
        OrgChange::NoTeam => change(result, &format!("{org}:{team}")),
        other => change(other, name.as_str()),
    }
}

/// `npm access list packages ORG:TEAM`.
pub async fn team_packages(
    app: &App,
    caller: &Caller,
    org: &str,
    team: &str,
) -> Result<Vec<(String, PackagePermission)>> {
    let grant = org_grant::<act::ReadOrg>(app, caller, org).await?;
    app.store
        .team_packages(&grant, team)
        .await?
        .ok_or_else(|| Error::NotFound(format!("team {org}:{team} not found")))
}

/// `npm access list packages ORG`: the organization's packages the calling credential
/// reaches, with its permission on each.
pub async fn org_packages(
    app: &App,
    caller: &Caller,
    org: &str,
) -> Result<Vec<(String, PackagePermission)>> {
    let grant = org_grant::<act::ReadOrg>(app, caller, org).await?;
    let mut out = Vec::new();
    for package in app.store.org_package_names(&grant).await? {
        let Ok(name) = PackageName::parse(&package) else {
            continue;
        };
        let target = access::package_facts(app, Some(caller), &name).await?;
        if !access::preflight(app, Some(caller), Action::ReadPackage, Some(&target)).allows() {
            continue;
        }
        let writes = access::preflight(app, Some(caller), Action::Publish, Some(&target)).allows();
        out.push((
            package,
            if writes {
                PackagePermission::ReadWrite
            } else {
                PackagePermission::ReadOnly
            },
        ));
    }
    Ok(out)
}

/// The organization's log (owners).
pub async fn events(app: &App, caller: &Caller, org: &str) -> Result<Vec<OrgEventRow>> {
    let grant = org_grant::<act::AuditOrg>(app, caller, org).await?;
    Ok(app.store.org_events(&grant, 200).await?)
}

/// The organizations the caller belongs to, with their role.
pub async fn mine(app: &App, caller: &Caller) -> Result<Vec<(String, OrgRole)>> {
    let grant = access::authorize_account::<act::ReadProfile>(app, caller).await?;
    Ok(app.store.orgs_of_user(&grant).await?)
}

/// Whether the caller may change the organization's members and teams (to show or
/// hide the forms).
pub async fn may_manage(app: &App, caller: &Caller, org: &str) -> Result<bool> {
    let target = access::org_facts(app, caller, org).await?;
    Ok(access::org_preflight(caller, Action::ManageOrg, &target).allows())
}

/// The caller's role in the organization, if a member.
pub async fn role_of_caller(app: &App, caller: &Caller, org: &str) -> Result<Option<OrgRole>> {
    let target = access::org_facts(app, caller, org).await?;
    Ok(target.facts().role)
}
