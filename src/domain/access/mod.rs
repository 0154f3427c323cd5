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
    Target, authorize, authorize_account, authorize_listing, authorize_logout,
    authorize_proxied_read, authorize_publish, login_grant, package_facts, preflight, require_otp,
};
pub use grant::{
    AccountGrant, IssuesTokens, ListingGrant, LoginGrant, LogoutGrant, PackageGrant, ProxyGrant,
    PublishGrant, act,
};
