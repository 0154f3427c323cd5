//! Micro-benchmarks of the authentication hot path:
//!
//! - `token/parse_and_hash`: format + checksum check and the keyed hash (no I/O);
//! - `access/decide/*`: the pure access decision for a few type × action cases;
//! - `token/authenticate_sqlite`: a full bearer-token check against a real SQLite
//!   store (hash, lookup of the token joined with its owner, admission), as requests
//!   run it: the lookup is answered by the store's read cache after the first one;
//! - `token/lookup_cached` and `token/lookup_uncached`: that lookup alone, from the
//!   read cache and from the database (what the first request after a write pays);
//! - `signing/sign_version` and `scan/tokens_per_mib`: a registry signature, and the
//!   publish-time secret scan of one MiB of text.
//!
//! `cargo bench --bench token_check`. Set `TESSERA_BENCH_DATA_DIR` to a data dir
//! written by `cargo run --release --example scale_gen` to run the store check
//! against a large store (a user `bench-micro` and its token are added to it).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::app::App;
use tessera::cidr::ClientAddr;
use tessera::clock::SystemClock;
use tessera::config::Config;
use tessera::config::SecretString;
use tessera::crypto::token_format::{PlainToken, TokenHashKey};
use tessera::domain::access::{
    Action, Credential, Limits, PackageFacts, PackagePermission, Principal, TfaMode, TokenKind,
    decide,
};
use tessera::domain::auth::authenticate_token;
use tessera::domain::users::{LoginRequest, create_user, password_login};
use tessera::npm::name::PackageName;

fn parse_and_hash(c: &mut Criterion) {
    let key = TokenHashKey([7; 32]);
    let token = PlainToken::generate().expose().to_owned();
    c.bench_function("token/parse_and_hash", |b| {
        b.iter(|| {
            let t = PlainToken::parse(black_box(&token)).expect("valid token");
            black_box(t.hash(&key))
        })
    });
    c.bench_function("token/parse_rejects_bad_checksum", |b| {
        let mut bad = token.clone().into_bytes();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bad).expect("ascii");
        b.iter(|| black_box(PlainToken::parse(black_box(&bad)).is_err()))
    });
}

fn access_decisions(c: &mut Criterion) {
    let name = PackageName::parse("@acme/widget").expect("valid name");
    let token = |kind, limits| Principal {
        credential: Credential::Token { kind, limits },
        tfa: TfaMode::Off,
    };
    let publish = token(TokenKind::Publish, None);
    let read_only = token(TokenKind::ReadOnly, None);
    let granular = token(
        TokenKind::Publish,
        Some(Limits {
            packages: vec!["@acme/other".into()],
            scopes: vec!["acme".into()],
            permission: Some(PackagePermission::ReadWrite),
            ..Limits::default()
        }),
    );
    let automation = Principal {
        credential: Credential::Token {
            kind: TokenKind::Automation,
            limits: None,
        },
        tfa: TfaMode::AuthAndWrites,
    };
    let public = PackageFacts {
        exists: true,
        public: true,
        ..PackageFacts::default()
    };
    let owned = PackageFacts {
        exists: true,
        public: false,
        is_maintainer: true,
        ..PackageFacts::default()
    };
    let cases: [(&str, Option<&Principal>, Action, &PackageFacts); 6] = [
        ("read_public_anonymous", None, Action::ReadPackage, &public),
        (
            "read_public_publish_token",
            Some(&publish),
            Action::ReadPackage,
            &public,
        ),
        (
            "publish_owned_publish_token",
            Some(&publish),
            Action::Publish,
            &owned,
        ),
        (
            "publish_owned_read_only_denied",
            Some(&read_only),
            Action::Publish,
            &owned,
        ),
        (
            "publish_owned_granular_scope",
            Some(&granular),
            Action::Publish,
            &owned,
        ),
        (
            "publish_owned_automation_2fa",
            Some(&automation),
            Action::Publish,
            &owned,
        ),
    ];
    let mut group = c.benchmark_group("access/decide");
    for (label, who, action, facts) in cases {
        group.bench_function(label, |b| {
            b.iter(|| {
                black_box(decide(
                    black_box(who),
                    black_box(action),
                    Some((&name, facts)),
                    true,
                ))
            })
        });
    }
    group.finish();
}

fn authenticate_against_sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("TESSERA_BENCH_DATA_DIR").map(std::path::PathBuf::from);
    let data_dir = dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let password = SecretString::from("benchpassword");
    let (app, token) = runtime.block_on(async {
        let app = App::open(
            Config::for_data_dir(&data_dir),
            Arc::new(SystemClock),
            "http://127.0.0.1:1".into(),
        )
        .await
        .expect("open app");
        let user = match app.store.user_by_name("bench-micro").await.expect("lookup") {
            Some(u) => u,
            None => create_user(&app, "bench-micro", "bench@example.com", &password)
                .await
                .expect("user"),
        };
        // A login token, issued through the same path as `npm login`.
        let created = password_login(
            &app,
            LoginRequest {
                name: &user.name,
                password: &password,
                email: None,
                otp: None,
                ip: ClientAddr::Ip([127, 0, 0, 1].into()),
                client: "micro-benchmark",
            },
        )
        .await
        .expect("token");
        (app, created.plain.expose().to_owned())
    });
    let tokens_in_store = runtime.block_on(app.store.count_tokens()).unwrap_or(0);
    eprintln!(
        "token/authenticate_sqlite: {tokens_in_store} token(s) in the store at {}",
        data_dir.display()
    );
    let ip = ClientAddr::Ip([127, 0, 0, 1].into());
    c.bench_function("token/authenticate_sqlite", |b| {
        b.iter(|| {
            let caller = runtime
                .block_on(authenticate_token(&app, black_box(&token), ip))
                .expect("authenticated");
            black_box(caller.user.id)
        })
    });
    c.bench_function("token/authenticate_sqlite_unknown", |b| {
        let unknown = PlainToken::generate().expose().to_owned();
        b.iter(|| {
            black_box(
                runtime
                    .block_on(authenticate_token(&app, black_box(&unknown), ip))
                    .is_err(),
            )
        })
    });
    let hash = PlainToken::parse(&token)
        .expect("a valid token")
        .hash(&app.keys.token_hash);
    let cached = app.store.clone();
    let uncached = app.store.clone().without_read_cache();
    for (label, store) in [
        ("token/lookup_cached", &cached),
        ("token/lookup_uncached", &uncached),
    ] {
        c.bench_function(label, |b| {
            b.iter(|| {
                let found = runtime
                    .block_on(store.token_and_user_by_hash(black_box(hash.as_bytes())))
                    .expect("lookup");
                black_box(found.is_some())
            })
        });
    }
    runtime.block_on(app.shutdown());
}

/// What the token lifecycle adds to a publish and a render: one registry signature
/// (`dist.signatures`), and the secret scan of a file (per MiB of text).
fn lifecycle_costs(c: &mut Criterion) {
    let key = tessera::crypto::registry_key::RegistryKey::generate();
    let message = tessera::crypto::registry_key::message(
        "@acme/widget",
        "1.2.3",
        "sha512-2JtF8yK3xUdAgUNxk6XU6Ci2u7rSXBjiX0DkKbPqTHt6BPo8Vs2PzDYwbKyvqCfRHUtaqTqHSKNzZ8mvkTy/GQ==",
    );
    c.bench_function("signing/sign_version", |b| {
        b.iter(|| black_box(key.sign(black_box(&message))))
    });
    let text: Vec<u8> = "const answer = 42; // tsr_ is not a token here\n"
        .repeat(1024 * 1024 / 48)
        .into_bytes();
    c.bench_function("scan/tokens_per_mib", |b| {
        b.iter(|| {
            let mut scanner = tessera::crypto::token_format::TokenScanner::default();
            let mut n = 0;
            for chunk in text.chunks(64 * 1024) {
                scanner.feed(black_box(chunk), &mut |_| n += 1);
            }
            black_box(n)
        })
    });
}

criterion_group!(
    benches,
    parse_and_hash,
    access_decisions,
    authenticate_against_sqlite,
    lifecycle_costs
);
criterion_main!(benches);
