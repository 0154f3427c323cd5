//! Provenance attestations (`npm publish --provenance`): the Sigstore bundle sent as a
//! second attachment is checked against the tarball and its DSSE signature, kept
//! with the version, and served at `/-/npm/v1/attestations/<name>@<version>` and in
//! `dist.attestations` under the packument's access decision.
//!
//! The bundles are built here as npm builds them: a P-256 key and a certificate for
//! it (self-signed, made with rcgen), an in-toto statement about the tarball, and a
//! DSSE envelope signing it.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::publish_rules::{body_with, manifest_tgz};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SLSA: &str = "https://slsa.dev/provenance/v1";

/// A signing key and the DER certificate of its public key.
struct TestSigner {
    key: SigningKey,
    cert: Vec<u8>,
}

fn signer() -> TestSigner {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["ci.example".to_owned()]).unwrap();
    let cert = params.self_signed(&pair).unwrap();
    TestSigner {
        key: SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap(),
        cert: cert.der().to_vec(),
    }
}

/// An in-toto statement naming `purl` with the SHA-512 `sha512_hex`.
fn statement(purl: &str, sha512_hex: &str) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": purl, "digest": {"sha512": sha512_hex}}],
        "predicateType": SLSA,
        "predicate": {"buildDefinition": {
            "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
            "externalParameters": {"workflow": {
                "ref": "refs/heads/main", "repository": "https://github.com/acme/widget",
                "path": ".github/workflows/release.yml"}}}}
    })
}

fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A v0.3 bundle whose envelope carries `payload` and a signature over `signed`.
fn bundle_signing(s: &TestSigner, payload: &[u8], signed: &[u8]) -> Value {
    let payload_type = "application/vnd.in-toto+json";
    let sig: DerSignature = s.key.sign(&pae(payload_type, signed));
    json!({
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": B64.encode(&s.cert)},
            "tlogEntries": []
        },
        "dsseEnvelope": {
            "payload": B64.encode(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(sig.as_bytes()), "keyid": ""}]
        }
    })
}

fn bundle(s: &TestSigner, statement: &Value) -> Value {
    let payload = serde_json::to_vec(statement).unwrap();
    bundle_signing(s, &payload, &payload)
}

fn purl_of(name: &str, version: &str) -> String {
    match name.strip_prefix('@') {
        Some(rest) => format!("pkg:npm/%40{rest}@{version}"),
        None => format!("pkg:npm/{name}@{version}"),
    }
}

/// A publish body for `name@version` and its tarball's SHA-512 (hex).
fn body_for(name: &str, version: &str) -> (Value, String) {
    let manifest = json!({"name": name, "version": version});
    let tgz = manifest_tgz(&manifest, &[("index.js", b"module.exports = 1;\n")]);
    let sha = tessera::npm::integrity::digest(&tgz).sha512_hex;
    (body_with(&manifest, &tgz), sha)
}

/// Adds `bundle_text` to `body` as npm does: a plain JSON string, not base64.
fn with_bundle_text(mut body: Value, name: &str, version: &str, bundle_text: String) -> Value {
    let len = bundle_text.len();
    body["_attachments"][format!("{name}-{version}.sigstore")] =
        json!({"content_type": MEDIA_TYPE, "data": bundle_text, "length": len});
    body
}

fn with_bundle(body: Value, name: &str, version: &str, bundle: &Value) -> Value {
    with_bundle_text(body, name, version, bundle.to_string())
}

/// A publish body of `name@version` carrying a bundle that matches its tarball.
fn signed_body(s: &TestSigner, name: &str, version: &str) -> Value {
    let (body, sha) = body_for(name, version);
    let b = bundle(s, &statement(&purl_of(name, version), &sha));
    with_bundle(body, name, version, &b)
}

fn put(server: &TestServer, token: &str, name: &str, body: &Value) -> (u16, String) {
    let r = server
        .request(
            Method::PUT,
            &format!("/{}", name.replace('/', "%2f")),
            Some(token),
        )
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let json: Value = r.json().unwrap_or(Value::Null);
    (status, json["error"].as_str().unwrap_or("").to_owned())
}

#[track_caller]
fn refused(server: &TestServer, token: &str, name: &str, body: &Value, needle: &str) {
    let (status, error) = put(server, token, name, body);
    assert_eq!(status, 400, "{error}");
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    assert!(error.contains(".sigstore"), "names the attachment: {error}");
}

#[test]
fn a_signed_bundle_is_kept_and_served() {
    on_both_databases(kept_and_served);
}

fn kept_and_served(server: TestServer) {
    let token = server.signup("alice");
    let s = signer();
    for name in ["prov-t", "@alice/prov"] {
        let (body, sha) = body_for(name, "1.0.0");
        let b = bundle(&s, &statement(&purl_of(name, "1.0.0"), &sha));
        let mut body = with_bundle(body, name, "1.0.0", &b);
        body["access"] = json!("public");
        let (status, error) = put(&server, &token, name, &body);
        assert_eq!(status, 200, "{name}: {error}");

        let path = format!("/{}", name.replace('/', "%2f"));
        let full: Value = server.get(&path, None).json().unwrap();
        let expected_url = format!("{}/-/npm/v1/attestations/{name}@1.0.0", server.url);
        assert_eq!(
            full["versions"]["1.0.0"]["dist"]["attestations"],
            json!({"url": expected_url, "provenance": {"predicateType": SLSA}}),
            "{name}"
        );
        let corgi: Value = server
            .request(Method::GET, &path, None)
            .header("accept", "application/vnd.npm.install-v1+json")
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            corgi["versions"]["1.0.0"]["dist"]["attestations"]["url"],
            json!(expected_url)
        );

        let served = server.get(&format!("/-/npm/v1/attestations/{name}@1.0.0"), None);
        assert_eq!(served.status(), 200, "{name}");
        let served: Value = served.json().unwrap();
        assert_eq!(
            served,
            json!({"attestations": [{"predicateType": SLSA, "bundle": b}]})
        );
        // As npm asks for a scoped name: the scope's `@` and slash encoded.
        let encoded = name.replace('@', "%40").replace('/', "%2f");
        assert_eq!(
            server
                .get(&format!("/-/npm/v1/attestations/{encoded}@1.0.0"), None)
                .status(),
            200
        );
    }
    // A version without a bundle has neither.
    let (plain, _) = body_for("prov-t", "1.1.0");
    assert_eq!(put(&server, &token, "prov-t", &plain).0, 200);
    let full: Value = server.get("/prov-t", None).json().unwrap();
    assert!(
        full["versions"]["1.1.0"]["dist"]
            .get("attestations")
            .is_none()
    );
    assert_eq!(
        server
            .get("/-/npm/v1/attestations/prov-t@1.1.0", None)
            .status(),
        404
    );
    assert_eq!(
        server
            .get("/-/npm/v1/attestations/prov-t@9.9.9", None)
            .status(),
        404
    );
    assert_eq!(
        server
            .get("/-/npm/v1/attestations/nothing-here@1.0.0", None)
            .status(),
        404
    );
}

#[test]
fn bundles_that_do_not_match_are_refused() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let s = signer();
    let name = "prov-bad";
    let (body, sha) = body_for(name, "1.0.0");
    let good = statement(&purl_of(name, "1.0.0"), &sha);

    // Another tarball's digest.
    let other = statement(&purl_of(name, "1.0.0"), &"ab".repeat(64));
    let b = with_bundle(body.clone(), name, "1.0.0", &bundle(&s, &other));
    refused(
        &server,
        &token,
        name,
        &b,
        "does not match the uploaded tarball",
    );

    // Another package, another version.
    for purl in [purl_of("prov-other", "1.0.0"), purl_of(name, "1.0.1")] {
        let b = with_bundle(
            body.clone(),
            name,
            "1.0.0",
            &bundle(&s, &statement(&purl, &sha)),
        );
        refused(&server, &token, name, &b, "is not about prov-bad@1.0.0");
    }

    // The payload changed after signing.
    let signed = serde_json::to_vec(&good).unwrap();
    let mut tampered_statement = good.clone();
    tampered_statement["predicate"]["buildDefinition"]["externalParameters"]["workflow"]["repository"] =
        json!("https://github.com/mallory/widget");
    let tampered = serde_json::to_vec(&tampered_statement).unwrap();
    let b = with_bundle(
        body.clone(),
        name,
        "1.0.0",
        &bundle_signing(&s, &tampered, &signed),
    );
    refused(&server, &token, name, &b, "signature does not verify");

    // Signed by a key other than the certificate's.
    let mut forged = bundle(&s, &good);
    forged["verificationMaterial"]["certificate"]["rawBytes"] = json!(B64.encode(signer().cert));
    let b = with_bundle(body.clone(), name, "1.0.0", &forged);
    refused(&server, &token, name, &b, "signature does not verify");

    // No predicateType.
    let mut no_predicate = good.clone();
    no_predicate
        .as_object_mut()
        .unwrap()
        .remove("predicateType");
    let b = with_bundle(body.clone(), name, "1.0.0", &bundle(&s, &no_predicate));
    refused(&server, &token, name, &b, "predicateType");

    // Malformed: not JSON, an unknown media type, not a DSSE bundle, a certificate
    // that is not one, a bundle too large.
    let b = with_bundle_text(body.clone(), name, "1.0.0", "{not json".into());
    refused(&server, &token, name, &b, "not valid JSON");
    let mut unknown = bundle(&s, &good);
    unknown["mediaType"] = json!("application/vnd.dev.sigstore.bundle.v9+json");
    let b = with_bundle(body.clone(), name, "1.0.0", &unknown);
    refused(
        &server,
        &token,
        name,
        &b,
        "unknown provenance bundle mediaType",
    );
    let b = with_bundle(
        body.clone(),
        name,
        "1.0.0",
        &json!({"mediaType": MEDIA_TYPE}),
    );
    refused(&server, &token, name, &b, "dsseEnvelope");
    let mut not_a_cert = bundle(&s, &good);
    not_a_cert["verificationMaterial"]["certificate"]["rawBytes"] = json!("AAAA");
    let b = with_bundle(body.clone(), name, "1.0.0", &not_a_cert);
    refused(&server, &token, name, &b, "not valid DER");
    let mut payload_type = bundle(&s, &good);
    payload_type["dsseEnvelope"]["payloadType"] = json!("text/plain");
    let b = with_bundle(body.clone(), name, "1.0.0", &payload_type);
    refused(&server, &token, name, &b, "payloadType");
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let b = with_bundle_text(body.clone(), name, "1.0.0", huge);
    refused(&server, &token, name, &b, "KiB");
    let mut not_string = body.clone();
    not_string["_attachments"][format!("{name}-1.0.0.sigstore")] = json!({"data": 5});
    let (status, _) = put(&server, &token, name, &not_string);
    assert_eq!(status, 400);

    // Nothing was published by any of these; the good one is.
    assert_eq!(server.get(&format!("/{name}"), None).status(), 404);
    let b = with_bundle(body, name, "1.0.0", &bundle(&s, &good));
    let (status, error) = put(&server, &token, name, &b);
    assert_eq!(status, 200, "{error}");
}

#[test]
fn a_private_package_keeps_its_attestations_private() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let mallory = server.signup("mallory");
    let s = signer();
    let name = "@alice/hidden";
    // `access` null on a scoped name: restricted.
    let b = signed_body(&s, name, "1.0.0");
    let (status, error) = put(&server, &alice, name, &b);
    assert_eq!(status, 200, "{error}");
    let path = "/-/npm/v1/attestations/@alice/hidden@1.0.0";
    assert_eq!(server.get(path, Some(&alice)).status(), 200);
    for stranger in [Some(mallory.as_str()), None] {
        let packument = server.get("/@alice%2fhidden", stranger).status().as_u16();
        let attestations = server.get(path, stranger);
        let status = attestations.status().as_u16();
        assert_ne!(status, 200);
        // The same answer as the packument: nothing about the package leaks.
        assert_eq!(status, packument);
        assert!(!attestations.text().unwrap().contains("dsseEnvelope"));
    }
}

#[test]
fn npm_installs_a_package_with_attestations_and_its_page_names_the_build() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let s = signer();
    let name = "prov-install";
    let b = signed_body(&s, name, "1.0.0");
    let (status, error) = put(&server, &token, name, &b);
    assert_eq!(status, 200, "{error}");
    let consumer = server.npm(Some(&token));
    consumer.run(&["install", "prov-install@1.0.0"]).ok();
    let installed = consumer.work().join("node_modules/prov-install/index.js");
    assert!(installed.exists());

    // The package page says what the statement names as the build.
    let (plain, _) = body_for("prov-plain", "1.0.0");
    assert_eq!(put(&server, &token, "prov-plain", &plain).0, 200);
    let web = http_session(&server, "alice");
    let (status, page) = web.get("/package/prov-install");
    assert_eq!(status, 200);
    assert!(
        page.contains("built by https://github.com/acme/widget / .github/workflows/release.yml"),
        "{page}"
    );
    let (status, page) = web.get("/package/prov-plain");
    assert_eq!(status, 200);
    assert!(!page.contains("id=\"provenance\""), "{page}");
}

#[test]
fn a_staged_version_keeps_its_bundle_through_approval() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let s = signer();
    let name = "prov-staged";
    let (first, _) = body_for(name, "1.0.0");
    assert_eq!(put(&server, &token, name, &first).0, 200);

    // A bad bundle is refused at staging too.
    let (body, sha) = body_for(name, "1.1.0");
    let wrong = bundle(&s, &statement(&purl_of(name, "1.1.0"), &"00".repeat(64)));
    let r = server
        .request(
            Method::POST,
            &format!("/-/stage/package/{name}"),
            Some(&token),
        )
        .json(&with_bundle(body.clone(), name, "1.1.0", &wrong))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    let b = bundle(&s, &statement(&purl_of(name, "1.1.0"), &sha));
    let r = server
        .request(
            Method::POST,
            &format!("/-/stage/package/{name}"),
            Some(&token),
        )
        .json(&with_bundle(body, name, "1.1.0", &b))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["stageId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not served before the approval.
    let path = format!("/-/npm/v1/attestations/{name}@1.1.0");
    assert_eq!(server.get(&path, Some(&token)).status(), 404);
    let r = server
        .request(
            Method::POST,
            &format!("/-/stage/{id}/approve"),
            Some(&token),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let served: Value = server.get(&path, Some(&token)).json().unwrap();
    assert_eq!(served["attestations"][0]["bundle"], b);
    let full: Value = server.get(&format!("/{name}"), None).json().unwrap();
    assert_eq!(
        full["versions"]["1.1.0"]["dist"]["attestations"]["provenance"]["predicateType"],
        json!(SLSA)
    );
}

#[test]
fn older_bundles_carry_the_certificate_in_a_chain() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let s = signer();
    let name = "prov-v02";
    let (body, sha) = body_for(name, "1.0.0");
    let mut b = bundle(&s, &statement(&purl_of(name, "1.0.0"), &sha));
    let media_type = "application/vnd.dev.sigstore.bundle+json;version=0.2";
    b["mediaType"] = json!(media_type);
    b["verificationMaterial"] = json!({"x509CertificateChain": {"certificates": [
        {"rawBytes": B64.encode(&s.cert)}, {"rawBytes": B64.encode(signer().cert)}]}});
    let mut sent = with_bundle(body, name, "1.0.0", &b);
    // The attachment's content type must be the bundle's own.
    let (status, error) = put(&server, &token, name, &sent);
    assert_eq!(status, 400);
    assert!(
        error.contains("differs from the bundle's mediaType"),
        "{error}"
    );
    sent["_attachments"][format!("{name}-1.0.0.sigstore")]["content_type"] = json!(media_type);
    let (status, error) = put(&server, &token, name, &sent);
    assert_eq!(status, 200, "{error}");
    let served: Value = server
        .get(&format!("/-/npm/v1/attestations/{name}@1.0.0"), None)
        .json()
        .unwrap();
    assert_eq!(served["attestations"][0]["bundle"], b);
}
