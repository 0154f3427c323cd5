//! The one access check. `decide` (in `decision`) is a pure function of (who, with
//! what credential, doing what, to which package); `gate` loads the facts, runs it,
//! checks a one-time password when asked and hands out a grant (`grant`) that the
//! store requires for every read or write of protected rows. No other module makes
//! grants, so no operation reaches protected data without the decision.

mod decision;
pub mod gate;
pub mod grant;

pub use decision::*;
pub use gate::{
    OrgTarget, Target, authorize, authorize_account, authorize_listing, authorize_logout,
    authorize_org, authorize_proxied_read, authorize_publish, authorize_stage_approval,
    authorize_trust_exchange, exposed_token_grant, login_grant, may_read_maintained_restricted,
    org_facts, org_preflight, package_facts, package_facts_of_user, preflight, require_otp,
};
pub use grant::{
    AccountAct, AccountGrant, ExposedTokenGrant, IssuesTokens, ListingGrant, LoginGrant,
    LogoutGrant, ManagesOrg, OrgGrant, PackageGrant, ProxyGrant, PublishGrant, TrustGrant,
    ViewsCredentials, act,
};
