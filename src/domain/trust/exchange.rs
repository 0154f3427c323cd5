//! `POST /-/npm/v1/oidc/token/exchange/package/<name>`: a CI job's OpenID Connect id
//! token in, a token that may publish (or stage) that one package for a few minutes
//! out. In order: the issuer (from the unverified `iss`) must be trusted; the
//! signature must verify with that issuer's key (`keys`); audience, expiry and
//! not-before (against the registry's clock, with `CLOCK_SKEW_MS`); a configuration
//! of the package must match the claims (`claims::Rule::check`); the access decision
//! for the token about to be minted must allow it (`access::authorize_trust_exchange`);
//! and the id token must not have been exchanged before (stored, so this holds
//! across instances). Every refusal says why.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::claims::identity;
use super::{TrustConfig, keys::KeyError};
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::config::{CiKind, OidcIssuer};
use crate::domain::access::{self, Limits, OidcScope, PackagePermission, TokenKind};
use crate::domain::{Error, Result, security_log, tokens};
use crate::npm::name::PackageName;
use crate::store::SecurityEventKind;

/// How far the registry's clock and the issuer's may disagree.
pub const CLOCK_SKEW_MS: i64 = 60_000;
/// Lifetime of a minted token.
pub const TOKEN_LIFETIME_MS: i64 = 15 * 60_000;
/// Longest id token accepted (characters).
const MAX_ID_TOKEN: usize = 16 * 1024;

/// A minted token.
pub struct Minted {
    pub created: tokens::Created,
    pub expires_at: i64,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("created", &self.created)
            .finish()
    }
}

fn refused(msg: impl Into<String>) -> Error {
    Error::Unauthenticated(msg.into())
}

/// The trusted issuer an `iss` claim names, if any. CircleCI names one issuer per
/// organization: `<base>/org/<organization id>`.
fn issuer_for<'a>(app: &'a App, iss: &str) -> Option<&'a OidcIssuer> {
    app.config.oidc_issuers.iter().find(|i| {
        i.url == iss
            || (i.kind == CiKind::Circleci
                && iss
                    .strip_prefix(&i.url)
                    .and_then(|r| r.strip_prefix("/org/"))
                    .is_some_and(|org| {
                        !org.is_empty()
                            && org.len() <= 64
                            && org.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                    }))
    })
}

/// The registry's audience: `npm:<host of the public URL>`, as npm asks for it.
pub fn audience(app: &App) -> String {
    let rest = app
        .public_url
        .split_once("://")
        .map_or(app.public_url.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or("")),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned(),
    };
    format!("npm:{host}")
}

/// Verifies `id_token` and returns its issuer and claims.
async fn verify(app: &App, id_token: &str) -> Result<(OidcIssuer, String, Map<String, Value>)> {
    if id_token.is_empty() || id_token.len() > MAX_ID_TOKEN {
        return Err(refused("send the CI system's id token as the bearer token"));
    }
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| refused("the bearer token is not an OpenID Connect id token"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) {
        return Err(refused(format!(
            "id tokens signed with {:?} are not accepted",
            header.alg
        )));
    }
    let unverified: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(id_token)
        .map_err(|_| refused("the id token's claims cannot be read"))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refused("the id token names no issuer"))?
        .to_owned();
    let issuer = issuer_for(app, &iss).cloned().ok_or_else(|| {
        refused(format!(
            "the issuer {:?} is not trusted by this registry",
            iss.chars().take(200).collect::<String>()
        ))
    })?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| refused("the id token names no signing key (kid)"))?;
    let jwk = app
        .oidc_keys
        .key(&iss, kid, app.now())
        .await
        .map_err(|e| match e {
            KeyError::UnknownKey(_) => refused(e.to_string()),
            KeyError::Fetch(_) => Error::Unavailable(e.to_string()),
        })?;
    if let Some(alg) = jwk.common.key_algorithm
        && Algorithm::try_from(alg).ok() != Some(header.alg)
    {
        return Err(refused("the id token's algorithm does not match its key"));
    }
    let key =
        DecodingKey::from_jwk(&jwk).map_err(|_| refused("the issuer's key cannot be used"))?;
    let aud = audience(app);
    let mut validation = Validation::new(header.alg);
    // Time is checked below against the registry's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims = HashSet::new();
    validation.set_audience(&[aud.as_str()]);
    validation.set_issuer(&[iss.as_str()]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => refused(format!(
                "the id token is for another audience; ask your CI system for one with the audience {aud}"
            )),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => refused("the id token's issuer does not match"),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                refused("the id token's signature does not verify")
            }
            _ => refused("the id token is not valid"),
        },
    )?;
    let claims = data.claims;
    let now = app.now();
    let seconds = |k: &str| claims.get(k).and_then(Value::as_i64);
    let exp = seconds("exp").ok_or_else(|| refused("the id token has no expiry (exp)"))?;
    if now > exp.saturating_mul(1000).saturating_add(CLOCK_SKEW_MS) {
        return Err(refused("the id token has expired"));
    }
    if let Some(nbf) = seconds("nbf")
        && now < nbf.saturating_mul(1000).saturating_sub(CLOCK_SKEW_MS)
    {
        return Err(refused("the id token is not valid yet (nbf)"));
    }
    if let Some(iat) = seconds("iat")
        && now < iat.saturating_mul(1000).saturating_sub(CLOCK_SKEW_MS)
    {
        return Err(refused("the id token was issued in the future (iat)"));
    }
    Ok((issuer, iss, claims))
}

/// Exchanges a verified id token for a token on `name`.
pub async fn exchange(
    app: &App,
    id_token: &str,
    name: &PackageName,
    ip: ClientAddr,
) -> Result<Minted> {
    let (issuer, iss, claims) = verify(app, id_token).await?;
    let not_found = || {
        Error::NotFound(format!(
            "{name} has no trust configuration for this CI identity"
        ))
    };
    let Some(package) = app.store.package_by_name(name.as_str()).await? else {
        return Err(not_found());
    };
    let configs: Vec<TrustConfig> = app
        .store
        .trust_configs_for_exchange(package.id)
        .await?
        .iter()
        .filter_map(TrustConfig::of)
        .collect();
    // The configurations bound to this issuer and claim layout.
    let candidates: Vec<&TrustConfig> = configs
        .iter()
        .filter(|c| c.kind == issuer.kind && c.issuer == issuer.url)
        .collect();
    if candidates.is_empty() {
        return Err(not_found());
    }
    let mut reasons = Vec::new();
    let config = candidates
        .iter()
        .find(|c| match c.rule.check(&claims) {
            Ok(()) => true,
            Err(why) => {
                reasons.push(why);
                false
            }
        })
        .ok_or_else(|| {
            Error::Forbidden(format!(
                "no trust configuration of {name} matches this id token: {}",
                reasons.join("; ")
            ))
        })?;
    let identity = identity(issuer.kind, &claims);
    let scope = OidcScope {
        package: name.to_string(),
        publish: config.permissions.publish,
        stage: config.permissions.stage,
        identity: identity.clone(),
    };
    let configured_by = app
        .store
        .user_by_id(config.created_by)
        .await?
        .ok_or_else(not_found)?;
    let grant = access::authorize_trust_exchange(app, &configured_by, name, scope.clone()).await?;
    // Replay: each id token is exchanged once. Without a `jti`, the signature stands
    // in for it (it is unique to the token).
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() && j.len() <= 256 => j.to_owned(),
        _ => format!(
            "sig:{}",
            id_token
                .rsplit('.')
                .next()
                .unwrap_or("")
                .chars()
                .take(256)
                .collect::<String>()
        ),
    };
    let exp_ms = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(CLOCK_SKEW_MS);
    if !app
        .store
        .claim_oidc_token_id(&grant, &iss, &jti, exp_ms)
        .await?
    {
        return Err(refused(
            "this id token was already exchanged; each id token is used once",
        ));
    }
    let now = app.now();
    let expires_at = now + TOKEN_LIFETIME_MS;
    let limits = Limits {
        packages: vec![name.to_string()],
        permission: Some(PackagePermission::ReadWrite),
        bypass_2fa: true,
        ..Limits::default()
    };
    let created = tokens::mint_oidc(
        app,
        &grant,
        &configured_by,
        tokens::OidcSpec {
            name: &format!("Trusted publishing: {name}"),
            description: &identity,
            kind: TokenKind::Automation,
            limits: &limits,
            config_id: &config.id,
            scope: &scope,
            expires_at,
        },
    )
    .await?;
    security_log::record(
        app,
        configured_by.id,
        SecurityEventKind::TrustedPublishing,
        &format!(
            "token {} minted to {} {name} for {identity}; expires in {} minutes",
            created.row.display_prefix,
            config.permissions.describe(),
            TOKEN_LIFETIME_MS / 60_000
        ),
        Some(&ip.to_string()),
    )
    .await;
    Ok(Minted {
        created,
        expires_at,
    })
}
