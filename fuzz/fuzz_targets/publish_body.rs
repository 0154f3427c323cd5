//! A publish body (`PUT /<name>`) as the registry reads it: `npm::publish_body::parse`,
//! then the in-place base64 decoding of the tarball, integrity and the tarball's
//! contents. Beyond "no panic", the parts are checked against `serde_json` reading
//! the same bytes: the streaming parser must not see a different body.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use tessera::npm::integrity::{self, Digests};
use tessera::npm::name::valid_version;
use tessera::npm::publish_body::{self, PutBody};
use tessera::npm::tarball::{self, Limits};

fuzz_target!(|data: &[u8]| check(data));

/// The fields of a publish the registry reads, as serde_json reads them (a null
/// field reads as a missing one); serde_json skips every other field.
#[derive(Deserialize)]
struct Read {
    name: Option<Value>,
    #[serde(rename = "_id")]
    id: Option<Value>,
    /// A map of values, as the parser reads it: as one `Value`, serde_json would take
    /// a first key equal to its private raw-value token for a raw value and refuse.
    versions: Option<Map<String, Value>>,
    #[serde(rename = "_attachments")]
    attachments: Option<BTreeMap<String, ReadAttachment>>,
}

/// An attachment's data is kept as text, never read as a JSON string: the parser
/// keeps its position and the in-place decoder reads it (and refuses any escape
/// that cannot be base64, such as a lone surrogate).
#[derive(Deserialize)]
struct ReadAttachment {
    data: Option<Box<RawValue>>,
}

fn check(data: &[u8]) {
    let Ok(parsed) = publish_body::parse(data, "fuzzer") else {
        return;
    };
    // What the streaming parser accepts is well-formed JSON, and the fields it reads
    // are what serde_json reads in them. The fields it skips are never read, and
    // serde_json skips them the same way; they may hold what serde_json's `Value`
    // refuses but JSON allows (invalid UTF-8 or lone surrogates in strings, nesting
    // past 128, numbers beyond f64), so the comparison reads only the parser's fields.
    serde_json::from_slice::<IgnoredAny>(data).expect("an accepted body is well-formed JSON");
    let PutBody::Publish(body) = parsed else {
        return;
    };
    let read: Read = match serde_json::from_slice(data) {
        Ok(read) => read,
        Err(e) => panic!("accepted a publish whose fields serde_json refuses: {e}"),
    };
    assert_eq!(body.name, read.name);
    assert_eq!(body.id, read.id);
    // `versions` may be missing or null (the registry then refuses the publish for
    // sending no version), never another type.
    let no_versions = Map::new();
    let sent_versions = read.versions.as_ref().unwrap_or(&no_versions);
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
    let raw = read
        .attachments
        .as_ref()
        .and_then(|all| all.get(&attachment.file))
        .and_then(|a| a.data.as_ref())
        .expect("an attachment with a data span has data");
    assert!(raw.get().starts_with('"'), "a data span is a string");
    let expected = serde_json::from_str::<String>(raw.get())
        .ok()
        .and_then(|text| STANDARD.decode(text).ok());
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
