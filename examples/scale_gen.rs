//! Fills a Tessera data dir with a large store for the scale benchmark, writing
//! through the `Store` (batched transactions), never through HTTP.
//!
//! ```text
//! cargo run --release --example scale_gen -- DATA_DIR [--packages 100000] [--tokens 1000000]
//!     [--users 1000] [--batch 5000]
//! ```
//!
//! Packages are `scale-pkg-NNNNNN` (one version each, all pointing at one stored
//! tarball), owned round-robin by users `scale-user-NNNN`; tokens are publish tokens
//! spread over those users. Prints the insert rates. Run it on an empty data dir;
//! then start `tessera serve --data-dir DATA_DIR` (or the bench with
//! `BENCH_TESSERA_DATA`) and `cargo bench --bench token_check` with
//! `TESSERA_BENCH_DATA_DIR=DATA_DIR`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tessera::app::App;
use tessera::clock::SystemClock;
use tessera::config::Config;
use tessera::crypto::password::hash_password;
use tessera::crypto::token_format::{PlainToken, random_base62};
use tessera::npm::integrity;
use tessera::store::{NewToken, NewVersion, PublishOutcome};

struct Args {
    dir: std::path::PathBuf,
    packages: usize,
    tokens: usize,
    users: usize,
    batch: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        dir: std::path::PathBuf::new(),
        packages: 100_000,
        tokens: 1_000_000,
        users: 1000,
        batch: 5000,
    };
    let mut dir = None;
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> anyhow::Result<usize> {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
                .replace('_', "")
                .parse()
                .map_err(Into::into)
        };
        match a.as_str() {
            "--packages" => out.packages = num("--packages")?,
            "--tokens" => out.tokens = num("--tokens")?,
            "--users" => out.users = num("--users")?.max(1),
            "--batch" => out.batch = num("--batch")?.max(1),
            "-h" | "--help" => {
                println!("scale_gen DATA_DIR [--packages N] [--tokens N] [--users N] [--batch N]");
                std::process::exit(0);
            }
            other if dir.is_none() => dir = Some(std::path::PathBuf::from(other)),
            other => anyhow::bail!("unexpected argument {other:?}"),
        }
    }
    out.dir = dir
        .ok_or_else(|| anyhow::anyhow!("usage: scale_gen DATA_DIR [--packages N] [--tokens N]"))?;
    Ok(out)
}

fn rate(n: usize, start: Instant) -> String {
    let s = start.elapsed().as_secs_f64();
    format!("{n} in {s:.1} s ({:.0}/s)", n as f64 / s.max(1e-9))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let app = App::open(
        Config::for_data_dir(&args.dir),
        Arc::new(SystemClock),
        "http://127.0.0.1:4880".into(),
    )
    .await?;
    let store = &app.store;
    let now = app.now();

    // Users (one password hash shared: hashing is deliberately slow).
    let started = Instant::now();
    let hash = hash_password("scale-password")?;
    let mut user_ids = Vec::with_capacity(args.users);
    for i in 0..args.users {
        let name = format!("scale-user-{i:04}");
        let id = match store.user_by_name(&name).await? {
            Some(u) => u.id,
            None => {
                store
                    .insert_user(&name, &format!("{name}@example.com"), &hash, now)
                    .await?
                    .id
            }
        };
        user_ids.push(id);
    }
    println!("users: {}", rate(args.users, started));

    // One tarball blob that every generated version points at.
    let tarball: &[u8] = b"scale generator placeholder tarball";
    let digests = integrity::digest(tarball);
    app.blobs
        .put(&digests.sha512_hex, Bytes::from_static(tarball))
        .await?;

    // Packages, `batch` per transaction.
    let tags = vec![("latest".to_owned(), "1.0.0".to_owned())];
    let started = Instant::now();
    let mut done = 0;
    while done < args.packages {
        let end = (done + args.batch).min(args.packages);
        let rows: Vec<(String, String)> = (done..end)
            .map(|i| {
                let name = format!("scale-pkg-{i:06}");
                let manifest = serde_json::json!({
                    "name": name, "version": "1.0.0", "description": format!("scale package {i}"),
                    "main": "index.js", "license": "MIT", "_id": format!("{name}@1.0.0"),
                    "dist": {"integrity": digests.integrity, "shasum": digests.shasum, "fileCount": 1, "unpackedSize": tarball.len()},
                })
                .to_string();
                (name, manifest)
            })
            .collect();
        let versions: Vec<NewVersion<'_>> = rows
            .iter()
            .enumerate()
            .map(|(k, (name, manifest))| NewVersion {
                name,
                scope: None,
                access_if_new: "public",
                access_change: None,
                version: "1.0.0",
                manifest,
                readme: Some("# scale package\n"),
                description: Some("scale package"),
                blob_key: &digests.sha512_hex,
                size: tarball.len() as i64,
                integrity: &digests.integrity,
                shasum: &digests.shasum,
                user_id: user_ids[(done + k) % user_ids.len()],
                tags: &tags,
                provenance: None,
                now,
            })
            .collect();
        let outcomes = store.publish_versions(&versions).await?;
        if let Some(bad) = outcomes
            .iter()
            .find(|o| !matches!(o, PublishOutcome::Published { .. }))
        {
            anyhow::bail!(
                "batch at package {done} not published: {bad:?} (run on an empty data dir)"
            );
        }
        done = end;
        if done % 20_000 == 0 || done == args.packages {
            println!("packages: {}", rate(done, started));
        }
    }

    // Tokens, `batch` per transaction.
    let started = Instant::now();
    let mut done = 0;
    while done < args.tokens {
        let end = (done + args.batch).min(args.tokens);
        let rows: Vec<(String, [u8; 32], String, String)> = (done..end)
            .map(|_| {
                let plain = PlainToken::generate();
                (
                    random_base62(24),
                    plain.hash(&app.keys.token_hash).0,
                    plain.display_prefix(),
                    plain.last_four(),
                )
            })
            .collect();
        let tokens: Vec<NewToken<'_>> = rows
            .iter()
            .enumerate()
            .map(|(k, (key, hash, prefix, last_four))| NewToken {
                key,
                user_id: user_ids[(done + k) % user_ids.len()],
                hash,
                display_prefix: prefix,
                last_four,
                name: Some("scale"),
                description: None,
                kind: tessera::domain::access::TokenKind::Publish,
                limits: None,
                cidr: None,
                origin: tessera::domain::access::TokenOrigin::Api,
                now,
                expires_at: None,
            })
            .collect();
        match store.insert_tokens(&tokens).await {
            Ok(()) => done = end,
            // A random key prefix collided with an existing one: draw the batch again.
            Err(tessera::store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        if done % 100_000 == 0 || done == args.tokens {
            println!("tokens: {}", rate(done, started));
        }
    }
    println!("store now holds {} tokens", store.count_tokens().await?);
    app.shutdown().await;
    Ok(())
}
