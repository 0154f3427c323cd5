//! Semver as the registry uses it (nodejs-semver): `valid_version` for published
//! versions, `Version::parse` for sorting, `Range::parse` to refuse dist-tags that
//! read as ranges. The input is one or two lines; the second is compared with the
//! first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodejs_semver::{Range, Version};
use std::cmp::Ordering;
use tessera::npm::name::valid_version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let a = check_one(first);
    let b = check_one(second);
    if let (Some(a), Some(b)) = (&a, &b) {
        // A total order, or sorting versions for `latest` would be unstable.
        assert_eq!(a.cmp(b), b.cmp(a).reverse());
        assert_eq!(a.cmp(b) == Ordering::Equal, a == b);
    }
    if let Ok(range) = Range::parse(first)
        && let Some(b) = &b
    {
        let _ = range.satisfies(b);
        let _ = range.max_satisfying(std::slice::from_ref(b));
    }
});

fn check_one(text: &str) -> Option<Version> {
    let version = Version::parse(text).ok();
    if let Some(v) = &version {
        // What we print for a version parses back to the same version.
        let shown = v.to_string();
        let again = Version::parse(&shown).expect("a printed version re-parses");
        assert_eq!(&again, v, "{text:?} printed as {shown:?}");
        assert_eq!(again.to_string(), shown);
    }
    if valid_version(text) {
        let v = version.as_ref().expect("a valid version parses");
        assert_eq!(v.to_string(), text);
        assert!(text.len() <= 256);
        // A dist-tag that reads as a range is refused, so no tag can look like a
        // published version.
        let range = Range::parse(text).expect("a valid version reads as a range");
        assert!(range.satisfies(v), "{text:?} does not satisfy itself");
    }
    if let Ok(range) = Range::parse(text) {
        let shown = range.to_string();
        Range::parse(&shown).expect("a printed range re-parses");
        if let Some(v) = &version {
            let _ = range.satisfies(v);
            let _ = range.satisfies_with_prerelease(v, true);
        }
    }
    version
}
