//! Token lifecycle: create (shown once), list (masked), revoke. A classic type is a
//! preset of the granular settings: read-only, automation (read-write + bypass 2FA)
//! and publish (read-write). Granular requests are validated strictly: an unknown
//! type or permission, or a selection that selects nothing, is refused at creation.

use secrecy::SecretString;

use super::access::{
    self, AccountGrant, IssuesTokens, Limits, LoginGrant, PackagePermission, TokenKind,
    TokenOrigin, act,
};
use super::auth::TokenSettings;
use super::{Caller, Error, Result, credentials, security_log};
use crate::app::App;
use crate::cidr::CidrList;
use crate::crypto::token_format::{PlainToken, random_base62};
use crate::store::{NewToken, SecurityEventKind, StoreError, TokenRow, UserRow};

/// A token-creation request, from the npm API, our CLI or the website.
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub password: SecretString,
    /// The `type` asked for by name (`read-only`, `automation`, `publish`).
    pub kind: Option<String>,
    /// Legacy `readonly` flag.
    pub readonly: bool,
    /// Tessera's explicit automation flag.
    pub automation: bool,
    pub packages: Vec<String>,
    pub scopes: Vec<String>,
    pub packages_all: bool,
    /// `read-only`, `read-write` or `no-access`.
    pub permission: Option<String>,
    pub orgs: Vec<String>,
    pub orgs_permission: Option<String>,
    pub expires_days: Option<i64>,
    pub cidr: Vec<String>,
    pub bypass_2fa: bool,
}

/// A freshly created token: the only place the plain value exists.
pub struct Created {
    pub plain: PlainToken,
    pub row: TokenRow,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("plain", &self.plain)
            .field("key", &self.row.key)
            .finish()
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

fn parse_permission(field: &str, text: &str) -> Result<PackagePermission> {
    text.parse().map_err(|_| {
        invalid(format!(
            "invalid {field} {text:?}: use read-only, read-write or no-access"
        ))
    })
}

/// The type and limits a request asks for, or a 400 saying what is wrong.
pub fn classify(req: &CreateRequest) -> Result<(TokenKind, Option<Limits>)> {
    let named = match req.kind.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<TokenKind>().map_err(|_| {
            invalid(format!(
                "unknown token type {text:?}: use read-only, automation or publish"
            ))
        })?),
    };
    let flagged = match (req.readonly, req.automation) {
        (true, true) => return Err(invalid("a token cannot be both read-only and automation")),
        (true, false) => Some(TokenKind::ReadOnly),
        (false, true) => Some(TokenKind::Automation),
        (false, false) => None,
    };
    if let (Some(a), Some(b)) = (named, flagged)
        && a != b
    {
        return Err(invalid(format!(
            "the token type {:?} contradicts the {} flag",
            a.as_str(),
            b.as_str()
        )));
    }
    let permission = req
        .permission
        .as_deref()
        .map(|p| parse_permission("packages_and_scopes_permission", p))
        .transpose()?;
    let orgs_permission = req
        .orgs_permission
        .as_deref()
        .map(|p| parse_permission("orgs_permission", p))
        .transpose()?;
    let scopes: Vec<String> = req
        .scopes
        .iter()
        .map(|s| s.trim().trim_start_matches('@').to_owned())
        .collect();
    for s in &scopes {
        crate::npm::name::PackageName::parse(&format!("@{s}/x"))
            .map_err(|_| invalid(format!("invalid scope {s:?}")))?;
    }
    for p in &req.packages {
        crate::npm::name::PackageName::parse(p).map_err(|e| invalid(e.to_string()))?;
    }
    for o in &req.orgs {
        crate::npm::name::PackageName::parse(&format!("@{o}/x"))
            .map_err(|_| invalid(format!("invalid organization {o:?}")))?;
    }
    let selects_packages = req.packages_all || !req.packages.is_empty() || !scopes.is_empty();
    let granular = selects_packages
        || permission.is_some()
        || !req.orgs.is_empty()
        || orgs_permission.is_some()
        || req.bypass_2fa;
    if !granular {
        let kind = named.or(flagged).unwrap_or(TokenKind::Publish);
        return Ok((kind, None));
    }
    // A selection is an allow-list: refuse one that would grant nothing.
    if (permission.is_some() || req.bypass_2fa) && !selects_packages {
        return Err(invalid(
            "a granular token must select the packages it reaches: list them \
             (--packages, --scopes) or choose all of them (--packages-all)",
        ));
    }
    if !req.orgs.is_empty() && orgs_permission.is_none() {
        return Err(invalid(
            "choose what the token may do in the listed organizations (--orgs-permission)",
        ));
    }
    if orgs_permission.is_some() && req.orgs.is_empty() {
        return Err(invalid(
            "--orgs-permission needs the organizations it applies to (--orgs)",
        ));
    }
    // A read-only permission makes a read-only token, whatever type was named: it
    // can write nothing, and its type says so.
    let kind = match named.or(flagged) {
        _ if permission == Some(PackagePermission::ReadOnly) => TokenKind::ReadOnly,
        Some(k) => k,
        None if req.bypass_2fa => TokenKind::Automation,
        None => TokenKind::Publish,
    };
    if kind == TokenKind::ReadOnly && req.bypass_2fa {
        return Err(invalid(
            "a read-only token has no writes to bypass two-factor authentication for",
        ));
    }
    let limits = Limits {
        packages: req.packages.clone(),
        scopes,
        packages_all: req.packages_all,
        permission,
        orgs: req.orgs.clone(),
        orgs_permission,
        bypass_2fa: req.bypass_2fa || kind == TokenKind::Automation,
    };
    Ok((kind, Some(limits)))
}

/// Parses and validates a CIDR list; the error carries npm's message.
pub fn parse_cidr(entries: &[String]) -> Result<Option<CidrList>> {
    CidrList::parse_entries(entries).map_err(|e| Error::Invalid(e.to_string()))
}

/// Creates a token for `caller` after the access check (with its one-time password
/// when the account has 2FA) and a re-check of the password.
pub async fn create(
    app: &App,
    caller: &Caller,
    req: CreateRequest,
    origin: TokenOrigin,
) -> Result<Created> {
    let cidr = parse_cidr(&req.cidr)?;
    let (kind, limits) = classify(&req)?;
    let expires_days = match req.expires_days {
        None | Some(0) => None,
        Some(d) if (1..=3650).contains(&d) => Some(d),
        Some(d) => {
            return Err(Error::Invalid(format!(
                "invalid expiry {d}: use 1 to 3650 days"
            )));
        }
    };
    if let Some(n) = &req.name
        && n.chars().count() > 128
    {
        return Err(Error::Invalid(
            "token name is longer than 128 characters".into(),
        ));
    }
    let expires_days = lifetime_under_policy(app, kind, expires_days)?;
    let grant = access::authorize_account::<act::CreateToken>(app, caller).await?;
    credentials::check_password(
        app,
        Some(&caller.user),
        &req.password,
        caller.ip,
        "Incorrect password; no token was created.",
    )
    .await?;
    let now = app.now();
    let expires_at = expires_days.map(|d| now + d * DAY_MS);
    let created = insert(
        app,
        &grant,
        &caller.user,
        Spec {
            name: req.name.as_deref().filter(|n| !n.is_empty()),
            description: req.description.as_deref().filter(|d| !d.is_empty()),
            kind,
            limits: limits.as_ref(),
            cidr: cidr.as_ref(),
            origin,
            expires_at,
        },
    )
    .await?;
    security_log::record(
        app,
        caller.user.id,
        SecurityEventKind::TokenCreated,
        &format!(
            "{} token {} created",
            kind.as_str(),
            created.row.display_prefix
        ),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(created)
}

const DAY_MS: i64 = 86_400_000;

/// Whether a token of this type can write (anything but read-only).
pub fn can_write(kind: TokenKind) -> bool {
    kind != TokenKind::ReadOnly
}

/// The operator's cap on the lifetime of tokens that can write, in days
/// (`max_write_token_days`; `None`: no cap).
pub fn write_cap_days(app: &App) -> Option<i64> {
    let days = app.config.max_write_token_days;
    (days > 0).then_some(days)
}

/// The lifetime (days) a new token gets under the operator's policy: a token that
/// can write and asks for none gets the cap; one asking for more is refused with a
/// message npm prints; read-only tokens are never capped.
pub fn lifetime_under_policy(
    app: &App,
    kind: TokenKind,
    requested_days: Option<i64>,
) -> Result<Option<i64>> {
    let Some(cap) = write_cap_days(app).filter(|_| can_write(kind)) else {
        return Ok(requested_days);
    };
    match requested_days {
        None => Ok(Some(cap)),
        Some(d) if d <= cap => Ok(Some(d)),
        Some(d) => Err(Error::Invalid(format!(
            "This registry lets tokens that can write live at most {cap} days \
             (max_write_token_days), and {d} days were asked for: choose an expiry of \
             {cap} days or fewer (npm token create --expires={cap}), or create a read-only \
             token, which has no cap."
        ))),
    }
}

/// The end of a lifetime that may have to fit under the cap (logins, rotations: the
/// caller did not choose it, so it is shortened rather than refused).
fn capped_expiry(app: &App, kind: TokenKind, now: i64, expires_at: Option<i64>) -> Option<i64> {
    match write_cap_days(app).filter(|_| can_write(kind)) {
        None => expires_at,
        Some(cap) => {
            let limit = now + cap * DAY_MS;
            Some(expires_at.map_or(limit, |at| at.min(limit)))
        }
    }
}

/// What to store for a new token.
pub struct Spec<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub kind: TokenKind,
    pub limits: Option<&'a Limits>,
    pub cidr: Option<&'a CidrList>,
    pub origin: TokenOrigin,
    pub expires_at: Option<i64>,
}

/// Generates and stores a token under a grant that allows it.
async fn insert(
    app: &App,
    grant: &impl IssuesTokens,
    user: &UserRow,
    spec: Spec<'_>,
) -> Result<Created> {
    let now = app.now();
    let limits = spec
        .limits
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(e.into()))?;
    let cidr = spec
        .cidr
        .map(|c| serde_json::to_string(&c.to_strings()))
        .transpose()
        .map_err(|e| Error::Internal(e.into()))?;
    // The key must be unique in its first 8 characters; retry on the rare collision.
    for _ in 0..5 {
        let plain = PlainToken::generate();
        let key = random_base62(24);
        let hash = plain.hash(&app.keys.token_hash);
        let prefix = plain.display_prefix();
        let last_four = plain.last_four();
        let new = NewToken {
            key: &key,
            user_id: user.id,
            hash: hash.as_bytes(),
            display_prefix: &prefix,
            last_four: &last_four,
            name: spec.name,
            description: spec.description,
            kind: spec.kind,
            limits: limits.as_deref(),
            cidr: cidr.as_deref(),
            origin: spec.origin,
            now,
            expires_at: spec.expires_at,
        };
        match app.store.insert_token(grant, &new).await {
            Ok(row) => return Ok(Created { plain, row }),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "could not allocate a unique token key"
    )))
}

/// What to store for a token minted by trusted publishing.
pub struct OidcSpec<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub kind: TokenKind,
    pub limits: &'a Limits,
    pub config_id: &'a str,
    pub scope: &'a access::OidcScope,
    pub expires_at: i64,
}

/// Generates and stores a trusted-publishing token (origin `oidc`) for the account
/// that configured the trust.
pub async fn mint_oidc(
    app: &App,
    grant: &access::TrustGrant,
    user: &UserRow,
    spec: OidcSpec<'_>,
) -> Result<Created> {
    let now = app.now();
    let limits = serde_json::to_string(spec.limits).map_err(|e| Error::Internal(e.into()))?;
    let scope = serde_json::to_string(spec.scope).map_err(|e| Error::Internal(e.into()))?;
    let name: String = spec.name.chars().take(128).collect();
    let description: String = spec.description.chars().take(512).collect();
    for _ in 0..5 {
        let plain = PlainToken::generate();
        let key = random_base62(24);
        let hash = plain.hash(&app.keys.token_hash);
        let prefix = plain.display_prefix();
        let last_four = plain.last_four();
        let new = NewToken {
            key: &key,
            user_id: user.id,
            hash: hash.as_bytes(),
            display_prefix: &prefix,
            last_four: &last_four,
            name: Some(&name),
            description: Some(&description),
            kind: spec.kind,
            limits: Some(&limits),
            cidr: None,
            origin: TokenOrigin::Oidc,
            now,
            expires_at: Some(spec.expires_at),
        };
        match app
            .store
            .insert_oidc_token(grant, &new, spec.config_id, &scope)
            .await
        {
            Ok(row) => return Ok(Created { plain, row }),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "could not allocate a unique token key"
    )))
}

/// Issues the publish-type token a login (`npm login`, password or browser) receives,
/// named after the client.
pub async fn issue_login_token(
    app: &App,
    grant: &LoginGrant,
    user: &UserRow,
    client: &str,
    ip: &str,
) -> Result<Created> {
    // Login tokens can publish: the write-token cap applies to them too.
    let days = app.config.login_token_days;
    let now = app.now();
    let expires_at = capped_expiry(
        app,
        TokenKind::Publish,
        now,
        (days > 0).then(|| now + days * DAY_MS),
    );
    let name = format!("Login from {}", client_name(client));
    let created = insert(
        app,
        grant,
        user,
        Spec {
            name: Some(&name),
            description: None,
            kind: TokenKind::Publish,
            limits: None,
            cidr: None,
            origin: TokenOrigin::Login,
            expires_at,
        },
    )
    .await?;
    security_log::record(
        app,
        user.id,
        SecurityEventKind::Login,
        &format!("signed in: {name}"),
        Some(ip),
    )
    .await;
    Ok(created)
}

/// `npm/11.19.1 node/v20 linux x64 …` → `npm/11.19.1`.
fn client_name(user_agent: &str) -> String {
    let first = user_agent
        .split_whitespace()
        .next()
        .unwrap_or("unknown client");
    first.chars().take(64).collect()
}

/// The caller's tokens, newest first.
pub async fn list(
    app: &App,
    caller: &Caller,
    page: i64,
    per_page: i64,
) -> Result<(Vec<TokenRow>, i64)> {
    let grant = access::authorize_account::<act::ListTokens>(app, caller).await?;
    Ok(app
        .store
        .tokens_of_user(&grant, false, page * per_page, per_page)
        .await?)
}

/// How long the Access Tokens page lists the tokens the registry revoked.
const REVOKED_SHOWN_MS: i64 = 90 * DAY_MS;

/// The caller's tokens the registry revoked (found exposed) in the last 90 days.
pub async fn revoked_by_registry(app: &App, caller: &Caller) -> Result<Vec<TokenRow>> {
    let grant = access::authorize_account::<act::ListTokens>(app, caller).await?;
    Ok(app
        .store
        .registry_revoked_tokens(&grant, app.now() - REVOKED_SHOWN_MS)
        .await?)
}

/// One of the grant's account's tokens by key or full value (revoked ones included).
async fn find_own(
    app: &App,
    grant: &AccountGrant<act::RevokeToken>,
    key_or_token: &str,
) -> Result<TokenRow> {
    find_token_of(app, grant, key_or_token).await
}

/// Revokes one of the caller's tokens by key or by full value. Idempotent: revoking
/// a revoked token succeeds, and only the revocation that took effect is logged.
pub async fn revoke(app: &App, caller: &Caller, key_or_token: &str) -> Result<TokenRow> {
    let grant = access::authorize_account::<act::RevokeToken>(app, caller).await?;
    let row = find_own(app, &grant, key_or_token).await?;
    if app.store.revoke_token(&grant, row.id, app.now()).await? {
        security_log::record(
            app,
            caller.user.id,
            SecurityEventKind::TokenRevoked,
            &format!(
                "{} token {} revoked",
                display_kind(&row),
                row.display_prefix
            ),
            Some(&caller.ip_text()),
        )
        .await;
    }
    Ok(row)
}

/// `npm logout`: a credential may always revoke itself, whatever its type; revoking
/// another token is token management.
pub async fn logout(app: &App, caller: &Caller, token_text: &str) -> Result<()> {
    let hash = PlainToken::parse(token_text)
        .map_err(|_| Error::NotFound("Token not found.".into()))?
        .hash(&app.keys.token_hash);
    let row = app
        .store
        .token_by_hash(hash.as_bytes())
        .await?
        .filter(|r| r.user_id == caller.user.id)
        .ok_or_else(|| Error::NotFound("Token not found.".into()))?;
    let revoked = match access::authorize_logout(caller).filter(|g| g.token_id() == row.id) {
        Some(own) => app.store.revoke_token(&own, row.id, app.now()).await?,
        None => {
            let grant = access::authorize_account::<act::RevokeToken>(app, caller).await?;
            app.store.revoke_token(&grant, row.id, app.now()).await?
        }
    };
    if revoked {
        security_log::record(
            app,
            caller.user.id,
            SecurityEventKind::Logout,
            &format!("token {} logged out", row.display_prefix),
            Some(&caller.ip_text()),
        )
        .await;
    }
    Ok(())
}

/// A rotation: the token to replace, the password (as for a creation) and how long
/// the old token keeps working (the operator's `token_rotation_overlap` when unsaid).
#[derive(Debug, Default)]
pub struct RotateRequest {
    pub key_or_token: String,
    pub password: SecretString,
    pub overlap: Option<std::time::Duration>,
}

/// The successor (shown once) and the token it replaces.
#[derive(Debug)]
pub struct Rotated {
    pub created: Created,
    pub old: TokenRow,
    /// When the old token stops working.
    pub old_stops_at: i64,
}

/// Replaces one of the caller's tokens by a successor with the same settings (type,
/// limits, ranges, name, description, lifetime). The old token keeps working for
/// the overlap window, then stops (its expiry is moved to the window's end). Needs
/// what a creation needs: the token-creation decision (one-time password with 2FA)
/// and the password.
pub async fn rotate(app: &App, caller: &Caller, req: RotateRequest) -> Result<Rotated> {
    let overlap = req.overlap.unwrap_or(app.config.token_rotation_overlap);
    if overlap > crate::config::MAX_ROTATION_OVERLAP {
        return Err(invalid("the rotation overlap may be at most 30 days"));
    }
    let grant = access::authorize_account::<act::CreateToken>(app, caller).await?;
    let old = find_token_of(app, &grant, &req.key_or_token).await?;
    let now = app.now();
    if old.revoked_at.is_some() {
        return Err(invalid(format!(
            "The token {}... is revoked: create a new token instead.",
            old.display_prefix
        )));
    }
    if old.expires_at.is_some_and(|t| t <= now) {
        return Err(invalid(format!(
            "The token {}... has expired: create a new token instead.",
            old.display_prefix
        )));
    }
    // A trusted-publishing token's one-package scope lives in its `oidc` column, which
    // a successor would not inherit; it lives minutes, so there is nothing to rotate.
    if old.oidc.is_some() || old.trust_config_id.is_some() {
        return Err(invalid(format!(
            "The token {}... was minted by trusted publishing and cannot be rotated: it expires within minutes.",
            old.display_prefix
        )));
    }
    if old.replaced_by.is_some() {
        return Err(Error::Conflict(format!(
            "The token {}... was already rotated; rotate its successor instead.",
            old.display_prefix
        )));
    }
    let settings = TokenSettings::of(&old).map_err(|m| Error::Invalid(m.into()))?;
    credentials::check_password(
        app,
        Some(&caller.user),
        &req.password,
        caller.ip,
        "Incorrect password; the token was not rotated.",
    )
    .await?;
    // Same lifetime as the old token had, from now; under the cap when it can write.
    let lifetime = old.expires_at.map(|t| t - old.created_at);
    let expires_at = capped_expiry(app, settings.kind, now, lifetime.map(|l| now + l));
    let overlap_ms = i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX);
    let old_stops_at = old
        .expires_at
        .map_or(now + overlap_ms, |t| t.min(now + overlap_ms));
    let limits = settings
        .limits
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Internal(e.into()))?;
    let cidr = settings
        .cidr
        .as_ref()
        .map(|c| serde_json::to_string(&c.to_strings()))
        .transpose()
        .map_err(|e| Error::Internal(e.into()))?;
    for _ in 0..5 {
        let plain = PlainToken::generate();
        let key = random_base62(24);
        let hash = plain.hash(&app.keys.token_hash);
        let prefix = plain.display_prefix();
        let last_four = plain.last_four();
        let new = NewToken {
            key: &key,
            user_id: caller.user.id,
            hash: hash.as_bytes(),
            display_prefix: &prefix,
            last_four: &last_four,
            name: old.name.as_deref(),
            description: old.description.as_deref(),
            kind: settings.kind,
            limits: limits.as_deref(),
            cidr: cidr.as_deref(),
            origin: settings.origin,
            now,
            expires_at,
        };
        match app
            .store
            .rotate_token(&grant, old.id, &new, old_stops_at)
            .await
        {
            Ok(Some(row)) => {
                security_log::record(
                    app,
                    caller.user.id,
                    SecurityEventKind::TokenRotated,
                    &format!(
                        "{} token {} rotated: its successor is {}; {} works until {}",
                        settings.kind.as_str(),
                        old.display_prefix,
                        row.display_prefix,
                        old.display_prefix,
                        human_time(old_stops_at)
                    ),
                    Some(&caller.ip_text()),
                )
                .await;
                return Ok(Rotated {
                    created: Created { plain, row },
                    old,
                    old_stops_at,
                });
            }
            Ok(None) => {
                return Err(Error::Conflict(format!(
                    "The token {}... was rotated or revoked meanwhile; nothing was changed.",
                    old.display_prefix
                )));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "could not allocate a unique token key"
    )))
}

/// One of the grant's account's tokens by key or by full value.
async fn find_token_of<A: access::AccountAct>(
    app: &App,
    grant: &AccountGrant<A>,
    key_or_token: &str,
) -> Result<TokenRow> {
    let row = if key_or_token.starts_with(crate::crypto::token_format::TOKEN_PREFIX) {
        match PlainToken::parse(key_or_token) {
            Ok(t) => app
                .store
                .token_by_hash(t.hash(&app.keys.token_hash).as_bytes())
                .await?
                .filter(|r| r.user_id == grant.user_id()),
            Err(_) => None,
        }
    } else {
        app.store.own_token_by_key(grant, key_or_token).await?
    };
    row.ok_or_else(|| Error::NotFound("Token not found.".into()))
}

/// `2026-11-30 15:04 UTC`.
pub fn human_time(ms: i64) -> String {
    let iso = crate::npm::packument::iso_time(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// How close to its end a token must be for each use to carry a warning.
pub const EXPIRY_WARNING_MS: i64 = 7 * DAY_MS;

/// "in 3 days", "in 5 hours", "in less than an hour".
fn time_left(ms: i64) -> String {
    let hours = ms / 3_600_000;
    let days = ms / DAY_MS;
    match (days, hours) {
        (d, _) if d >= 2 => format!("in {d} days"),
        (1, _) => "in 1 day".to_owned(),
        (_, h) if h >= 2 => format!("in {h} hours"),
        (_, 1) => "in 1 hour".to_owned(),
        _ => "in less than an hour".to_owned(),
    }
}

/// The warning a request made with a token close to its end carries (npm prints it
/// as `npm notice …`): within `EXPIRY_WARNING_MS` of its expiry, or during the
/// overlap after a rotation.
pub fn expiry_notice(app: &App, row: &TokenRow) -> Option<String> {
    let at = row.expires_at?;
    let left = at - app.now();
    if left <= 0 || left > EXPIRY_WARNING_MS {
        return None;
    }
    let token = &row.display_prefix;
    Some(if row.replaced_by.is_some() {
        format!(
            "The token {token}... was replaced by rotation and stops working {} ({}); \
             use its successor.",
            time_left(left),
            human_time(at)
        )
    } else {
        format!(
            "The token {token}... expires {} ({}); rotate it with `tessera token rotate {}` \
             or at {}/settings/tokens.",
            time_left(left),
            human_time(at),
            row.key,
            app.public_url
        )
    })
}

/// The type shown for a token row (`unreadable` when its stored type is unknown).
pub fn display_kind(row: &TokenRow) -> &'static str {
    row.kind.get().map_or("unreadable", TokenKind::as_str)
}

/// The origin shown for a token row.
pub fn display_origin(row: &TokenRow) -> &'static str {
    row.origin.get().map_or("unreadable", TokenOrigin::as_str)
}

/// The limits shown for a token row (none when classic or unreadable).
pub fn limits_of(row: &TokenRow) -> Option<Limits> {
    TokenSettings::of(row).ok().and_then(|s| s.limits)
}

/// The CIDR ranges shown for a token row.
pub fn cidr_of(row: &TokenRow) -> Option<CidrList> {
    TokenSettings::of(row).ok().and_then(|s| s.cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateRequest {
        CreateRequest::default()
    }

    #[test]
    fn classic_types() {
        assert_eq!(classify(&req()).unwrap(), (TokenKind::Publish, None));
        let r = CreateRequest {
            readonly: true,
            ..req()
        };
        assert_eq!(classify(&r).unwrap(), (TokenKind::ReadOnly, None));
        let r = CreateRequest {
            kind: Some("automation".into()),
            ..req()
        };
        assert_eq!(classify(&r).unwrap(), (TokenKind::Automation, None));
    }

    #[test]
    fn unknown_values_are_refused() {
        for (kind, permission) in [
            (Some("admin"), None),
            (Some(""), None),
            (None, Some("admin")),
            (None, Some("READ-WRITE")),
        ] {
            let r = CreateRequest {
                kind: kind.map(Into::into),
                permission: permission.map(Into::into),
                packages_all: true,
                ..req()
            };
            assert!(
                matches!(classify(&r), Err(Error::Invalid(_))),
                "{kind:?} {permission:?}"
            );
        }
        let r = CreateRequest {
            readonly: true,
            kind: Some("publish".into()),
            ..req()
        };
        assert!(classify(&r).is_err());
    }

    #[test]
    fn a_selection_that_selects_nothing_is_refused() {
        for r in [
            CreateRequest {
                permission: Some("read-write".into()),
                ..req()
            },
            CreateRequest {
                bypass_2fa: true,
                ..req()
            },
            CreateRequest {
                orgs: vec!["acme".into()],
                ..req()
            },
            CreateRequest {
                orgs_permission: Some("read-write".into()),
                ..req()
            },
        ] {
            assert!(matches!(classify(&r), Err(Error::Invalid(_))), "{r:?}");
        }
        // Organizations only: no package is reached.
        let r = CreateRequest {
            orgs: vec!["acme".into()],
            orgs_permission: Some("read-only".into()),
            ..req()
        };
        let (_, limits) = classify(&r).unwrap();
        let limits = limits.unwrap();
        assert!(!limits.selects_packages());
        assert!(!limits.covers(&crate::npm::name::PackageName::parse("@acme/x").unwrap()));
    }
}
