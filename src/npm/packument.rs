//! Builds the two packument documents npm reads: the full document (`application/json`)
//! and the abbreviated "corgi" (`application/vnd.npm.install-v1+json`).
//!
//! Version manifests are stored without `dist.tarball` and `readme`; the tarball URL
//! is added here from the registry's public base URL, as is the URL of a version's
//! provenance attestations (`dist.attestations.url`).

use serde_json::{Map, Value, json};

/// One published version as stored.
#[derive(Debug, Clone)]
pub struct VersionDoc {
    pub version: String,
    /// The normalised manifest (with `dist.integrity`/`dist.shasum`, without tarball).
    pub manifest: Value,
    pub readme: Option<String>,
    pub published_at_ms: i64,
    pub deprecated: Option<String>,
}

/// Everything a packument is made from.
#[derive(Debug, Clone)]
pub struct PackageDoc {
    pub name: String,
    pub rev: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub dist_tags: Vec<(String, String)>,
    pub maintainers: Vec<(String, String)>,
    /// Names of the users who starred it (rendered as `users`).
    pub stars: Vec<String>,
    /// Oldest first.
    pub versions: Vec<VersionDoc>,
}

/// Formats unix milliseconds as npm's ISO-8601 (`2024-01-01T00:00:00.000Z`).
pub fn iso_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// CouchDB-style revision string: `<n>-<hex>`.
pub fn rev_string(name: &str, rev: i64) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{name}\0{rev}").as_bytes());
    format!("{rev}-{}", hex::encode(&h[..16]))
}

fn tarball_url(base: &str, name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    format!(
        "{}/{name}/-/{bare}-{version}.tgz",
        base.trim_end_matches('/')
    )
}

/// Where npm reads the provenance attestations of `name@version`.
pub fn attestations_url(base: &str, name: &str, version: &str) -> String {
    format!(
        "{}/-/npm/v1/attestations/{name}@{version}",
        base.trim_end_matches('/')
    )
}

fn with_dist(base: &str, name: &str, v: &VersionDoc) -> Value {
    let mut m = v.manifest.clone();
    if let Some(obj) = m.as_object_mut() {
        if let Some(dist) = obj.get_mut("dist").and_then(Value::as_object_mut) {
            dist.insert(
                "tarball".into(),
                Value::String(tarball_url(base, name, &v.version)),
            );
            // Stored with its predicate type only; the URL follows the base.
            if let Some(att) = dist.get_mut("attestations").and_then(Value::as_object_mut) {
                att.insert(
                    "url".into(),
                    Value::String(attestations_url(base, name, &v.version)),
                );
            }
        }
        match &v.deprecated {
            Some(msg) => {
                obj.insert("deprecated".into(), Value::String(msg.clone()));
            }
            None => {
                obj.remove("deprecated");
            }
        }
    }
    m
}

fn latest(doc: &PackageDoc) -> Option<&VersionDoc> {
    let tag = doc
        .dist_tags
        .iter()
        .find(|(t, _)| t == "latest")
        .map(|(_, v)| v);
    tag.and_then(|v| doc.versions.iter().find(|d| &d.version == v))
        .or(doc.versions.last())
}

/// The full document, with `_rev`, `time`, `maintainers` and the hoisted readme.
pub fn full(doc: &PackageDoc, base: &str) -> Value {
    let mut versions = Map::new();
    let mut times = Map::new();
    times.insert("created".into(), iso_time(doc.created_ms).into());
    times.insert("modified".into(), iso_time(doc.modified_ms).into());
    for v in &doc.versions {
        versions.insert(v.version.clone(), with_dist(base, &doc.name, v));
        times.insert(v.version.clone(), iso_time(v.published_at_ms).into());
    }
    let tags: Map<String, Value> = doc
        .dist_tags
        .iter()
        .map(|(t, v)| (t.clone(), Value::String(v.clone())))
        .collect();
    let maintainers: Vec<Value> = doc
        .maintainers
        .iter()
        .map(|(n, e)| json!({"name": n, "email": e}))
        .collect();
    let mut out = Map::new();
    out.insert("_id".into(), doc.name.clone().into());
    out.insert("_rev".into(), rev_string(&doc.name, doc.rev).into());
    out.insert("name".into(), doc.name.clone().into());
    out.insert("dist-tags".into(), Value::Object(tags));
    out.insert("versions".into(), Value::Object(versions));
    out.insert("time".into(), Value::Object(times));
    out.insert("maintainers".into(), Value::Array(maintainers));
    let users: Map<String, Value> = doc
        .stars
        .iter()
        .map(|name| (name.clone(), Value::Bool(true)))
        .collect();
    out.insert("users".into(), Value::Object(users));
    // Where the package comes from (`npm view NAME _tessera`); proxied documents
    // carry the uplink's name here (`npm::proxied`).
    out.insert("_tessera".into(), json!({"source": "local"}));
    if let Some(l) = latest(doc) {
        for key in [
            "description",
            "license",
            "keywords",
            "repository",
            "homepage",
            "bugs",
            "author",
        ] {
            if let Some(value) = l.manifest.get(key) {
                out.insert(key.into(), value.clone());
            }
        }
        out.insert("readme".into(), l.readme.clone().unwrap_or_default().into());
        if let Some(f) = l.manifest.get("readmeFilename") {
            out.insert("readmeFilename".into(), f.clone());
        }
    }
    Value::Object(out)
}

/// Fields of a version manifest kept in the abbreviated document.
pub const ABBREVIATED_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "funding",
    "os",
    "cpu",
    "libc",
    "license",
    "deprecated",
];

/// The abbreviated ("corgi") document used by installs.
pub fn abbreviated(doc: &PackageDoc, base: &str) -> Value {
    let mut versions = Map::new();
    for v in &doc.versions {
        let full = with_dist(base, &doc.name, v);
        let mut slim = Map::new();
        if let Some(obj) = full.as_object() {
            for key in ABBREVIATED_FIELDS {
                if let Some(value) = obj.get(*key) {
                    slim.insert((*key).into(), value.clone());
                }
            }
        }
        versions.insert(v.version.clone(), Value::Object(slim));
    }
    let tags: Map<String, Value> = doc
        .dist_tags
        .iter()
        .map(|(t, v)| (t.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "name": doc.name,
        "modified": iso_time(doc.modified_ms),
        "dist-tags": tags,
        "versions": versions,
    })
}

/// Whether a manifest declares install scripts (npm's `hasInstallScript`).
pub fn has_install_script(manifest: &Value, has_binding_gyp: bool) -> bool {
    let scripts = manifest.get("scripts");
    has_binding_gyp
        || ["preinstall", "install", "postinstall"]
            .iter()
            .any(|s| scripts.and_then(|x| x.get(*s)).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PackageDoc {
        PackageDoc {
            name: "@acme/widget".into(),
            rev: 2,
            created_ms: 0,
            modified_ms: 1_700_000_000_123,
            dist_tags: vec![("latest".into(), "1.0.0".into())],
            maintainers: vec![("alice".into(), "a@example.com".into())],
            stars: vec!["bob".into()],
            versions: vec![VersionDoc {
                version: "1.0.0".into(),
                manifest: json!({"name":"@acme/widget","version":"1.0.0","description":"d",
                    "scripts":{"test":"x"},"dist":{"integrity":"sha512-x","shasum":"ab"}}),
                readme: Some("# hi".into()),
                published_at_ms: 1_700_000_000_000,
                deprecated: Some("old".into()),
            }],
        }
    }

    #[test]
    fn full_document_shape() {
        let d = full(&sample(), "http://h:1/");
        assert_eq!(
            d["versions"]["1.0.0"]["dist"]["tarball"],
            "http://h:1/@acme/widget/-/widget-1.0.0.tgz"
        );
        assert_eq!(d["time"]["modified"], "2023-11-14T22:13:20.123Z");
        assert_eq!(d["readme"], "# hi");
        assert_eq!(d["description"], "d");
        assert_eq!(d["versions"]["1.0.0"]["deprecated"], "old");
        assert!(d["_rev"].as_str().unwrap().starts_with("2-"));
        assert_eq!(d["users"], json!({"bob": true}));
    }

    #[test]
    fn abbreviated_document_drops_scripts() {
        let d = abbreviated(&sample(), "http://h:1");
        assert!(d["versions"]["1.0.0"].get("scripts").is_none());
        assert_eq!(d["versions"]["1.0.0"]["deprecated"], "old");
        assert_eq!(d["dist-tags"]["latest"], "1.0.0");
        assert!(d.get("users").is_none());
    }
}
