//! The read cache on PostgreSQL, shared by the requests of one instance and checked
//! against the database's authority generation: a change answered by one instance is
//! applied to every request that starts afterwards on any other, under load; a write
//! that commits while readers are in flight is seen exactly from its commit; and no
//! cached answer is given while the database cannot be reached.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::rules::publish_body;
use crate::scale::{PrivatePostgres, instances, need_postgres, signup};

/// What phase `i` of the writer changes: `i % 3` picks the kind, `i / 3` the item.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A token is revoked: requests with it must get 401.
    Revoke,
    /// A public package becomes restricted: the non-maintainer must get 404.
    Restrict,
    /// A new version is published: `latest` must be at least that version.
    Publish,
}

const KINDS: [Kind; 3] = [Kind::Revoke, Kind::Restrict, Kind::Publish];

fn kind_of(phase: usize) -> (Kind, usize) {
    (KINDS[phase % 3], phase / 3)
}

/// How many items of `kind` the first `done` phases changed.
fn changed(kind: Kind, done: usize) -> usize {
    let k = KINDS.iter().position(|x| *x == kind).unwrap();
    (done + 2 - k) / 3
}

fn send(
    client: &reqwest::blocking::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> reqwest::blocking::Response {
    let mut r = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().unwrap()
}

fn publish(client: &reqwest::blocking::Client, url: &str, token: &str, name: &str, v: &str) {
    let r = send(
        client,
        Method::PUT,
        format!("{url}/{}", name.replace('/', "%2f")),
        token,
        Some(publish_body(name, v)),
    );
    assert_eq!(r.status(), 200, "publish {name}@{v}");
}

#[test]
fn a_change_answered_on_one_instance_applies_to_every_later_request_on_another() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let servers = instances(2, &db, dir.path(), blobs.to_str().unwrap(), &[]);
    let (a, b) = (servers[0].url.clone(), servers[1].url.clone());
    let client = http();
    let alice = signup(&a, "alice");
    let bob = signup(&b, "bob");

    const PHASES: usize = 45;
    let per_kind = PHASES / 3 + 1;
    // Tokens to revoke (read-only, alice's), packages to restrict, one package to publish.
    let mut tokens = Vec::new();
    for i in 0..per_kind {
        let r: Value = send(
            &client,
            Method::POST,
            format!("{a}/-/npm/v1/tokens"),
            &alice,
            Some(json!({"password": password_of("alice"), "readonly": true, "name": format!("t{i}")})),
        )
        .json()
        .unwrap();
        tokens.push((
            r["token"].as_str().unwrap().to_owned(),
            r["key"].as_str().unwrap().to_owned(),
        ));
    }
    for i in 0..per_kind {
        publish(&client, &a, &alice, &format!("@alice/vis{i}"), "1.0.0");
        let r = send(
            &client,
            Method::POST,
            format!("{a}/-/package/@alice%2fvis{i}/access"),
            &alice,
            Some(json!({"access": "public"})),
        );
        assert_eq!(r.status(), 200);
    }
    publish(&client, &a, &alice, "hotpkg", "1.0.0");

    // Phases completed and answered (readers read it before they send).
    let done = Arc::new(AtomicUsize::new(0));
    let started_since = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let checked = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(tokens);
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let (b, bob) = (b.clone(), bob.clone());
            let (done, started_since, stop) = (done.clone(), started_since.clone(), stop.clone());
            let (violations, checked, tokens) =
                (violations.clone(), checked.clone(), tokens.clone());
            std::thread::spawn(move || {
                let client = http();
                let mut turn = n;
                while !stop.load(Ordering::SeqCst) {
                    turn += 1;
                    let kind = KINDS[turn % 3];
                    let d = done.load(Ordering::SeqCst);
                    let c = changed(kind, d);
                    // Alternate between the last changed item (checked) and the next
                    // one (warms the cache before it changes).
                    let (item, check) = if turn % 2 == 0 && c > 0 {
                        (c - 1, true)
                    } else {
                        (c, false)
                    };
                    started_since.fetch_add(1, Ordering::SeqCst);
                    let stale = match kind {
                        Kind::Revoke => {
                            let Some((token, _)) = tokens.get(item) else {
                                continue;
                            };
                            let s = send(&client, Method::GET, format!("{b}/hotpkg"), token, None)
                                .status()
                                .as_u16();
                            check && s != 401
                        }
                        Kind::Restrict => {
                            let s = send(
                                &client,
                                Method::GET,
                                format!("{b}/@alice%2fvis{item}"),
                                &bob,
                                None,
                            )
                            .status()
                            .as_u16();
                            check && s != 404
                        }
                        Kind::Publish => {
                            let doc: Value =
                                send(&client, Method::GET, format!("{b}/hotpkg"), &bob, None)
                                    .json()
                                    .unwrap();
                            let latest = doc["dist-tags"]["latest"].as_str().unwrap_or("");
                            let patch: usize = latest.rsplit('.').next().unwrap().parse().unwrap();
                            // Item `c - 1` published 1.0.c.
                            check && patch < c
                        }
                    };
                    if check {
                        checked.fetch_add(1, Ordering::SeqCst);
                    }
                    if stale {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{kind:?} item {item} after {d} phases"));
                    }
                }
            })
        })
        .collect();

    let writer = http();
    for phase in 0..PHASES {
        // Let the readers warm the cache with the item about to change.
        let from = started_since.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while started_since.load(Ordering::SeqCst) < from + 24 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let (kind, item) = kind_of(phase);
        let status = match kind {
            Kind::Revoke => send(
                &writer,
                Method::DELETE,
                format!("{a}/-/npm/v1/tokens/token/{}", tokens[item].1),
                &alice,
                None,
            )
            .status(),
            Kind::Restrict => send(
                &writer,
                Method::POST,
                format!("{a}/-/package/@alice%2fvis{item}/access"),
                &alice,
                Some(json!({"access": "restricted"})),
            )
            .status(),
            Kind::Publish => send(
                &writer,
                Method::PUT,
                format!("{a}/hotpkg"),
                &alice,
                Some(publish_body("hotpkg", &format!("1.0.{}", item + 1))),
            )
            .status(),
        };
        assert_eq!(status, 200, "phase {phase}: {kind:?}");
        // Answered: from here every request that starts must see it.
        done.store(phase + 1, Ordering::SeqCst);
    }
    let from = started_since.load(Ordering::SeqCst);
    while started_since.load(Ordering::SeqCst) < from + 24 {
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let violations = violations.lock().unwrap();
    let checked = checked.load(Ordering::SeqCst);
    eprintln!("checked {checked} requests; {} stale", violations.len());
    assert!(
        checked > 100,
        "the readers checked enough requests: {checked}"
    );
    assert!(
        violations.is_empty(),
        "{} of {checked} requests started after a change's answer did not see it: {:?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
}

/// Runs `sql` statements on one connection of their own and keeps it for later ones.
struct Holder {
    runtime: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
}

impl Holder {
    fn connect(url: &str) -> Holder {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = runtime.block_on(async {
            use sqlx::Connection;
            sqlx::PgConnection::connect(url).await.unwrap()
        });
        Holder { runtime, conn }
    }

    fn run(&mut self, sql: &'static str) {
        let conn = &mut self.conn;
        self.runtime.block_on(async {
            use sqlx::Executor;
            conn.execute(sql).await.unwrap();
        });
    }
}

#[test]
fn a_write_committing_under_readers_is_seen_from_its_commit_on() {
    let Some(db) = need_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let servers = instances(2, &db, dir.path(), blobs.to_str().unwrap(), &[]);
    let (a, b) = (servers[0].url.clone(), servers[1].url.clone());
    let client = http();
    let alice = signup(&a, "alice");
    publish(&client, &a, &alice, "held", "1.0.0");
    let created: Value = send(
        &client,
        Method::POST,
        format!("{a}/-/npm/v1/tokens"),
        &alice,
        Some(json!({"password": password_of("alice"), "readonly": true})),
    )
    .json()
    .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(
            send(&client, Method::GET, format!("{b}/held"), &token, None).status(),
            200
        );
    }

    // Hold the authority row: the revocation on A writes its row and then waits at
    // its commit (the generation bump).
    let mut holder = Holder::connect(&db.url);
    holder.run("BEGIN");
    holder.run("SELECT generation FROM authority WHERE id = 1 FOR UPDATE");
    let revoke = {
        let (a, alice) = (a.clone(), alice.clone());
        std::thread::spawn(move || {
            let status = send(
                &http(),
                Method::DELETE,
                format!("{a}/-/npm/v1/tokens/token/{key}"),
                &alice,
                None,
            )
            .status();
            (status, Instant::now())
        })
    };

    // Readers on B the whole time; each request records when it started and ended.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<(Instant, Instant, u16)>::new()));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, token, stop, log) = (b.clone(), token.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || {
                let client = http();
                while !stop.load(Ordering::SeqCst) {
                    let start = Instant::now();
                    let s = send(&client, Method::GET, format!("{b}/held"), &token, None)
                        .status()
                        .as_u16();
                    log.lock().unwrap().push((start, Instant::now(), s));
                }
            })
        })
        .collect();
    // Until the lock is released the revocation is not committed: B keeps serving.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !revoke.is_finished(),
        "the revocation waits for the row lock"
    );
    let released = Instant::now();
    holder.run("ROLLBACK");
    let (status, answered) = revoke.join().unwrap();
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let log = log.lock().unwrap();
    let before: Vec<_> = log.iter().filter(|(_, end, _)| *end < released).collect();
    let after: Vec<_> = log
        .iter()
        .filter(|(start, _, _)| *start > answered)
        .collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "readers ran on both sides"
    );
    assert!(
        before.iter().all(|(_, _, s)| *s == 200),
        "refused before the revocation committed: {before:?}"
    );
    let stale = after.iter().filter(|(_, _, s)| *s != 401).count();
    assert_eq!(
        stale,
        0,
        "{stale} of {} requests started after the answer were allowed",
        after.len()
    );
}

#[test]
fn no_cached_answer_while_the_database_is_unreachable() {
    let Some(pg) = PrivatePostgres::start() else {
        if std::env::var("CI").is_ok() {
            panic!("CI must be able to run a private PostgreSQL (initdb as root via runuser)");
        }
        eprintln!("skipping: cannot start a private PostgreSQL cluster here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = crate::binary::serve(
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
    let url = served.url.clone();
    let client = http();
    let token = signup(&url, "alice");
    publish(&client, &url, &token, "warm", "1.0.0");
    let paths = ["/warm", "/warm/-/warm-1.0.0.tgz", "/-/whoami"];
    for path in paths {
        for _ in 0..5 {
            let r = send(&client, Method::GET, format!("{url}{path}"), &token, None);
            assert_eq!(r.status(), 200, "{path}");
        }
    }
    // The generation is read over one connection of the feed's own.
    assert_eq!(pg.generation_readers(), 1);
    assert!(pg.ctl("stop"));
    for path in paths {
        let r = send(&client, Method::GET, format!("{url}{path}"), &token, None);
        assert_eq!(
            r.status(),
            503,
            "{path} was answered while the database was down"
        );
    }
    assert!(pg.ctl("start"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = send(&client, Method::GET, format!("{url}/warm"), &token, None).status();
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {s}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Answers alone would not show it (uncached requests answer too): the feed
    // opened a new connection to the restarted server and reads over it again.
    loop {
        let s = send(&client, Method::GET, format!("{url}/warm"), &token, None).status();
        assert_eq!(s, 200);
        if pg.generation_readers() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the generation feed did not reconnect"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
