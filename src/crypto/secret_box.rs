//! Authenticated encryption (AES-256-GCM) for small secrets stored in the database,
//! such as TOTP seeds. Output: base64(nonce || ciphertext).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> String {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::fill(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), plaintext)
            .expect("AES-GCM encryption of a small buffer cannot fail"),
    );
    STANDARD.encode(out)
}

pub fn open(key: &[u8; 32], sealed: &str) -> Option<Vec<u8>> {
    let raw = STANDARD.decode(sealed).ok()?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let nonce = Nonce::try_from(nonce).ok()?;
    Aes256Gcm::new(key.into()).decrypt(&nonce, ct).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_tamper() {
        let key = [7u8; 32];
        let sealed = super::seal(&key, b"JBSWY3DPEHPK3PXP");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(super::open(&key, &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(super::open(&[8u8; 32], &sealed).is_none());
    }
}
