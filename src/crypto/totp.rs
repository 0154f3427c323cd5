//! TOTP (RFC 6238, SHA-1, 6 digits, 30 s) and recovery codes. Time is passed in,
//! never read here, so expiry, drift and replay are testable without sleeping.

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per TOTP step.
pub const STEP: u64 = 30;

fn build(secret: &[u8], account: &str) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec())
        .with_issuer(Some("Tessera"))
        .with_account_name(account.replace(':', "_"))
        .build_noncompliant()
}

/// A fresh 160-bit secret.
pub fn generate_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    rand::fill(&mut bytes[..]);
    bytes
}

/// Base32 form shown to users who type the secret in.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// `otpauth://totp/Tessera:<account>?secret=…&issuer=Tessera`.
pub fn otpauth_url(secret: &[u8], account: &str) -> String {
    build(secret, account).to_url().unwrap_or_default()
}

/// The code for a given unix time (used by tests and the CLI's helpers).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    build(secret, "x").generate(unix_seconds).to_string()
}

/// Finds the step (unix_seconds / 30) whose code equals `code`, allowing one step
/// of clock drift either way. Comparison is constant-time per candidate.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = build(secret, "x");
    let now_step = unix_seconds / STEP;
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let candidate = totp.generate(step * STEP).to_string();
        if subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), code.as_bytes()).into() {
            found = Some(step);
        }
    }
    found
}

/// Ten single-use recovery codes, `xxxxx-xxxxx` in lower-case base32-ish text.
pub fn generate_recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let raw = super::token_format::random_base62(10).to_ascii_lowercase();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_drift() {
        // RFC 6238 Appendix B secret, 6-digit truncation of the 8-digit vectors.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1111111109), "081804");
        let now = 1_000_000_000u64;
        let code = code_at(secret, now);
        assert_eq!(matching_step(secret, &code, now), Some(now / STEP));
        assert_eq!(matching_step(secret, &code, now + STEP), Some(now / STEP));
        assert_eq!(matching_step(secret, &code, now - STEP), Some(now / STEP));
        assert_eq!(matching_step(secret, &code, now + 3 * STEP), None);
        assert_eq!(matching_step(secret, "abc", now), None);
    }

    #[test]
    fn url_names_issuer_and_account() {
        let url = otpauth_url(&generate_secret(), "alice");
        assert!(url.starts_with("otpauth://totp/Tessera:alice?"), "{url}");
        assert!(url.contains("issuer=Tessera"));
        assert_eq!(generate_recovery_codes().len(), 10);
    }
}
