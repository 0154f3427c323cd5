//! The gate every operation passes: load what the policy needs to know (`Target`),
//! run `decide`, check the one-time password when the decision asks for one, and
//! hand out the grant the store requires. The only place grants are made.

use std::sync::Arc;

use super::grant::{
    AccountAct, AccountGrant, ExposedTokenGrant, ListingGrant, LoginGrant, LogoutGrant, OrgAct,
    OrgGrant, PackageAct, PackageGrant, ProxyGrant, PublishGrant, TrustGrant, act,
};
use super::{
    Action, Credential, Decision, Denial, OidcScope, OrgFacts, PackageFacts, Principal, TfaMode,
    decide, decide_org,
};
use crate::app::App;
use crate::domain::credentials::{self, OtpOk, PasswordOk};
use crate::domain::{Caller, Error, Result};
use crate::npm::name::PackageName;
use crate::store::{OrgRow, PackageRow, UserRow};

/// The package a request targets, as loaded for the access check. Its row is only
/// reachable through a grant.
#[derive(Debug, Clone)]
pub struct Target {
    name: PackageName,
    row: Option<Arc<PackageRow>>,
    facts: PackageFacts,
}

impl Target {
    pub fn name(&self) -> &PackageName {
        &self.name
    }

    pub fn facts(&self) -> &PackageFacts {
        &self.facts
    }
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
    let row = found.map(|(row, rights)| {
        facts.exists = true;
        facts.public = row.is_public();
        facts.publish_requires_tfa = row.mfa.requires_tfa();
        facts.automation_overrides_tfa = row.mfa.automation_overrides_tfa();
        facts.trusted_publishing_only = row.trusted_publishing_only != 0;
        if caller.is_some() {
            facts.is_maintainer = rights.maintains;
            facts.org_role = rights.org_role;
            facts.team_permission = rights.team_permission;
        }
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

/// What the policy knows about an existing package for another account (the
/// credentials view asks, for each account that may reach a package, what it can
/// do there now).
pub async fn package_facts_of_user(app: &App, user_id: i64, name: &PackageName) -> Result<Target> {
    let found = app
        .store
        .package_for_user(name.as_str(), Some(user_id))
        .await?;
    let mut facts = PackageFacts::default();
    let row = found.map(|(row, rights)| {
        facts.exists = true;
        facts.public = row.is_public();
        facts.publish_requires_tfa = row.mfa.requires_tfa();
        facts.automation_overrides_tfa = row.mfa.automation_overrides_tfa();
        facts.trusted_publishing_only = row.trusted_publishing_only != 0;
        facts.is_maintainer = rights.maintains;
        facts.org_role = rights.org_role;
        facts.team_permission = rights.team_permission;
        row
    });
    Ok(Target {
        name: name.clone(),
        row,
        facts,
    })
}

/// A user owns `@username`; an organization's members create in its scope; any
/// other scope belongs to whoever first published in it.
async fn may_create_in_scope(app: &App, caller: &Caller, name: &PackageName) -> Result<bool> {
    let Some(scope) = name.scope() else {
        return Ok(true);
    };
    if let Some((_, role)) = app.store.org_for_user(scope, caller.user.id).await? {
        return Ok(role.is_some());
    }
    if scope == caller.user.name {
        return Ok(true);
    }
    if let Some(owner) = app.store.scope_owner(scope).await? {
        return Ok(owner == caller.user.id);
    }
    // A scope named after another user is theirs even before they publish.
    Ok(app.store.user_by_name(scope).await?.is_none())
}

/// The decision alone, without a one-time password check: for showing or hiding a
/// control, and for refusing a request before its body is read.
pub fn preflight(
    app: &App,
    caller: Option<&Caller>,
    action: Action,
    target: Option<&Target>,
) -> Decision {
    decide(
        caller.map(|c| &c.principal),
        action,
        target.map(|t| (&t.name, &t.facts)),
        app.config.anonymous_read,
    )
}

/// Turns a decision into `Ok` (after the one-time password, when asked) or the error
/// the client sees.
async fn enforce(
    app: &App,
    caller: Option<&Caller>,
    decision: Decision,
    target: Option<&PackageName>,
) -> Result<()> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::AllowWithOtp => match caller {
            Some(c) => require_otp(app, c).await.map(|_| ()),
            None => Err(Error::Internal(anyhow::anyhow!(
                "the access check asked an anonymous caller for a one-time password"
            ))),
        },
        Decision::Deny(Denial::Hidden) => Err(Error::NotFound(match target {
            Some(name) => format!("package {name} not found"),
            None => "not found".into(),
        })),
        Decision::Deny(Denial::Unauthenticated) => Err(Error::Unauthenticated(
            "authentication required; log in with `npm login`".into(),
        )),
        Decision::Deny(Denial::Forbidden(msg)) => Err(Error::Forbidden(msg)),
    }
}

/// Checks the caller's one-time password (the `npm-otp` header or the form field).
pub async fn require_otp(app: &App, caller: &Caller) -> Result<OtpOk> {
    match caller.otp.as_deref() {
        None => Err(Error::OtpRequired(credentials::OTP_MESSAGE.into())),
        Some(code) => credentials::check_otp(app, &caller.user, code, caller.ip).await,
    }
}

/// Authorizes `A` on an existing package.
pub async fn authorize<A: PackageAct>(
    app: &App,
    caller: Option<&Caller>,
    target: &Target,
) -> Result<PackageGrant<A>> {
    let decision = preflight(app, caller, A::ACTION, Some(target));
    enforce(app, caller, decision, Some(&target.name)).await?;
    let row = target
        .row
        .clone()
        .ok_or_else(|| Error::NotFound(format!("package {} not found", target.name)))?;
    Ok(PackageGrant::new(
        row,
        target.name.clone(),
        caller.map(|c| c.user.id),
    ))
}

/// Authorizes publishing a version of `target` (which may not exist yet).
pub async fn authorize_publish(
    app: &App,
    caller: &Caller,
    target: &Target,
) -> Result<PublishGrant> {
    let decision = preflight(app, Some(caller), Action::Publish, Some(target));
    enforce(app, Some(caller), decision, Some(&target.name)).await?;
    Ok(PublishGrant::new(
        target.row.clone(),
        target.name.clone(),
        caller.user.id,
    ))
}

/// Authorizes approving or rejecting a staged version of `target`: the approval
/// decision (a maintainer, with a one-time password when the account has 2FA), and
/// with it the grant that publishes the staged version as this caller.
pub async fn authorize_stage_approval(
    app: &App,
    caller: &Caller,
    target: &Target,
) -> Result<(PackageGrant<act::ApproveStage>, PublishGrant)> {
    let grant = authorize::<act::ApproveStage>(app, Some(caller), target).await?;
    let publish = PublishGrant::new(target.row.clone(), target.name.clone(), caller.user.id);
    Ok((grant, publish))
}

/// Authorizes minting a trusted-publishing token for a configuration that matched a
/// verified id token: the decision for the token about to be minted, that is the
/// configuring account's live rights narrowed to one package and to what the
/// configuration allows. `configured_by` is that account.
pub async fn authorize_trust_exchange(
    app: &App,
    configured_by: &UserRow,
    name: &PackageName,
    scope: OidcScope,
) -> Result<TrustGrant> {
    let target = package_facts_of_user(app, configured_by.id, name).await?;
    let who = Principal {
        credential: Credential::Oidc(scope.clone()),
        tfa: configured_by.tfa_mode(),
    };
    let action = if scope.publish {
        Action::Publish
    } else {
        Action::StagePublish
    };
    let decision = decide(
        Some(&who),
        action,
        Some((name, &target.facts)),
        app.config.anonymous_read,
    );
    match (decision, &target.row) {
        (Decision::Allow, Some(row)) => Ok(TrustGrant::new(configured_by.id, row.id, scope)),
        _ => Err(Error::Forbidden(format!(
            "the account that configured this trust ({}) can no longer publish {name}; \
             a maintainer must configure trusted publishing again",
            configured_by.name
        ))),
    }
}

/// Authorizes reading `name` from an uplink. The caller must have checked that no
/// local package (or tombstone) has the name: a local name is never served from an
/// uplink.
pub async fn authorize_proxied_read(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> Result<ProxyGrant> {
    let public = PackageFacts {
        exists: true,
        public: true,
        ..PackageFacts::default()
    };
    let decision = decide(
        caller.map(|c| &c.principal),
        Action::ReadPackage,
        Some((name, &public)),
        app.config.anonymous_read,
    );
    enforce(app, caller, decision, Some(name)).await?;
    Ok(ProxyGrant::new(name.clone()))
}

/// The organization a request targets, as loaded for the access check.
#[derive(Debug, Clone)]
pub struct OrgTarget {
    name: String,
    row: Option<OrgRow>,
    facts: OrgFacts,
}

impl OrgTarget {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn facts(&self) -> &OrgFacts {
        &self.facts
    }
}

/// Loads the organization `name` and the caller's role in it.
pub async fn org_facts(app: &App, caller: &Caller, name: &str) -> Result<OrgTarget> {
    let found = app.store.org_for_user(name, caller.user.id).await?;
    let facts = OrgFacts {
        exists: found.is_some(),
        role: found.as_ref().and_then(|(_, role)| *role),
    };
    Ok(OrgTarget {
        name: name.to_owned(),
        row: found.map(|(row, _)| row),
        facts,
    })
}

/// Authorizes `A` in an organization (an organization the caller is not a member of
/// answers like a missing one).
pub async fn authorize_org<A: OrgAct>(
    app: &App,
    caller: &Caller,
    target: &OrgTarget,
) -> Result<OrgGrant<A>> {
    let decision = decide_org(
        Some(&caller.principal),
        A::ACTION,
        &target.name,
        &target.facts,
    );
    if decision == Decision::Deny(Denial::Hidden) {
        return Err(Error::NotFound(format!(
            "organization {} not found",
            target.name
        )));
    }
    enforce(app, Some(caller), decision, None).await?;
    let row = target
        .row
        .as_ref()
        .ok_or_else(|| Error::NotFound(format!("organization {} not found", target.name)))?;
    Ok(OrgGrant::new(row.id, row.name.clone(), caller.user.id))
}

/// The organization decision alone, without a one-time password check (to show or
/// hide a control).
pub fn org_preflight(caller: &Caller, action: Action, target: &OrgTarget) -> Decision {
    decide_org(Some(&caller.principal), action, &target.name, &target.facts)
}

/// Authorizes `A` on the caller's own account.
pub async fn authorize_account<A: AccountAct>(
    app: &App,
    caller: &Caller,
) -> Result<AccountGrant<A>> {
    let decision = preflight(app, Some(caller), A::ACTION, None);
    enforce(app, Some(caller), decision, None).await?;
    Ok(AccountGrant::new(caller.user.id))
}

/// Authorizes a listing (search, recent packages, a user's packages).
pub async fn authorize_listing(app: &App, caller: Option<&Caller>) -> Result<ListingGrant> {
    let decision = preflight(app, caller, Action::ListPackages, None);
    enforce(app, caller, decision, None).await?;
    Ok(ListingGrant::new(caller.map(|c| c.user.id)))
}

/// Whether `caller` may read a restricted package they maintain: the read decision
/// for facts a listing query has already established (restricted, exists, maintained
/// by the caller). Search uses it to count and page only what the caller may see; each
/// hit still passes `authorize` on its own.
pub fn may_read_maintained_restricted(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
) -> bool {
    let facts = PackageFacts {
        exists: true,
        public: false,
        is_maintainer: caller.is_some(),
        ..PackageFacts::default()
    };
    decide(
        caller.map(|c| &c.principal),
        Action::ReadPackage,
        Some((name, &facts)),
        app.config.anonymous_read,
    )
    .allows()
}

/// A credential may always revoke itself (`npm logout`), whatever its type.
pub fn authorize_logout(caller: &Caller) -> Option<LogoutGrant> {
    caller
        .token
        .as_ref()
        .map(|t| LogoutGrant::new(caller.user.id, t.id))
}

/// A token found exposed may be revoked by whoever presents its value (see
/// `ExposedTokenGrant`); the checksum was checked by `PlainToken::parse`.
pub fn exposed_token_grant(
    token: &crate::crypto::token_format::PlainToken,
    key: &crate::crypto::token_format::TokenHashKey,
) -> ExposedTokenGrant {
    ExposedTokenGrant::new(token.hash(key).0)
}

/// A login: the password was checked, and so was a one-time password when the
/// account has two-factor authentication.
pub fn login_grant(user: &UserRow, password: PasswordOk, otp: Option<OtpOk>) -> Result<LoginGrant> {
    if password.user_id() != user.id || otp.as_ref().is_some_and(|o| o.user_id() != user.id) {
        return Err(Error::Internal(anyhow::anyhow!(
            "credential proofs for another account"
        )));
    }
    if user.tfa_mode() != TfaMode::Off && otp.is_none() {
        return Err(Error::OtpRequired(
            "This account has two-factor authentication: you must provide a one-time pass.".into(),
        ));
    }
    Ok(LoginGrant::new(user.id))
}

/// A browser login its owner approved on the website (the approval itself went
/// through `authorize_account::<ApproveWebLogin>`); `user_id` is the approving account
/// read back from the approved request.
pub(in crate::domain) fn approved_web_login_grant(user_id: i64) -> LoginGrant {
    LoginGrant::new(user_id)
}
