//! The store answers token, package and tarball reads from memory (on SQLite and on
//! PostgreSQL). These tests warm that cache and then prove every kind of write is
//! seen by the very next request, as if there were no cache.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// Reads `path` a few times with `token` (filling the cache) and returns the status.
fn warm(server: &TestServer, path: &str, token: &str) -> u16 {
    let mut status = 0;
    for _ in 0..3 {
        status = server.get(path, Some(token)).status().as_u16();
    }
    status
}

#[test]
fn warm_reads_see_every_write_at_once() {
    on_both_databases(warm_reads_see_every_write);
}

fn warm_reads_see_every_write(server: TestServer) {
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let npm = server.npm(Some(&alice));
    npm.publish("@alice/hot", "1.0.0", &[]).ok();
    npm.publish("@alice/hot", "1.0.1", &[]).ok();
    let packument = "/@alice%2fhot";
    let tarball = "/@alice/hot/-/hot-1.0.1.tgz";
    let reader = token_of(&server.create_token(&alice, "alice", json!({"readonly": true})));
    assert_eq!(warm(&server, packument, &reader), 200);
    assert_eq!(warm(&server, tarball, &reader), 200);

    // Revocation: the next request is refused.
    let key = server
        .get("/-/npm/v1/tokens", Some(&alice))
        .json::<Value>()
        .unwrap()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["readonly"] == true)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server
        .request(
            Method::DELETE,
            &format!("/-/npm/v1/tokens/token/{key}"),
            Some(&alice),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.get(packument, Some(&reader)).status(), 401);
    assert_eq!(server.get(tarball, Some(&reader)).status(), 401);

    // Maintainer rights: a restricted package opens and closes with `npm owner`.
    assert_eq!(warm(&server, packument, &bob), 404);
    npm.run(&["owner", "add", "bob", "@alice/hot"]).ok();
    assert_eq!(server.get(packument, Some(&bob)).status(), 200);
    assert_eq!(warm(&server, tarball, &bob), 200);
    npm.run(&["owner", "rm", "bob", "@alice/hot"]).ok();
    assert_eq!(server.get(packument, Some(&bob)).status(), 404);
    assert_eq!(server.get(tarball, Some(&bob)).status(), 404);

    // Visibility: public, then restricted again.
    npm.run(&["access", "set", "status=public", "@alice/hot"])
        .ok();
    assert_eq!(warm(&server, packument, &bob), 200);
    npm.run(&["access", "set", "status=private", "@alice/hot"])
        .ok();
    assert_eq!(server.get(packument, Some(&bob)).status(), 404);

    // A new version and an unpublished one.
    assert_eq!(warm(&server, tarball, &alice), 200);
    npm.publish("@alice/hot", "1.0.2", &[]).ok();
    let doc: Value = server.get(packument, Some(&alice)).json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.2");
    npm.run(&["unpublish", "@alice/hot@1.0.1"]).ok();
    assert_eq!(server.get(tarball, Some(&alice)).status(), 404);

    // Created now, checked for expiry at the end.
    let short =
        token_of(&server.create_token(&alice, "alice", json!({"readonly": true, "expires": 1})));

    // Two-factor state lives on the cached owner row: enabling it is enforced next.
    let publisher = token_of(&server.create_token(&alice, "alice", json!({})));
    assert_eq!(warm(&server, "/-/whoami", &publisher), 200);
    crate::two_factor::enable(&server, &alice, "alice", "auth-and-writes");
    let r = server
        .request(
            Method::PUT,
            "/-/package/@alice%2fhot/dist-tags/beta",
            Some(&publisher),
        )
        .json(&json!("1.0.0"))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a publish token now needs a one-time password"
    );
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("OTP")
    );

    // Expiry is checked against the clock on every request, cached or not.
    assert_eq!(warm(&server, packument, &short), 200);
    server.clock.advance_ms(2 * 24 * 3600 * 1000);
    assert_eq!(server.get(packument, Some(&short)).status(), 401);
}
