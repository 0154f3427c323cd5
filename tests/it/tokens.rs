use reqwest::Method;
use serde_json::{Value, json};
use std::net::IpAddr;

use crate::harness::*;

#[test]
fn each_type_is_allowed_and_refused_as_the_seed_says() {
    let server = TestServer::start();
    let login = server.signup("alice");
    server.signup("carol");
    let owner = server.npm(Some(&login));
    owner.publish("@alice/private", "1.0.0", &[]).ok();

    let read_only = token_of(&server.create_token(
        &login,
        "alice",
        json!({"readonly": true, "name": "ci-read"}),
    ));
    let automation = token_of(&server.create_token(&login, "alice", json!({"automation": true})));
    let publish = token_of(&server.create_token(&login, "alice", json!({"name": "laptop"})));

    // Read-only: downloads every private package the user can read, nothing else.
    let npm = server.npm(Some(&read_only));
    npm.run(&["install", "@alice/private"]).ok();
    assert!(
        npm.work()
            .join("node_modules/@alice/private/index.js")
            .exists()
    );
    npm.publish("@alice/private", "1.0.1", &[])
        .fails_with("E403");
    npm.run(&["dist-tag", "add", "@alice/private@1.0.0", "beta"])
        .fails_with("E403");
    npm.run(&["deprecate", "@alice/private@1.0.0", "no"])
        .fails_with("E403");
    npm.run(&["token", "list"]).fails_with("E403");
    npm.run(&["profile", "set", "fullname", "Mallory"])
        .fails_with("E403");
    assert_eq!(npm.run(&["whoami"]).ok().stdout.trim(), "alice");

    // Automation: download and publish, no settings and no tokens.
    let npm = server.npm(Some(&automation));
    npm.run(&["install", "@alice/private"]).ok();
    npm.publish("@alice/private", "1.0.1", &[]).ok();
    npm.run(&["dist-tag", "add", "@alice/private@1.0.0", "old"])
        .ok();
    npm.run(&["deprecate", "@alice/private@1.0.0", "use 1.0.1"])
        .ok();
    npm.run(&["profile", "set", "fullname", "Mallory"])
        .fails_with("E403");
    npm.run(&["access", "set", "status=public", "@alice/private"])
        .fails_with("403");
    npm.run(&["owner", "add", "carol", "@alice/private"])
        .fails_with("403");
    npm.run(&["token", "list"]).fails_with("E403");
    npm.run(&["token", "create", "--password", &password_of("alice")])
        .fails_with("E403");

    // Publish: anything the user can do.
    let npm = server.npm(Some(&publish));
    npm.publish("@alice/private", "1.0.2", &[]).ok();
    npm.run(&["profile", "set", "fullname", "Alice Liddell"])
        .ok();
    let profile = npm.run(&["profile", "get", "fullname"]).ok();
    assert_eq!(profile.stdout.trim(), "Alice Liddell");
    npm.run(&["access", "set", "status=public", "@alice/private"])
        .ok();
    let list = npm.run(&["token", "list"]).ok();
    assert!(
        list.stdout.contains("ci-read") && list.stdout.contains("laptop"),
        "{}",
        list.stdout
    );
    npm.run(&["token", "create", "--password", &password_of("alice")])
        .ok();
}

#[test]
fn granular_tokens_follow_package_limits_and_live_rights() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let npm = server.npm(Some(&alice));
    npm.publish("gran-a", "1.0.0", &[]).ok();
    npm.publish("gran-b", "1.0.0", &[]).ok();
    // npm 11 sends the granular body.
    let created = npm
        .run(&[
            "token",
            "create",
            "--name",
            "only-a",
            "--packages",
            "gran-a",
            "--packages-and-scopes-permission",
            "read-write",
            "--password",
            &password_of("alice"),
        ])
        .ok();
    let limited = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let limited_npm = server.npm(Some(&limited));
    limited_npm.publish("gran-a", "1.0.1", &[]).ok();
    limited_npm
        .publish("gran-b", "1.0.1", &[])
        .fails_with("E403");
    // Losing maintainer rights takes them from the token too.
    npm.run(&["owner", "add", "bob", "gran-a"]).ok();
    server
        .npm(Some(&bob))
        .run(&["owner", "rm", "alice", "gran-a"])
        .ok();
    limited_npm
        .publish("gran-a", "1.0.2", &[])
        .fails_with("E403");
    // A read-write token with bypass_2fa is shown as automation.
    let auto = server.create_token(
        &alice,
        "alice",
        json!({"packages_all": true, "packages_and_scopes_permission": "read-write", "bypass_2fa": true}),
    );
    assert_eq!(auto["type"], "automation");
    assert_eq!(auto["automation"], true);
    // A selection is an allow-list: one that selects no package is refused.
    for body in [
        json!({"packages_and_scopes_permission": "read-write", "bypass_2fa": true}),
        json!({"packages": [], "scopes": [], "packages_and_scopes_permission": "read-write"}),
    ] {
        let mut body = body;
        body["password"] = json!(password_of("alice"));
        let r = server
            .request(Method::POST, "/-/npm/v1/tokens", Some(&alice))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
}

#[test]
fn cidr_limited_tokens_work_only_from_inside_their_ranges() {
    let server = TestServer::start();
    let login = server.signup("alice");
    server
        .npm(Some(&login))
        .publish("@alice/net", "1.0.0", &[])
        .ok();
    let created = server.create_token(
        &login,
        "alice",
        json!({"cidr_whitelist": ["127.0.0.2/32", "2001:db8::/32"]}),
    );
    assert_eq!(
        created["cidr_whitelist"],
        json!(["127.0.0.2/32", "2001:db8::/32"])
    );
    let token = token_of(&created);
    let from = |addr: &str| http_from(addr.parse::<IpAddr>().unwrap());
    for path in ["/-/whoami", "/@alice%2fnet", "/@alice/net/-/net-1.0.0.tgz"] {
        let inside = from("127.0.0.2")
            .get(format!("{}{path}", server.url))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(inside.status(), 200, "{path} from inside");
        let outside = from("127.0.0.3")
            .get(format!("{}{path}", server.url))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(outside.status(), 401, "{path} from outside");
        assert_eq!(outside.headers()["www-authenticate"], "ipaddress");
        // A spoofed X-Forwarded-For is ignored without trusted proxies.
        let spoofed = from("127.0.0.3")
            .get(format!("{}{path}", server.url))
            .bearer_auth(&token)
            .header("x-forwarded-for", "127.0.0.2")
            .send()
            .unwrap();
        assert_eq!(spoofed.status(), 401, "{path} spoofed");
    }
    // The real npm CLI: EAUTHIP from outside, fine from inside.
    let npm = server.npm(Some(&token));
    npm.run(&["whoami"]).fails_with("EAUTHIP");
    if extra_loopback_addresses() {
        let out = npm.run(&["whoami", "--local-address=127.0.0.2"]).ok();
        assert_eq!(out.stdout.trim(), "alice");
        npm.run(&["install", "@alice/net", "--local-address=127.0.0.2"])
            .ok();
        npm.run(&["whoami", "--local-address=127.0.0.3"])
            .fails_with("EAUTHIP");
    }
    // A bad range is refused with the seed's message, and nothing is created.
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens", Some(&login))
        .json(&json!({"password": password_of("alice"), "cidr_whitelist": ["192.168.1.0/24", "X.X.X.X./YY"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["error"],
        "CIDR whitelist contains invalid CIDR entry: X.X.X.X./YY"
    );
    server
        .npm(Some(&login))
        .run(&["token", "create", "--cidr=10.0.0.1/40", "--password", "x"])
        .fails_with("CIDR whitelist contains invalid CIDR entry: 10.0.0.1/40");
}

#[test]
fn trusted_proxies_forward_the_client_address() {
    let server = TestServer::builder()
        .config(|c| c.trusted_proxies = vec!["127.0.0.5/32".parse().unwrap()])
        .start();
    let login = server.signup("alice");
    let token =
        token_of(&server.create_token(&login, "alice", json!({"cidr_whitelist": ["10.1.2.0/24"]})));
    let proxy = http_from("127.0.0.5".parse().unwrap());
    let via = |xff: &str| {
        proxy
            .get(format!("{}/-/whoami", server.url))
            .bearer_auth(&token)
            .header("x-forwarded-for", xff)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(via("10.1.2.3"), 200);
    assert_eq!(via("10.9.9.9"), 401);
    assert_eq!(
        via("10.9.9.9, 10.1.2.3"),
        200,
        "the right-most untrusted hop counts"
    );
}

#[test]
fn tokens_are_shown_once_then_masked_and_never_stored() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let created = server.create_token(&login, "alice", json!({"name": "once"}));
    let token = token_of(&created);
    assert_eq!(token.len(), 40);
    assert!(tessera::crypto::token_format::PlainToken::parse(&token).is_ok());
    let list = server.get("/-/npm/v1/tokens", Some(&login));
    assert_eq!(list.headers()["cache-control"], "no-store");
    let text = list.text().unwrap();
    assert!(
        !text.contains(&token) && !text.contains(&login),
        "listing leaks a token"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let row = body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "once")
        .unwrap()
        .clone();
    assert_eq!(row["token"], token[..8]);
    assert_eq!(row["masked"], format!("{}…{}", &token[..8], &token[36..]));
    assert!(body["urls"].is_object());
    // Use it so last-used data is written, then flush and grep the data directory.
    assert_eq!(server.get("/-/whoami", Some(&token)).status(), 200);
    server.block_on(server.app.usage.flush());
    let data = server.data_dir_bytes();
    for secret in [&token, &login] {
        assert!(
            !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a token reached the data directory"
        );
    }
    let npm_list = server.npm(Some(&login)).run(&["token", "list"]).ok();
    assert!(!npm_list.stdout.contains(&token));
    assert!(
        npm_list.stdout.contains(&format!("{}…", &token[..8])),
        "{}",
        npm_list.stdout
    );
    // Last used time and address are recorded.
    let list: Value = server.get("/-/npm/v1/tokens", Some(&login)).json().unwrap();
    let row = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "once")
        .unwrap()
        .clone();
    assert_eq!(row["last_used_ip"], "127.0.0.1");
    assert!(row["last_used"].is_string());
}

#[test]
fn logs_never_contain_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    let login: Value = http()
        .put(format!("{url}/-/user/org.couchdb.user:alice"))
        .json(&json!({"name": "alice", "password": password_of("alice"), "email": "a@example.com"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let login = login["token"].as_str().unwrap().to_owned();
    let npm = Npm::new(&url, Some(&login));
    npm.publish("logged-t", "1.0.0", &[]).ok();
    let created = npm
        .run(&["token", "create", "--password", &password_of("alice")])
        .ok();
    let token = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let other = Npm::new(&url, Some(&token));
    other.run(&["whoami"]).ok();
    other.run(&["token", "revoke", &token]).ok();
    npm.run(&["logout"]).ok();
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("request"), "the server logged requests");
    for secret in [&login, &token, &password_of("alice")] {
        assert!(!log.contains(secret.as_str()), "secret found in logs");
    }
}

#[test]
fn revocation_by_id_prefix_and_by_value_is_immediate() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let bob = server.signup("bob");
    let a = server.create_token(&login, "alice", json!({"name": "a"}));
    let b = server.create_token(&login, "alice", json!({"name": "b"}));
    let npm = server.npm(Some(&login));
    // npm token revoke <id-prefix>
    let key = a["key"].as_str().unwrap();
    assert_eq!(server.get("/-/whoami", Some(&token_of(&a))).status(), 200);
    let out = npm.run(&["token", "revoke", &key[..8]]).ok();
    assert!(out.stdout.contains("Removed 1 token"), "{}", out.stdout);
    let refused = server.get("/-/whoami", Some(&token_of(&a)));
    assert_eq!(refused.status(), 401);
    assert!(
        refused.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // npm token revoke <full token>
    npm.run(&["token", "revoke", &token_of(&b)]).ok();
    assert_eq!(server.get("/-/whoami", Some(&token_of(&b))).status(), 401);
    // Another user can neither list nor revoke alice's tokens.
    let c = server.create_token(&login, "alice", json!({"name": "c"}));
    let bob_list: Value = server.get("/-/npm/v1/tokens", Some(&bob)).json().unwrap();
    assert!(
        bob_list["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["name"] != "c")
    );
    for target in [c["key"].as_str().unwrap().to_owned(), token_of(&c)] {
        let r = server
            .request(
                Method::DELETE,
                &format!("/-/npm/v1/tokens/token/{target}"),
                Some(&bob),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    assert_eq!(server.get("/-/whoami", Some(&token_of(&c))).status(), 200);
    // Malformed or forged tokens never reach the database.
    let forged = format!(
        "{}{}",
        &token_of(&c)[..39],
        if token_of(&c).ends_with('a') {
            "b"
        } else {
            "a"
        }
    );
    let r = server.get("/-/whoami", Some(&forged));
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );
}

#[test]
fn expired_tokens_are_refused_and_wrong_passwords_create_nothing() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let created = server.create_token(&login, "alice", json!({"expires": 7, "name": "week"}));
    assert!(created["expires"].is_string());
    let token = token_of(&created);
    assert_eq!(server.get("/-/whoami", Some(&token)).status(), 200);
    server.clock.advance_ms(8 * 86_400_000);
    let r = server.get("/-/whoami", Some(&token));
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // The 30-day login token expired too by day 31.
    server.clock.advance_ms(23 * 86_400_000);
    assert_eq!(server.get("/-/whoami", Some(&login)).status(), 401);
    let fresh = server.signup("alice");
    let before: Value = server.get("/-/npm/v1/tokens", Some(&fresh)).json().unwrap();
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens", Some(&fresh))
        .json(&json!({"password": "wrong-password", "name": "nope"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let after: Value = server.get("/-/npm/v1/tokens", Some(&fresh)).json().unwrap();
    assert_eq!(before["total"], after["total"]);
}

#[test]
fn tessera_token_cli_creates_lists_and_revokes() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let npm = server.npm(Some(&login));
    let rc = npm.userconfig.to_str().unwrap().to_owned();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(["--userconfig", &rc]);
        tessera(&all, stdin, &[])
    };
    let pw = format!("{}\n", password_of("alice"));
    // A bad range fails before any request (no password needed).
    run(
        &["token", "create", "--cidr=192.0.2.0/24,10.0.0.300/8"],
        None,
    )
    .fails_with("CIDR whitelist contains invalid CIDR entry: 10.0.0.300/8");
    let ro = run(
        &[
            "token",
            "create",
            "--read-only",
            "--cidr=127.0.0.1/32,::1/128",
            "--name",
            "cli-ro",
            "--password-stdin",
        ],
        Some(&pw),
    )
    .ok();
    assert!(
        ro.stdout.contains("Created read-only token tsr_"),
        "{}",
        ro.stdout
    );
    assert!(ro.stderr.contains("will not be shown again"));
    let ro_token = ro
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let auto = run(
        &["token", "create", "--automation", "--password-stdin"],
        Some(&pw),
    )
    .ok();
    assert!(
        auto.stdout.contains("Created automation token"),
        "{}",
        auto.stdout
    );
    let plain = run(
        &["token", "create", "--password-stdin", "--expires", "30"],
        Some(&pw),
    )
    .ok();
    assert!(plain.stdout.contains("Created publish token") && plain.stdout.contains("expires:"));
    let list = run(&["token", "list"], None).ok();
    assert!(
        list.stdout.contains("cli-ro")
            && list.stdout.contains("read-only")
            && list.stdout.contains("127.0.0.1/32")
            && list.stdout.contains("::1/128"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(&ro_token));
    assert!(
        list.stdout
            .contains(&format!("{}…{}", &ro_token[..8], &ro_token[36..]))
    );
    let json_list: Value =
        serde_json::from_str(&run(&["token", "list", "--json"], None).ok().stdout).unwrap();
    let key = json_list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cli-ro")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The read-only token works for reads from an allowed address.
    assert_eq!(server.get("/-/whoami", Some(&ro_token)).status(), 200);
    run(&["token", "revoke", &key[..7]], None).ok();
    assert_eq!(server.get("/-/whoami", Some(&ro_token)).status(), 401);
    let who = run(&["whoami"], None).ok();
    assert_eq!(who.stdout.trim(), "alice");
    // tessera login saves a token to the userconfig.
    let fresh = Npm::new(&server.url, None);
    let frc = fresh.userconfig.to_str().unwrap().to_owned();
    tessera(
        &[
            "login",
            "--username",
            "alice",
            "--password-stdin",
            "--registry",
            &server.url,
            "--userconfig",
            &frc,
        ],
        Some(&pw),
        &[],
    )
    .ok();
    assert_eq!(fresh.run(&["whoami"]).ok().stdout.trim(), "alice");
}

#[test]
fn login_tokens_are_publish_tokens_named_after_the_client() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let list: Value = server.get("/-/npm/v1/tokens", Some(&login)).json().unwrap();
    let row = &list["objects"][0];
    assert_eq!(row["type"], "publish");
    assert!(
        row["name"].as_str().unwrap().starts_with("Login from"),
        "{row}"
    );
    // npm's couch login with an existing account issues another token.
    let again = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .json(&json!({"name": "alice", "password": password_of("alice")}))
        .send()
        .unwrap();
    assert_eq!(again.status(), 201);
    let wrong = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .json(&json!({"name": "alice", "password": "not-it"}))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.json::<serde_json::Value>().unwrap();
    let unknown = server
        .request(Method::PUT, "/-/user/org.couchdb.user:nobody", None)
        .json(&json!({"name": "nobody", "password": "whatever-pass"}))
        .send()
        .unwrap();
    // An unknown name answers exactly like a wrong password: nothing tells a
    // stranger which accounts exist.
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        unknown.json::<serde_json::Value>().unwrap(),
        wrong_body,
        "same message for an unknown user and a wrong password"
    );
}

/// The `npm-notice` a refusal carries (npm prints it as `npm notice …`).
fn notice_of(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("npm-notice")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_refused_token_says_why_in_a_notice_npm_prints() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let day = |ms: i64| {
        let iso = tessera::npm::packument::iso_time(ms);
        format!("{} {} UTC", &iso[..10], &iso[11..16])
    };

    // Revoked: the notice names the token by its visible prefix and says when.
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
    let revoked_at = day(tessera::clock::Clock::now_ms(&*server.clock));
    let r = server.get("/-/whoami", Some(&revoked));
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let notice = notice_of(&r);
    assert_eq!(
        notice,
        format!(
            "The token {}... was revoked on {revoked_at}; log in again with `npm login` or use another token.",
            &revoked[..8]
        )
    );
    assert!(!notice.contains(&revoked), "the secret never goes back");
    assert_eq!(r.json::<Value>().unwrap()["error"], notice.as_str());
    let npm = server.npm(Some(&revoked));
    let out = npm.run(&["whoami"]).fails_with("E401");
    assert!(
        out.stderr.contains(&format!(
            "npm notice The token {}... was revoked on {revoked_at}",
            &revoked[..8]
        )),
        "{}",
        out.stderr
    );
    // The same on an install: the reason comes before npm's own words.
    let out = npm.run(&["install", "anything-t"]).fails_with("E401");
    assert!(out.stderr.contains("was revoked on"), "{}", out.stderr);

    // Expired.
    let expiring = token_of(&server.create_token(&login, "alice", json!({"expires": 1})));
    let expires_at = day(tessera::clock::Clock::now_ms(&*server.clock) + 86_400_000);
    server.clock.advance_ms(2 * 86_400_000);
    let r = server.get("/-/whoami", Some(&expiring));
    assert_eq!(r.status(), 401);
    assert!(
        notice_of(&r).contains(&format!("expired on {expires_at}")),
        "{}",
        notice_of(&r)
    );
    server
        .npm(Some(&expiring))
        .run(&["whoami"])
        .fails_with("expired on");

    // From an address outside its ranges: npm's EAUTHIP, and where the call came from.
    let fresh = server.signup("alice");
    let ranged =
        token_of(&server.create_token(&fresh, "alice", json!({"cidr_whitelist": ["10.0.0.0/8"]})));
    let r = server.get("/-/whoami", Some(&ranged));
    assert_eq!(r.status(), 401);
    assert_eq!(
        notice_of(&r),
        "This token may not be used from 127.0.0.1: it is limited to other addresses."
    );
    assert!(
        !notice_of(&r).contains("10.0.0.0"),
        "the ranges stay private"
    );
    let out = server
        .npm(Some(&ranged))
        .run(&["whoami"])
        .fails_with("EAUTHIP");
    assert!(
        out.stderr.contains("may not be used from 127.0.0.1"),
        "{}",
        out.stderr
    );

    // Unknown, and not a token at all.
    let unknown = tessera::crypto::token_format::PlainToken::generate()
        .expose()
        .to_owned();
    let r = server.get("/-/whoami", Some(&unknown));
    assert!(
        notice_of(&r).starts_with("This registry does not know the token tsr_"),
        "{}",
        notice_of(&r)
    );
    let r = server.get("/-/whoami", Some("npm_abcdef"));
    assert!(
        notice_of(&r).starts_with("This is not a Tessera token"),
        "{}",
        notice_of(&r)
    );
    // Logging in again is never blocked by the stale token.
    let r = http()
        .post(format!("{}/-/v1/login", server.url))
        .bearer_auth(&revoked)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn npm_token_create_says_when_the_new_token_can_publish() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let npm = server.npm(Some(&login));
    let password = password_of("alice");
    let created_with = |args: &[&str]| -> (String, String) {
        let mut all = vec!["token", "create", "--password", password.as_str()];
        all.extend_from_slice(args);
        let out = npm.run(&all).ok();
        let token = out
            .stdout
            .split_whitespace()
            .find(|w| w.starts_with("tsr_"))
            .expect("the new token is printed")
            .to_owned();
        (token, out.stderr)
    };
    let expected = format!(
        "npm notice This new token can read and publish. npm 11 does not pass --read-only on to the registry; \
         for a token that can only read, run `npm token create --packages-all \
         --packages-and-scopes-permission=read-only` or `tessera token create --read-only`, \
         or create it at {}/settings/tokens",
        server.url
    );
    // `--read-only` reaches the registry as nothing: the token can publish, and npm says so.
    for args in [&[][..], &["--read-only"][..]] {
        let (token, stderr) = created_with(args);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        server
            .npm(Some(&token))
            .publish(&format!("pub-{}-t", args.len()), "1.0.0", &[])
            .ok();
    }
    // What the notice recommends makes a token that only reads, and says nothing.
    let (token, stderr) = created_with(&[
        "--packages-all",
        "--packages-and-scopes-permission=read-only",
    ]);
    assert!(!stderr.contains("npm notice"), "{stderr}");
    let reader = server.npm(Some(&token));
    reader.run(&["view", "pub-0-t", "version"]).ok();
    reader.publish("ro-t", "1.0.0", &[]).fails_with("read-only");
    // Other explicit types say nothing either.
    let (_, stderr) = created_with(&[
        "--packages-all",
        "--packages-and-scopes-permission=read-write",
    ]);
    assert!(!stderr.contains("npm notice"), "{stderr}");
    // On a terminal, as people run it (npm asks for the password).
    let (status, out) = npm_on_pty(
        &npm,
        &["token", "create", "--read-only"],
        &[("password", &password)],
    );
    assert_eq!(status, 0, "{out}");
    assert!(
        out.replace("\r\n", " ")
            .replace('\n', " ")
            .contains("This new token can read and publish"),
        "{out}"
    );
    assert!(out.contains("Created token tsr_"), "{out}");
}
