//! The access-token format: `tsr_` + 30 random base62 characters + a 6-character
//! base62 CRC32 of those 30 characters (40 characters in all).
//!
//! The checksum lets secret scanners (and our own extractor) recognise a token and
//! reject a mistyped or forged one before any database lookup. The server stores only
//! `TokenHash` = HMAC-SHA-256(server key, token); changing the key or this format
//! invalidates every issued token.

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Prefix of every Tessera token. Changing it breaks every token already issued.
pub const TOKEN_PREFIX: &str = "tsr_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// Total length of a token, prefix included.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A full token in plain text. Exists only between generation and the response that
/// shows it once, or between the request header and hashing.
#[derive(Clone)]
pub struct PlainToken(String);

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainToken({}…)", self.display_prefix())
    }
}

/// Why a string is not a token; decided without touching the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("token has the wrong prefix or length")]
    Shape,
    #[error("token contains characters outside [0-9A-Za-z]")]
    Alphabet,
    #[error("token checksum does not match")]
    Checksum,
}

/// Encodes `value` in base62, left-padded with `0` to `width` characters.
pub fn base62_padded(mut value: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out).expect("base62 alphabet is ASCII")
}

fn checksum(random: &str) -> String {
    base62_padded(u64::from(crc32fast::hash(random.as_bytes())), CHECKSUM_LEN)
}

/// Draws `len` characters uniformly from [0-9A-Za-z].
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect()
}

impl PlainToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let random = random_base62(RANDOM_LEN);
        let sum = checksum(&random);
        PlainToken(format!("{TOKEN_PREFIX}{random}{sum}"))
    }

    /// Parses and checks the shape and checksum of a presented token.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let body = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenFormatError::Shape)?;
        if text.len() != TOKEN_LEN {
            return Err(TokenFormatError::Shape);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::Alphabet);
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        let expected = checksum(random);
        if !bool::from(expected.as_bytes().ct_eq(sum.as_bytes())) {
            return Err(TokenFormatError::Checksum);
        }
        Ok(PlainToken(text.to_owned()))
    }

    /// The whole token. Call only to show it once or to hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn secret_part(&self) -> &str {
        &self.0[TOKEN_PREFIX.len()..]
    }

    /// `tsr_` + first four characters of the secret: a pure prefix, safe to list.
    pub fn display_prefix(&self) -> String {
        format!("{TOKEN_PREFIX}{}", &self.secret_part()[..4])
    }

    /// Last four characters of the secret part.
    pub fn last_four(&self) -> String {
        let s = self.secret_part();
        s[s.len() - 4..].to_owned()
    }

    /// Keyed hash stored in place of the token.
    pub fn hash(&self, key: &TokenHashKey) -> TokenHash {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes any key length");
        mac.update(self.0.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

/// Finds well-formed tokens (shape and checksum) in a stream of bytes fed in
/// chunks of any size, keeping only the last `TOKEN_LEN - 1` bytes between chunks:
/// a publish's files are scanned this way without holding any of them whole.
#[derive(Debug, Default)]
pub struct TokenScanner {
    buf: Vec<u8>,
}

impl TokenScanner {
    /// Scans the next bytes of the stream; calls `found` for each token in them.
    pub fn feed(&mut self, chunk: &[u8], found: &mut dyn FnMut(PlainToken)) {
        self.buf.extend_from_slice(chunk);
        let len = self.buf.len();
        let prefix = TOKEN_PREFIX.as_bytes();
        let mut i = 0;
        while i + TOKEN_LEN <= len {
            match self.buf[i..len - TOKEN_LEN + 1]
                .iter()
                .position(|&b| b == prefix[0])
            {
                None => break,
                Some(off) => i += off,
            }
            let candidate = &self.buf[i..i + TOKEN_LEN];
            if candidate.starts_with(prefix)
                && let Ok(text) = std::str::from_utf8(candidate)
                && let Ok(token) = PlainToken::parse(text)
            {
                found(token);
                i += TOKEN_LEN;
                continue;
            }
            i += 1;
        }
        // A token starting in the last TOKEN_LEN - 1 bytes is not complete yet.
        let keep_from = len.saturating_sub(TOKEN_LEN - 1).max(i.min(len));
        self.buf.drain(..keep_from);
    }

    /// Forgets the stream (the next file starts afresh).
    pub fn reset(&mut self) {
        self.buf.clear();
    }
}

/// Masked form shown after creation: `tsr_AbCd…WxYz`.
pub fn masked(prefix: &str, last_four: &str) -> String {
    format!("{prefix}…{last_four}")
}

/// The HMAC key tokens are hashed with (derived from the server key).
#[derive(Clone)]
pub struct TokenHashKey(pub [u8; 32]);

impl std::fmt::Debug for TokenHashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHashKey(<redacted>)")
    }
}

/// HMAC-SHA-256 of a token: the only form a token takes in the database.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl TokenHash {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        for _ in 0..200 {
            let t = PlainToken::generate();
            assert_eq!(t.expose().len(), 40);
            assert!(t.expose().starts_with("tsr_"));
            assert!(PlainToken::parse(t.expose()).is_ok());
        }
    }

    #[test]
    fn checksum_is_crc32_in_padded_base62() {
        let random = "abcdefghijklmnopqrstuvwxyz0123";
        let crc = crc32fast::hash(random.as_bytes()) as u64;
        let mut n = 0u64;
        for c in checksum(random).bytes() {
            n = n * 62 + BASE62.iter().position(|&b| b == c).unwrap() as u64;
        }
        assert_eq!(n, crc);
        assert_eq!(base62_padded(0, 6), "000000");
        assert_eq!(base62_padded(61, 3), "00z");
    }

    #[test]
    fn malformed_tokens_are_rejected_offline() {
        let good = PlainToken::generate().expose().to_owned();
        assert_eq!(
            PlainToken::parse("npm_abc").unwrap_err(),
            TokenFormatError::Shape
        );
        assert_eq!(
            PlainToken::parse(&good[..39]).unwrap_err(),
            TokenFormatError::Shape
        );
        let mut bad = good.clone().into_bytes();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            PlainToken::parse(std::str::from_utf8(&bad).unwrap()).unwrap_err(),
            TokenFormatError::Checksum
        );
        let mut weird = good.into_bytes();
        weird[12] = b'-';
        assert_eq!(
            PlainToken::parse(std::str::from_utf8(&weird).unwrap()).unwrap_err(),
            TokenFormatError::Alphabet
        );
    }

    #[test]
    fn debug_and_prefix_never_reveal_the_token() {
        let t = PlainToken::generate();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&t.expose()[8..]));
        assert_eq!(t.display_prefix().len(), 8);
        assert!(t.expose().starts_with(&t.display_prefix()));
        assert!(t.expose().ends_with(&t.last_four()));
    }

    #[test]
    fn the_scanner_finds_tokens_across_chunk_boundaries_and_nothing_else() {
        let a = PlainToken::generate();
        let b = PlainToken::generate();
        let mut forged = b.expose().to_owned().into_bytes();
        forged[20] = if forged[20] == b'a' { b'b' } else { b'a' };
        let text = format!(
            "x tsr_ tsr_short {} {}\n{}tsr_",
            a.expose(),
            String::from_utf8(forged).unwrap(),
            b.expose()
        );
        for chunk in [1, 3, 7, 39, 40, 41, 4096] {
            let mut scanner = TokenScanner::default();
            let mut found = Vec::new();
            for part in text.as_bytes().chunks(chunk) {
                scanner.feed(part, &mut |t| found.push(t.expose().to_owned()));
            }
            assert_eq!(found, vec![a.expose(), b.expose()], "chunk {chunk}");
            assert!(scanner.buf.len() < TOKEN_LEN);
        }
    }

    #[test]
    fn hash_depends_on_key() {
        let t = PlainToken::generate();
        let a = t.hash(&TokenHashKey([1; 32]));
        let b = t.hash(&TokenHashKey([2; 32]));
        assert_ne!(a, b);
        assert_eq!(a, t.hash(&TokenHashKey([1; 32])));
    }
}
