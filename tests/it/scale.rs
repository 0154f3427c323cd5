//! Several instances on one PostgreSQL database and one blob store; S3; failures;
//! moving an installation with `tessera migrate-store`.

use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::binary::{Served, serve};
use crate::harness::*;
use crate::rules::publish_body;

/// The S3 endpoint tests use, if one answers.
pub fn s3_endpoint() -> Option<String> {
    let endpoint = std::env::var("TESSERA_TEST_S3_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    match http().get(&endpoint).timeout(Duration::from_secs(2)).send() {
        Ok(_) => Some(endpoint),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI must provide an S3 test server at {endpoint}")
        }
        Err(_) => {
            eprintln!(
                "skipping S3 cases: no S3-compatible server at {endpoint} (run scripts/s3-test-server start)"
            );
            None
        }
    }
}

/// Creates a fresh bucket and returns its name.
pub fn bucket(endpoint: &str) -> String {
    let name = format!(
        "t-{}",
        tessera::crypto::token_format::random_base62(10).to_lowercase()
    );
    let r = http().put(format!("{endpoint}/{name}")).send().unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    name
}

pub fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// A fresh PostgreSQL database for a group of instances.
pub struct Database {
    admin: String,
    pub name: String,
    pub url: String,
}

impl Database {
    fn create() -> Option<Database> {
        let admin = postgres_url()?;
        let name = format!(
            "tessera_s_{}",
            tessera::crypto::token_format::random_base62(10).to_lowercase()
        );
        let out = Command::new("psql")
            .args([&admin, "-qc", &format!("CREATE DATABASE {name}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cut = admin.rfind('/').unwrap();
        let url = format!("{}/{name}", &admin[..cut]);
        Some(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

pub fn need_postgres() -> Option<Database> {
    let db = Database::create();
    if db.is_none() {
        if std::env::var("CI").is_ok() {
            panic!("CI must set TESSERA_TEST_DATABASE_URL");
        }
        eprintln!("skipping: TESSERA_TEST_DATABASE_URL is not set");
    }
    db
}

/// Starts `n` instances sharing a database, a server key and a blob store.
pub(crate) fn instances(
    n: usize,
    db: &Database,
    dir: &std::path::Path,
    blob_store: &str,
    env: &[(&str, String)],
) -> Vec<Served> {
    let key = dir.join("server.key");
    (0..n)
        .map(|i| {
            let data = dir.join(format!("instance-{i}"));
            let args = [
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
                "--database-url",
                &db.url,
                "--server-key-file",
                key.to_str().unwrap(),
                "--blob-store",
                blob_store,
            ];
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            serve(&args, &env)
        })
        .collect()
}

pub fn signup(url: &str, name: &str) -> String {
    let r: Value = http()
        .put(format!("{url}/-/user/org.couchdb.user:{name}"))
        .json(&json!({"name": name, "password": password_of(name), "email": format!("{name}@example.com")}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["token"].as_str().unwrap().to_owned()
}

fn put_package(url: &str, token: &str, name: &str, version: &str) -> u16 {
    http()
        .put(format!("{url}/{}", name.replace('/', "%2f")))
        .bearer_auth(token)
        .json(&publish_body(name, version))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn blobs_work_on_the_folder_and_on_s3() {
    // Folder backend, with `tessera gc` removing an unreferenced blob.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    {
        let served = serve(&["--listen", "127.0.0.1:0", "--data-dir", data], &[]);
        let token = signup(&served.url, "alice");
        let npm = Npm::new(&served.url, Some(&token));
        npm.publish("blob-t", "1.0.0", &[]).ok();
        npm.run(&["install", "blob-t"]).ok();
    }
    // An old orphan goes; a young one (a publish in progress, perhaps) stays.
    let stray = dir.path().join("blobs").join("ab").join("ab".repeat(64));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"orphan").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let young = dir.path().join("blobs").join("cd").join("cd".repeat(64));
    std::fs::create_dir_all(young.parent().unwrap()).unwrap();
    std::fs::write(&young, b"in flight").unwrap();
    let gc = tessera(&["gc", "--data-dir", data], None, &[]).ok();
    assert!(
        gc.stdout.contains("removed 1 unreferenced blob")
            && gc
                .stdout
                .contains("1 unreferenced but younger than 1h kept"),
        "{}",
        gc.stdout
    );
    assert!(!stray.exists());
    assert!(young.exists());
    let served = serve(&["--listen", "127.0.0.1:0", "--data-dir", data], &[]);
    Npm::new(&served.url, None).run(&["install", "blob-t"]).ok();
    drop(served);

    // S3 backend: publish, install, gc.
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = bucket(&endpoint);
    let env = s3_env(&endpoint);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s3dir = tempfile::tempdir().unwrap();
    let store = format!("s3://{bucket}/registry");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        s3dir.path().to_str().unwrap(),
        "--blob-store",
        &store,
    ];
    let served = serve(&args, &env_ref);
    let token = signup(&served.url, "alice");
    let npm = Npm::new(&served.url, Some(&token));
    npm.publish("s3-blob-t", "1.0.0", &[]).ok();
    npm.publish("s3-blob-t", "1.0.1", &[]).ok();
    let consumer = Npm::new(&served.url, None);
    consumer.run(&["install", "s3-blob-t@1.0.0"]).ok();
    assert!(
        consumer
            .work()
            .join("node_modules/s3-blob-t/index.js")
            .exists()
    );
    let ready: Value = http()
        .get(format!("{}/-/ready", served.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        ready,
        json!({"database": true, "blob_store": true, "storage": "ok"})
    );
    npm.run(&["unpublish", "s3-blob-t@1.0.1"]).ok();
    drop(served);
    let gc = tessera(
        &[
            "gc",
            "--data-dir",
            s3dir.path().to_str().unwrap(),
            "--blob-store",
            &store,
        ],
        None,
        &env_ref,
    )
    .ok();
    assert!(gc.stdout.contains("1 in use"), "{}", gc.stdout);
}

#[test]
fn instances_share_packages_tokens_and_two_factor() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (store, env) = match s3_endpoint() {
        Some(endpoint) => (format!("s3://{}", bucket(&endpoint)), s3_env(&endpoint)),
        None => (
            dir.path().join("shared-blobs").to_str().unwrap().to_owned(),
            Vec::new(),
        ),
    };
    let servers = instances(3, &db, dir.path(), &store, &env);
    let (a, b, c) = (&servers[0].url, &servers[1].url, &servers[2].url);
    let login = signup(a, "alice");

    // Publish through one, install through another.
    Npm::new(a, Some(&login))
        .publish("@alice/multi", "1.0.0", &[])
        .ok();
    let consumer = Npm::new(b, Some(&login));
    consumer.run(&["install", "@alice/multi"]).ok();

    // A token made on A works on B and C; revoked through C, refused by A and B at once.
    let created: Value = http()
        .post(format!("{a}/-/npm/v1/tokens"))
        .bearer_auth(&login)
        .json(&json!({"password": password_of("alice"), "name": "shared"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    for url in [a, b, c] {
        assert_eq!(
            http()
                .get(format!("{url}/-/whoami"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    let r = http()
        .delete(format!(
            "{c}/-/npm/v1/tokens/token/{}",
            created["key"].as_str().unwrap()
        ))
        .bearer_auth(&login)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked_at = Instant::now();
    for url in [a, b] {
        assert_eq!(
            http()
                .get(format!("{url}/-/whoami"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    eprintln!(
        "revocation on C to refusal on A and B: {:?}",
        revoked_at.elapsed()
    );

    // A website session made on A is valid on B and C.
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = browser
        .get(format!("{a}/login"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    let pre = cookie(&form, "tessera_csrf").expect("pre-session CSRF cookie");
    let html = form.text().unwrap();
    let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let body = format!(
        "username=alice&password={}&csrf={csrf}",
        password_of("alice")
    );
    let signed_in = browser
        .post(format!("{a}/login"))
        .header("cookie", &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    let session = cookie(&signed_in, "tessera_session").expect("session cookie");
    for url in [b, c] {
        let page = browser
            .get(format!("{url}/settings/tokens"))
            .header("accept", "text/html")
            .header("cookie", &session)
            .send()
            .unwrap();
        assert_eq!(page.status(), 200, "session valid on {url}");
        assert!(
            page.text().unwrap().contains("Login from"),
            "the token list of alice on {url}"
        );
    }

    // 2FA enabled on A is enforced by B; a code used on B is a replay on C.
    let url = http()
        .post(format!("{a}/-/npm/v1/user"))
        .bearer_auth(&login)
        .json(&json!({"tfa": {"mode": "auth-and-writes", "password": password_of("alice")}}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["tfa"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = secret_from_otpauth(&url);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let code = tessera::crypto::totp::code_at(&secret, now());
    let r = http()
        .post(format!("{a}/-/npm/v1/user"))
        .bearer_auth(&login)
        .json(&json!({"tfa": [code]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .put(format!("{b}/@alice%2fmulti"))
        .bearer_auth(&login)
        .json(&publish_body("@alice/multi", "1.0.1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "OTP");
    // The next step's code (one step of drift is accepted), unused so far.
    let code = tessera::crypto::totp::code_at(&secret, now() + 30);
    let with_otp = |url: &str, version: &str| {
        http()
            .put(format!("{url}/@alice%2fmulti"))
            .bearer_auth(&login)
            .header("npm-otp", &code)
            .json(&publish_body("@alice/multi", version))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(with_otp(b, "1.0.1"), 200);
    assert_eq!(
        with_otp(c, "1.0.2"),
        401,
        "the same code on another instance is a replay"
    );
}

#[test]
fn concurrent_writes_across_instances() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("shared-blobs");
    let servers = instances(3, &db, dir.path(), blobs.to_str().unwrap(), &[]);
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let token = signup(&urls[0], "alice");
    assert_eq!(put_package(&urls[0], &token, "fan-t", "0.0.1"), 200);
    // 50 distinct versions over three instances, 10 at a time.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let url = urls[i % 3].clone();
                let token = token.clone();
                s.spawn(move || put_package(&url, &token, "fan-t", &format!("1.0.{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let doc: Value = http()
        .get(format!("{}/fan-t", urls[2]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["versions"].as_object().unwrap().len(), 51);
    // One version through two instances: exactly one wins.
    let pair: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = urls[..2]
            .iter()
            .map(|u| {
                let token = token.clone();
                s.spawn(move || put_package(u, &token, "fan-t", "2.0.0"))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(pair.iter().filter(|s| **s == 200).count(), 1, "{pair:?}");
    // Dist-tag updates through different instances are all kept.
    std::thread::scope(|s| {
        for i in 0..12 {
            let url = urls[i % 3].clone();
            let token = token.clone();
            s.spawn(move || {
                let r = http()
                    .put(format!("{url}/-/package/fan-t/dist-tags/tag{i}"))
                    .bearer_auth(&token)
                    .json(&format!("1.0.{i}"))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
            });
        }
    });
    let tags: Value = http()
        .get(format!("{}/-/package/fan-t/dist-tags", urls[1]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for i in 0..12 {
        assert_eq!(tags[format!("tag{i}")], format!("1.0.{i}"));
    }
}

#[test]
fn stopping_an_instance_mid_traffic_loses_no_acknowledged_write() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("shared-blobs");
    let mut servers = instances(2, &db, dir.path(), blobs.to_str().unwrap(), &[]);
    let a = servers[0].url.clone();
    let b = servers[1].url.clone();
    let token = signup(&a, "alice");
    let acknowledged = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut ok = Vec::new();
            for i in 0..200 {
                let status = put_package(&a, &token, "stop-t", &format!("1.0.{i}"));
                if status == 200 {
                    ok.push(format!("1.0.{i}"));
                } else if status == 0 {
                    break;
                }
            }
            ok
        });
        std::thread::sleep(Duration::from_millis(1500));
        let pid = servers[0].child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        writer.join().unwrap()
    });
    let _ = servers[0].child.wait();
    assert!(!acknowledged.is_empty());
    let doc: Value = http()
        .get(format!("{b}/stop-t"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for v in &acknowledged {
        assert!(
            doc["versions"].get(v).is_some(),
            "acknowledged {v} was lost"
        );
        let tarball = http()
            .get(format!("{b}/stop-t/-/stop-t-{v}.tgz"))
            .send()
            .unwrap();
        assert_eq!(tarball.status(), 200, "tarball of {v}");
    }
    servers.truncate(1);
}

/// A private PostgreSQL cluster this test may stop and start.
pub(crate) struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: String,
    port: u16,
}

impl PrivatePostgres {
    pub(crate) fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())?;
        let dir = tempfile::tempdir().ok()?;
        Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str()?])
            .status()
            .ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = PrivatePostgres {
            dir,
            bin: bin.to_str()?.to_owned(),
            port,
        };
        let data = pg.dir.path().join("data");
        let ok = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{}/initdb", pg.bin),
                "-D",
                data.to_str()?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ])
            .output()
            .ok()?
            .status
            .success();
        if !ok {
            return None;
        }
        pg.ctl("start").then_some(pg)
    }

    pub(crate) fn ctl(&self, action: &str) -> bool {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{}/pg_ctl", self.bin),
                "-D",
                data.to_str().unwrap(),
                "-l",
            ])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "-m", "fast", "-o", &opts, action])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Server connections whose last statement was the authority generation read:
    /// the generation feed's own connection, one per instance.
    pub(crate) fn generation_readers(&self) -> usize {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-Atc", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT generation, %pg_postmaster_start_time()%'"])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a count")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

#[test]
fn a_postgres_restart_fails_cleanly_and_recovers() {
    let Some(pg) = PrivatePostgres::start() else {
        if std::env::var("CI").is_ok() {
            panic!("CI must be able to run a private PostgreSQL (initdb as root via runuser)");
        }
        eprintln!("skipping: cannot start a private PostgreSQL cluster here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            &pg.url(),
        ],
        &[],
    );
    let token = signup(&served.url, "alice");
    assert_eq!(put_package(&served.url, &token, "pg-t", "1.0.0"), 200);
    assert!(pg.ctl("stop"));
    let r = http()
        .get(format!("{}/pg-t", served.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    let ready = http()
        .get(format!("{}/-/ready", served.url))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(pg.ctl("start"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http()
            .get(format!("{}/pg-t", served.url))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {status}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(put_package(&served.url, &token, "pg-t", "1.0.1"), 200);
}

#[test]
fn an_s3_outage_fails_publishes_cleanly() {
    let venv = std::env::var("TESSERA_S3_VENV").unwrap_or_else(|_| "/tmp/tessera-moto".into());
    let moto = format!("{venv}/bin/moto_server");
    if !std::path::Path::new(&moto).exists() {
        if std::env::var("CI").is_ok() {
            panic!("CI must install moto (scripts/s3-test-server start)");
        }
        eprintln!("skipping: moto is not installed (scripts/s3-test-server start)");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let start_moto = || {
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if http().get(&endpoint).send().is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        http().put(format!("{endpoint}/outage")).send().unwrap();
        child
    };
    let mut moto_child = start_moto();
    let env = s3_env(&endpoint);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--blob-store",
            "s3://outage",
        ],
        &env_ref,
    );
    let token = signup(&served.url, "alice");
    assert_eq!(put_package(&served.url, &token, "outage-t", "1.0.0"), 200);
    moto_child.kill().unwrap();
    moto_child.wait().unwrap();
    let r = http()
        .put(format!("{}/outage-t", served.url))
        .bearer_auth(&token)
        .json(&publish_body("outage-t", "1.0.1"))
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    let doc: Value = http()
        .get(format!("{}/outage-t", served.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        doc["versions"].get("1.0.1").is_none(),
        "no version without its tarball"
    );
    let _moto = ScopedChild(start_moto());
    // Once the store is back, publishing works again; a client retries a 503, so the
    // first attempt may still meet the outage's last effects on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = Vec::new();
    loop {
        let status = put_package(&served.url, &token, "outage-t", "1.0.1");
        statuses.push(status);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "a failed publish is a clean 503: {statuses:?}");
        assert!(
            Instant::now() < deadline,
            "publishing did not work again: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let tarball = http()
        .get(format!("{}/outage-t/-/outage-t-1.0.1.tgz", served.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(tarball.status(), 200, "the new version's tarball is served");
}

struct ScopedChild(std::process::Child);

impl Drop for ScopedChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn migrate_store_moves_sqlite_to_postgres() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (login, limited) = {
        let served = serve(&["--listen", "127.0.0.1:0", "--data-dir", data], &[]);
        let login = signup(&served.url, "alice");
        let npm = Npm::new(&served.url, Some(&login));
        npm.publish("@alice/moved", "1.0.0", &[]).ok();
        npm.publish("moved-t", "1.0.0", &[]).ok();
        let limited: Value = http()
            .post(format!("{}/-/npm/v1/tokens", served.url))
            .bearer_auth(&login)
            .json(&json!({"password": password_of("alice"), "readonly": true, "cidr_whitelist": ["127.0.0.1/32"]}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (login, limited["token"].as_str().unwrap().to_owned())
    };
    let out = tessera(
        &[
            "migrate-store",
            "--data-dir",
            data,
            "--to-database-url",
            &db.url,
        ],
        None,
        &[],
    )
    .ok();
    assert!(
        out.stdout.contains("versions         2 row(s)"),
        "{}",
        out.stdout
    );
    let served = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--database-url",
            &db.url,
        ],
        &[],
    );
    let npm = Npm::new(&served.url, Some(&limited));
    npm.run(&["install", "@alice/moved", "moved-t"]).ok();
    npm.publish("moved-t", "1.0.1", &[]).fails_with("E403");
    Npm::new(&served.url, Some(&login))
        .publish("moved-t", "1.0.1", &[])
        .ok();
    // New rows get fresh ids after the copied ones.
    signup(&served.url, "bob");
    let r = http()
        .request(Method::GET, format!("{}/-/whoami", served.url))
        .bearer_auth(&login)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn cookie(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    crate::harness::cookie_of(response, name)
}
