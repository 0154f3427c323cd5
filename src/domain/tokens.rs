//! Token lifecycle: create (shown once), list (masked), revoke. A classic type is a
//! preset of the granular settings: read-only, automation (read-write + bypass 2FA)
//! and publish (read-write).

use super::access::{Action, Limits, PackagePermission, TokenKind};
use super::{Caller, Error, Result, authorize, security_log};
use crate::app::App;
use crate::auth::cidr::CidrList;
use crate::auth::token::{PlainToken, random_base62};
use crate::store::{NewToken, StoreError, TokenRow, UserRow};

/// A token-creation request, from the npm API, our CLI or the website.
#[derive(Default, Clone)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub password: Option<String>,
    /// Legacy `readonly` flag.
    pub readonly: bool,
    /// Tessera's explicit automation type.
    pub automation: bool,
    pub packages: Vec<String>,
    pub scopes: Vec<String>,
    pub packages_all: bool,
    pub permission: Option<String>,
    pub orgs: Vec<String>,
    pub orgs_permission: Option<String>,
    pub expires_days: Option<i64>,
    pub cidr: Vec<String>,
    pub bypass_2fa: bool,
}

impl std::fmt::Debug for CreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRequest")
            .field("name", &self.name)
            .field("readonly", &self.readonly)
            .field("automation", &self.automation)
            .field("packages", &self.packages)
            .field("scopes", &self.scopes)
            .field("permission", &self.permission)
            .field("expires_days", &self.expires_days)
            .field("cidr", &self.cidr)
            .field("bypass_2fa", &self.bypass_2fa)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
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

/// Decides the type and limits a request asks for.
pub fn classify(req: &CreateRequest) -> Result<(TokenKind, Option<Limits>)> {
    for p in [&req.permission, &req.orgs_permission]
        .into_iter()
        .flatten()
    {
        if PackagePermission::parse(p).is_none() {
            return Err(Error::Invalid(format!(
                "invalid permission {p:?}: use read-only, read-write or no-access"
            )));
        }
    }
    let scopes: Vec<String> = req
        .scopes
        .iter()
        .map(|s| s.trim_start_matches('@').to_owned())
        .collect();
    for p in &req.packages {
        crate::npm::name::PackageName::parse(p).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let granular = !req.packages.is_empty()
        || !scopes.is_empty()
        || req.packages_all
        || req.permission.is_some()
        || !req.orgs.is_empty()
        || req.orgs_permission.is_some()
        || req.bypass_2fa;
    let read_only = req.readonly || req.permission.as_deref() == Some("read-only");
    let kind = if read_only {
        TokenKind::ReadOnly
    } else if req.automation || req.bypass_2fa {
        TokenKind::Automation
    } else {
        TokenKind::Publish
    };
    let limits = granular.then(|| Limits {
        packages: req.packages.clone(),
        scopes,
        packages_all: req.packages_all,
        permission: req.permission.clone(),
        orgs: req.orgs.clone(),
        orgs_permission: req.orgs_permission.clone(),
        bypass_2fa: req.bypass_2fa || req.automation,
    });
    Ok((kind, limits))
}

/// Parses and validates a CIDR list; the error carries npm's message.
pub fn parse_cidr(entries: &[String]) -> Result<Option<CidrList>> {
    CidrList::parse_entries(entries).map_err(|e| Error::Invalid(e.to_string()))
}

/// Creates a token for `caller` after re-checking the password.
pub async fn create(
    app: &App,
    caller: &Caller,
    req: CreateRequest,
    origin: &str,
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
    authorize(app, Some(caller), Action::CreateToken, None).await?;
    let password = req.password.as_deref().unwrap_or("");
    if !crate::auth::password::verify_password(password, &caller.user.password_hash) {
        app.metrics.auth_failure("bad_password");
        return Err(Error::BadPassword(
            "Incorrect password; no token was created.".into(),
        ));
    }
    let now = app.now();
    let expires_at = expires_days.map(|d| now + d * 86_400_000);
    let created = insert(
        app,
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
        "token-created",
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

/// What to store for a new token.
pub struct Spec<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub kind: TokenKind,
    pub limits: Option<&'a Limits>,
    pub cidr: Option<&'a CidrList>,
    pub origin: &'a str,
    pub expires_at: Option<i64>,
}

/// Generates and stores a token (no policy checks: callers have done them).
pub async fn insert(app: &App, user: &UserRow, spec: Spec<'_>) -> Result<Created> {
    let now = app.now();
    let limits = spec
        .limits
        .map(|l| serde_json::to_string(l).expect("limits serialise"));
    let cidr = spec
        .cidr
        .map(|c| serde_json::to_string(&c.to_strings()).expect("cidr serialises"));
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
            kind: spec.kind.as_str(),
            limits: limits.as_deref(),
            cidr: cidr.as_deref(),
            origin: spec.origin,
            now,
            expires_at: spec.expires_at,
        };
        match app.store.insert_token(&new).await {
            Ok(row) => return Ok(Created { plain, row }),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "could not allocate a unique token key"
    )))
}

/// Issues the publish-type token `npm login` receives, named after the client.
pub async fn issue_login_token(
    app: &App,
    user: &UserRow,
    client: &str,
    ip: &str,
) -> Result<Created> {
    let days = app.config.login_token_days;
    let expires_at = (days > 0).then(|| app.now() + days * 86_400_000);
    let name = format!("Login from {}", client_name(client));
    let created = insert(
        app,
        user,
        Spec {
            name: Some(&name),
            description: None,
            kind: TokenKind::Publish,
            limits: None,
            cidr: None,
            origin: "login",
            expires_at,
        },
    )
    .await?;
    security_log::record(
        app,
        user.id,
        "login",
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
    authorize(app, Some(caller), Action::ListTokens, None).await?;
    Ok(app
        .store
        .tokens_of_user(caller.user.id, false, page * per_page, per_page)
        .await?)
}

/// Finds one of `user`'s tokens by key or full value.
async fn find_own(app: &App, user_id: i64, key_or_token: &str) -> Result<TokenRow> {
    let row = if key_or_token.starts_with(crate::auth::token::TOKEN_PREFIX) {
        match PlainToken::parse(key_or_token) {
            Ok(t) => {
                app.store
                    .token_by_hash(t.hash(&app.keys.token_hash).as_bytes())
                    .await?
            }
            Err(_) => None,
        }
    } else {
        app.store.token_by_key(key_or_token).await?
    };
    match row {
        Some(r) if r.user_id == user_id && r.revoked_at.is_none() => Ok(r),
        _ => Err(Error::NotFound("Token not found.".into())),
    }
}

/// Revokes one of the caller's tokens by key or by full value.
pub async fn revoke(app: &App, caller: &Caller, key_or_token: &str) -> Result<TokenRow> {
    authorize(app, Some(caller), Action::RevokeToken, None).await?;
    let row = find_own(app, caller.user.id, key_or_token).await?;
    app.store.revoke_token(row.id, app.now()).await?;
    security_log::record(
        app,
        caller.user.id,
        "token-revoked",
        &format!("{} token {} revoked", row.kind, row.display_prefix),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(row)
}

/// `npm logout`: a credential may always revoke itself, whatever its type.
pub async fn logout(app: &App, caller: &Caller, token_text: &str) -> Result<()> {
    let row = find_own(app, caller.user.id, token_text).await?;
    if caller.token.as_ref().map(|t| t.id) != Some(row.id) {
        // Revoking a different token is token management.
        authorize(app, Some(caller), Action::RevokeToken, None).await?;
    }
    app.store.revoke_token(row.id, app.now()).await?;
    security_log::record(
        app,
        caller.user.id,
        "logout",
        &format!("token {} logged out", row.display_prefix),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(())
}

/// The type shown for a token row.
pub fn display_kind(row: &TokenRow) -> &'static str {
    TokenKind::parse(&row.kind)
        .unwrap_or(TokenKind::ReadOnly)
        .as_str()
}
