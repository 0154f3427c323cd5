//! Reading and managing published packages: packuments, tarballs, dist-tags,
//! deprecation, unpublish, owners, visibility, the 2FA publishing policy, listings and
//! search. Every function passes the access gate first and reaches the store only with
//! the grant it returns.
//!
//! Document-shaped writes (`PUT /<name>` deprecations, `PUT /<name>/-rev/<rev>`
//! unpublishes, `DELETE /<name>/-rev/<rev>`) are accepted only against the package's
//! current revision: a client that sends back an outdated document gets 409 and
//! never removes a version it did not see.

use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

use super::access::{self, Action, PackageAccess, PackageGrant, PackagePermission, Target, act};
use super::packument_cache::{CachedDoc, Rendition, http_date};
use super::{Caller, Error, Result, package_facts};
use crate::app::App;
use crate::npm::name::PackageName;
use crate::npm::packument::{self, PackageDoc, VersionDoc, rev_string};
use crate::store::{
    MaintainerRemoval, MaintainerRow, PackageRow, RevisionWrite, SearchQuery, SearchRow,
};

async fn readable(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<PackageGrant<act::ReadPackage>> {
    let target = package_facts(app, caller, name).await?;
    access::authorize::<act::ReadPackage>(app, caller, &target).await
}

/// The packument, rendered once per revision.
pub async fn packument(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Arc<CachedDoc>> {
    let grant = readable(app, caller, name).await?;
    render(app, &grant).await
}

pub(super) async fn render(
    app: &App,
    grant: &PackageGrant<act::ReadPackage>,
) -> Result<Arc<CachedDoc>> {
    let name = grant.name();
    if let Some(doc) = app.packuments.get(name.as_str(), grant.row().rev) {
        return Ok(doc);
    }
    let not_found = || Error::NotFound(format!("package {name} not found"));
    let contents = app
        .store
        .package_contents(grant)
        .await?
        .ok_or_else(not_found)?;
    if contents.versions.is_empty() {
        return Err(not_found());
    }
    let mut versions: Vec<VersionDoc> = contents
        .versions
        .into_iter()
        .map(|v| VersionDoc {
            manifest: serde_json::from_str(&v.manifest).unwrap_or(Value::Null),
            version: v.version,
            readme: v.readme,
            published_at_ms: v.published_at,
            deprecated: v.deprecated,
        })
        .collect();
    super::signing::sign_unsigned(app, &contents.package.name, &mut versions).await?;
    let doc = PackageDoc {
        name: contents.package.name.clone(),
        rev: contents.package.rev,
        created_ms: contents.package.created_at,
        modified_ms: contents.package.modified_at,
        dist_tags: contents.tags,
        maintainers: contents
            .maintainers
            .iter()
            .map(|m| (m.name.clone(), m.email.clone()))
            .collect(),
        stars: contents.stars,
        versions,
    };
    let json = |v: &Value| serde_json::to_vec(v).map_err(|e| Error::Internal(e.into()));
    let full = Bytes::from(json(&packument::full(&doc, &app.public_url))?);
    let abbreviated = Bytes::from(json(&packument::abbreviated(&doc, &app.public_url))?);
    let cached = Arc::new(CachedDoc {
        rev: doc.rev,
        modified_ms: doc.modified_ms,
        modified_http: http_date(doc.modified_ms),
        full: Rendition::new(full),
        abbreviated: Rendition::new(abbreviated),
    });
    app.packuments.put(name.as_str(), cached.clone());
    Ok(cached)
}

/// A version's provenance attestation: the statement's predicate type and the
/// Sigstore bundle as published.
#[derive(Debug)]
pub struct Attestation {
    pub predicate_type: String,
    pub bundle: String,
}

impl Attestation {
    /// The CI workflow the statement names (a claim of the signer: the certificate
    /// is not checked against a Sigstore root).
    pub fn workflow(&self) -> Option<crate::npm::provenance::Workflow> {
        crate::npm::provenance::workflow_of_bundle(&self.bundle)
    }
}

/// The attestations of `name@version`, under the packument's access decision (a
/// package the caller may not read is not found). Not found as well when the
/// version has none.
pub async fn attestations(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
    version: &str,
) -> Result<Vec<Attestation>> {
    let grant = readable(app, caller, name).await?;
    let bundle = app
        .store
        .provenance_of(&grant, version)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no attestations for {name}@{version}")))?;
    let predicate_type = crate::npm::provenance::predicate_type_of(&bundle).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "stored provenance of {name}@{version} is unreadable"
        ))
    })?;
    Ok(vec![Attestation {
        predicate_type,
        bundle,
    }])
}

fn version_of_file<'a>(name: &PackageName, file: &'a str) -> Option<&'a str> {
    file.strip_prefix(name.bare())
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tgz"))
}

/// The tarball of `name` named `file` (`<bare>-<version>.tgz`), streamed.
pub async fn tarball(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
    file: &str,
) -> Result<(u64, crate::blob::BlobStream)> {
    let target = package_facts(app, caller, name).await?;
    tarball_of_target(app, caller, &target, file).await
}

/// The tarball named `file` of an already loaded local target, streamed.
pub(super) async fn tarball_of_target(
    app: &App,
    caller: Option<&Caller>,
    target: &Target,
    file: &str,
) -> Result<(u64, crate::blob::BlobStream)> {
    let name = target.name();
    let version = version_of_file(name, file)
        .ok_or_else(|| Error::NotFound(format!("tarball {file} not found")))?;
    let grant = access::authorize::<act::ReadPackage>(app, caller, target).await?;
    let (key, _) = app
        .store
        .tarball_of(&grant, version)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{name}@{version} not found")))?;
    app.blobs
        .stream(&key)
        .await
        .map_err(|e| Error::Unavailable(format!("blob store: {e}")))?
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "tarball blob {key} missing for {name}@{version}"
            ))
        })
}

/// Dist-tags of a package.
pub async fn dist_tags(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Vec<(String, String)>> {
    let grant = readable(app, caller, name).await?;
    Ok(app.store.dist_tags_of(&grant).await?)
}

/// Points `tag` at `version`.
pub async fn set_dist_tag(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    tag: &str,
    version: &str,
) -> Result<()> {
    crate::npm::tag::validate(tag).map_err(|e| Error::Invalid(e.to_string()))?;
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::DistTag>(app, Some(caller), &target).await?;
    if !app
        .store
        .set_dist_tag(&grant, tag, version, app.now())
        .await?
    {
        return Err(Error::NotFound(format!(
            "version {version} of {name} not found"
        )));
    }
    Ok(())
}

/// Removes `tag` (never `latest`).
pub async fn remove_dist_tag(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    tag: &str,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::DistTag>(app, Some(caller), &target).await?;
    if tag == "latest" {
        return Err(Error::Invalid("the latest tag cannot be removed".into()));
    }
    if !app.store.remove_dist_tag(&grant, tag, app.now()).await? {
        return Err(Error::NotFound(format!(
            "{tag} is not a dist-tag on {name}"
        )));
    }
    Ok(())
}

/// The revision a document-shaped write names (URL `-rev/<rev>` or body `_rev`).
fn sent_revision<'a>(url_rev: Option<&'a str>, body: &'a Value) -> Option<&'a str> {
    url_rev
        .filter(|r| !r.is_empty() && *r != "undefined")
        .or_else(|| body.get("_rev").and_then(Value::as_str))
}

fn stale(name: &PackageName, row: &PackageRow) -> Error {
    Error::Conflict(format!(
        "{name} changed since this document was read (it is at revision {} now); \
         read it again and retry",
        rev_string(name.as_str(), row.rev)
    ))
}

/// Checks a sent revision against the package's current one.
fn expect_current(name: &PackageName, row: &PackageRow, sent: Option<&str>) -> Result<i64> {
    match sent {
        Some(rev) if rev == rev_string(name.as_str(), row.rev) => Ok(row.rev),
        _ => Err(stale(name, row)),
    }
}

/// `PUT /<name>` without attachments: a deprecation (full document) or a star.
pub async fn update_document(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    body: &Value,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let Some(versions) = body.get("versions").and_then(Value::as_object) else {
        // A star/unstar body (npm's `{_id, _rev, users}`): one's own mark only.
        return match own_star(caller, body) {
            Some(starred) => set_star(app, caller, &target, starred).await,
            None => Err(Error::Invalid(
                "body must carry versions (deprecate) or users (star)".into(),
            )),
        };
    };
    let grant = access::authorize::<act::Deprecate>(app, Some(caller), &target).await?;
    let expected = match sent_revision(None, body) {
        Some(rev) => Some(expect_current(name, grant.row(), Some(rev))?),
        None => None,
    };
    let read = readable(app, Some(caller), name).await?;
    let contents = app
        .store
        .package_contents(&read)
        .await?
        .ok_or_else(|| Error::NotFound(name.to_string()))?;
    let mut changes = Vec::new();
    for v in &contents.versions {
        let Some(sent) = versions.get(&v.version) else {
            continue;
        };
        let wanted = match sent.get("deprecated") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => None,
            Some(_) => return Err(Error::Invalid("deprecated must be a string".into())),
        };
        if wanted != v.deprecated {
            changes.push((v.version.clone(), wanted));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    match app
        .store
        .set_deprecations(&grant, expected, &changes, app.now())
        .await?
    {
        RevisionWrite::Written => Ok(()),
        RevisionWrite::RevisionChanged => Err(stale(name, grant.row())),
    }
}

/// `PUT /<name>/-rev/<rev>`: an unpublish of versions (the document without them), a
/// whole-document star (what pnpm sends: nothing removed), or an owner change (body
/// has `maintainers` and no `versions`).
pub async fn update_revision(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    url_rev: &str,
    body: &Value,
) -> Result<()> {
    if let Some(versions) = body.get("versions").and_then(Value::as_object) {
        let target = package_facts(app, Some(caller), name).await?;
        let reader = access::authorize::<act::ReadPackage>(app, Some(caller), &target).await?;
        let contents = app
            .store
            .package_contents(&reader)
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        let removed: Vec<String> = contents
            .versions
            .iter()
            .filter(|v| !versions.contains_key(&v.version))
            .map(|v| v.version.clone())
            .collect();
        if removed.is_empty() {
            // Nothing removed: pnpm's star (the whole document with its `users`
            // changed), which changes only the caller's own star and needs only read
            // access; any other change in such a document is ignored. A star does not
            // depend on the rest of the document, so the revision is not checked.
            return match own_star(caller, body) {
                Some(starred) => set_star(app, caller, &target, starred).await,
                None => Ok(()),
            };
        }
        let grant = access::authorize::<act::Unpublish>(app, Some(caller), &target).await?;
        let expected = expect_current(name, grant.row(), sent_revision(Some(url_rev), body))?;
        if contents.package.rev != expected {
            return Err(stale(name, grant.row()));
        }
        if removed.len() == contents.versions.len() {
            return delete_package_inner(app, &grant, &reader, Some(expected)).await;
        }
        let remaining: Vec<&str> = contents
            .versions
            .iter()
            .map(|v| v.version.as_str())
            .filter(|v| !removed.iter().any(|r| r == v))
            .collect();
        let mut tags: Vec<(String, String)> = contents
            .tags
            .into_iter()
            .filter(|(_, v)| remaining.contains(&v.as_str()))
            .collect();
        if !tags.iter().any(|(t, _)| t == "latest")
            && let Some(best) = highest(&remaining)
        {
            tags.push(("latest".into(), best));
        }
        match app
            .store
            .remove_versions(&grant, expected, &removed, &tags, app.now())
            .await?
        {
            RevisionWrite::Written => {}
            RevisionWrite::RevisionChanged => return Err(stale(name, grant.row())),
        }
        collect_blobs(
            app,
            contents
                .versions
                .iter()
                .filter(|v| removed.contains(&v.version))
                .map(|v| v.blob_key.clone()),
        )
        .await;
        return Ok(());
    }
    if let Some(maintainers) = body.get("maintainers").and_then(Value::as_array) {
        let names: Vec<String> = maintainers
            .iter()
            .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        return set_owners(app, caller, name, &names).await;
    }
    Err(Error::Invalid(
        "body must carry versions (unpublish) or maintainers (owner change)".into(),
    ))
}

/// The caller's own star in a document's `users` (an object), if it has one: `true`
/// stars, anything else (or no entry) unstars. `None` when there is no `users` object.
fn own_star(caller: &Caller, body: &Value) -> Option<bool> {
    body.get("users")
        .and_then(Value::as_object)
        .map(|users| users.get(&caller.user.name) == Some(&Value::Bool(true)))
}

async fn set_star(app: &App, caller: &Caller, target: &Target, starred: bool) -> Result<()> {
    let grant = access::authorize::<act::Star>(app, Some(caller), target).await?;
    app.store.set_star(&grant, starred, app.now()).await?;
    Ok(())
}

/// Stars or unstars `name` for the caller (pnpm's `PUT`/`DELETE /-/user/v1/star`).
pub async fn star(app: &App, caller: &Caller, name: &PackageName, starred: bool) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    set_star(app, caller, &target, starred).await
}

/// The packages `user` starred that the caller may read (`npm stars`, `pnpm stars`).
pub async fn starred_by(app: &App, caller: Option<&Caller>, user: &str) -> Result<Vec<String>> {
    let listing = access::authorize_listing(app, caller).await?;
    let user = app
        .store
        .user_by_name(user)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user} not found")))?;
    let mut visible = Vec::new();
    for package in app.store.starred_by(&listing, user.id).await? {
        if let Ok(name) = PackageName::parse(&package)
            && readable(app, caller, &name).await.is_ok()
        {
            visible.push(package);
        }
    }
    Ok(visible)
}

/// The highest version, preferring releases over prereleases.
fn highest(versions: &[&str]) -> Option<String> {
    let mut parsed: Vec<nodejs_semver::Version> = versions
        .iter()
        .filter_map(|v| nodejs_semver::Version::parse(v).ok())
        .collect();
    parsed.sort();
    parsed
        .iter()
        .rev()
        .find(|v| !v.is_prerelease())
        .or(parsed.last())
        .map(ToString::to_string)
}

/// Deletes a whole package; with a revision (`DELETE /<name>/-rev/<rev>`), only if it
/// is still the current one.
pub async fn delete_package(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    url_rev: Option<&str>,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::Unpublish>(app, Some(caller), &target).await?;
    let expected = match url_rev {
        Some(rev) => Some(expect_current(name, grant.row(), Some(rev))?),
        None => None,
    };
    let reader = readable(app, Some(caller), name).await?;
    delete_package_inner(app, &grant, &reader, expected).await
}

async fn delete_package_inner(
    app: &App,
    grant: &PackageGrant<act::Unpublish>,
    reader: &PackageGrant<act::ReadPackage>,
    expected_rev: Option<i64>,
) -> Result<()> {
    let contents = app.store.package_contents(reader).await?;
    match app
        .store
        .delete_package(grant, expected_rev, app.now())
        .await?
    {
        RevisionWrite::Written => {}
        RevisionWrite::RevisionChanged => return Err(stale(grant.name(), grant.row())),
    }
    if let Some(c) = contents {
        collect_blobs(app, c.versions.into_iter().map(|v| v.blob_key)).await;
    }
    Ok(())
}

/// Deletes blobs no version refers to any more (best effort; `tessera gc` sweeps the rest).
async fn collect_blobs(app: &App, keys: impl Iterator<Item = String>) {
    for key in keys {
        // Under the blob's lock, so a concurrent publish of the same bytes keeps it.
        let deleted = app
            .store
            .delete_blob_if_unreferenced(&key, || app.blobs.delete(&key))
            .await;
        if let Err(e) = deleted {
            tracing::warn!(key, error = %e, "could not delete unreferenced blob");
        }
    }
}

/// `DELETE /<tarball>/-rev/<rev>` after an unpublish: succeeds once the version is gone.
pub async fn delete_tarball(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    file: &str,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let _unpublish = match access::authorize::<act::Unpublish>(app, Some(caller), &target).await {
        Ok(g) => g,
        // Already gone (npm counts a 404 here as success).
        Err(Error::NotFound(_)) if !target.facts().exists => return Ok(()),
        Err(e) => return Err(e),
    };
    let reader = readable(app, Some(caller), name).await?;
    let version = version_of_file(name, file).unwrap_or("");
    if app.store.tarball_of(&reader, version).await?.is_some() {
        return Err(Error::Invalid(
            "unpublish the version before deleting its tarball".into(),
        ));
    }
    Ok(())
}

/// Maintainers of a readable package.
pub async fn owners(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Vec<MaintainerRow>> {
    let grant = readable(app, caller, name).await?;
    Ok(app.store.maintainers(&grant).await?)
}

/// Everyone with rights on a readable package, with the permission they hold:
/// maintainers (write), the owners and admins of its organization (write), and the
/// members of teams granted it (their grant).
pub async fn collaborators(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Vec<(String, PackagePermission)>> {
    let grant = readable(app, caller, name).await?;
    let mut all: std::collections::BTreeMap<String, PackagePermission> = Default::default();
    let mut raise = |user: String, level: PackagePermission| {
        let entry = all.entry(user).or_insert(level);
        *entry = (*entry).max(level);
    };
    let org_members = match name.scope() {
        Some(scope) => app.store.scope_org_admins(scope).await?,
        None => Vec::new(),
    };
    let in_org = match name.scope() {
        Some(scope) => app.store.org_exists(scope).await?,
        None => false,
    };
    for m in app.store.maintainers(&grant).await? {
        // In an organization's scope, a maintainer's rights last while a member.
        let member = !in_org
            || access::package_facts_of_user(app, m.user_id, name)
                .await?
                .facts()
                .is_maintainer;
        if member {
            raise(m.name, PackagePermission::ReadWrite);
        }
    }
    for (_, user, _) in org_members {
        raise(user, PackagePermission::ReadWrite);
    }
    for team in app.store.package_team_grants(grant.package_id()).await? {
        for (_, user) in team.members {
            raise(user, team.permission);
        }
    }
    Ok(all.into_iter().collect())
}

/// Replaces the maintainer list.
pub async fn set_owners(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    names: &[String],
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ChangeOwners>(app, Some(caller), &target).await?;
    if names.is_empty() {
        return Err(Error::Invalid(
            "a package needs at least one maintainer".into(),
        ));
    }
    let mut ids = Vec::new();
    for n in names {
        let user = app
            .store
            .user_by_name(n)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {n} not found")))?;
        if !ids.contains(&user.id) {
            ids.push(user.id);
        }
    }
    app.store.set_maintainers(&grant, &ids, app.now()).await?;
    Ok(())
}

/// Adds `user` to the maintainers (pnpm's `PUT /-/package/<name>/owners`). Adding
/// someone who already maintains it changes nothing.
pub async fn add_owner(app: &App, caller: &Caller, name: &PackageName, user: &str) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ChangeOwners>(app, Some(caller), &target).await?;
    let user = app
        .store
        .user_by_name(user)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user} not found")))?;
    app.store.add_maintainer(&grant, user.id, app.now()).await?;
    Ok(())
}

/// Removes `user` from the maintainers (pnpm's `DELETE /-/package/<name>/owners/<user>`);
/// the last maintainer stays.
pub async fn remove_owner(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    user: &str,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ChangeOwners>(app, Some(caller), &target).await?;
    let not_an_owner = || Error::NotFound(format!("{user} is not a maintainer of {name}"));
    let user = app
        .store
        .user_by_name(user)
        .await?
        .ok_or_else(not_an_owner)?;
    match app
        .store
        .remove_maintainer(&grant, user.id, app.now())
        .await?
    {
        MaintainerRemoval::Removed => Ok(()),
        MaintainerRemoval::NotAMaintainer => Err(not_an_owner()),
        MaintainerRemoval::LastMaintainer => Err(Error::Invalid(format!(
            "{} is the only maintainer of {name}; add another one first",
            user.name
        ))),
    }
}

pub use super::access::MfaPolicy;

/// A readable package's visibility and publishing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub public: bool,
    pub mfa: MfaPolicy,
    /// New versions only through trusted publishing.
    pub trusted_publishing_only: bool,
}

/// Visibility and publishing policy of a readable package.
pub async fn settings(app: &App, caller: Option<&Caller>, name: &PackageName) -> Result<Settings> {
    let grant = readable(app, caller, name).await?;
    Ok(Settings {
        public: grant.row().is_public(),
        mfa: grant.row().mfa,
        trusted_publishing_only: grant.row().trusted_publishing_only != 0,
    })
}

/// Package settings from `POST /-/package/<name>/access`.
#[derive(Debug, Default, Clone)]
pub struct AccessChange {
    pub access: Option<String>,
    pub publish_requires_tfa: Option<bool>,
    pub automation_token_overrides_tfa: Option<bool>,
}

/// Applies visibility and/or 2FA-policy changes.
pub async fn change_access(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    change: AccessChange,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    if let Some(access) = &change.access {
        let grant = access::authorize::<act::ChangeAccess>(app, Some(caller), &target).await?;
        let access: PackageAccess = access.parse().map_err(|_| {
            Error::Invalid(format!(
                "unknown access level {:?}: use public or restricted",
                access.chars().take(40).collect::<String>()
            ))
        })?;
        if name.scope().is_none() && access == PackageAccess::Restricted {
            return Err(Error::Invalid("unscoped packages are always public".into()));
        }
        app.store.set_access(&grant, access, app.now()).await?;
    }
    if let Some(requires) = change.publish_requires_tfa {
        let grant = access::authorize::<act::ChangeMfaPolicy>(app, Some(caller), &target).await?;
        let policy = match (requires, change.automation_token_overrides_tfa) {
            (false, _) => MfaPolicy::None,
            (true, Some(true)) => MfaPolicy::Automation,
            (true, _) => MfaPolicy::Publish,
        };
        app.store.set_mfa_policy(&grant, policy, app.now()).await?;
    }
    Ok(())
}

/// A search hit with what the npm CLI prints.
#[derive(Debug, Clone)]
pub struct Hit {
    pub row: SearchRow,
    pub version: Option<String>,
    pub keywords: Value,
    pub maintainers: Vec<MaintainerRow>,
    pub publisher: Option<(String, String)>,
}

impl Hit {
    /// How well the hit matched, from 1.0 (the exact name) down to 0.2 (only the
    /// description or part of a keyword); see `SearchRow::rank`.
    pub fn score(&self) -> f64 {
        const SCORES: [f64; 6] = [1.0, 0.9, 0.8, 0.6, 0.4, 0.2];
        SCORES[self.row.rank.clamp(0, 5) as usize]
    }
}

/// A page of search hits and how many there are in all.
#[derive(Debug, Clone)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub total: i64,
}

/// Most terms a search looks for, and the longest term.
const MAX_SEARCH_TERMS: usize = 8;
const MAX_TERM_CHARS: usize = 100;

/// Reads what `npm search` sends (its words joined by spaces): plain words are looked
/// for in names, descriptions and keywords; `keywords:a,b` asks for those exact
/// keywords. Lower-cased; at most `MAX_SEARCH_TERMS` words.
pub fn search_query(text: &str) -> SearchQuery {
    let mut query = SearchQuery::default();
    let clip = |w: &str| -> String { w.to_lowercase().chars().take(MAX_TERM_CHARS).collect() };
    for word in text.split_whitespace().take(MAX_SEARCH_TERMS) {
        match word.split_once(':') {
            Some((q, list)) if q.eq_ignore_ascii_case("keywords") => query.keywords.extend(
                list.split(',')
                    .map(|k| clip(k.trim()))
                    .filter(|k| !k.is_empty()),
            ),
            _ => query.terms.push(clip(word)),
        }
    }
    query.keywords.truncate(MAX_SEARCH_TERMS);
    query
}

/// Searches packages the caller may read: the listing is authorized; the query
/// counts and pages only public packages and the restricted ones the caller may read
/// (their read decision, made here); then every hit passes the same read decision as
/// a download, as a second line.
pub async fn search(
    app: &App,
    caller: Option<&Caller>,
    text: &str,
    from: i64,
    size: i64,
) -> Result<SearchResults> {
    let listing = access::authorize_listing(app, caller).await?;
    let restricted: Vec<i64> = app
        .store
        .restricted_maintained(&listing)
        .await?
        .into_iter()
        .filter(|(_, name)| {
            PackageName::parse(name)
                .is_ok_and(|n| access::may_read_maintained_restricted(app, caller, &n))
        })
        .map(|(id, _)| id)
        .collect();
    let page = app
        .store
        .search_packages(
            &listing,
            &search_query(text),
            &restricted,
            from,
            size.clamp(1, 250),
        )
        .await?;
    let mut hits = Vec::with_capacity(page.rows.len());
    for row in page.rows {
        let Ok(name) = PackageName::parse(&row.name) else {
            continue;
        };
        let Ok(grant) = readable(app, caller, &name).await else {
            continue;
        };
        let Ok(doc) = render(app, &grant).await else {
            continue;
        };
        let full: Option<Value> = serde_json::from_slice(&doc.full.body).ok();
        let latest = full
            .as_ref()
            .and_then(|f| f["dist-tags"]["latest"].as_str().map(str::to_owned));
        let manifest = latest
            .as_ref()
            .and_then(|l| full.as_ref().map(|f| f["versions"][l].clone()));
        let publisher = manifest.as_ref().and_then(|m| {
            Some((
                m["_npmUser"]["name"].as_str()?.to_owned(),
                m["_npmUser"]["email"].as_str().unwrap_or("").to_owned(),
            ))
        });
        hits.push(Hit {
            keywords: manifest
                .as_ref()
                .map(|m| m["keywords"].clone())
                .unwrap_or(Value::Null),
            maintainers: app.store.maintainers(&grant).await?,
            version: latest,
            publisher,
            row,
        });
    }
    Ok(SearchResults {
        hits,
        total: page.total,
    })
}

/// Recently changed packages the viewer may read (home page).
pub async fn recent(app: &App, caller: Option<&Caller>, limit: i64) -> Result<Vec<SearchRow>> {
    let listing = match access::authorize_listing(app, caller).await {
        Ok(l) => l,
        Err(_) => return Ok(Vec::new()),
    };
    let rows = app.store.recent_packages(&listing, limit).await?;
    let mut visible = Vec::with_capacity(rows.len());
    for row in rows {
        if let Ok(name) = PackageName::parse(&row.name)
            && readable(app, caller, &name).await.is_ok()
        {
            visible.push(row);
        }
    }
    Ok(visible)
}

/// `GET /-/user/<name>/package`: the caller's packages that the calling credential
/// reaches, with the permission it has on each (`read` or `write`). Only the caller's
/// own name is answered.
pub async fn user_packages(
    app: &App,
    caller: &Caller,
    name: &str,
) -> Result<Vec<(String, PackagePermission)>> {
    if name != caller.user.name {
        return Err(Error::NotFound("no such user or organization".into()));
    }
    let listing = access::authorize_listing(app, Some(caller)).await?;
    let mut out = Vec::new();
    for package in app.store.packages_of_user(&listing).await? {
        let Ok(pkg) = PackageName::parse(&package) else {
            continue;
        };
        let target = package_facts(app, Some(caller), &pkg).await?;
        if !access::preflight(app, Some(caller), Action::ReadPackage, Some(&target)).allows() {
            continue;
        }
        let permission = caller.principal.permission_for(&pkg);
        if permission >= PackagePermission::ReadOnly {
            out.push((package, permission));
        }
    }
    Ok(out)
}

/// Whether `caller` may change the settings of `name` (visibility, maintainers,
/// publishing policy): the access check's answer, used to show or hide the settings.
/// The change itself is checked again, with its one-time password, when it is made.
pub async fn may_change_settings(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<bool> {
    let Some(caller) = caller else {
        return Ok(false);
    };
    let target: Target = package_facts(app, Some(caller), name).await?;
    Ok(access::preflight(app, Some(caller), Action::ChangeOwners, Some(&target)).allows())
}
