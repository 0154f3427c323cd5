//! Organizations and teams with the real npm CLI (`npm org`, `npm team`, `npm access`),
//! rights that change on the very next request, token organization limits, and the
//! "who can publish this?" view checked against what really can publish.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// `tessera ARGS` as `npm`'s user: the same registry and `.npmrc`.
use crate::harness::tessera_as;

struct Team {
    server: TestServer,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

/// alice owns @acme (bob developer, carol admin); dave owns @globex.
fn team() -> Team {
    let server = TestServer::start();
    let alice = server.signup("alice");
    let bob = server.signup("bob");
    let carol = server.signup("carol");
    let dave = server.signup("dave");
    let a = server.npm(Some(&alice));
    let out = tessera_as(&a, &["org", "create", "acme"]).ok();
    assert!(
        out.stdout.contains("Created the organization acme"),
        "{}",
        out.stdout
    );
    tessera_as(&server.npm(Some(&dave)), &["org", "create", "@globex"]).ok();
    let set = a.run(&["org", "set", "acme", "bob"]).ok();
    assert!(
        set.stdout
            .contains("Added bob as developer to acme. You now have 2 members in this org."),
        "{}",
        set.stdout
    );
    a.run(&["org", "set", "acme", "carol", "admin"]).ok();
    Team {
        server,
        alice,
        bob,
        carol,
        dave,
    }
}

#[test]
fn organizations_teams_and_grants_with_npm() {
    let t = team();
    let (a, b, c, d) = (
        t.server.npm(Some(&t.alice)),
        t.server.npm(Some(&t.bob)),
        t.server.npm(Some(&t.carol)),
        t.server.npm(Some(&t.dave)),
    );
    let ls = a.run(&["org", "ls", "acme"]).ok();
    for line in ["alice - owner", "bob - developer", "carol - admin"] {
        assert!(ls.stdout.contains(line), "{line} in {}", ls.stdout);
    }
    // A stranger sees nothing of the organization, and cannot publish into its scope.
    d.run(&["org", "ls", "acme"]).fails_with("E404");
    d.publish("@acme/intruder", "1.0.0", &[]).fails_with("E403");
    // Teams: every organization starts with `developers`, which new members join.
    assert!(
        c.run(&["team", "create", "@acme:release"])
            .ok()
            .stdout
            .contains("+@acme:release")
    );
    let teams = a.run(&["team", "ls", "acme"]).ok();
    assert!(
        teams.stdout.contains("@acme:developers") && teams.stdout.contains("@acme:release"),
        "{}",
        teams.stdout
    );
    let devs = a.run(&["team", "ls", "@acme:developers"]).ok();
    for user in ["alice", "bob", "carol"] {
        assert!(
            devs.stdout.contains(user),
            "{user} in developers: {}",
            devs.stdout
        );
    }
    a.run(&["team", "add", "@acme:release", "bob"]).ok();
    assert!(
        a.run(&["team", "ls", "@acme:release"])
            .ok()
            .stdout
            .contains("bob")
    );
    // A developer manages nothing; an admin cannot make owners.
    b.run(&["org", "set", "acme", "dave"]).fails_with("E403");
    b.run(&["team", "create", "@acme:mine"]).fails_with("E403");
    c.run(&["org", "set", "acme", "dave", "owner"])
        .fails_with("E403");
    // Members create packages in the scope; a package's writers come from teams.
    a.publish("@acme/lib", "1.0.0", &[]).ok();
    b.publish("@acme/lib", "1.0.1", &[]).fails_with("E403");
    a.run(&["access", "grant", "read-write", "acme:release", "@acme/lib"])
        .ok();
    b.publish("@acme/lib", "1.0.1", &[]).ok();
    let listed = a.run(&["access", "list", "packages", "acme:release"]).ok();
    assert!(
        listed.stdout.contains("@acme/lib: read-write"),
        "{}",
        listed.stdout
    );
    let collaborators = a
        .run(&["access", "list", "collaborators", "@acme/lib", "--json"])
        .ok();
    let collaborators: Value = serde_json::from_str(&collaborators.stdout).unwrap();
    assert_eq!(collaborators["bob"], "read-write", "{collaborators}");
    assert_eq!(collaborators["carol"], "read-write", "{collaborators}");
    assert_eq!(collaborators["alice"], "read-write", "{collaborators}");
    // Restricted org packages are readable by granted teams and owners/admins only.
    a.run(&[
        "access",
        "grant",
        "read-only",
        "acme:developers",
        "@acme/lib",
    ])
    .ok();
    a.run(&["access", "revoke", "acme:release", "@acme/lib"])
        .ok();
    assert_eq!(
        t.server.get("/@acme%2flib", Some(&t.bob)).status(),
        200,
        "read-only through developers"
    );
    b.publish("@acme/lib", "1.0.2", &[]).fails_with("E403");
    a.run(&["access", "revoke", "acme:developers", "@acme/lib"])
        .ok();
    assert_eq!(
        t.server.get("/@acme%2flib", Some(&t.bob)).status(),
        404,
        "no grant left"
    );
    assert_eq!(
        t.server.get("/@acme%2flib", Some(&t.carol)).status(),
        200,
        "admins read everything"
    );
    // The organization's packages, as each member reaches them.
    let mine = b.run(&["access", "list", "packages", "acme"]).ok();
    assert!(!mine.stdout.contains("@acme/lib"), "{}", mine.stdout);
    let theirs = c.run(&["access", "list", "packages", "acme"]).ok();
    assert!(
        theirs.stdout.contains("@acme/lib: read-write"),
        "{}",
        theirs.stdout
    );
    // `npm access get status` on an org package, and set.
    a.run(&["access", "set", "status=public", "@acme/lib"]).ok();
    assert!(
        a.run(&["access", "get", "status", "@acme/lib"])
            .ok()
            .stdout
            .contains("public")
    );
    // Team and member removal.
    c.run(&["team", "destroy", "@acme:release"]).ok();
    assert!(
        !a.run(&["team", "ls", "acme"])
            .ok()
            .stdout
            .contains("release")
    );
    a.run(&["team", "destroy", "@acme:developers"])
        .fails_with("developers");
    a.run(&["org", "rm", "acme", "alice"]).fails_with("owner");
    let rm = a.run(&["org", "rm", "acme", "bob"]).ok();
    assert!(
        rm.stdout
            .contains("Successfully removed bob from acme. You now have 2 members in this org."),
        "{}",
        rm.stdout
    );
    // Owners are made by owners.
    a.run(&["org", "set", "acme", "dave", "owner"]).ok();
    d.run(&["org", "ls", "acme"]).ok();
    // The organization's log, for its owners.
    let log: Value = t
        .server
        .get("/-/org/acme/credentials", Some(&t.alice))
        .json()
        .unwrap();
    assert_eq!(log["org"], "acme");
    // The log in a terminal too, newest first, for owners only.
    let log = tessera_as(&a, &["org", "log", "acme"]).ok();
    let first = log.stdout.lines().next().unwrap_or("");
    assert!(
        first.contains("alice") && first.contains("dave joined as owner"),
        "{}",
        log.stdout
    );
    for entry in [
        "bob removed",
        "team release deleted",
        "organization acme created",
    ] {
        assert!(log.stdout.contains(entry), "{entry:?} in {}", log.stdout);
    }
    let json: Value = serde_json::from_str(
        &tessera_as(&a, &["org", "log", "@acme", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["events"][0]["kind"], "member-set", "{json}");
    tessera_as(&c, &["org", "log", "acme"]).fails_with("Only owners of acme");
    tessera_as(&b, &["org", "log", "acme"]).fails_with("not found");
    // Each account's organizations and roles.
    let mine = tessera_as(&d, &["org", "list"]).ok();
    assert!(
        mine.stdout.contains("@acme - owner") && mine.stdout.contains("@globex - owner"),
        "{}",
        mine.stdout
    );
    assert!(
        tessera_as(&b, &["org", "list"])
            .ok()
            .stdout
            .contains("not a member of any organization")
    );
}

#[test]
fn removing_rights_takes_them_on_the_very_next_request() {
    on_both_databases(|server| {
        let alice = server.signup("alice");
        let bob = server.signup("bob");
        let a = server.npm(Some(&alice));
        tessera_as(&a, &["org", "create", "acme"]).ok();
        a.run(&["org", "set", "acme", "bob"]).ok();
        a.run(&["team", "create", "@acme:release"]).ok();
        a.run(&["team", "add", "@acme:release", "bob"]).ok();
        a.publish("@acme/lib", "1.0.0", &[]).ok();
        a.run(&["access", "grant", "read-write", "acme:release", "@acme/lib"])
            .ok();
        // bob's token (a granular one, limited to the package) rides on the grant.
        let token = token_of(&server.create_token(
            &bob,
            "bob",
            json!({"packages": ["@acme/lib"], "packages_and_scopes_permission": "read-write"}),
        ));
        let b = server.npm(Some(&token));
        b.publish("@acme/lib", "1.0.1", &[]).ok();
        // Warm every cache with reads, then remove the grant: the next request fails.
        for _ in 0..3 {
            assert_eq!(server.get("/@acme%2flib", Some(&token)).status(), 200);
        }
        a.run(&["team", "rm", "@acme:release", "bob"]).ok();
        assert_eq!(server.get("/@acme%2flib", Some(&token)).status(), 404);
        b.publish("@acme/lib", "1.0.2", &[]).fails_with("E403");
        // Back in the team: works again at once; out of the organization: gone at once,
        // even for a package bob maintains.
        a.run(&["team", "add", "@acme:release", "bob"]).ok();
        assert_eq!(server.get("/@acme%2flib", Some(&token)).status(), 200);
        server
            .npm(Some(&bob))
            .publish("@acme/own", "1.0.0", &[])
            .ok();
        assert_eq!(server.get("/@acme%2fown", Some(&bob)).status(), 200);
        a.run(&["org", "rm", "acme", "bob"]).ok();
        assert_eq!(server.get("/@acme%2fown", Some(&bob)).status(), 404);
        assert_eq!(server.get("/@acme%2flib", Some(&token)).status(), 404);
        server
            .npm(Some(&bob))
            .publish("@acme/own", "1.0.1", &[])
            .fails_with("E403");
    });
}

#[test]
fn token_organization_limits_mean_something() {
    let t = team();
    let create = |body: Value| token_of(&t.server.create_token(&t.alice, "alice", body));
    let reader = create(json!({"orgs": ["acme"], "orgs_permission": "read-only"}));
    let writer = create(json!({"orgs": ["acme"], "orgs_permission": "read-write"}));
    let elsewhere = create(json!({"orgs": ["globex"], "orgs_permission": "read-write"}));
    let read_only_classic = create(json!({"readonly": true}));
    let ls = |token: &str| {
        t.server
            .get("/-/org/acme/user", Some(token))
            .status()
            .as_u16()
    };
    let set = |token: &str| {
        t.server
            .request(Method::PUT, "/-/org/acme/user", Some(token))
            .json(&json!({"user": "dave", "role": "developer"}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ls(&reader), 200);
    assert_eq!(set(&reader), 403);
    assert_eq!(ls(&elsewhere), 403);
    assert_eq!(set(&elsewhere), 403);
    assert_eq!(ls(&read_only_classic), 200);
    assert_eq!(set(&read_only_classic), 403);
    assert_eq!(set(&writer), 200);
    // An organizations-only token reaches no package.
    let npm = t.server.npm(Some(&writer));
    npm.publish("@acme/nope", "1.0.0", &[]).fails_with("E403");
}

#[test]
fn the_credentials_view_lists_exactly_what_can_publish() {
    let t = team();
    let a = t.server.npm(Some(&t.alice));
    a.publish("@acme/lib", "1.0.0", &[]).ok();
    a.run(&["team", "create", "@acme:release"]).ok();
    a.run(&["team", "add", "@acme:release", "bob"]).ok();
    a.run(&["access", "grant", "read-write", "acme:release", "@acme/lib"])
        .ok();
    // Tokens that can and cannot publish @acme/lib.
    let can = [
        ("alice", t.alice.clone()),
        ("bob", t.bob.clone()),
        ("carol", t.carol.clone()),
        (
            "bob",
            token_of(&t.server.create_token(
                &t.bob,
                "bob",
                json!({"automation": true, "cidr_whitelist": ["127.0.0.0/8"]}),
            )),
        ),
        (
            "alice",
            token_of(&t.server.create_token(
                &t.alice,
                "alice",
                json!({"packages": ["@acme/lib"], "packages_and_scopes_permission": "read-write", "expires": 30}),
            )),
        ),
    ];
    let cannot = [
        token_of(
            &t.server
                .create_token(&t.bob, "bob", json!({"readonly": true})),
        ),
        token_of(&t.server.create_token(
            &t.alice,
            "alice",
            json!({"packages": ["@acme/other"], "packages_and_scopes_permission": "read-write"}),
        )),
        t.dave.clone(),
    ];
    let view = tessera_as(&a, &["package", "credentials", "@acme/lib", "--json"]).ok();
    let view: Value = serde_json::from_str(&view.stdout).unwrap();
    let listed: Vec<(String, String)> = view["publishers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["user"].as_str().unwrap().to_owned(),
                p["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let writers: Vec<&str> = view["writers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["user"].as_str().unwrap())
        .collect();
    assert_eq!(writers, ["alice", "bob", "carol"], "{view}");
    let bob_paths = &view["writers"][1]["paths"];
    assert!(
        bob_paths
            .to_string()
            .contains("team @acme:release (read-write)"),
        "{bob_paths}"
    );
    // Each token listed publishes; none that is not listed does.
    let key_of = |token: &str| {
        let list: Value = t
            .server
            .get("/-/npm/v1/tokens", Some(token))
            .json()
            .unwrap_or(Value::Null);
        list["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| token.starts_with(o["token"].as_str().unwrap_or("-")))
            .and_then(|o| o["key"].as_str())
            .map(str::to_owned)
    };
    let mut version = 1;
    for (user, token) in &can {
        let login = match *user {
            "alice" => &t.alice,
            "bob" => &t.bob,
            _ => &t.carol,
        };
        let list: Value = t
            .server
            .get("/-/npm/v1/tokens", Some(login))
            .json()
            .unwrap();
        let key = list["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| token.starts_with(o["token"].as_str().unwrap()))
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            listed.contains(&(user.to_string(), key.clone())),
            "{user}'s {key} not listed: {listed:?}"
        );
        t.server
            .npm(Some(token))
            .publish("@acme/lib", &format!("1.1.{version}"), &[])
            .ok();
        version += 1;
    }
    for token in &cannot {
        if let Some(key) = key_of(token) {
            assert!(
                !listed.iter().any(|(_, k)| *k == key),
                "{key} listed but cannot publish"
            );
        }
        t.server
            .npm(Some(token))
            .publish("@acme/lib", &format!("1.1.{version}"), &[])
            .fails_with("E4");
        version += 1;
    }
    assert_eq!(listed.len(), can.len(), "{listed:?}");
    // Who may see it: maintainers and the organization's owners and admins.
    assert_eq!(
        t.server
            .get("/-/package/@acme%2flib/credentials", Some(&t.bob))
            .status(),
        403
    );
    assert_eq!(
        t.server
            .get("/-/package/@acme%2flib/credentials", Some(&t.carol))
            .status(),
        200
    );
    assert_eq!(
        t.server
            .get("/-/package/@acme%2flib/credentials", Some(&t.dave))
            .status(),
        404
    );
    // The organization's view, riskiest first.
    let org = tessera_as(&a, &["org", "credentials", "acme"]).ok();
    assert!(org.stdout.contains("RISKS"), "{}", org.stdout);
    let first = org.stdout.lines().nth(1).unwrap_or("");
    assert!(
        first.contains("automation"),
        "the automation token comes first: {}",
        org.stdout
    );
}

/// Two instances on one PostgreSQL: a grant or a removal made through one is applied
/// by the other on its very next request.
#[test]
fn changes_through_one_instance_apply_on_the_other_at_once() {
    let Some(db) = crate::scale::need_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("shared-blobs");
    let servers = crate::scale::instances(2, &db, dir.path(), blobs.to_str().unwrap(), &[]);
    let (a_url, b_url) = (&servers[0].url, &servers[1].url);
    let alice = crate::scale::signup(a_url, "alice");
    let bob = crate::scale::signup(a_url, "bob");
    let on_a = Npm::new(a_url, Some(&alice));
    tessera_as(&on_a, &["org", "create", "acme"]).ok();
    on_a.run(&["org", "set", "acme", "bob"]).ok();
    on_a.run(&["team", "create", "@acme:release"]).ok();
    on_a.publish("@acme/lib", "1.0.0", &[]).ok();
    let read_on_b = || {
        http()
            .get(format!("{b_url}/@acme%2flib"))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let mut trials = 0;
    for _ in 0..5 {
        assert_eq!(read_on_b(), 404);
        on_a.run(&["access", "grant", "read-only", "acme:release", "@acme/lib"])
            .ok();
        on_a.run(&["team", "add", "@acme:release", "bob"]).ok();
        assert_eq!(
            read_on_b(),
            200,
            "a grant through A applies on B's next request"
        );
        on_a.run(&["team", "rm", "@acme:release", "bob"]).ok();
        assert_eq!(
            read_on_b(),
            404,
            "a removal through A applies on B's next request"
        );
        on_a.run(&["access", "revoke", "acme:release", "@acme/lib"])
            .ok();
        trials += 1;
    }
    eprintln!(
        "{trials} grant/removal rounds across two instances: every next request on B saw the change"
    );
}

/// On the website, an account in `auth-and-writes` mode confirms organization
/// changes with a one-time password, like on the npm wire: the forms carry the
/// field, and a post without a code changes nothing.
#[test]
fn website_organization_forms_ask_auth_and_writes_accounts_for_a_code() {
    let server = TestServer::start();
    let alice = server.signup("alice");
    server.signup("bob");
    let (secret, _) = crate::two_factor::enable(&server, &alice, "alice", "auth-and-writes");
    let web = http_session_with_otp(&server, "alice", || Some(otp_now(&server, &secret)));
    let page = |path: &str| web.get(path);
    let (_, orgs) = page("/orgs");
    assert!(
        orgs.contains("id=\"org-otp\""),
        "the creation form asks for a code"
    );
    let csrf = csrf_in(&orgs);
    let r = web.post("/orgs", &[("csrf", &csrf), ("name", "acme")]);
    assert_eq!(r.status(), 401);
    assert_eq!(
        page("/org/acme").0,
        404,
        "nothing was created without a code"
    );
    server.clock.advance_ms(30_000);
    let code = otp_now(&server, &secret);
    let r = web.post(
        "/orgs",
        &[("csrf", &csrf), ("name", "acme"), ("otp", &code)],
    );
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/org/acme?notice=created");

    let (_, org) = page("/org/acme");
    assert!(org.contains("id=\"member-otp\"") && org.contains("id=\"team-otp\""));
    let add = [
        ("csrf", csrf.as_str()),
        ("user", "bob"),
        ("role", "developer"),
    ];
    assert_eq!(web.post("/org/acme/members", &add).status(), 401);
    assert!(!page("/org/acme").1.contains("data-member=\"bob\""));
    server.clock.advance_ms(30_000);
    let code = otp_now(&server, &secret);
    let mut with_code = add.to_vec();
    with_code.push(("otp", &code));
    assert_eq!(web.post("/org/acme/members", &with_code).status(), 303);
    assert!(page("/org/acme").1.contains("data-member=\"bob\""));
}
