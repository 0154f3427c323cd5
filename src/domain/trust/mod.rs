//! Trusted publishing: trust configurations on a package (`npm trust`), the package
//! policy "publish only through trusted publishing", and the exchange of a CI
//! system's OpenID Connect id token for a short-lived token that may publish (or
//! stage) that one package (`exchange`).

pub mod claims;
pub mod exchange;
pub mod keys;

use serde_json::{Value, json};

use super::access::{self, act};
use super::{Caller, Error, Result, package_facts, security_log};
use crate::app::App;
use crate::config::CiKind;
use crate::npm::name::PackageName;
use crate::store::{NewTrustConfig, SecurityEventKind, StoreError, TrustConfigRow};
use claims::{Permissions, Rule};

/// A stored configuration, read back with every value checked.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    pub id: String,
    pub kind: CiKind,
    pub issuer: String,
    pub rule: Rule,
    pub permissions: Permissions,
    pub created_by: i64,
    pub created_at: i64,
}

impl TrustConfig {
    /// `None` for a row that cannot be read (it then matches nothing).
    pub fn of(row: &TrustConfigRow) -> Option<TrustConfig> {
        let kind = row.kind.get()?;
        let claims: Value = serde_json::from_str(&row.claims).ok()?;
        let permissions: Value = serde_json::from_str(&row.permissions).ok()?;
        Some(TrustConfig {
            id: row.id.clone(),
            kind,
            issuer: row.issuer.clone(),
            rule: Rule::parse(kind, &claims).ok()?,
            permissions: Permissions::parse(&permissions).ok()?,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }

    /// The shape npm reads (`id`, `type`, `claims`, `permissions`), plus the issuer.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "claims": self.rule.to_claims(),
            "permissions": self.permissions.to_json(),
            "issuer": self.issuer,
            "created": crate::npm::packument::iso_time(self.created_at),
        })
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// The configurations of a package (maintainers and its organization's owners and
/// admins).
pub async fn list(app: &App, caller: &Caller, name: &PackageName) -> Result<Vec<TrustConfig>> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ReadTrust>(app, Some(caller), &target).await?;
    let rows = app.store.trust_configs(&grant).await?;
    Ok(rows.iter().filter_map(TrustConfig::of).collect())
}

/// Reads one configuration from a request body (npm sends a list of one; an object
/// is accepted too). The optional `issuer` (Tessera's own field) must be a trusted
/// issuer of the configuration's kind; without it the kind's primary issuer is used.
fn parse_new(app: &App, item: &Value) -> Result<(CiKind, String, Rule, Permissions)> {
    let item = item
        .as_object()
        .ok_or_else(|| invalid("a trust configuration must be an object"))?;
    let kind_text = item
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("type is required: github, gitlab or circleci"))?;
    let kind = CiKind::parse(kind_text).ok_or_else(|| {
        invalid(format!(
            "unknown type {:?}: use github, gitlab or circleci",
            kind_text.chars().take(40).collect::<String>()
        ))
    })?;
    let rule = Rule::parse(kind, item.get("claims").unwrap_or(&Value::Null)).map_err(invalid)?;
    let permissions =
        Permissions::parse(item.get("permissions").unwrap_or(&Value::Null)).map_err(invalid)?;
    let issuer = match item.get("issuer") {
        None | Some(Value::Null) => app
            .config
            .primary_issuer(kind)
            .map(|i| i.url.clone())
            .ok_or_else(|| invalid(format!("no {} issuer is configured", kind.as_str())))?,
        Some(Value::String(url)) => {
            let url = url.trim_end_matches('/');
            app.config
                .oidc_issuers
                .iter()
                .find(|i| i.kind == kind && i.url == url)
                .map(|i| i.url.clone())
                .ok_or_else(|| {
                    invalid(format!(
                        "{url:?} is not a trusted {} issuer of this registry; its operator adds issuers with --oidc-issuer",
                        kind.as_str()
                    ))
                })?
        }
        Some(_) => return Err(invalid("issuer must be a URL")),
    };
    Ok((kind, issuer, rule, permissions))
}

/// Creates the configurations in `body` (`POST /-/package/<name>/trust`).
pub async fn create(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    body: &Value,
) -> Result<Vec<TrustConfig>> {
    let items: Vec<&Value> = match body {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    };
    if items.is_empty() || items.len() > 10 {
        return Err(invalid("send one trust configuration (at most 10)"));
    }
    let parsed = items
        .into_iter()
        .map(|i| parse_new(app, i))
        .collect::<Result<Vec<_>>>()?;
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ManageTrust>(app, Some(caller), &target).await?;
    let mut out = Vec::new();
    for (kind, issuer, rule, permissions) in parsed {
        let id = uuid::Uuid::new_v4().to_string();
        let claims = rule.to_claims().to_string();
        let perms = permissions.to_json().to_string();
        let row = app
            .store
            .add_trust_config(
                &grant,
                &NewTrustConfig {
                    id: &id,
                    kind,
                    issuer: &issuer,
                    claims: &claims,
                    permissions: &perms,
                    created_by: caller.user.id,
                    now: app.now(),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict => Error::Conflict(format!(
                    "{name} already trusts this {} configuration",
                    kind.as_str()
                )),
                other => other.into(),
            })?;
        let config = TrustConfig::of(&row).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "a stored trust configuration does not read back"
            ))
        })?;
        security_log::record(
            app,
            caller.user.id,
            SecurityEventKind::TrustCreated,
            &format!(
                "trusted publishing for {name}: {} {} ({}) may {}",
                kind.as_str(),
                config.rule.describe(),
                config.issuer,
                config.permissions.describe()
            ),
            Some(&caller.ip_text()),
        )
        .await;
        out.push(config);
    }
    Ok(out)
}

/// Revokes a configuration and every token minted from it.
pub async fn revoke(app: &App, caller: &Caller, name: &PackageName, id: &str) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ManageTrust>(app, Some(caller), &target).await?;
    if !app.store.remove_trust_config(&grant, id, app.now()).await? {
        return Err(Error::NotFound(format!(
            "{name} has no trust configuration {:?}",
            id.chars().take(64).collect::<String>()
        )));
    }
    security_log::record(
        app,
        caller.user.id,
        SecurityEventKind::TrustRevoked,
        &format!(
            "trusted publishing for {name}: configuration {} revoked",
            id.chars().take(64).collect::<String>()
        ),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(())
}

/// Sets "publish only through trusted publishing" on a package.
pub async fn set_trusted_only(
    app: &App,
    caller: &Caller,
    name: &PackageName,
    on: bool,
) -> Result<()> {
    let target = package_facts(app, Some(caller), name).await?;
    let grant = access::authorize::<act::ManageTrust>(app, Some(caller), &target).await?;
    app.store
        .set_trusted_publishing_only(&grant, on, app.now())
        .await?;
    security_log::record(
        app,
        caller.user.id,
        SecurityEventKind::TrustPolicy,
        &format!(
            "{name}: {}",
            if on {
                "new versions only through trusted publishing"
            } else {
                "tokens may publish again"
            }
        ),
        Some(&caller.ip_text()),
    )
    .await;
    Ok(())
}
