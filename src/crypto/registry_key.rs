//! The registry's signing keys: ECDSA P-256 over `NAME@VERSION:INTEGRITY`, as npm's
//! registry signs (`dist.signatures`), checked by `npm audit signatures` against the
//! keys served at `/-/npm/v1/keys`. A key id is `SHA256:` + the unpadded base64 of
//! the SHA-256 of the public key's SPKI DER. Only the 32-byte secret scalar is kept,
//! sealed by the caller; `Debug` never shows it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// `keytype` and `scheme` of every key, as npm's registry names them.
pub const KEY_TYPE: &str = "ecdsa-sha2-nistp256";

/// A signing key with its public half and id.
#[derive(Clone)]
pub struct RegistryKey {
    secret: SigningKey,
    /// `SHA256:…`.
    pub keyid: String,
    /// Base64 of the SPKI DER public key.
    pub public_key: String,
}

impl std::fmt::Debug for RegistryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryKey({}, <secret>)", self.keyid)
    }
}

/// Why a stored key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored signing key is not a P-256 secret")]
pub struct BadKey;

/// The key id of a base64 SPKI DER public key.
pub fn keyid_of(spki_der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(spki_der))
    )
}

/// What a version's signature covers: `NAME@VERSION:INTEGRITY`.
pub fn message(name: &str, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

impl RegistryKey {
    /// A fresh key (a random scalar; the rare out-of-range draw is drawn again).
    pub fn generate() -> RegistryKey {
        loop {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            if let Ok(key) = RegistryKey::from_secret(&bytes) {
                return key;
            }
        }
    }

    /// The key for a stored secret scalar.
    pub fn from_secret(bytes: &[u8]) -> Result<RegistryKey, BadKey> {
        let secret = SigningKey::from_slice(bytes).map_err(|_| BadKey)?;
        let der = secret
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| BadKey)?;
        Ok(RegistryKey {
            keyid: keyid_of(der.as_bytes()),
            public_key: STANDARD.encode(der.as_bytes()),
            secret,
        })
    }

    /// The secret scalar, to be sealed before it is stored.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes().into()
    }

    /// Base64 DER ECDSA-SHA256 signature of `message`.
    pub fn sign(&self, message: &str) -> String {
        let sig: DerSignature = self.secret.sign(message.as_bytes());
        STANDARD.encode(sig.as_bytes())
    }
}

/// Checks a base64 DER signature against a base64 SPKI DER public key.
pub fn verify(public_key_b64: &str, message: &str, sig_b64: &str) -> bool {
    let Ok(der) = STANDARD.decode(public_key_b64) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_public_key_der(&der) else {
        return false;
    };
    let Some(sig) = STANDARD
        .decode(sig_b64)
        .ok()
        .and_then(|b| DerSignature::try_from(b.as_slice()).ok())
    else {
        return false;
    };
    key.verify(message.as_bytes(), &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let key = RegistryKey::generate();
        let msg = message("@acme/widget", "1.0.0", "sha512-abc");
        let sig = key.sign(&msg);
        assert!(verify(&key.public_key, &msg, &sig));
        assert!(!verify(
            &key.public_key,
            &message("@acme/widget", "1.0.1", "sha512-abc"),
            &sig
        ));
        let other = RegistryKey::generate();
        assert!(!verify(&other.public_key, &msg, &sig));
        assert!(!verify(&key.public_key, &msg, "AAAA"));
    }

    #[test]
    fn a_key_round_trips_through_its_secret_and_has_a_stable_id() {
        let key = RegistryKey::generate();
        let again = RegistryKey::from_secret(&key.secret_bytes()).unwrap();
        assert_eq!(key.keyid, again.keyid);
        assert_eq!(key.public_key, again.public_key);
        assert!(key.keyid.starts_with("SHA256:") && key.keyid.len() == 7 + 43);
        assert!(RegistryKey::from_secret(&[0u8; 32]).is_err());
        assert!(!format!("{key:?}").contains(&STANDARD.encode(key.secret_bytes())));
    }
}
