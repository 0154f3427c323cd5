//! Proofs of an access decision. A grant can only be made inside `domain::access`
//! (its fields are private, its constructors `pub(super)`), and every store method
//! that reads or writes protected rows takes one, taking the row ids it works on from
//! the grant itself. So no code path reaches a package's contents, a token list or an
//! account setting without the decision, and a grant for one package or account
//! cannot be spent on another.

use std::marker::PhantomData;
use std::sync::Arc;

use super::Action;
use crate::npm::name::PackageName;
use crate::store::PackageRow;

mod sealed {
    pub trait Sealed {}
}

/// An action a grant can be issued for.
pub trait Act: sealed::Sealed {
    const ACTION: Action;
}

/// Actions on one existing package.
pub trait PackageAct: Act {}

/// Actions on the caller's own account.
pub trait AccountAct: Act {}

/// Actions on an organization.
pub trait OrgAct: Act {}

/// Marker types, one per action, so a store method names the action it serves.
pub mod act {
    use super::{AccountAct, Act, Action, OrgAct, PackageAct, sealed::Sealed};

    macro_rules! acts {
        ($kind:ident: $($name:ident),*) => {$(
            #[derive(Debug)]
            pub struct $name;
            impl Sealed for $name {}
            impl Act for $name {
                const ACTION: Action = Action::$name;
            }
            impl $kind for $name {}
        )*};
    }

    acts!(PackageAct: ReadPackage, Star, Unpublish, Deprecate, DistTag, ChangeAccess, ChangeOwners, ChangeMfaPolicy, ReadPackageCredentials, StagePublish, ReviewStage, ApproveStage, ReadTrust, ManageTrust);
    acts!(AccountAct: ReadProfile, ChangeProfile, ChangeTwoFactor, ListTokens, CreateToken, RevokeToken, ApproveWebLogin, ReadSecurityLog, CreateOrg);
    acts!(OrgAct: ReadOrg, ManageOrg, ManageOrgOwners, AuditOrg);
}

/// Permission to do `A` to one existing package.
pub struct PackageGrant<A: PackageAct> {
    row: Arc<PackageRow>,
    name: PackageName,
    user_id: Option<i64>,
    _act: PhantomData<fn() -> A>,
}

impl<A: PackageAct> std::fmt::Debug for PackageGrant<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackageGrant<{:?}>({})", A::ACTION, self.name)
    }
}

impl<A: PackageAct> PackageGrant<A> {
    pub(super) fn new(row: Arc<PackageRow>, name: PackageName, user_id: Option<i64>) -> Self {
        PackageGrant {
            row,
            name,
            user_id,
            _act: PhantomData,
        }
    }

    pub fn package_id(&self) -> i64 {
        self.row.id
    }

    pub fn name(&self) -> &PackageName {
        &self.name
    }

    /// The package row as read for the decision.
    pub fn row(&self) -> &PackageRow {
        &self.row
    }

    /// The caller's account (none for an anonymous read).
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }
}

/// Permission to publish one version of a package that may not exist yet.
#[derive(Debug)]
pub struct PublishGrant {
    row: Option<Arc<PackageRow>>,
    name: PackageName,
    user_id: i64,
}

impl PublishGrant {
    pub(super) fn new(row: Option<Arc<PackageRow>>, name: PackageName, user_id: i64) -> Self {
        PublishGrant { row, name, user_id }
    }

    pub fn name(&self) -> &PackageName {
        &self.name
    }

    /// The existing package, or `None` for a first publish.
    pub fn row(&self) -> Option<&PackageRow> {
        self.row.as_deref()
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Permission to do `A` to the caller's own account.
pub struct AccountGrant<A: AccountAct> {
    user_id: i64,
    _act: PhantomData<fn() -> A>,
}

impl<A: AccountAct> std::fmt::Debug for AccountGrant<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountGrant<{:?}>(user {})", A::ACTION, self.user_id)
    }
}

impl<A: AccountAct> AccountGrant<A> {
    pub(super) fn new(user_id: i64) -> Self {
        AccountGrant {
            user_id,
            _act: PhantomData,
        }
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Permission to do `A` in one organization, for the caller (whose role is kept).
pub struct OrgGrant<A: OrgAct> {
    org_id: i64,
    name: String,
    user_id: i64,
    _act: PhantomData<fn() -> A>,
}

impl<A: OrgAct> std::fmt::Debug for OrgGrant<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrgGrant<{:?}>({})", A::ACTION, self.name)
    }
}

impl<A: OrgAct> OrgGrant<A> {
    pub(super) fn new(org_id: i64, name: String, user_id: i64) -> Self {
        OrgGrant {
            org_id,
            name,
            user_id,
            _act: PhantomData,
        }
    }

    pub fn org_id(&self) -> i64 {
        self.org_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member acting.
    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Grants that may change an organization's members and teams.
pub trait ManagesOrg {
    fn org_id(&self) -> i64;
    fn actor(&self) -> i64;
}

impl ManagesOrg for OrgGrant<act::ManageOrg> {
    fn org_id(&self) -> i64 {
        self.org_id
    }
    fn actor(&self) -> i64 {
        self.user_id
    }
}

impl ManagesOrg for OrgGrant<act::ManageOrgOwners> {
    fn org_id(&self) -> i64 {
        self.org_id
    }
    fn actor(&self) -> i64 {
        self.user_id
    }
}

/// Permission to list packages (search, recent, a user's packages). Each row a
/// listing returns is a candidate: it is shown only after its own read decision.
#[derive(Debug)]
pub struct ListingGrant {
    viewer: Option<i64>,
}

impl ListingGrant {
    pub(super) fn new(viewer: Option<i64>) -> Self {
        ListingGrant { viewer }
    }

    pub fn viewer(&self) -> Option<i64> {
        self.viewer
    }
}

/// Permission to read a package that does not exist here and is served from an
/// uplink: proxied packages are public packages, so this is the read decision for a
/// public package (anonymous where anonymous reads are allowed, any valid credential
/// otherwise; a token's CIDR ranges and expiry were applied when it authenticated).
/// A copy proves no more than the original: the same public name.
#[derive(Debug, Clone)]
pub struct ProxyGrant {
    name: PackageName,
}

impl ProxyGrant {
    pub(super) fn new(name: PackageName) -> Self {
        ProxyGrant { name }
    }

    pub fn name(&self) -> &PackageName {
        &self.name
    }
}

/// Permission to issue a login token to one account: made only from a verified
/// password (and one-time password when the account has 2FA), or from a browser
/// login its owner approved on the website.
#[derive(Debug)]
pub struct LoginGrant {
    user_id: i64,
}

impl LoginGrant {
    pub(super) fn new(user_id: i64) -> Self {
        LoginGrant { user_id }
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }
}

/// Permission for a token to revoke itself (`npm logout`), whatever its type.
#[derive(Debug)]
pub struct LogoutGrant {
    user_id: i64,
    token_id: i64,
}

impl LogoutGrant {
    pub(super) fn new(user_id: i64, token_id: i64) -> Self {
        LogoutGrant { user_id, token_id }
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }

    pub fn token_id(&self) -> i64 {
        self.token_id
    }
}

/// Permission to revoke one token, whoever owns it, made from its plain value: a
/// token found exposed (reported to the leak endpoint, or inside a published
/// tarball) may be killed by anyone who holds it, since holding it is all using it
/// takes. Carries the keyed hash only.
pub struct ExposedTokenGrant {
    hash: [u8; 32],
}

impl std::fmt::Debug for ExposedTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExposedTokenGrant(<hash>)")
    }
}

impl ExposedTokenGrant {
    pub(super) fn new(hash: [u8; 32]) -> Self {
        ExposedTokenGrant { hash }
    }

    pub fn hash(&self) -> &[u8] {
        &self.hash
    }
}

/// Permission to mint one trusted-publishing token: the configuration matched a
/// verified id token, and the decision for the token to be minted (the configuring
/// account's live rights, narrowed to one package) allows it.
#[derive(Debug)]
pub struct TrustGrant {
    user_id: i64,
    package_id: i64,
    scope: super::OidcScope,
}

impl TrustGrant {
    pub(super) fn new(user_id: i64, package_id: i64, scope: super::OidcScope) -> Self {
        TrustGrant {
            user_id,
            package_id,
            scope,
        }
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }

    pub fn package_id(&self) -> i64 {
        self.package_id
    }

    pub fn scope(&self) -> &super::OidcScope {
        &self.scope
    }
}

impl IssuesTokens for TrustGrant {
    fn token_owner(&self) -> i64 {
        self.user_id
    }
}

/// Grants that may store a new token for an account.
pub trait IssuesTokens {
    fn token_owner(&self) -> i64;
}

impl IssuesTokens for AccountGrant<act::CreateToken> {
    fn token_owner(&self) -> i64 {
        self.user_id
    }
}

impl IssuesTokens for LoginGrant {
    fn token_owner(&self) -> i64 {
        self.user_id
    }
}

/// Grants that may see other accounts' tokens that can publish: a package's
/// credentials view, an organization's audit.
pub trait ViewsCredentials {
    /// The packages (by name) the view covers, or `None` for "the grant's scope".
    fn view_scope(&self) -> CredentialsScope<'_>;
}

/// What a credentials view covers.
#[derive(Debug, Clone, Copy)]
pub enum CredentialsScope<'a> {
    Package(i64),
    Org(&'a str),
}

impl ViewsCredentials for PackageGrant<act::ReadPackageCredentials> {
    fn view_scope(&self) -> CredentialsScope<'_> {
        CredentialsScope::Package(self.row.id)
    }
}

impl ViewsCredentials for OrgGrant<act::AuditOrg> {
    fn view_scope(&self) -> CredentialsScope<'_> {
        CredentialsScope::Org(&self.name)
    }
}
