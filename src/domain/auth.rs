//! Who is calling: every credential path (Bearer token, Basic password, website
//! session) ends in the same `Caller`, whose `Principal` carries the credential and the
//! account's two-factor mode, so the access check treats them alike. Token admission
//! is here: checksum before any lookup, then revoked, expired, CIDR; a stored type,
//! limit or range that cannot be read refuses the token (fail closed).

use base64::Engine;
use secrecy::SecretString;
use std::sync::Arc;

use super::access::{Credential, Limits, OidcScope, Principal, TokenKind, TokenOrigin};
use super::credentials;
use super::{Error, Result};
use crate::app::App;
use crate::cidr::{CidrList, ClientAddr};
use crate::crypto::token_format::PlainToken;
use crate::store::{TokenRow, UserRow};

/// An authenticated request's identity.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with the store's read cache: a request clones no rows.
    pub user: Arc<UserRow>,
    pub principal: Principal,
    /// The token used, if any.
    pub token: Option<Arc<TokenRow>>,
    pub ip: ClientAddr,
    /// The `npm-otp` header (or the web form's one-time password).
    pub otp: Option<String>,
}

impl Caller {
    pub fn ip_text(&self) -> String {
        self.ip.to_string()
    }
}

/// What a token row says about its use, read with every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub kind: TokenKind,
    pub origin: TokenOrigin,
    pub limits: Option<Limits>,
    pub cidr: Option<CidrList>,
    /// A token minted by trusted publishing: what it may do.
    pub oidc: Option<OidcScope>,
}

/// A token whose stored settings cannot be read: refused everywhere.
const UNREADABLE: &str = "This token's stored settings cannot be read, so it is refused; revoke it and create a new one.";

impl TokenSettings {
    /// Reads the type, granular limits and CIDR ranges of a stored token.
    pub fn of(row: &TokenRow) -> Result<TokenSettings, &'static str> {
        let kind = row.kind.get().ok_or(UNREADABLE)?;
        // An origin this build does not know might be one with rules of its own.
        let origin = row.origin.get().ok_or(UNREADABLE)?;
        let limits = match row.limits.as_deref() {
            None => None,
            Some(text) => Some(serde_json::from_str::<Limits>(text).map_err(|_| UNREADABLE)?),
        };
        let cidr = match row.cidr.as_deref() {
            None => None,
            Some(text) => {
                let entries: Vec<String> = serde_json::from_str(text).map_err(|_| UNREADABLE)?;
                // An empty stored list would read as "no limit": refuse it instead.
                Some(
                    CidrList::parse_entries(&entries)
                        .map_err(|_| UNREADABLE)?
                        .ok_or(UNREADABLE)?,
                )
            }
        };
        // A trusted-publishing token acts only through its scope; without a
        // readable one it is refused, never taken for the plain type it also stores.
        let oidc = match (origin, row.oidc.as_deref()) {
            (TokenOrigin::Oidc, Some(text)) => {
                Some(serde_json::from_str::<OidcScope>(text).map_err(|_| UNREADABLE)?)
            }
            (TokenOrigin::Oidc, None) => return Err(UNREADABLE),
            (_, None) => None,
            (_, Some(_)) => return Err(UNREADABLE),
        };
        Ok(TokenSettings {
            kind,
            origin,
            limits,
            cidr,
            oidc,
        })
    }
}

/// What to do about a token that no longer works.
const LOG_IN_AGAIN: &str = "log in again with `npm login` or use another token";

/// A moment as people read it: `2026-11-30 15:04 UTC`.
fn when(ms: i64) -> String {
    let iso = crate::npm::packument::iso_time(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// Why a token row may not be used now; a pure function of the row, address and time.
/// The messages name the token by its visible prefix only, never its secret part.
pub fn admit(row: &TokenRow, ip: ClientAddr, now: i64) -> Result<TokenSettings> {
    let token = &row.display_prefix;
    if let Some(at) = row.revoked_at {
        return Err(Error::TokenRefused(match &row.revoked_reason {
            Some(reason) => format!(
                "The token {token}... was revoked by the registry on {}: {reason}; {LOG_IN_AGAIN}.",
                when(at)
            ),
            None => format!(
                "The token {token}... was revoked on {}; {LOG_IN_AGAIN}.",
                when(at)
            ),
        }));
    }
    if let Some(at) = row.expires_at.filter(|t| *t <= now)
        && row.replaced_by.is_some()
    {
        return Err(Error::TokenRefused(format!(
            "The token {token}... was replaced by rotation and stopped working on {}; \
             use its successor.",
            when(at)
        )));
    }
    if let Some(at) = row.expires_at.filter(|t| *t <= now) {
        return Err(Error::TokenRefused(format!(
            "The token {token}... expired on {}; {LOG_IN_AGAIN}.",
            when(at)
        )));
    }
    let settings = TokenSettings::of(row).map_err(|m| Error::TokenRefused(m.into()))?;
    if let Some(list) = &settings.cidr
        && !list.permits(ip)
    {
        return Err(Error::IpNotAllowed(ip.to_string()));
    }
    Ok(settings)
}

fn principal_for(user: &UserRow, credential: Credential) -> Principal {
    Principal {
        credential,
        tfa: user.tfa_mode(),
    }
}

/// Authenticates a bearer token.
pub async fn authenticate_token(app: &App, text: &str, ip: ClientAddr) -> Result<Caller> {
    app.metrics.token_checks.inc();
    let token = PlainToken::parse(text.trim()).map_err(|e| {
        app.metrics.auth_failure("malformed_token");
        Error::TokenRefused(format!(
            "This is not a Tessera token ({e}); {LOG_IN_AGAIN}."
        ))
    })?;
    let hash = token.hash(&app.keys.token_hash);
    // One indexed read: the token by its keyed hash, joined with its owner. The
    // embedded store answers it from memory until the next write (store::read_cache),
    // so a revocation still applies to the very next request.
    let Some((row, user)) = app.store.token_and_user_by_hash(hash.as_bytes()).await? else {
        app.metrics.auth_failure("unknown_token");
        return Err(Error::TokenRefused(format!(
            "This registry does not know the token {}...; {LOG_IN_AGAIN}.",
            token.display_prefix()
        )));
    };
    let settings = match admit(&row, ip, app.now()) {
        Ok(s) => s,
        Err(e) => {
            app.metrics.auth_failure(match &e {
                Error::IpNotAllowed(_) => "cidr",
                _ => "revoked_or_expired",
            });
            return Err(e);
        }
    };
    app.usage.record(&row, ip, app.now());
    let credential = match settings.oidc {
        Some(scope) => Credential::Oidc(scope),
        None => Credential::Token {
            kind: settings.kind,
            limits: settings.limits,
        },
    };
    let principal = principal_for(&user, credential);
    Ok(Caller {
        user,
        principal,
        token: Some(row),
        ip,
        otp: None,
    })
}

/// Authenticates a username and password (HTTP Basic). Throttled like every
/// password check; the resulting caller can only do what `access` lets a password do.
pub async fn authenticate_password(
    app: &App,
    name: &str,
    password: &SecretString,
    ip: ClientAddr,
) -> Result<Caller> {
    let user = app.store.user_by_name(name).await?;
    credentials::check_password(
        app,
        user.as_ref(),
        password,
        ip,
        "Incorrect username or password.",
    )
    .await?;
    let user = user.ok_or_else(|| Error::BadPassword("Incorrect username or password.".into()))?;
    let principal = principal_for(&user, Credential::Password);
    Ok(Caller {
        user: Arc::new(user),
        principal,
        token: None,
        ip,
        otp: None,
    })
}

/// A web-session caller (the session has passed every factor).
pub fn session_caller(user: UserRow, ip: ClientAddr) -> Caller {
    let principal = principal_for(&user, Credential::Session);
    Caller {
        user: Arc::new(user),
        principal,
        token: None,
        ip,
        otp: None,
    }
}

/// Authenticates an `Authorization` header value. `Ok(None)` when absent.
pub async fn authenticate_header(
    app: &App,
    header: Option<&str>,
    ip: ClientAddr,
) -> Result<Option<Caller>> {
    let Some(value) = header else { return Ok(None) };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return authenticate_token(app, rest, ip).await.map(Some);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::BadPassword("Malformed basic credentials.".into()))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or_else(|| Error::BadPassword("Malformed basic credentials.".into()))?;
        let password = SecretString::from(password.to_owned());
        return authenticate_password(app, name, &password, ip)
            .await
            .map(Some);
    }
    Err(Error::Unauthenticated(
        "Unsupported authorization scheme.".into(),
    ))
}
