//! Signing keys of the trusted OpenID Connect issuers: found through discovery
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), fetched with timeouts
//! and a size cap, cached per issuer, refreshed when an id token names a key id the
//! cache lacks (at most once per `REFRESH_GAP_MS` per issuer, so made-up key ids
//! cannot turn the registry into a load generator against the issuer) and when the
//! cached set is older than `MAX_AGE_MS`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::Mutex;

/// Shortest time between two fetches of one issuer's keys.
pub const REFRESH_GAP_MS: i64 = 30_000;
/// A cached key set is fetched again after this long.
pub const MAX_AGE_MS: i64 = 60 * 60 * 1000;
/// Largest discovery document or key set accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Entry {
    keys: Option<Arc<JwkSet>>,
    fetched_at: i64,
}

/// The key cache, one entry per issuer URL.
pub struct IssuerKeys {
    http: reqwest::Client,
    entries: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuerKeys")
    }
}

impl Default for IssuerKeys {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        IssuerKeys {
            http,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// Why no key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the issuer's signing keys could not be fetched: {0}")]
    Fetch(String),
    #[error("the issuer does not publish the key {0:?} that signed this id token")]
    UnknownKey(String),
}

/// `https://…`, or `http://` on a loopback address.
fn acceptable_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl IssuerKeys {
    /// The key `kid` of `issuer` (an issuer URL already checked against the
    /// configuration), fetching or refreshing as needed. `now` is the app's clock.
    pub async fn key(&self, issuer: &str, kid: &str, now: i64) -> Result<Jwk, KeyError> {
        let entry = {
            let mut map = self.entries.lock().await;
            map.entry(issuer.to_owned()).or_default().clone()
        };
        // One fetch per issuer at a time: concurrent exchanges wait for it.
        let mut entry = entry.lock().await;
        let fresh = entry
            .keys
            .as_ref()
            .filter(|_| now - entry.fetched_at < MAX_AGE_MS);
        if let Some(found) = fresh.and_then(|k| k.find(kid)) {
            return Ok(found.clone());
        }
        let may_fetch = entry.keys.is_none() || now - entry.fetched_at >= REFRESH_GAP_MS;
        if may_fetch {
            match self.fetch(issuer).await {
                Ok(keys) => {
                    entry.keys = Some(Arc::new(keys));
                    entry.fetched_at = now;
                }
                Err(e) => {
                    // A failed fetch also waits out the gap before the next one.
                    entry.fetched_at = now;
                    if entry.keys.is_none() {
                        return Err(e);
                    }
                    tracing::warn!(issuer, error = %e, "could not refresh OIDC signing keys");
                }
            }
        }
        entry
            .keys
            .as_ref()
            .and_then(|k| k.find(kid))
            .cloned()
            .ok_or_else(|| KeyError::UnknownKey(kid.chars().take(64).collect()))
    }

    async fn fetch(&self, issuer: &str) -> Result<JwkSet, KeyError> {
        let discovery_url = format!("{issuer}/.well-known/openid-configuration");
        let discovery: serde_json::Value = self.get_json(&discovery_url).await?;
        if discovery.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
            return Err(KeyError::Fetch(format!(
                "{discovery_url} names another issuer"
            )));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| KeyError::Fetch(format!("{discovery_url} has no jwks_uri")))?;
        if !acceptable_url(jwks_uri) {
            return Err(KeyError::Fetch(format!(
                "jwks_uri {jwks_uri:?} must be https:// (or http:// on loopback)"
            )));
        }
        let set: serde_json::Value = self.get_json(jwks_uri).await?;
        // Keys of kinds this library does not know are skipped, not fatal.
        let keys = set
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| KeyError::Fetch(format!("{jwks_uri} holds no key set")))?
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        Ok(JwkSet { keys })
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, KeyError> {
        let fail = |e: &dyn std::fmt::Display| KeyError::Fetch(format!("{url}: {e}"));
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(fail(&format_args!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(&"the document is too large"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| fail(&e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_urls_must_be_https_or_loopback() {
        for ok in [
            "https://token.actions.githubusercontent.com/.well-known/jwks",
            "http://127.0.0.1:9/jwks",
            "http://[::1]:9/jwks",
            "http://localhost/jwks",
        ] {
            assert!(super::acceptable_url(ok), "{ok}");
        }
        for bad in [
            "http://192.0.2.1/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "ftp://x/jwks",
            "file:///etc/passwd",
        ] {
            assert!(!super::acceptable_url(bad), "{bad}");
        }
    }
}
