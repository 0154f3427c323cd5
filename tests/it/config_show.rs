//! `tessera config show`: every setting with its source (a flag whose variable is
//! also set is a flag), and the README's table of settings agrees with the binary.

use std::collections::BTreeMap;
use std::process::Command;

/// Runs the binary with only `env` (and PATH/HOME) in its environment.
fn tessera_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .envs(env.iter().copied())
        .output()
        .expect("tessera runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `key = value  (source)` lines as key → (value, source).
fn shown(stdout: &str) -> BTreeMap<String, (String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(" = ")?;
            let (value, source) = rest.rsplit_once("  (")?;
            Some((
                key.trim().to_owned(),
                (value.to_owned(), source.trim_end_matches(')').to_owned()),
            ))
        })
        .collect()
}

/// The README's settings table: (flag, variable) per row; `None` for "(no flag)".
fn readme_settings() -> Vec<(Option<String>, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // A cell's first code span, first word: "`--uplink NAME=URL` (repeatable)".
            let code = |cell: &str| {
                let word = cell.split('`').nth(1).unwrap_or("");
                word.split_whitespace().next().unwrap_or("").to_owned()
            };
            let var = code(cells.get(2)?);
            if !var.starts_with("TESSERA_") {
                return None;
            }
            let flag = code(cells[1]);
            let flag = flag.starts_with("--").then_some(flag);
            Some((flag, var))
        })
        .collect()
}

#[test]
fn config_show_names_the_source_of_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\nopen_signup = false\nblob_store = \"s3://releases/tarballs\"\n\
             s3_access_key_id = \"AKIDFROMFILE\"\nlisten = \"127.0.0.1:9\"\n",
            dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = file.to_str().unwrap();
    let (ok, stdout, stderr) = tessera_with_env(
        &[
            "config",
            "show",
            "--config",
            cfg,
            "--listen",
            "127.0.0.1:7",
            "--log-format",
            "json",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
        ],
        &[
            // Set as well as the flag: the flag wins and is named as the source.
            ("TESSERA_LISTEN", "127.0.0.1:8"),
            ("TESSERA_PUBLIC_URL", "https://npm.example.com"),
            ("TESSERA_S3_REGION", "eu-west-3"),
            ("TESSERA_S3_SECRET_ACCESS_KEY", "never-printed-secret"),
        ],
    );
    assert!(ok, "{stderr}");
    let rows = shown(&stdout);
    let row = |key: &str| {
        rows.get(key)
            .map(|(v, s)| (v.as_str(), s.as_str()))
            .unwrap_or_else(|| panic!("{key} is shown:\n{stdout}"))
    };
    assert_eq!(row("listen"), ("127.0.0.1:7", "flag"));
    assert_eq!(row("log_format"), ("json", "flag"));
    assert_eq!(row("s3_endpoint"), ("http://127.0.0.1:9000", "flag"));
    assert_eq!(row("public_url"), ("https://npm.example.com", "env"));
    assert_eq!(row("s3_region"), ("eu-west-3", "env"));
    assert_eq!(row("s3_secret_access_key"), ("(set)", "env"));
    assert_eq!(row("open_signup"), ("false", "file"));
    assert_eq!(row("blob_store"), ("s3://releases/tarballs", "file"));
    assert_eq!(row("s3_access_key_id"), ("AKIDFROMFILE", "file"));
    assert_eq!(row("anonymous_read"), ("true", "default"));
    assert_eq!(row("idle_timeout").1, "default");
    assert!(!stdout.contains("never-printed-secret"), "{stdout}");

    // The variable alone is "env"; nothing at all is "default".
    let data = dir.path().to_str().unwrap();
    let (_, stdout, _) = tessera_with_env(
        &["config", "show", "--data-dir", data],
        &[
            ("TESSERA_LISTEN", "127.0.0.1:8"),
            ("TESSERA_LOG_FORMAT", "json"),
        ],
    );
    let rows = shown(&stdout);
    assert_eq!(rows["listen"], ("127.0.0.1:8".into(), "env".into()));
    assert_eq!(rows["log_format"], ("json".into(), "env".into()));
    assert_eq!(rows["data_dir"].1, "flag");
    assert_eq!(rows["s3_region"].1, "default");

    // Every setting in the README's table is shown, has its flag (unless the table
    // says it has none) and reads its variable.
    let settings = readme_settings();
    assert!(settings.len() >= 20, "the README lists the settings");
    let (_, help, _) = tessera_with_env(&["serve", "--help"], &[]);
    for (flag, var) in &settings {
        let key = var.trim_start_matches("TESSERA_").to_ascii_lowercase();
        assert!(
            rows.contains_key(&key),
            "{key} ({var}) in config show:\n{stdout}"
        );
        match flag {
            Some(flag) => {
                assert_eq!(flag, &format!("--{}", key.replace('_', "-")));
                assert!(help.contains(&format!("{flag} ")), "{flag} in serve --help");
                assert!(help.contains(var.as_str()), "{var} in serve --help");
            }
            None => assert_eq!(key, "s3_secret_access_key", "only the secret has no flag"),
        }
    }
    // And config show lists nothing the README leaves out.
    for key in rows.keys() {
        assert!(
            settings
                .iter()
                .any(|(_, var)| var.eq_ignore_ascii_case(&format!("TESSERA_{key}"))),
            "{key} is in the README's table"
        );
    }
}
