//! A publish body (`PUT /<name>`) as the registry reads it: `npm::publish_body::parse`,
//! then the in-place base64 decoding of the tarball, integrity and the tarball's
//! contents. Beyond "no panic", the parts are checked against `serde_json` reading
//! the same bytes: the streaming parser must not see a different body.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tessera::npm::integrity::{self, Digests};
use tessera::npm::name::valid_version;
use tessera::npm::publish_body::{self, PutBody};
use tessera::npm::tarball::{self, Limits};

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let Ok(parsed) = publish_body::parse(data, "fuzzer") else {
        return;
    };
    // What the streaming parser accepts is JSON that serde_json reads the same way.
    // The fields it skips are never read, so three things serde_json's `Value` refuses
    // may sit in them: invalid UTF-8 inside strings, and the two limits RFC 8259 lets
    // a reader set, nesting deeper than 128 and numbers beyond f64. Such a body is
    // still well-formed JSON, as serde_json's own skipping reader says.
    let whole = match serde_json::from_slice::<Value>(data) {
        Ok(whole) => whole,
        Err(e) => {
            let message = e.to_string();
            let value_limit = message.starts_with("recursion limit exceeded")
                || message.starts_with("number out of range");
            assert!(
                std::str::from_utf8(data).is_err() || value_limit,
                "accepted a body serde_json refuses: {message}"
            );
            serde_json::from_slice::<serde::de::IgnoredAny>(data)
                .expect("an accepted body is well-formed JSON");
            return;
        }
    };
    let PutBody::Publish(body) = parsed else {
        return;
    };
    // A null field reads as a missing one.
    let sent = |field: &str| whole.get(field).filter(|v| !v.is_null());
    assert_eq!(body.name.as_ref(), sent("name"));
    assert_eq!(body.id.as_ref(), sent("_id"));
    // `versions` may be missing or null (the registry then refuses the publish for
    // sending no version), never another type.
    let no_versions = serde_json::Map::new();
    let sent_versions = match whole.get("versions") {
        None | Some(Value::Null) => &no_versions,
        Some(v) => v.as_object().expect("versions is an object"),
    };
    assert_eq!(body.versions.len(), sent_versions.len());
    for (version, manifest) in &body.versions {
        assert_eq!(Some(manifest), sent_versions.get(version));
        if valid_version(version) {
            let parsed = nodejs_semver::Version::parse(version).expect("a valid version parses");
            assert_eq!(parsed.to_string(), *version);
        }
    }
    if let Some(tags) = &body.dist_tags {
        for tag in tags.keys() {
            let reads_as_range = nodejs_semver::Range::parse(tag).is_ok();
            if valid_version(tag) {
                assert!(
                    reads_as_range,
                    "version-shaped tag {tag:?} would be accepted"
                );
            }
        }
    }
    let Some(attachment) = body.attachments.first() else {
        return;
    };
    let Some(span) = attachment.data else {
        return;
    };
    // The in-place decoder against serde_json's unescaping and the base64 crate.
    let text = whole["_attachments"][&attachment.file]["data"]
        .as_str()
        .expect("an attachment's data span is a string");
    let expected = STANDARD.decode(text).ok();
    let mut buf = data.to_vec();
    let decoded = publish_body::decode_attachment(&mut buf, span)
        .ok()
        .map(|()| buf);
    assert_eq!(
        decoded, expected,
        "in-place decoding differs from the base64 crate"
    );
    let Some(bytes) = decoded else {
        return;
    };
    let digests = integrity::digest(&bytes);
    assert!(integrity::matches_declared(&digests.integrity, &digests));
    for manifest in body.versions.values() {
        let dist = manifest.get("dist");
        if let Some(sri) = dist
            .and_then(|d| d.get("integrity"))
            .and_then(Value::as_str)
        {
            check_declared(sri, &digests);
        }
        if let Some(sum) = dist.and_then(|d| d.get("shasum")).and_then(Value::as_str) {
            // A shasum is compared as hex; declaring it as an SRI `sha1-` entry is the same claim.
            if let Ok(raw) = hex::decode(sum) {
                let sri = format!("sha1-{}", STANDARD.encode(raw));
                assert_eq!(
                    integrity::matches_declared(&sri, &digests),
                    sum.eq_ignore_ascii_case(&digests.shasum)
                );
            }
        }
    }
    // The registry inspects only tarballs whose integrity matched; the fuzzer cannot
    // forge a sha512, so every decoded attachment is inspected here.
    if let Ok(facts) = tarball::inspect(&bytes, &Limits::default()) {
        assert!(facts.file_count >= 1, "a manifest was found in no file");
    }
}

/// `matches_declared` never panics, and it says yes only if some entry of the
/// declared string names the tarball's own sha512 or sha1.
fn check_declared(sri: &str, digests: &Digests) {
    if integrity::matches_declared(sri, digests) {
        let sha512 = &digests.integrity["sha512-".len()..];
        let named = sri.split_whitespace().any(|item| {
            let item = item.split('?').next().unwrap_or(item);
            item.strip_prefix("sha512-") == Some(sha512)
                || item
                    .strip_prefix("sha1-")
                    .and_then(|b64| STANDARD.decode(b64).ok())
                    .is_some_and(|raw| hex::encode(raw) == digests.shasum)
        });
        assert!(named, "{sri:?} accepted for {digests:?}");
    }
}
