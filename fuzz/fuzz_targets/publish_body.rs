//! A publish body (`PUT /<name>`) as the registry reads it. Until the publish-body
//! parser is its own pure module, this target drives the pure steps
//! `domain::publish` takes, in its order: the JSON document, the package name
//! (`name`/`_id`), the one version key, the attachment's base64 and declared length,
//! integrity against `dist.integrity`/`dist.shasum`, the tarball's package.json and
//! the dist-tags. When `tessera::npm::publish_body` lands, replace the call in
//! `fuzz_target!` with it (and delete `pure_steps`).
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tessera::npm::integrity::{self, Digests};
use tessera::npm::name::{PackageName, valid_version};
use tessera::npm::tarball;

fuzz_target!(|data: &[u8]| pure_steps(data));

fn pure_steps(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(obj) = body.as_object() else {
        return;
    };
    // The URL names the package; the body's `name` and `_id` must agree with it.
    let Some(text) = obj
        .get("name")
        .or_else(|| obj.get("_id"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let Ok(name) = PackageName::parse(text) else {
        return;
    };
    assert_eq!(PackageName::parse(name.as_str()).as_ref(), Ok(&name));
    let Some(versions) = obj.get("versions").and_then(Value::as_object) else {
        return;
    };
    let Some((version, manifest)) = versions.iter().next() else {
        return;
    };
    if valid_version(version) {
        let parsed = nodejs_semver::Version::parse(version).expect("a valid version parses");
        assert_eq!(parsed.to_string(), *version);
    }
    let Some(attachments) = obj.get("_attachments").and_then(Value::as_object) else {
        return;
    };
    let attachment = attachments
        .get(&format!("{name}-{version}.tgz"))
        .or_else(|| attachments.get(&name.tarball_file(version)))
        // The registry refuses other file names; reading the first attachment anyway
        // keeps mutated names from hiding the steps after it.
        .or_else(|| attachments.values().next());
    let Some(data) = attachment
        .and_then(|a| a.get("data"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let Ok(bytes) = STANDARD.decode(data) else {
        return;
    };
    let digests = integrity::digest(&bytes);
    assert!(integrity::matches_declared(&digests.integrity, &digests));
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
    // The registry inspects only tarballs whose integrity matched; the fuzzer cannot
    // forge a sha512, so every decoded attachment is inspected here.
    if let Ok(facts) = tarball::inspect(&bytes)
        && facts.manifest.is_some()
    {
        assert!(facts.file_count >= 1);
    }
    if let Some(tags) = obj.get("dist-tags").and_then(Value::as_object) {
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
