//! Every client, every message: npm 11, pnpm 12, yarn 4 and bun 1.4 each log in,
//! publish, install from a fresh cache and from a frozen lockfile, read a private
//! package with a read-only token and are refused a publish with it, against a real
//! server. Each test prints its row of the client × operation table
//! (`scripts/test -E 'test(/clients::/)' --no-capture | grep '^client table'`).
//! pnpm's and npm's owner, collaborator and star commands are driven with the real
//! clients too.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// One client's results, printed as a table row when the test ends.
struct Row {
    client: Client,
    cells: Vec<(&'static str, String)>,
}

impl Row {
    fn new(client: Client) -> Row {
        Row {
            client,
            cells: Vec::new(),
        }
    }

    fn pass(&mut self, operation: &'static str) {
        self.cells.push((operation, "ok".into()));
    }

    fn note(&mut self, operation: &'static str, text: impl Into<String>) {
        self.cells.push((operation, text.into()));
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        let cells: Vec<String> = self
            .cells
            .iter()
            .map(|(op, result)| format!("{op}: {result}"))
            .collect();
        println!(
            "client table | {} | {}",
            self.client.name(),
            cells.join(" | ")
        );
    }
}

fn installed(dir: &std::path::Path, package: &str) -> String {
    std::fs::read_to_string(dir.join("node_modules").join(package).join("index.js"))
        .unwrap_or_else(|e| panic!("{package} is not installed in {}: {e}", dir.display()))
}

/// The whole round for one client, on its own server.
fn round(client: Client) {
    let server = TestServer::start();
    let owner = format!("{}-owner", client.name());
    let login_token = server.signup(&owner);
    let Some(c) = ClientRunner::new(client, &server.url, None) else {
        return;
    };
    let mut row = Row::new(client);

    // Login (each client's own way) and whoami with what it saved.
    let printed = c.login(&server, &owner);
    let who = c.whoami().ok();
    assert!(who.stdout.contains(&owner), "{printed}\n{}", who.all());
    row.note(
        "login + whoami",
        if client == Client::Bun {
            "ok (no login command: token in .npmrc)"
        } else {
            "ok"
        },
    );

    // Publish a public package and a private (scoped) one.
    let public = format!("{}-public-lib", client.name());
    let private = format!("@{owner}/{}-secret", client.name());
    let manifest = |name: &str, version: &str| {
        json!({"name": name, "version": version, "description": format!("{name} from {}", client.name()),
               "main": "index.js", "license": "MIT", "keywords": ["clients-suite"]})
    };
    c.publish(&c.project("public-lib", manifest(&public, "1.0.0")))
        .ok();
    c.publish(&c.project("secret", manifest(&private, "1.0.0")))
        .ok();
    let doc: Value = server.get(&format!("/{public}"), None).json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0", "{doc}");
    assert_eq!(
        server
            .get(&format!("/{}", private.replace('/', "%2f")), None)
            .status(),
        404,
        "a scoped package is private by default"
    );
    row.pass("publish");

    // Install both from a fresh cache, then again from the lockfile alone.
    let app = c.project(
        "app",
        json!({"name": "app", "version": "1.0.0", "private": true,
               "dependencies": {&public: "^1.0.0", &private: "1.0.0"}}),
    );
    c.forget_cache();
    c.install(&app).ok();
    assert!(installed(&app, &public).contains("public-lib"));
    assert!(installed(&app, &private).contains("secret"));
    assert!(c.lockfile(&app).exists(), "a lockfile was written");
    row.pass("install, fresh cache");
    std::fs::remove_dir_all(app.join("node_modules")).unwrap();
    c.forget_cache();
    c.frozen_install(&app).ok();
    assert!(installed(&app, &private).contains("secret"));
    row.pass("frozen-lockfile install");

    // A private package with a read-only token; without one it is not there.
    let read_only = token_of(&server.create_token(&login_token, &owner, json!({"readonly": true})));
    let reader = ClientRunner::new(client, &server.url, Some(&read_only)).unwrap();
    let reader_app = reader.project(
        "reader-app",
        json!({"name": "reader-app", "version": "1.0.0", "private": true,
               "dependencies": {&private: "1.0.0"}}),
    );
    reader.install(&reader_app).ok();
    assert!(installed(&reader_app, &private).contains("secret"));
    let stranger = ClientRunner::new(client, &server.url, None).unwrap();
    let stranger_app = stranger.project(
        "stranger-app",
        json!({"name": "stranger-app", "version": "1.0.0", "private": true,
               "dependencies": {&private: "1.0.0"}}),
    );
    let refused = stranger.install(&stranger_app);
    assert_ne!(
        refused.status, 0,
        "an anonymous install of a private package"
    );
    assert!(!stranger_app.join("node_modules").join(&private).exists());
    row.pass("private package, read-only token");

    // The read-only token may not publish, and the client says why.
    reader
        .publish(&reader.project("secret-next", manifest(&private, "1.0.1")))
        .fails_with("This token is read-only and cannot change packages");
    row.pass("refused publish (read-only token)");

    // A revoked token: refused, and the reason reaches those clients that show it.
    let r = server
        .request(
            Method::DELETE,
            &format!("/-/npm/v1/tokens/token/{read_only}"),
            Some(&login_token),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let who = reader.whoami();
    assert_ne!(who.status, 0, "a revoked token is refused: {}", who.all());
    let shown = who.all().contains("was revoked on");
    // npm prints the npm-notice header; bun prints the body; pnpm 12 and yarn print
    // only the status.
    if matches!(client, Client::Npm | Client::Bun) {
        assert!(shown, "the reason is shown: {}", who.all());
    }
    row.note(
        "revoked token, whoami",
        if shown {
            "refused, says \"revoked on …\""
        } else {
            "refused (the client shows its own message)"
        },
    );
}

#[test]
fn npm_round() {
    round(Client::Npm);
}

#[test]
fn pnpm_round() {
    round(Client::Pnpm);
}

#[test]
fn yarn_round() {
    round(Client::Yarn);
}

#[test]
fn bun_round() {
    round(Client::Bun);
}

/// Publishes `manifest` (name, version and anything else) over HTTP as npm would.
fn publish(server: &TestServer, token: &str, manifest: Value) {
    use crate::publish_rules::{body_with, manifest_tgz};
    let name = manifest["name"].as_str().unwrap().to_owned();
    let body = body_with(&manifest, &manifest_tgz(&manifest, &[]));
    let r = server
        .request(
            Method::PUT,
            &format!("/{}", name.replace('/', "%2f")),
            Some(token),
        )
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "publish {name}: {}", r.text().unwrap());
}

fn packument(server: &TestServer, token: Option<&str>, name: &str) -> Value {
    server
        .get(&format!("/{}", name.replace('/', "%2f")), token)
        .json()
        .unwrap()
}

#[test]
fn pnpm_owner_collaborators_and_stars() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    server.signup("carol");
    publish(
        &server,
        &alice,
        json!({"name": "owned-lib", "version": "1.0.0"}),
    );
    publish(
        &server,
        &alice,
        json!({"name": "@alice/hidden", "version": "1.0.0"}),
    );
    let Some(pnpm) = ClientRunner::new(Client::Pnpm, &server.url, Some(&alice)) else {
        return;
    };
    let mut row = Row::new(Client::Pnpm);

    // owner ls|add|rm through /-/package/<name>/owners.
    let ls = pnpm.run(&["owner", "ls", "owned-lib"]).ok();
    assert_eq!(ls.stdout.trim(), "alice <alice@example.com>");
    pnpm.run(&["owner", "add", "owned-lib", "bob"]).ok();
    let ls = pnpm.run(&["owner", "ls", "owned-lib"]).ok();
    assert!(ls.stdout.contains("bob <bob@example.com>"), "{}", ls.all());
    let doc = packument(&server, None, "owned-lib");
    assert_eq!(doc["maintainers"].as_array().unwrap().len(), 2, "{doc}");
    pnpm.run(&["owner", "rm", "owned-lib", "bob"]).ok();
    assert_eq!(
        packument(&server, None, "owned-lib")["maintainers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    pnpm.run(&["owner", "rm", "owned-lib", "alice"])
        .fails_with("alice is the only maintainer of owned-lib");
    pnpm.run(&["owner", "add", "owned-lib", "nobody"])
        .fails_with("user nobody not found");
    // Someone who does not maintain it may read the owners, not change them.
    let bob_pnpm = ClientRunner::new(Client::Pnpm, &server.url, Some(&bob)).unwrap();
    bob_pnpm.run(&["owner", "ls", "owned-lib"]).ok();
    bob_pnpm
        .run(&["owner", "add", "owned-lib", "bob"])
        .fails_with("You do not have permission");
    bob_pnpm
        .run(&["owner", "ls", "@alice/hidden"])
        .fails_with("not found");
    assert_eq!(
        packument(&server, None, "owned-lib")["maintainers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    row.pass("owner ls/add/rm");

    // access list collaborators: a list for pnpm 12, an object for npm.
    let collaborators = pnpm
        .run(&["access", "list", "collaborators", "owned-lib"])
        .ok();
    // No email: a collaborator list never shows another account's address.
    assert_eq!(collaborators.stdout.trim(), "alice: read-write");
    let npm = server.npm(Some(&alice));
    let listed = npm
        .run(&["access", "list", "collaborators", "owned-lib"])
        .ok();
    assert_eq!(listed.stdout.trim(), "alice: read-write");
    row.pass("access list collaborators");

    // star/unstar/stars for someone who does not maintain it, with a read-only token.
    let read_only = token_of(&server.create_token(&bob, "bob", json!({"readonly": true})));
    let reader = ClientRunner::new(Client::Pnpm, &server.url, Some(&read_only)).unwrap();
    reader.run(&["star", "owned-lib"]).ok();
    assert_eq!(
        packument(&server, None, "owned-lib")["users"],
        json!({"bob": true})
    );
    let stars = reader.run(&["stars"]).ok();
    assert_eq!(stars.stdout.trim(), "owned-lib");
    let others = pnpm.run(&["stars", "bob"]).ok();
    assert_eq!(others.stdout.trim(), "owned-lib");
    reader
        .run(&["star", "@alice/hidden"])
        .fails_with("not found");
    reader.run(&["unstar", "owned-lib"]).ok();
    assert_eq!(packument(&server, None, "owned-lib")["users"], json!({}));
    assert_eq!(reader.run(&["stars"]).ok().stdout.trim(), "");
    row.pass("star/unstar/stars (read-only token)");
}

#[test]
fn npm_stars_and_collaborators() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    publish(
        &server,
        &alice,
        json!({"name": "starry", "version": "1.0.0"}),
    );
    publish(
        &server,
        &alice,
        json!({"name": "@alice/secret", "version": "1.0.0"}),
    );
    let mut row = Row::new(Client::Npm);
    // Stars need only read access: a read-only token of someone else.
    let read_only = token_of(&server.create_token(&bob, "bob", json!({"readonly": true})));
    let reader = server.npm(Some(&read_only));
    reader.run(&["star", "starry"]).ok();
    assert_eq!(
        packument(&server, None, "starry")["users"],
        json!({"bob": true})
    );
    assert_eq!(reader.run(&["stars"]).ok().stdout.trim(), "starry");
    // The owner stars her private package; others never see it in her list.
    let owner = server.npm(Some(&alice));
    owner.run(&["star", "starry"]).ok();
    owner.run(&["star", "@alice/secret"]).ok();
    let mine = owner.run(&["stars"]).ok();
    assert_eq!(
        mine.stdout.split_whitespace().collect::<Vec<_>>(),
        ["@alice/secret", "starry"]
    );
    let hers = reader.run(&["stars", "alice"]).ok();
    assert_eq!(hers.stdout.trim(), "starry");
    assert_eq!(
        packument(&server, None, "starry")["users"],
        json!({"alice": true, "bob": true})
    );
    reader.run(&["unstar", "starry"]).ok();
    assert_eq!(
        packument(&server, None, "starry")["users"],
        json!({"alice": true}),
        "bob's unstar leaves alice's star"
    );
    reader
        .run(&["stars"])
        .ok()
        .all()
        .contains("user has not starred any packages")
        .then_some(())
        .expect("an empty list");
    reader.run(&["star", "@alice/secret"]).fails_with("E404");
    row.pass("star/unstar/stars (read-only token)");
    let listed = reader
        .run(&["access", "list", "collaborators", "starry"])
        .ok();
    assert_eq!(listed.stdout.trim(), "alice: read-write");
    row.pass("access list collaborators");
}

/// `npm doctor`: the registry check a private registry can pass ("Connecting to the
/// registry", a ping) passes whatever the saved credentials are, even with anonymous
/// reads off and a revoked token saved. The others are explained in the README: the
/// npm version check asks this registry for the `npm` package, the node check goes to
/// nodejs.org, and "Checking configured npm registry" fails for every registry but
/// registry.npmjs.org.
#[test]
fn npm_doctor_connects_whatever_the_credentials() {
    let server = TestServer::builder()
        .config(|c| c.anonymous_read = false)
        .start();
    let login = server.signup("alice");
    let revoked = token_of(&server.create_token(&login, "alice", json!({})));
    let r = server
        .request(
            Method::DELETE,
            &format!("/-/npm/v1/tokens/token/{revoked}"),
            Some(&login),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    for token in [Some(login.as_str()), Some(revoked.as_str()), None] {
        let npm = server.npm(token);
        let out = npm.run(&["doctor", "connection"]).ok();
        assert!(
            out.stdout.contains("Connecting to the registry\nOk"),
            "{}",
            out.all()
        );
        let out = npm.run(&["doctor", "registry"]);
        assert!(
            out.stdout.contains("Connecting to the registry\nOk"),
            "{}",
            out.all()
        );
        assert!(
            out.stdout
                .contains("Checking configured npm registry\nNot ok\nTry `npm config set registry=https://registry.npmjs.org/`"),
            "{}",
            out.all()
        );
    }
    let pong = server.npm(Some(&revoked)).run(&["ping"]).ok();
    assert!(pong.stderr.contains("PONG"), "{}", pong.all());
}
