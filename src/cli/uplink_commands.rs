//! `tessera cache warm LOCKFILE` (a client of the registry, like npm: it asks the
//! server for every packument and tarball a lockfile names, so the server's uplink
//! cache holds them) and `tessera uplink status` (operator: the configured uplinks
//! and routes, what the database caches, and the running server's counters read
//! from its `/-/metrics`).

use super::output::outln;
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

use super::ClientArgs;
use super::client::Registry;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Fetch every packument and tarball a package-lock.json names through the
    /// registry, so its uplink cache serves them when the uplink is unreachable.
    Warm(WarmArgs),
}

#[derive(Debug, Args)]
pub struct WarmArgs {
    /// The lockfile (package-lock.json or npm-shrinkwrap.json, lockfileVersion 2 or 3).
    lockfile: std::path::PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    client: ClientArgs,
}

/// The registry packages of a lockfile: (name, version), sorted, without links,
/// workspaces, git, file and remote-tarball dependencies.
pub fn lockfile_packages(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let lock: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the lockfile is not JSON: {e}"))?;
    let packages = lock
        .get("packages")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the lockfile has no \"packages\" section (lockfileVersion 2 or 3 is needed; \
                 run npm install with npm 7 or later)"
            )
        })?;
    let mut out = BTreeSet::new();
    for (path, entry) in packages {
        let Some(at) = path.rfind("node_modules/") else {
            continue; // the root project or a workspace folder
        };
        if entry.get("link").and_then(serde_json::Value::as_bool) == Some(true) {
            continue;
        }
        let Some(version) = entry.get("version").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let resolved = entry
            .get("resolved")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if !(resolved.is_empty()
            || resolved.starts_with("http://")
            || resolved.starts_with("https://"))
        {
            continue; // git, file
        }
        // An alias (`"x": "npm:real@1"`) installs under x; `name` is the real one.
        let name = entry
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&path[at + "node_modules/".len()..]);
        if nodejs_semver::Version::parse(version).is_err() {
            continue;
        }
        out.insert((name.to_owned(), version.to_owned()));
    }
    Ok(out.into_iter().collect())
}

/// `tessera cache warm`.
pub async fn warm(args: WarmArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.lockfile)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.lockfile.display()))?;
    let packages = lockfile_packages(&text)?;
    let registry = Registry::from_args(&args.client)?;
    let names: BTreeSet<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    enum Job<'a> {
        Doc(&'a str),
        Tarball(&'a str, &'a str),
    }
    let jobs: Vec<Job<'_>> = names
        .iter()
        .map(|n| Job::Doc(n))
        .chain(packages.iter().map(|(n, v)| Job::Tarball(n, v)))
        .collect();
    let total = jobs.len();
    let tty = std::io::stderr().is_terminal();
    let registry = &registry;
    let mut results = futures_util::stream::iter(jobs)
        .map(|job| async move {
            let (what, path, accept) = match job {
                Job::Doc(n) => (n.to_owned(), n.replace('/', "%2f"), "application/json"),
                Job::Tarball(n, v) => {
                    let bare = n.rsplit('/').next().unwrap_or(n);
                    (format!("{n}@{v}"), format!("{n}/-/{bare}-{v}.tgz"), "*/*")
                }
            };
            let result = registry.fetch(&path, accept).await;
            (matches!(job, Job::Doc(_)), what, result)
        })
        .buffer_unordered(args.concurrency.max(1));
    let (mut docs, mut tarballs, mut bytes, mut done) = (0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    while let Some((is_doc, what, result)) = results.next().await {
        done += 1;
        match result {
            Ok((status, size)) if status.is_success() => {
                bytes += size;
                if is_doc {
                    docs += 1;
                } else {
                    tarballs += 1;
                }
            }
            Ok((status, _)) => failures.push(format!("{what}: {status}")),
            Err(e) => failures.push(format!("{what}: {e:#}")),
        }
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} {what:<40.40}",
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        } else if done % 50 == 0 || done == total {
            eprintln!("{done}/{total} fetched");
        }
    }
    if tty {
        eprintln!();
    }
    outln!(
        "warmed {docs} packument(s) and {tarballs} tarball(s) ({} KiB) through {}; {} failed",
        bytes / 1024,
        registry.base,
        failures.len()
    )?;
    for f in &failures {
        outln!("  failed: {f}")?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} of {total} requests failed", failures.len())
    }
}

#[derive(Debug, Subcommand)]
pub enum UplinkCommand {
    /// The uplinks and routes, what is cached, and the running server's counters.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The running server's base URL, for its counters [default: public_url, else
    /// http://<listen>].
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    server: super::operator::ServerArgs,
}

/// Reads `tessera_uplink_*{uplink="NAME",…} value` lines.
fn counters(metrics: &str, uplink: &str) -> Vec<(String, f64)> {
    let needle = format!("uplink=\"{uplink}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("tessera_uplink_") && l.contains(&needle))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn find(c: &[(String, f64)], metric: &str, result: Option<&str>) -> f64 {
    c.iter()
        .filter(|(k, _)| {
            k.starts_with(metric) && result.is_none_or(|r| k.contains(&format!("result=\"{r}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

/// `tessera uplink status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let config = args.server.resolve()?;
    let u = config.uplinks.clone();
    if u.uplinks.is_empty() {
        outln!("no uplinks configured (--uplink NAME=URL, TESSERA_UPLINKS or [[uplinks]])")?;
        return Ok(());
    }
    let url = args
        .url
        .clone()
        .or_else(|| config.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let metrics = async {
        let r = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(format!("{}/-/metrics", url.trim_end_matches('/')))
            .send()
            .await?
            .error_for_status()?;
        Ok::<_, anyhow::Error>(r.text().await?)
    }
    .await;
    let app = super::operator::open_app(&args.server).await?;
    let cached = app.store.uplink_cache_counts().await;
    app.shutdown().await;
    let cached = cached?;
    outln!(
        "min_release_age: {}",
        if u.min_release_age.is_zero() {
            "0 (off)".to_owned()
        } else {
            humantime::format_duration(u.min_release_age).to_string()
        }
    )?;
    for r in &u.routes {
        outln!(
            "route {} -> {}{}{}",
            r.pattern.as_str(),
            match r.target {
                crate::config::RouteTarget::Uplink(i) => u.uplinks[i].name.as_str(),
                crate::config::RouteTarget::None => "none (local only)",
            },
            r.min_release_age
                .map(|d| format!(", min_release_age {}", humantime::format_duration(d)))
                .unwrap_or_default(),
            if r.allow_shadowing {
                ", allow_shadowing"
            } else {
                ""
            }
        )?;
    }
    outln!("other names -> {}", u.uplinks[0].name)?;
    for up in &u.uplinks {
        outln!()?;
        outln!("uplink {} ({})", up.name, up.url)?;
        outln!(
            "  timeout {}, max_age {}, cache_tarballs {}",
            humantime::format_duration(up.timeout),
            humantime::format_duration(up.max_age),
            up.cache_tarballs
        )?;
        let c = cached.iter().find(|c| c.uplink == up.name);
        outln!(
            "  cached: {} packument(s), {} tarball(s) ({} KiB)",
            c.map_or(0, |c| c.packuments),
            c.map_or(0, |c| c.tarballs),
            c.map_or(0, |c| c.tarball_bytes) / 1024
        )?;
        match &metrics {
            Ok(text) => {
                let c = counters(text, &up.name);
                let requests = find(&c, "tessera_uplink_requests_total", None);
                let latency = find(&c, "tessera_uplink_request_seconds_sum", None);
                outln!(
                    "  requests: {} ok, {} not modified, {} not found, {} failed; mean latency {:.1} ms",
                    find(&c, "tessera_uplink_requests_total", Some("ok")),
                    find(&c, "tessera_uplink_requests_total", Some("not_modified")),
                    find(&c, "tessera_uplink_requests_total", Some("not_found")),
                    find(&c, "tessera_uplink_requests_total", Some("error")),
                    if requests > 0.0 {
                        latency * 1000.0 / requests
                    } else {
                        0.0
                    }
                )?;
                outln!(
                    "  cache: {} hits, {} misses, {} stale serves",
                    find(&c, "tessera_uplink_cache_total", Some("hit")),
                    find(&c, "tessera_uplink_cache_total", Some("miss")),
                    find(&c, "tessera_uplink_cache_total", Some("stale")),
                )?;
                outln!(
                    "  integrity refusals: {}; versions held back: {}",
                    find(&c, "tessera_uplink_integrity_refused_total", None),
                    find(&c, "tessera_uplink_held_back_versions_total", None),
                )?;
            }
            Err(e) => outln!("  counters: the server at {url} did not answer ({e:#})")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lockfile_packages_skip_links_git_and_root() {
        let lock = r#"{"lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/a":{"version":"1.0.0","resolved":"https://r/a/-/a-1.0.0.tgz"},
            "node_modules/a/node_modules/@s/b":{"version":"2.0.0","resolved":"https://r/@s/b/-/b-2.0.0.tgz"},
            "node_modules/alias":{"name":"real","version":"3.0.0","resolved":"https://r/real/-/real-3.0.0.tgz"},
            "node_modules/linked":{"link":true,"resolved":"packages/linked"},
            "node_modules/g":{"version":"1.0.0","resolved":"git+ssh://git@h/x.git#abc"}
        }}"#;
        let p = super::lockfile_packages(lock).unwrap();
        assert_eq!(
            p,
            vec![
                ("@s/b".to_owned(), "2.0.0".to_owned()),
                ("a".to_owned(), "1.0.0".to_owned()),
                ("real".to_owned(), "3.0.0".to_owned()),
            ]
        );
        assert!(super::lockfile_packages("{}").is_err());
    }
}
