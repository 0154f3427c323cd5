//! The one access check. `decide` is a pure function of (who, with what credential,
//! doing what, to which package) and every endpoint reaches it through
//! `domain::authorize`. The table of tests below covers every type × action.

use crate::npm::name::PackageName;

/// The three token types of the seed. A classic type is a preset of granular limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    ReadOnly,
    Automation,
    Publish,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::ReadOnly => "read-only",
            TokenKind::Automation => "automation",
            TokenKind::Publish => "publish",
        }
    }

    pub fn parse(text: &str) -> Option<TokenKind> {
        match text {
            "read-only" | "readonly" => Some(TokenKind::ReadOnly),
            "automation" => Some(TokenKind::Automation),
            "publish" => Some(TokenKind::Publish),
            _ => None,
        }
    }
}

/// Permission a credential holds on one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PackagePermission {
    NoAccess,
    ReadOnly,
    ReadWrite,
}

impl PackagePermission {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "no-access" => Some(Self::NoAccess),
            "read-only" => Some(Self::ReadOnly),
            "read-write" => Some(Self::ReadWrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAccess => "no-access",
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }
}

/// Granular limits of a token (npm's granular access tokens).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub packages: Vec<String>,
    /// Scope names without `@`.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub packages_all: bool,
    /// `read-only`, `read-write` or `no-access`.
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub orgs: Vec<String>,
    #[serde(default)]
    pub orgs_permission: Option<String>,
    #[serde(default)]
    pub bypass_2fa: bool,
}

impl Limits {
    /// Whether the limits restrict which packages the token reaches.
    pub fn lists_packages(&self) -> bool {
        !self.packages_all && (!self.packages.is_empty() || !self.scopes.is_empty())
    }

    fn covers(&self, name: &PackageName) -> bool {
        !self.lists_packages()
            || self.packages.iter().any(|p| p == name.as_str())
            || name
                .scope()
                .is_some_and(|s| self.scopes.iter().any(|x| x == s))
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A website session (interactive, like a publish token).
    Session,
    /// HTTP Basic with the account password.
    Password,
    Token {
        kind: TokenKind,
        limits: Option<Limits>,
    },
}

/// The account's two-factor mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfaMode {
    Off,
    AuthOnly,
    AuthAndWrites,
}

impl TfaMode {
    pub fn from_row(mode: Option<&str>, pending: bool) -> TfaMode {
        match (mode, pending) {
            (Some("auth-only"), false) => TfaMode::AuthOnly,
            (Some("auth-and-writes"), false) => TfaMode::AuthAndWrites,
            _ => TfaMode::Off,
        }
    }
}

/// An authenticated caller as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub credential: Credential,
    pub tfa: TfaMode,
}

impl Principal {
    /// The effective token type (sessions and passwords act as publish).
    pub fn effective_kind(&self) -> TokenKind {
        match &self.credential {
            Credential::Token { kind, .. } => *kind,
            _ => TokenKind::Publish,
        }
    }

    /// Whether this credential skips two-factor prompts (automation tokens).
    pub fn bypasses_2fa(&self) -> bool {
        matches!(self.effective_kind(), TokenKind::Automation)
    }

    /// The permission this credential carries for `name`, before ownership.
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
                let granted = l
                    .permission
                    .as_deref()
                    .and_then(PackagePermission::parse)
                    .unwrap_or(PackagePermission::ReadWrite);
                granted.min(ceiling)
            }
            _ => ceiling,
        }
    }
}

/// Everything a request can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Download a packument or tarball, or see it in search.
    ReadPackage,
    Publish,
    Unpublish,
    Deprecate,
    DistTag,
    /// Visibility (`npm access set status=`).
    ChangeAccess,
    ChangeOwners,
    /// Per-package publishing 2FA policy.
    ChangeMfaPolicy,
    ReadProfile,
    ChangeProfile,
    ChangeTwoFactor,
    ListTokens,
    CreateToken,
    RevokeToken,
}

impl Action {
    fn is_package_write(self) -> bool {
        matches!(
            self,
            Action::Publish | Action::Unpublish | Action::Deprecate | Action::DistTag
        )
    }

    fn is_package_setting(self) -> bool {
        matches!(
            self,
            Action::ChangeAccess | Action::ChangeOwners | Action::ChangeMfaPolicy
        )
    }
}

/// What the policy knows about the target package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageFacts {
    pub exists: bool,
    pub public: bool,
    /// The caller maintains it (live: losing rights takes them from tokens too).
    pub is_maintainer: bool,
    /// For a new package: the caller may create it (free name, own scope).
    pub may_create: bool,
    pub publish_requires_tfa: bool,
    pub automation_overrides_tfa: bool,
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

fn forbid(msg: impl Into<String>) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.into()))
}

/// Decides a request. `anonymous_read` is the server-wide setting.
pub fn decide(
    who: Option<&Principal>,
    action: Action,
    package: Option<(&PackageName, &PackageFacts)>,
    anonymous_read: bool,
) -> Decision {
    if action == Action::ReadPackage {
        return decide_read(who, package, anonymous_read);
    }
    let Some(who) = who else {
        return Decision::Deny(Denial::Unauthenticated);
    };
    let kind = who.effective_kind();
    let two_factor_on = who.tfa != TfaMode::Off;
    let writes_need_otp = who.tfa == TfaMode::AuthAndWrites && !who.bypasses_2fa();

    if action.is_package_write() || action.is_package_setting() {
        let Some((name, facts)) = package else {
            return forbid("no package given");
        };
        if facts.exists && !facts.public && !facts.is_maintainer {
            return Decision::Deny(Denial::Hidden);
        }
        if kind == TokenKind::ReadOnly {
            return forbid("This token is read-only and cannot change packages");
        }
        if action.is_package_setting() && kind != TokenKind::Publish {
            return forbid("Automation tokens cannot change package settings; use a publish token");
        }
        if who.permission_for(name) < PackagePermission::ReadWrite {
            return forbid(format!("This token has no write access to {name}"));
        }
        if facts.exists && !facts.is_maintainer {
            return forbid(format!(
                "You do not have permission to publish \"{name}\". Are you logged in as the correct user?"
            ));
        }
        if !facts.exists {
            if action != Action::Publish {
                return Decision::Deny(Denial::Hidden);
            }
            if !facts.may_create {
                return forbid(format!(
                    "You do not have permission to publish \"{name}\": its scope belongs to another user"
                ));
            }
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
        if action == Action::ChangeMfaPolicy && two_factor_on {
            return Decision::AllowWithOtp;
        }
        return if writes_need_otp {
            Decision::AllowWithOtp
        } else {
            Decision::Allow
        };
    }

    match action {
        Action::ReadProfile => Decision::Allow,
        Action::ChangeProfile | Action::ListTokens | Action::RevokeToken => {
            if kind != TokenKind::Publish {
                return forbid(format!(
                    "A {} token cannot manage tokens or change user settings",
                    kind.as_str()
                ));
            }
            if writes_need_otp && action != Action::ListTokens {
                Decision::AllowWithOtp
            } else {
                Decision::Allow
            }
        }
        Action::CreateToken | Action::ChangeTwoFactor => {
            if kind != TokenKind::Publish {
                return forbid(format!(
                    "A {} token cannot manage tokens or change user settings",
                    kind.as_str()
                ));
            }
            if two_factor_on {
                Decision::AllowWithOtp
            } else {
                Decision::Allow
            }
        }
        _ => unreachable!("package actions handled above"),
    }
}

fn decide_read(
    who: Option<&Principal>,
    package: Option<(&PackageName, &PackageFacts)>,
    anonymous_read: bool,
) -> Decision {
    let Some((name, facts)) = package else {
        return Decision::Allow;
    };
    if !facts.exists {
        return Decision::Deny(Denial::Hidden);
    }
    match who {
        None if facts.public && anonymous_read => Decision::Allow,
        None if facts.public => Decision::Deny(Denial::Unauthenticated),
        None => Decision::Deny(Denial::Hidden),
        Some(_) if facts.public => Decision::Allow,
        Some(p) if facts.is_maintainer && p.permission_for(name) >= PackagePermission::ReadOnly => {
            Decision::Allow
        }
        Some(_) => Decision::Deny(Denial::Hidden),
    }
}

#[cfg(test)]
mod tests;
