//! The decision table: a pure function of (which credential, whose account and its
//! two-factor mode, doing what, to which package). No I/O; `gate` loads the facts,
//! calls `decide`, checks a one-time password when the answer asks for one and hands
//! out the `Grant` that store reads and writes require.
//!
//! The credential rules (written out in ARCHITECTURE.md, "Credentials"):
//! - a website session and an unlimited publish token may do everything the account
//!   may, with a one-time password as the account's 2FA mode asks;
//! - automation tokens write packages without one-time passwords, never settings or
//!   account actions; read-only tokens only read;
//! - a granular token (one with limits) reaches only the packages it selects, at its
//!   permission, and never performs account actions;
//! - the account password (HTTP Basic) is a login credential: it may create a token
//!   (that is what `npm login` and `npm profile enable-2fa` do with it), read the
//!   profile and enrol in 2FA, and read packages while the account has no 2FA. It never
//!   writes packages, settings, tokens or the profile, and once the account has 2FA it
//!   does nothing without a one-time password: a password alone never does more than a
//!   website session that has not passed its second factor.

use crate::npm::name::PackageName;

/// The three token types. A classic type is a preset of granular limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    ReadOnly,
    Automation,
    Publish,
}

impl TokenKind {
    pub const ALL: [TokenKind; 3] = [
        TokenKind::ReadOnly,
        TokenKind::Automation,
        TokenKind::Publish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::ReadOnly => "read-only",
            TokenKind::Automation => "automation",
            TokenKind::Publish => "publish",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = UnknownValue;

    /// The stored and wire names; `readonly` is npm's legacy spelling.
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "read-only" | "readonly" => Ok(TokenKind::ReadOnly),
            "automation" => Ok(TokenKind::Automation),
            "publish" => Ok(TokenKind::Publish),
            other => Err(UnknownValue(other.chars().take(64).collect())),
        }
    }
}

/// Where a token came from. Only `Oidc` changes what a token may do (it acts through
/// its stored scope); the others are shown in token lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenOrigin {
    /// Created on the website.
    Web,
    /// Created through the tokens API (`npm token create`, `tessera token`).
    Api,
    /// Created by `npm login` / `npm adduser`.
    Login,
    /// Minted by the trusted-publishing exchange.
    Oidc,
}

impl TokenOrigin {
    pub const ALL: [TokenOrigin; 4] = [
        TokenOrigin::Web,
        TokenOrigin::Api,
        TokenOrigin::Login,
        TokenOrigin::Oidc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenOrigin::Web => "web",
            TokenOrigin::Api => "api",
            TokenOrigin::Login => "login",
            TokenOrigin::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for TokenOrigin {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| UnknownValue(text.chars().take(64).collect()))
    }
}

/// Who staged a version: an account's own credential, or a CI identity through
/// trusted publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorType {
    User,
    Oidc,
}

impl ActorType {
    pub const ALL: [ActorType; 2] = [ActorType::User, ActorType::Oidc];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for ActorType {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| UnknownValue(text.chars().take(64).collect()))
    }
}

/// Who may read a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageAccess {
    Public,
    Restricted,
}

impl PackageAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageAccess::Public => "public",
            PackageAccess::Restricted => "restricted",
        }
    }
}

impl std::str::FromStr for PackageAccess {
    type Err = UnknownValue;

    /// `private` is npm's word for `restricted` on the command line.
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "public" => Ok(PackageAccess::Public),
            "restricted" | "private" => Ok(PackageAccess::Restricted),
            other => Err(UnknownValue(other.chars().take(64).collect())),
        }
    }
}

/// A package's publishing 2FA policy, as `npm access` names it. Stored as two 0/1
/// flags, `publish_requires_tfa` and `automation_overrides_tfa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfaPolicy {
    None,
    /// Publishing needs a second factor; automation tokens are refused.
    Publish,
    /// Publishing needs a second factor, or an automation token.
    Automation,
}

impl MfaPolicy {
    pub const ALL: [MfaPolicy; 3] = [MfaPolicy::None, MfaPolicy::Publish, MfaPolicy::Automation];

    /// Reads the stored flags. Only 0 turns the requirement off and only 1 lets
    /// automation tokens past it: a value no build writes reads as the stricter one.
    pub fn from_flags(publish_requires_tfa: i64, automation_overrides_tfa: i64) -> MfaPolicy {
        match (publish_requires_tfa, automation_overrides_tfa) {
            (0, _) => MfaPolicy::None,
            (_, 1) => MfaPolicy::Automation,
            _ => MfaPolicy::Publish,
        }
    }

    /// The stored flags (`publish_requires_tfa`, `automation_overrides_tfa`).
    pub fn flags(self) -> (i64, i64) {
        match self {
            MfaPolicy::None => (0, 0),
            MfaPolicy::Publish => (1, 0),
            MfaPolicy::Automation => (1, 1),
        }
    }

    pub fn requires_tfa(self) -> bool {
        self != MfaPolicy::None
    }

    pub fn automation_overrides_tfa(self) -> bool {
        self == MfaPolicy::Automation
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::None => "none",
            MfaPolicy::Publish => "publish",
            MfaPolicy::Automation => "automation",
        }
    }
}

impl std::str::FromStr for MfaPolicy {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| UnknownValue(text.chars().take(64).collect()))
    }
}

/// A stored or sent value that names no known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// Permission a credential holds on one package (or an organization's settings).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PackagePermission {
    NoAccess,
    ReadOnly,
    ReadWrite,
}

impl PackagePermission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAccess => "no-access",
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }
}

impl std::str::FromStr for PackagePermission {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "no-access" => Ok(Self::NoAccess),
            "read-only" => Ok(Self::ReadOnly),
            "read-write" => Ok(Self::ReadWrite),
            other => Err(UnknownValue(other.chars().take(64).collect())),
        }
    }
}

/// Granular limits of a token (npm's granular access tokens). The package selection
/// is an allow-list: a package is reached only when `packages_all` is set, or it is
/// listed, or its scope is listed. Nothing selected reaches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub packages: Vec<String>,
    /// Scope names without `@`.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub packages_all: bool,
    /// Permission on the selected packages; `None` (older tokens) reads as read-write,
    /// always capped by the token's type.
    #[serde(default)]
    pub permission: Option<PackagePermission>,
    #[serde(default)]
    pub orgs: Vec<String>,
    #[serde(default)]
    pub orgs_permission: Option<PackagePermission>,
    #[serde(default)]
    pub bypass_2fa: bool,
}

impl Limits {
    /// Whether any package is selected at all.
    pub fn selects_packages(&self) -> bool {
        self.packages_all || !self.packages.is_empty() || !self.scopes.is_empty()
    }

    /// Whether the selection reaches `name`.
    pub fn covers(&self, name: &PackageName) -> bool {
        self.packages_all
            || self.packages.iter().any(|p| p == name.as_str())
            || name
                .scope()
                .is_some_and(|s| self.scopes.iter().any(|x| x == s))
    }
}

/// What a token minted by trusted publishing may do: publish and/or stage versions
/// of one package, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcScope {
    /// The one package the token reaches.
    pub package: String,
    /// `npm publish` (`createPackage`).
    pub publish: bool,
    /// `npm stage publish` (`createStagedPackage`).
    pub stage: bool,
    /// The CI identity it was minted for, as shown in the token list and logs.
    pub identity: String,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A website session that has passed every factor the account asks for.
    Session,
    /// HTTP Basic with the account password.
    Password,
    Token {
        kind: TokenKind,
        /// `None`: a classic token (no limits).
        limits: Option<Limits>,
    },
    /// A short-lived token from an OpenID Connect exchange (trusted publishing): it
    /// acts for the account that configured the trust, on one package only.
    Oidc(OidcScope),
}

/// The account's two-factor mode (a pending enrolment is still off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TfaMode {
    Off,
    AuthOnly,
    AuthAndWrites,
}

impl TfaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TfaMode::Off => "off",
            TfaMode::AuthOnly => "auth-only",
            TfaMode::AuthAndWrites => "auth-and-writes",
        }
    }
}

/// A member's role in an organization, as npm's CLI names them (ordered: a higher
/// role can do everything a lower one can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgRole {
    Developer,
    Admin,
    Owner,
}

impl OrgRole {
    pub const ALL: [OrgRole; 3] = [OrgRole::Developer, OrgRole::Admin, OrgRole::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Developer => "developer",
            OrgRole::Admin => "admin",
            OrgRole::Owner => "owner",
        }
    }
}

impl std::str::FromStr for OrgRole {
    type Err = UnknownValue;

    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "developer" => Ok(OrgRole::Developer),
            "admin" => Ok(OrgRole::Admin),
            "owner" => Ok(OrgRole::Owner),
            other => Err(UnknownValue(other.chars().take(64).collect())),
        }
    }
}

/// An authenticated caller as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub credential: Credential,
    pub tfa: TfaMode,
}

/// What an authenticated credential may do at most, before package facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Session or classic publish token: packages and the account.
    Full,
    /// Packages only, at the type's level (automation, read-only, granular).
    PackagesOnly,
    /// The account password: logging in and exchanging it for a token.
    LoginOnly,
}

impl Principal {
    /// The effective token type (sessions and passwords act as publish).
    pub fn effective_kind(&self) -> TokenKind {
        match &self.credential {
            Credential::Token { kind, .. } => *kind,
            // No one-time password and no settings, like an automation token.
            Credential::Oidc(_) => TokenKind::Automation,
            _ => TokenKind::Publish,
        }
    }

    /// Whether this is a trusted-publishing token.
    pub fn is_oidc(&self) -> bool {
        matches!(self.credential, Credential::Oidc(_))
    }

    /// Whether this credential skips two-factor prompts (automation tokens).
    pub fn bypasses_2fa(&self) -> bool {
        matches!(self.effective_kind(), TokenKind::Automation)
    }

    fn reach(&self) -> Reach {
        match &self.credential {
            Credential::Session => Reach::Full,
            Credential::Password => Reach::LoginOnly,
            Credential::Token {
                kind: TokenKind::Publish,
                limits: None,
            } => Reach::Full,
            Credential::Token { .. } | Credential::Oidc(_) => Reach::PackagesOnly,
        }
    }

    /// The permission this credential carries for `name`, before ownership: the
    /// type's ceiling, narrowed by granular limits (nothing selected: no access).
    pub fn permission_for(&self, name: &PackageName) -> PackagePermission {
        let ceiling = match self.effective_kind() {
            TokenKind::ReadOnly => PackagePermission::ReadOnly,
            _ => PackagePermission::ReadWrite,
        };
        match &self.credential {
            Credential::Token {
                limits: Some(l), ..
            } => {
                if !l.covers(name) {
                    return PackagePermission::NoAccess;
                }
                l.permission
                    .unwrap_or(PackagePermission::ReadWrite)
                    .min(ceiling)
            }
            Credential::Oidc(scope) if scope.package == name.as_str() => ceiling,
            Credential::Oidc(_) => PackagePermission::NoAccess,
            _ => ceiling,
        }
    }
}

/// Everything a request can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Download a packument or tarball, or see it in a listing.
    ReadPackage,
    /// Star or unstar a package (one's own mark; needs read access).
    Star,
    Publish,
    Unpublish,
    Deprecate,
    DistTag,
    /// Visibility (`npm access set status=`).
    ChangeAccess,
    ChangeOwners,
    /// Per-package publishing 2FA policy.
    ChangeMfaPolicy,
    /// Search, recent packages and other listings (each hit is then `ReadPackage`).
    ListPackages,
    ReadProfile,
    ChangeProfile,
    ChangeTwoFactor,
    ListTokens,
    CreateToken,
    RevokeToken,
    /// Approve an `npm login` started in a browser (it mints a publish token).
    ApproveWebLogin,
    ReadSecurityLog,
    /// See who can publish a package, through which path and with which tokens.
    ReadPackageCredentials,
    /// Create an organization (an account action: the creator becomes its owner).
    CreateOrg,
    /// See an organization's members, teams and their grants.
    ReadOrg,
    /// Change members (below owner), teams, team members and team grants.
    ManageOrg,
    /// Make or unmake owners, delete the organization.
    ManageOrgOwners,
    /// Read an organization's log and every credential that can publish its
    /// packages (owners).
    AuditOrg,
    /// Store a version for review (`npm stage publish`): invisible until approved.
    StagePublish,
    /// List, view and download staged versions.
    ReviewStage,
    /// Approve (publish) or reject (delete) a staged version.
    ApproveStage,
    /// List a package's trust configurations.
    ReadTrust,
    /// Create or revoke trust configurations, and set "publish only through
    /// trusted publishing".
    ManageTrust,
}

impl Action {
    pub const ALL: [Action; 29] = [
        Action::ReadPackage,
        Action::Star,
        Action::Publish,
        Action::Unpublish,
        Action::Deprecate,
        Action::DistTag,
        Action::ChangeAccess,
        Action::ChangeOwners,
        Action::ChangeMfaPolicy,
        Action::ListPackages,
        Action::ReadProfile,
        Action::ChangeProfile,
        Action::ChangeTwoFactor,
        Action::ListTokens,
        Action::CreateToken,
        Action::RevokeToken,
        Action::ApproveWebLogin,
        Action::ReadSecurityLog,
        Action::ReadPackageCredentials,
        Action::CreateOrg,
        Action::ReadOrg,
        Action::ManageOrg,
        Action::ManageOrgOwners,
        Action::AuditOrg,
        Action::StagePublish,
        Action::ReviewStage,
        Action::ApproveStage,
        Action::ReadTrust,
        Action::ManageTrust,
    ];

    pub fn is_package_write(self) -> bool {
        matches!(
            self,
            Action::Publish
                | Action::Unpublish
                | Action::Deprecate
                | Action::DistTag
                | Action::StagePublish
                | Action::ApproveStage
        )
    }

    pub fn is_package_setting(self) -> bool {
        matches!(
            self,
            Action::ChangeAccess
                | Action::ChangeOwners
                | Action::ChangeMfaPolicy
                | Action::ManageTrust
        )
    }

    pub fn is_package_change(self) -> bool {
        self.is_package_write() || self.is_package_setting()
    }

    pub fn is_account_action(self) -> bool {
        matches!(
            self,
            Action::ReadProfile
                | Action::ChangeProfile
                | Action::ChangeTwoFactor
                | Action::ListTokens
                | Action::CreateToken
                | Action::RevokeToken
                | Action::ApproveWebLogin
                | Action::ReadSecurityLog
                | Action::CreateOrg
        )
    }

    pub fn is_org_action(self) -> bool {
        matches!(
            self,
            Action::ReadOrg | Action::ManageOrg | Action::ManageOrgOwners | Action::AuditOrg
        )
    }
}

/// What the policy knows about the target package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageFacts {
    pub exists: bool,
    pub public: bool,
    /// The caller maintains it (live: losing rights takes them from tokens too). For
    /// a package in an organization's scope, only while the caller is a member.
    pub is_maintainer: bool,
    /// The caller's role in the organization that owns the package's scope.
    pub org_role: Option<OrgRole>,
    /// The best permission the caller's teams hold on the package.
    pub team_permission: Option<PackagePermission>,
    /// For a new package: the caller may create it (free name, own scope).
    pub may_create: bool,
    pub publish_requires_tfa: bool,
    pub automation_overrides_tfa: bool,
    /// New versions only through trusted publishing (tokens may not publish).
    pub trusted_publishing_only: bool,
}

impl PackageFacts {
    /// The caller's own rights (before the credential's limits) reach reading it:
    /// a maintainer, an organization owner or admin, or a team granted it.
    pub fn caller_may_read(&self) -> bool {
        self.is_maintainer
            || self.org_role >= Some(OrgRole::Admin)
            || self.team_permission >= Some(PackagePermission::ReadOnly)
    }

    /// The caller's own rights reach writing it: a maintainer, an organization owner
    /// or admin, or a team granted read-write.
    pub fn caller_may_write(&self) -> bool {
        self.is_maintainer
            || self.org_role >= Some(OrgRole::Admin)
            || self.team_permission == Some(PackagePermission::ReadWrite)
    }

    /// A restricted package the caller may not read: it must look exactly like a
    /// package that does not exist.
    fn hidden(&self) -> bool {
        self.exists && !self.public && !self.caller_may_read()
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Answer 404: do not reveal that the package exists.
    Hidden,
    /// No (valid) credentials.
    Unauthenticated,
    /// Authenticated but not allowed, with the message npm prints.
    Forbidden(String),
}

/// The outcome of the access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed once a valid one-time password accompanies the request.
    AllowWithOtp,
    Deny(Denial),
}

impl Decision {
    pub fn allows(&self) -> bool {
        matches!(self, Decision::Allow | Decision::AllowWithOtp)
    }
}

fn forbid(msg: impl Into<String>) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.into()))
}

/// The refusal a publish gets whether the name is someone else's, hidden, or in a
/// scope the caller does not own: one answer, so it tells a stranger nothing.
pub fn publish_refusal(name: &PackageName) -> String {
    format!(
        "You do not have permission to publish \"{name}\". Are you logged in as the correct user?"
    )
}

/// The refusal a token publish gets on a package that accepts new versions only
/// through trusted publishing.
pub fn trusted_only_refusal(name: &PackageName) -> String {
    format!(
        "{name} accepts new versions only through trusted publishing: publish from a CI \
         workflow its maintainers trust (`npm trust list {name}`), not with a token"
    )
}

/// The refusal for a password used where a token is needed.
pub const PASSWORD_NOT_ENOUGH: &str = "The account password is accepted only to log in and to create a token; \
     use a token for this (run `npm login`, or create one with `npm token create`).";

/// The refusal for a password on an account with two-factor authentication.
pub const PASSWORD_NEEDS_OTP: &str = "This account has two-factor authentication: a password alone is not enough. \
     Log in with `npm login` and use the token it saves.";

/// Decides a request. `anonymous_read` is the server-wide setting.
pub fn decide(
    who: Option<&Principal>,
    action: Action,
    package: Option<(&PackageName, &PackageFacts)>,
    anonymous_read: bool,
) -> Decision {
    match action {
        Action::ReadPackage => decide_read(who, package, anonymous_read),
        Action::ListPackages => decide_listing(who, anonymous_read),
        Action::Star => match who {
            None => Decision::Deny(Denial::Unauthenticated),
            Some(_) => decide_read(who, package, anonymous_read),
        },
        Action::ReadPackageCredentials | Action::ReadTrust => match (who, package) {
            (None, _) => Decision::Deny(Denial::Unauthenticated),
            (Some(_), None) => forbid("no package given"),
            (Some(p), Some((name, facts))) => decide_credentials_view(p, action, name, facts),
        },
        Action::ReviewStage => match (who, package) {
            (None, _) => Decision::Deny(Denial::Unauthenticated),
            (Some(_), None) => forbid("no package given"),
            (Some(p), Some((name, facts))) => decide_stage_review(p, name, facts),
        },
        a if a.is_org_action() => forbid("an organization action needs an organization"),
        a if a.is_package_change() => match (who, package) {
            (None, _) => Decision::Deny(Denial::Unauthenticated),
            (Some(_), None) => forbid("no package given"),
            (Some(p), Some((name, facts))) => decide_package_change(p, action, name, facts),
        },
        _ => match who {
            None => Decision::Deny(Denial::Unauthenticated),
            Some(p) => decide_account(p, action),
        },
    }
}

fn decide_listing(who: Option<&Principal>, anonymous_read: bool) -> Decision {
    match who {
        None if anonymous_read => Decision::Allow,
        None => Decision::Deny(Denial::Unauthenticated),
        Some(p) if p.credential == Credential::Password && p.tfa != TfaMode::Off => {
            forbid(PASSWORD_NEEDS_OTP)
        }
        Some(_) => Decision::Allow,
    }
}

fn decide_read(
    who: Option<&Principal>,
    package: Option<(&PackageName, &PackageFacts)>,
    anonymous_read: bool,
) -> Decision {
    // Without anonymous reads, an anonymous caller learns nothing, not even whether a
    // package exists: the same 401 for every name.
    if who.is_none() && !anonymous_read {
        return Decision::Deny(Denial::Unauthenticated);
    }
    if let Some(p) = who
        && p.credential == Credential::Password
        && p.tfa != TfaMode::Off
    {
        return forbid(PASSWORD_NEEDS_OTP);
    }
    let Some((name, facts)) = package else {
        return Decision::Allow;
    };
    if !facts.exists || facts.hidden() {
        return Decision::Deny(Denial::Hidden);
    }
    if facts.public {
        // Public packages are readable by anyone the registry lets read at all.
        return Decision::Allow;
    }
    match who {
        Some(p) if p.permission_for(name) >= PackagePermission::ReadOnly => Decision::Allow,
        _ => Decision::Deny(Denial::Hidden),
    }
}

fn decide_package_change(
    who: &Principal,
    action: Action,
    name: &PackageName,
    facts: &PackageFacts,
) -> Decision {
    // Checks that depend only on the credential come first, so their answers are
    // the same whether or not the package exists.
    match who.reach() {
        Reach::LoginOnly if who.tfa != TfaMode::Off => return forbid(PASSWORD_NEEDS_OTP),
        Reach::LoginOnly => return forbid(PASSWORD_NOT_ENOUGH),
        Reach::Full | Reach::PackagesOnly => {}
    }
    let kind = who.effective_kind();
    if kind == TokenKind::ReadOnly {
        return forbid("This token is read-only and cannot change packages");
    }
    if let Credential::Oidc(scope) = &who.credential {
        let allowed = match action {
            Action::Publish => scope.publish,
            Action::StagePublish => scope.stage,
            _ => false,
        };
        if !allowed || scope.package != name.as_str() {
            return forbid(format!(
                "This trusted-publishing token may only {} {}",
                match (scope.publish, scope.stage) {
                    (true, true) => "publish and stage versions of",
                    (true, false) => "publish versions of",
                    _ => "stage versions of",
                },
                scope.package
            ));
        }
    }
    if action == Action::ApproveStage && kind != TokenKind::Publish {
        return forbid(
            "A staged version is approved by a maintainer: sign in on the website or use a publish token",
        );
    }
    if action.is_package_setting() && kind != TokenKind::Publish {
        return forbid("Automation tokens cannot change package settings; use a publish token");
    }
    if who.permission_for(name) < PackagePermission::ReadWrite {
        return forbid(format!("This token has no write access to {name}"));
    }
    // A hidden package answers exactly like a missing one.
    if !facts.exists || facts.hidden() {
        if action != Action::Publish {
            return Decision::Deny(Denial::Hidden);
        }
        if facts.exists || !facts.may_create {
            return forbid(publish_refusal(name));
        }
    } else if !facts.caller_may_write() {
        return forbid(publish_refusal(name));
    }
    if matches!(action, Action::Publish | Action::StagePublish)
        && facts.trusted_publishing_only
        && !who.is_oidc()
    {
        return forbid(trusted_only_refusal(name));
    }
    if who.is_oidc() {
        // The trust configuration stands in for the second factor, as it does on
        // npm's registry (also under "require 2FA and disallow tokens").
        return Decision::Allow;
    }
    let two_factor_on = who.tfa != TfaMode::Off;
    if action == Action::StagePublish {
        // Staging defers the second factor to the approval.
        return Decision::Allow;
    }
    if action == Action::ApproveStage {
        if facts.publish_requires_tfa && !two_factor_on {
            return forbid(format!(
                "{name} requires two-factor authentication; enable it with `npm profile enable-2fa`"
            ));
        }
        return if two_factor_on {
            Decision::AllowWithOtp
        } else {
            Decision::Allow
        };
    }
    if action.is_package_write() && facts.publish_requires_tfa {
        if who.bypasses_2fa() {
            if facts.automation_overrides_tfa {
                return Decision::Allow;
            }
            return forbid(format!(
                "{name} is set to require two-factor authentication and disallow tokens; \
                 publish with a one-time password"
            ));
        }
        if !two_factor_on {
            return forbid(format!(
                "{name} requires two-factor authentication; enable it with `npm profile enable-2fa`"
            ));
        }
        return Decision::AllowWithOtp;
    }
    if matches!(action, Action::ChangeMfaPolicy | Action::ManageTrust) && two_factor_on {
        return Decision::AllowWithOtp;
    }
    if who.tfa == TfaMode::AuthAndWrites && !who.bypasses_2fa() {
        Decision::AllowWithOtp
    } else {
        Decision::Allow
    }
}

/// Who can list, view and download staged versions: whoever may write the package,
/// with a credential that may write it (trusted-publishing tokens only stage).
fn decide_stage_review(who: &Principal, name: &PackageName, facts: &PackageFacts) -> Decision {
    match who.reach() {
        Reach::LoginOnly if who.tfa != TfaMode::Off => return forbid(PASSWORD_NEEDS_OTP),
        Reach::LoginOnly => return forbid(PASSWORD_NOT_ENOUGH),
        Reach::Full | Reach::PackagesOnly => {}
    }
    if !facts.exists || facts.hidden() {
        return Decision::Deny(Denial::Hidden);
    }
    if who.is_oidc() || who.permission_for(name) < PackagePermission::ReadOnly {
        return forbid(format!(
            "This token cannot review staged versions of {name}"
        ));
    }
    if facts.caller_may_write() {
        Decision::Allow
    } else {
        forbid(format!(
            "Only those who may publish {name} review its staged versions"
        ))
    }
}

/// Who can see a package's credentials: its maintainers and its organization's
/// owners and admins, with a credential that may change the package's settings.
fn decide_credentials_view(
    who: &Principal,
    action: Action,
    name: &PackageName,
    facts: &PackageFacts,
) -> Decision {
    if !facts.exists || facts.hidden() {
        return Decision::Deny(Denial::Hidden);
    }
    let what = if action == Action::ReadTrust {
        "trust configurations"
    } else {
        "credentials"
    };
    match who.reach() {
        Reach::LoginOnly => return forbid(PASSWORD_NOT_ENOUGH),
        Reach::Full => {}
        Reach::PackagesOnly => {
            if who.effective_kind() != TokenKind::Publish
                || who.permission_for(name) < PackagePermission::ReadWrite
            {
                return forbid(format!(
                    "This token cannot see the package's {what}; use a publish token"
                ));
            }
        }
    }
    if facts.is_maintainer || facts.org_role >= Some(OrgRole::Admin) {
        Decision::Allow
    } else {
        forbid(format!(
            "Only maintainers of {name} and its organization's owners and admins see its {what}"
        ))
    }
}

/// What the policy knows about an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrgFacts {
    pub exists: bool,
    /// The caller's role in it.
    pub role: Option<OrgRole>,
}

/// Decides an action on an organization (`ReadOrg`, `ManageOrg`, `ManageOrgOwners`).
/// A stranger learns nothing: an organization the caller is not a member of answers
/// like one that does not exist.
pub fn decide_org(
    who: Option<&Principal>,
    action: Action,
    org: &str,
    facts: &OrgFacts,
) -> Decision {
    let Some(who) = who else {
        return Decision::Deny(Denial::Unauthenticated);
    };
    if !action.is_org_action() {
        return forbid("not an organization action");
    }
    let changes = !matches!(action, Action::ReadOrg | Action::AuditOrg);
    // What the credential may do in organizations at all.
    let credential_allows = match &who.credential {
        Credential::Session => true,
        Credential::Password if who.tfa != TfaMode::Off => return forbid(PASSWORD_NEEDS_OTP),
        Credential::Password => return forbid(PASSWORD_NOT_ENOUGH),
        Credential::Token {
            limits: Some(l), ..
        } => {
            let listed = l.orgs.iter().any(|o| o == org);
            let level = if listed { l.orgs_permission } else { None };
            let needed = if changes {
                PackagePermission::ReadWrite
            } else {
                PackagePermission::ReadOnly
            };
            level >= Some(needed)
        }
        Credential::Token { kind, limits: None } => !changes || *kind == TokenKind::Publish,
        Credential::Oidc(_) => false,
    };
    let Some(role) = facts.role.filter(|_| facts.exists) else {
        return Decision::Deny(Denial::Hidden);
    };
    if !credential_allows {
        return forbid(format!(
            "This token may not {} the organization {org}",
            if changes { "change" } else { "read" }
        ));
    }
    let role_allows = match action {
        Action::ReadOrg => true,
        Action::ManageOrg => role >= OrgRole::Admin,
        Action::ManageOrgOwners | Action::AuditOrg => role == OrgRole::Owner,
        _ => false,
    };
    if !role_allows {
        return forbid(format!(
            "Only {} of {org} may do this",
            if action == Action::ManageOrg {
                "owners and admins"
            } else {
                "owners"
            }
        ));
    }
    if changes && who.tfa == TfaMode::AuthAndWrites && !who.bypasses_2fa() {
        Decision::AllowWithOtp
    } else {
        Decision::Allow
    }
}

fn decide_account(who: &Principal, action: Action) -> Decision {
    let two_factor_on = who.tfa != TfaMode::Off;
    match who.reach() {
        Reach::PackagesOnly => {
            let what = match &who.credential {
                Credential::Oidc(_) => "A trusted-publishing token",
                Credential::Token {
                    limits: Some(_), ..
                } => "A granular token",
                _ => match who.effective_kind() {
                    TokenKind::ReadOnly => "A read-only token",
                    _ => "An automation token",
                },
            };
            forbid(format!(
                "{what} cannot manage tokens or change account settings; \
                 use the website or a publish token"
            ))
        }
        Reach::LoginOnly => match action {
            // The password is exchanged for a token (npm login, enable-2fa), or
            // re-checked for 2FA enrolment; with 2FA on it needs its second factor.
            Action::CreateToken | Action::ChangeTwoFactor | Action::ReadProfile => {
                if two_factor_on {
                    Decision::AllowWithOtp
                } else {
                    Decision::Allow
                }
            }
            _ if two_factor_on => forbid(PASSWORD_NEEDS_OTP),
            _ => forbid(PASSWORD_NOT_ENOUGH),
        },
        Reach::Full => match action {
            Action::ReadProfile | Action::ListTokens | Action::ReadSecurityLog => Decision::Allow,
            Action::ApproveWebLogin if who.credential != Credential::Session => {
                forbid("A login is approved on the website, signed in")
            }
            Action::CreateToken | Action::ChangeTwoFactor | Action::ApproveWebLogin => {
                if two_factor_on {
                    Decision::AllowWithOtp
                } else {
                    Decision::Allow
                }
            }
            Action::ChangeProfile | Action::RevokeToken | Action::CreateOrg => {
                if who.tfa == TfaMode::AuthAndWrites {
                    Decision::AllowWithOtp
                } else {
                    Decision::Allow
                }
            }
            _ => forbid("not an account action"),
        },
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
