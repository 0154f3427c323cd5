//! Package pages: the home page (recent packages), search, a package's page (README
//! rendered from Markdown and sanitised, versions, dist-tags, maintainers, install
//! command, access) and its settings for maintainers. Reads go through
//! `domain::packages`, which applies the same read check as `npm install`, so a
//! restricted package is invisible to anyone who could not download it.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::Value;

use super::account_pages::notice;
use super::page::{self, Layout, PageError, PageResult, fmt_date};
use super::publisher_pages::{PublisherRow, WriterRow, policy_text, rows, writer_rows};
use super::session::{Posted, Viewer, csrf_form, tfa_on, with_otp};
use crate::domain::{self, packages, publishers};
use crate::http::extract::AppState;
use crate::npm::name::PackageName;

struct Row {
    name: String,
    description: String,
    version: String,
    date: String,
    private: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    recent: Vec<Row>,
    registry: String,
}

/// `GET /`.
pub async fn home(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    let rows = packages::recent(&app, viewer.caller(), 30).await?;
    let recent = rows
        .into_iter()
        .map(|r| Row {
            private: !r.is_public(),
            name: r.name,
            description: r.description.unwrap_or_default(),
            version: String::new(),
            date: fmt_date(r.modified_at),
        })
        .collect();
    Ok(page::ok(&HomePage {
        layout: Layout::new(&app, &viewer, "Packages"),
        recent,
        registry: format!("{}/", app.public_url),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: Layout,
    query: String,
    hits: Vec<Row>,
}

/// `GET /search?q=`.
pub async fn search(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<SearchQuery>,
) -> PageResult {
    let text = q.q.trim().chars().take(200).collect::<String>();
    let hits = match packages::search(&app, viewer.caller(), &text, 0, 50).await {
        Ok(results) => results.hits,
        Err(domain::Error::Unauthenticated(_)) => {
            return Err(super::session::sign_in_redirect("/search"));
        }
        Err(e) => return Err(e.into()),
    };
    let hits = hits
        .into_iter()
        .map(|h| Row {
            private: !h.row.is_public(),
            name: h.row.name,
            description: h.row.description.unwrap_or_default(),
            version: h.version.unwrap_or_default(),
            date: fmt_date(h.row.modified_at),
        })
        .collect();
    let mut layout = Layout::new(&app, &viewer, format!("Search: {text}"));
    layout.query = text.clone();
    Ok(page::ok(&SearchPage {
        layout,
        query: text,
        hits,
    }))
}

/// What `/package/<name>/<tail…>` addresses.
fn split(rest: &str) -> Result<(PackageName, Vec<String>), PageError> {
    let segments: Vec<String> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (name, tail) =
        if segments[0].starts_with('@') && !segments[0].contains('/') && segments.len() > 1 {
            (
                format!("{}/{}", segments[0], segments[1]),
                segments[2..].to_vec(),
            )
        } else {
            (segments[0].clone(), segments[1..].to_vec())
        };
    let name = PackageName::parse(&name).map_err(|_| PageError::not_found())?;
    let tail = tail.into_iter().filter(|s| !s.is_empty()).collect();
    Ok((name, tail))
}

struct VersionView {
    version: String,
    date: String,
    deprecated: String,
    tags: String,
}

#[derive(Template)]
#[template(path = "package.html")]
struct PackagePage {
    layout: Layout,
    name: String,
    description: String,
    latest: String,
    license: String,
    homepage: String,
    repository: String,
    keywords: Vec<String>,
    readme_html: String,
    versions: Vec<VersionView>,
    tags: Vec<(String, String)>,
    maintainers: Vec<String>,
    public: bool,
    mfa: &'static str,
    trusted_only: bool,
    modified: String,
    can_manage: bool,
    install: String,
    /// Where the package comes from: published here, or proxied from an uplink.
    source: String,
    /// What the latest version's provenance statement says built it (empty: none).
    provenance: String,
    notice: Option<&'static str>,
}

/// Markdown → HTML, then sanitised (no script, no event handlers, safe links).
pub fn render_readme(markdown: &str) -> String {
    let text: String = markdown.chars().take(512 * 1024).collect();
    let options = pulldown_cmark::Options::ENABLE_TABLES
        | pulldown_cmark::Options::ENABLE_STRIKETHROUGH
        | pulldown_cmark::Options::ENABLE_TASKLISTS;
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new_ext(&text, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        _ => String::new(),
    }
}

/// Only http(s) links are shown as links.
fn http_link(url: String) -> String {
    let url = url.trim_start_matches("git+").to_owned();
    if url.starts_with("https://") || url.starts_with("http://") {
        url
    } else {
        String::new()
    }
}

async fn package_page(
    app: &AppState,
    viewer: &Viewer,
    name: &PackageName,
    notice_code: Option<&str>,
) -> PageResult {
    let caller = viewer.caller();
    let served = match crate::domain::proxy::packument(app, caller, name, false).await {
        Ok(d) => d,
        Err(domain::Error::Unauthenticated(_)) if caller.is_none() => {
            return Err(super::session::sign_in_redirect(&format!(
                "/package/{name}"
            )));
        }
        Err(domain::Error::NotFound(_)) => {
            return Err(PageError::not_found().with_layout(Layout::new(app, viewer, "Not found")));
        }
        Err(e) => return Err(e.into()),
    };
    let doc = &served.doc;
    let full: Value =
        serde_json::from_slice(&doc.full.body).map_err(|e| domain::Error::Internal(e.into()))?;
    let latest = full["dist-tags"]["latest"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let manifest = &full["versions"][&latest];
    let tags: Vec<(String, String)> = full["dist-tags"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut versions: Vec<(i64, VersionView)> = full["versions"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(v, m)| {
                    let published = full["time"][v].as_str().unwrap_or("");
                    let ms = time::OffsetDateTime::parse(
                        published,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .unwrap_or(0);
                    let tag_list: Vec<&str> = tags
                        .iter()
                        .filter(|(_, tv)| tv == v)
                        .map(|(t, _)| t.as_str())
                        .collect();
                    (
                        ms,
                        VersionView {
                            version: v.clone(),
                            date: if ms > 0 { fmt_date(ms) } else { String::new() },
                            deprecated: m["deprecated"].as_str().unwrap_or("").to_owned(),
                            tags: tag_list.join(", "),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    let maintainers = full["maintainers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // A proxied package is public and has no settings here.
    let (public, mfa, trusted_only, can_manage) = match &served.uplink {
        Some(_) => (true, "none", false, false),
        None => {
            let settings = packages::settings(app, caller, name).await?;
            (
                settings.public,
                settings.mfa.as_str(),
                settings.trusted_publishing_only,
                packages::may_change_settings(app, caller, name).await?,
            )
        }
    };
    let source = match &served.uplink {
        Some(u) if served.stale_from.is_some() => {
            format!("proxied from uplink {u} (cached copy: the uplink is not answering)")
        }
        Some(u) => format!("proxied from uplink {u}"),
        None => "published here".to_owned(),
    };
    // Only bundles published here are kept; a proxied package's point elsewhere.
    let provenance = if served.uplink.is_none() && manifest["dist"]["attestations"].is_object() {
        match packages::attestations(app, caller, name, &latest).await {
            Ok(found) => found
                .first()
                .map(|a| match a.workflow() {
                    Some(w) => format!("built by {}", w.describe()),
                    None => format!("signed statement ({})", a.predicate_type),
                })
                .unwrap_or_default(),
            Err(domain::Error::NotFound(_)) => String::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        String::new()
    };
    let readme = full["readme"].as_str().unwrap_or("");
    Ok(page::ok(&PackagePage {
        layout: Layout::new(app, viewer, name.as_str()),
        name: name.to_string(),
        description: manifest["description"].as_str().unwrap_or("").to_owned(),
        latest: latest.clone(),
        license: text(&manifest["license"]),
        homepage: http_link(text(&manifest["homepage"])),
        repository: http_link(text(&manifest["repository"])),
        keywords: manifest["keywords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .take(20)
                    .collect()
            })
            .unwrap_or_default(),
        readme_html: if readme.trim().is_empty() {
            String::new()
        } else {
            render_readme(readme)
        },
        versions: versions.into_iter().map(|(_, v)| v).collect(),
        tags,
        maintainers,
        public,
        mfa,
        trusted_only,
        modified: fmt_date(doc.modified_ms),
        can_manage,
        source,
        provenance,
        install: format!("npm install {name}"),
        notice: notice(notice_code),
    }))
}

#[derive(Template)]
#[template(path = "package_settings.html")]
struct SettingsPage {
    layout: Layout,
    name: String,
    scoped: bool,
    public: bool,
    mfa: &'static str,
    maintainers: Vec<String>,
    me: String,
    needs_otp: bool,
    error: Option<String>,
    /// "Who can publish this": `None` when the viewer may not see it (a team grant
    /// lets them write, but only maintainers and organization admins see credentials).
    policy: Option<&'static str>,
    writers: Vec<WriterRow>,
    publishers: Vec<PublisherRow>,
    show_package: bool,
    trust: super::trust_pages::TrustSection,
}

async fn settings_page(
    app: &AppState,
    viewer: &Viewer,
    name: &PackageName,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let caller = viewer.require(&format!("/package/{name}/settings"))?;
    if !packages::may_change_settings(app, Some(caller), name).await? {
        return Err(PageError::not_found().with_layout(Layout::new(app, viewer, "Not found")));
    }
    let owners = packages::owners(app, Some(caller), name).await?;
    let settings = packages::settings(app, Some(caller), name).await?;
    let (policy, writers, publishers) = match publishers::for_package(app, caller, name).await {
        Ok(view) => (
            Some(policy_text(view.policy)),
            writer_rows(&view.writers),
            rows(&view.publishers, &caller.user.name),
        ),
        Err(domain::Error::Forbidden(_)) => (None, Vec::new(), Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let trust =
        super::trust_pages::section(app, caller, name, settings.trusted_publishing_only).await?;
    Ok(page::render(
        status,
        &SettingsPage {
            layout: Layout::new(app, viewer, format!("Settings: {name}")),
            name: name.to_string(),
            scoped: name.scope().is_some(),
            public: settings.public,
            mfa: settings.mfa.as_str(),
            maintainers: owners.into_iter().map(|o| o.name).collect(),
            me: caller.user.name.clone(),
            needs_otp: tfa_on(caller),
            error,
            policy,
            writers,
            publishers,
            show_package: false,
            trust,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// `GET /package/<name>` and `GET /package/<name>/settings`.
pub async fn package_get(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NoticeQuery>,
    request: Request,
) -> PageResult {
    let rest = request.uri().path().strip_prefix("/package/").unwrap_or("");
    let (name, tail) = split(rest)?;
    match tail
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => package_page(&app, &viewer, &name, q.notice.as_deref()).await,
        ["settings"] => settings_page(&app, &viewer, &name, None, StatusCode::OK).await,
        ["staged", id] => {
            super::trust_pages::review_page(&app, &viewer, &name, id, None, StatusCode::OK).await
        }
        _ => Err(PageError::not_found().with_layout(Layout::new(&app, &viewer, "Not found"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    access: String,
    mfa: String,
    add: String,
    remove: String,
    otp: String,
    kind: String,
    repository: String,
    file: String,
    environment: String,
    org_id: String,
    project_id: String,
    pipeline_definition_id: String,
    vcs_origin: String,
    context_ids: String,
    allow_publish: String,
    allow_stage: String,
    id: String,
    trusted_only: String,
}

csrf_form!(SettingsForm);

/// `POST /package/<name>/settings/{access,mfa,owners}`.
pub async fn package_post(
    State(app): State<AppState>,
    uri: axum::http::Uri,
    Posted { viewer, form }: Posted<SettingsForm>,
) -> PageResult {
    let rest = uri.path().strip_prefix("/package/").unwrap_or("");
    let (name, tail) = split(rest)?;
    let caller = viewer.require(&format!("/package/{name}/settings"))?;
    let caller = with_otp(caller, &form.otp);
    let result = match tail
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["settings", "access"] => {
            let change = packages::AccessChange {
                access: Some(form.access.clone()),
                ..Default::default()
            };
            packages::change_access(&app, &caller, &name, change).await
        }
        ["settings", "mfa"] => {
            let Ok(policy) = form.mfa.parse::<packages::MfaPolicy>() else {
                return Err(PageError::new(
                    StatusCode::BAD_REQUEST,
                    "Choose a publishing policy.",
                ));
            };
            let change = packages::AccessChange {
                publish_requires_tfa: Some(policy.requires_tfa()),
                automation_token_overrides_tfa: Some(policy.automation_overrides_tfa()),
                ..Default::default()
            };
            packages::change_access(&app, &caller, &name, change).await
        }
        ["settings", "trust"] | ["settings", "trust", "revoke"] | ["settings", "trust-only"] => {
            let action = match tail.last().map(String::as_str) {
                Some("revoke") => "revoke",
                Some("trust-only") => "only",
                _ => "trust",
            };
            let form = super::trust_pages::TrustForm {
                kind: &form.kind,
                repository: &form.repository,
                file: &form.file,
                environment: &form.environment,
                org_id: &form.org_id,
                project_id: &form.project_id,
                pipeline_definition_id: &form.pipeline_definition_id,
                vcs_origin: &form.vcs_origin,
                context_ids: &form.context_ids,
                allow_publish: form.allow_publish == "on",
                allow_stage: form.allow_stage == "on",
                id: &form.id,
                trusted_only: form.trusted_only == "on",
            };
            super::trust_pages::post_setting(&app, &caller, &name, action, form).await
        }
        ["staged", id, action @ ("approve" | "reject")] => {
            return super::trust_pages::decide(&app, &viewer, &caller, &name, id, action).await;
        }
        ["settings", "owners"] => match packages::owners(&app, Some(&caller), &name).await {
            Ok(owners) => {
                let mut names: Vec<String> = owners.into_iter().map(|o| o.name).collect();
                let add = form.add.trim();
                if !add.is_empty() && !names.iter().any(|n| n == add) {
                    names.push(add.to_owned());
                }
                names.retain(|n| n != form.remove.trim());
                packages::set_owners(&app, &caller, &name, &names).await
            }
            Err(e) => Err(e),
        },
        _ => return Err(PageError::not_found()),
    };
    match result {
        // Removing oneself ends one's access to the settings: go to the package page.
        Ok(()) if form.remove.trim() == caller.user.name => {
            Ok(Redirect::to(&format!("/package/{name}?notice=settings")).into_response())
        }
        Ok(()) => Ok(Redirect::to(&format!("/package/{name}/settings")).into_response()),
        Err(e) => {
            let (status, message) = page::describe(e);
            settings_page(&app, &viewer, &name, Some(message), status).await
        }
    }
}
