//! Test harness: a real `tessera` server on an ephemeral port (the same `bind` +
//! `serve` that `main` uses), the one isolated npm runner, HTTP helpers and
//! fixtures. The browser tests use the same server and runner (`web_harness` adds
//! Chromium and async wrappers).

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};
use tessera::app::App;
use tessera::clock::{Clock, ManualClock, SystemClock};
use tessera::config::Config;

/// A running server with its own data directory. Dropping it shuts it down.
pub struct TestServer {
    pub url: String,
    pub port: u16,
    pub app: Arc<App>,
    /// The server's clock: moved by the test (`advance_ms`), unless the server was
    /// started `live` on the system clock.
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    /// The server's runtime, to run async test code beside it (`rt.block_on`).
    pub rt: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    database: Option<(String, String)>,
}

/// A change to the test server's configuration.
type Tweak = Box<dyn FnOnce(&mut Config)>;

/// Options for a test server.
#[derive(Default)]
pub struct Builder {
    postgres: bool,
    live: bool,
    tweak: Option<Tweak>,
}

impl Builder {
    /// Use a fresh PostgreSQL database (requires `TESSERA_TEST_DATABASE_URL`).
    pub fn postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// Run on the system clock (browsers and authenticator codes live in real time).
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    pub fn config(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.tweak = Some(Box::new(f));
        self
    }

    pub fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_data_dir(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut database = None;
        if self.postgres {
            let admin =
                postgres_url().expect("postgres requested without TESSERA_TEST_DATABASE_URL");
            let name = format!(
                "tessera_t_{}",
                tessera::crypto::token_format::random_base62(12).to_lowercase()
            );
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to postgres");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
            });
            config.database_url = replace_db(&admin, &name).into();
            database = Some((admin, name));
        }
        if let Some(f) = self.tweak {
            f(&mut config);
        }
        let clock = Arc::new(ManualClock::default());
        let server_clock: Arc<dyn Clock> = if self.live {
            Arc::new(SystemClock)
        } else {
            clock.clone()
        };
        let (listener, app) = runtime
            .block_on(tessera::server::bind(config, server_clock))
            .expect("server starts");
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let serve_app = app.clone();
        runtime.spawn(async move {
            let _ = tessera::server::serve(listener, serve_app, async {
                let _ = rx.await;
            })
            .await;
            let _ = done_tx.send(());
        });
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            app,
            clock,
            dir,
            rt: runtime.handle().clone(),
            runtime: Some(runtime),
            shutdown: Some(tx),
            done: std::sync::Mutex::new(Some(done_rx)),
            database,
        }
    }
}

fn replace_db(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("database URL has a path");
    format!("{}/{name}{query}", &base[..cut])
}

/// The PostgreSQL URL tests may use, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("TESSERA_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Runs `body` against SQLite and, when configured, PostgreSQL.
pub fn on_both_databases(body: impl Fn(TestServer)) {
    body(TestServer::start());
    if postgres_url().is_some() {
        body(TestServer::builder().postgres().start());
    } else if std::env::var("CI").is_ok() {
        panic!("CI must set TESSERA_TEST_DATABASE_URL so PostgreSQL is covered");
    } else {
        eprintln!("skipping the PostgreSQL run: TESSERA_TEST_DATABASE_URL is not set");
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Builder::default().start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server on the system clock (the website tests).
    pub fn live() -> TestServer {
        Builder::default().live().start()
    }

    /// A server on the system clock with its configuration changed first.
    pub fn start_with(tweak: impl FnOnce(&mut Config) + 'static) -> TestServer {
        Builder::default().live().config(tweak).start()
    }

    /// Creates an account through the domain (as `tessera user add` does).
    pub fn create_user(&self, name: &str, password: &str) {
        self.block_on(tessera::domain::users::create_user(
            &self.app,
            name,
            &format!("{name}@example.com"),
            &password.to_owned().into(),
        ))
        .expect("user created");
    }

    /// Runs a future on the server's runtime (for store inspection).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }

    /// Creates an account through the CouchDB endpoint (as `npm adduser` does) and
    /// returns its login token.
    pub fn signup(&self, name: &str) -> String {
        let response = http()
            .put(format!("{}/-/user/org.couchdb.user:{name}", self.url))
            .json(&json!({"name": name, "password": password_of(name), "email": format!("{name}@example.com"), "type": "user", "roles": []}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "signup of {name}");
        response.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An npm runner logged in with `token` (or anonymous).
    pub fn npm(&self, token: Option<&str>) -> Npm {
        Npm::new(&self.url, token)
    }

    /// A request builder with an optional bearer token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        let mut r = http().request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::blocking::Response {
        self.request(reqwest::Method::GET, path, token)
            .send()
            .unwrap()
    }

    /// Creates a token through the API.
    pub fn create_token(&self, login_token: &str, user: &str, body: Value) -> Value {
        let mut body = body;
        body["password"] = json!(password_of(user));
        let r = self
            .request(reqwest::Method::POST, "/-/npm/v1/tokens", Some(login_token))
            .json(&body)
            .send()
            .unwrap();
        let status = r.status();
        let v: Value = r.json().unwrap();
        assert_eq!(status, 201, "token create: {v}");
        v
    }

    /// Every file under the data directory concatenated (to grep for secrets).
    pub fn data_dir_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        collect(self.dir.path(), &mut out);
        out
    }
}

fn collect(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend(bytes);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.lock().unwrap().take() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(10));
        }
        if let (Some((admin, name)), Some(rt)) = (self.database.take(), self.runtime.as_ref()) {
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// The password fixtures use for `name`.
pub fn password_of(name: &str) -> String {
    format!("{name}-correct-horse")
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().build().unwrap()
}

/// A client whose requests leave from `addr` (any 127.x address works on Linux).
pub fn http_from(addr: IpAddr) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(addr)
        .build()
        .unwrap()
}

/// An isolated npm: its own HOME, userconfig and cache.
pub struct Npm {
    pub dir: tempfile::TempDir,
    pub registry: String,
    pub userconfig: PathBuf,
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.status, 0,
            "command failed: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Run {
        assert_ne!(
            self.status, 0,
            "command unexpectedly succeeded: {}\n{}",
            self.command, self.stdout
        );
        let all = format!("{}\n{}", self.stdout, self.stderr);
        assert!(
            all.contains(needle),
            "expected {needle:?} in output of {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn to_run(command: String, output: Output) -> Run {
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command,
    }
}

/// A command in `cwd` with an empty environment but `PATH`, no colours and no stdin;
/// the runners add the folders and settings of their client.
fn clean_command(program: impl AsRef<std::ffi::OsStr>, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Where an npm client keeps its things, and the one way a test points npm at them:
/// the `.npmrc` it writes and the variables every npm command gets (`Npm`, and the
/// npm side of `ClientRunner`; pnpm and bun read the same `.npmrc`).
pub struct NpmEnv {
    pub home: PathBuf,
    pub userconfig: PathBuf,
    pub cache: PathBuf,
    /// `http://127.0.0.1:PORT/`.
    pub registry: String,
}

impl NpmEnv {
    /// Writes the configuration with `token` saved for the registry (or without any).
    pub fn write_config(&self, token: Option<&str>) {
        let mut text = format!(
            "registry={}\naudit=false\nfund=false\nupdate-notifier=false\n",
            self.registry
        );
        if let Some(t) = token {
            text.push_str(&auth_line(&self.registry, t));
        }
        std::fs::write(&self.userconfig, text).unwrap();
    }

    /// Points `cmd` at these folders and this registry.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("HOME", &self.home)
            .env("npm_config_userconfig", &self.userconfig)
            .env("npm_config_cache", &self.cache)
            .env("npm_config_registry", &self.registry)
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_update_notifier", "false");
    }
}

impl Npm {
    pub fn new(registry: &str, token: Option<&str>) -> Npm {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let userconfig = dir.path().join("npmrc");
        let npm = Npm {
            dir,
            registry: format!("{}/", registry.trim_end_matches('/')),
            userconfig,
        };
        npm.write_config(token);
        npm
    }

    /// This runner's npm environment.
    pub fn env(&self) -> NpmEnv {
        NpmEnv {
            home: self.dir.path().join("home"),
            userconfig: self.userconfig.clone(),
            cache: self.dir.path().join("cache"),
            registry: self.registry.clone(),
        }
    }

    fn write_config(&self, token: Option<&str>) {
        self.env().write_config(token);
    }

    /// Replaces the saved token.
    pub fn set_token(&self, token: Option<&str>) {
        self.write_config(token);
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `npm ARGS` in `cwd`, with a clean environment pointing at this runner's
    /// HOME, userconfig and cache.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = clean_command("npm", cwd, args);
        self.env().apply(&mut cmd);
        cmd
    }

    /// Runs `npm ARGS` in `cwd` (default: the work folder).
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let command = format!("npm {} (in {})", args.join(" "), cwd.display());
        let output = self.command(cwd, args).output().expect("npm is installed");
        to_run(command, output)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.work(), args)
    }

    /// Writes a package folder and returns its path.
    pub fn package(&self, name: &str, version: &str, extra: Value) -> PathBuf {
        let dir = self
            .dir
            .path()
            .join("packages")
            .join(format!("{}-{version}", name.replace('/', "__")));
        std::fs::create_dir_all(&dir).unwrap();
        let mut manifest = json!({"name": name, "version": version, "description": format!("{name} for tests"), "main": "index.js", "license": "MIT"});
        if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        std::fs::write(
            dir.join("package.json"),
            serde_json::to_string_pretty(&manifest).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("index.js"),
            format!("module.exports = {:?};\n", format!("{name}@{version}")),
        )
        .unwrap();
        std::fs::write(
            dir.join("README.md"),
            format!("# {name}\n\nVersion {version}.\n"),
        )
        .unwrap();
        dir
    }

    /// `npm publish` of a fresh package folder.
    pub fn publish(&self, name: &str, version: &str, flags: &[&str]) -> Run {
        let dir = self.package(name, version, json!({}));
        let mut args = vec!["publish"];
        args.extend_from_slice(flags);
        self.run_in(&dir, &args)
    }
}

/// `http://127.0.0.1:1234/` → `//127.0.0.1:1234/`.
pub fn tessera_nerf(registry: &str) -> String {
    let rest = registry.split_once("://").map_or(registry, |(_, r)| r);
    format!("//{}/", rest.trim_end_matches('/'))
}

/// The `.npmrc` line that gives `token` to the registry (npm, pnpm and bun read it).
pub fn auth_line(registry: &str, token: &str) -> String {
    format!("{}:_authToken={token}\n", tessera_nerf(registry))
}

/// The plain token in a token-create response.
pub fn token_of(created: &Value) -> String {
    created["token"].as_str().unwrap().to_owned()
}

/// `tessera ARGS` as the user `npm` is logged in as (its registry and userconfig).
pub fn tessera_as(npm: &Npm, args: &[&str]) -> Run {
    let userconfig = npm.userconfig.to_str().unwrap().to_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--registry",
        npm.registry.as_str(),
        "--userconfig",
        &userconfig,
    ]);
    tessera(&all, None, &[])
}

/// Runs the built `tessera` binary.
pub fn tessera(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args)
        .env_remove("TESSERA_LISTEN")
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_DATA_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("tessera binary");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    to_run(format!("tessera {}", args.join(" ")), output)
}

/// Makes 127.0.0.2 and 127.0.0.3 interface addresses so npm's `--local-address`
/// accepts them. Returns false (with a printed reason) when that is not possible.
pub fn extra_loopback_addresses() -> bool {
    for addr in ["127.0.0.2/32", "127.0.0.3/32"] {
        let out = Command::new("ip")
            .args(["addr", "add", addr, "dev", "lo"])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("File exists") => {}
            Ok(o) => {
                eprintln!(
                    "skipping: cannot add {addr} to lo: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return false;
            }
            Err(e) => {
                eprintln!("skipping: `ip` is not available: {e}");
                return false;
            }
        }
    }
    true
}

/// The current TOTP code for a secret at the server's clock.
pub fn otp_now(server: &TestServer, secret: &[u8]) -> String {
    use tessera::clock::Clock;
    tessera::crypto::totp::code_at(secret, (server.clock.now_ms() / 1000) as u64)
}

/// Decodes the base32 secret of an otpauth URL.
pub fn secret_from_otpauth(url: &str) -> Vec<u8> {
    let secret = url
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    secret_from_base32(secret)
}

/// Decodes a base32 TOTP secret (as an authenticator app would read it).
pub fn secret_from_base32(text: &str) -> Vec<u8> {
    totp_rs::Secret::try_from_base32(text)
        .expect("base32 secret")
        .as_ref()
        .to_vec()
}

/// Runs `npm ARGS` on a pseudo-terminal, answering prompts: each `(pattern, reply)`
/// waits for the regex `pattern` in the output, then types `reply` and Enter.
/// Returns the exit status and everything printed.
pub fn npm_on_pty(npm: &Npm, args: &[&str], dialogue: &[(&str, &str)]) -> (i32, String) {
    const DRIVER: &str = r#"
import os, pty, sys, time, re, select, fcntl, termios, struct, json
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp("npm", ["npm"] + spec["args"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
out = b""
def read_some(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        return False
    if not chunk:
        return False
    out += chunk
    return True
pos = 0
for pattern, reply in spec["dialogue"]:
    end = time.time() + 60
    while True:
        m = re.compile(pattern.encode()).search(out, pos)
        if m:
            pos = m.end()
            break
        if time.time() > end or not read_some(0.5):
            sys.stdout.write(out.decode(errors="replace"))
            sys.stdout.write("\n[driver] no match for %r\n" % pattern)
            os.kill(pid, 9)
            sys.exit(90)
    os.write(fd, reply.encode() + b"\r")
while read_some(5):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let driver = npm.dir.path().join("pty-driver.py");
    std::fs::write(&driver, DRIVER).unwrap();
    let mut all_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all_args.extend([
        "--userconfig".to_owned(),
        npm.userconfig.to_str().unwrap().to_owned(),
        "--cache".to_owned(),
        npm.dir.path().join("cache").to_str().unwrap().to_owned(),
    ]);
    let spec = json!({"args": all_args, "dialogue": dialogue});
    let output = Command::new("python3")
        .arg(&driver)
        .arg(spec.to_string())
        .current_dir(npm.work())
        .env("HOME", npm.dir.path().join("home"))
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A website session driven over plain HTTP (no browser needed for these checks).
pub struct WebSession<'a> {
    server: &'a TestServer,
    client: reqwest::blocking::Client,
    cookie: String,
}

pub fn cookie_of(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    set_cookie_in(r.headers(), name)
}

/// `name=value` of the cookie `name` that these response headers set.
pub fn set_cookie_in(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The CSRF token of the (first) form on a page.
pub fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    page[at + 19..].split('"').next().unwrap().to_owned()
}

/// Signs `name` in on the website over plain HTTP; `otp` answers the second step when
/// the account has 2FA.
pub fn http_session<'a>(server: &'a TestServer, name: &str) -> WebSession<'a> {
    http_session_with_otp(server, name, || None)
}

/// As `http_session`, with a one-time password for accounts that have 2FA.
pub fn http_session_with_otp<'a>(
    server: &'a TestServer,
    name: &str,
    otp: impl FnOnce() -> Option<String>,
) -> WebSession<'a> {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/login", server.url))
        .header("accept", "text/html")
        .send()
        .unwrap();
    let pre = cookie_of(&r, "tessera_csrf").unwrap();
    let token = csrf_in(&r.text().unwrap());
    let form = format!(
        "csrf={token}&username={name}&password={}",
        percent_encoding::utf8_percent_encode(
            &password_of(name),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let r = client
        .post(format!("{}/login", server.url))
        .header("cookie", &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let mut cookie = cookie_of(&r, "tessera_session").unwrap();
    let pending = r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login/otp");
    if pending {
        let code = otp().expect("the account has 2FA: a one-time password is needed");
        let page = client
            .get(format!("{}/login/otp", server.url))
            .header("accept", "text/html")
            .header("cookie", &cookie)
            .send()
            .unwrap();
        let csrf = csrf_in(&page.text().unwrap());
        let r = client
            .post(format!("{}/login/otp", server.url))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&otp={code}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 303, "second step");
        cookie = cookie_of(&r, "tessera_session").unwrap();
    }
    WebSession {
        server,
        client,
        cookie,
    }
}

impl WebSession<'_> {
    pub fn csrf(&self, page: &str) -> String {
        let r = self
            .client
            .get(format!("{}{page}", self.server.url))
            .header("accept", "text/html")
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
        csrf_in(&r.text().unwrap())
    }

    /// A page as the browser asks for it: (status, body).
    pub fn get(&self, page: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{page}", self.server.url))
            .header("accept", "text/html")
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn post(&self, page: &str, fields: &[(&str, &str)]) -> reqwest::blocking::Response {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect();
        self.client
            .post(format!("{}{page}", self.server.url))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .unwrap()
    }
}

/// A user's security-log entries (detail, time), newest first, read straight from
/// the test server's database: for checks of what no credential may list.
pub fn security_log_rows(server: &TestServer, user_id: i64) -> Vec<(String, i64)> {
    const SQL: &str = "SELECT detail, created_at FROM security_events WHERE user_id = $1 \
                       ORDER BY created_at DESC, id DESC";
    let url = server.app.config.database_url.as_str().to_owned();
    server.block_on(async move {
        use sqlx::Connection;
        if url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_as(SQL)
                .bind(user_id)
                .fetch_all(&mut c)
                .await
                .unwrap()
        } else {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_as(SQL)
                .bind(user_id)
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
    })
}

// ---- Other package managers: pnpm, yarn 4 and bun ----------------------------------

/// The package managers the client tests drive, npm included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Npm,
    Pnpm,
    Yarn,
    Bun,
}

impl Client {
    pub const ALL: [Client; 4] = [Client::Npm, Client::Pnpm, Client::Yarn, Client::Bun];

    pub fn name(self) -> &'static str {
        match self {
            Client::Npm => "npm",
            Client::Pnpm => "pnpm",
            Client::Yarn => "yarn",
            Client::Bun => "bun",
        }
    }

    /// The version `scripts/install-test-tools` installs.
    fn pinned_version(self) -> &'static str {
        match self {
            Client::Npm => "",
            Client::Pnpm => "12.4.2",
            Client::Yarn => "4.18.1",
            Client::Bun => "1.4.5",
        }
    }

    /// The program: npm from `PATH`, the others where `scripts/install-test-tools`
    /// puts them (`$TESSERA_TOOLS_DIR/node_modules/.bin`, default
    /// `/opt/tessera-tools`). `None` (after saying so) when one is missing outside CI;
    /// under `CI=true` a missing tool fails the test.
    pub fn program(self) -> Option<PathBuf> {
        if self == Client::Npm {
            return Some(PathBuf::from("npm"));
        }
        let dir = std::env::var("TESSERA_TOOLS_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/opt/tessera-tools".to_owned());
        let path = Path::new(&dir).join("node_modules/.bin").join(self.name());
        if path.exists() {
            // Their behaviour differs between versions (pnpm 10 hands `owner` and
            // `whoami` to npm, pnpm 12 speaks for itself): only the pinned ones count.
            let version = Command::new(&path)
                .arg("--version")
                .env("HOME", std::env::temp_dir())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            assert_eq!(
                version,
                self.pinned_version(),
                "{} at {} is not the pinned version: run scripts/install-test-tools",
                self.name(),
                path.display()
            );
            return Some(path);
        }
        if std::env::var("CI").is_ok() {
            panic!(
                "{} is not installed at {}: CI runs scripts/install-test-tools",
                self.name(),
                path.display()
            );
        }
        eprintln!(
            "skipping the {} part: not installed at {} (run scripts/install-test-tools)",
            self.name(),
            path.display()
        );
        None
    }
}

/// One package manager with its own HOME, configuration and caches (all inside its
/// temporary folder), pointed at a test server.
pub struct ClientRunner {
    pub client: Client,
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/`.
    pub registry: String,
    program: PathBuf,
}

impl ClientRunner {
    /// A runner for `client` with `token` saved the way that client keeps one (or
    /// none); `None` when the client is not installed (outside CI).
    pub fn new(client: Client, server_url: &str, token: Option<&str>) -> Option<ClientRunner> {
        let program = client.program()?;
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "home",
            "work",
            "cache",
            "xdg/config",
            "xdg/data",
            "xdg/state",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let runner = ClientRunner {
            client,
            dir,
            registry: format!("{}/", server_url.trim_end_matches('/')),
            program,
        };
        runner.set_token(token);
        Some(runner)
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The npm environment: npm, pnpm and bun read its `.npmrc` (in HOME).
    fn npm_env(&self) -> NpmEnv {
        NpmEnv {
            home: self.home(),
            userconfig: self.home().join(".npmrc"),
            cache: self.cache().join("npm"),
            registry: self.registry.clone(),
        }
    }

    /// Rewrites the client's configuration with `token` (or without any).
    pub fn set_token(&self, token: Option<&str>) {
        let origin = self.registry.trim_end_matches('/');
        match self.client {
            Client::Npm | Client::Pnpm | Client::Bun => self.npm_env().write_config(token),
            Client::Yarn => {
                let mut text = format!(
                    "npmRegistryServer: \"{origin}\"\nunsafeHttpWhitelist:\n  - \"127.0.0.1\"\n\
                     enableTelemetry: false\nnpmMinimalAgeGate: 0\nnodeLinker: node-modules\n\
                     enableGlobalCache: false\ncacheFolder: \"{}\"\n",
                    self.cache().join("yarn").display()
                );
                if let Some(t) = token {
                    text.push_str(&format!("npmAuthToken: \"{t}\"\n"));
                }
                std::fs::write(self.home().join(".yarnrc.yml"), text).unwrap();
            }
        }
    }

    /// The client's command in `cwd`, with a clean environment that points every
    /// folder it writes into this runner.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = clean_command(&self.program, cwd, args);
        cmd.env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg/config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg/data"))
            .env("XDG_STATE_HOME", self.dir.path().join("xdg/state"))
            .env("XDG_CACHE_HOME", self.cache().join("xdg"))
            .env("FORCE_COLOR", "0")
            .env("DO_NOT_TRACK", "1");
        match self.client {
            Client::Npm => self.npm_env().apply(&mut cmd),
            Client::Pnpm => {
                cmd.env("npm_config_cache", self.cache().join("npm"));
            }
            Client::Yarn => {
                cmd.env("YARN_GLOBAL_FOLDER", self.cache().join("yarn-global"))
                    .env("YARN_ENABLE_TELEMETRY", "0")
                    .env("YARN_ENABLE_PROGRESS_BARS", "0");
            }
            Client::Bun => {
                cmd.env("BUN_INSTALL_CACHE_DIR", self.cache().join("bun"));
            }
        }
        cmd
    }

    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let command = format!(
            "{} {} (in {})",
            self.client.name(),
            args.join(" "),
            cwd.display()
        );
        let output = self.command(cwd, args).output().expect("client runs");
        to_run(command, output)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.dir.path().join("work"), args)
    }

    /// Empties every cache the client keeps (tarballs, metadata, pnpm's store).
    pub fn forget_cache(&self) {
        let _ = std::fs::remove_dir_all(self.cache());
        let _ = std::fs::remove_dir_all(self.dir.path().join("xdg/data"));
        std::fs::create_dir_all(self.cache()).unwrap();
        std::fs::create_dir_all(self.dir.path().join("xdg/data")).unwrap();
    }

    /// A folder holding `package.json` (`manifest`) and an `index.js`.
    pub fn project(&self, folder: &str, manifest: Value) -> PathBuf {
        let dir = self.dir.path().join("projects").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            serde_json::to_string_pretty(&manifest).unwrap(),
        )
        .unwrap();
        let text = format!("module.exports = {:?};\n", format!("{folder}"));
        std::fs::write(dir.join("index.js"), text).unwrap();
        dir
    }

    /// Who the saved credentials belong to.
    pub fn whoami(&self) -> Run {
        match self.client {
            Client::Npm | Client::Pnpm => self.run(&["whoami"]),
            Client::Yarn => self.run(&["npm", "whoami"]),
            Client::Bun => self.run(&["pm", "whoami"]),
        }
    }

    /// Publishes the package in `dir`.
    pub fn publish(&self, dir: &Path) -> Run {
        match self.client {
            Client::Npm | Client::Bun => self.run_in(dir, &["publish"]),
            Client::Pnpm => self.run_in(dir, &["publish", "--no-git-checks"]),
            Client::Yarn => {
                // Yarn publishes only a project it has installed.
                self.run_in(dir, &["install"]).ok();
                self.run_in(dir, &["npm", "publish"])
            }
        }
    }

    /// Installs the dependencies of the project in `dir`.
    pub fn install(&self, dir: &Path) -> Run {
        self.run_in(dir, &["install"])
    }

    /// Installs exactly what the lockfile says, failing if it would change.
    pub fn frozen_install(&self, dir: &Path) -> Run {
        match self.client {
            Client::Npm => self.run_in(dir, &["ci"]),
            Client::Pnpm | Client::Bun => self.run_in(dir, &["install", "--frozen-lockfile"]),
            Client::Yarn => self.run_in(dir, &["install", "--immutable"]),
        }
    }

    /// The lockfile an install of `dir` writes.
    pub fn lockfile(&self, dir: &Path) -> PathBuf {
        dir.join(match self.client {
            Client::Npm => "package-lock.json",
            Client::Pnpm => "pnpm-lock.yaml",
            Client::Yarn => "yarn.lock",
            Client::Bun => "bun.lock",
        })
    }

    /// Logs in as `user` the way the client does it, ending with its own credentials
    /// saved: npm and pnpm through the browser flow (approved on the website here),
    /// yarn with its username and password prompts (on a pseudo-terminal). Bun has no
    /// login command: its token lives in `.npmrc`, so this writes one from the
    /// CouchDB login. Returns what the client printed.
    pub fn login(&self, server: &TestServer, user: &str) -> String {
        match self.client {
            Client::Npm | Client::Pnpm => self.browser_login(server, user),
            Client::Yarn => {
                let (status, out) = run_on_pty(
                    &self.command(&self.dir.path().join("work"), &["npm", "login"]),
                    &[("Username", user), ("Password", &password_of(user))],
                );
                assert_eq!(status, 0, "yarn npm login: {out}");
                out
            }
            Client::Bun => {
                let r = http()
                    .put(format!("{}/-/user/org.couchdb.user:{user}", server.url))
                    .json(&json!({"name": user, "password": password_of(user), "type": "user", "roles": []}))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201, "login of {user}");
                let token = r.json::<Value>().unwrap()["token"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                self.set_token(Some(&token));
                String::from("(bun has no login command; token saved in ~/.npmrc)")
            }
        }
    }

    fn browser_login(&self, server: &TestServer, user: &str) -> String {
        use std::io::BufRead;
        let mut child = self
            .command(&self.dir.path().join("work"), &["login"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let readers: Vec<_> = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|stream| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = tx.send(line);
                }
            })
        })
        .collect();
        drop(tx);
        let mut printed = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    printed.push_str(&line);
                    printed.push('\n');
                    if let Some(at) = line.find("/login/cli/") {
                        let start = line[..at].rfind("http").unwrap_or(0);
                        break line[start..].trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{} login printed no login URL:\n{printed}",
                        self.client.name()
                    );
                }
            }
        };
        let path = &url[server.url.len()..];
        let web = http_session(server, user);
        let csrf = web.csrf(path);
        assert_eq!(web.post(path, &[("csrf", &csrf)]).status(), 200, "approved");
        for line in rx.iter() {
            printed.push_str(&line);
            printed.push('\n');
        }
        for r in readers {
            r.join().unwrap();
        }
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{} login failed:\n{printed}",
            self.client.name()
        );
        printed
    }
}

/// Runs `cmd` (its program, arguments, folder and environment) on a pseudo-terminal,
/// answering prompts: each `(pattern, reply)` waits for the regex `pattern` in the
/// output, then types `reply` and Enter. Returns the exit status and everything printed.
pub fn run_on_pty(cmd: &Command, dialogue: &[(&str, &str)]) -> (i32, String) {
    const DRIVER: &str = r#"
import os, pty, sys, time, re, select, json
spec = json.loads(sys.stdin.read())
pid, fd = pty.fork()
if pid == 0:
    os.chdir(spec["cwd"])
    os.execve(spec["program"], [spec["program"]] + spec["args"], spec["env"])
out = b""
def read_some(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        return False
    if not chunk:
        return False
    out += chunk
    return True
pos = 0
for pattern, reply in spec["dialogue"]:
    end = time.time() + 60
    while True:
        m = re.compile(pattern.encode()).search(out, pos)
        if m:
            pos = m.end()
            break
        if time.time() > end or not read_some(0.5):
            sys.stdout.write(out.decode(errors="replace"))
            sys.stdout.write("\n[driver] no match for %r\n" % pattern)
            os.kill(pid, 9)
            sys.exit(90)
    # Prompts draw themselves after printing their label: let them finish.
    time.sleep(0.2)
    os.write(fd, reply.encode() + b"\r")
while read_some(5):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    use std::io::Write;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let program = if program.contains('/') {
        program
    } else {
        String::from_utf8_lossy(
            &Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_owned()
    };
    let env: serde_json::Map<String, Value> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                Value::String(v?.to_string_lossy().into_owned()),
            ))
        })
        .collect();
    let spec = json!({
        "program": program,
        "args": cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "cwd": cmd.get_current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into()),
        "env": env,
        "dialogue": dialogue,
    });
    let mut child = Command::new("python3")
        .args(["-c", DRIVER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
