//! What the `tessera` binary prints: tables stay aligned whatever their cells hold,
//! and a reader that stops reading (`| head`) ends a command quietly.

use serde_json::json;
use std::process::{Command, Stdio};

use crate::harness::{Npm, TestServer, tessera};

/// `tessera ARGS --registry … --userconfig …` as the npm user `npm` is logged in.
fn client_args<'a>(npm: &'a Npm, userconfig: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend([
        "--registry",
        npm.registry.as_str(),
        "--userconfig",
        userconfig,
    ]);
    all
}

/// Runs the binary with its standard output a pipe nobody reads any more.
fn into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env_remove("TESSERA_LISTEN")
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("tessera runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn token_list_columns_stay_aligned_with_long_range_lists() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let long: Vec<String> = (0..12)
        .map(|i| format!("2001:db8:{i:x}:{:x}::/64", 4096 + i))
        .chain((0..6).map(|i| format!("198.51.{i}.0/24")))
        .collect();
    server.create_token(
        &login,
        "alice",
        json!({"name": "ci with many runners", "cidr_whitelist": long}),
    );
    server.create_token(
        &login,
        "alice",
        json!({"name": "one range", "readonly": true, "cidr_whitelist": ["127.0.0.1/32"]}),
    );
    let npm = server.npm(Some(&login));
    let userconfig = npm.userconfig.to_str().unwrap().to_owned();
    let out = tessera(
        &client_args(&npm, &userconfig, &["token", "list"]),
        None,
        &[],
    )
    .ok()
    .stdout;
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    let created = header.find("CREATED").expect("CREATED column");
    let cidr = header.find("CIDR").expect("CIDR column");
    let mut rows = 0;
    for line in &lines[1..] {
        // Columns counted in characters (the masked token holds an ellipsis).
        let chars: Vec<char> = line.chars().collect();
        let at = |col: usize| chars.get(col..).unwrap_or(&[]).iter().collect::<String>();
        if line.starts_with(' ') {
            // A continuation line carries one more range in the CIDR column only.
            assert_eq!(
                chars.iter().take_while(|c| **c == ' ').count(),
                cidr,
                "a continuation line starts in the CIDR column:\n{out}"
            );
            assert!(chars.len() <= created, "and nothing after it:\n{out}");
        } else {
            rows += 1;
            assert!(
                at(created).starts_with("20"),
                "CREATED lines up in every row:\n{out}"
            );
        }
    }
    assert_eq!(rows, 3, "two new tokens and the login token:\n{out}");
    for range in &long {
        assert!(out.contains(range.as_str()), "{range} listed:\n{out}");
    }
}

#[test]
fn printing_commands_end_quietly_when_the_reader_goes_away() {
    let server = TestServer::start();
    let login = server.signup("alice");
    for _ in 0..3 {
        server.create_token(&login, "alice", json!({"cidr_whitelist": ["10.0.0.0/8"]}));
    }
    let npm = server.npm(Some(&login));
    let userconfig = npm.userconfig.to_str().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let commands: Vec<Vec<&str>> = vec![
        client_args(&npm, &userconfig, &["token", "list", "--json"]),
        client_args(&npm, &userconfig, &["token", "list"]),
        client_args(&npm, &userconfig, &["whoami"]),
        client_args(&npm, &userconfig, &["org", "list"]),
        vec!["config", "show", "--data-dir", &data_dir],
    ];
    for args in commands {
        let (status, stderr) = into_closed_pipe(&args);
        assert!(
            status.success() && stderr.is_empty(),
            "tessera {} into a closed pipe: {status}, stderr {stderr:?}",
            args.join(" ")
        );
    }
    // Through a real shell pipeline as well.
    let line = format!(
        "{} token list --json --registry {} --userconfig {} | head -n 1",
        env!("CARGO_BIN_EXE_tessera"),
        npm.registry,
        userconfig
    );
    let out = Command::new("sh")
        .args(["-c", &line])
        .output()
        .expect("sh runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
