//! Registry signatures with the real `npm audit signatures`.
//!
//! npm first asks Sigstore's TUF repository (`tuf-repo-cdn.sigstore.dev`) for the
//! registry's keys and only falls back to `/-/npm/v1/keys` when that repository
//! answers that it has none (`TUF_FIND_TARGET_ERROR`); without network it fails on
//! DNS instead. So the test stands in for that repository on loopback: an HTTPS
//! `CONNECT` proxy (`HTTPS_PROXY`) that terminates TLS with a certificate from a test
//! CA (`NODE_EXTRA_CA_CERTS`) and serves TUF metadata signed by a test root, which
//! is put in npm's TUF cache first (the Sigstore client only seeds its own root when
//! the cache has none). The test root's targets list nothing, so npm takes its
//! fallback to the registry's keys, as it would on a networked machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::*;

const TUF_HOST: &str = "tuf-repo-cdn.sigstore.dev";

/// OLPC canonical JSON, as `@tufjs/canonical-json` writes it: sorted keys, no
/// spaces, only `"` and `\` escaped.
fn canonical(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", canonical(&json!(k)), canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// A TUF repository with one ECDSA key for every role, whose targets list nothing.
struct TufRepo {
    root: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
}

fn pem_public(key: &SigningKey) -> String {
    let der = key.verifying_key().to_public_key_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

impl TufRepo {
    fn new() -> TufRepo {
        let mut secret = [0u8; 32];
        secret[31] = 7;
        secret[0] = 0x42;
        let key = SigningKey::from_slice(&secret).unwrap();
        let public = json!({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": pem_public(&key)}});
        let keyid = hex::encode(sha2::Sha256::digest(canonical(&public).as_bytes()));
        let sign = |signed: Value| -> Vec<u8> {
            let sig: DerSignature = key.sign(canonical(&signed).as_bytes());
            serde_json::to_vec(&json!({
                "signatures": [{"keyid": keyid, "sig": hex::encode(sig.as_bytes())}],
                "signed": signed,
            }))
            .unwrap()
        };
        let expires = "2099-01-01T00:00:00Z";
        let role = json!({"keyids": [keyid], "threshold": 1});
        let root = sign(json!({
            "_type": "root", "spec_version": "1.0.31", "version": 1, "expires": expires,
            "consistent_snapshot": false,
            "keys": {keyid.clone(): public},
            "roles": {"root": role, "timestamp": role, "snapshot": role, "targets": role},
        }));
        let timestamp = sign(json!({
            "_type": "timestamp", "spec_version": "1.0.31", "version": 1, "expires": expires,
            "meta": {"snapshot.json": {"version": 1}},
        }));
        let snapshot = sign(json!({
            "_type": "snapshot", "spec_version": "1.0.31", "version": 1, "expires": expires,
            "meta": {"targets.json": {"version": 1}},
        }));
        let targets = sign(json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1, "expires": expires,
            "targets": {},
        }));
        TufRepo {
            root,
            files: vec![
                ("/timestamp.json".into(), timestamp),
                ("/snapshot.json".into(), snapshot),
                ("/targets.json".into(), targets),
            ],
        }
    }

    /// Puts the test root where npm's Sigstore client looks for a trusted root.
    fn seed(&self, npm_cache: &Path) {
        let dir = npm_cache.join("_tuf").join(TUF_HOST);
        std::fs::create_dir_all(dir.join("targets")).unwrap();
        std::fs::write(dir.join("root.json"), &self.root).unwrap();
    }
}

/// The stand-in: an HTTPS CONNECT proxy that answers for `TUF_HOST` only.
struct TufProxy {
    port: u16,
    ca_pem_file: tempfile::NamedTempFile,
    /// `host path` of every request seen through the tunnel.
    seen: Arc<Mutex<Vec<String>>>,
}

fn read_head(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            return Some(lines);
        }
        lines.push(line);
    }
}

impl TufProxy {
    fn start(repo: TufRepo) -> TufProxy {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Tessera test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![TUF_HOST.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_pem_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_pem_file.path(), ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(repo.files);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (tls, files, log) = (tls.clone(), files.clone(), log.clone());
                std::thread::spawn(move || tunnel(conn, &tls, &files, &log));
            }
        });
        TufProxy {
            port,
            ca_pem_file,
            seen,
        }
    }
}

fn tunnel(
    conn: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    files: &[(String, Vec<u8>)],
    seen: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    let mut conn = conn;
    let target = head[0].split_whitespace().nth(1).unwrap_or("").to_owned();
    if !head[0].starts_with("CONNECT ") || target != format!("{TUF_HOST}:443") {
        seen.lock().unwrap().push(format!("refused {}", head[0]));
        let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    }
    conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .unwrap();
    let server = rustls::ServerConnection::new(tls.clone()).unwrap();
    let stream = rustls::StreamOwned::new(server, conn);
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_head(&mut reader) {
        let path = head[0].split_whitespace().nth(1).unwrap_or("").to_owned();
        seen.lock().unwrap().push(format!("{TUF_HOST} {path}"));
        let body = files.iter().find(|(p, _)| *p == path).map(|(_, b)| b);
        let response = match body {
            Some(b) => {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    b.len()
                )
                .into_bytes();
                r.extend_from_slice(b);
                r
            }
            None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
        };
        let stream = reader.get_mut();
        if stream.write_all(&response).is_err() || stream.flush().is_err() {
            return;
        }
    }
    let _ = reader.get_mut().read(&mut [0u8; 1]);
}

/// `npm ARGS` in `cwd` through the stand-in, with the npm runner's HOME, config and
/// cache.
fn npm_via_proxy(npm: &Npm, proxy: &TufProxy, cwd: &Path, args: &[&str]) -> Run {
    let output = Command::new("npm")
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", npm.dir.path().join("home"))
        .env("npm_config_userconfig", &npm.userconfig)
        .env("npm_config_cache", npm.dir.path().join("cache"))
        .env("npm_config_registry", &npm.registry)
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("NODE_EXTRA_CA_CERTS", proxy.ca_pem_file.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("npm is installed");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command: format!("npm {}", args.join(" ")),
    }
}

/// Rewrites one stored version's manifest straight in the database (an attacker
/// with write access to it, or a corrupted copy).
fn tamper(server: &TestServer, name: &str, version: &str, f: impl FnOnce(&mut Value)) {
    let url = server.app.config.database_url.as_str().to_owned();
    let (name, version) = (name.to_owned(), version.to_owned());
    server.block_on(async move {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let (id, text): (i64, String) = sqlx::query_as(
            "SELECT v.id, v.manifest FROM versions v JOIN packages p ON p.id = v.package_id \
             WHERE p.name = $1 AND v.version = $2",
        )
        .bind(&name)
        .bind(&version)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let mut manifest: Value = serde_json::from_str(&text).unwrap();
        f(&mut manifest);
        sqlx::query("UPDATE versions SET manifest = $1 WHERE id = $2")
            .bind(manifest.to_string())
            .bind(id)
            .execute(&mut c)
            .await
            .unwrap();
    });
}

fn keys_of(server: &TestServer) -> Vec<Value> {
    let r = server.get("/-/npm/v1/keys", None);
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn dist_of(server: &TestServer, token: &str, name: &str, version: &str) -> Value {
    let r = server.get(&format!("/{}", name.replace('/', "%2f")), Some(token));
    assert_eq!(r.status(), 200, "{name}");
    let doc: Value = r.json().unwrap();
    doc["versions"][version]["dist"].clone()
}

#[test]
fn every_version_is_signed_and_the_keys_endpoint_verifies_it() {
    on_both_databases(|server| {
        let login = server.signup("alice");
        let npm = server.npm(Some(&login));
        npm.publish("@alice/signed", "1.0.0", &[]).ok();
        let keys = keys_of(&server);
        assert_eq!(keys.len(), 1, "{keys:?}");
        let key = &keys[0];
        assert_eq!(key["keytype"], "ecdsa-sha2-nistp256");
        assert_eq!(key["scheme"], "ecdsa-sha2-nistp256");
        assert!(key["expires"].is_null());
        let spki = base64::engine::general_purpose::STANDARD
            .decode(key["key"].as_str().unwrap())
            .unwrap();
        assert_eq!(key["keyid"], tessera::crypto::registry_key::keyid_of(&spki));
        let dist = dist_of(&server, &login, "@alice/signed", "1.0.0");
        let sig = &dist["signatures"][0];
        assert_eq!(sig["keyid"], key["keyid"]);
        let message = format!(
            "@alice/signed@1.0.0:{}",
            dist["integrity"].as_str().unwrap()
        );
        assert!(tessera::crypto::registry_key::verify(
            key["key"].as_str().unwrap(),
            &message,
            sig["sig"].as_str().unwrap()
        ));
        assert!(!tessera::crypto::registry_key::verify(
            key["key"].as_str().unwrap(),
            &message.replace("1.0.0", "1.0.1"),
            sig["sig"].as_str().unwrap()
        ));
        // The abbreviated document carries them too (npm installs read it).
        let corgi: Value = server
            .request(Method::GET, "/@alice%2fsigned", Some(&login))
            .header("accept", "application/vnd.npm.install-v1+json")
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            corgi["versions"]["1.0.0"]["dist"]["signatures"],
            dist["signatures"]
        );
        // The secret half is stored sealed: neither its bytes nor their base64 are in
        // the data directory (the SQLite database included).
        let secret = server
            .block_on(tessera::domain::signing::active_key(&server.app))
            .unwrap()
            .secret_bytes();
        let data = server.data_dir_bytes();
        assert!(!data.windows(32).any(|w| w == secret));
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(!data.windows(b64.len()).any(|w| w == b64.as_bytes()));
    });
}

#[test]
fn npm_audit_signatures_verifies_every_package_and_reports_tampering() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let publisher = server.npm(Some(&login));
    publisher.publish("@alice/one", "1.0.0", &[]).ok();
    publisher.publish("two-pkg", "1.0.0", &[]).ok();
    // A version from before signing existed: its stored manifest has no signature,
    // and the registry signs it when it renders the document.
    publisher.publish("two-pkg", "1.1.0", &[]).ok();
    tamper(&server, "two-pkg", "1.1.0", |m| {
        m["dist"].as_object_mut().unwrap().remove("signatures");
    });
    let r = server
        .request(
            Method::PUT,
            "/-/package/two-pkg/dist-tags/legacy",
            Some(&login),
        )
        .json(&json!("1.1.0"))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert!(dist_of(&server, &login, "two-pkg", "1.1.0")["signatures"][0]["sig"].is_string());

    let npm = server.npm(Some(&login));
    let project = npm.work().join("app");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        json!({"name": "app", "version": "1.0.0", "dependencies": {"@alice/one": "1.0.0", "two-pkg": "1.1.0"}}).to_string(),
    )
    .unwrap();
    npm.run_in(&project, &["install"]).ok();

    let repo = TufRepo::new();
    repo.seed(&npm.dir.path().join("cache"));
    let proxy = TufProxy::start(repo);
    let verified = npm_via_proxy(&npm, &proxy, &project, &["audit", "signatures"]);
    let text = verified.all();
    assert_eq!(
        verified.status,
        0,
        "{text}\nproxy saw: {:?}",
        proxy.seen.lock().unwrap()
    );
    assert!(
        text.contains("2 packages have verified registry signatures"),
        "{text}"
    );
    assert!(text.contains("Fetching directly from"), "{text}");
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.ends_with("/targets.json")),
        "the TUF stand-in was not consulted: {seen:?}"
    );

    // A rotated key: new versions are signed with the new one, the old one stays
    // listed with its expiry, and everything still verifies.
    let data = server.dir.path().to_str().unwrap().to_owned();
    let rotated = tessera(&["keys", "rotate", "--data-dir", &data], None, &[]).ok();
    assert!(rotated.stdout.contains("expired now"), "{}", rotated.stdout);
    let keys = keys_of(&server);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k["expires"].is_string()));
    let active = keys.iter().find(|k| k["expires"].is_null()).unwrap();
    publisher.publish("two-pkg", "1.2.0", &[]).ok();
    assert_eq!(
        dist_of(&server, &login, "two-pkg", "1.2.0")["signatures"][0]["keyid"],
        active["keyid"]
    );
    let listed = tessera(&["keys", "list", "--data-dir", &data], None, &[]).ok();
    assert!(listed.stdout.contains("active"), "{}", listed.stdout);
    let still = npm_via_proxy(&npm, &proxy, &project, &["audit", "signatures"]);
    assert!(
        still
            .all()
            .contains("2 packages have verified registry signatures"),
        "{}",
        still.all()
    );

    // Tampered documents: a changed integrity, and a signature taken from another
    // version. Both are reported invalid.
    let other_sig = dist_of(&server, &login, "two-pkg", "1.2.0")["signatures"].clone();
    tamper(&server, "@alice/one", "1.0.0", |m| {
        m["dist"]["integrity"] = json!(format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 64])
        ));
    });
    tamper(&server, "two-pkg", "1.1.0", |m| {
        m["dist"]["signatures"] = other_sig;
    });
    for name in ["@alice/one", "two-pkg"] {
        let r = server
            .request(
                Method::PUT,
                &format!("/-/package/{}/dist-tags/seen", name.replace('/', "%2f")),
                Some(&login),
            )
            .json(&json!(if name == "two-pkg" { "1.1.0" } else { "1.0.0" }))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let refused = npm_via_proxy(&npm, &proxy, &project, &["audit", "signatures"]);
    let text = refused.all();
    assert_ne!(refused.status, 0, "{text}");
    assert!(
        text.contains("2 packages have invalid registry signatures"),
        "{text}"
    );
    assert!(
        text.contains("@alice/one@1.0.0") && text.contains("two-pkg@1.1.0"),
        "{text}"
    );
}
