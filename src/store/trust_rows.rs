//! Trusted publishing and staged releases: trust configurations, exchanged id-token
//! ids (replay), and staged versions. Every read or write of a package's rows takes
//! the grant for it; the exchange's own reads (configurations of a package, the id
//! replay record) feed the decision and are ungated, like a token lookup by hash.

use super::package_rows::{lock_blobs, publish_in_tx, refresh_keywords};
use super::{
    BeginWrite, NewVersion, PublishOutcome, Store, StoreError, StoreResult, Stored, execute_write,
    on_pool,
};
use crate::config::CiKind;
use crate::domain::access::{ActorType, PackageGrant, PublishGrant, TrustGrant, act};

/// A trust configuration as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrustConfigRow {
    pub id: String,
    pub package_id: i64,
    /// A kind this build does not know makes the configuration match nothing.
    #[sqlx(try_from = "String")]
    pub kind: Stored<CiKind>,
    pub issuer: String,
    /// The claims as npm sends them (JSON object).
    pub claims: String,
    /// JSON array of `createPackage` / `createStagedPackage`.
    pub permissions: String,
    pub created_by: i64,
    pub created_at: i64,
}

/// A trust configuration about to be stored.
#[derive(Debug, Clone)]
pub struct NewTrustConfig<'a> {
    pub id: &'a str,
    pub kind: CiKind,
    pub issuer: &'a str,
    pub claims: &'a str,
    pub permissions: &'a str,
    pub created_by: i64,
    pub now: i64,
}

/// A staged version as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StagedRow {
    pub id: String,
    pub package_id: i64,
    pub package_name: String,
    pub version: String,
    pub tag: String,
    pub manifest: String,
    pub readme: Option<String>,
    pub blob_key: String,
    pub size: i64,
    pub integrity: String,
    pub shasum: String,
    pub staged_by: i64,
    pub actor: String,
    #[sqlx(try_from = "String")]
    pub actor_type: Stored<ActorType>,
    pub created_at: i64,
    /// The checked provenance bundle sent with it, if any.
    pub provenance: Option<String>,
}

/// A version about to be staged.
#[derive(Debug, Clone)]
pub struct NewStaged<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub tag: &'a str,
    pub manifest: &'a str,
    pub readme: Option<&'a str>,
    pub blob_key: &'a str,
    pub size: i64,
    pub integrity: &'a str,
    pub shasum: &'a str,
    pub staged_by: i64,
    pub actor: &'a str,
    pub actor_type: ActorType,
    /// The checked provenance bundle (`npm::provenance`), as sent.
    pub provenance: Option<&'a str>,
    pub now: i64,
}

/// The security-log entry an approval or rejection writes with its decision.
#[derive(Debug, Clone)]
pub struct StagedLog<'a> {
    pub user_id: i64,
    pub kind: super::SecurityEventKind,
    pub detail: &'a str,
    pub ip: Option<&'a str>,
    pub now: i64,
}

/// What an approval did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagedApproval {
    Published,
    /// Approved, rejected or deleted with its package meanwhile: nothing written.
    StagedGone,
    /// The publish was refused (nothing written; the staged version stays).
    Refused(PublishOutcome),
}

/// Grants that may read a staged version of their package.
pub trait ReachesStaged {
    fn staged_package_id(&self) -> i64;
}

impl ReachesStaged for PackageGrant<act::ReviewStage> {
    fn staged_package_id(&self) -> i64 {
        self.package_id()
    }
}

impl ReachesStaged for PackageGrant<act::ApproveStage> {
    fn staged_package_id(&self) -> i64 {
        self.package_id()
    }
}

const SELECT_CONFIG: &str = "SELECT id, package_id, kind, issuer, claims, permissions, created_by, created_at \
     FROM trust_configs";

const SELECT_STAGED: &str = "SELECT s.id, s.package_id, p.name AS package_name, s.version, s.tag, s.manifest, \
     s.readme, s.blob_key, s.size, s.integrity, s.shasum, s.staged_by, s.actor, s.actor_type, s.created_at, \
     s.provenance FROM staged_versions s JOIN packages p ON p.id = s.package_id";

impl Store {
    /// The trust configurations of a package, oldest first.
    pub async fn trust_configs(
        &self,
        grant: &PackageGrant<act::ReadTrust>,
    ) -> StoreResult<Vec<TrustConfigRow>> {
        self.trust_configs_of(grant.package_id()).await
    }

    /// The trust configurations an id token is checked against (the exchange's own
    /// read, which feeds its decision).
    pub async fn trust_configs_for_exchange(
        &self,
        package_id: i64,
    ) -> StoreResult<Vec<TrustConfigRow>> {
        self.trust_configs_of(package_id).await
    }

    async fn trust_configs_of(&self, package_id: i64) -> StoreResult<Vec<TrustConfigRow>> {
        let sql = format!("{SELECT_CONFIG} WHERE package_id = $1 ORDER BY created_at, id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TrustConfigRow>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .bind(package_id)
        .fetch_all(p)
        .await)?)
    }

    /// Stores a trust configuration. `Conflict` when an identical one exists.
    pub async fn add_trust_config(
        &self,
        grant: &PackageGrant<act::ManageTrust>,
        c: &NewTrustConfig<'_>,
    ) -> StoreResult<TrustConfigRow> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let same: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM trust_configs WHERE package_id = $1 AND kind = $2 \
                     AND issuer = $3 AND claims = $4",
                )
                .bind(package_id)
                .bind(c.kind.as_str())
                .bind(c.issuer)
                .bind(c.claims)
                .fetch_one(&mut *tx)
                .await?;
                if same > 0 {
                    return Err(StoreError::Conflict);
                }
                sqlx::query(
                    "INSERT INTO trust_configs (id, package_id, kind, issuer, claims, permissions, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.id)
                .bind(package_id)
                .bind(c.kind.as_str())
                .bind(c.issuer)
                .bind(c.claims)
                .bind(c.permissions)
                .bind(c.created_by)
                .bind(c.now)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query_as::<_, TrustConfigRow>(sqlx::AssertSqlSafe(format!(
                    "{SELECT_CONFIG} WHERE id = $1"
                )))
                .bind(c.id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(row)
            })
        })
        .await
    }

    /// Deletes a trust configuration of the grant's package and revokes, in the same
    /// transaction, every token minted from it. False when there is no such one.
    pub async fn remove_trust_config(
        &self,
        grant: &PackageGrant<act::ManageTrust>,
        id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let gone =
                    sqlx::query("DELETE FROM trust_configs WHERE id = $1 AND package_id = $2")
                        .bind(id)
                        .bind(package_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if gone == 1 {
                    sqlx::query(
                        "UPDATE tokens SET revoked_at = $2, updated_at = $2 \
                         WHERE trust_config_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, StoreError>(gone == 1)
            })
        })
        .await
    }

    /// Sets "publish only through trusted publishing" and bumps the revision.
    pub async fn set_trusted_publishing_only(
        &self,
        grant: &PackageGrant<act::ManageTrust>,
        on: bool,
        now: i64,
    ) -> StoreResult<()> {
        let package_id = grant.package_id();
        self.writing(async {
            execute_write!(
                self,
                sqlx::query(
                "UPDATE packages SET trusted_publishing_only = $2, rev = rev + 1, modified_at = $3 \
                 WHERE id = $1"
            )
            .bind(package_id)
            .bind(i64::from(on))
            .bind(now)
            )?;
            Ok(())
        })
        .await
    }

    /// Records an exchanged id token; false when it was exchanged before (by any
    /// instance). Expired records are pruned by `prune_oidc_token_ids`.
    pub async fn claim_oidc_token_id(
        &self,
        _grant: &TrustGrant,
        issuer: &str,
        jti: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        let done = on_pool!(self, |p| sqlx::query(
            "INSERT INTO oidc_token_ids (issuer, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (issuer, jti) DO NOTHING"
        )
        .bind(issuer)
        .bind(jti)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Deletes exchanged-id records whose id tokens have expired.
    pub async fn prune_oidc_token_ids(&self, before: i64) -> StoreResult<u64> {
        Ok(on_pool!(self, |p| sqlx::query(
            "DELETE FROM oidc_token_ids WHERE expires_at < $1"
        )
        .bind(before)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Stores a staged version of the grant's package. `blob_present` runs holding
    /// the blob's lock right before `COMMIT`, as for a publish (garbage collection).
    /// `Ok(false)`: this version is already staged.
    pub async fn stage_version<E, F, Fut>(
        &self,
        grant: &PackageGrant<act::StagePublish>,
        blob_present: F,
        v: &NewStaged<'_>,
    ) -> Result<bool, E>
    where
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let package_id = grant.package_id();
        let write = async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let inserted = sqlx::query(
                        "INSERT INTO staged_versions (id, package_id, version, tag, manifest, readme, \
                         blob_key, size, integrity, shasum, staged_by, actor, actor_type, created_at, \
                         provenance) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                         ON CONFLICT (package_id, version) DO NOTHING",
                    )
                    .bind(v.id)
                    .bind(package_id)
                    .bind(v.version)
                    .bind(v.tag)
                    .bind(v.manifest)
                    .bind(v.readme)
                    .bind(v.blob_key)
                    .bind(v.size)
                    .bind(v.integrity)
                    .bind(v.shasum)
                    .bind(v.staged_by)
                    .bind(v.actor)
                    .bind(v.actor_type.as_str())
                    .bind(v.now)
                    .bind(v.provenance)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    return Ok(Ok(false));
                }
                lock_blobs!(self, tx, [v.blob_key]);
                if let Err(e) = blob_present().await {
                    return Ok(Err(e));
                }
                tx.commit().await?;
                Ok::<_, StoreError>(Ok(true))
            })
        };
        let result: StoreResult<Result<bool, E>> = self.writing(write).await;
        result?
    }

    /// Whether the grant's package ever had a version with this key (a version that
    /// was published, even if unpublished since, cannot be staged).
    pub async fn staged_version_ever_published(
        &self,
        grant: &PackageGrant<act::StagePublish>,
        version_key: &str,
    ) -> StoreResult<bool> {
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM version_history WHERE name = $1 AND version_key = $2"
        )
        .bind(grant.name().as_str())
        .bind(version_key)
        .fetch_one(p)
        .await)?;
        Ok(n > 0)
    }

    /// The package a staged version belongs to (the read that feeds the decision on
    /// it; nothing else of the row).
    pub async fn staged_package(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT p.name FROM staged_versions s JOIN packages p ON p.id = s.package_id WHERE s.id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await
        })?)
    }

    /// One staged version of the grant's package.
    pub async fn staged_version(
        &self,
        grant: &impl ReachesStaged,
        id: &str,
    ) -> StoreResult<Option<StagedRow>> {
        let sql = format!("{SELECT_STAGED} WHERE s.id = $1 AND s.package_id = $2");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, StagedRow>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .bind(id)
        .bind(grant.staged_package_id())
        .fetch_optional(p)
        .await)?)
    }

    /// The staged versions of the grant's package, oldest first.
    pub async fn staged_of_package(
        &self,
        grant: &PackageGrant<act::ReviewStage>,
    ) -> StoreResult<Vec<StagedRow>> {
        let sql = format!("{SELECT_STAGED} WHERE s.package_id = $1 ORDER BY s.created_at, s.id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, StagedRow>(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .bind(grant.package_id())
        .fetch_all(p)
        .await)?)
    }

    /// Names of packages that have staged versions (candidates for a listing; each
    /// passes its own review decision).
    pub async fn packages_with_staged(
        &self,
        _grant: &crate::domain::access::ListingGrant,
    ) -> StoreResult<Vec<String>> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT p.name FROM staged_versions s JOIN packages p ON p.id = s.package_id \
             ORDER BY p.name"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Approves a staged version in one transaction: the staged row is claimed
    /// (deleted), the version published as `publish_version` would (`v`, with the
    /// staged tag; `latest` too when the package has none), the security-log entry
    /// written, and the blob checked under its lock; all of it commits or none.
    /// Two approvals, or an approval and a rejection, of one id have one winner: the
    /// other finds the row gone (`StagedGone`). Any other refusal rolls back and
    /// leaves the staged version in place.
    #[allow(clippy::too_many_arguments)]
    pub async fn approve_staged<E, F, Fut>(
        &self,
        grant: &PackageGrant<act::ApproveStage>,
        publish: &PublishGrant,
        id: &str,
        blob_present: F,
        v: &NewVersion<'_>,
        log: &StagedLog<'_>,
    ) -> Result<StagedApproval, E>
    where
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        if v.name != publish.name().as_str()
            || v.name != grant.name().as_str()
            || v.user_id != publish.user_id()
            || v.user_id != log.user_id
        {
            return Err(E::from(StoreError::Other(anyhow::anyhow!(
                "an approval's grants name another package or account"
            ))));
        }
        let package_id = grant.package_id();
        let write = async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                // The package row first (PostgreSQL locks it here), the order in which
                // a publish or a package deletion takes its locks, so an approval
                // never deadlocks with them; a deleted package has nothing staged.
                let package = sqlx::query("UPDATE packages SET rev = rev WHERE id = $1")
                    .bind(package_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if package != 1 {
                    return Ok(Ok(StagedApproval::StagedGone));
                }
                // The claim: a concurrent approval or rejection waits on this row
                // (PostgreSQL) or on the write lock (SQLite), then finds it gone.
                let claimed = sqlx::query(
                    "DELETE FROM staged_versions WHERE id = $1 AND package_id = $2 AND version = $3",
                )
                .bind(id)
                .bind(package_id)
                .bind(v.version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed != 1 {
                    return Ok(Ok(StagedApproval::StagedGone));
                }
                let (published_id, outcome) = publish_in_tx!(tx, v);
                if published_id != package_id {
                    // The name now belongs to another package row: not this one's.
                    return Ok(Ok(StagedApproval::StagedGone));
                }
                if !matches!(outcome, PublishOutcome::Published { .. }) {
                    return Ok(Ok(StagedApproval::Refused(outcome)));
                }
                if !v.tags.iter().any(|(tag, _)| tag == "latest") {
                    let set = sqlx::query(
                        "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, 'latest', $2) \
                         ON CONFLICT (package_id, tag) DO NOTHING",
                    )
                    .bind(package_id)
                    .bind(v.version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if set == 1 {
                        refresh_keywords!(tx, package_id)?;
                    }
                }
                sqlx::query(Self::INSERT_SECURITY_EVENT)
                    .bind(log.user_id)
                    .bind(log.kind.as_str())
                    .bind(log.detail)
                    .bind(log.ip)
                    .bind(log.now)
                    .execute(&mut *tx)
                    .await?;
                lock_blobs!(self, tx, [v.blob_key]);
                if let Err(e) = blob_present().await {
                    return Ok(Err(e));
                }
                tx.commit().await?;
                Ok::<_, StoreError>(Ok(StagedApproval::Published))
            })
        };
        let result: StoreResult<Result<StagedApproval, E>> = self.writing(write).await;
        result?
    }

    /// Rejects (deletes) a staged version of the grant's package and writes the
    /// security-log entry, in one transaction. False when it is gone already.
    pub async fn reject_staged(
        &self,
        grant: &PackageGrant<act::ApproveStage>,
        id: &str,
        log: &StagedLog<'_>,
    ) -> StoreResult<bool> {
        let package_id = grant.package_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let gone =
                    sqlx::query("DELETE FROM staged_versions WHERE id = $1 AND package_id = $2")
                        .bind(id)
                        .bind(package_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if gone != 1 {
                    return Ok(false);
                }
                sqlx::query(Self::INSERT_SECURITY_EVENT)
                    .bind(log.user_id)
                    .bind(log.kind.as_str())
                    .bind(log.detail)
                    .bind(log.ip)
                    .bind(log.now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(true)
            })
        })
        .await
    }
}
