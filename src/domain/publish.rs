//! `npm publish`: validate the body against the URL, the declared integrity and the
//! tarball; store the tarball (content-addressed) before the one transaction that
//! commits the version, its dist-tags and the package revision.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::access;
use super::{Caller, Error, Result, package_facts};
use crate::app::App;
use crate::npm::integrity;
use crate::npm::name::{PackageName, valid_version};
use crate::npm::packument::has_install_script;
use crate::npm::tarball;
use crate::store::{NewVersion, PublishOutcome};

/// A validated publish, ready to store.
#[derive(Debug)]
pub struct Published {
    pub name: String,
    pub version: String,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Publishes the single version carried by a publish body.
pub async fn publish(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    body: &Value,
) -> Result<Published> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("publish body must be a JSON object"))?;
    for field in ["_id", "name"] {
        if let Some(v) = obj.get(field)
            && v.as_str() != Some(name.as_str())
        {
            return Err(invalid(format!(
                "{field} in the body does not match the URL ({name})"
            )));
        }
    }
    let versions = obj
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("publish body has no versions"))?;
    if versions.len() != 1 {
        return Err(invalid("a publish must carry exactly one version"));
    }
    let (version, manifest) = versions.iter().next().expect("one version");
    if !valid_version(version) {
        return Err(invalid(format!(
            "invalid version {version:?}: versions must be valid semver"
        )));
    }
    let manifest = manifest
        .as_object()
        .ok_or_else(|| invalid("version manifest must be an object"))?;
    if manifest.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(invalid("the manifest's name does not match the URL"));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(invalid("the manifest's version does not match its key"));
    }
    let attachments = obj
        .get("_attachments")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("publish body has no _attachments"))?;
    let expected_file = format!("{name}-{version}.tgz");
    let attachment = attachments
        .get(&expected_file)
        .or_else(|| attachments.get(&name.tarball_file(version)))
        .ok_or_else(|| invalid(format!("missing attachment {expected_file}")))?;
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("attachment has no data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| invalid("attachment data is not valid base64"))?;
    if let Some(len) = attachment.get("length").and_then(Value::as_u64)
        && len != bytes.len() as u64
    {
        return Err(invalid(format!(
            "attachment length {len} does not match its data ({} bytes)",
            bytes.len()
        )));
    }
    let digests = integrity::digest(&bytes);
    let dist = manifest.get("dist").and_then(Value::as_object);
    let declared_integrity = dist
        .and_then(|d| d.get("integrity"))
        .and_then(Value::as_str);
    let declared_shasum = dist.and_then(|d| d.get("shasum")).and_then(Value::as_str);
    if declared_integrity.is_none() && declared_shasum.is_none() {
        return Err(invalid("dist.integrity or dist.shasum is required"));
    }
    if let Some(sri) = declared_integrity
        && !integrity::matches_declared(sri, &digests)
    {
        return Err(invalid(
            "integrity mismatch: dist.integrity does not match the tarball",
        ));
    }
    if let Some(sum) = declared_shasum
        && !sum.eq_ignore_ascii_case(&digests.shasum)
    {
        return Err(invalid(
            "integrity mismatch: dist.shasum does not match the tarball",
        ));
    }
    let facts = tarball::inspect(&bytes).map_err(invalid)?;
    let inner = facts
        .manifest
        .as_ref()
        .ok_or_else(|| invalid("the tarball has no package/package.json"))?;
    if inner.get("name").and_then(Value::as_str) != Some(name.as_str())
        || inner.get("version").and_then(Value::as_str) != Some(version.as_str())
    {
        return Err(invalid(
            "the tarball's package.json name or version does not match the publish",
        ));
    }

    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize_publish(app, caller, &target).await?;

    let requested_access = obj.get("access").and_then(Value::as_str);
    let access_if_new = match (name.scope(), requested_access) {
        (None, Some("restricted")) => {
            return Err(invalid("unscoped packages cannot be restricted"));
        }
        (None, _) => "public",
        (Some(_), Some("public")) => "public",
        (Some(_), _) => "restricted",
    };
    if grant.row().is_some() && app.store.version_exists(&grant, version).await? {
        return Err(version_exists(version));
    }

    let mut stored = manifest.clone();
    let readme = stored
        .remove("readme")
        .and_then(|r| r.as_str().map(str::to_owned));
    for key in ["_attachments", "_rev", "_revisions", "access"] {
        stored.remove(key);
    }
    stored.insert("_id".into(), json!(format!("{name}@{version}")));
    stored.insert(
        "_npmUser".into(),
        json!({"name": caller.user.name, "email": caller.user.email}),
    );
    let mut dist = Map::new();
    dist.insert("integrity".into(), json!(digests.integrity));
    dist.insert("shasum".into(), json!(digests.shasum));
    dist.insert("fileCount".into(), json!(facts.file_count));
    dist.insert("unpackedSize".into(), json!(facts.unpacked_size));
    stored.insert("dist".into(), Value::Object(dist));
    let stored_value = Value::Object(stored);
    let install_script = has_install_script(&stored_value, facts.has_binding_gyp);
    let mut stored = stored_value.as_object().cloned().expect("object");
    if install_script {
        stored.insert("hasInstallScript".into(), json!(true));
    }
    if facts.has_shrinkwrap {
        stored.insert("_hasShrinkwrap".into(), json!(true));
    }
    let description = stored
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);

    let mut tags: Vec<(String, String)> = obj
        .get("dist-tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.as_str() == Some(version.as_str()))
                .map(|(t, _)| (t.clone(), version.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (tag, _) in &tags {
        if tag.is_empty() || tag.len() > 128 || nodejs_semver::Range::parse(tag).is_ok() {
            return Err(invalid(format!("invalid dist-tag {tag:?}")));
        }
    }
    let has_latest = match grant.row() {
        Some(_) => app.store.has_dist_tag(&grant, "latest").await?,
        None => false,
    };
    if !has_latest && !tags.iter().any(|(t, _)| t == "latest") {
        tags.push(("latest".into(), version.clone()));
    }

    let manifest_text = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.into()))?;
    let size = bytes.len() as i64;
    let tarball = Bytes::from(bytes);
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
                access_if_new,
                access_change: None,
                version,
                manifest: &manifest_text,
                readme: readme.as_deref(),
                description: description.as_deref(),
                blob_key: &digests.sha512_hex,
                size,
                integrity: &digests.integrity,
                shasum: &digests.shasum,
                user_id: caller.user.id,
                tags: &tags,
                now: app.now(),
            },
        )
        .await?;
    match outcome {
        PublishOutcome::Published { .. } => Ok(Published {
            name: name.to_string(),
            version: version.clone(),
        }),
        PublishOutcome::VersionExists => Err(version_exists(version)),
        PublishOutcome::NotMaintainer => Err(Error::Forbidden(format!(
            "You do not have permission to publish \"{name}\". Are you logged in as the correct user?"
        ))),
        PublishOutcome::ScopeTaken => Err(Error::Forbidden(format!(
            "You do not have permission to publish \"{name}\": its scope belongs to another user"
        ))),
    }
}

fn version_exists(version: &str) -> Error {
    Error::Forbidden(format!(
        "You cannot publish over the previously published versions: {version}."
    ))
}
