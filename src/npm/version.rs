//! Version identity. Semver build metadata does not make a different version
//! (`1.0.5` and `1.0.5+evil` have the same precedence and npm's `semver.clean` drops
//! the `+…` part), so the registry keys versions by the version without it: a key is
//! published at most once per package name, ever.

use super::name::valid_version;

/// The identity of a valid version: the version without build metadata.
pub fn key(version: &str) -> &str {
    version.split_once('+').map_or(version, |(core, _)| core)
}

/// What npm's `semver.clean` makes of a `package.json` version (surrounding spaces and
/// leading `=`/`v` removed, build metadata dropped), if it is a version at all. The
/// npm CLI publishes this, while the tarball keeps the file as written.
pub fn clean(text: &str) -> Option<&str> {
    let trimmed = text.trim().trim_start_matches(['=', 'v']);
    valid_version(trimmed).then(|| key(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_metadata_is_not_part_of_the_identity() {
        assert_eq!(key("1.0.5"), "1.0.5");
        assert_eq!(key("1.0.5+evil"), "1.0.5");
        assert_eq!(key("1.0.5-rc.1+build.7"), "1.0.5-rc.1");
        assert_eq!(
            key("1.0.5-RC.1"),
            "1.0.5-RC.1",
            "prerelease case is significant"
        );
    }

    #[test]
    fn clean_matches_what_npm_publishes() {
        // Observed with npm 11.19.1: the body carries the cleaned version.
        assert_eq!(clean("1.0.5+evil"), Some("1.0.5"));
        assert_eq!(clean("v1.0.6"), Some("1.0.6"));
        assert_eq!(clean(" 2.0.0 "), Some("2.0.0"));
        assert_eq!(clean("=1.0.0-BETA.1"), Some("1.0.0-BETA.1"));
        assert_eq!(clean("1.0"), None);
        assert_eq!(clean("latest"), None);
        assert_eq!(clean(""), None);
    }
}
