//! Staged releases (`npm stage`): a version stored with its tarball but invisible to
//! installs and packuments until a maintainer approves it, with a one-time password
//! when their account has 2FA (`access::Action::ApproveStage`). Approval publishes it
//! exactly as a publish would (version identity, dist-tags, revision); rejection
//! deletes it (its tarball is left to `tessera gc`). Staging itself is
//! `publish::stage`.

use serde_json::{Map, Value};

use super::access::{self, Action, ActorType, act};
use super::{Caller, Error, Result, package_facts};
use crate::app::App;
use crate::npm::name::PackageName;
use crate::npm::packument::iso_time;
use crate::store::{
    NewVersion, PublishOutcome, SecurityEventKind, StagedApproval, StagedLog, StagedRow,
};

fn not_found() -> Error {
    Error::NotFound("staged version not found".into())
}

/// The package a staged id belongs to, as a parsed name (unknown ids: not found).
async fn package_of(app: &App, id: &str) -> Result<PackageName> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(Error::Invalid("a staged version id is a UUID".into()));
    }
    let name = app.store.staged_package(id).await?.ok_or_else(not_found)?;
    PackageName::parse(&name).map_err(|_| not_found())
}

/// The staged versions the caller may review: of one package, or of every package
/// they may publish.
pub async fn list(
    app: &App,
    caller: &Caller,
    package: Option<&PackageName>,
) -> Result<Vec<StagedRow>> {
    let names = match package {
        Some(name) => vec![name.clone()],
        None => {
            let grant = access::authorize_listing(app, Some(caller)).await?;
            app.store
                .packages_with_staged(&grant)
                .await?
                .iter()
                .filter_map(|n| PackageName::parse(n).ok())
                .collect()
        }
    };
    let mut out = Vec::new();
    for name in names {
        let target = package_facts(app, Some(caller), &name).await?;
        let grant = match access::authorize::<act::ReviewStage>(app, Some(caller), &target).await {
            Ok(g) => g,
            // A listing of every package skips those the caller may not review.
            Err(_) if package.is_none() => continue,
            Err(e) => return Err(e),
        };
        out.extend(app.store.staged_of_package(&grant).await?);
    }
    Ok(out)
}

/// One staged version.
pub async fn view(app: &App, caller: &Caller, id: &str) -> Result<StagedRow> {
    let name = package_of(app, id).await?;
    let target = package_facts(app, Some(caller), &name).await?;
    let grant = access::authorize::<act::ReviewStage>(app, Some(caller), &target)
        .await
        .map_err(|e| {
            if matches!(e, Error::NotFound(_)) {
                not_found()
            } else {
                e
            }
        })?;
    app.store
        .staged_version(&grant, id)
        .await?
        .ok_or_else(not_found)
}

/// The tarball of a staged version.
pub async fn tarball(app: &App, caller: &Caller, id: &str) -> Result<(StagedRow, bytes::Bytes)> {
    let row = view(app, caller, id).await?;
    let bytes = app
        .blobs
        .get(&row.blob_key)
        .await
        .map_err(|e| Error::Unavailable(format!("blob store: {e}")))?
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("staged tarball {} missing", row.blob_key))
        })?;
    Ok((row, bytes))
}

/// What the review page shows: the files with their sizes and the package.json
/// against the current `latest`.
#[derive(Debug)]
pub struct Review {
    pub staged: StagedRow,
    pub files: Vec<(String, u64)>,
    /// The version `latest` points to, if any.
    pub latest: Option<String>,
    pub diff: Vec<DiffLine>,
    /// Whether the caller may approve or reject it (and needs a one-time password).
    pub may_decide: bool,
    pub needs_otp: bool,
}

/// One line of a package.json comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Added(String),
    Removed(String),
}

/// Registry-owned fields, left out of the comparison.
const SERVER_FIELDS: &[&str] = &[
    "_id",
    "_npmUser",
    "_nodeVersion",
    "_npmVersion",
    "dist",
    "maintainers",
    "gitHead",
];

fn comparable(manifest: &str) -> Vec<String> {
    let mut value: Map<String, Value> = serde_json::from_str(manifest).unwrap_or_default();
    value.retain(|k, _| !SERVER_FIELDS.contains(&k.as_str()));
    serde_json::to_string_pretty(&Value::Object(value))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A line diff (longest common subsequence); inputs are capped so the table stays
/// small.
pub fn diff_lines(old: &[String], new: &[String]) -> Vec<DiffLine> {
    const CAP: usize = 2000;
    let (old, new) = (&old[..old.len().min(CAP)], &new[..new.len().min(CAP)]);
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(DiffLine::Same(old[i].clone()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removed lines come before the lines that replace them.
            out.push(DiffLine::Removed(old[i].clone()));
            i += 1;
        } else {
            out.push(DiffLine::Added(new[j].clone()));
            j += 1;
        }
    }
    out
}

/// Everything the review page needs.
pub async fn review(app: &App, caller: &Caller, id: &str) -> Result<Review> {
    let (staged, bytes) = tarball(app, caller, id).await?;
    let files = tokio::task::spawn_blocking(move || crate::npm::tarball::list_files(&bytes, 5000))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| Error::Internal(anyhow::anyhow!("staged tarball unreadable: {e}")))?;
    let name = PackageName::parse(&staged.package_name).map_err(|_| not_found())?;
    let target = package_facts(app, Some(caller), &name).await?;
    let read = access::authorize::<act::ReadPackage>(app, Some(caller), &target).await?;
    let contents = app.store.package_contents(&read).await?;
    let (latest, latest_manifest) = contents
        .as_ref()
        .and_then(|c| {
            let v = c.tags.iter().find(|(t, _)| t == "latest")?.1.clone();
            let m = c.versions.iter().find(|r| r.version == v)?.manifest.clone();
            Some((Some(v), m))
        })
        .unwrap_or((None, "{}".into()));
    let diff = diff_lines(&comparable(&latest_manifest), &comparable(&staged.manifest));
    let decision = access::preflight(app, Some(caller), Action::ApproveStage, Some(&target));
    Ok(Review {
        staged,
        files,
        latest,
        diff,
        may_decide: decision.allows(),
        needs_otp: decision == access::Decision::AllowWithOtp,
    })
}

/// Approves a staged version: it is published as this caller would publish it, with
/// the dist-tag it was staged with (and `latest` if the package has none). The
/// store does it in one transaction (`Store::approve_staged`): a second approval or
/// a rejection at the same time finds it gone (404); a refused publish (the version
/// was published directly meanwhile: 409) leaves it staged.
pub async fn approve(app: &App, caller: &Caller, id: &str) -> Result<StagedRow> {
    let name = package_of(app, id).await?;
    let target = package_facts(app, Some(caller), &name).await?;
    let (grant, publish) = access::authorize_stage_approval(app, caller, &target)
        .await
        .map_err(|e| {
            if matches!(e, Error::NotFound(_)) {
                not_found()
            } else {
                e
            }
        })?;
    let staged = app
        .store
        .staged_version(&grant, id)
        .await?
        .ok_or_else(not_found)?;
    if target.facts().trusted_publishing_only && staged.actor_type.get() != Some(ActorType::Oidc) {
        return Err(Error::Forbidden(access::trusted_only_refusal(&name)));
    }
    let mut manifest: Map<String, Value> = serde_json::from_str(&staged.manifest)
        .map_err(|e| Error::Internal(anyhow::anyhow!("staged manifest unreadable: {e}")))?;
    let maintainers: Vec<Value> = app
        .store
        .maintainers_of_published(&publish)
        .await?
        .into_iter()
        .map(|m| serde_json::json!({"name": m.name, "email": m.email}))
        .collect();
    manifest.insert("maintainers".into(), Value::Array(maintainers));
    let manifest_text = serde_json::to_string(&manifest).map_err(|e| Error::Internal(e.into()))?;
    let description = manifest
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tags = vec![(staged.tag.clone(), staged.version.clone())];
    // The tarball in hand, so the approval can write it again should it be missing
    // from the blob store; the staged row keeps `tessera gc` away from it until the
    // version row that replaces it commits, in the same transaction.
    let tarball = app
        .blobs
        .get(&staged.blob_key)
        .await
        .map_err(|e| Error::Unavailable(format!("blob store: {e}")))?
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "the staged tarball of {name}@{} is gone",
                staged.version
            ))
        })?;
    let key = staged.blob_key.clone();
    let blob_present = || async { Ok::<_, Error>(app.blobs.ensure(&key, tarball).await?) };
    let ip = caller.ip_text();
    let detail = format!(
        "{name}@{} approved and published (staged by {} on {})",
        staged.version,
        staged.actor,
        iso_time(staged.created_at)
    );
    let now = app.now();
    let outcome = app
        .store
        .approve_staged(
            &grant,
            &publish,
            id,
            blob_present,
            &NewVersion {
                name: name.as_str(),
                scope: name.scope(),
                access_if_new: "restricted",
                access_change: None,
                version: &staged.version,
                manifest: &manifest_text,
                readme: staged.readme.as_deref(),
                description: description.as_deref(),
                blob_key: &staged.blob_key,
                size: staged.size,
                integrity: &staged.integrity,
                shasum: &staged.shasum,
                user_id: caller.user.id,
                tags: &tags,
                provenance: staged.provenance.as_deref(),
                now,
            },
            &StagedLog {
                user_id: caller.user.id,
                kind: SecurityEventKind::StageApproved,
                detail: &detail,
                ip: Some(&ip),
                now,
            },
        )
        .await?;
    match outcome {
        StagedApproval::Published => Ok(staged),
        StagedApproval::StagedGone => Err(not_found()),
        // Published directly meanwhile (or ever): the staged version stays for a
        // maintainer to reject.
        StagedApproval::Refused(PublishOutcome::VersionExists) => Err(Error::Conflict(format!(
            "{name}@{} was published meanwhile; the staged version cannot be approved \
             (reject it with `npm stage reject {id}`)",
            staged.version
        ))),
        StagedApproval::Refused(_) => Err(Error::Forbidden(access::publish_refusal(&name))),
    }
}

/// Rejects (deletes) a staged version; the deletion and its security-log entry
/// commit together.
pub async fn reject(app: &App, caller: &Caller, id: &str) -> Result<StagedRow> {
    let name = package_of(app, id).await?;
    let target = package_facts(app, Some(caller), &name).await?;
    let (grant, _) = access::authorize_stage_approval(app, caller, &target)
        .await
        .map_err(|e| {
            if matches!(e, Error::NotFound(_)) {
                not_found()
            } else {
                e
            }
        })?;
    let staged = app
        .store
        .staged_version(&grant, id)
        .await?
        .ok_or_else(not_found)?;
    let ip = caller.ip_text();
    let detail = format!(
        "{name}@{} rejected (staged by {} on {})",
        staged.version,
        staged.actor,
        iso_time(staged.created_at)
    );
    let log = StagedLog {
        user_id: caller.user.id,
        kind: SecurityEventKind::StageRejected,
        detail: &detail,
        ip: Some(&ip),
        now: app.now(),
    };
    if !app.store.reject_staged(&grant, id, &log).await? {
        return Err(not_found());
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn diff_marks_added_and_removed_lines() {
        let d = diff_lines(&lines("a\nb\nc"), &lines("a\nc\nd"));
        assert_eq!(
            d,
            vec![
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Same("c".into()),
                DiffLine::Added("d".into()),
            ]
        );
        assert!(diff_lines(&[], &[]).is_empty());
        assert_eq!(
            diff_lines(&lines("x\n1\ny"), &lines("x\n2\ny")),
            vec![
                DiffLine::Same("x".into()),
                DiffLine::Removed("1".into()),
                DiffLine::Added("2".into()),
                DiffLine::Same("y".into()),
            ]
        );
    }
}
