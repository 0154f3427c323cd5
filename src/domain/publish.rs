//! `npm publish`, in the order that keeps refusals cheap:
//! 1. `preflight`, before the body is read: may this caller publish this name at all
//!    (the access decision without spending a one-time password, Node core module
//!    names, names deleted less than 24 hours ago).
//! 2. `parse_body`, off the async runtime: the body's shape and metadata; the tarball
//!    stays base64 inside the request buffer.
//! 3. `publish`: the body checked against the URL, the full access check (with the
//!    OTP), the version's identity against every version this name ever had; then,
//!    off the runtime, the tarball decoded in place, hashed and inspected within the
//!    configured limits, a provenance bundle (if sent) checked against its SHA-512
//!    (`npm::provenance`); the two manifests compared (manifest confusion); the tarball
//!    stored (content-addressed) before the one transaction that commits the version,
//!    its history entry, its dist-tags and the package revision.
//!
//! Versions are never reused: `version_history` keeps every name@version ever
//! published, keyed without build metadata (`1.0.5+evil` is `1.0.5`), through
//! unpublish and package deletion.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::access::{self, Action, Decision};
use super::{Caller, Error, Result, Target, package_facts};
use crate::app::App;
use crate::npm::core_modules::is_core_module;
use crate::npm::name::{PackageName, valid_version};
use crate::npm::packument::{has_install_script, iso_time};
use crate::npm::provenance::{self, Provenance};
use crate::npm::publish_body::{self, PublishBody, PutBody, Span};
use crate::npm::tarball::{self, TarballError, TarballFacts};
use crate::npm::{integrity, manifest, tag, version};
use crate::store::{NewVersion, PublishOutcome, SecurityEventKind};

/// How long a deleted name stays reserved for its former maintainers.
pub const NAME_RESERVED_MS: i64 = 24 * 60 * 60 * 1000;

/// A published version.
#[derive(Debug)]
pub struct Published {
    pub name: String,
    pub version: String,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Decides, before the body is read, whether `caller` may publish `name` at all.
/// `Some(refusal)` is the error a publish would get: the access decision's, an OTP
/// demand (when one is needed and none was sent), or a rule for new names. No
/// one-time password is spent here: a sent one is checked once the body is in.
pub async fn preflight(app: &App, caller: &Caller, name: &PackageName) -> Result<Option<Error>> {
    let target = package_facts(app, Some(caller), name).await?;
    let decision = access::preflight(app, Some(caller), Action::Publish, Some(&target));
    let has_otp = caller.otp.as_deref().is_some_and(|c| !c.trim().is_empty());
    let refusal = match decision {
        Decision::Allow => None,
        Decision::AllowWithOtp if has_otp => None,
        // A denial, or an OTP demand without an OTP: the gate answers these with
        // the error a publish gets, and spends nothing on either path.
        Decision::AllowWithOtp | Decision::Deny(_) => {
            access::authorize_publish(app, caller, &target).await.err()
        }
    };
    if refusal.is_some() {
        return Ok(refusal);
    }
    Ok(new_name_rules(app, caller, &target).await.err())
}

/// Decides, before the body is read, whether `caller` may stage a version of `name`
/// (`Some(refusal)` otherwise). Staging never asks for a one-time password.
pub async fn stage_preflight(
    app: &App,
    caller: &Caller,
    name: &PackageName,
) -> Result<Option<Error>> {
    let target = package_facts(app, Some(caller), name).await?;
    match access::preflight(app, Some(caller), Action::StagePublish, Some(&target)) {
        Decision::Allow | Decision::AllowWithOtp => Ok(None),
        Decision::Deny(_) => {
            Ok(Some(
                match access::authorize::<access::act::StagePublish>(app, Some(caller), &target)
                    .await
                {
                    Err(Error::NotFound(_)) => stage_needs_package(name),
                    Err(e) => e,
                    Ok(_) => return Ok(None),
                },
            ))
        }
    }
}

/// Rules for creating a package: no Node core module names, no name deleted less
/// than `NAME_RESERVED_MS` ago unless the caller maintained it.
async fn new_name_rules(app: &App, caller: &Caller, target: &Target) -> Result<()> {
    if target.facts().exists {
        return Ok(());
    }
    let name = target.name();
    if name.scope().is_none() && is_core_module(name.as_str()) {
        return Err(Error::Forbidden(format!(
            "{name} is a Node.js core module name and cannot be used for a new package; \
             publish it under a scope, e.g. @{}/{name}",
            caller.user.name
        )));
    }
    if let Some(tombstone) = app.store.tombstone(name.as_str()).await? {
        let free_at = tombstone.deleted_at.saturating_add(NAME_RESERVED_MS);
        if app.now() < free_at && !tombstone.former_maintainers.contains(&caller.user.id) {
            return Err(Error::Forbidden(format!(
                "{name} was deleted on {}; only its former maintainers may publish it until {}",
                iso_time(tombstone.deleted_at),
                iso_time(free_at)
            )));
        }
    }
    super::proxy::shield_new_name(app, caller, name).await
}

/// Parses a `PUT /<name>` body off the async runtime; the buffer comes back with it
/// (a publish's tarball is still inside).
pub async fn parse_body(buf: Vec<u8>, caller: &Caller) -> Result<(Vec<u8>, PutBody)> {
    let name = caller.user.name.clone();
    let (buf, parsed) = tokio::task::spawn_blocking(move || {
        let parsed = publish_body::parse(&buf, &name);
        (buf, parsed)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    Ok((buf, parsed.map_err(|e| invalid(e.to_string()))?))
}

/// What a valid publish body carries.
struct Checked {
    version: String,
    manifest: Map<String, Value>,
    data: Span,
    declared_length: Option<u64>,
    declared_integrity: Option<String>,
    declared_shasum: Option<String>,
    tags: Vec<(String, String)>,
    access_if_new: &'static str,
    /// The `<name>-<version>.sigstore` attachment, when sent (`npm publish --provenance`).
    provenance: Option<SentBundle>,
}

/// A provenance attachment as sent: its file name, `content_type` and data.
struct SentBundle {
    file: String,
    content_type: Option<String>,
    data: Span,
}

/// Checks the body against the URL and itself (no I/O).
fn check_body(name: &PackageName, body: PublishBody) -> Result<Checked> {
    for (field, value) in [("_id", &body.id), ("name", &body.name)] {
        if let Some(v) = value
            && v.as_str() != Some(name.as_str())
        {
            return Err(invalid(format!(
                "{field} in the body does not match the URL ({name})"
            )));
        }
    }
    if body.versions.len() != 1 {
        return Err(invalid(if body.versions.is_empty() {
            "publish body has no versions"
        } else {
            "a publish must carry exactly one version"
        }));
    }
    let Some((version, manifest)) = body.versions.into_iter().next() else {
        return Err(invalid("publish body has no versions"));
    };
    if !valid_version(&version) {
        return Err(invalid(format!(
            "invalid version {version:?}: versions must be valid semver"
        )));
    }
    let Value::Object(manifest) = manifest else {
        return Err(invalid("version manifest must be an object"));
    };
    if manifest.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(invalid("the manifest's name does not match the URL"));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(invalid("the manifest's version does not match its key"));
    }
    let expected_file = format!("{name}-{version}.tgz");
    let bare_file = name.tarball_file(&version);
    let attachment = body
        .attachments
        .iter()
        .find(|a| a.file == expected_file)
        .or_else(|| body.attachments.iter().find(|a| a.file == bare_file))
        .ok_or_else(|| invalid(format!("missing attachment {expected_file}")))?;
    let data = attachment
        .data
        .ok_or_else(|| invalid("attachment has no data"))?;
    let dist = manifest.get("dist").and_then(Value::as_object);
    let declared = |key: &str| {
        dist.and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (declared_integrity, declared_shasum) = (declared("integrity"), declared("shasum"));
    if declared_integrity.is_none() && declared_shasum.is_none() {
        return Err(invalid("dist.integrity or dist.shasum is required"));
    }
    let mut tags = Vec::new();
    for (tag, target) in body.dist_tags.iter().flatten() {
        tag::validate(tag).map_err(|e| invalid(e.to_string()))?;
        if target.as_str() != Some(version.as_str()) {
            return Err(invalid(format!(
                "dist-tag {tag:?} must point at the version being published ({version})"
            )));
        }
        tags.push((tag.clone(), version.clone()));
    }
    let bundle_file = format!("{name}-{version}.sigstore");
    let bare_bundle_file = format!("{}-{version}.sigstore", name.bare());
    let provenance = body
        .attachments
        .iter()
        .find(|a| a.file == bundle_file || a.file == bare_bundle_file)
        .map(|a| {
            a.data
                .map(|data| SentBundle {
                    file: a.file.clone(),
                    content_type: a.content_type.clone(),
                    data,
                })
                .ok_or_else(|| invalid(format!("attachment {:?} has no data", a.file)))
        })
        .transpose()?;
    let requested_access = body.access.as_ref().and_then(Value::as_str);
    let access_if_new = match (name.scope(), requested_access) {
        (None, Some("restricted")) => {
            return Err(invalid("unscoped packages cannot be restricted"));
        }
        (None, _) | (Some(_), Some("public")) => "public",
        (Some(_), _) => "restricted",
    };
    Ok(Checked {
        version,
        manifest,
        data,
        declared_length: attachment.length,
        declared_integrity,
        declared_shasum,
        tags,
        access_if_new,
        provenance,
    })
}

/// The tarball, decoded and checked off the async runtime, with the provenance
/// bundle checked against it.
struct Unpacked {
    tarball: Bytes,
    digests: integrity::Digests,
    facts: TarballFacts,
    provenance: Option<(String, Provenance)>,
}

fn tarball_error(e: TarballError) -> Error {
    if e.is_too_large() {
        Error::TooLarge(e.to_string())
    } else {
        invalid(e.to_string())
    }
}

/// Decodes the attachment in place, checks its length and integrity, and inspects it;
/// checks the provenance bundle, if any, against it (`npm::provenance`).
fn unpack(
    mut buf: Vec<u8>,
    name: &PackageName,
    checked: &Checked,
    limits: &tarball::Limits,
) -> Result<Unpacked> {
    // Read before the tarball is decoded over the buffer.
    let bundle = match &checked.provenance {
        None => None,
        Some(sent) => Some(
            // A JSON string escapes every quote of the bundle: twice the bytes at most.
            publish_body::string_attachment(&buf, sent.data, 2 * provenance::MAX_BUNDLE_BYTES)
                .ok_or_else(|| {
                    invalid(format!(
                        "attachment {:?}: the provenance bundle must be sent as a JSON string of \
                         at most {} KiB",
                        sent.file,
                        provenance::MAX_BUNDLE_BYTES / 1024
                    ))
                })?,
        ),
    };
    publish_body::decode_attachment(&mut buf, checked.data).map_err(|e| invalid(e.to_string()))?;
    if let Some(len) = checked.declared_length
        && len != buf.len() as u64
    {
        return Err(invalid(format!(
            "attachment length {len} does not match its data ({} bytes)",
            buf.len()
        )));
    }
    let digests = integrity::digest(&buf);
    if let Some(sri) = &checked.declared_integrity
        && !integrity::matches_declared(sri, &digests)
    {
        return Err(invalid(
            "integrity mismatch: dist.integrity does not match the tarball",
        ));
    }
    if let Some(sum) = &checked.declared_shasum
        && !sum.eq_ignore_ascii_case(&digests.shasum)
    {
        return Err(invalid(
            "integrity mismatch: dist.shasum does not match the tarball",
        ));
    }
    let provenance = match (&checked.provenance, bundle) {
        (Some(sent), Some(bundle)) => {
            let checked = provenance::check(
                &sent.file,
                sent.content_type.as_deref(),
                &bundle,
                name.as_str(),
                &checked.version,
                &digests.sha512_hex,
            )
            .map_err(|e| invalid(e.to_string()))?;
            Some((bundle, checked))
        }
        _ => None,
    };
    let facts = tarball::inspect(&buf, limits).map_err(tarball_error)?;
    Ok(Unpacked {
        tarball: Bytes::from(buf),
        digests,
        facts,
        provenance,
    })
}

/// Publishes the single version of a parsed publish body; `buf` is the request
/// buffer the body was parsed from (it still holds the tarball's base64 text).
pub async fn publish(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    buf: Vec<u8>,
    body: PublishBody,
) -> Result<Published> {
    let checked = check_body(name, body)?;
    let version = checked.version.clone();

    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize_publish(app, caller, &target).await?;
    new_name_rules(app, caller, &target).await?;

    let limits = tarball::Limits {
        max_unpacked_bytes: app.config.max_unpacked_bytes,
        ..tarball::Limits::default()
    };
    let owned_name = name.clone();
    let version_key = version::key(&version).to_owned();
    // The tarball is unpacked on the blocking pool while four independent reads are
    // asked at once (on PostgreSQL each would be a round trip): whether the version
    // was ever published, the maintainers, the signing key and whether `latest`
    // exists. A version that exists is refused before anything the unpacking found.
    let unpacking = tokio::task::spawn_blocking(move || {
        let unpacked = unpack(buf, &owned_name, &checked, &limits);
        (checked, unpacked)
    });
    let existing = grant.row().is_some();
    let (ever_published, published_maintainers, key, has_latest) = tokio::try_join!(
        async {
            Ok::<_, Error>(
                app.store
                    .version_ever_published(&grant, &version_key)
                    .await?,
            )
        },
        async {
            if existing {
                Ok::<_, Error>(app.store.maintainers_of_published(&grant).await?)
            } else {
                Ok(Vec::new())
            }
        },
        // Signed now, with the key active at publish: the signature covers the
        // integrity as stored, so a later change to the stored document no longer
        // verifies.
        super::signing::active_key(app),
        async {
            if existing {
                Ok::<_, Error>(app.store.has_dist_tag(&grant, "latest").await?)
            } else {
                Ok(false)
            }
        },
    )?;
    if ever_published {
        return Err(version_exists(&version));
    }
    let (checked, unpacked) = unpacking.await.map_err(|e| Error::Internal(e.into()))?;
    let Unpacked {
        tarball,
        digests,
        facts,
        provenance,
    } = unpacked?;
    if !facts.tokens.is_empty() {
        let files = super::leaks::revoke_found_in_tarball(
            app,
            &facts.tokens,
            name.as_str(),
            &version,
            &caller.ip_text(),
        )
        .await?;
        if !files.is_empty() {
            return Err(invalid(format!(
                "the tarball contains a live Tessera access token in {}; that token is now \
                 revoked, since it was about to be published. Remove it from the package \
                 (add the file to .npmignore or the \"files\" list), create a new token, and \
                 publish again",
                files.join(", ")
            )));
        }
    }
    manifest::check(&checked.manifest, &facts).map_err(|e| invalid(e.to_string()))?;

    let maintainers: Vec<(String, String)> = if existing {
        published_maintainers
            .into_iter()
            .map(|m| (m.name, m.email))
            .collect()
    } else {
        vec![(caller.user.name.clone(), caller.user.email.clone())]
    };
    let (stored, readme) = stored_manifest(
        checked.manifest,
        name,
        &version,
        caller,
        &maintainers,
        &digests,
        &facts,
    );
    let mut stored = stored;
    if let Some(dist) = stored.get_mut("dist").and_then(Value::as_object_mut) {
        dist.insert(
            "signatures".into(),
            super::signing::signatures(&key, name.as_str(), &version, &digests.integrity),
        );
    }
    with_attestations(&mut stored, provenance.as_ref());
    let description = stored
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut tags = checked.tags;
    if !has_latest && !tags.iter().any(|(t, _)| t == "latest") {
        tags.push(("latest".into(), version.clone()));
    }

    let manifest_text = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.into()))?;
    let size = i64::try_from(tarball.len()).map_err(|e| Error::Internal(e.into()))?;
    app.blobs.put(&digests.sha512_hex, tarball.clone()).await?;
    // `tessera gc` may remove the blob before the commit: the store re-checks it under
    // the blob's lock right before COMMIT and it is written again if it vanished.
    let blob_present =
        || async { Ok::<_, Error>(app.blobs.ensure(&digests.sha512_hex, tarball).await?) };
    let outcome = app
        .store
        .publish_version(
            &grant,
            blob_present,
            &NewVersion {
                name: name.as_str(),
                scope: name.scope(),
                access_if_new: checked.access_if_new,
                access_change: None,
                version: &version,
                manifest: &manifest_text,
                readme: readme.as_deref(),
                description: description.as_deref(),
                blob_key: &digests.sha512_hex,
                size,
                integrity: &digests.integrity,
                shasum: &digests.shasum,
                user_id: caller.user.id,
                tags: &tags,
                provenance: provenance.as_ref().map(|(bundle, _)| bundle.as_str()),
                now: app.now(),
            },
        )
        .await?;
    match outcome {
        PublishOutcome::Published { .. } => {
            if let access::Credential::Oidc(scope) = &caller.principal.credential {
                super::security_log::record(
                    app,
                    caller.user.id,
                    SecurityEventKind::TrustedPublish,
                    &format!(
                        "{name}@{version} published through trusted publishing by {} (token {})",
                        scope.identity,
                        caller
                            .token
                            .as_ref()
                            .map_or("?", |t| t.display_prefix.as_str())
                    ),
                    Some(&caller.ip_text()),
                )
                .await;
            }
            Ok(Published {
                name: name.to_string(),
                version,
            })
        }
        PublishOutcome::VersionExists => Err(version_exists(&version)),
        // Rights changed between the decision and the commit: the same answer the
        // decision gives (it tells a stranger nothing).
        PublishOutcome::NotMaintainer | PublishOutcome::ScopeTaken => {
            Err(Error::Forbidden(access::publish_refusal(name)))
        }
    }
}

/// A staged version (`npm stage publish`).
#[derive(Debug)]
pub struct Staged {
    pub id: String,
    pub name: String,
    pub version: String,
}

/// The refusal a stage gets for a package that does not exist (or is hidden).
fn stage_needs_package(name: &PackageName) -> Error {
    Error::NotFound(format!(
        "package {name} not found: a staged release is for a package that exists; publish its first version directly"
    ))
}

/// Stages the single version of a parsed publish body: checked exactly like a
/// publish (body, tarball, manifests), stored with its tarball, invisible to
/// installs until a maintainer approves it (`domain::staging`). No one-time password
/// is asked: the second factor comes with the approval.
pub async fn stage(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    buf: Vec<u8>,
    body: PublishBody,
) -> Result<Staged> {
    let checked = check_body(name, body)?;
    let version = checked.version.clone();
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<access::act::StagePublish>(app, Some(caller), &target)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => stage_needs_package(name),
            other => other,
        })?;
    if app
        .store
        .staged_version_ever_published(&grant, version::key(&version))
        .await?
    {
        return Err(version_exists(&version));
    }
    let limits = tarball::Limits {
        max_unpacked_bytes: app.config.max_unpacked_bytes,
        ..tarball::Limits::default()
    };
    let owned_name = name.clone();
    let (checked, unpacked) = tokio::task::spawn_blocking(move || {
        let unpacked = unpack(buf, &owned_name, &checked, &limits);
        (checked, unpacked)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    let Unpacked {
        tarball,
        digests,
        facts,
        provenance,
    } = unpacked?;
    manifest::check(&checked.manifest, &facts).map_err(|e| invalid(e.to_string()))?;
    // Maintainers are filled in when the version is approved.
    let (stored, readme) = stored_manifest(
        checked.manifest,
        name,
        &version,
        caller,
        &[],
        &digests,
        &facts,
    );
    let mut stored = stored;
    with_attestations(&mut stored, provenance.as_ref());
    let manifest_text = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.into()))?;
    let size = i64::try_from(tarball.len()).map_err(|e| Error::Internal(e.into()))?;
    let tag = checked
        .tags
        .first()
        .map_or_else(|| "latest".to_owned(), |(t, _)| t.clone());
    let (actor, actor_type) = match &caller.principal.credential {
        access::Credential::Oidc(scope) => (scope.identity.clone(), access::ActorType::Oidc),
        _ => (caller.user.name.clone(), access::ActorType::User),
    };
    app.blobs.put(&digests.sha512_hex, tarball.clone()).await?;
    let blob_present =
        || async { Ok::<_, Error>(app.blobs.ensure(&digests.sha512_hex, tarball).await?) };
    let id = uuid::Uuid::new_v4().to_string();
    let stored = app
        .store
        .stage_version(
            &grant,
            blob_present,
            &crate::store::NewStaged {
                id: &id,
                version: &version,
                tag: &tag,
                manifest: &manifest_text,
                readme: readme.as_deref(),
                blob_key: &digests.sha512_hex,
                size,
                integrity: &digests.integrity,
                shasum: &digests.shasum,
                staged_by: caller.user.id,
                actor: &actor,
                actor_type,
                provenance: provenance.as_ref().map(|(bundle, _)| bundle.as_str()),
                now: app.now(),
            },
        )
        .await?;
    if !stored {
        return Err(Error::Conflict(format!(
            "{name}@{version} is already staged; approve or reject it first"
        )));
    }
    Ok(Staged {
        id,
        name: name.to_string(),
        version,
    })
}

/// Client fields kept among the `_`-prefixed ones; every other one is dropped.
const KEPT_UNDERSCORE_FIELDS: &[&str] = &["_nodeVersion", "_npmVersion"];

/// The manifest as stored: the client's, with every field the registry owns
/// replaced (`_id`, `_npmUser`, `maintainers`, `dist`, `hasInstallScript`,
/// `_hasShrinkwrap`) or dropped (other `_` fields, `deprecated`, `access`), and the
/// readme taken out (stored beside it).
fn stored_manifest(
    mut manifest: Map<String, Value>,
    name: &PackageName,
    version: &str,
    caller: &Caller,
    maintainers: &[(String, String)],
    digests: &integrity::Digests,
    facts: &TarballFacts,
) -> (Map<String, Value>, Option<String>) {
    let readme = manifest
        .remove("readme")
        .and_then(|r| r.as_str().map(str::to_owned));
    manifest.retain(|key, _| {
        let server_owned = matches!(
            key.as_str(),
            "maintainers" | "dist" | "hasInstallScript" | "deprecated" | "access"
        ) || (key.starts_with('_')
            && !KEPT_UNDERSCORE_FIELDS.contains(&key.as_str()));
        !server_owned
    });
    manifest.insert("_id".into(), json!(format!("{name}@{version}")));
    let mut npm_user = json!({"name": caller.user.name, "email": caller.user.email});
    if let access::Credential::Oidc(scope) = &caller.principal.credential {
        // Which credential published: a CI identity through trusted publishing.
        npm_user["trustedPublisher"] = json!({"identity": scope.identity});
    }
    manifest.insert("_npmUser".into(), npm_user);
    manifest.insert(
        "maintainers".into(),
        Value::Array(
            maintainers
                .iter()
                .map(|(n, e)| json!({"name": n, "email": e}))
                .collect(),
        ),
    );
    manifest.insert(
        "dist".into(),
        json!({
            "integrity": digests.integrity,
            "shasum": digests.shasum,
            "fileCount": facts.file_count,
            "unpackedSize": facts.unpacked_size,
        }),
    );
    let scripts = json!({"scripts": manifest.get("scripts").cloned().unwrap_or(Value::Null)});
    if has_install_script(&scripts, facts.has_binding_gyp) {
        manifest.insert("hasInstallScript".into(), json!(true));
    }
    if facts.has_shrinkwrap {
        manifest.insert("_hasShrinkwrap".into(), json!(true));
    }
    (manifest, readme)
}

/// Marks a stored manifest's `dist` as having a provenance attestation, with the
/// statement's predicate type; the URL is added when the packument is rendered
/// (`npm::packument`), since it follows the public base URL.
fn with_attestations(stored: &mut Map<String, Value>, provenance: Option<&(String, Provenance)>) {
    if let (Some((_, p)), Some(dist)) = (
        provenance,
        stored.get_mut("dist").and_then(Value::as_object_mut),
    ) {
        dist.insert(
            "attestations".into(),
            json!({"provenance": {"predicateType": p.predicate_type}}),
        );
    }
}

fn version_exists(version: &str) -> Error {
    Error::Forbidden(format!(
        "You cannot publish over the previously published versions: {version}."
    ))
}
