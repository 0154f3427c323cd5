//! Trusted publishing and staged releases with the real npm CLI: a local OpenID
//! Connect issuer (discovery and JWKS on loopback, keys it rotates, id tokens it
//! signs), npm publishing in GitHub Actions and GitLab CI mode, the refusals an
//! attacker meets, the "trusted publishing only" policy and `npm stage` end to end.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::config::{CiKind, OidcIssuer};

use crate::harness::*;
use crate::rules::publish_body;

/// P-256 test keys (kid, PKCS#8 PEM, JWK x, JWK y). Test fixtures, not secrets.
const KEYS: [(&str, &str, &str, &str); 3] = [
    (
        "key-one",
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQw8z5gAo7xjh0PGA\nXKRU67xELgRmmMvVfyXehK3H4R6hRANCAAQ5bgY51y2xF43JAqQontPOmXenmFoZ\nqBomUPXkv8yEV9Y9IAMeP9Z8+VaVG6O7kmg25UGBKKIxSCEy1kk/v1NH\n-----END PRIVATE KEY-----\n",
        "OW4GOdctsReNyQKkKJ7Tzpl3p5haGagaJlD15L_MhFc",
        "1j0gAx4_1nz5VpUbo7uSaDblQYEoojFIITLWST-_U0c",
    ),
    (
        "key-two",
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/qJ1Ele/aEekS1d+\ns+HY9o1FcIWMe0GRg0iJ/KUNMHShRANCAAT0Z8OQ9h2v4sPQoSfOjRU6IIBFItwo\nLd9OQVoDE3BuTGxZvlbnyj9prKltTeZqrtRaBcogDnmTSNGJ56XGJxmc\n-----END PRIVATE KEY-----\n",
        "9GfDkPYdr-LD0KEnzo0VOiCARSLcKC3fTkFaAxNwbkw",
        "bFm-VufKP2msqW1N5mqu1FoFyiAOeZNI0YnnpcYnGZw",
    ),
    (
        "key-never-published",
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2QeCcL5R0vx7CERB\nUXdPq0v0lFq4F/iwTf626yPEzvahRANCAATpGQinwGjqmK16WjyiGRzrTVYD9WfD\neQ/aBJANPJF4nlqr1uoYRmHhQxgI+6+KrS2DOUeU48wJUcp4AbkP3/3V\n-----END PRIVATE KEY-----\n",
        "6RkIp8Bo6pitelo8ohkc601WA_Vnw3kP2gSQDTyReJ4",
        "WqvW6hhGYeFDGAj7r4qtLYM5R5TjzAlRyngBuQ_f_dU",
    ),
];

/// The secret the GitHub Actions runner would give a job for its id-token requests.
const REQUEST_TOKEN: &str = "runner-request-secret";

struct IssuerState {
    base: String,
    /// Indexes into `KEYS` of the keys the JWKS publishes.
    published: Mutex<Vec<usize>>,
    /// The key that signs what `/gh/token` hands out.
    signing: Mutex<usize>,
    /// Claims `/gh/token` signs next (its `aud` comes from the request).
    next: Mutex<Value>,
}

/// A local OpenID Connect issuer with two issuer paths, `/gh` and `/gl`.
pub struct Issuer {
    pub base: String,
    state: Arc<IssuerState>,
    _runtime: tokio::runtime::Runtime,
}

async fn discovery(
    State(s): State<Arc<IssuerState>>,
    UrlPath(which): UrlPath<String>,
) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": format!("{}/{which}", s.base),
        "jwks_uri": format!("{}/{which}/jwks", s.base),
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

/// CircleCI names one issuer per organization: `<base>/org/<organization id>`.
async fn org_discovery(
    State(s): State<Arc<IssuerState>>,
    UrlPath((which, org)): UrlPath<(String, String)>,
) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": format!("{}/{which}/org/{org}", s.base),
        "jwks_uri": format!("{}/{which}/jwks", s.base),
    }))
}

async fn jwks(State(s): State<Arc<IssuerState>>) -> axum::Json<Value> {
    let keys: Vec<Value> = s
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|&i| {
            let (kid, _, x, y) = KEYS[i];
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"})
        })
        .collect();
    axum::Json(json!({ "keys": keys }))
}

/// GitHub's id-token endpoint: `?audience=` from npm, the runner's bearer secret.
async fn gh_token(
    State(s): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<axum::Json<Value>, axum::http::StatusCode> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {REQUEST_TOKEN}") {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    let mut claims = s.next.lock().unwrap().clone();
    if let Some(aud) = q.get("audience") {
        claims["aud"] = json!(aud);
    }
    let key = *s.signing.lock().unwrap();
    Ok(axum::Json(json!({"value": sign(key, &claims)})))
}

/// Signs `claims` with `KEYS[key]` (ES256, its kid in the header).
fn sign(key: usize, claims: &Value) -> String {
    let (kid, pem, _, _) = KEYS[key];
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

impl Issuer {
    pub fn start() -> Issuer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IssuerState {
            base: base.clone(),
            published: Mutex::new(vec![0]),
            signing: Mutex::new(0),
            next: Mutex::new(Value::Null),
        });
        let app = axum::Router::new()
            .route("/{which}/.well-known/openid-configuration", get(discovery))
            .route("/{which}/jwks", get(jwks))
            .route(
                "/{which}/org/{org}/.well-known/openid-configuration",
                get(org_discovery),
            )
            .route("/gh/token", get(gh_token))
            .with_state(state.clone());
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Issuer {
            base,
            state,
            _runtime: runtime,
        }
    }

    pub fn url(&self, which: &str) -> String {
        format!("{}/{which}", self.base)
    }

    /// Publishes `keys` (indexes into `KEYS`) and signs with `signing` from now on.
    pub fn rotate(&self, keys: &[usize], signing: usize) {
        *self.state.published.lock().unwrap() = keys.to_vec();
        *self.state.signing.lock().unwrap() = signing;
    }

    /// What the next GitHub id-token request is handed (signed then).
    pub fn hand_out(&self, claims: Value) {
        *self.state.next.lock().unwrap() = claims;
    }

    pub fn sign(&self, claims: &Value) -> String {
        sign(*self.state.signing.lock().unwrap(), claims)
    }
}

/// A server trusting the local issuer: `/gh` as GitHub Actions, `/gl` as GitLab.
fn server_trusting(issuer: &Issuer) -> TestServer {
    let (gh, gl) = (issuer.url("gh"), issuer.url("gl"));
    TestServer::builder()
        .config(move |c| {
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Github,
                url: gh,
                configured: true,
            });
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Gitlab,
                url: gl,
                configured: true,
            });
        })
        .start()
}

fn now_s(server: &TestServer) -> i64 {
    server.clock.now_ms() / 1000
}

/// The claims GitHub Actions puts in an id token for `repo`'s `workflow`.
fn github_claims(issuer: &Issuer, server: &TestServer, repo: &str, workflow: &str) -> Value {
    let now = now_s(server);
    json!({
        "iss": issuer.url("gh"),
        "aud": "npm:127.0.0.1",
        "sub": format!("repo:{repo}:ref:refs/heads/main"),
        "jti": tessera::crypto::token_format::random_base62(20),
        "repository": repo,
        "repository_owner": repo.split('/').next().unwrap(),
        "repository_visibility": "private",
        "workflow_ref": format!("{repo}/.github/workflows/{workflow}@refs/heads/main"),
        "ref": "refs/heads/main",
        "event_name": "push",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    })
}

/// The claims GitLab CI puts in an id token for `project`.
fn gitlab_claims(issuer: &Issuer, server: &TestServer, project: &str) -> Value {
    let now = now_s(server);
    json!({
        "iss": issuer.url("gl"),
        "aud": "npm:127.0.0.1",
        "sub": format!("project_path:{project}:ref_type:branch:ref:main"),
        "jti": tessera::crypto::token_format::random_base62(20),
        "project_path": project,
        "project_visibility": "private",
        "ci_config_ref_uri": format!("gitlab.example.com/{project}//.gitlab-ci.yml@refs/heads/main"),
        "ref": "main",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    })
}

/// Runs npm like `Npm::run_in`, plus the CI environment in `env`.
fn npm_ci(npm: &Npm, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("npm");
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", npm.dir.path().join("home"))
        .env("npm_config_userconfig", &npm.userconfig)
        .env("npm_config_cache", npm.dir.path().join("cache"))
        .env("npm_config_registry", &npm.registry)
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false")
        .env("npm_config_loglevel", "verbose")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("npm is installed");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command: format!("npm {} (CI)", args.join(" ")),
    }
}

/// The environment of a GitHub Actions job whose workflow may ask for id tokens.
fn github_env(issuer: &Issuer) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("CI", "true".into()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{}/gh/token?api-version=2.0", issuer.base),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN.into()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn user_id(server: &TestServer, name: &str) -> i64 {
    server
        .block_on(server.app.store.user_by_name(name))
        .unwrap()
        .unwrap()
        .id
}

fn packument(server: &TestServer, name: &str, token: Option<&str>) -> Value {
    server
        .get(&format!("/{}", name.replace('/', "%2f")), token)
        .json()
        .unwrap()
}

/// POSTs an id token to the exchange.
fn exchange(server: &TestServer, name: &str, id_token: &str) -> (u16, Value) {
    let r = http()
        .post(format!(
            "{}/-/npm/v1/oidc/token/exchange/package/{}",
            server.url,
            name.replace('/', "%2f")
        ))
        .bearer_auth(id_token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// alice publishes `name`@1.0.0 and trusts `acme/widget`'s `release.yml` with npm.
fn trusted_package(server: &TestServer, name: &str, allow: &str) -> (String, Npm) {
    let alice = server.signup("alice");
    let npm = server.npm(Some(&alice));
    npm.publish(name, "1.0.0", &[]).ok();
    let run = npm
        .run(&[
            "trust",
            "github",
            name,
            "--file",
            "release.yml",
            "--repository",
            "acme/widget",
            allow,
            "--yes",
        ])
        .ok();
    assert!(run.stdout.contains("acme/widget"), "{}", run.all());
    (alice, npm)
}

#[test]
fn github_actions_publishes_with_an_exchanged_token() {
    let issuer = Issuer::start();
    let server = server_trusting(&issuer);
    let (alice, npm) = trusted_package(&server, "acme-widget", "--allow-publish");

    let listed = npm.run(&["trust", "list", "acme-widget"]).ok();
    assert!(listed.stdout.contains("release.yml"), "{}", listed.all());
    assert!(listed.stdout.contains("publish"), "{}", listed.all());

    // The CI job has no token at all: only the exchange can make this publish work.
    let ci = server.npm(None);
    let dir = ci.package("acme-widget", "1.1.0", json!({}));
    issuer.hand_out(github_claims(
        &issuer,
        &server,
        "acme/widget",
        "release.yml",
    ));
    let run = npm_ci(&ci, &dir, &["publish"], &env_refs(&github_env(&issuer))).ok();
    assert!(run.stdout.contains("+ acme-widget@1.1.0"), "{}", run.all());

    // Which credential published: the workflow, through its minted token.
    let doc = packument(&server, "acme-widget", None);
    let who = &doc["versions"]["1.1.0"]["_npmUser"];
    assert_eq!(
        who["trustedPublisher"]["identity"],
        "GitHub Actions acme/widget/.github/workflows/release.yml@refs/heads/main",
        "{who}"
    );
    assert!(doc["versions"]["1.0.0"]["_npmUser"]["trustedPublisher"].is_null());
    let alice_id = user_id(&server, "alice");
    let log: Vec<String> = security_log_rows(&server, alice_id)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(
        log.iter()
            .any(|d| d.contains("acme-widget@1.1.0 published through trusted publishing")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|d| d.contains("minted to publish acme-widget")),
        "{log:?}"
    );

    // The minted token is listed with its origin and the workflow identity.
    let tokens: Value = server.get("/-/npm/v1/tokens", Some(&alice)).json().unwrap();
    let minted = tokens["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["origin"] == "oidc")
        .unwrap_or_else(|| panic!("no oidc token in {tokens}"));
    assert!(
        minted["description"]
            .as_str()
            .unwrap()
            .contains("acme/widget/.github/workflows/release.yml"),
        "{minted}"
    );
    assert!(minted["expires"].is_string());
    // Not even its owner can rotate it: a successor would not keep its one-package scope.
    let r = server
        .request(
            Method::POST,
            &format!(
                "/-/npm/v1/tokens/token/{}/rotate",
                minted["key"].as_str().unwrap()
            ),
            Some(&alice),
        )
        .json(&json!({"password": password_of("alice")}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("cannot be rotated"));

    // A minted token publishes that one package and nothing else.
    let claims = github_claims(&issuer, &server, "acme/widget", "release.yml");
    let id_token = issuer.sign(&claims);
    let (status, body) = exchange(&server, "acme-widget", &id_token);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_type"], "oidc");
    let token = body["token"].as_str().unwrap().to_owned();
    // Replayed: refused.
    let (status, body) = exchange(&server, "acme-widget", &id_token);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already exchanged"),
        "{body}"
    );

    alice_publishes_other(&server, &alice);
    let r = server
        .request(Method::PUT, "/alice-other", Some(&token))
        .json(&publish_body("alice-other", "2.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = server
        .request(Method::PUT, "/brand-new-name", Some(&token))
        .json(&publish_body("brand-new-name", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    for (method, path, body) in [
        (Method::GET, "/-/npm/v1/tokens", Value::Null),
        (
            Method::POST,
            "/-/npm/v1/tokens",
            json!({"password": password_of("alice")}),
        ),
        (Method::GET, "/-/npm/v1/user", Value::Null),
        (
            Method::PUT,
            "/-/package/acme-widget/dist-tags/beta",
            json!("1.0.0"),
        ),
        (
            Method::POST,
            "/-/package/acme-widget/access",
            json!({"publish_requires_tfa": false}),
        ),
        (Method::GET, "/-/package/acme-widget/trust", Value::Null),
        (Method::POST, "/-/org", json!({"name": "acme"})),
    ] {
        let mut req = server.request(method.clone(), path, Some(&token));
        if !body.is_null() {
            req = req.json(&body);
        }
        let status = req.send().unwrap().status().as_u16();
        assert!(status == 403, "{method} {path}: {status}");
    }
    // It does publish the package it was minted for.
    let r = server
        .request(Method::PUT, "/acme-widget", Some(&token))
        .json(&publish_body("acme-widget", "1.2.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());

    // Revoking the configuration revokes the tokens minted from it.
    let id = npm
        .run(&["trust", "list", "acme-widget", "--json"])
        .ok()
        .stdout;
    let configs: Value = serde_json::from_str(&id).unwrap_or(Value::Null);
    let config_id = configs
        .as_array()
        .and_then(|a| a.first())
        .or(Some(&configs))
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {id}"))
        .to_owned();
    npm.run(&["trust", "revoke", "acme-widget", "--id", &config_id])
        .ok();
    let r = server
        .request(Method::PUT, "/acme-widget", Some(&token))
        .json(&publish_body("acme-widget", "1.3.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = exchange(
        &server,
        "acme-widget",
        &issuer.sign(&github_claims(
            &issuer,
            &server,
            "acme/widget",
            "release.yml",
        )),
    );
    assert_eq!(status, 404);
}

fn alice_publishes_other(server: &TestServer, alice: &str) {
    let r = server
        .request(Method::PUT, "/alice-other", Some(alice))
        .json(&publish_body("alice-other", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn bad_id_tokens_are_refused_and_npm_falls_back_to_its_token() {
    let issuer = Issuer::start();
    let server = server_trusting(&issuer);
    let (alice, _) = trusted_package(&server, "acme-widget", "--allow-publish");
    let good = || github_claims(&issuer, &server, "acme/widget", "release.yml");
    let with = |key: &str, value: Value| {
        let mut c = good();
        c[key] = value;
        c
    };
    let now = now_s(&server);
    for (what, claims, status, needle) in [
        (
            "repository",
            with("repository", json!("evil/widget")),
            403,
            "repository",
        ),
        (
            "workflow",
            with(
                "workflow_ref",
                json!("acme/widget/.github/workflows/other.yml@refs/heads/main"),
            ),
            403,
            "workflow",
        ),
        (
            "audience",
            with("aud", json!("npm:registry.npmjs.org")),
            401,
            "audience",
        ),
        (
            "issuer",
            with("iss", json!("https://token.example.com")),
            401,
            "not trusted",
        ),
        ("expired", with("exp", json!(now - 3600)), 401, "expired"),
        (
            "not yet valid",
            with("nbf", json!(now + 3600)),
            401,
            "not valid yet",
        ),
    ] {
        let (s, body) = exchange(&server, "acme-widget", &issuer.sign(&claims));
        assert_eq!(s, status, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {body}");
    }
    // Not an id token at all, and a Tessera token in its place.
    assert_eq!(exchange(&server, "acme-widget", "not-a-jwt").0, 401);
    assert_eq!(exchange(&server, "acme-widget", &alice).0, 401);
    // A forged signature: another key under the published key id.
    let good_token = issuer.sign(&good());
    let forged = {
        let (kid, pem, _, _) = KEYS[2];
        let _ = kid;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KEYS[0].0.to_owned());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &good(), &key).unwrap()
    };
    let (s, body) = exchange(&server, "acme-widget", &forged);
    assert_eq!(s, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    // An unknown key id is refused, even after the issuer's keys are fetched again.
    server.clock.advance_ms(60_000);
    issuer.rotate(&[0], 2);
    let unknown = issuer.sign(&good());
    issuer.rotate(&[0], 0);
    let (s, body) = exchange(&server, "acme-widget", &unknown);
    assert_eq!(s, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("key-never-published"),
        "{body}"
    );
    // Rotation: a token signed with a new key is accepted once the issuer publishes
    // it (the cache refreshes on the unknown key id).
    server.clock.advance_ms(60_000);
    issuer.rotate(&[0, 1], 1);
    let (s, body) = exchange(&server, "acme-widget", &issuer.sign(&good()));
    assert_eq!(s, 201, "{body}");
    // The old key still works while it is published.
    let (s, body) = exchange(&server, "acme-widget", &good_token);
    assert_eq!(s, 201, "{body}");

    // npm in CI with a wrong repository: the exchange fails and npm publishes with
    // the token it is configured with (alice's), which the record shows.
    let ci = server.npm(Some(&alice));
    let dir = ci.package("acme-widget", "1.1.0", json!({}));
    issuer.hand_out(with("repository", json!("evil/widget")));
    let run = npm_ci(&ci, &dir, &["publish"], &env_refs(&github_env(&issuer))).ok();
    assert!(run.all().contains("Failed token exchange"), "{}", run.all());
    let doc = packument(&server, "acme-widget", None);
    assert!(doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"].is_null());
    assert_eq!(doc["versions"]["1.1.0"]["_npmUser"]["name"], "alice");
}

#[test]
fn gitlab_ci_publishes_with_npm_id_token() {
    let issuer = Issuer::start();
    let server = server_trusting(&issuer);
    let alice = server.signup("alice");
    let npm = server.npm(Some(&alice));
    npm.publish("@alice/lib", "1.0.0", &[]).ok();
    npm.run(&[
        "trust",
        "gitlab",
        "@alice/lib",
        "--file",
        ".gitlab-ci.yml",
        "--project",
        "group/project",
        "--allow-publish",
        "--yes",
    ])
    .ok();
    let listed = npm.run(&["trust", "list", "@alice/lib", "--json"]).ok();
    assert!(
        listed.stdout.contains(&issuer.url("gl")) || listed.stdout.contains("group/project"),
        "{}",
        listed.all()
    );

    let ci = server.npm(None);
    let dir = ci.package("@alice/lib", "1.1.0", json!({}));
    let id_token = issuer.sign(&gitlab_claims(&issuer, &server, "group/project"));
    let run = npm_ci(
        &ci,
        &dir,
        &["publish"],
        &[
            ("GITLAB_CI", "true"),
            ("CI", "true"),
            ("NPM_ID_TOKEN", &id_token),
        ],
    )
    .ok();
    assert!(run.stdout.contains("+ @alice/lib@1.1.0"), "{}", run.all());
    let doc = packument(&server, "@alice/lib", Some(&alice));
    assert!(
        doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"]["identity"]
            .as_str()
            .unwrap()
            .starts_with("GitLab CI gitlab.example.com/group/project//.gitlab-ci.yml"),
        "{doc}"
    );
    // Another project of the same GitLab is not trusted.
    let other = issuer.sign(&gitlab_claims(&issuer, &server, "group/other"));
    assert_eq!(exchange(&server, "@alice/lib", &other).0, 403);
    // A GitLab id token is not accepted for the GitHub issuer's configurations.
    let mut as_github = gitlab_claims(&issuer, &server, "group/project");
    as_github["iss"] = json!(issuer.url("gh"));
    assert_eq!(
        exchange(&server, "@alice/lib", &issuer.sign(&as_github)).0,
        404
    );
}

#[test]
fn trusted_publishing_only_refuses_token_publishes() {
    let issuer = Issuer::start();
    let server = server_trusting(&issuer);
    let (alice, npm) = trusted_package(&server, "acme-widget", "--allow-publish");
    let registry = server.url.clone();
    let run = tessera(
        &[
            "package",
            "trust",
            "only",
            "acme-widget",
            "on",
            "--registry",
            &registry,
            "--userconfig",
            npm.userconfig.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(
        run.stdout.contains("only through trusted publishing"),
        "{}",
        run.all()
    );
    npm.publish("acme-widget", "1.1.0", &[])
        .fails_with("accepts new versions only through trusted publishing");
    let status = npm.run(&["access", "get", "status", "acme-widget"]).ok();
    assert!(
        status
            .all()
            .contains("new versions only through trusted publishing"),
        "{}",
        status.all()
    );
    // The workflow still publishes.
    let ci = server.npm(Some(&alice));
    let dir = ci.package("acme-widget", "1.2.0", json!({}));
    issuer.hand_out(github_claims(
        &issuer,
        &server,
        "acme/widget",
        "release.yml",
    ));
    npm_ci(&ci, &dir, &["publish"], &env_refs(&github_env(&issuer))).ok();
    let doc = packument(&server, "acme-widget", None);
    assert!(doc["versions"]["1.2.0"]["_npmUser"]["trustedPublisher"].is_object());
    assert!(doc["versions"]["1.1.0"].is_null());
    // Only maintainers change the policy.
    let bob = server.signup("bob");
    let r = server
        .request(Method::POST, "/-/package/acme-widget/access", Some(&bob))
        .json(&json!({"trusted_publishing_only": false}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let list = tessera(
        &[
            "package",
            "trust",
            "list",
            "acme-widget",
            "--registry",
            &registry,
            "--userconfig",
            npm.userconfig.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(
        list.stdout.contains("acme/widget workflow release.yml"),
        "{}",
        list.all()
    );
    let r = server.get("/-/package/acme-widget/trust", Some(&bob));
    assert_eq!(r.status(), 403);
}

#[test]
fn npm_stage_end_to_end_with_approval_under_two_factor() {
    let issuer = Issuer::start();
    let server = server_trusting(&issuer);
    let (alice, npm) = trusted_package(&server, "acme-widget", "--allow-stage-publish");
    let (secret, _) = crate::two_factor::enable(&server, &alice, "alice", "auth-and-writes");

    // The workflow may only stage: a direct publish with its token is refused.
    let ci = server.npm(None);
    let dir = ci.package("acme-widget", "1.1.0", json!({}));
    issuer.hand_out(github_claims(
        &issuer,
        &server,
        "acme/widget",
        "release.yml",
    ));
    npm_ci(&ci, &dir, &["publish"], &env_refs(&github_env(&issuer))).fails_with("may only stage");
    issuer.hand_out(github_claims(
        &issuer,
        &server,
        "acme/widget",
        "release.yml",
    ));
    let staged = npm_ci(
        &ci,
        &dir,
        &["stage", "publish"],
        &env_refs(&github_env(&issuer)),
    )
    .ok();
    let id = staged
        .stdout
        .split("staged with id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no stage id in {}", staged.all()))
        .to_owned();

    // Invisible to installs until approved.
    let doc = packument(&server, "acme-widget", None);
    assert!(doc["versions"]["1.1.0"].is_null(), "{doc}");
    let app = server.npm(None);
    app.run(&["install", "acme-widget@1.1.0"])
        .fails_with("No matching version");

    let list = npm.run(&["stage", "list", "acme-widget"]).ok();
    assert!(
        list.stdout.contains(&id) && list.stdout.contains("1.1.0"),
        "{}",
        list.all()
    );
    assert!(list.stdout.contains("oidc"), "{}", list.all());
    let view = npm.run(&["stage", "view", &id]).ok();
    assert!(view.stdout.contains("acme/widget"), "{}", view.all());
    let download = npm.run(&["stage", "download", &id]).ok();
    assert!(
        npm.work()
            .join(format!("acme-widget-1.1.0-{id}.tgz"))
            .exists(),
        "{}",
        download.all()
    );
    // Others see nothing.
    let bob = server.signup("bob");
    assert_eq!(
        server.get(&format!("/-/stage/{id}"), Some(&bob)).status(),
        403
    );
    let bobs: Value = server.get("/-/stage", Some(&bob)).json().unwrap();
    assert_eq!(bobs["total"], 0, "{bobs}");

    // Approval asks alice's second factor.
    npm.run(&["stage", "approve", &id]).fails_with("EOTP");
    let otp = otp_now(&server, &secret);
    let approved = npm
        .run(&["stage", "approve", &id, &format!("--otp={otp}")])
        .ok();
    assert!(approved.stdout.contains("approved"), "{}", approved.all());
    let doc = packument(&server, "acme-widget", None);
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "{doc}");
    assert!(doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"].is_object());
    app.run(&["install", "acme-widget@1.1.0"]).ok();
    assert_eq!(
        server.get(&format!("/-/stage/{id}"), Some(&alice)).status(),
        404
    );

    // A rejected version is deleted.
    server.clock.advance_ms(30_000);
    let dir = ci.package("acme-widget", "1.2.0", json!({}));
    issuer.hand_out(github_claims(
        &issuer,
        &server,
        "acme/widget",
        "release.yml",
    ));
    let staged = npm_ci(
        &ci,
        &dir,
        &["stage", "publish"],
        &env_refs(&github_env(&issuer)),
    )
    .ok();
    let id = staged
        .stdout
        .split("staged with id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_owned();
    let otp = otp_now(&server, &secret);
    npm.run(&["stage", "reject", &id, &format!("--otp={otp}")])
        .ok();
    let list = npm.run(&["stage", "list", "acme-widget"]).ok();
    assert!(list.stdout.contains("No staged versions"), "{}", list.all());
    assert!(packument(&server, "acme-widget", None)["versions"]["1.2.0"].is_null());
}

/// The website's side on both databases: trust a workflow from the settings page,
/// review a version the workflow staged (files, package.json against `latest`),
/// approve it with a one-time password, then allow only trusted publishing.
#[test]
fn website_trust_settings_and_staged_review() {
    let issuer = Issuer::start();
    let gh = issuer.url("gh");
    let run = |server: TestServer| {
        let alice = server.signup("alice");
        let r = server
            .request(Method::PUT, "/acme-widget", Some(&alice))
            .json(&publish_body("acme-widget", "1.0.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let automation = server.create_token(&alice, "alice", json!({"automation": true}));
        let (secret, _) = crate::two_factor::enable(&server, &alice, "alice", "auth-and-writes");
        let web = http_session_with_otp(&server, "alice", || Some(otp_now(&server, &secret)));
        server.clock.advance_ms(30_000);
        let (status, page) = web.get("/package/acme-widget/settings");
        assert_eq!(status, 200);
        assert!(page.contains("Trusted publishing") && page.contains("No CI workflow is trusted"));

        let settings = "/package/acme-widget/settings";
        let trust_form = |otp: &str| {
            web.post(
                &format!("{settings}/trust"),
                &[
                    ("csrf", &web.csrf(settings)),
                    ("kind", "github"),
                    ("repository", "acme/widget"),
                    ("file", "release.yml"),
                    ("allow_stage", "on"),
                    ("otp", otp),
                ],
            )
        };
        // Without the second factor nothing is trusted.
        let r = trust_form("");
        assert_eq!(r.status(), 401);
        assert!(r.text().unwrap().contains("one-time password"));
        let r = trust_form(&otp_now(&server, &secret));
        assert_eq!(r.status(), 303);
        let (_, page) = web.get(settings);
        assert!(page.contains("acme/widget, workflow release.yml"), "{page}");
        assert!(page.contains("stage publish"));

        // The workflow stages 1.1.0 with its exchanged token.
        let (status, body) = exchange(
            &server,
            "acme-widget",
            &issuer.sign(&github_claims(
                &issuer,
                &server,
                "acme/widget",
                "release.yml",
            )),
        );
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_owned();
        let r = server
            .request(Method::POST, "/-/stage/package/acme-widget", Some(&token))
            .json(&publish_body("acme-widget", "1.1.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().unwrap()["stageId"]
            .as_str()
            .unwrap()
            .to_owned();
        // Staging the same version twice is refused; a publish with it too.
        let r = server
            .request(Method::POST, "/-/stage/package/acme-widget", Some(&token))
            .json(&publish_body("acme-widget", "1.1.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 409);
        let r = server
            .request(Method::PUT, "/acme-widget", Some(&token))
            .json(&publish_body("acme-widget", "1.1.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403);

        let (_, page) = web.get(settings);
        assert!(
            page.contains(&format!("/package/acme-widget/staged/{id}")),
            "{page}"
        );
        let review = format!("/package/acme-widget/staged/{id}");
        let (status, page) = web.get(&review);
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<code>package.json</code>"), "{page}");
        assert!(page.contains("against 1.0.0"), "{page}");
        assert!(
            page.contains("+   &#34;version&#34;: &#34;1.1.0&#34;")
                || page.contains("+   &quot;version&quot;: &quot;1.1.0&quot;"),
            "{page}"
        );
        assert!(page.contains("GitHub Actions acme/widget/.github/workflows/release.yml"));
        // bob may not review it.
        server.signup("bob");
        let bob = http_session(&server, "bob");
        assert_eq!(bob.get(&review).0, 403);

        // Approve: the second factor is asked.
        server.clock.advance_ms(30_000);
        let r = web.post(
            &format!("{review}/approve"),
            &[("csrf", &web.csrf(&review)), ("otp", "")],
        );
        assert_eq!(r.status(), 401);
        assert!(packument(&server, "acme-widget", None)["versions"]["1.1.0"].is_null());
        let r = web.post(
            &format!("{review}/approve"),
            &[
                ("csrf", &web.csrf(&review)),
                ("otp", &otp_now(&server, &secret)),
            ],
        );
        assert_eq!(r.status(), 303);
        let doc = packument(&server, "acme-widget", None);
        assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "{doc}");
        assert_eq!(web.get(&review).0, 404);

        // Only trusted publishing from now on.
        server.clock.advance_ms(30_000);
        let r = web.post(
            &format!("{settings}/trust-only"),
            &[
                ("csrf", &web.csrf(settings)),
                ("trusted_only", "on"),
                ("otp", &otp_now(&server, &secret)),
            ],
        );
        assert_eq!(r.status(), 303);
        let r = server
            .request(Method::PUT, "/acme-widget", Some(&token_of(&automation)))
            .json(&publish_body("acme-widget", "1.2.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403);
        let (_, page) = web.get(settings);
        assert!(page.contains("trusted-only-badge"));
        let page = http()
            .get(format!("{}/package/acme-widget", server.url))
            .header("accept", "text/html")
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            page.contains("New versions only through trusted publishing"),
            "{page}"
        );
    };
    with_github_issuer_on_both_databases(&gh, run);
}

/// The review page in headless Chromium: a workflow stages a version, its maintainer
/// opens the page from the package's settings, sees the files and the package.json
/// change, approves with a one-time password and lands on the package page.
#[test]
fn staged_review_page_in_chromium() {
    use crate::web_harness::{Browser, Server, browser_missing};
    if let Some(why) = browser_missing() {
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("{why}");
        return;
    }
    let issuer = Issuer::start();
    let gh = issuer.url("gh");
    let server = Server::start_with(move |c| {
        c.oidc_issuers.push(OidcIssuer {
            kind: CiKind::Github,
            url: gh,
            configured: true,
        })
    });
    let url = server.url.clone();
    let password = password_of("alice");
    let now = tessera::clock::SystemClock.now_ms() / 1000;
    let claims = json!({
        "iss": issuer.url("gh"), "aud": "npm:127.0.0.1", "jti": "chromium-review",
        "repository": "acme/widget",
        "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/heads/main",
        "iat": now, "nbf": now, "exp": now + 300,
    });
    let id_token = issuer.sign(&claims);
    server.rt.block_on(async move {
        let http = reqwest::Client::new();
        let login: Value = http
            .put(format!("{url}/-/user/org.couchdb.user:alice"))
            .json(&json!({"name": "alice", "password": password, "email": "alice@example.com"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let alice = login["token"].as_str().unwrap().to_owned();
        let send = |method: Method, path: &str, token: &str, body: Value| {
            http.request(method, format!("{url}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
        };
        let r = send(Method::PUT, "/acme-widget", &alice, publish_body("acme-widget", "1.0.0")).await.unwrap();
        assert_eq!(r.status(), 200);
        let r = send(
            Method::POST,
            "/-/package/acme-widget/trust",
            &alice,
            json!([{"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}}, "permissions": ["createStagedPackage"]}]),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        // 2FA from here on: approval asks for a one-time password.
        let r = send(Method::POST, "/-/npm/v1/user", &alice, json!({"tfa": {"mode": "auth-only", "password": password_of("alice")}})).await.unwrap();
        let otpauth = r.json::<Value>().await.unwrap()["tfa"].as_str().unwrap().to_owned();
        let secret = secret_from_otpauth(&otpauth);
        let code = |offset: i64| {
            let t = tessera::clock::SystemClock.now_ms() / 1000 + offset;
            tessera::crypto::totp::code_at(&secret, t as u64)
        };
        let r = send(Method::POST, "/-/npm/v1/user", &alice, json!({"tfa": [code(-30)]})).await.unwrap();
        assert_eq!(r.status(), 200);

        let minted: Value = http
            .post(format!("{url}/-/npm/v1/oidc/token/exchange/package/acme-widget"))
            .bearer_auth(&id_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = minted["token"].as_str().unwrap().to_owned();
        let staged: Value = send(Method::POST, "/-/stage/package/acme-widget", &token, publish_body("acme-widget", "1.1.0"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = staged["stageId"].as_str().unwrap().to_owned();

        let b = Browser::start(&url).await;
        b.sign_in("alice", &password_of("alice")).await;
        b.wait_path("/login/otp").await;
        // Each one-time password is a later step than the one before (replay rule).
        b.fill("One-time password", &code(0)).await;
        b.click_button("Verify").await;
        // Signed in (the verification has answered) before leaving the page.
        b.css("img[alt='Profile picture']").await;
        b.goto("/package/acme-widget/settings").await;
        b.click_link("1.1.0").await;
        b.wait_path(&format!("/package/acme-widget/staged/{id}")).await;
        b.screenshot("staged-review").await;
        assert!(b.text("h1").await.contains("acme-widget@1.1.0"));
        assert!(b.text("table.files").await.contains("package.json"));
        let diff = b.text("#manifest-diff").await;
        assert!(diff.contains("+ ") && diff.contains("1.1.0") && diff.contains("- "), "{diff}");
        b.fill("One-time password", &code(30)).await;
        b.click_button("Approve and publish").await;
        // The review page's own path starts with the package page's, so wait for the
        // package page's notice rather than for the path.
        b.wait_text("body", "approved and published").await;
        let path = b.path().await;
        assert!(path.starts_with("/package/acme-widget?"), "{path}");
        b.close().await;
        let doc: Value = http.get(format!("{url}/acme-widget")).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    });
}

/// Issuers from the file, the environment and flags; `config show` lists them with
/// the defaults; a plain-http issuer off loopback stops the server from starting.
#[test]
fn oidc_issuers_from_every_source_show_in_config_show() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[[oidc_issuers]]\nkind = \"gitlab\"\nurl = \"https://gitlab.example.com\"\n",
            dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let shown = tessera(&["config", "show", "--config", cfg], None, &[]).ok();
    let line = shown
        .stdout
        .lines()
        .find(|l| l.starts_with("oidc_issuers"))
        .unwrap_or_else(|| panic!("{}", shown.stdout))
        .to_owned();
    for needle in [
        "github=https://token.actions.githubusercontent.com",
        "gitlab=https://gitlab.com",
        "circleci=https://oidc.circleci.com",
        "gitlab=https://gitlab.example.com",
        "(file)",
    ] {
        assert!(line.contains(needle), "{needle} in {line}");
    }
    let shown = tessera(
        &["config", "show", "--config", cfg],
        None,
        &[(
            "TESSERA_OIDC_ISSUERS",
            "gitlab=https://git.corp.example,github=https://ghe.corp.example/_services/token",
        )],
    )
    .ok();
    assert!(
        shown.stdout.contains("gitlab=https://git.corp.example"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("github=https://ghe.corp.example/_services/token")
    );
    assert!(
        !shown.stdout.contains("gitlab=https://gitlab.example.com"),
        "env replaces the file"
    );
    let shown = tessera(
        &[
            "config",
            "show",
            "--config",
            cfg,
            "--oidc-issuer",
            "circleci=https://circleci.corp.example",
            "--oidc-issuer",
            "github=http://127.0.0.1:9999",
        ],
        None,
        &[],
    )
    .ok();
    assert!(
        shown
            .stdout
            .contains("circleci=https://circleci.corp.example"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("github=http://127.0.0.1:9999"));
    tessera(
        &[
            "config",
            "show",
            "--config",
            cfg,
            "--oidc-issuer",
            "gitlab=http://gitlab.example.com",
        ],
        None,
        &[],
    )
    .fails_with("only on a loopback address");
    tessera(
        &[
            "config",
            "show",
            "--config",
            cfg,
            "--oidc-issuer",
            "forgejo=https://code.example.com",
        ],
        None,
        &[],
    )
    .fails_with("--oidc-issuer");
}

/// CircleCI: an operator-configured CircleCI issuer, whose id tokens name the
/// organization in the issuer; trust configured with `tessera package trust circleci`.
#[test]
fn circleci_id_tokens_match_organization_and_project() {
    let issuer = Issuer::start();
    let cc = issuer.url("cc");
    let server = TestServer::builder()
        .config(move |c| {
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Circleci,
                url: cc,
                configured: true,
            })
        })
        .start();
    let (alice, npm) = {
        let alice = server.signup("alice");
        let npm = server.npm(Some(&alice));
        npm.publish("circle-lib", "1.0.0", &[]).ok();
        (alice, npm)
    };
    let org = "8a5b2b5e-0e0e-4c4c-9a9a-0123456789ab";
    let project = "3f1c0c1e-1111-4222-8333-444455556666";
    tessera(
        &[
            "package",
            "trust",
            "circleci",
            "circle-lib",
            "--org-id",
            org,
            "--project-id",
            project,
            "--allow-publish",
            "--registry",
            &server.url,
            "--userconfig",
            npm.userconfig.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    let now = now_s(&server);
    let claims = |org_in_issuer: &str, project: &str| {
        json!({
            "iss": format!("{}/org/{org_in_issuer}", issuer.url("cc")),
            "aud": "npm:127.0.0.1",
            "jti": tessera::crypto::token_format::random_base62(20),
            "sub": format!("org/{org}/project/{project}/user/u1"),
            "oidc.circleci.com/org-id": org,
            "oidc.circleci.com/project-id": project,
            "oidc.circleci.com/vcs-origin": "github.com/acme/circle-lib",
            "iat": now, "nbf": now, "exp": now + 300,
        })
    };
    let (status, body) = exchange(&server, "circle-lib", &issuer.sign(&claims(org, project)));
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let r = server
        .request(Method::PUT, "/circle-lib", Some(&token))
        .json(&publish_body("circle-lib", "1.1.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc = packument(&server, "circle-lib", None);
    assert!(
        doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"]["identity"]
            .as_str()
            .unwrap()
            .starts_with(&format!("CircleCI project {project}")),
        "{doc}"
    );
    // Another project of the organization is not trusted.
    let other = "99999999-1111-4222-8333-444455556666";
    let (status, body) = exchange(&server, "circle-lib", &issuer.sign(&claims(org, other)));
    assert_eq!(status, 403, "{body}");
    // An issuer path that is not an organization id is not a trusted issuer.
    let mut odd = claims(org, project);
    odd["iss"] = json!(format!("{}/org/../evil", issuer.url("cc")));
    assert_eq!(exchange(&server, "circle-lib", &issuer.sign(&odd)).0, 401);
    let listed = tessera(
        &[
            "package",
            "trust",
            "list",
            "circle-lib",
            "--registry",
            &server.url,
            "--userconfig",
            npm.userconfig.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(listed.stdout.contains(project), "{}", listed.all());
    let _ = alice;
}

/// Two instances on one PostgreSQL database: an id token exchanged through one is
/// refused by the other (the replay record is in the database, not in a process).
#[test]
fn an_id_token_is_exchanged_once_across_instances() {
    if postgres_url().is_none() {
        assert!(std::env::var("CI").is_err(), "CI must cover PostgreSQL");
        eprintln!("skipped: TESSERA_TEST_DATABASE_URL is not set");
        return;
    }
    let issuer = Issuer::start();
    let with_issuer = |gh: String| {
        move |c: &mut tessera::config::Config| {
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Github,
                url: gh,
                configured: true,
            })
        }
    };
    let first = TestServer::builder()
        .postgres()
        .config(with_issuer(issuer.url("gh")))
        .start();
    let database = first.app.config.database_url.clone();
    let key_file = first.app.config.server_key_file.clone();
    let add_issuer = with_issuer(issuer.url("gh"));
    let second = TestServer::builder()
        .config(move |c| {
            c.database_url = database;
            c.server_key_file = key_file;
            add_issuer(c);
        })
        .start();
    let alice = first.signup("alice");
    let r = first
        .request(Method::PUT, "/acme-widget", Some(&alice))
        .json(&publish_body("acme-widget", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = first
        .request(Method::POST, "/-/package/acme-widget/trust", Some(&alice))
        .json(&json!([{"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}}, "permissions": ["createPackage"]}]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id_token = issuer.sign(&github_claims(
        &issuer,
        &first,
        "acme/widget",
        "release.yml",
    ));
    let (status, body) = exchange(&first, "acme-widget", &id_token);
    assert_eq!(status, 201, "{body}");
    let (status, body) = exchange(&second, "acme-widget", &id_token);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already exchanged")
    );
    // The token minted by one instance publishes through the other.
    let token = exchange(
        &second,
        "acme-widget",
        &issuer.sign(&github_claims(
            &issuer,
            &second,
            "acme/widget",
            "release.yml",
        )),
    )
    .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = first
        .request(Method::PUT, "/acme-widget", Some(&token))
        .json(&publish_body("acme-widget", "1.1.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A package alice maintains whose workflow may only stage, and the token the
/// workflow's id token was exchanged for: `(alice's token, workflow token)`.
fn staging_package(server: &TestServer, issuer: &Issuer, name: &str) -> (String, String) {
    let alice = server.signup("alice");
    let r = server
        .request(Method::PUT, &format!("/{name}"), Some(&alice))
        .json(&publish_body(name, "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .request(Method::POST, &format!("/-/package/{name}/trust"), Some(&alice))
        .json(&json!([{"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}}, "permissions": ["createStagedPackage"]}]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let (status, body) = exchange(
        server,
        name,
        &issuer.sign(&github_claims(issuer, server, "acme/widget", "release.yml")),
    );
    assert_eq!(status, 201, "{body}");
    (alice, body["token"].as_str().unwrap().to_owned())
}

/// The workflow stages `name@version`; gives the staged id.
fn stage(server: &TestServer, workflow: &str, name: &str, version: &str) -> String {
    let r = server
        .request(
            Method::POST,
            &format!("/-/stage/package/{name}"),
            Some(workflow),
        )
        .json(&publish_body(name, version))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["stageId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends every request at once (a barrier releases the threads together) and gives
/// the statuses in order.
fn all_at_once(server: &TestServer, requests: &[(Method, String, String)]) -> Vec<u16> {
    let barrier = std::sync::Barrier::new(requests.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|(method, path, token)| {
                let barrier = &barrier;
                s.spawn(move || {
                    let request = server.request(method.clone(), path, Some(token));
                    barrier.wait();
                    request.send().unwrap().status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn staged_ids(server: &TestServer, token: &str, name: &str) -> Vec<String> {
    let list: Value = server
        .get(&format!("/-/stage?package={name}"), Some(token))
        .json()
        .unwrap();
    list["items"]
        .as_array()
        .or_else(|| list["objects"].as_array())
        .unwrap_or_else(|| panic!("no list in {list}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn log_count(server: &TestServer, user: &str, needle: &str) -> usize {
    security_log_rows(server, user_id(server, user))
        .iter()
        .filter(|(d, _)| d.contains(needle))
        .count()
}

/// Eight approvals of one staged version at once (two maintainers' double clicks):
/// one publishes it, the others get 404, nothing is half written, and npm installs
/// it; then approvals racing rejections of another staged version leave exactly
/// one decision. On SQLite and PostgreSQL.
#[test]
fn concurrent_approvals_and_rejections_of_a_staged_version_have_one_winner() {
    let issuer = Issuer::start();
    let gh = issuer.url("gh");
    let run = |server: TestServer| {
        let (alice, workflow) = staging_package(&server, &issuer, "acme-widget");
        let id = stage(&server, &workflow, "acme-widget", "1.1.0");
        let approve = (
            Method::POST,
            format!("/-/stage/{id}/approve"),
            alice.clone(),
        );
        let statuses = all_at_once(&server, &vec![approve; 8]);
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 404),
            "{statuses:?}"
        );
        let doc = packument(&server, "acme-widget", None);
        assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "{doc}");
        assert!(doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"].is_object());
        assert!(staged_ids(&server, &alice, "acme-widget").is_empty());
        assert_eq!(log_count(&server, "alice", "acme-widget@1.1.0 approved"), 1);
        let app = server.npm(None);
        app.run(&["install", "acme-widget@1.1.0"]).ok();
        let installed = app.work().join("node_modules/acme-widget/package.json");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(&installed).unwrap()).unwrap();
        assert_eq!(manifest["version"], "1.1.0");

        // Approvals against rejections: one decision, and the end state is its.
        let id = stage(&server, &workflow, "acme-widget", "1.2.0");
        let requests: Vec<(Method, String, String)> = (0..8)
            .map(|i: usize| {
                if i.is_multiple_of(2) {
                    (
                        Method::POST,
                        format!("/-/stage/{id}/approve"),
                        alice.clone(),
                    )
                } else {
                    (Method::DELETE, format!("/-/stage/{id}"), alice.clone())
                }
            })
            .collect();
        let statuses = all_at_once(&server, &requests);
        let winners: Vec<usize> = (0..8).filter(|i| statuses[*i] == 200).collect();
        assert_eq!(winners.len(), 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 404),
            "{statuses:?}"
        );
        let approved = winners[0].is_multiple_of(2);
        let doc = packument(&server, "acme-widget", None);
        assert_eq!(doc["versions"]["1.2.0"].is_object(), approved, "{doc}");
        assert_eq!(
            doc["dist-tags"]["latest"],
            if approved { "1.2.0" } else { "1.1.0" }
        );
        assert!(staged_ids(&server, &alice, "acme-widget").is_empty());
        assert_eq!(
            log_count(&server, "alice", "acme-widget@1.2.0 approved"),
            usize::from(approved)
        );
        assert_eq!(
            log_count(&server, "alice", "acme-widget@1.2.0 rejected"),
            usize::from(!approved)
        );
    };
    with_github_issuer_on_both_databases(&gh, run);
}

/// An approval whose publish is refused writes nothing: the version was published
/// directly under the same number meanwhile, so the approval answers 409, the
/// published version is the direct one, no approval is logged and the staged
/// version is still listed (and can be rejected). After the package is deleted, an
/// approval finds nothing (404). On SQLite and PostgreSQL.
#[test]
fn a_refused_approval_writes_nothing_and_keeps_the_staged_version() {
    let issuer = Issuer::start();
    let gh = issuer.url("gh");
    let run = |server: TestServer| {
        let (alice, workflow) = staging_package(&server, &issuer, "acme-widget");
        let id = stage(&server, &workflow, "acme-widget", "1.1.0");
        // alice publishes 1.1.0 herself before anyone approves.
        let r = server
            .request(Method::PUT, "/acme-widget", Some(&alice))
            .json(&publish_body("acme-widget", "1.1.0"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let before = packument(&server, "acme-widget", None);
        let r = server
            .request(
                Method::POST,
                &format!("/-/stage/{id}/approve"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 409);
        let message = r.text().unwrap();
        assert!(message.contains("published meanwhile"), "{message}");
        let after = packument(&server, "acme-widget", None);
        assert_eq!(before["_rev"], after["_rev"], "nothing was written");
        assert!(after["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"].is_null());
        assert_eq!(staged_ids(&server, &alice, "acme-widget"), vec![id.clone()]);
        assert_eq!(log_count(&server, "alice", "acme-widget@1.1.0 approved"), 0);
        // A second try is refused the same way; a rejection clears it.
        let r = server
            .request(
                Method::POST,
                &format!("/-/stage/{id}/approve"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 409);
        let r = server
            .request(Method::DELETE, &format!("/-/stage/{id}"), Some(&alice))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(staged_ids(&server, &alice, "acme-widget").is_empty());
        assert_eq!(log_count(&server, "alice", "acme-widget@1.1.0 rejected"), 1);

        // Staged, then the package is deleted: the approval finds nothing.
        let id = stage(&server, &workflow, "acme-widget", "1.2.0");
        let npm = server.npm(Some(&alice));
        npm.run(&["unpublish", "acme-widget", "--force"]).ok();
        let r = server
            .request(
                Method::POST,
                &format!("/-/stage/{id}/approve"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(
            server.get("/acme-widget", None).status(),
            404,
            "the approval did not bring the package back"
        );
    };
    with_github_issuer_on_both_databases(&gh, run);
}

/// The real npm CLI in CircleCI mode: `npm trust circleci` creates the
/// configuration, then a pipeline (CircleCI sets `CIRCLECI`; the job hands npm its
/// id token in `NPM_ID_TOKEN`) publishes with no token of its own, through the
/// exchange. The published version and the security log name the pipeline.
#[test]
fn circleci_pipeline_publishes_with_npm_in_circleci_mode() {
    let issuer = Issuer::start();
    let cc = issuer.url("cc");
    let server = TestServer::builder()
        .config(move |c| {
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Circleci,
                url: cc,
                configured: true,
            })
        })
        .start();
    let alice = server.signup("alice");
    let npm = server.npm(Some(&alice));
    npm.publish("circle-lib", "1.0.0", &[]).ok();
    let org = "8a5b2b5e-0e0e-4c4c-9a9a-0123456789ab";
    let project = "3f1c0c1e-1111-4222-8333-444455556666";
    let pipeline = "5d6e7f80-2222-4333-8444-555566667777";
    let created = npm
        .run(&[
            "trust",
            "circleci",
            "circle-lib",
            "--org-id",
            org,
            "--project-id",
            project,
            "--pipeline-definition-id",
            pipeline,
            "--vcs-origin",
            "github.com/acme/circle-lib",
            "--allow-publish",
            "--yes",
        ])
        .ok();
    assert!(created.all().contains(project), "{}", created.all());
    let listed = npm.run(&["trust", "list", "circle-lib", "--json"]).ok();
    assert!(
        listed.stdout.contains(project) && listed.stdout.contains(pipeline),
        "{}",
        listed.all()
    );
    let configs: Value = server
        .get("/-/package/circle-lib/trust", Some(&alice))
        .json()
        .unwrap();
    let config = &configs[0];
    assert_eq!(config["type"], "circleci", "{configs}");
    assert_eq!(
        config["claims"]["oidc.circleci.com/org-id"], org,
        "{configs}"
    );
    assert_eq!(
        config["claims"]["oidc.circleci.com/vcs-origin"],
        "github.com/acme/circle-lib"
    );

    let now = now_s(&server);
    let claims = |pipeline: &str| {
        json!({
            "iss": format!("{}/org/{org}", issuer.url("cc")),
            "aud": "npm:127.0.0.1",
            "jti": tessera::crypto::token_format::random_base62(20),
            "sub": format!("org/{org}/project/{project}/user/u1"),
            "oidc.circleci.com/org-id": org,
            "oidc.circleci.com/project-id": project,
            "oidc.circleci.com/pipeline-definition-id": pipeline,
            "oidc.circleci.com/vcs-origin": "github.com/acme/circle-lib",
            "iat": now, "nbf": now, "exp": now + 300,
        })
    };
    let ci = server.npm(None);
    let dir = ci.package("circle-lib", "1.1.0", json!({}));
    let id_token = issuer.sign(&claims(pipeline));
    let run = npm_ci(
        &ci,
        &dir,
        &["publish"],
        &[
            ("CIRCLECI", "true"),
            ("CI", "true"),
            ("NPM_ID_TOKEN", &id_token),
        ],
    )
    .ok();
    assert!(run.stdout.contains("+ circle-lib@1.1.0"), "{}", run.all());
    let doc = packument(&server, "circle-lib", None);
    let identity = doc["versions"]["1.1.0"]["_npmUser"]["trustedPublisher"]["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("not published by the pipeline: {doc}"))
        .to_owned();
    assert!(
        identity.starts_with(&format!("CircleCI project {project}")),
        "{identity}"
    );
    assert!(doc["versions"]["1.0.0"]["_npmUser"]["trustedPublisher"].is_null());
    let log: Vec<String> = security_log_rows(&server, user_id(&server, "alice"))
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(
        log.iter()
            .any(|d| d.contains("circle-lib@1.1.0 published through trusted publishing")),
        "{log:?}"
    );

    // Another pipeline definition of the same project is not trusted: npm's
    // exchange is refused and, with no token to fall back on, the publish fails.
    let dir = ci.package("circle-lib", "1.2.0", json!({}));
    let other = issuer.sign(&claims("99999999-2222-4333-8444-555566667777"));
    let refused = npm_ci(
        &ci,
        &dir,
        &["publish"],
        &[
            ("CIRCLECI", "true"),
            ("CI", "true"),
            ("NPM_ID_TOKEN", &other),
        ],
    );
    assert_ne!(refused.status, 0, "{}", refused.all());
    assert!(packument(&server, "circle-lib", None)["versions"]["1.2.0"].is_null());
}

/// The settings page's CircleCI form in headless Chromium: a maintainer trusts a
/// CircleCI pipeline (organization, project, pipeline definition, repository origin
/// and two contexts); the table lists it, and the stored claims are CircleCI's.
#[test]
fn circleci_trust_form_in_chromium() {
    use crate::web_harness::{Browser, Server, browser_missing};
    if let Some(why) = browser_missing() {
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("{why}");
        return;
    }
    let issuer = Issuer::start();
    let cc = issuer.url("cc");
    let server = Server::start_with(move |c| {
        c.oidc_issuers.push(OidcIssuer {
            kind: CiKind::Circleci,
            url: cc,
            configured: true,
        })
    });
    let alice = server.signup("alice");
    let r = server
        .request(Method::PUT, "/circle-lib", Some(&alice))
        .json(&publish_body("circle-lib", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let org = "8a5b2b5e-0e0e-4c4c-9a9a-0123456789ab";
    let project = "3f1c0c1e-1111-4222-8333-444455556666";
    let url = server.url.clone();
    server.rt.block_on(async move {
        let b = Browser::start(&url).await;
        b.sign_in("alice", &password_of("alice")).await;
        b.css("img[alt='Profile picture']").await;
        b.goto("/package/circle-lib/settings").await;
        b.fill("Organization id", org).await;
        b.fill("Project id", project).await;
        b.fill(
            "Pipeline definition id (optional)",
            "5d6e7f80-2222-4333-8444-555566667777",
        )
        .await;
        b.fill(
            "Repository origin, such as github.com/owner/repo (optional)",
            "github.com/acme/circle-lib",
        )
        .await;
        b.fill(
            "Context ids, separated by commas (optional; the pipeline must run in one of them)",
            "c0ffee00-0000-4000-8000-000000000001, c0ffee00-0000-4000-8000-000000000002",
        )
        .await;
        b.choose("The pipeline may publish").await;
        b.click_button("Trust this pipeline").await;
        let row = b.wait_text("table.trust-configs", project).await;
        b.screenshot("trust-circleci").await;
        assert!(row.contains("circleci") && row.contains(org), "{row}");
        b.close().await;
    });
    let configs: Value = server
        .get("/-/package/circle-lib/trust", Some(&alice))
        .json()
        .unwrap();
    let claims = &configs[0]["claims"];
    assert_eq!(configs[0]["type"], "circleci", "{configs}");
    assert_eq!(claims["oidc.circleci.com/project-id"], project, "{configs}");
    assert_eq!(
        claims["oidc.circleci.com/pipeline-definition-id"],
        "5d6e7f80-2222-4333-8444-555566667777"
    );
    assert_eq!(
        claims["oidc.circleci.com/context-ids"],
        json!([
            "c0ffee00-0000-4000-8000-000000000001",
            "c0ffee00-0000-4000-8000-000000000002"
        ])
    );
    let permissions = configs[0]["permissions"].to_string();
    assert!(
        permissions.contains("createPackage") && permissions.contains("createStagedPackage"),
        "{configs}"
    );
}

/// Runs `statements` on the test server's own database (SQLite file or its fresh
/// PostgreSQL database), beside the server's pool.
fn on_database(server: &TestServer, statements: &[&str]) {
    let url = server.app.config.database_url.as_str().to_owned();
    let statements: Vec<String> = statements.iter().map(|s| (*s).to_owned()).collect();
    server.block_on(async move {
        use sqlx::Connection;
        if url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        } else {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    });
}

/// An approval is all or nothing: with the database refusing its last write (the
/// security-log entry, after the version, dist-tags and revision were written in
/// the same transaction), the approval fails and leaves no trace: no version, no
/// dist-tag, the same revision, the version still staged. Once the database accepts
/// it again, the same staged version is approved. On SQLite and PostgreSQL.
#[test]
fn an_approval_that_fails_at_its_last_write_leaves_nothing_behind() {
    let issuer = Issuer::start();
    let gh = issuer.url("gh");
    let run = |server: TestServer| {
        let postgres = !server
            .app
            .config
            .database_url
            .as_str()
            .starts_with("sqlite");
        let (alice, workflow) = staging_package(&server, &issuer, "acme-widget");
        let id = stage(&server, &workflow, "acme-widget", "1.1.0");
        if postgres {
            on_database(
                &server,
                &[
                    "CREATE FUNCTION refuse_approval_log() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.kind = 'stage-approved' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                     RETURN NEW; END $$",
                    "CREATE TRIGGER refuse_approval_log BEFORE INSERT ON security_events \
                     FOR EACH ROW EXECUTE FUNCTION refuse_approval_log()",
                ],
            );
        } else {
            on_database(
                &server,
                &[
                    "CREATE TRIGGER refuse_approval_log BEFORE INSERT ON security_events \
                   WHEN NEW.kind = 'stage-approved' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                ],
            );
        }
        let before = packument(&server, "acme-widget", None);
        let r = server
            .request(
                Method::POST,
                &format!("/-/stage/{id}/approve"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert!(r.status().is_server_error(), "{}", r.status());
        let after = packument(&server, "acme-widget", None);
        assert_eq!(before["_rev"], after["_rev"], "{after}");
        assert!(after["versions"]["1.1.0"].is_null(), "{after}");
        assert_eq!(after["dist-tags"], before["dist-tags"]);
        assert_eq!(staged_ids(&server, &alice, "acme-widget"), vec![id.clone()]);
        assert_eq!(log_count(&server, "alice", "acme-widget@1.1.0 approved"), 0);

        let drop = if postgres {
            "DROP TRIGGER refuse_approval_log ON security_events"
        } else {
            "DROP TRIGGER refuse_approval_log"
        };
        on_database(&server, &[drop]);
        let r = server
            .request(
                Method::POST,
                &format!("/-/stage/{id}/approve"),
                Some(&alice),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let doc = packument(&server, "acme-widget", None);
        assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "{doc}");
        assert!(staged_ids(&server, &alice, "acme-widget").is_empty());
        assert_eq!(log_count(&server, "alice", "acme-widget@1.1.0 approved"), 1);
        let app = server.npm(None);
        app.run(&["install", "acme-widget@1.1.0"]).ok();
    };
    with_github_issuer_on_both_databases(&gh, run);
}

/// Runs `run` on a server trusting the GitHub-layout issuer at `gh`, on SQLite and
/// then on PostgreSQL (required in CI).
fn with_github_issuer_on_both_databases(gh: &str, run: impl Fn(TestServer)) {
    let start = |postgres: bool| {
        let gh = gh.to_owned();
        let mut b = TestServer::builder();
        if postgres {
            b = b.postgres();
        }
        b.config(move |c| {
            c.oidc_issuers.push(OidcIssuer {
                kind: CiKind::Github,
                url: gh,
                configured: true,
            })
        })
        .start()
    };
    run(start(false));
    if postgres_url().is_some() {
        run(start(true));
    } else {
        assert!(std::env::var("CI").is_err(), "CI must cover PostgreSQL");
    }
}
