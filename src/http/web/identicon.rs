//! Generated profile pictures: a symmetric 5×5 identicon derived from the user name,
//! as an SVG `data:` URI (allowed by the CSP's `img-src 'self' data:`).

use base64::Engine;
use sha2::{Digest, Sha256};

/// The identicon SVG for `name`.
pub fn svg(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    let hue = u16::from_be_bytes([hash[0], hash[1]]) % 360;
    let fill = format!("hsl({hue},55%,45%)");
    let mut rects = String::new();
    for row in 0..5u8 {
        for col in 0..3u8 {
            let bit = hash[2 + usize::from(row * 3 + col)] & 1 == 1;
            if !bit {
                continue;
            }
            for x in [col, 4 - col] {
                rects.push_str(&format!(
                    r#"<rect x="{}" y="{}" width="1" height="1"/>"#,
                    x + 1,
                    row + 1
                ));
                if col == 2 {
                    break;
                }
            }
        }
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 7 7" shape-rendering="crispEdges"><rect width="7" height="7" fill="#f2f3f5"/><g fill="{fill}">{rects}</g></svg>"##
    )
}

/// `data:image/svg+xml;base64,…` for `name`.
pub fn data_uri(name: &str) -> String {
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg(name))
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn identicons_are_stable_and_differ() {
        assert_eq!(super::svg("alice"), super::svg("alice"));
        assert_ne!(super::svg("alice"), super::svg("bob"));
        assert!(super::data_uri("alice").starts_with("data:image/svg+xml;base64,"));
    }
}
