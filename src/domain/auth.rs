//! Who is calling: turns an `Authorization` header (Bearer token or Basic password)
//! into a `Caller`, applying the token's admission rules (checksum before any lookup,
//! revoked, expired, CIDR).

use base64::Engine;
use std::net::IpAddr;
use std::sync::Arc;

use super::access::{Credential, Limits, Principal, TfaMode, TokenKind};
use super::{Error, Result};
use crate::app::App;
use crate::auth::cidr::CidrList;
use crate::auth::password::verify_password;
use crate::auth::token::PlainToken;
use crate::store::{TokenRow, UserRow};

/// An authenticated request's identity.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with the store's read cache: a request clones no rows.
    pub user: Arc<UserRow>,
    pub principal: Principal,
    /// The token used, if any.
    pub token: Option<Arc<TokenRow>>,
    pub ip: IpAddr,
    /// The `npm-otp` header (or the web form's one-time password).
    pub otp: Option<String>,
}

impl Caller {
    pub fn ip_text(&self) -> String {
        self.ip.to_string()
    }
}

/// Why a token row may not be used now; a pure function of the row, address and time.
pub fn admit(row: &TokenRow, ip: IpAddr, now: i64) -> Result<()> {
    if row.revoked_at.is_some() {
        return Err(Error::Unauthenticated(
            "This token has been revoked.".into(),
        ));
    }
    if row.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::Unauthenticated("This token has expired.".into()));
    }
    if let Some(list) = cidr_of(row)
        && !list.contains(ip)
    {
        return Err(Error::IpNotAllowed(
            crate::auth::cidr::canonical(ip).to_string(),
        ));
    }
    Ok(())
}

/// The CIDR list stored with a token.
pub fn cidr_of(row: &TokenRow) -> Option<CidrList> {
    let entries: Vec<String> = serde_json::from_str(row.cidr.as_deref()?).ok()?;
    CidrList::parse_entries(&entries).ok().flatten()
}

/// The granular limits stored with a token.
pub fn limits_of(row: &TokenRow) -> Option<Limits> {
    serde_json::from_str(row.limits.as_deref()?).ok()
}

fn principal_for(user: &UserRow, credential: Credential) -> Principal {
    Principal {
        credential,
        tfa: TfaMode::from_row(user.tfa_mode.as_deref(), user.tfa_pending != 0),
    }
}

/// Authenticates a bearer token.
pub async fn authenticate_token(app: &App, text: &str, ip: IpAddr) -> Result<Caller> {
    app.metrics.token_checks.inc();
    let token = PlainToken::parse(text.trim()).map_err(|e| {
        app.metrics.auth_failure("malformed_token");
        Error::Unauthenticated(format!("Invalid token: {e}."))
    })?;
    let hash = token.hash(&app.keys.token_hash);
    // One indexed read: the token by its keyed hash, joined with its owner. The
    // embedded store answers it from memory until the next write (store::read_cache),
    // so a revocation still applies to the very next request.
    let Some((row, user)) = app.store.token_and_user_by_hash(hash.as_bytes()).await? else {
        app.metrics.auth_failure("unknown_token");
        return Err(Error::Unauthenticated("Unknown token.".into()));
    };
    if let Err(e) = admit(&row, ip, app.now()) {
        app.metrics.auth_failure(match &e {
            Error::IpNotAllowed(_) => "cidr",
            _ => "revoked_or_expired",
        });
        return Err(e);
    }
    app.usage.record(&row, ip, app.now());
    let kind = TokenKind::parse(&row.kind).unwrap_or(TokenKind::ReadOnly);
    let principal = principal_for(
        &user,
        Credential::Token {
            kind,
            limits: limits_of(&row),
        },
    );
    Ok(Caller {
        user,
        principal,
        token: Some(row),
        ip,
        otp: None,
    })
}

/// Authenticates a username and password.
pub async fn authenticate_password(
    app: &App,
    name: &str,
    password: &str,
    ip: IpAddr,
) -> Result<Caller> {
    let user = app.store.user_by_name(name).await?;
    let ok = match &user {
        Some(u) => verify_password(password, &u.password_hash),
        None => {
            // Spend the same time on unknown users so timing does not reveal names.
            let _ = verify_password(password, DUMMY_HASH);
            false
        }
    };
    match user {
        Some(user) if ok => {
            let principal = principal_for(&user, Credential::Password);
            Ok(Caller {
                user: Arc::new(user),
                principal,
                token: None,
                ip,
                otp: None,
            })
        }
        _ => {
            app.metrics.auth_failure("bad_password");
            Err(Error::BadPassword("Incorrect username or password.".into()))
        }
    }
}

const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0f8Ajd8nLs3IxK0d/L0Zb1QyQqm8OQx1aQZWQ0CwPbw";

/// A web-session caller.
pub fn session_caller(user: UserRow, ip: IpAddr) -> Caller {
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
    ip: IpAddr,
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
        return authenticate_password(app, name, password, ip)
            .await
            .map(Some);
    }
    Err(Error::Unauthenticated(
        "Unsupported authorization scheme.".into(),
    ))
}
