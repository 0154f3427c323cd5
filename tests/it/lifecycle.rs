//! Token lifecycle with the real npm CLI and the `tessera` binary: the operator's
//! cap on tokens that can write, rotation with an overlap window (driven by the
//! server's manual clock), expiry warnings npm prints, the leak endpoint and the
//! publish-time secret scan.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const DAY_MS: i64 = 86_400_000;

/// `tessera ARGS` as `npm`'s user: the same registry and `.npmrc`.
fn tessera_as(npm: &Npm, args: &[&str], stdin: Option<&str>) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    let userconfig = npm.userconfig.to_str().unwrap().to_owned();
    all.extend([
        "--registry",
        npm.registry.as_str(),
        "--userconfig",
        &userconfig,
    ]);
    tessera(&all, stdin, &[])
}

fn now(server: &TestServer) -> i64 {
    use tessera::clock::Clock;
    server.clock.now_ms()
}

/// Milliseconds of an ISO time from the API.
fn ms_of(v: &Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn tokens_of(server: &TestServer, token: &str) -> Vec<Value> {
    let r = server.get("/-/npm/v1/tokens", Some(token));
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["objects"]
        .as_array()
        .unwrap()
        .clone()
}

fn whoami_status(server: &TestServer, token: &str) -> u16 {
    server.get("/-/whoami", Some(token)).status().as_u16()
}

#[test]
fn the_write_token_cap_applies_to_every_creation_path() {
    let server = TestServer::builder()
        .config(|c| c.max_write_token_days = 10)
        .start();
    let login = server.signup("alice");
    let start = now(&server);

    // Login tokens can publish: capped below the 30-day login lifetime.
    let mine = tokens_of(&server, &login);
    let expires = ms_of(&mine[0]["expires"]);
    assert!(
        expires > start && expires <= start + 10 * DAY_MS,
        "{mine:?}"
    );

    let npm = server.npm(Some(&login));
    let pw = password_of("alice");
    // A longer expiry is refused, and npm prints why.
    npm.run(&["token", "create", "--expires=60", "--password", &pw])
        .fails_with("at most 10 days");
    // No expiry: the cap.
    let created = npm
        .run(&["token", "create", "--name=capped", "--password", &pw])
        .ok();
    assert!(created.stdout.contains("expires"), "{}", created.stdout);
    let capped = tokens_of(&server, &login)
        .into_iter()
        .find(|t| t["name"] == "capped")
        .unwrap();
    assert_eq!(
        ms_of(&capped["expires"]) - ms_of(&capped["created"]),
        10 * DAY_MS
    );
    // Shorter is kept.
    npm.run(&[
        "token",
        "create",
        "--name=short",
        "--expires=3",
        "--password",
        &pw,
    ])
    .ok();
    // Read-only tokens are not capped, with or without an expiry.
    npm.run(&[
        "token",
        "create",
        "--name=reader",
        "--packages-all",
        "--packages-and-scopes-permission=read-only",
        "--expires=365",
        "--password",
        &pw,
    ])
    .ok();
    let reader = server.create_token(
        &login,
        "alice",
        json!({"readonly": true, "name": "forever"}),
    );
    assert!(reader.get("expires").is_none(), "{reader}");
    // Automation tokens through the legacy body and the tessera CLI are capped too.
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens", Some(&login))
        .json(&json!({"password": pw, "automation": true, "expires": 11}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("at most 10 days"));
    tessera_as(
        &npm,
        &[
            "token",
            "create",
            "--automation",
            "--expires",
            "30",
            "--password-stdin",
        ],
        Some(&pw),
    )
    .fails_with("at most 10 days");
    let out = tessera_as(
        &npm,
        &["token", "create", "--automation", "--password-stdin"],
        Some(&pw),
    )
    .ok();
    assert!(out.stdout.contains("expires:"), "{}", out.stdout);

    // The website's form states the policy and applies it.
    let web = http_session(&server, "alice");
    let (status, page) = web.get("/settings/tokens/new");
    assert_eq!(status, 200);
    assert!(page.contains("at most 10 days"), "{page}");
    let csrf = web.csrf("/settings/tokens/new");
    let r = web.post(
        "/settings/tokens/new",
        &[
            ("csrf", &csrf),
            ("name", "web-long"),
            ("kind", "publish"),
            ("expires", "90"),
            ("password", &pw),
        ],
    );
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("at most 10 days"));

    // Shown by `tessera config show`.
    let dir = tempfile::tempdir().unwrap();
    let shown = tessera(
        &["config", "show", "--data-dir", dir.path().to_str().unwrap()],
        None,
        &[
            ("TESSERA_MAX_WRITE_TOKEN_DAYS", "90"),
            ("TESSERA_TOKEN_ROTATION_OVERLAP", "2h"),
        ],
    )
    .ok();
    assert!(
        shown.stdout.contains("max_write_token_days") && shown.stdout.contains("90"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("token_rotation_overlap"),
        "{}",
        shown.stdout
    );
    tessera(
        &["config", "show", "--data-dir", dir.path().to_str().unwrap()],
        None,
        &[("TESSERA_MAX_WRITE_TOKEN_DAYS", "-1")],
    )
    .fails_with("max_write_token_days");
}

#[test]
fn rotation_keeps_the_old_token_for_the_overlap_then_stops_it() {
    on_both_databases(|server| {
        let login = server.signup("alice");
        let npm = server.npm(Some(&login));
        let pw = password_of("alice");
        let old = server.create_token(
            &login,
            "alice",
            json!({"automation": true, "name": "ci", "expires": 20, "cidr_whitelist": ["127.0.0.0/8"]}),
        );
        let old_token = token_of(&old);
        let old_key = old["key"].as_str().unwrap().to_owned();

        // `tessera token rotate` by a unique id prefix, with its own overlap.
        let out = tessera_as(
            &npm,
            &[
                "token",
                "rotate",
                &old_key[..8],
                "--overlap",
                "2h",
                "--password-stdin",
            ],
            Some(&pw),
        )
        .ok();
        let new_token = out
            .stdout
            .split_whitespace()
            .find(|w| w.starts_with("tsr_") && w.len() == 40)
            .unwrap_or_else(|| panic!("{}", out.stdout))
            .to_owned();
        assert!(out.stdout.contains(&old_key), "{}", out.stdout);

        // Both work during the overlap; the successor has the same settings.
        assert_eq!(whoami_status(&server, &old_token), 200);
        assert_eq!(whoami_status(&server, &new_token), 200);
        let list = tokens_of(&server, &login);
        let old_row = list.iter().find(|t| t["key"] == old_key.as_str()).unwrap();
        let new_row = list
            .iter()
            .find(|t| t["rotated_from"] == old_key.as_str())
            .unwrap_or_else(|| panic!("{list:?}"));
        assert_eq!(old_row["replaced_by"], new_row["key"]);
        assert_eq!(new_row["type"], "automation");
        assert_eq!(new_row["name"], "ci");
        assert_eq!(new_row["cidr_whitelist"], json!(["127.0.0.0/8"]));
        assert_eq!(
            ms_of(&new_row["expires"]) - ms_of(&new_row["created"]),
            20 * DAY_MS
        );
        assert_eq!(ms_of(&old_row["expires"]), now(&server) + 2 * 3_600_000);
        // The CLI list links them.
        let listed = tessera_as(&npm, &["token", "list"], None).ok();
        assert!(listed.stdout.contains("replaced by"), "{}", listed.stdout);
        assert!(listed.stdout.contains("successor of"), "{}", listed.stdout);
        // A rotated token cannot be rotated again.
        let again = server
            .request(
                Method::POST,
                &format!("/-/npm/v1/tokens/token/{old_key}/rotate"),
                Some(&login),
            )
            .json(&json!({"password": pw}))
            .send()
            .unwrap();
        assert_eq!(again.status(), 409);

        // After the overlap the old one stops, with a message npm prints.
        server.clock.advance_ms(2 * 3_600_000 + 1000);
        assert_eq!(whoami_status(&server, &old_token), 401);
        let refused = server.npm(Some(&old_token)).run(&["whoami"]);
        assert!(
            refused.all().contains("replaced by rotation"),
            "{}",
            refused.all()
        );
        assert_eq!(whoami_status(&server, &new_token), 200);

        // The security log names both.
        let web = http_session(&server, "alice");
        let (_, log) = web.get("/settings/security-log");
        assert!(log.contains("rotated"), "{log}");
        assert!(
            log.contains(&old_token[..8]) && log.contains(&new_token[..8]),
            "{log}"
        );

        // The default overlap (24h) applies without one; the wrong password is refused.
        let r = server
            .request(
                Method::POST,
                &format!(
                    "/-/npm/v1/tokens/token/{}/rotate",
                    new_row["key"].as_str().unwrap()
                ),
                Some(&login),
            )
            .json(&json!({"password": "wrong"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = server
            .request(
                Method::POST,
                &format!(
                    "/-/npm/v1/tokens/token/{}/rotate",
                    new_row["key"].as_str().unwrap()
                ),
                Some(&login),
            )
            .json(&json!({"password": pw}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let third: Value = r.json().unwrap();
        assert_eq!(
            ms_of(&third["previous"]["stops"]),
            now(&server) + 24 * 3_600_000
        );
        // A read-only token may not rotate anything (no token management).
        let reader = token_of(&server.create_token(&login, "alice", json!({"readonly": true})));
        let r = server
            .request(
                Method::POST,
                &format!(
                    "/-/npm/v1/tokens/token/{}/rotate",
                    third["key"].as_str().unwrap()
                ),
                Some(&reader),
            )
            .json(&json!({"password": pw}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403);
    });
}

#[test]
fn regenerate_on_the_website_shows_the_successor_once_and_links_both() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let old = server.create_token(&login, "alice", json!({"name": "laptop"}));
    let key = old["key"].as_str().unwrap();
    let web = http_session(&server, "alice");
    let (_, page) = web.get("/settings/tokens");
    assert!(page.contains("Regenerate"), "{page}");
    let csrf = web.csrf("/settings/tokens");
    let r = web.post(
        &format!("/settings/tokens/{key}/rotate"),
        &[
            ("csrf", &csrf),
            ("password", &password_of("alice")),
            ("overlap", "1h"),
        ],
    );
    assert_eq!(r.status(), 201);
    let page = r.text().unwrap();
    let shown = page
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|w| w.starts_with("tsr_") && w.len() == 40)
        .unwrap_or_else(|| panic!("{page}"))
        .to_owned();
    assert_eq!(whoami_status(&server, &shown), 200);
    assert!(page.contains("Replaced by"), "{page}");
    assert!(page.contains("Successor of"), "{page}");
    // Shown once: the list does not show it again.
    let (_, again) = web.get("/settings/tokens");
    assert!(!again.contains(&shown));
    // A wrong password changes nothing.
    let csrf = web.csrf("/settings/tokens");
    let r = web.post(
        &format!("/settings/tokens/{key}/rotate"),
        &[("csrf", &csrf), ("password", "nope")],
    );
    assert!(r.status().is_client_error());
}

#[test]
fn a_token_near_its_end_carries_a_warning_npm_prints() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let created = server.create_token(&login, "alice", json!({"name": "soon", "expires": 10}));
    let token = token_of(&created);
    let npm = server.npm(Some(&token));
    let first = npm.run(&["whoami"]).ok();
    assert!(!first.all().contains("expires in"), "{}", first.all());
    server.clock.advance_ms(7 * DAY_MS + 60_000);
    let warned = npm.run(&["whoami"]).ok();
    assert!(
        warned.all().contains("npm notice")
            && warned.all().contains("expires in 2 days")
            && warned.all().contains("tessera token rotate"),
        "{}",
        warned.all()
    );
    assert_eq!(warned.stdout.trim(), "alice");
    // A rotated token in its overlap says so.
    let r = server
        .request(
            Method::POST,
            &format!(
                "/-/npm/v1/tokens/token/{}/rotate",
                created["key"].as_str().unwrap()
            ),
            Some(&login),
        )
        .json(&json!({"password": password_of("alice"), "overlap": "5h"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let during = npm.run(&["whoami"]).ok();
    assert!(
        during
            .all()
            .contains("replaced by rotation and stops working in 5 hours"),
        "{}",
        during.all()
    );
}

fn report_leak(server: &TestServer, body: &Value) -> (u16, String) {
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens/leaked", None)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// A well-formed token the registry never issued.
fn unknown_token() -> String {
    tessera::crypto::token_format::PlainToken::generate()
        .expose()
        .to_owned()
}

#[test]
fn a_reported_token_is_revoked_at_once_and_the_answer_tells_nothing() {
    on_both_databases(|server| {
        let login = server.signup("alice");
        let live = token_of(&server.create_token(&login, "alice", json!({"name": "leaky"})));
        let url = "https://paste.example/abc";

        // A live token and an unknown one get the very same answer.
        let (status_live, body_live) = report_leak(&server, &json!({"tokens": [live], "url": url}));
        let (status_unknown, body_unknown) =
            report_leak(&server, &json!({"tokens": [unknown_token()], "url": url}));
        assert_eq!(status_live, 202, "{body_live}");
        assert_eq!((status_live, &body_live), (status_unknown, &body_unknown));
        // Reporting it again (now revoked) answers alike too.
        assert_eq!(
            report_leak(&server, &json!({"tokens": [live], "url": url})),
            (status_live, body_live.clone())
        );

        // Revoked at once; npm says why.
        assert_eq!(whoami_status(&server, &live), 401);
        let refused = server.npm(Some(&live)).run(&["whoami"]);
        assert!(
            refused
                .all()
                .contains("found exposed at https://paste.example/abc"),
            "{}",
            refused.all()
        );
        assert_eq!(whoami_status(&server, &login), 200);

        // The owner sees it on the Access Tokens page and in the security log (written
        // off the request: give it a moment).
        let web = http_session(&server, "alice");
        let (_, page) = web.get("/settings/tokens");
        assert!(
            page.contains("revoked: found exposed at https://paste.example/abc"),
            "{page}"
        );
        let mut logged = false;
        for _ in 0..50 {
            let (_, log) = web.get("/settings/security-log");
            if log.contains("found exposed at https://paste.example/abc") {
                logged = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(logged, "no security-log entry");
    });
}

#[test]
fn leak_reports_are_checked_bounded_and_throttled() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let live = token_of(&server.create_token(&login, "alice", json!({"name": "kept"})));
    // Strings that are not tokens are turned away by the checksum: a token with one
    // character changed is not a lookup, and does not revoke the real one.
    let mut forged = live.clone().into_bytes();
    forged[10] = if forged[10] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let (status, body) = report_leak(
        &server,
        &json!({"tokens": [forged, "npm_abcdef", "hello"], "url": "x"}),
    );
    assert_eq!(status, 202, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["checked"].as_u64(), v["ignored"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(whoami_status(&server, &live), 200);
    // Hostile bodies: clear 4xx answers.
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens/leaked", None)
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(report_leak(&server, &json!({"url": "x"})).0, 400);
    let many: Vec<String> = (0..101).map(|_| unknown_token()).collect();
    assert_eq!(report_leak(&server, &json!({ "tokens": many })).0, 400);
    let huge = json!({"tokens": ["x".repeat(70 * 1024)]});
    assert_eq!(report_leak(&server, &huge).0, 413);
    assert_eq!(report_leak(&server, &json!({"tokens": 5})).0, 400);
    // Throttled per address: the same limit as failed credentials.
    let mut last = 0;
    for _ in 0..60 {
        last = report_leak(&server, &json!({"token": unknown_token()})).0;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429);
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens/leaked", None)
        .json(&json!({"token": live}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().unwrap().contains("Too many leak reports"));
}

#[test]
fn a_publish_carrying_a_live_token_is_refused_and_the_token_revoked() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let bob_login = server.signup("bob");
    let ci = token_of(&server.create_token(&login, "alice", json!({"automation": true})));
    let bobs = token_of(&server.create_token(&bob_login, "bob", json!({"name": "bob-laptop"})));
    let dead = token_of(&server.create_token(&login, "alice", json!({"name": "dead"})));
    let r = server
        .request(
            Method::DELETE,
            &format!("/-/npm/v1/tokens/token/{dead}"),
            Some(&login),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let npm = server.npm(Some(&login));
    let dir = npm.package("leaky-pkg", "1.0.0", json!({}));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    // A large file with the token far from its start, across read chunks.
    let mut big = "// padding\n".repeat(20_000);
    big.push_str(&format!("const token = \"{ci}\";\n"));
    std::fs::write(dir.join("lib/config.js"), big).unwrap();
    std::fs::write(dir.join("deploy.txt"), format!("NPM_TOKEN={bobs}\n")).unwrap();
    let refused = npm.run_in(&dir, &["publish"]);
    let text = refused.all();
    assert_ne!(refused.status, 0, "{text}");
    assert!(
        text.contains("lib/config.js") && text.contains("deploy.txt") && text.contains("revoked"),
        "{text}"
    );
    // Both live tokens are revoked, whoever owned them; the publisher's own stays.
    assert_eq!(whoami_status(&server, &ci), 401);
    assert_eq!(whoami_status(&server, &bobs), 401);
    assert_eq!(whoami_status(&server, &login), 200);
    assert_eq!(server.get("/leaky-pkg", Some(&login)).status(), 404);
    let bob_web = http_session(&server, "bob");
    let (_, page) = bob_web.get("/settings/tokens");
    assert!(
        page.contains("found in deploy.txt of a tarball published as leaky-pkg@1.0.0"),
        "{page}"
    );

    // Tokens that are not live (revoked, unknown, now revoked) do not block a publish.
    let dir = npm.package("leaky-pkg", "1.0.1", json!({}));
    std::fs::write(
        dir.join("notes.md"),
        format!("old: {dead}\nexample: {}\nrevoked: {ci}\n", unknown_token()),
    )
    .unwrap();
    npm.run_in(&dir, &["publish"]).ok();
}

#[test]
fn rotation_with_two_factor_needs_a_one_time_password_like_a_creation() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let (secret, _) = crate::two_factor::enable(&server, &login, "alice", "auth-only");
    let old = server
        .request(Method::POST, "/-/npm/v1/tokens", Some(&login))
        .header("npm-otp", otp_now(&server, &secret))
        .json(&json!({"password": password_of("alice"), "name": "with-2fa"}))
        .send()
        .unwrap();
    assert_eq!(old.status(), 201);
    let old: Value = old.json().unwrap();
    server.clock.advance_ms(30_000);
    let path = format!(
        "/-/npm/v1/tokens/token/{}/rotate",
        old["key"].as_str().unwrap()
    );
    let body = json!({"password": password_of("alice")});
    let r = server
        .request(Method::POST, &path, Some(&login))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "OTP");
    // Nothing was rotated by the refused attempt.
    let row = tokens_of(&server, &login)
        .into_iter()
        .find(|t| t["key"] == old["key"])
        .unwrap();
    assert!(row["replaced_by"].is_null());
    let r = server
        .request(Method::POST, &path, Some(&login))
        .header("npm-otp", otp_now(&server, &secret))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // `tessera token rotate` without the code says what is missing.
    let npm = server.npm(Some(&login));
    let successor: Value = r.json().unwrap();
    tessera_as(
        &npm,
        &[
            "token",
            "rotate",
            successor["key"].as_str().unwrap(),
            "--password-stdin",
        ],
        Some(&password_of("alice")),
    )
    .fails_with("one-time pass");
}
