//! "Who can publish this?": for a package, every account that can write it (as a
//! maintainer, an organization owner or admin, or through a team grant), each with
//! the path that gives it, and every credential of those accounts that could publish
//! it right now, decided by the same `access::decide` a publish would go through.
//! For an organization, the same across its packages, riskiest first.
//!
//! Entries are `Publisher`s so that other kinds of publisher (trusted CI identities)
//! join the same list.

use std::collections::BTreeMap;

use super::access::{
    self, Action, Credential, Decision, Limits, Principal, TfaMode, TokenKind, TokenOrigin,
    ViewsCredentials, act,
};
use super::auth::TokenSettings;
use super::packages::MfaPolicy;
use super::{Caller, Result};
use crate::app::App;
use crate::crypto::token_format::masked;
use crate::npm::name::PackageName;
use crate::store::TokenRow;

/// Tokens unused this long are flagged.
pub const STALE_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// One account that can write a package, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub user: String,
    /// e.g. `maintainer`, `owner of @acme`, `team @acme:release (read-write)`.
    pub paths: Vec<String>,
}

/// A token that could publish a package now.
#[derive(Debug, Clone)]
pub struct PublishingToken {
    pub package: String,
    pub user: String,
    pub paths: Vec<String>,
    pub key: String,
    pub masked: String,
    pub name: Option<String>,
    pub kind: TokenKind,
    pub limits: Option<Limits>,
    pub cidr: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub origin: TokenOrigin,
    /// A publish with it asks for the owner's one-time password.
    pub needs_otp: bool,
    /// What makes it risky, for sorting and display.
    pub risks: Vec<Risk>,
}

/// Something that makes a publishing credential riskier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Publishes without any second factor.
    NoSecondFactor,
    NoExpiry,
    AnyAddress,
    /// Not used for `STALE_MS`.
    Unused,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::NoSecondFactor => "publishes without 2FA",
            Risk::NoExpiry => "never expires",
            Risk::AnyAddress => "works from any address",
            Risk::Unused => "unused for 90 days",
        }
    }
}

/// Anything that can publish a package.
#[derive(Debug, Clone)]
pub enum Publisher {
    Token(PublishingToken),
}

/// The credentials view of one package.
#[derive(Debug, Clone)]
pub struct PackageCredentials {
    pub package: String,
    pub policy: MfaPolicy,
    pub writers: Vec<Writer>,
    pub publishers: Vec<Publisher>,
}

/// Adds `path` to `user`'s list.
fn add(paths: &mut BTreeMap<(i64, String), Vec<String>>, id: i64, user: &str, path: String) {
    let entry = paths.entry((id, user.to_owned())).or_default();
    if !entry.contains(&path) {
        entry.push(path);
    }
}

/// Every account with a path to writing `name`, with the paths.
async fn writers_of(
    app: &App,
    name: &PackageName,
    package_id: i64,
    maintainers: Vec<(i64, String)>,
) -> Result<BTreeMap<(i64, String), Vec<String>>> {
    let mut paths = BTreeMap::new();
    for (id, user) in maintainers {
        add(&mut paths, id, &user, "maintainer".into());
    }
    if let Some(scope) = name.scope() {
        for (id, user, role) in app.store.scope_org_admins(scope).await? {
            add(
                &mut paths,
                id,
                &user,
                format!("{} of @{scope}", role.as_str()),
            );
        }
    }
    for grant in app.store.package_team_grants(package_id).await? {
        for (id, user) in &grant.members {
            add(
                &mut paths,
                *id,
                user,
                format!(
                    "team @{}:{} ({})",
                    grant.org,
                    grant.team,
                    grant.permission.as_str()
                ),
            );
        }
    }
    Ok(paths)
}

/// The tokens of `writers` that could publish `name` now, each decided as a publish.
async fn tokens_for(
    app: &App,
    grant: &impl ViewsCredentials,
    name: &PackageName,
    writers: &BTreeMap<(i64, String), Vec<String>>,
) -> Result<(Vec<Writer>, Vec<Publisher>)> {
    let now = app.now();
    let mut shown = Vec::new();
    let mut publishers = Vec::new();
    let ids: Vec<i64> = writers.keys().map(|(id, _)| *id).collect();
    let tokens = app.store.live_tokens_of(grant, &ids, now).await?;
    for ((user_id, user), paths) in writers {
        let target = access::package_facts_of_user(app, *user_id, name).await?;
        // Only accounts whose rights really reach a write are listed.
        if !target.facts().caller_may_write() {
            continue;
        }
        shown.push(Writer {
            user: user.clone(),
            paths: paths.clone(),
        });
        let Some(account) = app.store.user_by_id(*user_id).await? else {
            continue;
        };
        for token in tokens.iter().filter(|t| t.user_id == *user_id) {
            if let Some(entry) = token_entry(
                app,
                token,
                account.tfa_mode(),
                name,
                &target,
                user,
                paths,
                now,
            ) {
                publishers.push(Publisher::Token(entry));
            }
        }
    }
    Ok((shown, publishers))
}

/// The token's entry if it could publish `name` now.
#[allow(clippy::too_many_arguments)]
fn token_entry(
    app: &App,
    token: &TokenRow,
    tfa: TfaMode,
    name: &PackageName,
    target: &access::Target,
    user: &str,
    paths: &[String],
    now: i64,
) -> Option<PublishingToken> {
    // A token whose settings cannot be read publishes nothing (fail closed).
    let settings = TokenSettings::of(token).ok()?;
    let principal = Principal {
        credential: Credential::Token {
            kind: settings.kind,
            limits: settings.limits.clone(),
        },
        tfa,
    };
    let decision = access::decide(
        Some(&principal),
        Action::Publish,
        Some((target.name(), target.facts())),
        app.config.anonymous_read,
    );
    let needs_otp = match decision {
        Decision::Allow => false,
        Decision::AllowWithOtp => true,
        Decision::Deny(_) => return None,
    };
    let mut risks = Vec::new();
    if !needs_otp {
        risks.push(Risk::NoSecondFactor);
    }
    if token.expires_at.is_none() {
        risks.push(Risk::NoExpiry);
    }
    if settings.cidr.is_none() {
        risks.push(Risk::AnyAddress);
    }
    if now - token.last_used_at.unwrap_or(token.created_at) > STALE_MS {
        risks.push(Risk::Unused);
    }
    Some(PublishingToken {
        package: name.to_string(),
        user: user.to_owned(),
        paths: paths.to_vec(),
        key: token.key.clone(),
        masked: masked(&token.display_prefix, &token.last_four),
        name: token.name.clone(),
        kind: settings.kind,
        limits: settings.limits,
        cidr: settings.cidr.map(|c| c.to_strings()).unwrap_or_default(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        last_used_at: token.last_used_at,
        origin: settings.origin,
        needs_otp,
        risks,
    })
}

/// How risky a publisher is, riskiest first: automation tokens, then the most risks,
/// then no expiry, any address, unused.
fn risk_key(p: &Publisher) -> (bool, std::cmp::Reverse<usize>, bool, bool, bool) {
    let Publisher::Token(t) = p;
    let has = |r| t.risks.contains(&r);
    (
        t.kind != TokenKind::Automation,
        std::cmp::Reverse(t.risks.len()),
        !has(Risk::NoExpiry),
        !has(Risk::AnyAddress),
        !has(Risk::Unused),
    )
}

/// Every publisher of an organization's packages in one list, riskiest first.
pub fn riskiest_first(views: &[PackageCredentials]) -> Vec<Publisher> {
    let mut all: Vec<Publisher> = views.iter().flat_map(|v| v.publishers.clone()).collect();
    all.sort_by_key(risk_key);
    all
}

/// The credentials view of a package (its maintainers and its organization's owners
/// and admins).
pub async fn for_package(
    app: &App,
    caller: &Caller,
    name: &PackageName,
) -> Result<PackageCredentials> {
    let target = access::package_facts(app, Some(caller), name).await?;
    let grant =
        access::authorize::<act::ReadPackageCredentials>(app, Some(caller), &target).await?;
    let reader = access::authorize::<act::ReadPackage>(app, Some(caller), &target).await?;
    let maintainers = app
        .store
        .maintainers(&reader)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.name))
        .collect();
    let writers = writers_of(app, name, grant.package_id(), maintainers).await?;
    let (writers, mut publishers) = tokens_for(app, &grant, name, &writers).await?;
    publishers.sort_by_key(risk_key);
    Ok(PackageCredentials {
        package: name.to_string(),
        policy: grant.row().mfa,
        writers,
        publishers,
    })
}

/// Every credential that can publish any of an organization's packages, riskiest
/// first (its owners).
pub async fn for_org(app: &App, caller: &Caller, org: &str) -> Result<Vec<PackageCredentials>> {
    let org = org.trim_start_matches('@');
    let target = access::org_facts(app, caller, org).await?;
    let audit = access::authorize_org::<act::AuditOrg>(app, caller, &target).await?;
    let read = access::authorize_org::<act::ReadOrg>(app, caller, &target).await?;
    let mut out = Vec::new();
    for package in app.store.org_package_names(&read).await? {
        let Ok(name) = PackageName::parse(&package) else {
            continue;
        };
        let Some((row, _)) = app.store.package_for_user(name.as_str(), None).await? else {
            continue;
        };
        let maintainers = app.store.maintainer_ids_for_audit(&audit, row.id).await?;
        let writers = writers_of(app, &name, row.id, maintainers).await?;
        let (writers, mut publishers) = tokens_for(app, &audit, &name, &writers).await?;
        publishers.sort_by_key(risk_key);
        out.push(PackageCredentials {
            package: package.clone(),
            policy: row.mfa,
            writers,
            publishers,
        });
    }
    Ok(out)
}
