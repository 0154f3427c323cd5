//! Dist-tag names. One rule for every way a tag is set: the dist-tag endpoint
//! (`npm dist-tag add`) and the `dist-tags` of a publish body (`npm publish --tag`).

/// Why a tag name is refused; the text is what npm prints after the status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("invalid dist-tag {0:?}: a tag is 1 to 128 characters without spaces, `/` or `%`")]
    Malformed(String),
    /// npm resolves `pkg@<range>` as a range, so such a tag could never be installed.
    #[error("dist-tag {0:?} looks like a version range")]
    LooksLikeRange(String),
}

/// Checks a dist-tag name.
pub fn validate(tag: &str) -> Result<(), TagError> {
    let shown = || tag.chars().take(140).collect::<String>();
    if tag.is_empty()
        || tag.len() > 128
        || tag
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '%')
    {
        return Err(TagError::Malformed(shown()));
    }
    if nodejs_semver::Range::parse(tag).is_ok() {
        return Err(TagError::LooksLikeRange(shown()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for ok in ["latest", "next", "beta", "v2-lts", "canary.1", "rc"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for range in ["1.0.0", "^1", "1.x", ">=2", "*", "1 - 2", "v1"] {
            assert!(
                matches!(validate(range), Err(TagError::LooksLikeRange(_)))
                    || matches!(validate(range), Err(TagError::Malformed(_))),
                "{range}"
            );
        }
        for bad in ["", "a b", "a/b", "100%", "tab\there", "nul\u{0}"] {
            assert!(
                matches!(validate(bad), Err(TagError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(validate(&"t".repeat(129)).is_err());
        assert!(validate(&"t".repeat(128)).is_ok());
    }
}
