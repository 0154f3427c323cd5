//! `PlainToken::parse` against an independent reading of the documented format:
//! `tsr_` + 30 base62 characters + the CRC32 of those 30 in 6 base62 digits. The
//! input is parsed as given, and its first 30 bytes are also turned into a token
//! with a correct checksum, so every run exercises the accepting path too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::crypto::token_format::{PlainToken, TOKEN_LEN, TOKEN_PREFIX, TokenFormatError};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn digit(b: u8) -> Option<u64> {
    BASE62.iter().position(|&c| c == b).map(|p| p as u64)
}

/// The format read from the documentation, written without the parser's code.
fn well_formed(text: &str) -> bool {
    let Some(body) = text.strip_prefix("tsr_") else {
        return false;
    };
    if body.len() != 36 || !body.bytes().all(|b| digit(b).is_some()) {
        return false;
    }
    let (random, sum) = body.split_at(30);
    let declared = sum
        .bytes()
        .try_fold(0u64, |n, b| n.checked_mul(62)?.checked_add(digit(b)?));
    declared == Some(u64::from(crc32fast::hash(random.as_bytes())))
}

fn with_checksum(random: &str) -> String {
    let mut value = u64::from(crc32fast::hash(random.as_bytes()));
    let mut sum = [b'0'; 6];
    for slot in sum.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    format!("tsr_{random}{}", std::str::from_utf8(&sum).unwrap())
}

/// Checks `text`; for an accepted token, also that each `(position, character)`
/// substitution in `typos` is refused.
fn check(text: &str, typos: impl Iterator<Item = (usize, u8)>) {
    let parsed = PlainToken::parse(text);
    assert_eq!(parsed.is_ok(), well_formed(text), "{text:?}: {parsed:?}");
    match parsed {
        Ok(token) => {
            assert_eq!(token.expose(), text);
            assert_eq!(text.len(), TOKEN_LEN);
            assert!(PlainToken::parse(token.expose()).is_ok());
            let prefix = token.display_prefix();
            assert!(text.starts_with(&prefix) && prefix.len() == TOKEN_PREFIX.len() + 4);
            assert!(text.ends_with(&token.last_four()));
            let debug = format!("{token:?}");
            assert!(
                !debug.contains(&text[8..]),
                "Debug shows the secret: {debug}"
            );
            for (i, other) in typos {
                // CRC32 catches every single-character change: a mistyped token never passes.
                let mut bytes = text.as_bytes().to_vec();
                if bytes[i] != other {
                    bytes[i] = other;
                    let typo = std::str::from_utf8(&bytes).unwrap();
                    assert_eq!(
                        PlainToken::parse(typo).unwrap_err(),
                        TokenFormatError::Checksum,
                        "{typo:?}"
                    );
                }
            }
        }
        Err(TokenFormatError::Shape) => {
            assert!(!text.starts_with(TOKEN_PREFIX) || text.len() != TOKEN_LEN);
        }
        Err(TokenFormatError::Alphabet) => {
            assert!(
                !text[TOKEN_PREFIX.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
        }
        Err(TokenFormatError::Checksum) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A valid token given as input: every single-character typo.
        let all = (TOKEN_PREFIX.len()..TOKEN_LEN).flat_map(|i| BASE62.iter().map(move |&c| (i, c)));
        check(text, all);
    }
    if data.len() >= 30 {
        let random: String = data[..30]
            .iter()
            .map(|&b| BASE62[usize::from(b) % 62] as char)
            .collect();
        let token = with_checksum(&random);
        assert!(PlainToken::parse(&token).is_ok(), "{token:?}");
        // One typo chosen by the input.
        let position = TOKEN_PREFIX.len() + usize::from(*data.get(30).unwrap_or(&0)) % 36;
        let other = BASE62[usize::from(*data.get(31).unwrap_or(&0)) % 62];
        check(&token, std::iter::once((position, other)));
    }
});
