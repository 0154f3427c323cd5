//! Reads and writes the `.npmrc` settings npm uses: `registry` and the nerf-darted
//! `//host[:port]/path/:_authToken`.

use std::path::{Path, PathBuf};

/// The user config path: `--userconfig`, `$NPM_CONFIG_USERCONFIG`, or `~/.npmrc`.
pub fn userconfig_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    for var in ["NPM_CONFIG_USERCONFIG", "npm_config_userconfig"] {
        if let Some(v) = std::env::var_os(var) {
            return PathBuf::from(v);
        }
    }
    dirs::home_dir().unwrap_or_default().join(".npmrc")
}

/// Parsed `key=value` lines (later lines win), with `${VAR}` expanded.
pub fn read(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), expand(v.trim().trim_matches('"'))))
        .collect()
}

fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let var = &rest[start + 2..start + end];
                out.push_str(&std::env::var(var).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `http://host:port/path/` → `//host:port/path/`.
pub fn nerf_dart(registry: &str) -> String {
    let without_scheme = registry.split_once("://").map_or(registry, |(_, r)| r);
    let trimmed = without_scheme.trim_end_matches('/');
    format!("//{trimmed}/")
}

/// Looks up `key` in the parsed lines.
pub fn get<'a>(lines: &'a [(String, String)], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The token saved for `registry`, walking up the path as npm does.
pub fn token_for(lines: &[(String, String)], registry: &str) -> Option<String> {
    let mut dart = nerf_dart(registry);
    loop {
        if let Some(t) = get(lines, &format!("{dart}:_authToken")) {
            return Some(t.to_owned());
        }
        let trimmed = dart.trim_end_matches('/');
        match trimmed.rfind('/') {
            Some(i) if i > 1 => dart = format!("{}/", &trimmed[..i]),
            _ => return None,
        }
    }
}

/// Saves (or replaces) the token for `registry` in the user config.
pub fn save_token(path: &Path, registry: &str, token: &str) -> anyhow::Result<()> {
    let key = format!("{}:_authToken", nerf_dart(registry));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.split_once('=').is_none_or(|(k, _)| k.trim() != key))
        .map(str::to_owned)
        .collect();
    lines.push(format!("{key}={token}"));
    let mut out = lines.join("\n");
    out.push('\n');
    write_private(path, &out)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_by_nerf_dart() {
        let lines = vec![
            ("registry".to_owned(), "http://127.0.0.1:4880/".to_owned()),
            (
                "//127.0.0.1:4880/:_authToken".to_owned(),
                "tsr_x".to_owned(),
            ),
        ];
        assert_eq!(nerf_dart("http://127.0.0.1:4880/"), "//127.0.0.1:4880/");
        assert_eq!(
            token_for(&lines, "http://127.0.0.1:4880/"),
            Some("tsr_x".into())
        );
        assert_eq!(
            token_for(&lines, "http://127.0.0.1:4880/sub/"),
            Some("tsr_x".into())
        );
        assert_eq!(token_for(&lines, "http://other/"), None);
    }
}
