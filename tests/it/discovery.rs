//! Stars and search over HTTP, on SQLite and PostgreSQL: a star changes only its
//! caller's own mark, whatever route or document carries it; listings of stars and
//! search results (and their totals) hold only what the caller may read; search finds
//! keywords and ranks names first.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

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

fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let r = server
        .request(method, path, token)
        .json(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn a_star_changes_only_the_callers_own_star() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        let mallory = server.signup("mallory");
        publish(&server, &alice, json!({"name": "lib", "version": "1.0.0"}));
        publish(&server, &alice, json!({"name": "lib", "version": "1.1.0"}));
        publish(
            &server,
            &alice,
            json!({"name": "@alice/private", "version": "1.0.0"}),
        );
        // Alice stars her package the way npm does.
        let doc = packument(&server, Some(&alice), "lib");
        let (status, _) = send(
            &server,
            Method::PUT,
            "/lib",
            Some(&alice),
            &json!({"_id": "lib", "_rev": doc["_rev"], "users": {"alice": true}}),
        );
        assert_eq!(status, 200);
        let after = packument(&server, None, "lib");
        assert_eq!(after["users"], json!({"alice": true}));
        assert_ne!(
            after["_rev"], doc["_rev"],
            "a star moves the revision the packument is cached by"
        );
        assert_eq!(
            after["time"]["modified"], doc["time"]["modified"],
            "but is not a modification"
        );

        // Mallory sends pnpm's whole document back with everyone's stars rewritten, a
        // deprecation, a dist-tag and an old revision: only her own star changes.
        let mut forged = doc.clone();
        forged["users"] = json!({"alice": false, "bob": true, "mallory": true});
        forged["versions"]["1.0.0"]["deprecated"] = json!("forged");
        forged["dist-tags"]["latest"] = json!("1.0.0");
        forged["maintainers"] = json!([{"name": "mallory", "email": "m@example.com"}]);
        let stale = doc["_rev"].as_str().unwrap();
        let (status, body) = send(
            &server,
            Method::PUT,
            &format!("/lib/-rev/{stale}"),
            Some(&mallory),
            &forged,
        );
        assert_eq!(status, 200, "{body}");
        let now = packument(&server, None, "lib");
        assert_eq!(now["users"], json!({"alice": true, "mallory": true}));
        assert!(now["versions"]["1.0.0"].get("deprecated").is_none());
        assert_eq!(now["dist-tags"]["latest"], "1.1.0");
        assert_eq!(
            now["maintainers"],
            json!([{"name": "alice", "email": "alice@example.com"}])
        );
        // The same through npm's route: her entry set to false unstars her only.
        let (status, _) = send(
            &server,
            Method::PUT,
            "/lib",
            Some(&mallory),
            &json!({"_id": "lib", "_rev": now["_rev"], "users": {"mallory": false, "alice": false}}),
        );
        assert_eq!(status, 200);
        assert_eq!(
            packument(&server, None, "lib")["users"],
            json!({"alice": true})
        );
        // Starring twice changes nothing, so the revision stays.
        let (status, _) = send(
            &server,
            Method::PUT,
            "/-/user/v1/star",
            Some(&bob),
            &json!({"name": "lib", "package": "lib"}),
        );
        assert_eq!(status, 200);
        let once = packument(&server, None, "lib")["_rev"].clone();
        let (status, _) = send(
            &server,
            Method::PUT,
            "/-/user/v1/star",
            Some(&bob),
            &json!({"package": "lib"}),
        );
        assert_eq!(status, 200);
        assert_eq!(packument(&server, None, "lib")["_rev"], once);
        // A reader's whole document that removes a version is an unpublish: refused.
        let mut strip = packument(&server, Some(&bob), "lib");
        strip["versions"].as_object_mut().unwrap().remove("1.0.0");
        let rev = strip["_rev"].as_str().unwrap().to_owned();
        let (status, _) = send(
            &server,
            Method::PUT,
            &format!("/lib/-rev/{rev}"),
            Some(&bob),
            &strip,
        );
        assert_eq!(status, 403);
        assert!(
            packument(&server, None, "lib")["versions"]
                .get("1.0.0")
                .is_some()
        );

        // A restricted package is not there for those who may not read it, on any route.
        let hidden = json!({"_id": "@alice/private", "users": {"mallory": true}});
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/@alice%2fprivate",
                Some(&mallory),
                &hidden
            )
            .0,
            404
        );
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/-/user/v1/star",
                Some(&mallory),
                &json!({"package": "@alice/private"})
            )
            .0,
            404
        );
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/-/user/v1/star",
                Some(&mallory),
                &json!({"package": "no-such-lib"})
            )
            .0,
            404
        );
        // Anonymous callers star nothing; bad bodies get a clear 400.
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/-/user/v1/star",
                None,
                &json!({"package": "lib"})
            )
            .0,
            401
        );
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/-/user/v1/star",
                Some(&bob),
                &json!({})
            )
            .0,
            400
        );
        let (status, body) = send(
            &server,
            Method::PUT,
            "/lib",
            Some(&bob),
            &json!({"_id": "lib", "users": ["bob"]}),
        );
        assert_eq!(status, 400);
        assert_eq!(body["error"], "users must be an object");
        let (status, _) = send(
            &server,
            Method::PUT,
            "/lib",
            Some(&bob),
            &json!({"_id": "lib", "users": {"bob": false, "bob": true}}),
        );
        assert!(
            status == 200 || status == 400,
            "a duplicate key never reaches someone else's star"
        );
        // Alice stars her private package: her stars show it to her only.
        assert_eq!(
            send(
                &server,
                Method::PUT,
                "/-/user/v1/star",
                Some(&alice),
                &json!({"package": "@alice/private"})
            )
            .0,
            200
        );
        let view = |token: Option<&str>| -> Value {
            server
                .get("/-/_view/starredByUser?key=%22alice%22", token)
                .json()
                .unwrap()
        };
        assert_eq!(
            view(Some(&alice)),
            json!({"rows": [
            {"key": "alice", "value": "@alice/private"}, {"key": "alice", "value": "lib"}]})
        );
        assert_eq!(
            view(Some(&bob)),
            json!({"rows": [{"key": "alice", "value": "lib"}]})
        );
        assert_eq!(
            view(None),
            json!({"rows": [{"key": "alice", "value": "lib"}]})
        );
        let list: Value = server
            .get("/-/user/alice/stars", Some(&mallory))
            .json()
            .unwrap();
        assert_eq!(list, json!(["lib"]));
        let own: Value = server.get("/-/user/v1/star", Some(&alice)).json().unwrap();
        assert_eq!(own, json!(["@alice/private", "lib"]));
        assert_eq!(server.get("/-/user/v1/star", None).status(), 401);
        assert_eq!(
            server
                .get("/-/_view/starredByUser?key=alice", None)
                .status(),
            400
        );
        assert_eq!(
            server
                .get("/-/_view/starredByUser?key=%22nobody%22", None)
                .status(),
            404
        );
        // A granular token that does not reach the private package does not list it.
        let narrow = token_of(&server.create_token(
            &alice,
            "alice",
            json!({"packages": ["lib"], "packages_and_scopes_permission": "read-only"}),
        ));
        assert_eq!(
            view(Some(&narrow)),
            json!({"rows": [{"key": "alice", "value": "lib"}]})
        );
        // Deleting a package takes its stars with it.
        let doc = packument(&server, Some(&alice), "@alice/private");
        let rev = doc["_rev"].as_str().unwrap();
        let r = server
            .request(
                Method::DELETE,
                &format!("/@alice%2fprivate/-rev/{rev}"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            view(Some(&alice)),
            json!({"rows": [{"key": "alice", "value": "lib"}]})
        );
    });
}

fn search(server: &TestServer, token: Option<&str>, text: &str, from: i64, size: i64) -> Value {
    let text = percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC);
    let r = server.get(
        &format!("/-/v1/search?text={text}&from={from}&size={size}"),
        token,
    );
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn names(result: &Value) -> Vec<String> {
    result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["package"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn scores(result: &Value) -> Vec<f64> {
    result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["score"]["final"].as_f64().unwrap())
        .collect()
}

#[test]
fn search_finds_keywords_ranks_names_and_counts_only_what_the_caller_may_see() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        publish(
            &server,
            &alice,
            json!({"name": "notes", "version": "1.0.0", "description": "keeps parser state"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "tokenizer", "version": "1.0.0", "keywords": ["Parser", "lexer"]}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "json-parser-lite", "version": "1.0.0"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "parser-tools", "version": "1.0.0"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "parser-old", "version": "1.0.0"}),
        );
        server.clock.advance_ms(1000);
        publish(
            &server,
            &alice,
            json!({"name": "parser-new", "version": "1.0.0"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "@acme/parser", "version": "1.0.0", "description": "public"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "parser", "version": "1.0.0"}),
        );
        publish(
            &server,
            &alice,
            json!({"name": "@alice/parser-secret", "version": "1.0.0"}),
        );
        let change = |token: &str, name: &str| {
            let r = server
                .request(
                    Method::POST,
                    &format!("/-/package/{}/access", name.replace('/', "%2f")),
                    Some(token),
                )
                .json(&json!({"access": "public"}))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
        };
        change(&alice, "@acme/parser");

        // Exact name, the exact name after a scope, name prefix, exact keyword, name
        // containing it, description only; the newest first within each (then by name).
        let all = search(&server, None, "parser", 0, 20);
        assert_eq!(
            names(&all),
            [
                "parser",
                "@acme/parser",
                "parser-new",
                "parser-old",
                "parser-tools",
                "tokenizer",
                "json-parser-lite",
                "notes"
            ]
        );
        assert_eq!(scores(&all), [1.0, 0.9, 0.8, 0.8, 0.8, 0.6, 0.4, 0.2]);
        assert_eq!(
            all["total"], 8,
            "the private package is not counted for strangers"
        );
        // Pages are slices of the same order, and the total is every match.
        let first = search(&server, None, "parser", 0, 2);
        let second = search(&server, None, "parser", 2, 2);
        assert_eq!(names(&first), ["parser", "@acme/parser"]);
        assert_eq!(names(&second), ["parser-new", "parser-old"]);
        assert_eq!(first["total"], 8);
        assert_eq!(second["total"], 8);
        // Keywords: a word matches one, `keywords:` asks for an exact one.
        assert_eq!(names(&search(&server, None, "lexer", 0, 20)), ["tokenizer"]);
        assert_eq!(
            names(&search(&server, None, "keywords:LEXER", 0, 20)),
            ["tokenizer"]
        );
        assert_eq!(
            names(&search(&server, None, "keywords:lex", 0, 20)),
            Vec::<String>::new()
        );
        // Every word must match somewhere.
        assert_eq!(
            names(&search(&server, None, "parser lexer", 0, 20)),
            ["tokenizer"]
        );
        assert_eq!(
            search(&server, None, "parser nothing-like-it", 0, 20)["total"],
            0
        );
        // LIKE's wildcards are plain text.
        assert_eq!(search(&server, None, "%", 0, 20)["total"], 0);
        assert_eq!(search(&server, None, "_", 0, 20)["total"], 0);

        // The owner sees and counts her private package; others never.
        let hers = search(&server, Some(&alice), "parser", 0, 20);
        assert_eq!(hers["total"], 9);
        assert!(names(&hers).contains(&"@alice/parser-secret".to_owned()));
        let his = search(&server, Some(&bob), "parser", 0, 20);
        assert_eq!(his["total"], 8);
        assert!(!names(&his).contains(&"@alice/parser-secret".to_owned()));
        // A token that does not reach it neither sees nor counts it.
        let narrow = token_of(&server.create_token(
            &alice,
            "alice",
            json!({"packages": ["parser"], "packages_and_scopes_permission": "read-only"}),
        ));
        let limited = search(&server, Some(&narrow), "parser", 0, 20);
        assert_eq!(limited["total"], 8);
        assert!(!names(&limited).contains(&"@alice/parser-secret".to_owned()));
        let none = token_of(&server.create_token(
            &alice,
            "alice",
            json!({"packages_all": true, "packages_and_scopes_permission": "no-access"}),
        ));
        assert_eq!(search(&server, Some(&none), "parser", 0, 20)["total"], 8);

        // Keywords follow `latest`: a new latest without them, a tag moved back, an
        // unpublish of the version that had them.
        publish(
            &server,
            &alice,
            json!({"name": "tokenizer", "version": "2.0.0", "keywords": ["scanner"]}),
        );
        assert_eq!(search(&server, None, "lexer", 0, 20)["total"], 0);
        assert_eq!(
            names(&search(&server, None, "scanner", 0, 20)),
            ["tokenizer"]
        );
        let r = server
            .request(
                Method::PUT,
                "/-/package/tokenizer/dist-tags/latest",
                Some(&alice),
            )
            .json(&json!("1.0.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(names(&search(&server, None, "lexer", 0, 20)), ["tokenizer"]);
        assert_eq!(search(&server, None, "scanner", 0, 20)["total"], 0);
        let r = server
            .request(
                Method::PUT,
                "/-/package/tokenizer/dist-tags/latest",
                Some(&alice),
            )
            .json(&json!("2.0.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut doc = packument(&server, Some(&alice), "tokenizer");
        doc["versions"].as_object_mut().unwrap().remove("2.0.0");
        doc["dist-tags"] = json!({});
        let rev = doc["_rev"].as_str().unwrap().to_owned();
        let (status, _) = send(
            &server,
            Method::PUT,
            &format!("/tokenizer/-rev/{rev}"),
            Some(&alice),
            &doc,
        );
        assert_eq!(status, 200);
        assert_eq!(names(&search(&server, None, "lexer", 0, 20)), ["tokenizer"]);
        assert_eq!(search(&server, None, "scanner", 0, 20)["total"], 0);
    });
}

#[test]
fn npm_search_prints_keyword_matches() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    publish(
        &server,
        &alice,
        json!({"name": "tokenizer", "version": "1.0.0", "description": "splits text", "keywords": ["lexer"]}),
    );
    publish(
        &server,
        &alice,
        json!({"name": "lexer", "version": "1.0.0", "description": "the lexer"}),
    );
    let npm = server.npm(Some(&alice));
    let found = npm.run(&["search", "lexer", "--json"]).ok();
    let list: Value = serde_json::from_str(&found.stdout).unwrap();
    let order: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["lexer", "tokenizer"]);
    let text = npm.run(&["search", "lexer"]).ok();
    assert!(text.stdout.contains("Keywords: lexer"), "{}", text.stdout);
}
