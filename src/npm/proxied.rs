//! Packuments read from an uplink, made into the documents Tessera serves: versions
//! younger than the release cooldown left out (and `latest` moved back to the newest
//! eligible version), tarball links pointing at this registry, and a `_tessera` field
//! that says where the package comes from. Pure: the caller passes the time.

use serde_json::{Map, Value, json};

use super::packument::iso_time;

/// Parses npm's ISO-8601 times (`2024-01-01T00:00:00.000Z`) to unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// How an upstream document is rendered here.
#[derive(Debug, Clone)]
pub struct Rendering<'a> {
    pub name: &'a str,
    /// This registry's public base URL (tarball links).
    pub base: &'a str,
    pub uplink: &'a str,
    pub now_ms: i64,
    /// Zero: no cooldown.
    pub min_age_ms: i64,
}

/// The two documents served for one proxied package, and what the cooldown did.
#[derive(Debug, Clone)]
pub struct Proxied {
    pub full: Value,
    pub abbreviated: Value,
    pub modified_ms: i64,
    /// Versions left out by the cooldown.
    pub held_back: Vec<String>,
    /// When the next held-back version becomes eligible (the rendering changes then).
    pub next_change_ms: Option<i64>,
    /// Versions served.
    pub versions: usize,
}

/// Why an upstream document cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyDocError {
    #[error("the uplink's document for {0} is not a package document")]
    Malformed(String),
    #[error(
        "every version of {0} is younger than the minimum release age; none can be installed yet"
    )]
    AllHeldBack(String),
}

/// When `version` was published upstream, from `time`.
pub fn published_ms(upstream: &Value, version: &str) -> Option<i64> {
    upstream
        .get("time")
        .and_then(|t| t.get(version))
        .and_then(Value::as_str)
        .and_then(parse_time)
}

/// Whether `version` has passed the cooldown. A version without a publish time is
/// held back while a cooldown is on: its age cannot be known.
pub fn eligible(upstream: &Value, version: &str, now_ms: i64, min_age_ms: i64) -> bool {
    if min_age_ms <= 0 {
        return true;
    }
    published_ms(upstream, version).is_some_and(|t| now_ms.saturating_sub(t) >= min_age_ms)
}

/// The tarball link Tessera serves for `name@version`.
pub fn tarball_url(base: &str, name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    format!(
        "{}/{name}/-/{bare}-{version}.tgz",
        base.trim_end_matches('/')
    )
}

/// What the upstream says about one version's tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDist {
    pub tarball: String,
    /// `dist.integrity`, else `dist.shasum` as a `sha1-` SRI; `None` when neither.
    pub integrity: Option<String>,
}

/// `dist` of `version` in an upstream document.
pub fn upstream_dist(upstream: &Value, version: &str) -> Option<UpstreamDist> {
    let dist = upstream.get("versions")?.get(version)?.get("dist")?;
    let tarball = dist.get("tarball")?.as_str()?.to_owned();
    let integrity = dist
        .get("integrity")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let hexed = dist.get("shasum")?.as_str()?;
            let raw = hex::decode(hexed).ok()?;
            use base64::Engine;
            Some(format!(
                "sha1-{}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        });
    Some(UpstreamDist { tarball, integrity })
}

fn semver(v: &str) -> Option<nodejs_semver::Version> {
    nodejs_semver::Version::parse(v).ok()
}

/// Renders an upstream full document for serving here.
pub fn render(upstream: &Value, r: &Rendering<'_>) -> Result<Proxied, ProxyDocError> {
    let malformed = || ProxyDocError::Malformed(r.name.to_owned());
    let source = upstream.as_object().ok_or_else(malformed)?;
    let versions_in = source
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(malformed)?;
    let mut held_back = Vec::new();
    let mut next_change_ms: Option<i64> = None;
    let mut versions = Map::new();
    for (v, manifest) in versions_in {
        // A version that is not valid semver never reaches a client (it could not
        // be installed, and it goes into a URL).
        if !super::name::valid_version(v) || !manifest.is_object() {
            continue;
        }
        if !eligible(upstream, v, r.now_ms, r.min_age_ms) {
            held_back.push(v.clone());
            if let Some(t) = published_ms(upstream, v) {
                let at = t.saturating_add(r.min_age_ms);
                next_change_ms = Some(next_change_ms.map_or(at, |n| n.min(at)));
            }
            continue;
        }
        let mut m = manifest.clone();
        if let Some(dist) = m.get_mut("dist").and_then(Value::as_object_mut) {
            dist.insert(
                "tarball".into(),
                Value::String(tarball_url(r.base, r.name, v)),
            );
        }
        versions.insert(v.clone(), m);
    }
    if versions.is_empty() && !versions_in.is_empty() {
        return Err(ProxyDocError::AllHeldBack(r.name.to_owned()));
    }
    let mut tags = Map::new();
    if let Some(t) = source.get("dist-tags").and_then(Value::as_object) {
        for (tag, v) in t {
            if let Some(v) = v.as_str().filter(|v| versions.contains_key(*v)) {
                tags.insert(tag.clone(), Value::String(v.to_owned()));
            }
        }
    }
    if !tags.contains_key("latest") {
        // The newest eligible version: the highest stable one not above the upstream's
        // `latest` (else the highest of all).
        let upstream_latest = source
            .get("dist-tags")
            .and_then(|t| t.get("latest"))
            .and_then(Value::as_str)
            .and_then(semver);
        let parsed: Vec<(nodejs_semver::Version, &String)> = versions
            .keys()
            .filter_map(|k| semver(k).map(|s| (s, k)))
            .collect();
        let pick = parsed
            .iter()
            .filter(|(s, _)| !s.is_prerelease() && upstream_latest.as_ref().is_none_or(|l| s <= l))
            .max_by(|a, b| a.0.cmp(&b.0))
            .or_else(|| parsed.iter().max_by(|a, b| a.0.cmp(&b.0)));
        if let Some((_, v)) = pick {
            tags.insert("latest".into(), Value::String((*v).clone()));
        }
    }
    let mut times = Map::new();
    if let Some(t) = source.get("time").and_then(Value::as_object) {
        for (k, v) in t {
            if k == "created" || k == "modified" || k == "unpublished" || versions.contains_key(k) {
                times.insert(k.clone(), v.clone());
            }
        }
    }
    let modified_ms = times
        .get("modified")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .unwrap_or(0);
    let tessera = json!({"source": "uplink", "uplink": r.uplink});
    let mut full = source.clone();
    full.remove("_attachments");
    full.insert("_id".into(), Value::String(r.name.to_owned()));
    full.insert("name".into(), Value::String(r.name.to_owned()));
    full.insert("dist-tags".into(), Value::Object(tags.clone()));
    full.insert("versions".into(), Value::Object(versions.clone()));
    full.insert("time".into(), Value::Object(times));
    full.insert("_tessera".into(), tessera);
    let mut slim_versions = Map::new();
    for (v, m) in &versions {
        let mut slim = Map::new();
        if let Some(obj) = m.as_object() {
            for key in super::packument::ABBREVIATED_FIELDS {
                if let Some(value) = obj.get(*key) {
                    slim.insert((*key).into(), value.clone());
                }
            }
            if !slim.contains_key("hasInstallScript")
                && obj.get("scripts").is_some_and(|s| {
                    ["preinstall", "install", "postinstall"]
                        .iter()
                        .any(|k| s.get(*k).is_some())
                })
            {
                slim.insert("hasInstallScript".into(), Value::Bool(true));
            }
        }
        slim_versions.insert(v.clone(), Value::Object(slim));
    }
    let abbreviated = json!({
        "name": r.name,
        "modified": iso_time(modified_ms),
        "dist-tags": tags,
        "versions": slim_versions,
    });
    Ok(Proxied {
        versions: versions.len(),
        full: Value::Object(full),
        abbreviated,
        modified_ms,
        held_back,
        next_change_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn upstream(now: i64) -> Value {
        json!({
            "_id": "left-pad", "name": "left-pad", "_rev": "3-x",
            "dist-tags": {"latest": "2.0.0", "next": "3.0.0-rc.1"},
            "versions": {
                "1.0.0": {"name":"left-pad","version":"1.0.0","scripts":{"install":"x"},
                    "dist":{"tarball":"https://up/left-pad/-/left-pad-1.0.0.tgz","shasum":"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"}},
                "1.5.0": {"name":"left-pad","version":"1.5.0",
                    "dist":{"tarball":"https://up/x.tgz","integrity":"sha512-abc"}},
                "2.0.0": {"name":"left-pad","version":"2.0.0",
                    "dist":{"tarball":"https://up/y.tgz","integrity":"sha512-def"}},
                "3.0.0-rc.1": {"name":"left-pad","version":"3.0.0-rc.1",
                    "dist":{"tarball":"https://up/z.tgz","integrity":"sha512-ghi"}},
                "../../etc": {"name":"left-pad","version":"../../etc"}
            },
            "time": {
                "created": iso_time(now - 30 * DAY), "modified": iso_time(now - 1000),
                "1.0.0": iso_time(now - 30 * DAY), "1.5.0": iso_time(now - 10 * DAY),
                "2.0.0": iso_time(now - 1000), "3.0.0-rc.1": iso_time(now - 2000)
            }
        })
    }

    fn rendering(now: i64, min_age_ms: i64) -> Rendering<'static> {
        Rendering {
            name: "left-pad",
            base: "http://t:1/",
            uplink: "npmjs",
            now_ms: now,
            min_age_ms,
        }
    }

    #[test]
    fn without_cooldown_everything_is_served_with_local_links() {
        let now = 1_800_000_000_000;
        let p = render(&upstream(now), &rendering(now, 0)).unwrap();
        assert_eq!(p.versions, 4);
        assert!(p.held_back.is_empty());
        assert_eq!(p.full["dist-tags"]["latest"], "2.0.0");
        assert_eq!(
            p.full["versions"]["1.0.0"]["dist"]["tarball"],
            "http://t:1/left-pad/-/left-pad-1.0.0.tgz"
        );
        assert_eq!(p.full["_tessera"]["uplink"], "npmjs");
        assert_eq!(p.abbreviated["versions"]["1.0.0"]["hasInstallScript"], true);
        assert!(p.abbreviated["versions"]["1.0.0"].get("scripts").is_none());
    }

    #[test]
    fn cooldown_holds_young_versions_back_and_moves_latest() {
        let now = 1_800_000_000_000;
        let p = render(&upstream(now), &rendering(now, 3 * DAY)).unwrap();
        assert_eq!(p.held_back.len(), 2);
        assert_eq!(p.full["dist-tags"]["latest"], "1.5.0");
        assert!(p.full["dist-tags"].get("next").is_none());
        assert!(p.full["versions"].get("2.0.0").is_none());
        assert!(p.full["time"].get("2.0.0").is_none());
        assert_eq!(p.abbreviated["dist-tags"]["latest"], "1.5.0");
        assert_eq!(p.next_change_ms, Some(now - 2000 + 3 * DAY));
        let all = render(&upstream(now), &rendering(now, 100 * DAY)).unwrap_err();
        assert!(matches!(all, ProxyDocError::AllHeldBack(_)));
    }

    #[test]
    fn upstream_dist_falls_back_to_shasum() {
        let now = 1_800_000_000_000;
        let u = upstream(now);
        let d = upstream_dist(&u, "1.0.0").unwrap();
        assert!(d.integrity.unwrap().starts_with("sha1-"));
        assert_eq!(
            upstream_dist(&u, "2.0.0").unwrap().integrity.as_deref(),
            Some("sha512-def")
        );
        assert!(upstream_dist(&u, "9.9.9").is_none());
    }

    #[test]
    fn times_parse() {
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_time("nope"), None);
    }
}
