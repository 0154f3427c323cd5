//! Registry signatures: every version carries `dist.signatures` (ECDSA P-256 over
//! `NAME@VERSION:INTEGRITY`), made at publish with the active key and stored in the
//! version's manifest, so a later change to the stored document no longer verifies.
//! Versions published before signing existed are signed when their packument is
//! rendered. `/-/npm/v1/keys` lists every key; a rotation retires the active key
//! (it expires at that moment and stays listed, since npm accepts a signature when
//! the version was published before its key expired).
//!
//! The key lives in the database, sealed under a key derived from the server key,
//! so every instance on one database signs with the same key; the first start
//! creates it (`active` is unique, so two instances starting together keep one).

use serde_json::{Value, json};

use super::{Error, Result};
use crate::app::App;
use crate::crypto::registry_key::{self, RegistryKey};
use crate::crypto::secret_box;
use crate::npm::packument::VersionDoc;
use crate::store::{NewSigningKey, SigningKeyRow, Store, StoreError};

/// A public key as `/-/npm/v1/keys` lists it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub keyid: String,
    /// Base64 SPKI DER.
    pub key: String,
    pub expires_at: Option<i64>,
}

fn sealed(seal_key: &[u8; 32], key: &RegistryKey) -> String {
    secret_box::seal(seal_key, &key.secret_bytes())
}

fn unsealed(seal_key: &[u8; 32], row: &SigningKeyRow) -> Result<RegistryKey> {
    let bytes = secret_box::open(seal_key, &row.sealed_secret).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!(
            "the signing key {} cannot be opened with this server key",
            row.keyid
        ))
    })?;
    let key = RegistryKey::from_secret(&bytes).map_err(|e| Error::Internal(e.into()))?;
    if key.keyid != row.keyid {
        return Err(Error::Internal(anyhow::anyhow!(
            "the stored signing key {} does not match its id",
            row.keyid
        )));
    }
    Ok(key)
}

/// Makes sure an active key exists (first start), and that it opens with this
/// server key: an instance started with another server key stops here.
pub async fn ensure_key(store: &Store, seal_key: &[u8; 32], now: i64) -> Result<()> {
    if store.active_signing_key().await?.is_none() {
        let key = RegistryKey::generate();
        let secret = sealed(seal_key, &key);
        let new = NewSigningKey {
            keyid: &key.keyid,
            public_key: &key.public_key,
            sealed_secret: &secret,
            now,
        };
        match store.insert_first_signing_key(&new).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let row = store
        .active_signing_key()
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("no active signing key")))?;
    unsealed(seal_key, &row).map(|_| ())
}

/// The key that signs new versions.
pub async fn active_key(app: &App) -> Result<RegistryKey> {
    let row = app
        .store
        .active_signing_key()
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("no active signing key")))?;
    unsealed(&app.keys.signing, &row)
}

/// `dist.signatures` for one version.
pub fn signatures(key: &RegistryKey, name: &str, version: &str, integrity: &str) -> Value {
    json!([{
        "keyid": key.keyid,
        "sig": key.sign(&registry_key::message(name, version, integrity)),
    }])
}

/// Adds `dist.signatures` to stored manifests that have none (versions published
/// before signing existed), with the active key. Loads the key only when needed.
pub async fn sign_unsigned(app: &App, name: &str, versions: &mut [VersionDoc]) -> Result<()> {
    let mut key = None;
    for v in versions.iter_mut() {
        let version = v.version.as_str();
        let Some(dist) = v.manifest.get_mut("dist").and_then(Value::as_object_mut) else {
            continue;
        };
        if dist.contains_key("signatures") {
            continue;
        }
        let Some(integrity) = dist.get("integrity").and_then(Value::as_str) else {
            continue;
        };
        let integrity = integrity.to_owned();
        if key.is_none() {
            key = Some(active_key(app).await?);
        }
        if let Some(k) = &key {
            dist.insert(
                "signatures".into(),
                signatures(k, name, version, &integrity),
            );
        }
    }
    Ok(())
}

/// Every key, newest first, for `/-/npm/v1/keys`.
pub async fn public_keys(app: &App) -> Result<Vec<PublicKey>> {
    Ok(app
        .store
        .signing_keys()
        .await?
        .into_iter()
        .map(|r| PublicKey {
            keyid: r.keyid,
            key: r.public_key,
            expires_at: r.expires_at,
        })
        .collect())
}

/// `tessera keys rotate`: a new active key; the old one expires now and stays
/// listed. Returns (retired key id, new key id).
pub async fn rotate(app: &App) -> Result<(Option<String>, String)> {
    let key = RegistryKey::generate();
    let secret = sealed(&app.keys.signing, &key);
    let retired = app
        .store
        .rotate_signing_key(&NewSigningKey {
            keyid: &key.keyid,
            public_key: &key.public_key,
            sealed_secret: &secret,
            now: app.now(),
        })
        .await?;
    Ok((retired, key.keyid))
}
