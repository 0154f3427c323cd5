use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::harness::*;

/// A `tessera serve` child process.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and waits for its "listening" line.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "TESSERA_LISTEN",
        "TESSERA_DATABASE_URL",
        "TESSERA_DATA_DIR",
        "TESSERA_CONFIG",
        "TESSERA_PUBLIC_URL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("tessera starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        url.starts_with("http://"),
        "unexpected first line: {line:?}"
    );
    Served { child, url }
}

fn ping(url: &str) -> u16 {
    http()
        .get(format!("{url}/-/ping"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn serve_defaults_to_port_4880_and_platform_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap();
    let served = serve(&[], &[("HOME", home_str), ("XDG_DATA_HOME", "")]);
    assert_eq!(served.url, "http://127.0.0.1:4880");
    assert_eq!(ping(&served.url), 200);
    let data = home.path().join(".local/share/tessera");
    assert!(
        data.join("tessera.db").exists(),
        "SQLite database created in {}",
        data.display()
    );
    assert!(data.join("blobs").is_dir());
    assert!(data.join("server.key").exists());
}

#[test]
fn flags_win_over_env_over_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = {:?}\npublic_url = \"http://from-file.example\"\nopen_signup = false\n",
            dir.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // File alone: show reports its values.
    let shown = tessera(&["config", "show", "--config", cfg], None, &[]).ok();
    assert!(
        shown.stdout.contains("127.0.0.1:1") && shown.stdout.contains("(file)"),
        "{}",
        shown.stdout
    );
    // Env over file, flag over env.
    let served = serve(
        &["--config", cfg, "--listen", "127.0.0.1:0"],
        &[
            ("TESSERA_LISTEN", "127.0.0.1:2"),
            ("TESSERA_PUBLIC_URL", "http://from-env.example"),
        ],
    );
    assert_eq!(ping(&served.url), 200);
    let token_response = http()
        .put(format!("{}/-/user/org.couchdb.user:carol", served.url))
        .json(&serde_json::json!({"name": "carol", "password": "carol-password", "email": "c@example.com"}))
        .send()
        .unwrap();
    assert_eq!(
        token_response.status(),
        403,
        "open_signup = false from the file applies"
    );
    let shown = tessera(
        &["config", "show", "--config", cfg],
        None,
        &[("TESSERA_PUBLIC_URL", "http://from-env.example")],
    )
    .ok();
    assert!(
        shown.stdout.contains("http://from-env.example  (env)"),
        "{}",
        shown.stdout
    );
}

#[test]
fn user_add_for_closed_registries_and_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    tessera(
        &[
            "user",
            "add",
            "dave",
            "--email",
            "dave@example.com",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        Some("dave-password\n"),
        &[],
    )
    .ok();
    let served = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--open-signup",
            "false",
        ],
        &[],
    );
    let login = http()
        .put(format!("{}/-/user/org.couchdb.user:dave", served.url))
        .json(&serde_json::json!({"name": "dave", "password": "dave-password"}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 201);
    let token = login.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let npm = Npm::new(&served.url, Some(&token));
    npm.publish("durable-t", "1.0.0", &[]).ok();
    // The embedded database belongs to one serving process (its read cache sees every
    // write); a second `serve` on it is refused, operator commands still work.
    let second = Command::new("timeout")
        .args(["30", env!("CARGO_BIN_EXE_tessera"), "serve"])
        .args(["--listen", "127.0.0.1:0", "--data-dir", data])
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "second serve: {err}");
    assert!(
        err.contains("already served by another `tessera serve`"),
        "{err}"
    );
    tessera(
        &[
            "user",
            "add",
            "erin",
            "--email",
            "erin@example.com",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        Some("erin-password\n"),
        &[],
    )
    .ok();
    // SIGTERM: the server exits cleanly and the acknowledged publish survives.
    let mut served = served;
    let pid = served.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = served.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let again = serve(&["--listen", "127.0.0.1:0", "--data-dir", data], &[]);
    let npm = Npm::new(&again.url, Some(&token));
    let view = npm.run(&["view", "durable-t", "version"]).ok();
    assert_eq!(view.stdout.trim(), "1.0.0");
}

#[test]
fn json_logs_carry_request_ids_and_metrics_count_routes_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(
        http()
            .get(format!("{url}/-/health"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{url}/-/ready"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = http()
        .get(format!("{url}/-/whoami"))
        .bearer_auth("tsr_notarealtoken")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let metrics = http()
        .get(format!("{url}/-/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            "tessera_requests_total{method=\"GET\",route=\"/-/whoami\",status=\"401\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_auth_failures_total{reason=\"malformed_token\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_token_checks_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tessera_request_duration_seconds_bucket"));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let entry = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no JSON log line with request id {id}: {text}"));
    assert_eq!(entry["fields"]["status"], 401);
}
