//! npm package names, validated by the rules npm applies to new packages.

use std::fmt;

/// A valid npm package name, scoped (`@scope/name`) or not. Once built, it is valid.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName {
    full: String,
    slash: Option<usize>,
}

impl fmt::Debug for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageName({})", self.full)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// Why a name is not acceptable, in npm's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid package name \"{name}\": {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

const RESERVED: &[&str] = &["node_modules", "favicon.ico"];

fn url_safe(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl PackageName {
    /// Validates `text` (already percent-decoded).
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let fail = |reason| {
            Err(NameError {
                name: text.chars().take(240).collect(),
                reason,
            })
        };
        if text.is_empty() {
            return fail("name length must be greater than zero");
        }
        if text.len() > 214 {
            return fail("name can no longer contain more than 214 characters");
        }
        if text.trim() != text {
            return fail("name cannot contain leading or trailing spaces");
        }
        if text
            .chars()
            .any(|c| c.to_lowercase().ne(std::iter::once(c)))
        {
            return fail("name can no longer contain capital letters");
        }
        if RESERVED.contains(&text) {
            return fail("name is reserved");
        }
        let (slash, bare) = if let Some(rest) = text.strip_prefix('@') {
            let Some((scope, bare)) = rest.split_once('/') else {
                return fail("scoped name must look like @scope/name");
            };
            if scope.is_empty() || !url_safe(scope) || scope.starts_with('.') {
                return fail("scope can only contain URL-friendly characters");
            }
            (Some(scope.len() + 1), bare)
        } else {
            (None, text)
        };
        if bare.is_empty() {
            return fail("name length must be greater than zero");
        }
        if bare.starts_with('.') || bare.starts_with('_') {
            return fail("name cannot start with a period or an underscore");
        }
        if !url_safe(bare) {
            return fail("name can only contain URL-friendly characters");
        }
        Ok(PackageName {
            full: text.to_owned(),
            slash,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// `acme` for `@acme/widget`.
    pub fn scope(&self) -> Option<&str> {
        self.slash.map(|i| &self.full[1..i])
    }

    /// `widget` for `@acme/widget`.
    pub fn bare(&self) -> &str {
        match self.slash {
            Some(i) => &self.full[i + 1..],
            None => &self.full,
        }
    }

    /// The conventional tarball file name: `widget-1.0.0.tgz`.
    pub fn tarball_file(&self, version: &str) -> String {
        format!("{}-{version}.tgz", self.bare())
    }

    /// The tarball path under the registry base: `@acme/widget/-/widget-1.0.0.tgz`.
    pub fn tarball_path(&self, version: &str) -> String {
        format!("{}/-/{}", self.full, self.tarball_file(version))
    }
}

/// Checks a version string is strict semver (as npm requires on publish).
pub fn valid_version(text: &str) -> bool {
    text.len() <= 256
        && !text.starts_with('v')
        && !text.starts_with('=')
        && nodejs_semver::Version::parse(text).is_ok_and(|v| v.to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_npm_names() {
        for ok in ["left-pad", "@acme/widget", "a.b_c", "x", "@a-b/c.d"] {
            assert!(PackageName::parse(ok).is_ok(), "{ok}");
        }
        let scoped = PackageName::parse("@acme/widget").unwrap();
        assert_eq!(scoped.scope(), Some("acme"));
        assert_eq!(scoped.bare(), "widget");
        assert_eq!(
            scoped.tarball_path("1.0.0"),
            "@acme/widget/-/widget-1.0.0.tgz"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "Caps",
            ".hidden",
            "_under",
            "a/b",
            "@acme",
            "@/x",
            "../etc",
            "a b",
            "node_modules",
            "a%2fb",
            "@acme/../x",
            "x\u{0}",
        ] {
            assert!(PackageName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PackageName::parse(&"a".repeat(215)).is_err());
    }

    #[test]
    fn versions_are_strict_semver() {
        for ok in ["1.0.0", "0.0.1-beta.1", "1.2.3+build.5"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in ["1.0", "v1.0.0", "latest", "01.0.0", ""] {
            assert!(!valid_version(bad), "{bad}");
        }
    }
}
