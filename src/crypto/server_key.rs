//! The server key: 32 random bytes kept outside the database (a file in the data
//! directory by default). Every other key is derived from it, so a database dump alone
//! reveals neither tokens nor TOTP secrets. Rotating it revokes every token.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::token_format::TokenHashKey;

/// The root secret. `Debug` is redacted.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerKey(bytes)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("server key must be 32 bytes (64 hex characters)"))?;
        Ok(ServerKey(arr))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        ServerKey(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Key for token hashes. Changing the label revokes every token.
    pub fn token_hash_key(&self) -> TokenHashKey {
        TokenHashKey(self.derive("tessera token hash v1"))
    }

    /// Key that encrypts TOTP secrets at rest.
    pub fn totp_encryption_key(&self) -> [u8; 32] {
        self.derive("tessera totp secret v1")
    }

    /// Key that seals the registry's signing keys (`dist.signatures`) at rest.
    pub fn signing_encryption_key(&self) -> [u8; 32] {
        self.derive("tessera signing key v1")
    }

    /// Key for hashing session ids, recovery codes and login-flow ids.
    pub fn lookup_hash_key(&self) -> TokenHashKey {
        TokenHashKey(self.derive("tessera lookup hash v1"))
    }
}

/// HMAC-SHA-256 of an arbitrary secret under a derived key (sessions, recovery codes).
pub fn keyed_hash(key: &TokenHashKey, value: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("any key length");
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}
