//! The registry's rules, as functions over `&App`. Never builds an HTTP response and
//! never contains SQL. Every operation starts with `authorize`, which runs the one
//! access check (`access::decide`) and, when it asks for one, the OTP check.

pub mod access;
pub mod auth;
mod error;
pub mod maintenance;
pub mod packages;
pub mod packument_cache;
pub mod publish;
pub mod security_log;
pub mod sessions;
pub mod tokens;
pub mod two_factor;
pub mod usage;
pub mod users;
pub mod web_login;

pub use auth::{Caller, authenticate_header};
pub use error::Error;

use crate::app::App;
use crate::npm::name::PackageName;
use crate::store::PackageRow;
use access::{Action, Decision, Denial, PackageFacts};

/// Result of domain operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The package a request targets, as loaded for the access check.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: PackageName,
    /// Shared with the store's read cache.
    pub row: Option<std::sync::Arc<PackageRow>>,
    pub facts: PackageFacts,
}

/// Loads what the policy needs to know about `name` for `caller`.
pub async fn package_facts(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<Target> {
    // One read: the row and, for a caller, whether they maintain it.
    let found = app
        .store
        .package_for_user(name.as_str(), caller.map(|c| c.user.id))
        .await?;
    let mut facts = PackageFacts::default();
    let row = found.map(|(row, maintains)| {
        facts.exists = true;
        facts.public = row.access == "public";
        facts.publish_requires_tfa = row.publish_requires_tfa != 0;
        facts.automation_overrides_tfa = row.automation_overrides_tfa != 0;
        facts.is_maintainer = caller.is_some() && maintains;
        row
    });
    if let (None, Some(c)) = (&row, caller) {
        facts.may_create = may_create_in_scope(app, c, name).await?;
    }
    Ok(Target {
        name: name.clone(),
        row,
        facts,
    })
}

/// A user owns `@username`; any other scope belongs to whoever first published in it.
async fn may_create_in_scope(app: &App, caller: &Caller, name: &PackageName) -> Result<bool> {
    let Some(scope) = name.scope() else {
        return Ok(true);
    };
    if scope == caller.user.name {
        return Ok(true);
    }
    if let Some(owner) = app.store.scope_owner(scope).await? {
        return Ok(owner == caller.user.id);
    }
    // A scope named after another user is theirs even before they publish.
    Ok(app.store.user_by_name(scope).await?.is_none())
}

/// The one access check every operation goes through.
pub async fn authorize(
    app: &App,
    caller: Option<&Caller>,
    action: Action,
    package: Option<&Target>,
) -> Result<()> {
    let decision = access::decide(
        caller.map(|c| &c.principal),
        action,
        package.map(|t| (&t.name, &t.facts)),
        app.config.anonymous_read,
    );
    match decision {
        Decision::Allow => Ok(()),
        Decision::AllowWithOtp => {
            let caller = caller.expect("OTP is only asked of authenticated callers");
            two_factor::require_otp(app, caller).await
        }
        Decision::Deny(Denial::Hidden) => Err(Error::NotFound(match package {
            Some(t) => format!("package {} not found", t.name),
            None => "not found".into(),
        })),
        Decision::Deny(Denial::Unauthenticated) => Err(Error::Unauthenticated(
            "authentication required; log in with `npm login`".into(),
        )),
        Decision::Deny(Denial::Forbidden(msg)) => Err(Error::Forbidden(msg)),
    }
}
