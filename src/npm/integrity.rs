//! Subresource-integrity strings (`sha512-<base64>`) and sha1 shasums.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// Digests of one tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// `sha512-<base64>`
    pub integrity: String,
    /// sha1 hex
    pub shasum: String,
    /// sha512 hex: the content-addressed blob key.
    pub sha512_hex: String,
}

pub fn digest(bytes: &[u8]) -> Digests {
    let sha512 = Sha512::digest(bytes);
    Digests {
        integrity: format!("sha512-{}", STANDARD.encode(sha512)),
        shasum: hex::encode(Sha1::digest(bytes)),
        sha512_hex: hex::encode(sha512),
    }
}

/// Checks a declared SRI string (possibly several space-separated hashes) against the
/// computed digests. Unknown algorithms are ignored; at least one must match and none
/// may contradict.
pub fn matches_declared(declared: &str, actual: &Digests) -> bool {
    let mut matched = false;
    for item in declared.split_whitespace() {
        let item = item.split('?').next().unwrap_or(item);
        if let Some(b64) = item.strip_prefix("sha512-") {
            if b64 != &actual.integrity["sha512-".len()..] {
                return false;
            }
            matched = true;
        } else if let Some(b64) = item.strip_prefix("sha1-") {
            let Ok(raw) = STANDARD.decode(b64) else {
                return false;
            };
            if hex::encode(raw) != actual.shasum {
                return false;
            }
            matched = true;
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_checks() {
        let d = digest(b"hello");
        assert!(d.integrity.starts_with("sha512-"));
        assert_eq!(d.shasum, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert!(matches_declared(&d.integrity, &d));
        assert!(!matches_declared(&digest(b"other").integrity, &d));
        assert!(!matches_declared("md5-xyz", &d));
    }
}
