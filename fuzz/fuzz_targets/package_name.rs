//! `PackageName::parse`: any text either fails with npm's message or yields a name
//! that is exactly the input, re-parses to itself and is safe as a path and a URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::npm::name::PackageName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PackageName::parse(text) {
        Ok(name) => {
            assert_eq!(name.as_str(), text);
            assert_eq!(name.to_string(), text);
            assert_eq!(PackageName::parse(name.as_str()).as_ref(), Ok(&name));
            assert!(text.len() <= 214);
            // URL-friendly: one slash at most, and only after a scope.
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.' | b'@' | b'/')),
                "{text:?}"
            );
            match name.scope() {
                Some(scope) => {
                    assert_eq!(format!("@{scope}/{}", name.bare()), text);
                    assert!(!scope.is_empty() && !scope.contains(['/', '@']));
                }
                None => assert_eq!(name.bare(), text),
            }
            let bare = name.bare();
            assert!(!bare.is_empty() && !bare.contains(['/', '@']));
            // No path component can climb out of the storage or URL tree.
            for part in text.split('/') {
                assert!(
                    part != "." && part != ".." && !part.starts_with('.'),
                    "{text:?}"
                );
            }
            assert!(
                name.tarball_path("1.0.0")
                    .starts_with(&format!("{text}/-/{bare}-"))
            );
        }
        Err(err) => {
            assert!(err.name.chars().count() <= 240);
            assert!(text.starts_with(&err.name));
            assert!(err.to_string().starts_with("Invalid package name"));
        }
    }
});
