//! Organizations, their members and teams, and team grants on packages. Every write
//! goes through `Store::writing` (a change of rights must reach the next request, the
//! read cache included) and leaves an `org_events` row in the same transaction.

use super::{BeginWrite, Store, StoreError, StoreResult, Stored, on_pool};
use crate::domain::access::{
    AccountGrant, ManagesOrg, OrgGrant, OrgRole, PackagePermission, UnknownValue, act,
};

/// An organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// A member and their role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMember {
    pub user_id: i64,
    pub name: String,
    pub role: OrgRole,
}

/// A team of an organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
}

/// A team granted on a package, with its members (user id, name).
#[derive(Debug, Clone)]
pub struct TeamGrantRow {
    pub org: String,
    pub team: String,
    pub permission: PackagePermission,
    pub members: Vec<(i64, String)>,
}

/// What an organization-log entry is about. Stored by its name (`as_str`), which
/// must never change for a kind already written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgEventKind {
    OrgCreated,
    MemberSet,
    MemberRemoved,
    TeamCreated,
    TeamDestroyed,
    TeamMemberAdded,
    TeamMemberRemoved,
    GrantSet,
    GrantRevoked,
}

impl OrgEventKind {
    pub const ALL: [OrgEventKind; 9] = [
        Self::OrgCreated,
        Self::MemberSet,
        Self::MemberRemoved,
        Self::TeamCreated,
        Self::TeamDestroyed,
        Self::TeamMemberAdded,
        Self::TeamMemberRemoved,
        Self::GrantSet,
        Self::GrantRevoked,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgCreated => "org-created",
            Self::MemberSet => "member-set",
            Self::MemberRemoved => "member-removed",
            Self::TeamCreated => "team-created",
            Self::TeamDestroyed => "team-destroyed",
            Self::TeamMemberAdded => "team-member-added",
            Self::TeamMemberRemoved => "team-member-removed",
            Self::GrantSet => "grant-set",
            Self::GrantRevoked => "grant-revoked",
        }
    }
}

impl std::str::FromStr for OrgEventKind {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownValue(text.chars().take(64).collect()))
    }
}

/// One entry of an organization's log (a kind this build does not know stays
/// readable as text and is shown as a generic event).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgEventRow {
    pub actor: Option<String>,
    #[sqlx(try_from = "String")]
    pub kind: Stored<OrgEventKind>,
    pub detail: String,
    pub ip: Option<String>,
    pub created_at: i64,
}

/// The team every organization starts with; new members join it.
pub const DEVELOPERS_TEAM: &str = "developers";

/// What an organization change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgChange {
    Done,
    /// Nothing to do: already so.
    Unchanged,
    /// The organization would be left without an owner.
    LastOwner,
    /// The user is not a member of the organization.
    NotMember,
    /// No such team.
    NoTeam,
    /// No such package in the organization's scope.
    NoPackage,
}

/// Who did a change, for the organization's log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub ip: &'a str,
    pub now: i64,
}

fn parse_role(text: &str) -> Option<OrgRole> {
    text.parse().ok()
}

macro_rules! org_event {
    ($tx:expr, $org:expr, $actor_id:expr, $kind:expr, $detail:expr, $actor:expr) => {
        sqlx::query(
            "INSERT INTO org_events (org_id, actor_id, kind, detail, ip, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($org)
        .bind($actor_id)
        .bind(OrgEventKind::as_str($kind))
        .bind($detail)
        .bind($actor.ip)
        .bind($actor.now)
        .execute(&mut *$tx)
        .await
    };
}

/// Inside a creation: the owner, the `developers` team with the owner in it, the
/// scope claimed for the organization, and the log entry.
macro_rules! adopt_scope_in_tx {
    ($tx:expr, $org:expr, $owner:expr, $actor:expr) => {{
        async {
            sqlx::query(
                "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
            )
            .bind($org.id)
            .bind($owner)
            .bind($actor.now)
            .execute(&mut *$tx)
            .await?;
            let team: i64 = sqlx::query_scalar(
                "INSERT INTO teams (org_id, name, description, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind($org.id)
            .bind(DEVELOPERS_TEAM)
            .bind("Every member joins this team")
            .bind($actor.now)
            .fetch_one(&mut *$tx)
            .await?;
            sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
                .bind(team)
                .bind($owner)
                .execute(&mut *$tx)
                .await?;
            sqlx::query(
                "INSERT INTO scopes (name, owner_id) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET owner_id = excluded.owner_id",
            )
            .bind(&$org.name)
            .bind($owner)
            .execute(&mut *$tx)
            .await?;
            org_event!(
                $tx,
                $org.id,
                $owner,
                OrgEventKind::OrgCreated,
                format!("organization {} created", $org.name),
                $actor
            )?;
            Ok::<(), sqlx::Error>(())
        }
        .await
    }};
}

/// Owners of an organization, inside a transaction.
macro_rules! owners_in_tx {
    ($tx:expr, $org:expr) => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = 'owner'",
        )
        .bind($org)
        .fetch_one(&mut *$tx)
        .await
    };
}

impl Store {
    /// The organization named `name` and `user_id`'s role in it (a fact read for the
    /// access decision).
    pub async fn org_for_user(
        &self,
        name: &str,
        user_id: i64,
    ) -> StoreResult<Option<(OrgRow, Option<OrgRole>)>> {
        const SQL: &str = "SELECT o.id, o.name, o.created_at, \
            (SELECT role FROM org_members m WHERE m.org_id = o.id AND m.user_id = $2) AS role \
            FROM orgs o WHERE o.name = $1";
        let row: Option<(i64, String, i64, Option<String>)> =
            on_pool!(self, |p| sqlx::query_as(SQL)
                .bind(name)
                .bind(user_id)
                .fetch_optional(p)
                .await)?;
        Ok(row.map(|(id, name, created_at, role)| {
            (
                OrgRow {
                    id,
                    name,
                    created_at,
                },
                role.as_deref().and_then(parse_role),
            )
        }))
    }

    /// Whether an organization named `name` exists.
    pub async fn org_exists(&self, name: &str) -> StoreResult<bool> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM orgs WHERE name = $1"
        )
        .bind(name)
        .fetch_one(p)
        .await)?;
        Ok(n > 0)
    }

    /// Creates an organization owned by the grant's account, with its `developers`
    /// team, and takes its scope. `Err(Conflict)` when the name is taken: by an
    /// organization, a user, or a scope someone else published in first.
    pub async fn create_org(
        &self,
        grant: &AccountGrant<act::CreateOrg>,
        name: &str,
        actor: Actor<'_>,
    ) -> StoreResult<OrgRow> {
        let owner = grant.user_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let user_named: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE name = $1")
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                let scope_owner: Option<i64> =
                    sqlx::query_scalar("SELECT owner_id FROM scopes WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                if user_named > 0 || scope_owner.is_some_and(|o| o != owner) {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict);
                }
                let org: OrgRow = sqlx::query_as(
                    "INSERT INTO orgs (name, created_at) VALUES ($1, $2) \
                     RETURNING id, name, created_at",
                )
                .bind(name)
                .bind(actor.now)
                .fetch_one(&mut *tx)
                .await?;
                adopt_scope_in_tx!(tx, org, owner, actor)?;
                tx.commit().await?;
                Ok(org)
            })
        })
        .await
    }

    /// Turns a scope into an organization owned by `owner` (an operator command: the
    /// scope may already hold packages published first-come).
    pub async fn adopt_scope_as_org(
        &self,
        name: &str,
        owner: i64,
        actor: Actor<'_>,
    ) -> StoreResult<OrgRow> {
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let org: OrgRow = sqlx::query_as(
                    "INSERT INTO orgs (name, created_at) VALUES ($1, $2) \
                     RETURNING id, name, created_at",
                )
                .bind(name)
                .bind(actor.now)
                .fetch_one(&mut *tx)
                .await?;
                adopt_scope_in_tx!(tx, org, owner, actor)?;
                // Everyone who maintains a package in the scope stays able to reach
                // it: they become developers.
                let maintainers: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT m.user_id FROM maintainers m JOIN packages pk ON pk.id = m.package_id \
                     WHERE pk.scope = $1 AND m.user_id <> $2",
                )
                .bind(name)
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
                for user in maintainers {
                    sqlx::query(
                        "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, 'developer', $3) \
                         ON CONFLICT (org_id, user_id) DO NOTHING",
                    )
                    .bind(org.id)
                    .bind(user)
                    .bind(actor.now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO team_members (team_id, user_id) \
                         SELECT t.id, $2 FROM teams t WHERE t.org_id = $1 AND t.name = 'developers' \
                         ON CONFLICT (team_id, user_id) DO NOTHING",
                    )
                    .bind(org.id)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(org)
            })
        })
        .await
    }

    /// Members with their roles, by name.
    pub async fn org_members(&self, grant: &OrgGrant<act::ReadOrg>) -> StoreResult<Vec<OrgMember>> {
        const SQL: &str = "SELECT u.id, u.name, m.role FROM org_members m JOIN users u ON u.id = m.user_id \
                           WHERE m.org_id = $1 ORDER BY u.name";
        let rows: Vec<(i64, String, String)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(grant.org_id())
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, name, role)| {
                Some(OrgMember {
                    user_id,
                    name,
                    role: parse_role(&role)?,
                })
            })
            .collect())
    }

    /// Sets `user_id`'s role (adding them, and putting new members in `developers`).
    /// Refuses to demote the last owner.
    pub async fn set_org_member(
        &self,
        grant: &impl ManagesOrg,
        user_id: i64,
        user_name: &str,
        role: OrgRole,
        actor: Actor<'_>,
    ) -> StoreResult<OrgChange> {
        let org = grant.org_id();
        let by = grant.actor();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let current = current.as_deref().and_then(parse_role);
                if current == Some(role) {
                    tx.rollback().await?;
                    return Ok(OrgChange::Unchanged);
                }
                if current == Some(OrgRole::Owner) && owners_in_tx!(tx, org)? <= 1 {
                    tx.rollback().await?;
                    return Ok(OrgChange::LastOwner);
                }
                sqlx::query(
                    "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(org)
                .bind(user_id)
                .bind(role.as_str())
                .bind(actor.now)
                .execute(&mut *tx)
                .await?;
                if current.is_none() {
                    sqlx::query(
                        "INSERT INTO team_members (team_id, user_id) \
                         SELECT t.id, $2 FROM teams t WHERE t.org_id = $1 AND t.name = 'developers' \
                         ON CONFLICT (team_id, user_id) DO NOTHING",
                    )
                    .bind(org)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let detail = match current {
                    None => format!("{user_name} joined as {}", role.as_str()),
                    Some(old) => format!("{user_name}: {} → {}", old.as_str(), role.as_str()),
                };
                org_event!(tx, org, by, OrgEventKind::MemberSet, detail, actor)?;
                tx.commit().await?;
                Ok(OrgChange::Done)
            })
        })
        .await
    }

    /// Removes a member (and them from every team of the organization). Refuses to
    /// remove the last owner.
    pub async fn remove_org_member(
        &self,
        grant: &impl ManagesOrg,
        user_id: i64,
        user_name: &str,
        actor: Actor<'_>,
    ) -> StoreResult<OrgChange> {
        let org = grant.org_id();
        let by = grant.actor();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(current) = current else {
                    tx.rollback().await?;
                    return Ok(OrgChange::NotMember);
                };
                if parse_role(&current) == Some(OrgRole::Owner) && owners_in_tx!(tx, org)? <= 1 {
                    tx.rollback().await?;
                    return Ok(OrgChange::LastOwner);
                }
                sqlx::query(
                    "DELETE FROM team_members WHERE user_id = $2 AND team_id IN (SELECT id FROM teams WHERE org_id = $1)",
                )
                .bind(org)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                org_event!(tx, org, by, OrgEventKind::MemberRemoved, format!("{user_name} removed"), actor)?;
                tx.commit().await?;
                Ok(OrgChange::Done)
            })
        })
        .await
    }

    /// Teams of the organization, by name.
    pub async fn org_teams(&self, grant: &OrgGrant<act::ReadOrg>) -> StoreResult<Vec<TeamRow>> {
        const SQL: &str = "SELECT id, name, description FROM teams WHERE org_id = $1 ORDER BY name";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TeamRow>(SQL)
            .bind(grant.org_id())
            .fetch_all(p)
            .await)?)
    }

    /// Creates a team; `Err(Conflict)` when the name is taken in the organization.
    pub async fn create_team(
        &self,
        grant: &OrgGrant<act::ManageOrg>,
        team: &str,
        description: Option<&str>,
        actor: Actor<'_>,
    ) -> StoreResult<()> {
        let org = grant.org_id();
        let by = grant.user_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                sqlx::query(
                    "INSERT INTO teams (org_id, name, description, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(org)
                .bind(team)
                .bind(description)
                .bind(actor.now)
                .execute(&mut *tx)
                .await?;
                org_event!(tx, org, by, OrgEventKind::TeamCreated, format!("team {team} created"), actor)?;
                tx.commit().await
            })?;
            Ok(())
        })
        .await
    }

    /// Deletes a team with its members and grants.
    pub async fn destroy_team(
        &self,
        grant: &OrgGrant<act::ManageOrg>,
        team: &str,
        actor: Actor<'_>,
    ) -> StoreResult<OrgChange> {
        let org = grant.org_id();
        let by = grant.user_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let done = sqlx::query("DELETE FROM teams WHERE org_id = $1 AND name = $2")
                    .bind(org)
                    .bind(team)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    tx.rollback().await?;
                    return Ok(OrgChange::NoTeam);
                }
                org_event!(
                    tx,
                    org,
                    by,
                    OrgEventKind::TeamDestroyed,
                    format!("team {team} deleted"),
                    actor
                )?;
                tx.commit().await?;
                Ok(OrgChange::Done)
            })
        })
        .await
    }

    /// Members of one team, by name; `None` when there is no such team.
    pub async fn team_members(
        &self,
        grant: &OrgGrant<act::ReadOrg>,
        team: &str,
    ) -> StoreResult<Option<Vec<String>>> {
        if self.team_id(grant.org_id(), team).await?.is_none() {
            return Ok(None);
        }
        const SQL: &str = "SELECT u.name FROM team_members tm JOIN teams t ON t.id = tm.team_id \
                           JOIN users u ON u.id = tm.user_id WHERE t.org_id = $1 AND t.name = $2 ORDER BY u.name";
        Ok(Some(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(grant.org_id())
            .bind(team)
            .fetch_all(p)
            .await)?))
    }

    async fn team_id(&self, org: i64, team: &str) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT id FROM teams WHERE org_id = $1 AND name = $2"
        )
        .bind(org)
        .bind(team)
        .fetch_optional(p)
        .await)?)
    }

    /// Adds (`add`) or removes a member of the organization to or from a team.
    pub async fn set_team_member(
        &self,
        grant: &OrgGrant<act::ManageOrg>,
        team: &str,
        user_id: i64,
        user_name: &str,
        add: bool,
        actor: Actor<'_>,
    ) -> StoreResult<OrgChange> {
        let org = grant.org_id();
        let by = grant.user_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let team_id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM teams WHERE org_id = $1 AND name = $2")
                        .bind(org)
                        .bind(team)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(team_id) = team_id else {
                    tx.rollback().await?;
                    return Ok(OrgChange::NoTeam);
                };
                let member: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
                if member == 0 {
                    tx.rollback().await?;
                    return Ok(OrgChange::NotMember);
                }
                let done = if add {
                    sqlx::query(
                        "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) \
                         ON CONFLICT (team_id, user_id) DO NOTHING",
                    )
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                } else {
                    sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                        .bind(team_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                };
                if done == 0 {
                    tx.rollback().await?;
                    return Ok(OrgChange::Unchanged);
                }
                let (kind, detail) = if add {
                    (
                        OrgEventKind::TeamMemberAdded,
                        format!("{user_name} added to team {team}"),
                    )
                } else {
                    (
                        OrgEventKind::TeamMemberRemoved,
                        format!("{user_name} removed from team {team}"),
                    )
                };
                org_event!(tx, org, by, kind, detail, actor)?;
                tx.commit().await?;
                Ok(OrgChange::Done)
            })
        })
        .await
    }

    /// Grants a team a permission on a package of the organization's scope (`None`
    /// revokes it).
    pub async fn set_team_grant(
        &self,
        grant: &OrgGrant<act::ManageOrg>,
        team: &str,
        package: &str,
        permission: Option<PackagePermission>,
        actor: Actor<'_>,
    ) -> StoreResult<OrgChange> {
        let org = grant.org_id();
        let by = grant.user_id();
        let scope = grant.name().to_owned();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let team_id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM teams WHERE org_id = $1 AND name = $2")
                        .bind(org)
                        .bind(team)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(team_id) = team_id else {
                    tx.rollback().await?;
                    return Ok(OrgChange::NoTeam);
                };
                let package_id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM packages WHERE name = $1 AND scope = $2")
                        .bind(package)
                        .bind(&scope)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(package_id) = package_id else {
                    tx.rollback().await?;
                    return Ok(OrgChange::NoPackage);
                };
                let done = match permission {
                    Some(level) => sqlx::query(
                        "INSERT INTO team_packages (team_id, package_id, permission) VALUES ($1, $2, $3) \
                         ON CONFLICT (team_id, package_id) DO UPDATE SET permission = excluded.permission",
                    )
                    .bind(team_id)
                    .bind(package_id)
                    .bind(level.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    None => sqlx::query("DELETE FROM team_packages WHERE team_id = $1 AND package_id = $2")
                        .bind(team_id)
                        .bind(package_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                if done == 0 {
                    tx.rollback().await?;
                    return Ok(OrgChange::Unchanged);
                }
                let detail = match permission {
                    Some(level) => format!("team {team} granted {} on {package}", level.as_str()),
                    None => format!("team {team} no longer reaches {package}"),
                };
                let kind = if permission.is_some() { OrgEventKind::GrantSet } else { OrgEventKind::GrantRevoked };
                org_event!(tx, org, by, kind, detail, actor)?;
                tx.commit().await?;
                Ok(OrgChange::Done)
            })
        })
        .await
    }

    /// A team's packages with their permission; `None` when there is no such team.
    pub async fn team_packages(
        &self,
        grant: &OrgGrant<act::ReadOrg>,
        team: &str,
    ) -> StoreResult<Option<Vec<(String, PackagePermission)>>> {
        if self.team_id(grant.org_id(), team).await?.is_none() {
            return Ok(None);
        }
        const SQL: &str = "SELECT pk.name, tp.permission FROM team_packages tp JOIN teams t ON t.id = tp.team_id \
                           JOIN packages pk ON pk.id = tp.package_id WHERE t.org_id = $1 AND t.name = $2 ORDER BY pk.name";
        let rows: Vec<(String, String)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(grant.org_id())
            .bind(team)
            .fetch_all(p)
            .await)?;
        Ok(Some(
            rows.into_iter()
                .filter_map(|(name, level)| Some((name, level.parse().ok()?)))
                .collect(),
        ))
    }

    /// Names of the packages in the organization's scope.
    pub async fn org_package_names(
        &self,
        grant: &OrgGrant<act::ReadOrg>,
    ) -> StoreResult<Vec<String>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT name FROM packages WHERE scope = $1 ORDER BY name"
        )
        .bind(grant.name())
        .fetch_all(p)
        .await)?)
    }

    /// The teams granted on a package, with their members and permission (for
    /// collaborator lists and the credentials view).
    pub async fn package_team_grants(&self, package_id: i64) -> StoreResult<Vec<TeamGrantRow>> {
        const SQL: &str = "SELECT o.name, t.name, tp.permission, u.id, u.name FROM team_packages tp \
            JOIN teams t ON t.id = tp.team_id JOIN orgs o ON o.id = t.org_id \
            LEFT JOIN team_members tm ON tm.team_id = t.id LEFT JOIN users u ON u.id = tm.user_id \
            WHERE tp.package_id = $1 ORDER BY t.name, u.name";
        type Row = (String, String, String, Option<i64>, Option<String>);
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(package_id)
            .fetch_all(p)
            .await)?;
        let mut out: Vec<TeamGrantRow> = Vec::new();
        for (org, team, level, user_id, user) in rows {
            let Ok(permission) = level.parse() else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.org == org && last.team == team => {}
                _ => out.push(TeamGrantRow {
                    org: org.clone(),
                    team: team.clone(),
                    permission,
                    members: Vec::new(),
                }),
            }
            if let (Some(id), Some(name), Some(last)) = (user_id, user, out.last_mut()) {
                last.members.push((id, name));
            }
        }
        Ok(out)
    }

    /// Maintainers of a package in the audited organization's scope.
    pub async fn maintainer_ids_for_audit(
        &self,
        grant: &OrgGrant<act::AuditOrg>,
        package_id: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        const SQL: &str = "SELECT u.id, u.name FROM maintainers m JOIN users u ON u.id = m.user_id \
                           JOIN packages pk ON pk.id = m.package_id \
                           WHERE m.package_id = $1 AND pk.scope = $2 ORDER BY u.name";
        Ok(on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(package_id)
            .bind(grant.name())
            .fetch_all(p)
            .await)?)
    }

    /// Owners and admins of the organization owning `scope` (for the credentials view).
    pub async fn scope_org_admins(&self, scope: &str) -> StoreResult<Vec<(i64, String, OrgRole)>> {
        const SQL: &str = "SELECT u.id, u.name, m.role FROM org_members m JOIN orgs o ON o.id = m.org_id \
                           JOIN users u ON u.id = m.user_id WHERE o.name = $1 AND m.role IN ('owner', 'admin') \
                           ORDER BY u.name";
        let rows: Vec<(i64, String, String)> =
            on_pool!(self, |p| sqlx::query_as(SQL).bind(scope).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, name, role)| Some((id, name, parse_role(&role)?)))
            .collect())
    }

    /// The organization's log, newest first.
    pub async fn org_events(
        &self,
        grant: &OrgGrant<act::AuditOrg>,
        limit: i64,
    ) -> StoreResult<Vec<OrgEventRow>> {
        const SQL: &str = "SELECT u.name AS actor, e.kind, e.detail, e.ip, e.created_at FROM org_events e \
                           LEFT JOIN users u ON u.id = e.actor_id WHERE e.org_id = $1 \
                           ORDER BY e.created_at DESC, e.id DESC LIMIT $2";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, OrgEventRow>(SQL)
            .bind(grant.org_id())
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    /// Organizations `user_id` belongs to, with their role.
    pub async fn orgs_of_user(
        &self,
        grant: &AccountGrant<act::ReadProfile>,
    ) -> StoreResult<Vec<(String, OrgRole)>> {
        const SQL: &str = "SELECT o.name, m.role FROM org_members m JOIN orgs o ON o.id = m.org_id \
                           WHERE m.user_id = $1 ORDER BY o.name";
        let rows: Vec<(String, String)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(grant.user_id())
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, role)| Some((name, parse_role(&role)?)))
            .collect())
    }
}
