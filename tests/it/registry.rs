use serde_json::{Value, json};

use crate::harness::*;

fn installs(server: &TestServer, token: &str) {
    let npm = server.npm(Some(token));
    npm.publish("@alice/widget", "1.0.0", &[]).ok();
    npm.publish("left-pad-t", "1.0.0", &[]).ok();
    npm.publish("left-pad-t", "1.1.0", &[]).ok();

    // A clean install of both from a fresh cache, then `npm ci` from the lockfile.
    let consumer = server.npm(Some(token));
    let project = consumer.work();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"consumer","version":"1.0.0","dependencies":{"@alice/widget":"^1.0.0","left-pad-t":"^1.0.0"}}"#,
    )
    .unwrap();
    consumer.run(&["install"]).ok();
    let installed =
        std::fs::read_to_string(project.join("node_modules/left-pad-t/package.json")).unwrap();
    assert!(installed.contains("\"version\": \"1.1.0\""), "{installed}");
    assert!(project.join("node_modules/@alice/widget/index.js").exists());
    std::fs::remove_dir_all(project.join("node_modules")).unwrap();
    consumer.run(&["ci"]).ok();
    assert!(
        project
            .join("node_modules/@alice/widget/README.md")
            .exists()
    );

    let view = npm.run(&["view", "left-pad-t", "--json"]).ok();
    let doc: Value = serde_json::from_str(&view.stdout).unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert_eq!(doc["versions"], json!(["1.0.0", "1.1.0"]));
    assert_eq!(doc["_npmUser"], "alice <alice@example.com>");
}

#[test]
fn publish_install_and_ci_on_both_databases() {
    on_both_databases(|server| {
        let token = server.signup("alice");
        installs(&server, &token);
    });
}

#[test]
fn dist_tags_deprecate_and_unpublish() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let npm = server.npm(Some(&token));
    for v in ["1.0.0", "1.1.0", "2.0.0-beta.1"] {
        let flags: &[&str] = if v.contains("beta") {
            &["--tag", "next"]
        } else {
            &[]
        };
        npm.publish("tagged-t", v, flags).ok();
    }
    npm.run(&["dist-tag", "add", "tagged-t@1.0.0", "stable"])
        .ok();
    let ls = npm.run(&["dist-tag", "ls", "tagged-t"]).ok();
    assert!(ls.stdout.contains("stable: 1.0.0"), "{}", ls.stdout);
    assert!(ls.stdout.contains("next: 2.0.0-beta.1"), "{}", ls.stdout);
    assert!(ls.stdout.contains("latest: 1.1.0"), "{}", ls.stdout);
    npm.run(&["dist-tag", "rm", "tagged-t", "stable"]).ok();
    let ls = npm.run(&["dist-tag", "ls", "tagged-t"]).ok();
    assert!(!ls.stdout.contains("stable"), "{}", ls.stdout);
    // `latest` cannot be removed.
    let r = server
        .request(
            reqwest::Method::DELETE,
            "/-/package/tagged-t/dist-tags/latest",
            Some(&token),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    npm.run(&["deprecate", "tagged-t@1.0.0", "use 1.1"]).ok();
    let out = npm.run(&["view", "tagged-t@1.0.0", "deprecated"]).ok();
    assert_eq!(out.stdout.trim(), "use 1.1");
    npm.run(&["deprecate", "tagged-t@1.0.0", ""]).ok();
    let out = npm.run(&["view", "tagged-t@1.0.0", "deprecated"]).ok();
    assert_eq!(out.stdout.trim(), "");

    npm.run(&["unpublish", "tagged-t@1.1.0"]).ok();
    let versions = npm.run(&["view", "tagged-t", "versions", "--json"]).ok();
    let v: Value = serde_json::from_str(&versions.stdout).unwrap();
    assert_eq!(v, json!(["1.0.0", "2.0.0-beta.1"]));
    let latest = npm.run(&["view", "tagged-t", "dist-tags.latest"]).ok();
    assert_eq!(
        latest.stdout.trim(),
        "1.0.0",
        "latest moves to the highest remaining release"
    );
    let r = server.get("/tagged-t/-/tagged-t-1.1.0.tgz", Some(&token));
    assert_eq!(r.status(), 404);

    npm.run(&["unpublish", "tagged-t", "--force"]).ok();
    npm.run(&["view", "tagged-t"]).fails_with("E404");
    assert_eq!(
        server
            .get("/tagged-t/-/tagged-t-1.0.0.tgz", Some(&token))
            .status(),
        404
    );
}

#[test]
fn owners_access_search_ping_whoami_logout() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let npm = server.npm(Some(&alice));
    let bob_npm = server.npm(Some(&bob));
    npm.publish("@alice/shared", "1.0.0", &[]).ok();

    // Restricted by default: bob cannot see it at all.
    let status = npm.run(&["access", "get", "status", "@alice/shared"]).ok();
    assert!(
        status.stdout.contains("@alice/shared: private"),
        "{}",
        status.stdout
    );
    bob_npm.run(&["view", "@alice/shared"]).fails_with("E404");
    assert!(
        !bob_npm
            .run(&["search", "shared"])
            .stdout
            .contains("@alice/shared")
    );

    npm.run(&["owner", "add", "bob", "@alice/shared"]).ok();
    let owners = npm.run(&["owner", "ls", "@alice/shared"]).ok();
    assert!(
        owners.stdout.contains("alice <alice@example.com>")
            && owners.stdout.contains("bob <bob@example.com>")
    );
    bob_npm.run(&["view", "@alice/shared", "name"]).ok();
    let found = bob_npm.run(&["search", "shared"]).ok();
    assert!(found.stdout.contains("@alice/shared"), "{}", found.stdout);
    npm.run(&["owner", "rm", "bob", "@alice/shared"]).ok();
    bob_npm.run(&["view", "@alice/shared"]).fails_with("E404");

    npm.run(&["access", "set", "status=public", "@alice/shared"])
        .ok();
    let status = npm.run(&["access", "get", "status", "@alice/shared"]).ok();
    assert!(status.stdout.contains("@alice/shared: public"));
    server
        .npm(None)
        .run(&["view", "@alice/shared", "name"])
        .ok();
    npm.run(&["access", "set", "status=private", "@alice/shared"])
        .ok();
    server
        .npm(None)
        .run(&["view", "@alice/shared"])
        .fails_with("E404");

    let ping = server.npm(None).run(&["ping"]).ok();
    assert!(ping.all().contains("PONG"));
    assert_eq!(npm.run(&["whoami"]).ok().stdout.trim(), "alice");
    npm.run(&["logout"]).ok();
    // The token is revoked on the server, not only forgotten by npm.
    assert_eq!(server.get("/-/whoami", Some(&alice)).status(), 401);
}

#[test]
fn packuments_revalidate_with_etag_and_never_hide_new_versions() {
    let server = TestServer::start();
    let token = server.signup("alice");
    let npm = server.npm(Some(&token));
    npm.publish("etag-t", "1.0.0", &[]).ok();
    let first = server.get("/etag-t", None);
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let cache = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.contains("no-cache"), "{cache}");
    let again = server
        .request(reqwest::Method::GET, "/etag-t", None)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
    // Abbreviated form has its own tag and shape.
    let corgi = server
        .request(reqwest::Method::GET, "/etag-t", None)
        .header(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .send()
        .unwrap();
    assert_ne!(corgi.headers()["etag"].to_str().unwrap(), etag);
    let doc: Value = corgi.json().unwrap();
    assert!(doc.get("modified").is_some() && doc.get("_rev").is_none());
    npm.publish("etag-t", "1.0.1", &[]).ok();
    let after = server
        .request(reqwest::Method::GET, "/etag-t", None)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(after.status(), 200, "a new version changes the ETag");
    let doc: Value = after.json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.1");
    // npm install right after publishing sees the new version (no stale cache).
    let consumer = server.npm(None);
    consumer.run(&["install", "etag-t@1.0.0"]).ok();
    npm.publish("etag-t", "1.0.2", &[]).ok();
    let out = consumer.run(&["view", "etag-t", "version"]).ok();
    assert_eq!(out.stdout.trim(), "1.0.2");
}

#[test]
fn anonymous_read_can_be_switched_off() {
    let server = TestServer::builder()
        .config(|c| c.anonymous_read = false)
        .start();
    let token = server.signup("alice");
    server
        .npm(Some(&token))
        .publish("closed-t", "1.0.0", &[])
        .ok();
    let anonymous = server.get("/closed-t", None);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        server.get("/closed-t/-/closed-t-1.0.0.tgz", None).status(),
        401
    );
    server
        .npm(None)
        .run(&["install", "closed-t"])
        .fails_with("E401");
    server.npm(Some(&token)).run(&["install", "closed-t"]).ok();
}

/// `npm adduser` and `npm login` (legacy prompts on a terminal), `npm whoami`.
#[test]
fn adduser_and_login_through_the_couchdb_endpoint() {
    let server = TestServer::start();
    let npm = server.npm(None);
    let password = password_of("frank");
    let (status, out) = npm_on_pty(
        &npm,
        &["adduser", "--auth-type=legacy"],
        &[
            ("Username:", "frank"),
            ("Password:", &password),
            ("Email", "frank@example.com"),
        ],
    );
    assert_eq!(status, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().stdout.trim(), "frank");
    let again = server.npm(None);
    let (status, out) = npm_on_pty(
        &again,
        &["login", "--auth-type=legacy"],
        &[("Username:", "frank"), ("Password:", &password)],
    );
    assert_eq!(status, 0, "{out}");
    assert_eq!(again.run(&["whoami"]).ok().stdout.trim(), "frank");
    let wrong = server.npm(None);
    let (status, out) = npm_on_pty(
        &wrong,
        &["login", "--auth-type=legacy"],
        &[("Username:", "frank"), ("Password:", "not-the-password")],
    );
    assert_ne!(status, 0, "{out}");
    assert!(out.contains("E401"), "{out}");
}
