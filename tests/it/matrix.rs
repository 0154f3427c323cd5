//! The authorization matrix, generated: every credential shape × every action × each
//! account 2FA mode × each package 2FA policy, sent to a live server through the real
//! endpoints (npm API, and the website's forms for a session), each answer compared
//! with an oracle written here from the rules in ARCHITECTURE.md ("Credentials"),
//! independently of `access::decide`.
//!
//! An `Otp` outcome is checked twice: refused with the OTP challenge without a code,
//! then allowed with one. A `Deny` is checked to leave the state unchanged where the
//! action would have changed it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::rules::publish_body;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    AuthOnly,
    AuthAndWrites,
}

impl Mode {
    fn on(self) -> bool {
        self != Mode::Off
    }

    fn wire(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::AuthOnly => "auth-only",
            Mode::AuthAndWrites => "auth-and-writes",
        }
    }
}

/// A package's publishing 2FA policy (`npm access set mfa=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    None,
    Publish,
    Automation,
}

impl Policy {
    const ALL: [Policy; 3] = [Policy::None, Policy::Publish, Policy::Automation];

    fn package(self) -> &'static str {
        match self {
            Policy::None => "@owner/p-none",
            Policy::Publish => "@owner/p-publish",
            Policy::Automation => "@owner/p-automation",
        }
    }

    fn body(self) -> Value {
        match self {
            Policy::None => json!({"publish_requires_tfa": false}),
            Policy::Publish => {
                json!({"publish_requires_tfa": true, "automation_token_overrides_tfa": false})
            }
            Policy::Automation => {
                json!({"publish_requires_tfa": true, "automation_token_overrides_tfa": true})
            }
        }
    }
}

/// What a granular token selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// Exactly the packages acted on.
    Listed,
    /// The owner's scope.
    Scope,
    /// `packages_all`.
    All,
    /// Another package only.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Password,
    ReadOnly,
    Automation,
    Publish,
    Granular(&'static str, Selection),
    OrgsOnly,
    Expired,
    Revoked,
    CidrOutside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ReadRestricted,
    ReadPublic,
    Publish(Policy),
    Unpublish(Policy),
    Deprecate(Policy),
    DistTag(Policy),
    ChangeAccess,
    ChangeOwners,
    ChangeMfaPolicy,
    ReadProfile,
    ChangeProfile,
    ChangeTwoFactor,
    ListTokens,
    CreateToken,
    RevokeToken,
}

/// Whether an action's effect can be seen in the registry now.
type Effect<'a> = Box<dyn Fn(&World) -> bool + 'a>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow,
    Otp,
    Deny,
}

fn actions() -> Vec<Action> {
    let mut all = vec![Action::ReadRestricted, Action::ReadPublic];
    for p in Policy::ALL {
        all.extend([
            Action::Publish(p),
            Action::Unpublish(p),
            Action::Deprecate(p),
            Action::DistTag(p),
        ]);
    }
    all.extend([
        Action::ChangeAccess,
        Action::ChangeOwners,
        Action::ChangeMfaPolicy,
        Action::ReadProfile,
        Action::ChangeProfile,
        Action::ChangeTwoFactor,
        Action::ListTokens,
        Action::CreateToken,
        Action::RevokeToken,
    ]);
    all
}

fn shapes() -> Vec<Shape> {
    let mut all = vec![
        Shape::Password,
        Shape::ReadOnly,
        Shape::Automation,
        Shape::Publish,
    ];
    for permission in ["read-only", "read-write", "no-access"] {
        for selection in [
            Selection::Listed,
            Selection::Scope,
            Selection::All,
            Selection::Other,
        ] {
            all.push(Shape::Granular(permission, selection));
        }
    }
    all.extend([
        Shape::OrgsOnly,
        Shape::Expired,
        Shape::Revoked,
        Shape::CidrOutside,
    ]);
    all
}

/// The rules, written out independently of the server's decision table.
fn oracle(shape: Shape, action: Action, mode: Mode) -> Outcome {
    use Outcome::*;
    let writes_otp = if mode == Mode::AuthAndWrites {
        Otp
    } else {
        Allow
    };
    let on_otp = if mode.on() { Otp } else { Allow };
    // What a credential that may write a package gets, by the package's policy.
    let package_write = |bypasses_2fa: bool, policy: Policy| match (policy, bypasses_2fa) {
        (Policy::None, true) => Allow,
        (Policy::None, false) => writes_otp,
        (Policy::Publish, true) => Deny,
        (Policy::Automation, true) => Allow,
        (_, false) if mode.on() => Otp,
        (_, false) => Deny,
    };
    let is_package_write = matches!(
        action,
        Action::Publish(_) | Action::Unpublish(_) | Action::Deprecate(_) | Action::DistTag(_)
    );
    let policy_of = |a: Action| match a {
        Action::Publish(p) | Action::Unpublish(p) | Action::Deprecate(p) | Action::DistTag(p) => p,
        _ => Policy::None,
    };
    match shape {
        Shape::Expired | Shape::Revoked | Shape::CidrOutside => Deny,
        Shape::Password => match action {
            _ if mode.on() => match action {
                Action::ReadProfile | Action::ChangeTwoFactor | Action::CreateToken => Otp,
                _ => Deny,
            },
            Action::ReadRestricted | Action::ReadPublic => Allow,
            Action::ReadProfile | Action::ChangeTwoFactor | Action::CreateToken => Allow,
            _ => Deny,
        },
        Shape::ReadOnly => match action {
            Action::ReadRestricted | Action::ReadPublic => Allow,
            _ => Deny,
        },
        Shape::Automation => match action {
            Action::ReadRestricted | Action::ReadPublic => Allow,
            a if is_package_write => package_write(true, policy_of(a)),
            _ => Deny,
        },
        Shape::Publish => match action {
            Action::ReadRestricted | Action::ReadPublic => Allow,
            a if is_package_write => package_write(false, policy_of(a)),
            Action::ChangeAccess | Action::ChangeOwners => writes_otp,
            Action::ChangeMfaPolicy => on_otp,
            Action::ReadProfile | Action::ListTokens => Allow,
            Action::ChangeProfile | Action::RevokeToken => writes_otp,
            Action::ChangeTwoFactor | Action::CreateToken => on_otp,
            _ => Deny,
        },
        Shape::OrgsOnly => match action {
            Action::ReadPublic => Allow,
            _ => Deny,
        },
        Shape::Granular(permission, selection) => {
            let reaches = selection != Selection::Other;
            let level = if reaches { permission } else { "no-access" };
            match action {
                Action::ReadPublic => Allow,
                Action::ReadRestricted if level != "no-access" => Allow,
                a if is_package_write && level == "read-write" => {
                    package_write(false, policy_of(a))
                }
                Action::ChangeAccess | Action::ChangeOwners if level == "read-write" => writes_otp,
                Action::ChangeMfaPolicy if level == "read-write" => on_otp,
                _ => Deny,
            }
        }
    }
}

/// The account, its credentials and its packages on one server.
struct World {
    server: TestServer,
    mode: Mode,
    login: String,
    secret: Option<Vec<u8>>,
    tokens: Vec<(Shape, Option<String>)>,
    next_version: std::cell::Cell<u32>,
    /// Versions published before the policies were set, to be unpublished by cases
    /// (with a strict policy and 2FA off, nobody can publish new ones).
    spare: std::cell::RefCell<std::collections::HashMap<&'static str, Vec<String>>>,
}

const RESTRICTED: &str = "@owner/p-none";
const PUBLIC: &str = "owner-public";

impl World {
    fn new(mode: Mode) -> World {
        let server = TestServer::start();
        let login = server.signup("owner");
        World {
            server,
            mode,
            login,
            secret: None,
            tokens: Vec::new(),
            next_version: std::cell::Cell::new(1),
            spare: Default::default(),
        }
    }

    /// A fresh one-time password (the clock moves one step so none is reused).
    fn otp(&self) -> Option<String> {
        let secret = self.secret.as_ref()?;
        self.server.clock.advance_ms(30_000);
        Some(otp_now(&self.server, secret))
    }

    fn version(&self) -> String {
        let n = self.next_version.get();
        self.next_version.set(n + 1);
        format!("1.0.{n}")
    }

    /// Runs a request as the owner's login token, adding a one-time password when
    /// the first answer asks for one.
    fn as_owner(
        &self,
        make: &dyn Fn(Option<&str>) -> reqwest::blocking::RequestBuilder,
    ) -> (u16, Value) {
        let r = make(None).bearer_auth(&self.login).send().unwrap();
        if r.status() == 401
            && r.headers()
                .get("www-authenticate")
                .is_some_and(|v| v == "OTP")
        {
            let otp = self.otp().expect("an OTP was asked of an account with 2FA");
            let r = make(Some(&otp)).bearer_auth(&self.login).send().unwrap();
            return (r.status().as_u16(), r.json().unwrap_or(Value::Null));
        }
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn request(&self, method: Method, path: &str) -> reqwest::blocking::RequestBuilder {
        http().request(method, format!("{}{path}", self.server.url))
    }

    fn publish_as_owner(&self, name: &str, version: &str) {
        let body = publish_body(name, version);
        let (status, answer) = self.as_owner(&|otp| {
            let r = self.request(Method::PUT, &format!("/{}", name.replace('/', "%2f")));
            let r = match otp {
                Some(o) => r.header("npm-otp", o),
                None => r,
            };
            r.json(&body)
        });
        assert_eq!(status, 200, "setup publish of {name}@{version}: {answer}");
    }

    fn document(&self, name: &str) -> Value {
        self.server
            .get(
                &format!("/{}?write=true", name.replace('/', "%2f")),
                Some(&self.login),
            )
            .json()
            .unwrap()
    }

    fn setup(&mut self) {
        // The packages, their policies, and a public one.
        let cases_per_package = shapes().len();
        for policy in Policy::ALL {
            self.publish_as_owner(policy.package(), "0.0.1");
            let mut spare = Vec::new();
            for n in 0..cases_per_package {
                let version = format!("0.1.{n}");
                self.publish_as_owner(policy.package(), &version);
                spare.push(version);
            }
            self.spare.borrow_mut().insert(policy.package(), spare);
            let body = policy.body();
            let (status, _) = self.as_owner(&|_| {
                self.request(
                    Method::POST,
                    &format!("/-/package/{}/access", policy.package().replace('/', "%2f")),
                )
                .json(&body)
            });
            assert_eq!(status, 200);
        }
        self.publish_as_owner(PUBLIC, "0.0.1");
        self.publish_as_owner("@owner/elsewhere", "0.0.1");
        // Credentials. An expiring token first: the clock then moves past its expiry.
        let create = |body: Value| -> Result<String, (u16, Value)> {
            let mut body = body;
            body["password"] = json!(password_of("owner"));
            let r = self
                .request(Method::POST, "/-/npm/v1/tokens")
                .bearer_auth(&self.login)
                .json(&body)
                .send()
                .unwrap();
            let status = r.status().as_u16();
            let answer: Value = r.json().unwrap_or(Value::Null);
            if status == 201 {
                Ok(token_of(&answer))
            } else {
                Err((status, answer))
            }
        };
        let expired = create(json!({"expires": 1})).unwrap();
        self.server.clock.advance_ms(25 * 3_600_000);
        let mut tokens = Vec::new();
        for shape in shapes() {
            let token = match shape {
                Shape::Password => None,
                Shape::ReadOnly => Some(create(json!({"readonly": true})).unwrap()),
                Shape::Automation => Some(create(json!({"automation": true})).unwrap()),
                Shape::Publish => Some(create(json!({})).unwrap()),
                Shape::Granular(permission, selection) => {
                    let mut body = json!({"packages_and_scopes_permission": permission});
                    match selection {
                        Selection::Listed => {
                            let mut listed: Vec<&str> =
                                Policy::ALL.iter().map(|p| p.package()).collect();
                            listed.push(PUBLIC);
                            body["packages"] = json!(listed);
                        }
                        Selection::Scope => body["scopes"] = json!(["@owner"]),
                        Selection::All => body["packages_all"] = json!(true),
                        Selection::Other => body["packages"] = json!(["@owner/elsewhere"]),
                    }
                    Some(create(body).unwrap())
                }
                Shape::OrgsOnly => Some(
                    create(json!({"orgs": ["owner"], "orgs_permission": "read-write"})).unwrap(),
                ),
                Shape::Expired => Some(expired.clone()),
                Shape::Revoked => {
                    let t = create(json!({})).unwrap();
                    let r = self
                        .request(Method::DELETE, &format!("/-/npm/v1/tokens/token/{t}"))
                        .bearer_auth(&self.login)
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    Some(t)
                }
                Shape::CidrOutside => {
                    Some(create(json!({"cidr_whitelist": ["10.0.0.0/8"]})).unwrap())
                }
            };
            tokens.push((shape, token));
        }
        // A selection that selects nothing is not even created.
        for body in [
            json!({"packages_and_scopes_permission": "read-write"}),
            json!({"packages": [], "scopes": [], "packages_and_scopes_permission": "read-only"}),
        ] {
            let (status, _) = create(body).unwrap_err();
            assert_eq!(status, 400);
        }
        self.tokens = tokens;
        // Then the account's 2FA mode.
        if self.mode.on() {
            let (secret, _) =
                crate::two_factor::enable(&self.server, &self.login, "owner", self.mode.wire());
            self.secret = Some(secret);
        }
    }

    fn authorization(&self, shape: Shape, token: Option<&str>) -> String {
        match (shape, token) {
            (Shape::Password, _) => format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("owner:{}", password_of("owner"))
                )
            ),
            (_, Some(t)) => format!("Bearer {t}"),
            (_, None) => unreachable!("every token shape has a token"),
        }
    }

    /// Prepares what `action` needs and returns (method, path, body, and for actions
    /// with a visible effect, a check that it took effect).
    fn prepare(&self, action: Action) -> (Method, String, Value, Option<Effect<'_>>) {
        let esc = |n: &str| n.replace('/', "%2f");
        match action {
            Action::ReadRestricted => (
                Method::GET,
                format!("/{}", esc(RESTRICTED)),
                Value::Null,
                None,
            ),
            Action::ReadPublic => (Method::GET, format!("/{PUBLIC}"), Value::Null, None),
            Action::Publish(p) => {
                let version = self.version();
                let body = publish_body(p.package(), &version);
                let name = p.package();
                (
                    Method::PUT,
                    format!("/{}", esc(name)),
                    body,
                    Some(Box::new(move |w: &World| {
                        w.document(name)["versions"].get(&version).is_some()
                    })),
                )
            }
            Action::Unpublish(p) => {
                let name = p.package();
                let version = self
                    .spare
                    .borrow_mut()
                    .get_mut(name)
                    .and_then(Vec::pop)
                    .expect("a spare version");
                let mut doc = self.document(name);
                doc["versions"].as_object_mut().unwrap().remove(&version);
                let rev = doc["_rev"].as_str().unwrap().to_owned();
                (
                    Method::PUT,
                    format!("/{}/-rev/{rev}", esc(name)),
                    doc,
                    Some(Box::new(move |w: &World| {
                        w.document(name)["versions"].get(&version).is_none()
                    })),
                )
            }
            Action::Deprecate(p) => {
                let name = p.package();
                let message = format!("deprecated {}", self.version());
                let mut doc = self.document(name);
                doc["versions"]["0.0.1"]["deprecated"] = json!(message);
                (
                    Method::PUT,
                    format!("/{}", esc(name)),
                    doc,
                    Some(Box::new(move |w: &World| {
                        w.document(name)["versions"]["0.0.1"]["deprecated"] == json!(message)
                    })),
                )
            }
            Action::DistTag(p) => {
                let name = p.package();
                let tag = format!("t{}", self.next_version.get());
                self.next_version.set(self.next_version.get() + 1);
                (
                    Method::PUT,
                    format!("/-/package/{}/dist-tags/{tag}", esc(name)),
                    json!("0.0.1"),
                    Some(Box::new(move |w: &World| {
                        w.document(name)["dist-tags"].get(&tag).is_some()
                    })),
                )
            }
            Action::ChangeAccess => (
                Method::POST,
                format!("/-/package/{}/access", esc(RESTRICTED)),
                json!({"access": "restricted"}),
                None,
            ),
            Action::ChangeOwners => {
                let doc = self.document(RESTRICTED);
                let rev = doc["_rev"].as_str().unwrap().to_owned();
                (
                    Method::PUT,
                    format!("/{}/-rev/{rev}", esc(RESTRICTED)),
                    json!({"_id": RESTRICTED, "_rev": rev, "maintainers": [{"name": "owner", "email": "owner@example.com"}]}),
                    None,
                )
            }
            Action::ChangeMfaPolicy => (
                Method::POST,
                format!("/-/package/{}/access", esc(RESTRICTED)),
                Policy::None.body(),
                None,
            ),
            Action::ReadProfile => (Method::GET, "/-/npm/v1/user".into(), Value::Null, None),
            Action::ChangeProfile => {
                let fullname = format!("Owner {}", self.version());
                (
                    Method::POST,
                    "/-/npm/v1/user".into(),
                    json!({"fullname": fullname}),
                    Some(Box::new(move |w: &World| {
                        w.server
                            .get("/-/npm/v1/user", Some(&w.login))
                            .json::<Value>()
                            .unwrap()["fullname"]
                            == json!(fullname)
                    })),
                )
            }
            Action::ChangeTwoFactor => {
                // With 2FA on: switch to the current mode (a no-op); off: start an
                // enrolment, which the owner cancels afterwards.
                let mode = if self.mode.on() {
                    self.mode.wire()
                } else {
                    "auth-only"
                };
                (
                    Method::POST,
                    "/-/npm/v1/user".into(),
                    json!({"tfa": {"mode": mode, "password": password_of("owner")}}),
                    None,
                )
            }
            Action::ListTokens => (Method::GET, "/-/npm/v1/tokens".into(), Value::Null, None),
            Action::CreateToken => (
                Method::POST,
                "/-/npm/v1/tokens".into(),
                json!({"password": password_of("owner"), "name": "matrix"}),
                None,
            ),
            Action::RevokeToken => {
                let (status, created) = self.as_owner(&|otp| {
                    let r = self.request(Method::POST, "/-/npm/v1/tokens");
                    let r = match otp {
                        Some(o) => r.header("npm-otp", o),
                        None => r,
                    };
                    r.json(&json!({"password": password_of("owner"), "name": "victim"}))
                });
                assert_eq!(status, 201, "{created}");
                let victim = token_of(&created);
                let key = created["key"].as_str().unwrap().to_owned();
                (
                    Method::DELETE,
                    format!("/-/npm/v1/tokens/token/{key}"),
                    Value::Null,
                    Some(Box::new(move |w: &World| {
                        w.server.get("/-/whoami", Some(&victim)).status() == 401
                    })),
                )
            }
        }
    }

    /// Undoes what an allowed action left that would disturb later cases.
    fn tidy(&self, action: Action) {
        if action == Action::ChangeTwoFactor && !self.mode.on() {
            let (status, _) = self.as_owner(&|_| {
                self.request(Method::POST, "/-/npm/v1/user")
                    .json(&json!({"tfa": {"mode": "disable", "password": password_of("owner")}}))
            });
            assert_eq!(status, 200);
        }
    }

    /// Sends one case and returns what it observed.
    fn run(&self, shape: Shape, token: Option<&str>, action: Action) -> Outcome {
        let (method, path, body, took_effect) = self.prepare(action);
        let auth = self.authorization(shape, token);
        let send = |otp: Option<&str>| {
            let mut r = self
                .request(method.clone(), &path)
                .header("authorization", &auth);
            if !body.is_null() {
                r = r.json(&body);
            }
            if let Some(o) = otp {
                r = r.header("npm-otp", o);
            }
            r.send().unwrap()
        };
        let first = send(None);
        let status = first.status().as_u16();
        let challenge = first
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v == "OTP");
        let took = |w: &World| took_effect.as_ref().is_none_or(|check| check(w));
        let outcome = if (200..300).contains(&status) {
            assert!(took(self), "{shape:?} {action:?}: 2xx but nothing changed");
            Outcome::Allow
        } else if status == 401 && challenge {
            let otp = self
                .otp()
                .expect("an OTP challenge for an account without 2FA");
            let second = send(Some(&otp));
            let again = second.status().as_u16();
            assert!(
                (200..300).contains(&again),
                "{shape:?} {action:?}: still {again} with a one-time password: {:?}",
                second.text()
            );
            assert!(
                took(self),
                "{shape:?} {action:?}: allowed with OTP but nothing changed"
            );
            Outcome::Otp
        } else {
            assert!(
                (400..500).contains(&status) && status != 400,
                "{shape:?} {action:?}: a refusal is 401/403/404, got {status}: {:?}",
                first.text()
            );
            if let Some(check) = &took_effect {
                assert!(
                    !check(self),
                    "{shape:?} {action:?}: refused ({status}) but it happened"
                );
            }
            Outcome::Deny
        };
        if outcome != Outcome::Deny {
            self.tidy(action);
        }
        outcome
    }
}

#[test]
fn every_credential_action_and_two_factor_setting() {
    let mut cases = 0;
    let mut mismatches = Vec::new();
    for mode in [Mode::Off, Mode::AuthOnly, Mode::AuthAndWrites] {
        let mut world = World::new(mode);
        world.setup();
        for (shape, token) in world.tokens.clone() {
            for action in actions() {
                let want = oracle(shape, action, mode);
                let got = world.run(shape, token.as_deref(), action);
                cases += 1;
                if want != got {
                    mismatches.push(format!(
                        "{mode:?} {shape:?} {action:?}: expected {want:?}, got {got:?}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "authorization matrix: {cases} cases ({} credential shapes × {} actions × 3 account 2FA modes; package actions × 3 package policies)",
        shapes().len(),
        actions().len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// A website form case: (page holding the form, path posted to, fields, expected).
type WebForm = (String, String, Vec<(&'static str, String)>, Outcome);

/// The website's forms, signed in with a session: the same rules as a classic
/// publish token, plus the browser-login approval (sessions only).
#[test]
fn website_session_actions_in_each_two_factor_mode() {
    let mut cases = 0;
    for mode in [Mode::Off, Mode::AuthOnly, Mode::AuthAndWrites] {
        let mut world = World::new(mode);
        world.setup();
        let web = http_session_with_otp(&world.server, "owner", || world.otp());
        let otp_rule = |writes_only: bool| match (mode, writes_only) {
            (Mode::Off, _) => Outcome::Allow,
            (Mode::AuthOnly, true) => Outcome::Allow,
            _ => Outcome::Otp,
        };
        // (form page, post path, fields, expected)
        let esc = RESTRICTED.replace('/', "%2f");
        let settings = format!("/package/{esc}/settings");
        let forms: Vec<WebForm> = vec![
            (
                "/settings/profile".into(),
                "/settings/profile".into(),
                vec![
                    ("fullname", "Web Owner".into()),
                    ("email", "owner@example.com".into()),
                ],
                otp_rule(true),
            ),
            (
                "/settings/tokens/new".into(),
                "/settings/tokens/new".into(),
                vec![
                    ("name", "web".into()),
                    ("kind", "publish".into()),
                    ("expires", "never".into()),
                    ("password", password_of("owner")),
                ],
                otp_rule(false),
            ),
            (
                settings.clone(),
                format!("{settings}/access"),
                vec![("access", "restricted".into())],
                otp_rule(true),
            ),
            (
                settings.clone(),
                format!("{settings}/mfa"),
                vec![("mfa", "none".into())],
                otp_rule(false),
            ),
        ];
        for (page, post, fields, want) in forms {
            let csrf = web.csrf(&page);
            let mut with: Vec<(&str, String)> = fields.clone();
            with.push(("csrf", csrf.clone()));
            let send = |extra: Option<String>| {
                let mut all: Vec<(&str, &str)> =
                    with.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if let Some(o) = &extra {
                    all.push(("otp", o.as_str()));
                }
                web.post(&post, &all).status().as_u16()
            };
            let first = send(None);
            let got = if (200..400).contains(&first) {
                Outcome::Allow
            } else {
                assert_eq!(first, 401, "{mode:?} {post}: refused without a code");
                let again = send(world.otp());
                assert!(
                    (200..400).contains(&again),
                    "{mode:?} {post}: {again} with a code"
                );
                Outcome::Otp
            };
            cases += 1;
            assert_eq!(got, want, "{mode:?} {post}");
        }
        // Approving an `npm login` started in a browser mints a token: one-time
        // password whenever 2FA is on.
        let started: Value = http()
            .post(format!("{}/-/v1/login", world.server.url))
            .json(&json!({}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let login_url = started["loginUrl"].as_str().unwrap();
        let path = &login_url[world.server.url.len()..];
        let csrf = web.csrf(path);
        let first = web.post(path, &[("csrf", &csrf)]).status().as_u16();
        let got = if first == 200 {
            Outcome::Allow
        } else {
            assert_eq!(first, 401);
            let code = world.otp().unwrap();
            assert_eq!(
                web.post(path, &[("csrf", &csrf), ("otp", &code)]).status(),
                200
            );
            Outcome::Otp
        };
        cases += 1;
        assert_eq!(got, otp_rule(false), "{mode:?} login approval");
        let done = started["doneUrl"].as_str().unwrap();
        let token: Value = http().get(done).send().unwrap().json().unwrap();
        assert!(token["token"].as_str().unwrap().starts_with("tsr_"));
    }
    eprintln!("website session matrix: {cases} cases (5 forms × 3 account 2FA modes)");
}
