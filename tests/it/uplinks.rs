//! Uplinks: a second Tessera instance (and a fault-injecting stub) as the upstream
//! registry. The real npm, pnpm and yarn install through the proxy; the cache
//! serves installs with the uplink gone; the dependency-confusion shield, the
//! release cooldown, integrity refusals, single-flight and audit forwarding.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Uplink settings from TOML (the same parser the server uses).
fn settings(toml_text: &str) -> tessera::config::UplinkSettings {
    let mut raw: tessera::config::RawConfig = toml::from_str(toml_text).expect("test TOML");
    raw.data_dir = Some(std::env::temp_dir().join("tessera-uplink-settings"));
    tessera::config::Config::from_raw(raw)
        .expect("valid uplink settings")
        .uplinks
}

/// A proxy in front of `upstream_url` with extra TOML (routes, cooldown).
fn proxy_of(upstream_url: &str, extra: &str) -> TestServer {
    proxy_with(upstream_url, extra, false)
}

fn proxy_with(upstream_url: &str, extra: &str, postgres: bool) -> TestServer {
    // Top-level keys of `extra` go before the tables.
    let (top, tables) = match extra.find("[[") {
        Some(i) => extra.split_at(i),
        None => (extra, ""),
    };
    let text = format!(
        "{top}\n[[uplinks]]\nname = \"up\"\nurl = \"{upstream_url}\"\ntimeout = \"2s\"\n{tables}"
    );
    let s = settings(&text);
    let builder = TestServer::builder().config(move |c| c.uplinks = s);
    if postgres {
        builder.postgres().start()
    } else {
        builder.start()
    }
}

fn publish_with(npm: &Npm, name: &str, version: &str, extra: Value) {
    let dir = npm.package(name, version, extra);
    npm.run_in(&dir, &["publish"]).ok();
}

fn project(npm: &Npm, folder: &str, deps: Value) -> std::path::PathBuf {
    let dir = npm.dir.path().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(
            &json!({"name": folder, "version": "1.0.0", "dependencies": deps}),
        )
        .unwrap(),
    )
    .unwrap();
    dir
}

fn installed_version(dir: &std::path::Path, package: &str) -> String {
    let text = std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
        .unwrap_or_else(|e| panic!("{package} is not installed in {}: {e}", dir.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["version"].as_str().unwrap().to_owned()
}

fn metric(server: &TestServer, line_start: &str) -> u64 {
    let text = server.get("/-/metrics", None).text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in\n{text}"))
}

#[test]
fn npm_installs_local_and_proxied_packages_and_the_cache_outlives_the_uplink() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    let up_npm = upstream.npm(Some(&up_token));
    publish_with(&up_npm, "pub-b", "1.2.0", json!({}));
    publish_with(
        &up_npm,
        "pub-a",
        "1.0.0",
        json!({"dependencies": {"pub-b": "^1.0.0"}}),
    );
    let scoped = up_npm.package("@pubscope/c", "2.0.0", json!({}));
    up_npm
        .run_in(&scoped, &["publish", "--access", "public"])
        .ok();

    let proxy = proxy_of(&upstream.url, "");
    let token = proxy.signup("alice");
    let alice = proxy.npm(Some(&token));
    publish_with(&alice, "local-lib", "1.0.0", json!({}));

    // From an empty cache: local and proxied packages in one tree.
    let npm = proxy.npm(None);
    let dir = project(
        &npm,
        "app",
        json!({"local-lib": "^1.0.0", "pub-a": "^1.0.0", "@pubscope/c": "2.0.0"}),
    );
    npm.run_in(&dir, &["install"]).ok();
    assert_eq!(installed_version(&dir, "local-lib"), "1.0.0");
    assert_eq!(installed_version(&dir, "pub-a"), "1.0.0");
    assert_eq!(installed_version(&dir, "pub-b"), "1.2.0");
    assert_eq!(installed_version(&dir, "@pubscope/c"), "2.0.0");
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap();
    assert!(
        lock.contains(&format!("{}/pub-b/-/pub-b-1.2.0.tgz", proxy.url)),
        "tarball links point at the proxy: {lock}"
    );
    assert!(!lock.contains(&upstream.url), "{lock}");

    // Where a package comes from, as npm view shows it.
    let source = npm.run(&["view", "pub-a", "_tessera", "--json"]).ok();
    assert!(
        source.stdout.contains("\"uplink\": \"up\""),
        "{}",
        source.all()
    );
    let local = npm.run(&["view", "local-lib", "_tessera", "--json"]).ok();
    assert!(local.stdout.contains("\"local\""), "{}", local.all());
    // And the package page.
    let page = http()
        .get(format!("{}/package/pub-a", proxy.url))
        .header("accept", "text/html")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("proxied from uplink up"), "{page}");

    // ETag/304 like local packages, full and abbreviated.
    for accept in ["application/json", "application/vnd.npm.install-v1+json"] {
        let first = http()
            .get(format!("{}/pub-a", proxy.url))
            .header("accept", accept)
            .send()
            .unwrap();
        assert_eq!(first.status(), 200);
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = http()
            .get(format!("{}/pub-a", proxy.url))
            .header("accept", accept)
            .header("if-none-match", &etag)
            .send()
            .unwrap();
        assert_eq!(again.status(), 304, "{accept}");
    }
    assert!(
        metric(
            &proxy,
            "tessera_uplink_cache_total{uplink=\"up\",result=\"miss\"}"
        ) >= 3
    );
    assert!(
        metric(
            &proxy,
            "tessera_uplink_requests_total{uplink=\"up\",result=\"ok\"}"
        ) >= 3
    );

    // The uplink goes away; the documents go stale; a fresh npm still installs.
    drop(upstream);
    proxy.clock.advance_ms(10 * 60 * 1000);
    let stale = proxy.get("/pub-a", None);
    assert_eq!(stale.status(), 200);
    assert!(
        stale
            .headers()
            .get("warning")
            .is_some_and(|w| w.to_str().unwrap().contains("110")),
        "stale documents carry a Warning: {:?}",
        stale.headers()
    );
    let offline = proxy.npm(None);
    let dir2 = project(
        &offline,
        "app2",
        json!({"local-lib": "^1.0.0", "pub-a": "^1.0.0", "@pubscope/c": "2.0.0"}),
    );
    offline.run_in(&dir2, &["install"]).ok();
    assert_eq!(installed_version(&dir2, "pub-b"), "1.2.0");
    assert!(
        metric(
            &proxy,
            "tessera_uplink_cache_total{uplink=\"up\",result=\"stale\"}"
        ) >= 1
    );
    // A name never seen is a clear error naming the uplink, not a hang or a 500.
    let unseen = proxy.get("/never-seen", None);
    assert_eq!(unseen.status(), 502);
    assert!(unseen.text().unwrap().contains("uplink up"));
}

#[test]
fn local_names_and_scopes_are_never_served_from_the_uplink() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("mallory");
    let up_npm = upstream.npm(Some(&up_token));
    publish_with(&up_npm, "internal-lib", "99.0.0", json!({}));
    let scoped = up_npm.package("@acme/x", "1.0.0", json!({}));
    up_npm
        .run_in(&scoped, &["publish", "--access", "public"])
        .ok();
    publish_with(&up_npm, "shadow-me", "1.0.0", json!({}));

    let proxy = proxy_of(
        &upstream.url,
        "[[routes]]\npattern = \"internal-*\"\nuplink = \"up\"\nallow_shadowing = true\n",
    );
    let token = proxy.signup("alice");
    let alice = proxy.npm(Some(&token));
    // A new local name the uplink has: refused, saying why.
    let refused = alice.publish("shadow-me", "1.0.0", &[]);
    let refused = refused.fails_with("already exists on uplink up");
    assert!(
        refused.all().contains("allow_shadowing"),
        "{}",
        refused.all()
    );
    // Allowed where a route says so; from then on the name is local.
    publish_with(&alice, "internal-lib", "1.0.0", json!({}));
    publish_with(&alice, "@acme/y", "1.0.0", json!({}));

    let npm = proxy.npm(None);
    let dir = project(&npm, "app", json!({"internal-lib": "*"}));
    npm.run_in(&dir, &["install"]).ok();
    assert_eq!(installed_version(&dir, "internal-lib"), "1.0.0");
    let versions = npm
        .run(&["view", "internal-lib", "versions", "--json"])
        .ok();
    assert!(!versions.stdout.contains("99.0.0"), "{}", versions.stdout);
    let doc = proxy.get("/internal-lib", None).text().unwrap();
    assert!(!doc.contains("99.0.0"), "{doc}");
    // A version only the uplink has is not served either.
    assert_eq!(
        proxy
            .get("/internal-lib/-/internal-lib-99.0.0.tgz", None)
            .status(),
        404
    );
    // The @acme scope is owned here: the uplink's @acme/x does not exist here.
    assert_eq!(proxy.get("/@acme%2fx", None).status(), 404);
    npm.run(&["view", "@acme/x"]).fails_with("E404");
    // An unpublished local name stays local (its history is kept).
    alice.run(&["unpublish", "internal-lib", "--force"]).ok();
    assert_eq!(proxy.get("/internal-lib", None).status(), 404);
    // Writes on a proxied name never reach the uplink: the name is not local.
    let dist_tag = alice.run(&["dist-tag", "add", "shadow-me@1.0.0", "beta"]);
    assert_ne!(dist_tag.status, 0, "{}", dist_tag.all());
    let up_doc: Value = upstream.get("/shadow-me", None).json().unwrap();
    assert!(up_doc["dist-tags"].get("beta").is_none());
}

#[test]
fn young_versions_are_held_back_and_latest_moves_back() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    let up_npm = upstream.npm(Some(&up_token));
    let now = {
        use tessera::clock::Clock;
        upstream.clock.now_ms()
    };
    upstream.clock.set_ms(now - 10 * DAY_MS);
    publish_with(&up_npm, "cool-lib", "1.0.0", json!({}));
    publish_with(&up_npm, "fresh-lib", "1.0.0", json!({}));
    upstream.clock.set_ms(now);
    publish_with(&up_npm, "cool-lib", "1.1.0", json!({}));
    publish_with(&up_npm, "fresh-lib", "1.1.0", json!({}));

    // Copies stay fresh for longer than the test's clock moves: what makes a held-back
    // version appear below is its age alone, not a refresh from the uplink.
    let s = settings(&format!(
        "min_release_age = \"3d\"\n[[uplinks]]\nname = \"up\"\nurl = \"{}\"\n\
         timeout = \"2s\"\nmax_age = \"7d\"\n[[routes]]\npattern = \"fresh-*\"\n\
         uplink = \"up\"\nmin_release_age = \"0\"\n",
        upstream.url
    ));
    let proxy = TestServer::builder().config(move |c| c.uplinks = s).start();
    let npm = proxy.npm(None);
    let dir = project(
        &npm,
        "app",
        json!({"cool-lib": "^1.0.0", "fresh-lib": "^1.0.0"}),
    );
    npm.run_in(&dir, &["install"]).ok();
    assert_eq!(installed_version(&dir, "cool-lib"), "1.0.0");
    assert_eq!(installed_version(&dir, "fresh-lib"), "1.1.0");
    let doc: Value = proxy.get("/cool-lib", None).json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert!(doc["versions"].get("1.1.0").is_none());
    assert_eq!(
        proxy.get("/cool-lib/-/cool-lib-1.1.0.tgz", None).status(),
        404
    );
    assert!(
        metric(
            &proxy,
            "tessera_uplink_held_back_versions_total{uplink=\"up\"}"
        ) >= 1
    );
    let fetched = "tessera_uplink_requests_total{uplink=\"up\",result=\"ok\"}";
    let fetches = metric(&proxy, fetched);
    // Two days on, the warm document still holds it back.
    proxy.clock.advance_ms(2 * DAY_MS);
    let doc: Value = proxy.get("/cool-lib", None).json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    // Four days on, the version is old enough: the very next request shows it, in
    // both shapes, though nothing but the clock changed.
    proxy.clock.advance_ms(2 * DAY_MS);
    let (status, source, slim) = packument_at(&proxy.url, "cool-lib", None, true);
    assert_eq!((status, source.as_deref()), (200, Some("uplink up")));
    assert_eq!(slim["dist-tags"]["latest"], "1.1.0");
    assert_eq!(versions_of(&slim), ["1.0.0", "1.1.0"]);
    let doc: Value = proxy.get("/cool-lib", None).json().unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert_eq!(
        metric(&proxy, fetched),
        fetches,
        "the packument was not fetched again"
    );
    assert_eq!(
        proxy.get("/cool-lib/-/cool-lib-1.1.0.tgz", None).status(),
        200
    );
}

// ---- A fault-injecting upstream --------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail500,
    Slow,
    Drop,
    WrongBytes,
}

#[derive(Debug)]
struct StubState {
    mode: Mode,
    requests: HashMap<String, usize>,
    audit_bodies: Vec<Value>,
}

/// A registry that answers from fixed documents, or fails as told.
struct Stub {
    url: String,
    state: Arc<Mutex<StubState>>,
    _runtime: tokio::runtime::Runtime,
}

fn tarball_bytes(name: &str, version: &str) -> Vec<u8> {
    // A real tarball (npm unpacks it): package/package.json and index.js.
    let manifest = json!({"name": name, "version": version, "main": "index.js"}).to_string();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, body) in [
        ("package/package.json", manifest.as_bytes().to_vec()),
        ("package/index.js", b"module.exports = 1;\n".to_vec()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, &body[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn integrity_of(bytes: &[u8]) -> String {
    tessera::npm::integrity::digest(bytes).integrity
}

impl Stub {
    fn start(packages: &[(&str, &str)]) -> Stub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(StubState {
            mode: Mode::Ok,
            requests: HashMap::new(),
            audit_bodies: Vec::new(),
        }));
        let mut docs = HashMap::new();
        let mut tarballs = HashMap::new();
        for (name, version) in packages {
            let bytes = tarball_bytes(name, version);
            let file = format!("/{name}/-/{name}-{version}.tgz");
            let doc = json!({
                "_id": name, "name": name,
                "dist-tags": {"latest": version},
                "versions": {*version: {"name": name, "version": version,
                    "dist": {"tarball": format!("{url}{file}"), "integrity": integrity_of(&bytes)}}},
                "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
                    *version: "2020-01-01T00:00:00.000Z"}
            });
            docs.insert(format!("/{name}"), doc.to_string().into_bytes());
            tarballs.insert(file, bytes);
        }
        let served = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let state = served.clone();
                let docs = docs.clone();
                let tarballs = tarballs.clone();
                tokio::spawn(async move {
                    let _ = answer(socket, state, &docs, &tarballs).await;
                });
            }
        });
        Stub {
            url,
            state,
            _runtime: runtime,
        }
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn requests(&self, path: &str) -> usize {
        *self.state.lock().unwrap().requests.get(path).unwrap_or(&0)
    }
}

async fn answer(
    mut socket: tokio::net::TcpStream,
    state: Arc<Mutex<StubState>>,
    docs: &HashMap<String, Vec<u8>>,
    tarballs: &HashMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts
        .next()
        .unwrap_or("")
        .replace("%2f", "/")
        .replace("%2F", "/");
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mode = {
        let mut s = state.lock().unwrap();
        *s.requests.entry(path.clone()).or_default() += 1;
        s.mode
    };
    let respond = |status: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    let out = match mode {
        Mode::Drop => return Ok(()),
        Mode::Fail500 => respond("500 Internal Server Error", b"{\"error\":\"boom\"}"),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(4)).await;
            respond("500 Internal Server Error", b"{}")
        }
        Mode::Ok | Mode::WrongBytes => {
            if method == "POST" && path == "/-/npm/v1/security/advisories/bulk" {
                let mut plain = Vec::new();
                use std::io::Read;
                let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain);
                let request: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                state.lock().unwrap().audit_bodies.push(request.clone());
                let mut answer = serde_json::Map::new();
                if request.get("vuln-lib").is_some() {
                    answer.insert(
                        "vuln-lib".into(),
                        json!([{"id": 1001, "url": "https://advisories.example/1001",
                            "title": "Prototype pollution in vuln-lib", "severity": "high",
                            "vulnerable_versions": "<2.0.0", "cwe": ["CWE-1321"],
                            "cvss": {"score": 7.5, "vectorString": null}}]),
                    );
                }
                respond("200 OK", Value::Object(answer).to_string().as_bytes())
            } else if let Some(doc) = docs.get(&path) {
                respond("200 OK", doc)
            } else if let Some(bytes) = tarballs.get(&path) {
                if mode == Mode::WrongBytes {
                    let mut wrong = bytes.clone();
                    let last = wrong.len() - 1;
                    wrong[last] ^= 0xff;
                    respond("200 OK", &wrong)
                } else {
                    respond("200 OK", bytes)
                }
            } else {
                respond("404 Not Found", b"{\"error\":\"not found\"}")
            }
        }
    };
    socket.write_all(&out).await?;
    socket.shutdown().await
}

#[test]
fn integrity_mismatches_are_refused_and_failures_serve_stale_copies() {
    let stub = Stub::start(&[("faulty", "1.0.0"), ("spare", "1.0.0"), ("many", "1.0.0")]);
    let proxy = proxy_of(&stub.url, "");

    // Wrong bytes: refused (never stored, never served), counted; npm fails.
    stub.set(Mode::WrongBytes);
    let r = proxy.get("/faulty/-/faulty-1.0.0.tgz", None);
    assert_eq!(r.status(), 502);
    assert!(r.text().unwrap().contains("does not match the integrity"));
    assert_eq!(
        metric(
            &proxy,
            "tessera_uplink_integrity_refused_total{uplink=\"up\"}"
        ),
        1
    );
    let npm = proxy.npm(None);
    let dir = project(&npm, "app", json!({"faulty": "1.0.0"}));
    npm.run_in(&dir, &["install", "--fetch-retries=0"])
        .fails_with("502");
    // The right bytes are then fetched, verified and cached.
    stub.set(Mode::Ok);
    npm.run_in(&dir, &["install"]).ok();
    let before = stub.requests("/faulty/-/faulty-1.0.0.tgz");
    let again = proxy.get("/faulty/-/faulty-1.0.0.tgz", None);
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.bytes().unwrap().to_vec(),
        tarball_bytes("faulty", "1.0.0")
    );
    assert_eq!(
        stub.requests("/faulty/-/faulty-1.0.0.tgz"),
        before,
        "served from the cache"
    );

    // Each failure mode, once the document is stale: the cached copy, marked stale.
    for (i, mode) in [Mode::Fail500, Mode::Slow, Mode::Drop]
        .into_iter()
        .enumerate()
    {
        proxy.clock.advance_ms(10 * 60 * 1000 + i as i64);
        stub.set(mode);
        let r = proxy.get("/faulty", None);
        assert_eq!(r.status(), 200, "{mode:?}");
        assert!(r.headers().get("warning").is_some(), "{mode:?}");
    }
    // Nothing cached and the uplink failing: a clear 502, not a hang or a 500.
    stub.set(Mode::Fail500);
    let r = proxy.get("/spare", None);
    assert_eq!(r.status(), 502);
    assert!(r.text().unwrap().contains("uplink up"));

    // Concurrent misses for one packument make one upstream request.
    stub.set(Mode::Ok);
    let url = format!("{}/many", proxy.url);
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || http().get(url).send().unwrap().status().as_u16())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(stub.requests("/many"), 1);
    // And for one tarball.
    let url = format!("{}/many/-/many-1.0.0.tgz", proxy.url);
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || http().get(url).send().unwrap().bytes().unwrap().to_vec())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), tarball_bytes("many", "1.0.0"));
    }
    assert_eq!(stub.requests("/many/-/many-1.0.0.tgz"), 1);
}

#[test]
fn audit_goes_to_the_uplink_and_is_unavailable_without_one() {
    let stub = Stub::start(&[("vuln-lib", "1.0.0"), ("safe-lib", "1.0.0")]);
    let proxy = proxy_of(&stub.url, "");
    let token = proxy.signup("alice");
    let alice = proxy.npm(Some(&token));
    publish_with(&alice, "mine-lib", "1.0.0", json!({}));
    let npm = proxy.npm(None);
    let dir = project(
        &npm,
        "app",
        json!({"vuln-lib": "1.0.0", "safe-lib": "1.0.0", "mine-lib": "1.0.0"}),
    );
    npm.run_in(&dir, &["install"]).ok();
    let audit = npm.run_in(&dir, &["audit", "--json"]);
    assert_ne!(audit.status, 0, "a vulnerability fails npm audit");
    let report: Value = serde_json::from_str(&audit.stdout).expect("npm audit --json");
    assert_eq!(report["metadata"]["vulnerabilities"]["high"], 1, "{report}");
    let sent = stub.state.lock().unwrap().audit_bodies.clone();
    let last = sent.last().expect("the audit reached the uplink");
    assert!(last.get("vuln-lib").is_some() && last.get("safe-lib").is_some());
    assert!(
        last.get("mine-lib").is_none(),
        "local packages stay here: {last}"
    );

    // Without uplinks: 404, which npm reports as audit being unavailable.
    let plain = TestServer::start();
    let r = http()
        .post(format!("{}/-/npm/v1/security/advisories/bulk", plain.url))
        .json(&json!({"x": ["1.0.0"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn pnpm_and_yarn_install_through_the_proxy() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    let up_npm = upstream.npm(Some(&up_token));
    publish_with(&up_npm, "pm-b", "1.0.1", json!({}));
    publish_with(
        &up_npm,
        "pm-a",
        "2.0.0",
        json!({"dependencies": {"pm-b": "^1.0.0"}}),
    );
    let proxy = proxy_of(&upstream.url, "");
    for client in [Client::Pnpm, Client::Yarn] {
        let Some(c) = ClientRunner::new(client, &proxy.url, None) else {
            continue;
        };
        let dir = c.project(
            &format!("{}-app", client.name()),
            json!({"name": format!("{}-app", client.name()), "version": "1.0.0",
                "dependencies": {"pm-a": "^2.0.0"}}),
        );
        c.install(&dir).ok();
        let a = std::fs::read_to_string(dir.join("node_modules/pm-a/package.json"))
            .unwrap_or_else(|e| panic!("{} did not install pm-a: {e}", client.name()));
        assert!(a.contains("2.0.0"));
        assert!(
            dir.join("node_modules/pm-b/package.json").exists()
                || dir.join("node_modules/.pnpm").exists(),
            "{} installed pm-b",
            client.name()
        );
    }
}

#[test]
fn uplink_settings_are_validated_and_shown_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "min_release_age = \"12h\"\n[[uplinks]]\nname = \"npmjs\"\nurl = \"https://registry.example\"\n\
         token = \"very-secret-upstream-token\"\n[[routes]]\npattern = \"@acme/*\"\nuplink = \"none\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let shown = tessera(
        &[
            "config",
            "show",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(shown.stdout.contains("npmjs"), "{}", shown.stdout);
    assert!(shown.stdout.contains("@acme/*"), "{}", shown.stdout);
    assert!(shown.stdout.contains("12h"), "{}", shown.stdout);
    assert!(!shown.all().contains("very-secret"), "{}", shown.all());
    let flags = tessera(
        &[
            "config",
            "show",
            "--data-dir",
            data.to_str().unwrap(),
            "--uplink",
            "a=http://127.0.0.1:9",
            "--uplink",
            "b=http://127.0.0.1:10",
            "--min-release-age",
            "3d",
        ],
        None,
        &[],
    )
    .ok();
    assert!(flags.stdout.contains("uplink a"), "{}", flags.stdout);
    assert!(flags.stdout.contains("uplink b"), "{}", flags.stdout);
    let env = tessera(
        &["config", "show", "--data-dir", data.to_str().unwrap()],
        None,
        &[(
            "TESSERA_UPLINKS",
            "x=http://127.0.0.1:9,y=http://127.0.0.1:10",
        )],
    )
    .ok();
    assert!(env.stdout.contains("uplink y"), "{}", env.stdout);
    for (args, needle) in [
        (vec!["--uplink", "nourl"], "NAME=URL"),
        (vec!["--uplink", "a=ftp://x"], "http://"),
        (vec!["--min-release-age", "soon"], "min_release_age"),
    ] {
        let mut all = vec!["config", "show", "--data-dir", data.to_str().unwrap()];
        all.extend(args);
        tessera(&all, None, &[]).fails_with(needle);
    }
}

#[test]
fn a_warmed_cache_serves_a_lockfile_with_the_uplink_gone() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    let up_npm = upstream.npm(Some(&up_token));
    publish_with(&up_npm, "warm-b", "1.0.0", json!({}));
    publish_with(
        &up_npm,
        "warm-a",
        "1.0.0",
        json!({"dependencies": {"warm-b": "^1.0.0"}}),
    );
    // The lockfile as a team has it (made against the upstream itself).
    let maker = upstream.npm(None);
    let dir = project(&maker, "app", json!({"warm-a": "^1.0.0"}));
    maker.run_in(&dir, &["install", "--package-lock-only"]).ok();
    let lockfile = dir.join("package-lock.json");

    let proxy = proxy_of(&upstream.url, "");
    let warmed = tessera(
        &[
            "cache",
            "warm",
            lockfile.to_str().unwrap(),
            "--registry",
            &proxy.url,
            "--userconfig",
            maker.userconfig.to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(
        warmed
            .stdout
            .contains("warmed 2 packument(s) and 2 tarball(s)"),
        "{}",
        warmed.all()
    );
    let status = tessera(
        &[
            "uplink",
            "status",
            "--url",
            &proxy.url,
            "--data-dir",
            proxy.dir.path().to_str().unwrap(),
            "--uplink",
            &format!("up={}", upstream.url),
        ],
        None,
        &[],
    )
    .ok();
    assert!(status.stdout.contains("uplink up"), "{}", status.all());
    assert!(
        status.stdout.contains("2 packument(s), 2 tarball(s)"),
        "{}",
        status.all()
    );
    assert!(status.stdout.contains("misses"), "{}", status.all());
    // gc keeps cached tarballs: they are referenced by the cache.
    let gc = tessera(
        &[
            "gc",
            "--grace-period",
            "0s",
            "--data-dir",
            proxy.dir.path().to_str().unwrap(),
        ],
        None,
        &[],
    )
    .ok();
    assert!(gc.stdout.contains("removed 0 unreferenced"), "{}", gc.all());

    // Air-gapped: the uplink is gone, the documents are stale, a fresh npm installs.
    drop(upstream);
    proxy.clock.advance_ms(60 * 60 * 1000);
    let offline = proxy.npm(None);
    let dir2 = offline.dir.path().join("offline-app");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::copy(dir.join("package.json"), dir2.join("package.json")).unwrap();
    std::fs::copy(&lockfile, dir2.join("package-lock.json")).unwrap();
    offline
        .run_in(&dir2, &["ci", "--replace-registry-host=always"])
        .ok();
    assert_eq!(installed_version(&dir2, "warm-b"), "1.0.0");
}

#[test]
fn the_cache_and_the_shield_work_on_postgres() {
    if postgres_url().is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set TESSERA_TEST_DATABASE_URL"
        );
        return;
    }
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    let up_npm = upstream.npm(Some(&up_token));
    publish_with(&up_npm, "pg-b", "1.0.0", json!({}));
    publish_with(
        &up_npm,
        "pg-a",
        "1.0.0",
        json!({"dependencies": {"pg-b": "1.0.0"}}),
    );
    let proxy = proxy_with(&upstream.url, "", true);
    let token = proxy.signup("alice");
    let alice = proxy.npm(Some(&token));
    alice
        .publish("pg-b", "2.0.0", &[])
        .fails_with("already exists on uplink up");
    publish_with(&alice, "pg-local", "1.0.0", json!({}));
    let npm = proxy.npm(None);
    let dir = project(&npm, "app", json!({"pg-a": "1.0.0", "pg-local": "1.0.0"}));
    npm.run_in(&dir, &["install"]).ok();
    assert_eq!(installed_version(&dir, "pg-b"), "1.0.0");
    let counts = proxy
        .block_on(proxy.app.store.uplink_cache_counts())
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].packuments, counts[0].tarballs), (2, 2));
    drop(upstream);
    proxy.clock.advance_ms(10 * 60 * 1000);
    let again = proxy.npm(None);
    let dir2 = project(&again, "app2", json!({"pg-a": "1.0.0"}));
    again.run_in(&dir2, &["install"]).ok();
}

#[test]
fn proxied_packages_pass_the_same_access_decision() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    publish_with(
        &upstream.npm(Some(&up_token)),
        "gated-lib",
        "1.0.0",
        json!({}),
    );
    let text = format!("[[uplinks]]\nname = \"up\"\nurl = \"{}\"\n", upstream.url);
    let s = settings(&text);
    let proxy = TestServer::builder()
        .config(move |c| {
            c.uplinks = s;
            c.anonymous_read = false;
        })
        .start();
    let login = proxy.signup("alice");
    let tarball = "/gated-lib/-/gated-lib-1.0.0.tgz";
    // A closed registry: anonymous reads of proxied packages are refused like any read.
    assert_eq!(proxy.get("/gated-lib", None).status(), 401);
    assert_eq!(proxy.get(tarball, None).status(), 401);
    assert_eq!(proxy.get("/gated-lib", Some(&login)).status(), 200);
    assert_eq!(proxy.get(tarball, Some(&login)).status(), 200);
    // A token limited to other addresses.
    let limited = token_of(&proxy.create_token(
        &login,
        "alice",
        json!({"readonly": true, "cidr_whitelist": ["10.0.0.0/8"]}),
    ));
    assert_eq!(proxy.get("/gated-lib", Some(&limited)).status(), 401);
    assert_eq!(proxy.get(tarball, Some(&limited)).status(), 401);
    // An expired token (login tokens last 30 days).
    proxy.clock.advance_ms(31 * DAY_MS);
    assert_eq!(proxy.get("/gated-lib", Some(&login)).status(), 401);
    assert_eq!(proxy.get(tarball, Some(&login)).status(), 401);
}

// ---- The warm read path and the shield ---------------------------------------------

/// Publishes `name@version` over HTTP as npm would (public, also when scoped).
fn put_public(url: &str, token: &str, name: &str, version: &str) {
    let mut body = crate::rules::publish_body(name, version);
    body["access"] = json!("public");
    let r = http()
        .put(format!("{url}/{}", name.replace('/', "%2f")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "publish {name}@{version} on {url}");
}

/// One packument GET: status, `x-tessera-source`, and the body (`Null` when not JSON).
fn packument_at(
    url: &str,
    name: &str,
    token: Option<&str>,
    abbreviated: bool,
) -> (u16, Option<String>, Value) {
    let mut r = http().get(format!("{url}/{}", name.replace('/', "%2f")));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if abbreviated {
        r = r.header("accept", "application/vnd.npm.install-v1+json");
    }
    let r = r.send().unwrap();
    let source = r
        .headers()
        .get("x-tessera-source")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), source, r.json().unwrap_or(Value::Null))
}

fn versions_of(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_name_that_becomes_local_is_never_served_from_the_warm_upstream_copy() {
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    put_public(&upstream.url, &up_token, "shade-lib", "1.0.0");
    put_public(&upstream.url, &up_token, "@newco/lib", "1.0.0");
    let proxy = proxy_of(
        &upstream.url,
        "[[routes]]\npattern = \"shade-*\"\nuplink = \"up\"\nallow_shadowing = true\n",
    );
    let alice = proxy.signup("alice");
    let hit = "tessera_uplink_cache_total{uplink=\"up\",result=\"hit\"}";

    // Warm: both documents, both shapes, anonymous and with a token.
    for name in ["shade-lib", "@newco/lib"] {
        for token in [None, Some(alice.as_str())] {
            for abbreviated in [false, true] {
                let (status, source, doc) = packument_at(&proxy.url, name, token, abbreviated);
                assert_eq!(status, 200, "{name}");
                assert_eq!(source.as_deref(), Some("uplink up"), "{name}");
                assert_eq!(versions_of(&doc), ["1.0.0"], "{name}");
            }
        }
    }
    let hits = metric(&proxy, hit);
    let (_, source, _) = packument_at(&proxy.url, "shade-lib", Some(&alice), false);
    assert_eq!(source.as_deref(), Some("uplink up"));
    assert_eq!(metric(&proxy, hit), hits + 1, "a warm read is a cache hit");
    // A client's validator of the upstream copy: 304 while it is what is served.
    let upstream_etag = proxy.get("/shade-lib", None).headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let revalidate = || {
        proxy
            .request(reqwest::Method::GET, "/shade-lib", None)
            .header("if-none-match", &upstream_etag)
            .send()
            .unwrap()
    };
    assert_eq!(revalidate().status(), 304);

    // A local publish of the name: the very next request gets the local document,
    // in both shapes, anonymous or not.
    put_public(&proxy.url, &alice, "shade-lib", "5.0.0");
    let changed = revalidate();
    assert_eq!(
        changed.status(),
        200,
        "the upstream copy's ETag still matched"
    );
    assert!(changed.headers().get("x-tessera-source").is_none());
    for (token, abbreviated) in [(Some(alice.as_str()), true), (None, false)] {
        let (status, source, doc) = packument_at(&proxy.url, "shade-lib", token, abbreviated);
        assert_eq!(status, 200);
        assert_eq!(source, None, "served from the uplink after a local publish");
        assert_eq!(versions_of(&doc), ["5.0.0"]);
    }
    let (_, _, full) = packument_at(&proxy.url, "shade-lib", None, false);
    assert_eq!(full["_tessera"]["source"], "local");
    // Its tarballs are the local ones too: the uplink's version is not here.
    assert_eq!(
        proxy
            .get("/shade-lib/-/shade-lib-1.0.0.tgz", Some(&alice))
            .status(),
        404
    );

    // A new account named like the scope owns it: the scope is local from the next
    // request on, with nothing published in it yet.
    let newco = proxy.signup("newco");
    let (status, source, _) = packument_at(&proxy.url, "@newco/lib", Some(&alice), true);
    assert_eq!((status, source), (404, None));
    put_public(&proxy.url, &newco, "@newco/lib", "2.0.0");
    let (status, source, doc) = packument_at(&proxy.url, "@newco/lib", None, false);
    assert_eq!((status, source), (200, None));
    assert_eq!(versions_of(&doc), ["2.0.0"]);
}

#[test]
fn a_local_publish_on_one_instance_applies_to_the_next_proxied_read_on_another() {
    let Some(db) = crate::scale::need_postgres() else {
        return;
    };
    let upstream = TestServer::start();
    let up_token = upstream.signup("upper");
    put_public(&upstream.url, &up_token, "@twin/lib", "1.0.0");
    put_public(&upstream.url, &up_token, "twin-other", "1.0.0");
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let servers = crate::scale::instances(
        2,
        &db,
        dir.path(),
        blobs.to_str().unwrap(),
        &[("TESSERA_UPLINKS", format!("up={}", upstream.url))],
    );
    let (a, b) = (servers[0].url.clone(), servers[1].url.clone());
    let reader = crate::scale::signup(&a, "reader");
    // Warm on A (and on B, so both have the document in memory).
    for url in [&a, &b] {
        for _ in 0..3 {
            let (status, source, doc) = packument_at(url, "@twin/lib", Some(&reader), true);
            assert_eq!((status, source.as_deref()), (200, Some("uplink up")));
            assert_eq!(versions_of(&doc), ["1.0.0"]);
        }
    }
    // The scope's owner appears on B: A's next read is local (nothing there yet).
    let twin = crate::scale::signup(&b, "twin");
    let (status, source, _) = packument_at(&a, "@twin/lib", Some(&reader), true);
    assert_eq!((status, source), (404, None));
    // Warm again through a name that stays proxied, then publish on B.
    let (_, source, _) = packument_at(&a, "twin-other", None, false);
    assert_eq!(source.as_deref(), Some("uplink up"));
    put_public(&b, &twin, "@twin/lib", "2.0.0");
    for abbreviated in [true, false] {
        let (status, source, doc) = packument_at(&a, "@twin/lib", Some(&reader), abbreviated);
        assert_eq!((status, source), (200, None));
        assert_eq!(versions_of(&doc), ["2.0.0"]);
    }
    // The other name is still proxied, from memory.
    let (status, source, _) = packument_at(&a, "twin-other", Some(&reader), false);
    assert_eq!((status, source.as_deref()), (200, Some("uplink up")));
}
