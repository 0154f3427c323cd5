//! The website's trusted publishing and staged releases: the "Trusted publishing"
//! and "Staged versions" sections of a package's settings page, their forms, and the
//! review page of a staged version (files with sizes, package.json against `latest`,
//! approve or reject with a one-time password).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde_json::json;

use super::page::{self, Layout, PageError, PageResult, fmt_date};
use super::session::Viewer;
use crate::domain::access::ActorType;
use crate::domain::{self, Caller, staging, trust};
use crate::http::extract::AppState;
use crate::npm::name::PackageName;

/// A trust configuration as the settings page lists it.
pub struct TrustRow {
    pub id: String,
    pub kind: &'static str,
    pub what: String,
    pub permissions: &'static str,
    pub issuer: String,
}

/// A staged version as the settings page lists it.
pub struct StagedLink {
    pub id: String,
    pub version: String,
    pub actor: String,
    pub date: String,
}

/// What the settings page shows about trusted publishing (`None` parts: the viewer
/// may not see them).
#[derive(Default)]
pub struct TrustSection {
    pub configs: Option<Vec<TrustRow>>,
    pub staged: Option<Vec<StagedLink>>,
    pub trusted_only: bool,
}

/// Loads the section for `caller`.
pub async fn section(
    app: &AppState,
    caller: &Caller,
    name: &PackageName,
    trusted_only: bool,
) -> Result<TrustSection, domain::Error> {
    let configs = match trust::list(app, caller, name).await {
        Ok(list) => Some(
            list.iter()
                .map(|c| TrustRow {
                    id: c.id.clone(),
                    kind: c.kind.as_str(),
                    what: c.rule.describe(),
                    permissions: c.permissions.describe(),
                    issuer: c.issuer.clone(),
                })
                .collect(),
        ),
        Err(domain::Error::Forbidden(_)) => None,
        Err(e) => return Err(e),
    };
    let staged = match staging::list(app, caller, Some(name)).await {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|r| StagedLink {
                    id: r.id,
                    version: r.version,
                    actor: r.actor,
                    date: fmt_date(r.created_at),
                })
                .collect(),
        ),
        Err(domain::Error::Forbidden(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(TrustSection {
        configs,
        staged,
        trusted_only,
    })
}

/// The fields of the settings forms this module handles.
pub struct TrustForm<'a> {
    pub kind: &'a str,
    pub repository: &'a str,
    pub file: &'a str,
    pub environment: &'a str,
    /// CircleCI's claims (its form has no repository, file or environment).
    pub org_id: &'a str,
    pub project_id: &'a str,
    pub pipeline_definition_id: &'a str,
    pub vcs_origin: &'a str,
    /// Comma- or space-separated.
    pub context_ids: &'a str,
    pub allow_publish: bool,
    pub allow_stage: bool,
    pub id: &'a str,
    pub trusted_only: bool,
}

/// `POST /package/<name>/settings/trust`, `…/trust/revoke`, `…/trust-only`.
pub async fn post_setting(
    app: &AppState,
    caller: &Caller,
    name: &PackageName,
    action: &str,
    form: TrustForm<'_>,
) -> Result<(), domain::Error> {
    match action {
        "trust" => {
            let environment = form.environment.trim();
            let mut claims = match form.kind {
                "github" => {
                    json!({"repository": form.repository.trim(), "workflow_ref": {"file": form.file.trim()}})
                }
                "gitlab" => {
                    json!({"project_path": form.repository.trim(), "ci_config_ref_uri": {"file": form.file.trim()}})
                }
                "circleci" => circleci_claims(&form),
                _ => {
                    return Err(domain::Error::Invalid(
                        "Choose GitHub Actions, GitLab CI or CircleCI.".into(),
                    ));
                }
            };
            if !environment.is_empty() {
                claims["environment"] = json!(environment);
            }
            let mut permissions = Vec::new();
            if form.allow_publish {
                permissions.push("createPackage");
            }
            if form.allow_stage {
                permissions.push("createStagedPackage");
            }
            let body = json!([{"type": form.kind, "claims": claims, "permissions": permissions}]);
            trust::create(app, caller, name, &body).await.map(|_| ())
        }
        "revoke" => trust::revoke(app, caller, name, form.id).await,
        "only" => trust::set_trusted_only(app, caller, name, form.trusted_only).await,
        _ => Err(domain::Error::NotFound("no such setting".into())),
    }
}

/// The claims of a CircleCI configuration from its form; empty optional fields are
/// left out (the claim rules check the rest).
fn circleci_claims(form: &TrustForm<'_>) -> serde_json::Value {
    const CIRCLE: &str = "oidc.circleci.com/";
    let mut claims = serde_json::Map::new();
    claims.insert(format!("{CIRCLE}org-id"), json!(form.org_id.trim()));
    claims.insert(format!("{CIRCLE}project-id"), json!(form.project_id.trim()));
    for (key, value) in [
        ("pipeline-definition-id", form.pipeline_definition_id),
        ("vcs-origin", form.vcs_origin),
    ] {
        if !value.trim().is_empty() {
            claims.insert(format!("{CIRCLE}{key}"), json!(value.trim()));
        }
    }
    let contexts: Vec<&str> = form
        .context_ids
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if !contexts.is_empty() {
        claims.insert(format!("{CIRCLE}context-ids"), json!(contexts));
    }
    serde_json::Value::Object(claims)
}

struct FileRow {
    path: String,
    size: String,
}

struct DiffRow {
    sign: &'static str,
    class: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "staged.html")]
struct StagedPage {
    layout: Layout,
    name: String,
    id: String,
    version: String,
    tag: String,
    actor: String,
    actor_type: &'static str,
    date: String,
    shasum: String,
    size: String,
    latest: String,
    files: Vec<FileRow>,
    diff: Vec<DiffRow>,
    changed: bool,
    may_decide: bool,
    needs_otp: bool,
    error: Option<String>,
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// `GET /package/<name>/staged/<id>`: the review page.
pub async fn review_page(
    app: &AppState,
    viewer: &Viewer,
    name: &PackageName,
    id: &str,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let caller = viewer.require(&format!("/package/{name}/staged/{id}"))?;
    let not_found = || PageError::not_found().with_layout(Layout::new(app, viewer, "Not found"));
    let review = match staging::review(app, caller, id).await {
        Ok(r) if r.staged.package_name == name.as_str() => r,
        Ok(_) | Err(domain::Error::NotFound(_) | domain::Error::Invalid(_)) => {
            return Err(not_found());
        }
        Err(e) => return Err(e.into()),
    };
    let s = &review.staged;
    let diff: Vec<DiffRow> = review
        .diff
        .iter()
        .map(|l| match l {
            staging::DiffLine::Same(t) => DiffRow {
                sign: " ",
                class: "same",
                text: t.clone(),
            },
            staging::DiffLine::Added(t) => DiffRow {
                sign: "+",
                class: "added",
                text: t.clone(),
            },
            staging::DiffLine::Removed(t) => DiffRow {
                sign: "-",
                class: "removed",
                text: t.clone(),
            },
        })
        .collect();
    let changed = diff.iter().any(|d| d.class != "same");
    Ok(page::render(
        status,
        &StagedPage {
            layout: Layout::new(
                app,
                viewer,
                format!("Review {}@{}", s.package_name, s.version),
            ),
            name: name.to_string(),
            id: s.id.clone(),
            version: s.version.clone(),
            tag: s.tag.clone(),
            actor: s.actor.clone(),
            actor_type: s.actor_type.get().map_or("unreadable", ActorType::as_str),
            date: fmt_date(s.created_at),
            shasum: s.shasum.clone(),
            size: human_size(u64::try_from(s.size).unwrap_or(0)),
            latest: review.latest.clone().unwrap_or_default(),
            files: review
                .files
                .iter()
                .map(|(p, size)| FileRow {
                    path: p.clone(),
                    size: human_size(*size),
                })
                .collect(),
            diff,
            changed,
            may_decide: review.may_decide,
            needs_otp: review.needs_otp,
            error,
        },
    ))
}

/// `POST /package/<name>/staged/<id>/{approve,reject}`.
pub async fn decide(
    app: &AppState,
    viewer: &Viewer,
    caller: &Caller,
    name: &PackageName,
    id: &str,
    action: &str,
) -> PageResult {
    let result = match action {
        "approve" => staging::approve(app, caller, id).await,
        "reject" => staging::reject(app, caller, id).await,
        _ => return Err(PageError::not_found()),
    };
    match result {
        Ok(_) if action == "approve" => {
            Ok(Redirect::to(&format!("/package/{name}?notice=approved-version")).into_response())
        }
        Ok(_) => Ok(Redirect::to(&format!("/package/{name}/settings#staged")).into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            review_page(app, viewer, name, id, Some(message), status).await
        }
    }
}
