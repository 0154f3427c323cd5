use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// A gzipped tarball holding `package/package.json`.
pub fn tarball(name: &str, version: &str) -> Vec<u8> {
    let manifest = json!({"name": name, "version": version}).to_string();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "package/package.json", manifest.as_bytes())
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// The body `npm publish` sends.
pub fn publish_body(name: &str, version: &str) -> Value {
    let tgz = tarball(name, version);
    let digests = tessera::npm::integrity::digest(&tgz);
    json!({
        "_id": name, "name": name, "access": null,
        "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "_id": format!("{name}@{version}"),
            "dist": {"integrity": digests.integrity, "shasum": digests.shasum, "tarball": "http://x/y.tgz"}}},
        "_attachments": {format!("{name}-{version}.tgz"): {"content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(&tgz), "length": tgz.len()}}
    })
}

fn escaped(name: &str) -> String {
    name.replace('/', "%2f")
}

fn put(server: &TestServer, token: Option<&str>, name: &str, body: &Value) -> (u16, Value) {
    let r = server
        .request(Method::PUT, &format!("/{}", escaped(name)), token)
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn publish_rules() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        assert_eq!(
            put(
                &server,
                Some(&alice),
                "rules-t",
                &publish_body("rules-t", "1.0.0")
            )
            .0,
            200
        );
        // Only maintainers publish new versions.
        let (status, body) = put(
            &server,
            Some(&bob),
            "rules-t",
            &publish_body("rules-t", "1.0.1"),
        );
        assert_eq!(status, 403, "{body}");
        // Republishing a version uses npm's wording.
        let (status, body) = put(
            &server,
            Some(&alice),
            "rules-t",
            &publish_body("rules-t", "1.0.0"),
        );
        assert_eq!(status, 403);
        assert_eq!(
            body["error"],
            "You cannot publish over the previously published versions: 1.0.0."
        );
        // A user owns @username; another scope belongs to its first publisher.
        let (status, _) = put(
            &server,
            Some(&bob),
            "@alice/thing",
            &publish_body("@alice/thing", "1.0.0"),
        );
        assert_eq!(status, 403);
        assert_eq!(
            put(
                &server,
                Some(&bob),
                "@team/one",
                &publish_body("@team/one", "1.0.0")
            )
            .0,
            200
        );
        assert_eq!(
            put(
                &server,
                Some(&alice),
                "@team/two",
                &publish_body("@team/two", "1.0.0")
            )
            .0,
            403
        );
        assert_eq!(
            put(
                &server,
                Some(&bob),
                "@team/two",
                &publish_body("@team/two", "1.0.0")
            )
            .0,
            200
        );
        // Scoped packages are restricted unless published public.
        assert_eq!(server.get("/@team%2fone", None).status(), 404);
        assert_eq!(server.get("/@team%2fone", Some(&alice)).status(), 404);
        assert_eq!(server.get("/@team%2fone", Some(&bob)).status(), 200);
        assert_eq!(
            server
                .get("/@team/one/-/one-1.0.0.tgz", Some(&alice))
                .status(),
            404
        );
        let mut public = publish_body("@team/open", "1.0.0");
        public["access"] = json!("public");
        assert_eq!(put(&server, Some(&bob), "@team/open", &public).0, 200);
        assert_eq!(server.get("/@team%2fopen", None).status(), 200);
        assert_eq!(
            server.get("/@team/open/-/open-1.0.0.tgz", None).status(),
            200
        );
    });
}

#[test]
fn bad_input_gets_clear_4xx() {
    let server = TestServer::builder()
        .config(|c| c.max_body_bytes = 64 * 1024)
        .start();
    let token = server.signup("alice");
    let t = Some(token.as_str());
    let send = |path: &str, body: &str| {
        let r = server
            .request(Method::PUT, path, t)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let json: Value = r.json().unwrap_or(Value::Null);
        (status, json)
    };
    let (status, body) = send("/bad-t", "{not json");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("malformed JSON"));
    let big = format!("\"{}\"", "a".repeat(128 * 1024));
    assert_eq!(send("/bad-t", &big).0, 413);
    for path in [
        "/Bad-Name",
        "/..%2fetc%2fpasswd",
        "/@scope%2f..%2fx",
        "/.hidden",
        "/a%00b",
    ] {
        let (status, body) = send(path, &publish_body("x", "1.0.0").to_string());
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    let mut no_attachment = publish_body("bad-t", "1.0.0");
    no_attachment["_attachments"] = json!({"other.tgz": {"data": "AAAA"}});
    let (status, body) = send("/bad-t", &no_attachment.to_string());
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing attachment"),
        "{body}"
    );
    let mut wrong = publish_body("bad-t", "1.0.0");
    wrong["versions"]["1.0.0"]["dist"]["integrity"] =
        publish_body("bad-t", "9.9.9")["versions"]["9.9.9"]["dist"]["integrity"].clone();
    let (status, body) = send("/bad-t", &wrong.to_string());
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("integrity"),
        "{body}"
    );
    let (status, _) = send("/bad-t", &publish_body("other-name", "1.0.0").to_string());
    assert_eq!(status, 400, "name in body must match the URL");
    let mut bad_version = publish_body("bad-t", "1.0.0");
    bad_version["versions"] = json!({"latest": bad_version["versions"]["1.0.0"].clone()});
    assert_eq!(send("/bad-t", &bad_version.to_string()).0, 400);
    assert_eq!(server.get("/unknown-package-t", None).status(), 404);
    let anonymous = server
        .request(Method::PUT, "/bad-t", None)
        .json(&publish_body("bad-t", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // None of that stored anything.
    assert_eq!(server.get("/bad-t", None).status(), 404);
}

#[test]
fn concurrent_publishes_all_land_and_duplicates_have_one_winner() {
    on_both_databases(|server| {
        let token = server.signup("alice");
        assert_eq!(
            put(
                &server,
                Some(&token),
                "race-t",
                &publish_body("race-t", "0.0.1")
            )
            .0,
            200
        );
        let results: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..10)
                .map(|i| {
                    let server = &server;
                    let token = token.clone();
                    s.spawn(move || {
                        put(
                            server,
                            Some(&token),
                            "race-t",
                            &publish_body("race-t", &format!("1.0.{i}")),
                        )
                        .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|s| *s == 200), "{results:?}");
        let doc: Value = server.get("/race-t", None).json().unwrap();
        assert_eq!(doc["versions"].as_object().unwrap().len(), 11);
        let same: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let server = &server;
                    let token = token.clone();
                    s.spawn(move || {
                        put(
                            server,
                            Some(&token),
                            "race-t",
                            &publish_body("race-t", "2.0.0"),
                        )
                        .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(same.iter().filter(|s| **s == 200).count(), 1, "{same:?}");
        assert!(same.iter().all(|s| *s == 200 || *s == 403), "{same:?}");
    });
}
