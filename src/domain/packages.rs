//! Reading and managing published packages: packuments, tarballs, dist-tags,
//! deprecation, unpublish, owners, visibility, the 2FA publishing policy and search.

use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

use super::access::Action;
use super::packument_cache::{CachedDoc, Rendition, http_date};
use super::{Caller, Error, Result, Target, authorize, package_facts};
use crate::app::App;
use crate::npm::name::PackageName;
use crate::npm::packument::{self, PackageDoc, VersionDoc};
use crate::store::{MaintainerRow, PackageRow, SearchRow};

async fn readable(app: &App, caller: Option<&Caller>, name: &PackageName) -> Result<Target> {
    let target = package_facts(app, caller, name).await?;
    authorize(app, caller, Action::ReadPackage, Some(&target)).await?;
    Ok(target)
}

fn row(target: &Target) -> Result<&PackageRow> {
    target
        .row
        .as_deref()
        .ok_or_else(|| Error::NotFound(format!("package {} not found", target.name)))
}

/// The packument, rendered once per revision.
pub async fn packument(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Arc<CachedDoc>> {
    let target = readable(app, caller, name).await?;
    let package = row(&target)?;
    if let Some(doc) = app.packuments.get(name.as_str(), package.rev) {
        return Ok(doc);
    }
    let contents = app
        .store
        .package_contents(name.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("package {name} not found")))?;
    if contents.versions.is_empty() {
        return Err(Error::NotFound(format!("package {name} not found")));
    }
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
        versions: contents
            .versions
            .into_iter()
            .map(|v| VersionDoc {
                manifest: serde_json::from_str(&v.manifest).unwrap_or(Value::Null),
                version: v.version,
                readme: v.readme,
                published_at_ms: v.published_at,
                deprecated: v.deprecated,
            })
            .collect(),
    };
    let full =
        Bytes::from(serde_json::to_vec(&packument::full(&doc, &app.public_url)).expect("json"));
    let abbreviated = Bytes::from(
        serde_json::to_vec(&packument::abbreviated(&doc, &app.public_url)).expect("json"),
    );
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

/// The tarball of `name` named `file` (`<bare>-<version>.tgz`), streamed.
pub async fn tarball(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
    file: &str,
) -> Result<(u64, crate::blob::BlobStream)> {
    let version = file
        .strip_prefix(name.bare())
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tgz"))
        .ok_or_else(|| Error::NotFound(format!("tarball {file} not found")))?;
    let target = readable(app, caller, name).await?;
    let package = row(&target)?;
    let (key, _) = app
        .store
        .tarball_of(package.id, version)
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
    let target = readable(app, caller, name).await?;
    Ok(app.store.dist_tags_of(row(&target)?.id).await?)
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
    authorize(app, Some(caller), Action::DistTag, Some(&target)).await?;
    let package = row(&target)?;
    if !app
        .store
        .set_dist_tag(package.id, tag, version, app.now())
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
    authorize(app, Some(caller), Action::DistTag, Some(&target)).await?;
    if tag == "latest" {
        return Err(Error::Invalid("the latest tag cannot be removed".into()));
    }
    let package = row(&target)?;
    if !app
        .store
        .remove_dist_tag(package.id, tag, app.now())
        .await?
    {
        return Err(Error::NotFound(format!(
            "{tag} is not a dist-tag on {name}"
        )));
    }
    Ok(())
}

/// Applies a full-document `PUT /<name>` (deprecate/undeprecate) or a star body.
pub async fn update_document(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    body: &Value,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let Some(versions) = body.get("versions").and_then(Value::as_object) else {
        // A star/unstar body: accepted for readers, changes nothing stored.
        authorize(app, Some(caller), Action::ReadPackage, Some(&target)).await?;
        return Ok(());
    };
    authorize(app, Some(caller), Action::Deprecate, Some(&target)).await?;
    let package = row(&target)?;
    let contents = app
        .store
        .package_contents(&package.name)
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
    if !changes.is_empty() {
        app.store
            .set_deprecations(package.id, &changes, app.now())
            .await?;
    }
    Ok(())
}

/// `PUT /<name>/-rev/<rev>`: either an unpublish of versions (body has `versions`)
/// or an owner change (body has `maintainers`).
pub async fn update_revision(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    body: &Value,
) -> Result<()> {
    if let Some(versions) = body.get("versions").and_then(Value::as_object) {
        let target = package_facts(app, Some(caller), name).await?;
        authorize(app, Some(caller), Action::Unpublish, Some(&target)).await?;
        let package = row(&target)?;
        let contents = app
            .store
            .package_contents(&package.name)
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        let removed: Vec<String> = contents
            .versions
            .iter()
            .filter(|v| !versions.contains_key(&v.version))
            .map(|v| v.version.clone())
            .collect();
        if removed.is_empty() {
            return Ok(());
        }
        if removed.len() == contents.versions.len() {
            return delete_package_inner(app, package).await;
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
        app.store
            .remove_versions(package.id, &removed, &tags, app.now())
            .await?;
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

/// Deletes a whole package.
pub async fn delete_package(app: &App, caller: &Caller, name: &PackageName) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    authorize(app, Some(caller), Action::Unpublish, Some(&target)).await?;
    delete_package_inner(app, row(&target)?).await
}

async fn delete_package_inner(app: &App, package: &PackageRow) -> Result<()> {
    let contents = app.store.package_contents(&package.name).await?;
    app.store.delete_package(package.id, app.now()).await?;
    if let Some(c) = contents {
        collect_blobs(app, c.versions.into_iter().map(|v| v.blob_key)).await;
    }
    Ok(())
}

/// Deletes blobs no version refers to any more (best effort; `tessera gc` sweeps the rest).
async fn collect_blobs(app: &App, keys: impl Iterator<Item = String>) {
    for key in keys {
        if let Ok(false) = app.store.blob_in_use(&key).await
            && let Err(e) = app.blobs.delete(&key).await
        {
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
    if target.row.is_none() {
        return Ok(());
    }
    authorize(app, Some(caller), Action::Unpublish, Some(&target)).await?;
    let version = file
        .strip_prefix(name.bare())
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tgz"))
        .unwrap_or("");
    if app
        .store
        .tarball_of(row(&target)?.id, version)
        .await?
        .is_some()
    {
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
    let target = readable(app, caller, name).await?;
    Ok(app.store.maintainers(row(&target)?.id).await?)
}

/// Replaces the maintainer list.
pub async fn set_owners(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    names: &[String],
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    authorize(app, Some(caller), Action::ChangeOwners, Some(&target)).await?;
    let package = row(&target)?;
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
    app.store
        .set_maintainers(package.id, &ids, app.now())
        .await?;
    Ok(())
}

/// Whether a readable package is public.
pub async fn visibility(app: &App, caller: Option<&Caller>, name: &PackageName) -> Result<bool> {
    let target = readable(app, caller, name).await?;
    Ok(row(&target)?.access == "public")
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
        authorize(app, Some(caller), Action::ChangeAccess, Some(&target)).await?;
        let access = match access.as_str() {
            "public" => "public",
            "restricted" | "private" => "restricted",
            other => return Err(Error::Invalid(format!("unknown access level {other:?}"))),
        };
        if name.scope().is_none() && access == "restricted" {
            return Err(Error::Invalid("unscoped packages are always public".into()));
        }
        app.store
            .set_access(row(&target)?.id, access, app.now())
            .await?;
    }
    if let Some(requires) = change.publish_requires_tfa {
        authorize(app, Some(caller), Action::ChangeMfaPolicy, Some(&target)).await?;
        let overrides = requires && change.automation_token_overrides_tfa.unwrap_or(false);
        app.store
            .set_mfa_policy(row(&target)?.id, requires, overrides, app.now())
            .await?;
    }
    Ok(())
}

/// The publishing 2FA policy shown by `npm access get` and the website.
pub fn mfa_label(package: &PackageRow) -> &'static str {
    match (
        package.publish_requires_tfa != 0,
        package.automation_overrides_tfa != 0,
    ) {
        (false, _) => "none",
        (true, false) => "publish",
        (true, true) => "automation",
    }
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

/// Searches packages the caller may read.
pub async fn search(
    app: &App,
    caller: Option<&Caller>,
    text: &str,
    from: i64,
    size: i64,
) -> Result<Vec<Hit>> {
    if caller.is_none() && !app.config.anonymous_read {
        return Err(Error::Unauthenticated(
            "authentication required; log in with `npm login`".into(),
        ));
    }
    let rows = app
        .store
        .search_packages(
            text.trim(),
            caller.map(|c| c.user.id),
            from,
            size.clamp(1, 250),
        )
        .await?;
    let mut hits = Vec::with_capacity(rows.len());
    for row in rows {
        let name = match PackageName::parse(&row.name) {
            Ok(n) => n,
            Err(_) => continue,
        };
        // Every hit goes through the same read check as a download (inside `packument`).
        let Ok(doc) = packument(app, caller, &name).await else {
            continue;
        };
        let doc = Some(doc);
        let full: Option<Value> = doc
            .as_ref()
            .and_then(|d| serde_json::from_slice(&d.full.body).ok());
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
            maintainers: app.store.maintainers(row.id).await?,
            version: latest,
            publisher,
            row,
        });
    }
    Ok(hits)
}

/// Recently changed packages the viewer may read (home page).
pub async fn recent(app: &App, caller: Option<&Caller>, limit: i64) -> Result<Vec<SearchRow>> {
    if caller.is_none() && !app.config.anonymous_read {
        return Ok(Vec::new());
    }
    Ok(app
        .store
        .recent_packages(caller.map(|c| c.user.id), limit)
        .await?)
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
    let target = package_facts(app, Some(caller), name).await?;
    Ok(matches!(
        super::access::decide(
            Some(&caller.principal),
            Action::ChangeOwners,
            Some((&target.name, &target.facts)),
            app.config.anonymous_read
        ),
        super::access::Decision::Allow | super::access::Decision::AllowWithOtp
    ))
}
