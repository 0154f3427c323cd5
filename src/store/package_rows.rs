//! Packages, versions, dist-tags, maintainers and scopes. Every write bumps the
//! package's `rev`, which versions the cached packument across instances.

use super::{BeginWrite, Store, StoreError, StoreResult, Stored, execute_write, on_pool};
use crate::domain::access::{
    ListingGrant, MfaPolicy, OrgRole, PackageAccess, PackageGrant, PackagePermission, PublishGrant,
    act,
};

/// A package row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PackageRow {
    pub id: i64,
    pub name: String,
    pub scope: Option<String>,
    #[sqlx(try_from = "String")]
    pub access: Stored<PackageAccess>,
    /// From the `publish_requires_tfa` and `automation_overrides_tfa` flags.
    #[sqlx(flatten)]
    pub mfa: MfaPolicy,
    /// 1: new versions only through trusted publishing.
    pub trusted_publishing_only: i64,
    pub rev: i64,
    pub description: Option<String>,
    pub created_at: i64,
    pub modified_at: i64,
}

impl PackageRow {
    /// Public packages are readable by anyone the registry lets read; an access value
    /// that cannot be read counts as restricted.
    pub fn is_public(&self) -> bool {
        self.access.get() == Some(PackageAccess::Public)
    }
}

/// A package row with the caller's rights on it.
#[derive(sqlx::FromRow)]
struct PackageUserRow {
    #[sqlx(flatten)]
    package: PackageRow,
    maintains: i64,
    in_org: i64,
    org_role: Option<String>,
    team_level: Option<i64>,
}

/// A caller's own rights on one package, as read for the access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallerRights {
    /// A maintainer (for a package in an organization's scope: and a member).
    pub maintains: bool,
    /// Role in the organization that owns the package's scope.
    pub org_role: Option<OrgRole>,
    /// Best permission granted to one of the caller's teams.
    pub team_permission: Option<PackagePermission>,
}

impl PackageUserRow {
    fn rights(&self) -> CallerRights {
        // An unreadable stored role counts as no role (fail closed).
        let org_role = self.org_role.as_deref().and_then(|r| r.parse().ok());
        let in_org = self.in_org > 0;
        CallerRights {
            maintains: self.maintains > 0 && (!in_org || org_role.is_some()),
            org_role,
            team_permission: match self.team_level {
                Some(2) => Some(PackagePermission::ReadWrite),
                Some(1) => Some(PackagePermission::ReadOnly),
                _ => None,
            },
        }
    }
}

/// The SQL that reads a package with one user's rights on it (`$1` name, `$2` user).
/// Team permissions are ranked 2 (read-write) and 1 (read-only).
macro_rules! package_with_rights {
    ($where:literal) => {
        concat!(
            "SELECT p.id, p.name, p.scope, p.access, p.publish_requires_tfa, p.automation_overrides_tfa, \
             p.trusted_publishing_only, p.rev, p.description, p.created_at, p.modified_at, \
             (SELECT COUNT(*) FROM maintainers m WHERE m.package_id = p.id AND m.user_id = $2) AS maintains, \
             (SELECT COUNT(*) FROM orgs o WHERE o.name = p.scope) AS in_org, \
             (SELECT om.role FROM orgs o JOIN org_members om ON om.org_id = o.id \
               WHERE o.name = p.scope AND om.user_id = $2) AS org_role, \
             (SELECT CAST(MAX(CASE tp.permission WHEN 'read-write' THEN 2 WHEN 'read-only' THEN 1 ELSE 0 END) AS BIGINT) \
               FROM team_packages tp JOIN team_members tm ON tm.team_id = tp.team_id \
               JOIN teams t ON t.id = tp.team_id JOIN orgs o ON o.id = t.org_id \
               WHERE tp.package_id = p.id AND tm.user_id = $2 AND o.name = p.scope) AS team_level \
             FROM packages p ",
            $where
        )
    };
}

/// A version row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub version: String,
    pub manifest: String,
    pub readme: Option<String>,
    pub blob_key: String,
    pub size: i64,
    pub integrity: String,
    pub shasum: String,
    pub deprecated: Option<String>,
    pub published_at: i64,
}

/// A maintainer: (user id, name, email).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MaintainerRow {
    pub user_id: i64,
    pub name: String,
    pub email: String,
}

/// Everything needed to render a packument.
#[derive(Debug, Clone)]
pub struct PackageContents {
    pub package: PackageRow,
    pub versions: Vec<VersionRow>,
    pub tags: Vec<(String, String)>,
    pub maintainers: Vec<MaintainerRow>,
    /// Names of the users who starred the package.
    pub stars: Vec<String>,
}

/// A version to publish.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub scope: Option<&'a str>,
    /// Access for a new package; `None` keeps an existing package's access.
    pub access_if_new: &'a str,
    pub access_change: Option<&'a str>,
    pub version: &'a str,
    pub manifest: &'a str,
    pub readme: Option<&'a str>,
    pub description: Option<&'a str>,
    pub blob_key: &'a str,
    pub size: i64,
    pub integrity: &'a str,
    pub shasum: &'a str,
    pub user_id: i64,
    pub tags: &'a [(String, String)],
    /// The checked provenance bundle (`npm::provenance`), as sent.
    pub provenance: Option<&'a str>,
    pub now: i64,
}

/// What happened to a publish inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published { created_package: bool },
    VersionExists,
    NotMaintainer,
    ScopeTaken,
}

/// The result of a write made against a revision the client read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionWrite {
    Written,
    /// The package changed since that revision; nothing was written.
    RevisionChanged,
}

/// Bumps a package's revision inside a transaction (on PostgreSQL this also takes
/// the row lock); with an expected revision, only when the current one is that.
/// Evaluates to whether the row was updated. A macro so it type-checks per backend.
macro_rules! bump_rev {
    ($tx:expr, $package_id:expr, $expected:expr, $now:expr) => {{
        let expected: Option<i64> = $expected;
        sqlx::query(
            "UPDATE packages SET rev = rev + 1, modified_at = $2 \
             WHERE id = $1 AND ($3 = 0 OR rev = $4)",
        )
        .bind($package_id)
        .bind($now)
        .bind(i64::from(expected.is_some()))
        .bind(expected.unwrap_or(0))
        .execute(&mut *$tx)
        .await
        .map(|r| r.rows_affected() == 1)
    }};
}

/// Rewrites the package's search keywords from the version `latest` points to, inside
/// a write transaction (after anything that moves `latest`). A macro so it
/// type-checks per backend.
macro_rules! refresh_keywords {
    ($tx:expr, $package_id:expr) => {{
        let package_id: i64 = $package_id;
        let manifest: Option<String> = sqlx::query_scalar(
            "SELECT v.manifest FROM dist_tags d JOIN versions v \
             ON v.package_id = d.package_id AND v.version = d.version \
             WHERE d.package_id = $1 AND d.tag = 'latest'",
        )
        .bind(package_id)
        .fetch_optional(&mut *$tx)
        .await?;
        let keywords = manifest
            .as_deref()
            .and_then(crate::npm::keywords::index_text_of_stored);
        sqlx::query("UPDATE packages SET keywords = $2 WHERE id = $1")
            .bind(package_id)
            .bind(keywords)
            .execute(&mut *$tx)
            .await
            .map(|_| ())
    }};
}
pub(super) use refresh_keywords;

/// The revision bump of a publish into an existing package: description and access
/// when the body changes them, and the search keywords (`$6`) when the new version
/// becomes `latest` (`$5`).
pub(super) const UPDATE_FOR_PUBLISH: &str = "UPDATE packages SET rev = rev + 1, modified_at = $2, \
     description = COALESCE($3, description), access = COALESCE($4, access), \
     keywords = CASE WHEN $5 THEN $6 ELSE keywords END \
     WHERE name = $1 RETURNING id";

/// Publishes one version inside the write transaction `$tx`, as `publish_versions`
/// describes; evaluates to the package id and the outcome. Anything but `Published`
/// may leave writes behind: the caller then drops the transaction (rolls back). A
/// macro so it type-checks per backend, shared by a publish and a staged approval.
macro_rules! publish_in_tx {
    ($tx:expr, $v:expr) => {{
        let v: &$crate::store::NewVersion<'_> = $v;
        'publish: {
            // The search keywords follow `latest`; when this version becomes `latest`
            // they come from its manifest, written with the revision bump instead of
            // read back after the insert (two round trips fewer).
            let becomes_latest = v
                .tags
                .iter()
                .any(|(tag, version)| tag == "latest" && version == v.version);
            let keywords = becomes_latest
                .then(|| $crate::npm::keywords::index_text_of_stored(v.manifest))
                .flatten();
            // An existing package is updated in one statement, which also takes its row
            // lock on PostgreSQL, so concurrent publishes serialise here. A new one is
            // inserted; when a concurrent first publish won that insert, this one
            // becomes an update of its row.
            let mut created = false;
            let mut package_id: Option<i64> =
                sqlx::query_scalar($crate::store::package_rows::UPDATE_FOR_PUBLISH)
                    .bind(v.name)
                    .bind(v.now)
                    .bind(v.description)
                    .bind(v.access_change)
                    .bind(becomes_latest)
                    .bind(keywords.as_deref())
                    .fetch_optional(&mut *$tx)
                    .await?;
            if package_id.is_none() {
                package_id = sqlx::query_scalar(
                    "INSERT INTO packages (name, scope, access, rev, description, keywords, created_at, modified_at) \
                     VALUES ($1, $2, COALESCE($3, $4), 1, $5, $6, $7, $7) \
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .bind(v.name)
                .bind(v.scope)
                .bind(v.access_change)
                .bind(v.access_if_new)
                .bind(v.description)
                .bind(keywords.as_deref())
                .bind(v.now)
                .fetch_optional(&mut *$tx)
                .await?;
                created = package_id.is_some();
            }
            let package_id: i64 = match package_id {
                Some(id) => id,
                None => sqlx::query_scalar($crate::store::package_rows::UPDATE_FOR_PUBLISH)
                    .bind(v.name)
                    .bind(v.now)
                    .bind(v.description)
                    .bind(v.access_change)
                    .bind(becomes_latest)
                    .bind(keywords.as_deref())
                    .fetch_one(&mut *$tx)
                    .await?,
            };
            if created {
                // In an organization's scope, any member creates; elsewhere the
                // scope belongs to whoever published in it first.
                let org_member: Option<i64> = match v.scope {
                    Some(scope) => sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM org_members m WHERE m.org_id = o.id AND m.user_id = $2) \
                         FROM orgs o WHERE o.name = $1",
                    )
                    .bind(scope)
                    .bind(v.user_id)
                    .fetch_optional(&mut *$tx)
                    .await?,
                    None => None,
                };
                if org_member == Some(0) {
                    break 'publish (package_id, $crate::store::PublishOutcome::ScopeTaken);
                }
                if let Some(scope) = v.scope.filter(|_| org_member.is_none()) {
                    sqlx::query("INSERT INTO scopes (name, owner_id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                        .bind(scope)
                        .bind(v.user_id)
                        .execute(&mut *$tx)
                        .await?;
                    let owner: i64 =
                        sqlx::query_scalar("SELECT owner_id FROM scopes WHERE name = $1")
                            .bind(scope)
                            .fetch_one(&mut *$tx)
                            .await?;
                    if owner != v.user_id {
                        break 'publish (package_id, $crate::store::PublishOutcome::ScopeTaken);
                    }
                }
                sqlx::query("INSERT INTO maintainers (package_id, user_id) VALUES ($1, $2)")
                    .bind(package_id)
                    .bind(v.user_id)
                    .execute(&mut *$tx)
                    .await?;
            } else {
                // Rights at commit time, as the access decision reads them: a
                // maintainer (a member, in an organization's scope), an owner or
                // admin of the organization, or a team granted read-write.
                let n: i64 = sqlx::query_scalar($crate::store::package_rows::MAY_WRITE_SQL)
                .bind(package_id)
                .bind(v.user_id)
                .fetch_one(&mut *$tx)
                .await?;
                if n == 0 {
                    break 'publish (package_id, $crate::store::PublishOutcome::NotMaintainer);
                }
            }
            // A version key is published once per name, ever: the history row is
            // the first claim, the versions table's unique keys the second.
            let version_key = $crate::npm::version::key(v.version);
            let first = sqlx::query(
                "INSERT INTO version_history (name, version_key, version, published_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, version_key) DO NOTHING",
            )
            .bind(v.name)
            .bind(version_key)
            .bind(v.version)
            .bind(v.now)
            .execute(&mut *$tx)
            .await?;
            if first.rows_affected() == 0 {
                break 'publish (package_id, $crate::store::PublishOutcome::VersionExists);
            }
            let result = sqlx::query(
                "INSERT INTO versions (package_id, version, version_key, manifest, readme, blob_key, size, \
                 integrity, shasum, published_by, published_at, provenance) \
                 VALUES ($1, $2, $11, $3, $4, $5, $6, $7, $8, $9, $10, $12) ON CONFLICT DO NOTHING",
            )
            .bind(package_id)
            .bind(v.version)
            .bind(v.manifest)
            .bind(v.readme)
            .bind(v.blob_key)
            .bind(v.size)
            .bind(v.integrity)
            .bind(v.shasum)
            .bind(v.user_id)
            .bind(v.now)
            .bind(version_key)
            .bind(v.provenance)
            .execute(&mut *$tx)
            .await?;
            if result.rows_affected() == 0 {
                break 'publish (package_id, $crate::store::PublishOutcome::VersionExists);
            }
            for (tag, version) in v.tags {
                sqlx::query(
                    "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version",
                )
                .bind(package_id)
                .bind(tag)
                .bind(version)
                .execute(&mut *$tx)
                .await?;
            }
            if !becomes_latest && v.tags.iter().any(|(tag, _)| tag == "latest") {
                $crate::store::package_rows::refresh_keywords!($tx, package_id)?;
            }
            (
                package_id,
                $crate::store::PublishOutcome::Published {
                    created_package: created,
                },
            )
        }
    }};
}
pub(super) use publish_in_tx;

/// Takes the locks of blobs `$keys` (an iterator of `&str`) for the rest of the
/// transaction `$tx` (see `blob_lock_sql`); used by every write that makes a row
/// refer to a blob and by the garbage collector's delete.
macro_rules! lock_blobs {
    ($store:expr, $tx:expr, $keys:expr) => {{
        if let Some(lock) = $crate::store::package_rows::blob_lock_sql($store.dialect()) {
            for key in $keys {
                let key: &str = key;
                sqlx::query(lock)
                    .bind($crate::store::package_rows::blob_lock_id(key))
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
pub(super) use lock_blobs;

/// What removing one maintainer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintainerRemoval {
    Removed,
    NotAMaintainer,
    /// Refused: a package keeps at least one maintainer.
    LastMaintainer,
}

/// What remains of a deleted package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub deleted_at: i64,
    /// User ids of its maintainers when it was deleted.
    pub former_maintainers: Vec<i64>,
}

/// A search hit (or a recently changed package).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SearchRow {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub modified_at: i64,
    #[sqlx(try_from = "String")]
    pub access: Stored<PackageAccess>,
    /// How well a search matched: 0 the exact name, 1 the name after its scope, 2 a
    /// name starting with the text, 3 an exact keyword, 4 a name containing it, 5 only
    /// the description or part of a keyword; 0 outside searches.
    #[sqlx(default)]
    pub rank: i64,
}

/// What a search looks for, lower-cased: every term (in the name, description or
/// keywords) and every keyword (exactly one of the keywords).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub terms: Vec<String>,
    pub keywords: Vec<String>,
}

/// One page of a search and the number of all matches.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub rows: Vec<SearchRow>,
    pub total: i64,
}

impl SearchRow {
    pub fn is_public(&self) -> bool {
        self.access.get() == Some(PackageAccess::Public)
    }
}

/// Counts the ways `$2` may write package `$1` (0: none); see `PackageFacts`.
pub(super) const MAY_WRITE_SQL: &str = "SELECT \
    (SELECT COUNT(*) FROM maintainers m JOIN packages pk ON pk.id = m.package_id \
      WHERE m.package_id = $1 AND m.user_id = $2 AND (NOT EXISTS (SELECT 1 FROM orgs o WHERE o.name = pk.scope) \
        OR EXISTS (SELECT 1 FROM orgs o JOIN org_members om ON om.org_id = o.id WHERE o.name = pk.scope AND om.user_id = $2))) \
  + (SELECT COUNT(*) FROM packages pk JOIN orgs o ON o.name = pk.scope JOIN org_members om ON om.org_id = o.id \
      WHERE pk.id = $1 AND om.user_id = $2 AND om.role IN ('owner', 'admin')) \
  + (SELECT COUNT(*) FROM team_packages tp JOIN team_members tm ON tm.team_id = tp.team_id \
      JOIN teams t ON t.id = tp.team_id JOIN orgs o ON o.id = t.org_id JOIN packages pk ON pk.id = tp.package_id \
      WHERE tp.package_id = $1 AND tm.user_id = $2 AND tp.permission = 'read-write' AND o.name = pk.scope)";

const PACKAGE_SQL: &str = "SELECT id, name, scope, access, publish_requires_tfa, automation_overrides_tfa, \
    trusted_publishing_only, rev, description, created_at, modified_at FROM packages WHERE name = $1";

impl Store {
    pub async fn package_by_name(&self, name: &str) -> StoreResult<Option<PackageRow>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, PackageRow>(
            PACKAGE_SQL
        )
        .bind(name)
        .fetch_optional(p)
        .await)?)
    }

    /// The package row and `user_id`'s rights on it, in one indexed read (the access
    /// check's hot path). Without a user, no rights.
    pub async fn package_for_user(
        &self,
        name: &str,
        user_id: Option<i64>,
    ) -> StoreResult<Option<(std::sync::Arc<PackageRow>, CallerRights)>> {
        const SQL: &str = package_with_rights!("WHERE p.name = $1");
        let read = async {
            let row = on_pool!(self, |p| sqlx::query_as::<_, PackageUserRow>(SQL)
                .bind(name)
                .bind(user_id)
                .fetch_optional(p)
                .await)?;
            Ok(row.map(|r| {
                let rights = r.rights();
                (std::sync::Arc::new(r.package), rights)
            }))
        };
        self.cached_read(
            |c, t| c.package(t, name, user_id),
            read,
            |c, t, answer| c.put_package(t, name, user_id, answer.clone()),
        )
        .await
    }

    pub async fn scope_owner(&self, scope: &str) -> StoreResult<Option<i64>> {
        const SQL: &str = "SELECT owner_id FROM scopes WHERE name = $1";
        Ok(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(scope)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn maintainers(
        &self,
        grant: &PackageGrant<act::ReadPackage>,
    ) -> StoreResult<Vec<MaintainerRow>> {
        let package_id = grant.package_id();
        const SQL: &str = "SELECT u.id AS user_id, u.name, u.email FROM maintainers m \
                           JOIN users u ON u.id = m.user_id WHERE m.package_id = $1 ORDER BY u.name";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, MaintainerRow>(SQL)
            .bind(package_id)
            .fetch_all(p)
            .await)?)
    }

    /// Loads everything a packument is built from, in one read transaction so the
    /// parts agree with the returned `rev`.
    pub async fn package_contents(
        &self,
        grant: &PackageGrant<act::ReadPackage>,
    ) -> StoreResult<Option<PackageContents>> {
        let name = grant.name().as_str();
        const VERSIONS: &str = "SELECT version, manifest, readme, blob_key, size, integrity, shasum, \
            deprecated, published_at FROM versions WHERE package_id = $1 ORDER BY published_at, id";
        const TAGS: &str = "SELECT tag, version FROM dist_tags WHERE package_id = $1 ORDER BY tag";
        const MAINTAINERS: &str = "SELECT u.id AS user_id, u.name, u.email FROM maintainers m \
                           JOIN users u ON u.id = m.user_id WHERE m.package_id = $1 ORDER BY u.name";
        const STARS: &str = "SELECT u.name FROM stars s JOIN users u ON u.id = s.user_id \
                             WHERE s.package_id = $1 ORDER BY u.name";
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let Some(package) = sqlx::query_as::<_, PackageRow>(PACKAGE_SQL)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            let versions = sqlx::query_as::<_, VersionRow>(VERSIONS)
                .bind(package.id)
                .fetch_all(&mut *tx)
                .await?;
            let tags: Vec<(String, String)> = sqlx::query_as(TAGS)
                .bind(package.id)
                .fetch_all(&mut *tx)
                .await?;
            let maintainers = sqlx::query_as::<_, MaintainerRow>(MAINTAINERS)
                .bind(package.id)
                .fetch_all(&mut *tx)
                .await?;
            let stars: Vec<String> = sqlx::query_scalar(STARS)
                .bind(package.id)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(PackageContents {
                package,
                versions,
                tags,
                maintainers,
                stars,
            }))
        })
    }

    /// The blob key and size of one version's tarball.
    pub async fn tarball_of(
        &self,
        grant: &PackageGrant<act::ReadPackage>,
        version: &str,
    ) -> StoreResult<Option<(String, i64)>> {
        let package_id = grant.package_id();
        const SQL: &str =
            "SELECT blob_key, size FROM versions WHERE package_id = $1 AND version = $2";
        let read = async {
            Ok(on_pool!(self, |p| sqlx::query_as(SQL)
                .bind(package_id)
                .bind(version)
                .fetch_optional(p)
                .await)?)
        };
        self.cached_read(
            |c, t| c.tarball(t, package_id, version),
            read,
            |c, t, answer| c.put_tarball(t, package_id, version, answer.clone()),
        )
        .await
    }

    /// The provenance bundle stored with `version`, if the version has one.
    pub async fn provenance_of(
        &self,
        grant: &PackageGrant<act::ReadPackage>,
        version: &str,
    ) -> StoreResult<Option<String>> {
        const SQL: &str = "SELECT provenance FROM versions WHERE package_id = $1 AND version = $2";
        let package_id = grant.package_id();
        let row: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(package_id)
            .bind(version)
            .fetch_optional(p)
            .await)?;
        Ok(row.flatten())
    }

    /// Whether the package being published already has `version`.
    pub async fn version_exists(&self, grant: &PublishGrant, version: &str) -> StoreResult<bool> {
        const SQL: &str = "SELECT COUNT(*) FROM versions v JOIN packages p ON p.id = v.package_id \
                           WHERE p.name = $1 AND v.version = $2";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(grant.name().as_str())
            .bind(version)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// The maintainers of the package being published (its new version lists them).
    pub async fn maintainers_of_published(
        &self,
        grant: &PublishGrant,
    ) -> StoreResult<Vec<MaintainerRow>> {
        const SQL: &str = "SELECT u.id AS user_id, u.name, u.email FROM maintainers m \
                           JOIN users u ON u.id = m.user_id JOIN packages p ON p.id = m.package_id \
                           WHERE p.name = $1 ORDER BY u.name";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, MaintainerRow>(SQL)
            .bind(grant.name().as_str())
            .fetch_all(p)
            .await)?)
    }

    /// Whether the package being published has the dist-tag `tag`.
    pub async fn has_dist_tag(&self, grant: &PublishGrant, tag: &str) -> StoreResult<bool> {
        const SQL: &str = "SELECT COUNT(*) FROM dist_tags d JOIN packages p ON p.id = d.package_id \
                           WHERE p.name = $1 AND d.tag = $2";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(grant.name().as_str())
            .bind(tag)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// Publishes one version atomically: package (created if new, with its first
    /// maintainer and scope claim), the version's claim in `version_history` (its key
    /// is the version without build metadata; `VersionExists` if the name ever had
    /// it), version row, dist-tags and rev bump commit together.
    ///
    /// `blob_present` runs inside the transaction, holding the version's blob lock,
    /// right before `COMMIT`: it makes sure the tarball is stored (garbage collection
    /// may have removed it since it was written) or fails, and then nothing commits.
    pub async fn publish_version<E, F, Fut>(
        &self,
        grant: &PublishGrant,
        blob_present: F,
        v: &NewVersion<'_>,
    ) -> Result<PublishOutcome, E>
    where
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        if v.name != grant.name().as_str() || v.user_id != grant.user_id() {
            return Err(E::from(StoreError::Other(anyhow::anyhow!(
                "a publish grant for one package or account was used for another"
            ))));
        }
        let outcomes = self
            .publish_versions_checked(std::slice::from_ref(v), blob_present)
            .await?;
        outcomes.into_iter().next_back().ok_or_else(|| {
            E::from(StoreError::Other(anyhow::anyhow!(
                "a publish of one version returned no outcome"
            )))
        })
    }

    /// Publishes several versions in one transaction (bulk loads such as the scale
    /// generator, whose caller has stored the blobs), each exactly as
    /// `publish_version` would. All or nothing: at the first version that is not
    /// published the transaction is rolled back and the outcomes so far, ending with
    /// that one, are returned.
    pub async fn publish_versions(
        &self,
        versions: &[NewVersion<'_>],
    ) -> StoreResult<Vec<PublishOutcome>> {
        self.publish_versions_checked(versions, || async { Ok(()) })
            .await
    }

    /// `publish_versions` with a check run under the blob locks right before `COMMIT`.
    async fn publish_versions_checked<E, F, Fut>(
        &self,
        versions: &[NewVersion<'_>],
        blobs_present: F,
    ) -> Result<Vec<PublishOutcome>, E>
    where
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut keys: Vec<&str> = versions.iter().map(|v| v.blob_key).collect();
        keys.sort_unstable();
        keys.dedup();
        // The outer result is the database's; the inner one the check's.
        let result: StoreResult<Result<Vec<PublishOutcome>, E>> = self
            .writing(async {
                on_pool!(self, |p| {
                    let mut tx = p.begin_write().await?;
                    let mut outcomes = Vec::with_capacity(versions.len());
                    for v in versions {
                        let (_, outcome) = publish_in_tx!(tx, v);
                        let published = matches!(outcome, PublishOutcome::Published { .. });
                        outcomes.push(outcome);
                        if !published {
                            return Ok(Ok(outcomes));
                        }
                    }
                    lock_blobs!(self, tx, keys.iter().copied());
                    if let Err(e) = blobs_present().await {
                        return Ok(Err(e));
                    }
                    tx.commit().await?;
                    Ok(Ok(outcomes))
                })
            })
            .await;
        result?
    }

    /// Deletes a blob through `delete` only if no version refers to it, holding the
    /// blob's lock: a publish that references the blob either committed before (and
    /// the blob is kept) or re-checks the blob after the delete (and writes it again).
    /// Returns what `delete` returned, or `None` when the blob is in use.
    pub async fn delete_blob_if_unreferenced<T, F, Fut>(
        &self,
        key: &str,
        delete: F,
    ) -> anyhow::Result<Option<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        // Staged versions hold their tarball too, until approved or rejected; so do
        // tarballs cached from an uplink.
        const IN_USE: &str = "SELECT (SELECT COUNT(*) FROM versions WHERE blob_key = $1) \
            + (SELECT COUNT(*) FROM staged_versions WHERE blob_key = $1) \
            + (SELECT COUNT(*) FROM uplink_tarballs WHERE blob_key = $1)";
        on_pool!(self, |p| {
            let mut tx = p.begin_write().await?;
            lock_blobs!(self, tx, [key]);
            let n: i64 = sqlx::query_scalar(IN_USE)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            let deleted = if n == 0 { Some(delete().await?) } else { None };
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Sets `tag` to `version` (which must exist) and bumps the package revision, in
    /// one transaction. False when the version is unknown.
    pub async fn set_dist_tag(
        &self,
        grant: &PackageGrant<act::DistTag>,
        tag: &str,
        version: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        self.writing(async {
            const SQL: &str = "INSERT INTO dist_tags (package_id, tag, version) \
                SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM versions WHERE package_id = $1 AND version = $3) \
                ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version";
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let done = sqlx::query(SQL)
                    .bind(package_id)
                    .bind(tag)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                bump_rev!(tx, package_id, None, now)?;
                if tag == "latest" {
                    refresh_keywords!(tx, package_id)?;
                }
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Removes `tag` and bumps the package revision, in one transaction. False when
    /// the tag did not exist.
    pub async fn remove_dist_tag(
        &self,
        grant: &PackageGrant<act::DistTag>,
        tag: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let done = sqlx::query("DELETE FROM dist_tags WHERE package_id = $1 AND tag = $2")
                    .bind(package_id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                bump_rev!(tx, package_id, None, now)?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// Sets or clears (`None`) the deprecation message of the listed versions. With
    /// `expected_rev`, only if the package is still at that revision (else
    /// `RevisionChanged`, nothing written).
    pub async fn set_deprecations(
        &self,
        grant: &PackageGrant<act::Deprecate>,
        expected_rev: Option<i64>,
        changes: &[(String, Option<String>)],
        now: i64,
    ) -> StoreResult<RevisionWrite> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                if !bump_rev!(tx, package_id, expected_rev, now)? {
                    tx.rollback().await?;
                    return Ok(RevisionWrite::RevisionChanged);
                }
                for (version, message) in changes {
                    sqlx::query(
                        "UPDATE versions SET deprecated = $3 WHERE package_id = $1 AND version = $2",
                    )
                    .bind(package_id)
                    .bind(version)
                    .bind(message)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(RevisionWrite::Written)
            })
        })
        .await
    }

    /// Removes versions and replaces the dist-tags, in one transaction, only if the
    /// package is still at `expected_rev` (the revision of the document the client
    /// edited): a stale document never removes versions published after it was read.
    pub async fn remove_versions(
        &self,
        grant: &PackageGrant<act::Unpublish>,
        expected_rev: i64,
        versions: &[String],
        tags: &[(String, String)],
        now: i64,
    ) -> StoreResult<RevisionWrite> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                if !bump_rev!(tx, package_id, Some(expected_rev), now)? {
                    tx.rollback().await?;
                    return Ok(RevisionWrite::RevisionChanged);
                }
                for version in versions {
                    sqlx::query("DELETE FROM versions WHERE package_id = $1 AND version = $2")
                        .bind(package_id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM dist_tags WHERE package_id = $1")
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                for (tag, version) in tags {
                    sqlx::query(
                        "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, $2, $3)",
                    )
                    .bind(package_id)
                    .bind(tag)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                }
                refresh_keywords!(tx, package_id)?;
                tx.commit().await?;
                Ok(RevisionWrite::Written)
            })
        })
        .await
    }

    /// Deletes a package with all its versions, tags and maintainers, leaving a
    /// tombstone (deletion time and former maintainers) in the same transaction; with
    /// `expected_rev`, only if it is still at that revision. The version history
    /// stays.
    pub async fn delete_package(
        &self,
        grant: &PackageGrant<act::Unpublish>,
        expected_rev: Option<i64>,
        now: i64,
    ) -> StoreResult<RevisionWrite> {
        let package_id = grant.package_id();
        let name = grant.name().as_str();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let maintainers: Vec<i64> = sqlx::query_scalar(
                    "SELECT user_id FROM maintainers WHERE package_id = $1 ORDER BY user_id",
                )
                .bind(package_id)
                .fetch_all(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM packages WHERE id = $1 AND ($2 = 0 OR rev = $3)")
                    .bind(package_id)
                    .bind(i64::from(expected_rev.is_some()))
                    .bind(expected_rev.unwrap_or(0))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done != 1 {
                    tx.rollback().await?;
                    return Ok(RevisionWrite::RevisionChanged);
                }
                let former = serde_json::to_string(&maintainers)
                    .map_err(|e| StoreError::Other(e.into()))?;
                sqlx::query(
                    "INSERT INTO package_tombstones (name, deleted_at, former_maintainers) \
                     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET \
                     deleted_at = excluded.deleted_at, former_maintainers = excluded.former_maintainers",
                )
                .bind(name)
                .bind(now)
                .bind(former)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(RevisionWrite::Written)
            })
        })
        .await
    }

    /// Whether `name` ever had a version with this key (see `npm::version::key`),
    /// published now or unpublished since.
    pub async fn version_ever_published(
        &self,
        grant: &PublishGrant,
        version_key: &str,
    ) -> StoreResult<bool> {
        let name = grant.name().as_str();
        const SQL: &str =
            "SELECT COUNT(*) FROM version_history WHERE name = $1 AND version_key = $2";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(name)
            .bind(version_key)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// The tombstone of a deleted package name, if it was ever deleted.
    pub async fn tombstone(&self, name: &str) -> StoreResult<Option<Tombstone>> {
        const SQL: &str =
            "SELECT deleted_at, former_maintainers FROM package_tombstones WHERE name = $1";
        let row: Option<(i64, String)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(|(deleted_at, list)| Tombstone {
            deleted_at,
            // Written by `delete_package`; an unreadable list reserves for no one.
            former_maintainers: serde_json::from_str(&list).unwrap_or_default(),
        }))
    }

    pub async fn set_access(
        &self,
        grant: &PackageGrant<act::ChangeAccess>,
        access: PackageAccess,
        now: i64,
    ) -> StoreResult<()> {
        let package_id = grant.package_id();
        self.writing(async {
            const SQL: &str =
                "UPDATE packages SET access = $2, rev = rev + 1, modified_at = $3 WHERE id = $1";
            execute_write!(
                self,
                sqlx::query(SQL)
                    .bind(package_id)
                    .bind(access.as_str())
                    .bind(now)
            )?;
            Ok(())
        })
        .await
    }

    pub async fn set_mfa_policy(
        &self,
        grant: &PackageGrant<act::ChangeMfaPolicy>,
        policy: MfaPolicy,
        now: i64,
    ) -> StoreResult<()> {
        let package_id = grant.package_id();
        let (requires_tfa, automation_overrides) = policy.flags();
        self.writing(async {
        const SQL: &str = "UPDATE packages SET publish_requires_tfa = $2, automation_overrides_tfa = $3, \
                           rev = rev + 1, modified_at = $4 WHERE id = $1";
        execute_write!(self, sqlx::query(SQL)
            .bind(package_id)
            .bind(requires_tfa)
            .bind(automation_overrides)
            .bind(now))?;
        Ok(())
        }).await
    }

    /// Replaces the maintainer set (owner add/rm). Refuses an empty set.
    pub async fn set_maintainers(
        &self,
        grant: &PackageGrant<act::ChangeOwners>,
        user_ids: &[i64],
        now: i64,
    ) -> StoreResult<()> {
        let package_id = grant.package_id();
        self.writing(async {
            if user_ids.is_empty() {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "a package needs at least one maintainer"
                )));
            }
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                sqlx::query("DELETE FROM maintainers WHERE package_id = $1")
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?;
                for id in user_ids {
                    sqlx::query("INSERT INTO maintainers (package_id, user_id) VALUES ($1, $2)")
                        .bind(package_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE packages SET rev = rev + 1, modified_at = $2 WHERE id = $1")
                    .bind(package_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })?;
            Ok(())
        })
        .await
    }

    /// Stars (`true`) or unstars the package for the grant's user. A change bumps the
    /// revision (the packument lists who starred it) but not the modification time.
    /// Returns whether anything changed.
    pub async fn set_star(
        &self,
        grant: &PackageGrant<act::Star>,
        starred: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        let Some(user_id) = grant.user_id() else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a star grant without an account"
            )));
        };
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let changed = if starred {
                    sqlx::query(
                        "INSERT INTO stars (package_id, user_id, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (package_id, user_id) DO NOTHING",
                    )
                    .bind(package_id)
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                } else {
                    sqlx::query("DELETE FROM stars WHERE package_id = $1 AND user_id = $2")
                        .bind(package_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                }
                .rows_affected()
                    == 1;
                if changed {
                    sqlx::query("UPDATE packages SET rev = rev + 1 WHERE id = $1")
                        .bind(package_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(changed)
            })
        })
        .await
    }

    /// Names of the packages `user_id` starred. Candidates only: each is shown after
    /// its own read decision (who starred what is no secret: packuments list it).
    pub async fn starred_by(
        &self,
        _grant: &ListingGrant,
        user_id: i64,
    ) -> StoreResult<Vec<String>> {
        const SQL: &str = "SELECT p.name FROM stars s JOIN packages p ON p.id = s.package_id \
                           WHERE s.user_id = $1 ORDER BY p.name";
        Ok(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(user_id)
            .fetch_all(p)
            .await)?)
    }

    /// Adds one maintainer (nothing changes if they already are one); bumps the
    /// revision when the list changed. Returns whether it changed.
    pub async fn add_maintainer(
        &self,
        grant: &PackageGrant<act::ChangeOwners>,
        user_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let added = sqlx::query(
                    "INSERT INTO maintainers (package_id, user_id) VALUES ($1, $2) \
                     ON CONFLICT (package_id, user_id) DO NOTHING",
                )
                .bind(package_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if added {
                    bump_rev!(tx, package_id, None, now)?;
                }
                tx.commit().await?;
                Ok(added)
            })
        })
        .await
    }

    /// Removes one maintainer, never the last one (checked in the same transaction,
    /// so two removals at once cannot leave a package without maintainers).
    pub async fn remove_maintainer(
        &self,
        grant: &PackageGrant<act::ChangeOwners>,
        user_id: i64,
        now: i64,
    ) -> StoreResult<MaintainerRemoval> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                // Takes the package row's lock first (PostgreSQL), so removals serialise.
                bump_rev!(tx, package_id, None, now)?;
                let ids: Vec<i64> =
                    sqlx::query_scalar("SELECT user_id FROM maintainers WHERE package_id = $1")
                        .bind(package_id)
                        .fetch_all(&mut *tx)
                        .await?;
                let outcome = if !ids.contains(&user_id) {
                    MaintainerRemoval::NotAMaintainer
                } else if ids.len() == 1 {
                    MaintainerRemoval::LastMaintainer
                } else {
                    sqlx::query("DELETE FROM maintainers WHERE package_id = $1 AND user_id = $2")
                        .bind(package_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    MaintainerRemoval::Removed
                };
                if outcome == MaintainerRemoval::Removed {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(outcome)
            })
        })
        .await
    }

    /// Restricted packages the listing's viewer maintains, `(id, name)`: the only
    /// restricted packages a search may show, each once the read decision allows it.
    pub async fn restricted_maintained(
        &self,
        grant: &ListingGrant,
    ) -> StoreResult<Vec<(i64, String)>> {
        let Some(user_id) = grant.viewer() else {
            return Ok(Vec::new());
        };
        const SQL: &str = "SELECT p.id, p.name FROM packages p JOIN maintainers m ON m.package_id = p.id \
                           WHERE m.user_id = $1 AND p.access <> 'public' ORDER BY p.id";
        Ok(on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(user_id)
            .fetch_all(p)
            .await)?)
    }

    /// One page of search results and the number of all of them, counted with the
    /// same conditions. A package matches when every term is in its name, description
    /// or keywords, and every keyword qualifier is one of its keywords; it is visible
    /// when public or listed in `restricted_visible` (restricted packages whose read
    /// decision the caller passes). Order: the exact name, the name after a scope,
    /// names starting with the text, an exact keyword, names containing it, the rest;
    /// newest first within each (`SearchRow::rank`).
    pub async fn search_packages(
        &self,
        _grant: &ListingGrant,
        query: &SearchQuery,
        restricted_visible: &[i64],
        offset: i64,
        limit: i64,
    ) -> StoreResult<SearchPage> {
        // Every value is bound as text; `bind` returns its placeholder.
        fn bind(params: &mut Vec<String>, value: String) -> String {
            params.push(value);
            format!("${}", params.len())
        }
        let mut params: Vec<String> = Vec::new();
        let ids: Vec<String> = restricted_visible.iter().map(i64::to_string).collect();
        let visible = bind(&mut params, ids.join(","));
        let mut conditions = vec![
            format!(
                "(p.access = 'public' OR (',' || {visible} || ',') LIKE ('%,' || CAST(p.id AS TEXT) || ',%'))"
            ),
            "EXISTS (SELECT 1 FROM versions v WHERE v.package_id = p.id)".to_owned(),
        ];
        for term in &query.terms {
            let b = bind(&mut params, format!("%{}%", escape_like(term)));
            conditions.push(format!(
                "(LOWER(p.name) LIKE {b} ESCAPE '\\' OR LOWER(COALESCE(p.description, '')) LIKE {b} ESCAPE '\\' \
                 OR COALESCE(p.keywords, '') LIKE {b} ESCAPE '\\')"
            ));
        }
        for keyword in &query.keywords {
            let b = bind(&mut params, format!("%,{},%", escape_like(keyword)));
            conditions.push(format!("COALESCE(p.keywords, '') LIKE {b} ESCAPE '\\'"));
        }
        let condition_params = params.len();
        let whole = query.terms.join(" ");
        let rank = if whole.is_empty() {
            // Only keyword qualifiers (each an exact keyword), or nothing at all.
            if query.keywords.is_empty() { "5" } else { "3" }.to_owned()
        } else {
            let text = escape_like(&whole);
            let exact = bind(&mut params, whole.clone());
            let bare = bind(&mut params, format!("%/{text}"));
            let prefix = bind(&mut params, format!("{text}%"));
            let bare_prefix = bind(&mut params, format!("%/{text}%"));
            let keyword = bind(&mut params, format!("%,{text},%"));
            let contains = bind(&mut params, format!("%{text}%"));
            format!(
                "CASE WHEN LOWER(p.name) = {exact} THEN 0 \
                 WHEN LOWER(p.name) LIKE {bare} ESCAPE '\\' THEN 1 \
                 WHEN LOWER(p.name) LIKE {prefix} ESCAPE '\\' OR LOWER(p.name) LIKE {bare_prefix} ESCAPE '\\' THEN 2 \
                 WHEN COALESCE(p.keywords, '') LIKE {keyword} ESCAPE '\\' THEN 3 \
                 WHEN LOWER(p.name) LIKE {contains} ESCAPE '\\' THEN 4 ELSE 5 END"
            )
        };
        let filter = conditions.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) FROM packages p WHERE {filter}");
        let page_sql = format!(
            "SELECT p.id, p.name, p.description, p.modified_at, p.access, CAST({rank} AS BIGINT) AS rank \
             FROM packages p WHERE {filter} ORDER BY rank, p.modified_at DESC, p.name \
             LIMIT ${} OFFSET ${}",
            params.len() + 1,
            params.len() + 2
        );
        on_pool!(self, |p| {
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
            for value in &params[..condition_params] {
                count = count.bind(value.clone());
            }
            let total = count.fetch_one(p).await?;
            let mut page = sqlx::query_as::<_, SearchRow>(sqlx::AssertSqlSafe(page_sql));
            for value in &params {
                page = page.bind(value.clone());
            }
            let rows = page.bind(limit).bind(offset).fetch_all(p).await?;
            Ok::<_, StoreError>(SearchPage { rows, total })
        })
    }

    /// Blob keys referenced by any version (for garbage collection).
    pub async fn referenced_blob_keys(&self) -> StoreResult<Vec<String>> {
        const SQL: &str = "SELECT blob_key FROM versions \
                           UNION SELECT blob_key FROM staged_versions \
                           UNION SELECT blob_key FROM uplink_tarballs";
        Ok(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .fetch_all(p)
            .await)?)
    }

    /// Whether any version refers to a blob.
    pub async fn blob_in_use(&self, key: &str) -> StoreResult<bool> {
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM versions WHERE blob_key = $1) \
            + (SELECT COUNT(*) FROM staged_versions WHERE blob_key = $1)";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(key)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// Names of packages a user maintains.
    pub async fn packages_of_user(&self, grant: &ListingGrant) -> StoreResult<Vec<String>> {
        let Some(user_id) = grant.viewer() else {
            return Ok(Vec::new());
        };
        const SQL: &str = "SELECT p.name FROM packages p JOIN maintainers m ON m.package_id = p.id \
                           WHERE m.user_id = $1 ORDER BY p.name";
        Ok(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(user_id)
            .fetch_all(p)
            .await)?)
    }
}

/// The statement that takes a blob's lock for the rest of the transaction.
/// DIALECT: SQLite write transactions (`BEGIN IMMEDIATE`) already exclude each other,
/// so none is needed there; PostgreSQL takes a transaction-scoped advisory lock.
pub(super) fn blob_lock_sql(dialect: super::Dialect) -> Option<&'static str> {
    match dialect {
        super::Dialect::Sqlite => None,
        super::Dialect::Postgres => Some("SELECT pg_advisory_xact_lock($1)"),
    }
}

/// The advisory lock id of a blob: the first 64 bits of its (hex sha512) key. Two
/// keys sharing an id only serialise a little more.
pub(super) fn blob_lock_id(key: &str) -> i64 {
    key.get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map_or(0, |n| n as i64)
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// The dist-tags of a package.
    pub async fn dist_tags_of(
        &self,
        grant: &PackageGrant<act::ReadPackage>,
    ) -> StoreResult<Vec<(String, String)>> {
        let package_id = grant.package_id();
        const SQL: &str = "SELECT tag, version FROM dist_tags WHERE package_id = $1 ORDER BY tag";
        Ok(on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(package_id)
            .fetch_all(p)
            .await)?)
    }

    /// Most recently changed packages (for the home page), visible to `viewer`.
    pub async fn recent_packages(
        &self,
        grant: &ListingGrant,
        limit: i64,
    ) -> StoreResult<Vec<SearchRow>> {
        const SQL: &str = "SELECT p.id, p.name, p.description, p.modified_at, p.access FROM packages p \
            WHERE (p.access = 'public' OR EXISTS (SELECT 1 FROM maintainers m WHERE m.package_id = p.id AND m.user_id = $1)) \
            AND EXISTS (SELECT 1 FROM versions v WHERE v.package_id = p.id) \
            ORDER BY p.modified_at DESC LIMIT $2";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, SearchRow>(SQL)
            .bind(grant.viewer().unwrap_or(-1))
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }
}
