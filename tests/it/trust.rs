//! The trust core under attack: every credential path goes through one access decision,
//! one throttle and the same limits. Each test is one finding of the security review,
//! tried the way an attacker would (plain HTTP, spoofed headers, stale documents).

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::rules::publish_body;
use crate::two_factor::enable;

fn basic(name: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
    )
}

fn escaped(name: &str) -> String {
    name.replace('/', "%2f")
}

/// Sends a request with an arbitrary `Authorization` header.
fn with_auth(
    server: &TestServer,
    method: Method,
    path: &str,
    authorization: &str,
) -> reqwest::blocking::RequestBuilder {
    http()
        .request(method, format!("{}{path}", server.url))
        .header("authorization", authorization)
}

fn status_and_body(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn publish_as(server: &TestServer, auth: &str, name: &str, version: &str) -> (u16, Value) {
    status_and_body(
        with_auth(server, Method::PUT, &format!("/{}", escaped(name)), auth)
            .json(&publish_body(name, version))
            .send()
            .unwrap(),
    )
}

#[test]
fn a_password_never_does_more_than_a_session_without_its_second_factor() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let bearer = format!("Bearer {login}");
    assert_eq!(publish_as(&server, &bearer, "@alice/p", "1.0.0").0, 200);
    let password = basic("alice", &password_of("alice"));

    // Without 2FA the password reads and exchanges itself for a token, nothing more.
    assert_eq!(server.get("/@alice%2fp", None).status(), 404, "restricted");
    let r = with_auth(&server, Method::GET, "/@alice%2fp", &password)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = publish_as(&server, &password, "@alice/p", "1.0.1");
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    let change_email = || {
        status_and_body(
            with_auth(&server, Method::POST, "/-/npm/v1/user", &password)
                .json(&json!({"email": "mallory@example.com"}))
                .send()
                .unwrap(),
        )
    };
    assert_eq!(change_email().0, 403);
    assert_eq!(
        with_auth(&server, Method::GET, "/-/npm/v1/tokens", &password)
            .send()
            .unwrap()
            .status(),
        403
    );
    let key = server
        .get("/-/npm/v1/tokens", Some(&login))
        .json::<Value>()
        .unwrap()["objects"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = || {
        with_auth(
            &server,
            Method::DELETE,
            &format!("/-/npm/v1/tokens/token/{key}"),
            &password,
        )
        .send()
        .unwrap()
        .status()
    };
    assert_eq!(revoke(), 403);
    // `npm profile enable-2fa` with basic credentials mints a token with the legacy body.
    let legacy = json!({"password": password_of("alice"), "readonly": false, "cidr_whitelist": []});
    let r = with_auth(&server, Method::POST, "/-/npm/v1/tokens", &password)
        .json(&legacy)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // With 2FA (auth-only), a password alone does nothing at all.
    let (secret, _) = enable(&server, &login, "alice", "auth-only");
    let r = with_auth(&server, Method::GET, "/@alice%2fp", &password)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(publish_as(&server, &password, "@alice/p", "1.0.1").0, 403);
    assert_eq!(change_email().0, 403);
    assert_eq!(revoke(), 403);
    let r = with_auth(&server, Method::POST, "/-/npm/v1/tokens", &password)
        .json(&legacy)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "OTP");
    let r = with_auth(&server, Method::GET, "/-/npm/v1/user", &password)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "the profile needs the second factor too");
    // With its one-time password, the password is a full login: it gets a token.
    let r = with_auth(&server, Method::POST, "/-/npm/v1/tokens", &password)
        .header("npm-otp", otp_now(&server, &secret))
        .json(&legacy)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Nothing changed: the email, the token and the versions are as they were.
    let profile: Value = server.get("/-/npm/v1/user", Some(&login)).json().unwrap();
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(server.get("/-/whoami", Some(&login)).status(), 200);
    let doc: Value = server.get("/@alice%2fp", Some(&login)).json().unwrap();
    assert!(doc["versions"].get("1.0.1").is_none());
}

#[test]
fn every_password_and_otp_check_shares_one_throttle() {
    let server = TestServer::start();
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        server.signup(name);
    }
    let couch_login =
        |client: &reqwest::blocking::Client, name: &str, password: &str, otp: Option<&str>| {
            let mut r = client
                .put(format!("{}/-/user/org.couchdb.user:{name}", server.url))
                .json(&json!({"name": name, "password": password}));
            if let Some(otp) = otp {
                r = r.header("npm-otp", otp);
            }
            r.send().unwrap()
        };
    let here = http();
    // npm login: ten wrong passwords lock alice's password, and say so.
    for _ in 0..10 {
        assert_eq!(
            couch_login(&here, "alice", "wrong-password", None).status(),
            401
        );
    }
    let locked = couch_login(&here, "alice", &password_of("alice"), None);
    assert_eq!(locked.status(), 429);
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    let message = locked.json::<Value>().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("wrong passwords"), "{message}");
    assert!(!message.contains("one-time"), "{message}");
    // The same lock holds on every other path that checks alice's password.
    let r = here
        .get(format!("{}/-/npm/v1/user", server.url))
        .header("authorization", basic("alice", &password_of("alice")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    // One noisy address does not lock other accounts out.
    assert_eq!(
        couch_login(&here, "bob", &password_of("bob"), None).status(),
        201
    );

    // The password re-check of token creation counts too.
    let bob = server.signup("bob");
    let create = |password: &str| {
        server
            .request(Method::POST, "/-/npm/v1/tokens", Some(&bob))
            .json(&json!({"password": password}))
            .send()
            .unwrap()
            .status()
    };
    for _ in 0..10 {
        assert_eq!(create("wrong-password"), 401);
    }
    assert_eq!(create(&password_of("bob")), 429);

    // So does the password of a 2FA change.
    let carol = server.signup("carol");
    let (carol_secret, _) = enable(&server, &carol, "carol", "auth-only");
    let disable = |password: &str, otp: &str| {
        server
            .request(Method::POST, "/-/npm/v1/user", Some(&carol))
            .header("npm-otp", otp)
            .json(&json!({"tfa": {"mode": "disable", "password": password}}))
            .send()
            .unwrap()
    };
    for _ in 0..10 {
        let otp = otp_now(&server, &carol_secret);
        assert_eq!(disable("wrong-password", &otp).status(), 401);
        server.clock.advance_ms(30_000);
    }
    let r = disable(&password_of("carol"), &otp_now(&server, &carol_secret));
    assert_eq!(r.status(), 429);

    // One-time passwords: dave's ten wrong codes lock dave, not erin behind the same
    // address, and the message names one-time passwords.
    let dave = server.signup("dave");
    let (_, _) = enable(&server, &dave, "dave", "auth-only");
    let erin = server.signup("erin");
    let (erin_secret, _) = enable(&server, &erin, "erin", "auth-only");
    for _ in 0..10 {
        assert_eq!(
            couch_login(&here, "dave", &password_of("dave"), Some("000000")).status(),
            401
        );
    }
    let r = couch_login(&here, "dave", &password_of("dave"), Some("000000"));
    assert_eq!(r.status(), 429);
    let message = r.json::<Value>().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("one-time passwords"), "{message}");
    let r = couch_login(
        &here,
        "erin",
        &password_of("erin"),
        Some(&otp_now(&server, &erin_secret)),
    );
    assert_eq!(r.status(), 201);

    // An address spraying many accounts is stopped at the address limit.
    let sprayer = http_from("127.0.0.9".parse().unwrap());
    let mut statuses = Vec::new();
    for i in 0..60 {
        statuses.push(
            couch_login(&sprayer, &format!("nobody{i}"), "guess-guess", None)
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..50].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[50..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = couch_login(&sprayer, "frank", &password_of("frank"), None);
    assert_eq!(
        r.status(),
        429,
        "the address is throttled for every account"
    );
    assert!(
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("your address")
    );

    // The window passes; alice logs in again.
    server.clock.advance_ms(15 * 60 * 1000 + 1000);
    assert_eq!(
        couch_login(&here, "alice", &password_of("alice"), None).status(),
        201
    );
}

/// Rewrites one column of a token row in the embedded database, as a corrupted or
/// hand-edited row would look.
fn corrupt_token(server: &TestServer, token: &str, column: &str, value: &str) {
    let url = server.app.config.database_url.as_str().to_owned();
    let hash = tessera::crypto::token_format::PlainToken::parse(token)
        .unwrap()
        .hash(&server.app.keys.token_hash);
    server.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tokens SET {column} = $1 WHERE hash = $2"
        )))
        .bind(value)
        .bind(hash.as_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    });
}

#[test]
fn a_granular_selection_is_an_allow_list() {
    let server = TestServer::start();
    let login = server.signup("alice");
    assert_eq!(
        publish_as(
            &server,
            &format!("Bearer {login}"),
            "@alice/secret",
            "1.0.0"
        )
        .0,
        200
    );
    let create = |body: Value| {
        let mut body = body;
        body["password"] = json!(password_of("alice"));
        let r = server
            .request(Method::POST, "/-/npm/v1/tokens", Some(&login))
            .json(&body)
            .send()
            .unwrap();
        status_and_body(r)
    };
    // Selections that select nothing, unknown types and permissions: refused.
    for body in [
        json!({"packages_and_scopes_permission": "read-write"}),
        json!({"packages": [], "packages_and_scopes_permission": "read-write"}),
        json!({"scopes": [], "packages_and_scopes_permission": "read-only"}),
        json!({"bypass_2fa": true}),
        json!({"type": "admin"}),
        json!({"type": "root", "packages_all": true}),
        json!({"packages_all": true, "packages_and_scopes_permission": "admin"}),
        json!({"orgs": ["acme"], "orgs_permission": "owner"}),
        json!({"orgs": ["acme"]}),
    ] {
        let (status, answer) = create(body.clone());
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Organizations only: a valid token that reaches no package.
    let (status, orgs_only) = create(json!({"orgs": ["acme"], "orgs_permission": "read-write"}));
    assert_eq!(status, 201);
    let orgs_only = token_of(&orgs_only);
    let bearer = format!("Bearer {orgs_only}");
    assert_eq!(
        publish_as(&server, &bearer, "@alice/secret", "1.0.1").0,
        403
    );
    assert_eq!(publish_as(&server, &bearer, "@alice/new", "1.0.0").0, 403);
    assert_eq!(
        server.get("/@alice%2fsecret", Some(&orgs_only)).status(),
        404
    );
    // A granular token with an explicit selection reaches exactly that.
    let (_, scoped) = create(
        json!({"packages": ["@alice/secret"], "packages_and_scopes_permission": "read-only"}),
    );
    let scoped = token_of(&scoped);
    assert_eq!(server.get("/@alice%2fsecret", Some(&scoped)).status(), 200);
    assert_eq!(
        publish_as(
            &server,
            &format!("Bearer {scoped}"),
            "@alice/secret",
            "1.0.1"
        )
        .0,
        403
    );

    // Stored settings that cannot be read fail closed: the token is refused.
    for (column, value) in [
        (
            "limits",
            r#"{"packages_all":true,"permission":"superuser"}"#,
        ),
        ("limits", "not json"),
        ("kind", "admin"),
        ("cidr", "[]"),
        ("cidr", r#"["10.0.0.0/99"]"#),
    ] {
        let (_, fresh) =
            create(json!({"packages_all": true, "packages_and_scopes_permission": "read-write"}));
        let fresh = token_of(&fresh);
        corrupt_token(&server, &fresh, column, value);
        let r = server.get("/@alice%2fsecret", Some(&fresh));
        assert_eq!(r.status(), 401, "{column} = {value}");
        assert_eq!(
            publish_as(
                &server,
                &format!("Bearer {fresh}"),
                "@alice/secret",
                "1.0.2"
            )
            .0,
            401
        );
    }
}

#[test]
fn tokens_limited_to_packages_cannot_touch_the_account() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let bearer = format!("Bearer {login}");
    for name in ["@alice/a", "@alice/b"] {
        assert_eq!(publish_as(&server, &bearer, name, "1.0.0").0, 200);
    }
    for permission in ["no-access", "read-only", "read-write"] {
        let limited = token_of(&server.create_token(
            &login,
            "alice",
            json!({"packages": ["@alice/a"], "packages_and_scopes_permission": permission}),
        ));
        let as_limited = |method: Method, path: &str, body: Option<Value>| {
            let mut r = server.request(method, path, Some(&limited));
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().unwrap().status().as_u16()
        };
        assert_eq!(
            as_limited(Method::GET, "/-/npm/v1/tokens", None),
            403,
            "{permission}"
        );
        assert_eq!(
            as_limited(
                Method::POST,
                "/-/npm/v1/tokens",
                Some(json!({"password": password_of("alice")}))
            ),
            403
        );
        let key = server
            .get("/-/npm/v1/tokens", Some(&login))
            .json::<Value>()
            .unwrap()["objects"][0]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            as_limited(
                Method::DELETE,
                &format!("/-/npm/v1/tokens/token/{key}"),
                None
            ),
            403
        );
        assert_eq!(
            as_limited(
                Method::DELETE,
                &format!("/-/npm/v1/tokens/token/{login}"),
                None
            ),
            403
        );
        assert_eq!(
            as_limited(
                Method::POST,
                "/-/npm/v1/user",
                Some(json!({"email": "mallory@example.com"}))
            ),
            403
        );
        assert_eq!(
            as_limited(
                Method::POST,
                "/-/npm/v1/user",
                Some(json!({"tfa": {"mode": "auth-only", "password": password_of("alice")}}))
            ),
            403
        );
        assert_eq!(as_limited(Method::GET, "/-/npm/v1/user", None), 403);
        // Its package list shows only what it reaches.
        let listed: Value = server
            .get("/-/user/alice/package", Some(&limited))
            .json()
            .unwrap();
        let expected = match permission {
            "no-access" => json!({}),
            "read-only" => json!({"@alice/a": "read"}),
            _ => json!({"@alice/a": "write"}),
        };
        assert_eq!(listed, expected, "{permission}");
        // The token still logs itself out.
        assert_eq!(
            as_limited(Method::DELETE, &format!("/-/user/token/{limited}"), None),
            200
        );
    }
    let full: Value = server
        .get("/-/user/alice/package", Some(&login))
        .json()
        .unwrap();
    assert_eq!(full, json!({"@alice/a": "write", "@alice/b": "write"}));
    // Nothing was changed by the refused requests.
    let profile: Value = server.get("/-/npm/v1/user", Some(&login)).json().unwrap();
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(profile["tfa"], false);
}

#[test]
fn user_documents_show_an_email_to_its_owner_only() {
    for anonymous_read in [true, false] {
        let server = TestServer::builder()
            .config(move |c| c.anonymous_read = anonymous_read)
            .start();
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        let doc = |token: Option<&str>, name: &str| {
            let r = server.get(&format!("/-/user/org.couchdb.user:{name}"), token);
            status_and_body(r)
        };
        assert_eq!(doc(None, "alice").0, 401);
        assert_eq!(
            doc(None, "nobody").0,
            401,
            "anonymous callers learn nothing"
        );
        let (status, seen_by_bob) = doc(Some(&bob), "alice");
        assert_eq!(status, 200);
        assert_eq!(seen_by_bob["name"], "alice");
        assert!(seen_by_bob.get("email").is_none(), "{seen_by_bob}");
        let (_, own) = doc(Some(&alice), "alice");
        assert_eq!(own["email"], "alice@example.com");
        assert_eq!(doc(Some(&bob), "nobody").0, 404);
    }
}

#[test]
fn forwarded_addresses_are_read_as_proxies_write_them() {
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
            .as_u16()
    };
    assert_eq!(via("10.1.2.3"), 200);
    assert_eq!(via("10.1.2.3:5555"), 200);
    assert_eq!(via("198.51.100.7, 10.1.2.3:80"), 200);
    // The attacker writes the allowed address on the left; the proxy appends the
    // real one in a form that used to be skipped.
    for spoof in [
        "10.1.2.3, 198.51.100.7:5555",
        "10.1.2.3, [2001:db8::1]",
        "10.1.2.3, [2001:db8::1]:443",
        "10.1.2.3, unknown",
        "10.1.2.3, _hidden",
        "10.1.2.3, not an address",
        "10.1.2.3, 10.1.2.4:99999",
        // Not a port a proxy writes (the fuzzer found `+` was taken).
        "10.1.2.3, 10.1.2.4:+80",
        "10.1.2.3, [::ffff:10.1.2.4]:+80",
    ] {
        assert_eq!(via(spoof), 401, "{spoof}");
    }
    // Ranges: a zero-padded prefix is refused with npm's message; a mapped range is
    // stored as the IPv4 range it means.
    let r = server
        .request(Method::POST, "/-/npm/v1/tokens", Some(&login))
        .json(&json!({"password": password_of("alice"), "cidr_whitelist": ["10.0.0.0/08"]}))
        .send()
        .unwrap();
    let (status, body) = status_and_body(r);
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "CIDR whitelist contains invalid CIDR entry: 10.0.0.0/08"
    );
    let mapped = server.create_token(
        &login,
        "alice",
        json!({"cidr_whitelist": ["::ffff:10.1.2.0/120"]}),
    );
    assert_eq!(mapped["cidr_whitelist"], json!(["10.1.2.0/24"]));
    let mapped = token_of(&mapped);
    let status = proxy
        .get(format!("{}/-/whoami", server.url))
        .bearer_auth(&mapped)
        .header("x-forwarded-for", "10.1.2.77")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[test]
fn nothing_tells_a_stranger_that_a_private_package_exists() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    assert_eq!(
        publish_as(
            &server,
            &format!("Bearer {alice}"),
            "@alice/secret",
            "1.0.0"
        )
        .0,
        200
    );
    let bob_auth = format!("Bearer {bob}");
    let hidden = publish_as(&server, &bob_auth, "@alice/secret", "2.0.0");
    let missing = publish_as(&server, &bob_auth, "@alice/nothing", "1.0.0");
    assert_eq!(hidden.0, 403);
    assert_eq!(hidden.0, missing.0);
    assert_eq!(
        hidden.1["error"].as_str().unwrap().replace("secret", "X"),
        missing.1["error"].as_str().unwrap().replace("nothing", "X")
    );
    for (method, path, body) in [
        (Method::PUT, "/-/package/{}/dist-tags/beta", json!("1.0.0")),
        (Method::DELETE, "/-/package/{}/dist-tags/beta", Value::Null),
        (Method::GET, "/-/package/{}/dist-tags", Value::Null),
        (Method::GET, "/-/package/{}/collaborators", Value::Null),
        (Method::GET, "/-/package/{}/visibility", Value::Null),
        (
            Method::POST,
            "/-/package/{}/access",
            json!({"access": "public"}),
        ),
        (Method::GET, "/{}", Value::Null),
    ] {
        let ask = |name: &str| {
            let mut r = server.request(
                method.clone(),
                &path.replace("{}", &escaped(name)),
                Some(&bob),
            );
            if !body.is_null() {
                r = r.json(&body);
            }
            r.send().unwrap().status().as_u16()
        };
        assert_eq!(
            ask("@alice/secret"),
            ask("@alice/nothing"),
            "{method} {path}"
        );
    }
    // Without anonymous reads, every name answers an anonymous caller alike.
    let closed = TestServer::builder()
        .config(|c| c.anonymous_read = false)
        .start();
    let owner = closed.signup("alice");
    assert_eq!(
        publish_as(&closed, &format!("Bearer {owner}"), "left-pad", "1.0.0").0,
        200
    );
    assert_eq!(
        publish_as(
            &closed,
            &format!("Bearer {owner}"),
            "@alice/secret",
            "1.0.0"
        )
        .0,
        200
    );
    let answers: Vec<(u16, Value)> = [
        "/left-pad",
        "/@alice%2fsecret",
        "/no-such-thing",
        "/left-pad/-/left-pad-1.0.0.tgz",
    ]
    .iter()
    .map(|p| status_and_body(closed.get(p, None)))
    .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
}

#[test]
fn secrets_stay_out_of_debug_output_and_storage() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let debug = format!("{:?}", server.app);
    let key_bytes = format!("{:?}", server.app.keys.totp);
    assert!(
        !debug.contains(&key_bytes),
        "the TOTP sealing key reached Debug"
    );
    let mut config = (*server.app.config).clone();
    config.database_url = "postgres://tessera:hunter2-secret@db.example/tessera".into();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("tessera:***@db.example"), "{shown}");
    let request = tessera::domain::tokens::CreateRequest {
        password: "a-password-in-a-request".to_owned().into(),
        ..Default::default()
    };
    assert!(!format!("{request:?}").contains("a-password-in-a-request"));

    // A token made on the website is in the response that created it, and nowhere
    // in storage.
    let web = http_session(&server, "alice");
    let form = web.csrf("/settings/tokens/new");
    let r = web.post(
        "/settings/tokens/new",
        &[
            ("csrf", form.as_str()),
            ("name", "from the website"),
            ("kind", "read-only"),
            ("expires", "never"),
            ("password", &password_of("alice")),
        ],
    );
    assert_eq!(r.status(), 201);
    let page = r.text().unwrap();
    let start = page
        .find("id=\"new-token-value\" class=\"token-value\">")
        .expect("token shown")
        + "id=\"new-token-value\" class=\"token-value\">".len();
    let token = page[start..start + 40].to_owned();
    assert!(token.starts_with("tsr_"), "{token}");
    assert_eq!(server.get("/-/whoami", Some(&token)).status(), 200);
    server.block_on(server.app.usage.flush());
    let stored = server.data_dir_bytes();
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the new token was written to the data directory"
    );
    assert!(
        !stored.windows(login.len()).any(|w| w == login.as_bytes()),
        "a login token was written to the data directory"
    );
}

#[test]
fn outdated_documents_never_remove_versions() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bearer = format!("Bearer {alice}");
        assert_eq!(publish_as(&server, &bearer, "stale", "1.0.0").0, 200);
        assert_eq!(publish_as(&server, &bearer, "stale", "1.1.0").0, 200);
        let read = || -> Value {
            server
                .get("/stale?write=true", Some(&alice))
                .json()
                .unwrap()
        };
        let old = read();
        let old_rev = old["_rev"].as_str().unwrap().to_owned();
        // Someone publishes meanwhile.
        assert_eq!(publish_as(&server, &bearer, "stale", "1.2.0").0, 200);
        // An unpublish of 1.0.0 built from the old document is refused…
        let mut without = old.clone();
        without["versions"].as_object_mut().unwrap().remove("1.0.0");
        let r = server
            .request(Method::PUT, &format!("/stale/-rev/{old_rev}"), Some(&alice))
            .json(&without)
            .send()
            .unwrap();
        let (status, body) = status_and_body(r);
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("changed since"),
            "{body}"
        );
        let now = read();
        for v in ["1.0.0", "1.1.0", "1.2.0"] {
            assert!(now["versions"].get(v).is_some(), "{v} lost");
        }
        // …and a stale whole-package delete too.
        let r = server
            .request(
                Method::DELETE,
                &format!("/stale/-rev/{old_rev}"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 409);
        // A stale deprecation is refused as well.
        let mut deprecate = old.clone();
        deprecate["versions"]["1.0.0"]["deprecated"] = json!("old");
        let r = server
            .request(Method::PUT, "/stale", Some(&alice))
            .json(&deprecate)
            .send()
            .unwrap();
        assert_eq!(r.status(), 409);
        // With the current revision the same unpublish works.
        let current = read();
        let mut without = current.clone();
        without["versions"].as_object_mut().unwrap().remove("1.0.0");
        let rev = current["_rev"].as_str().unwrap();
        let r = server
            .request(Method::PUT, &format!("/stale/-rev/{rev}"), Some(&alice))
            .json(&without)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let after = read();
        assert!(after["versions"].get("1.0.0").is_none());
        assert!(after["versions"].get("1.2.0").is_some());
        // A dist-tag change moves the revision, so documents read before it are stale.
        let before = read()["_rev"].as_str().unwrap().to_owned();
        let r = server
            .request(Method::PUT, "/-/package/stale/dist-tags/beta", Some(&alice))
            .json(&json!("1.1.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_ne!(read()["_rev"].as_str().unwrap(), before);
        // A whole document sent back by a reader (pnpm's star) removes nothing and
        // needs only read access.
        let bob = server.signup("bob");
        let mut star = read();
        star["users"] = json!({"bob": true});
        let rev = star["_rev"].as_str().unwrap().to_owned();
        let r = server
            .request(Method::PUT, &format!("/stale/-rev/{rev}"), Some(&bob))
            .json(&star)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut strip = read();
        strip["versions"].as_object_mut().unwrap().remove("1.1.0");
        let rev = strip["_rev"].as_str().unwrap().to_owned();
        let r = server
            .request(Method::PUT, &format!("/stale/-rev/{rev}"), Some(&bob))
            .json(&strip)
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "a reader cannot remove versions");
        assert!(read()["versions"].get("1.1.0").is_some());
    });
}

#[test]
fn revoking_a_token_many_times_at_once_revokes_it_once() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let victim = token_of(&server.create_token(&login, "alice", json!({})));
    let url = format!("{}/-/npm/v1/tokens/token/{victim}", server.url);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let url = url.clone();
                let login = login.clone();
                s.spawn(move || {
                    http()
                        .delete(&url)
                        .bearer_auth(&login)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(server.get("/-/whoami", Some(&victim)).status(), 401);
    let events = server.block_on(async {
        let caller = tessera::domain::auth::authenticate_token(
            &server.app,
            &login,
            tessera::cidr::ClientAddr::Ip([127, 0, 0, 1].into()),
        )
        .await
        .unwrap();
        tessera::domain::security_log::list(&server.app, &caller, 100)
            .await
            .unwrap()
    });
    let revoked = events
        .iter()
        .filter(|e| e.kind.get() == Some(tessera::store::SecurityEventKind::TokenRevoked))
        .count();
    assert_eq!(revoked, 1, "one revocation, one event");
}
