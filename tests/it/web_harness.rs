//! The website's browser tests: headless Chromium through chromedriver (fantoccini).
//! The server and the npm runner are `harness`'s (`TestServer::live()`, on the
//! system clock; `Npm`), with async calls that read well inside `rt.block_on`.

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The one test server type.
pub use crate::harness::TestServer as Server;

/// Why browser tests cannot run here, if they cannot.
pub fn browser_missing() -> Option<String> {
    for bin in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "skipped: {bin} is missing (apt-get install -y chromium chromium-driver to run the browser tests)"
            ));
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Headless Chromium driven through chromedriver. Dropping it kills both processes.
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: std::process::Child,
    _profile: TempDir,
    shots: Option<PathBuf>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_tree(&mut self.driver, Some(self._profile.path()));
    }
}

/// Kills chromedriver, every process descended from it, and every process started
/// with our profile folder (Chromium may outlive or leave its parent), by pid.
fn kill_tree(driver: &mut std::process::Child, profile: Option<&Path>) {
    let root = driver.id();
    let mut parents = Vec::new();
    let mut marked = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
            if let Some(profile) = profile {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*profile.to_string_lossy()) {
                    marked.push(pid);
                }
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.extend(marked);
    tree.sort_unstable();
    tree.dedup();
    let others: Vec<String> = tree
        .iter()
        .filter(|p| **p != root)
        .map(u32::to_string)
        .collect();
    if !others.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(&others)
            .status();
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Browser {
    /// Starts chromedriver and a Chromium session (desktop-sized window).
    pub async fn start(base: &str) -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("tempdir");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                    "--disable-breakpad", "--disable-crash-reporter",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {"profile.content_settings.exceptions.clipboard": {
                    "*": {"setting": 1}
                }}
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut guard = BrowserGuard(Some(driver));
        let client = loop {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot connect to chromedriver: {e}"),
            }
        };
        let shots = std::env::var_os("TESSERA_SCREENSHOTS").map(PathBuf::from);
        Browser {
            client,
            base: base.to_owned(),
            driver: guard.0.take().expect("driver"),
            _profile: profile,
            shots,
        }
    }

    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the current path starts with `prefix` (after a click that navigates).
    pub async fn wait_path(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let p = self.path().await;
            if p.starts_with(prefix) {
                return p;
            }
            if Instant::now() > deadline {
                panic!("expected to reach {prefix}, still on {p}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element's text contains `needle` (the page may still be loading).
    pub async fn wait_text(&self, selector: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(e) = self.client.find(Locator::Css(selector)).await
                && let Ok(t) = e.text().await
                && t.contains(needle)
            {
                return t;
            }
            if Instant::now() > deadline {
                panic!("{selector} never contained {needle:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
    }

    pub async fn has(&self, selector: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .expect("find")
            .is_empty()
    }

    pub async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.expect("text")
    }

    /// The input a `<label>` with this exact text names.
    pub async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath =
            format!("//label[normalize-space(text())='{label}' or normalize-space(.)='{label}']");
        let label_el = self
            .client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no label {label:?}: {e}"));
        let id = label_el
            .attr("for")
            .await
            .expect("attr")
            .expect("label has for");
        self.client
            .find(Locator::Id(&id))
            .await
            .expect("labelled field")
    }

    /// Types into the field labelled `label` (clearing it first).
    pub async fn fill(&self, label: &str, value: &str) {
        let f = self.field(label).await;
        f.clear().await.expect("clear");
        f.send_keys(value).await.expect("type");
    }

    /// Clicks the label (radio buttons, checkboxes).
    pub async fn choose(&self, label: &str) {
        let xpath = format!("//label[normalize-space(.)='{label}']");
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::XPath(&xpath))
            .await
            .expect("label")
            .click()
            .await
            .expect("click");
    }

    /// Clicks the button (or summary) with this text.
    pub async fn click_button(&self, text: &str) {
        let xpath = format!(
            "//button[normalize-space(.)='{text}'] | //summary[normalize-space(.)='{text}']"
        );
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn click_link(&self, text: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    pub async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, user: &str, password: &str) {
        // A form post clicked just before may still be navigating; wait for it to
        // settle so it cannot replace the sign-in page under us.
        for _ in 0..50 {
            let ready: serde_json::Value = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .unwrap_or(serde_json::Value::Null);
            if ready == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.goto("/login").await;
        self.fill("Username", user).await;
        self.fill("Password", password).await;
        self.click_button("Sign in").await;
    }

    /// Saves a PNG when `TESSERA_SCREENSHOTS` names a folder.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        std::fs::create_dir_all(dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Navigation timing of the current page (ms): (response end, DOMContentLoaded, load).
    pub async fn timing(&self) -> (f64, f64, f64) {
        let v = self
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; \
                 return [n.responseEnd - n.startTime, n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime];",
                vec![],
            )
            .await
            .expect("timing");
        let f = |i: usize| v[i].as_f64().unwrap_or(-1.0);
        (f(0), f(1), f(2))
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

struct BrowserGuard(Option<std::process::Child>);

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            kill_tree(&mut child, None);
        }
    }
}

/// `harness::Npm` (its own HOME, userconfig and cache) with async calls that answer
/// `(success, stdout, stderr)`.
pub struct Npm(pub crate::harness::Npm);

impl Npm {
    pub fn new(registry: &str) -> Npm {
        Npm(crate::harness::Npm::new(registry, None))
    }

    pub fn registry(&self) -> &str {
        &self.0.registry
    }

    pub fn userconfig(&self) -> PathBuf {
        self.0.userconfig.clone()
    }

    /// The folder npm runs in by default.
    pub fn work(&self) -> PathBuf {
        self.0.work()
    }

    /// Saves `token` for the registry in the userconfig.
    pub fn use_token(&self, token: &str) {
        self.0.set_token(Some(token));
    }

    /// `npm ARGS` in the work folder, as a tokio command (killed when dropped).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::from(self.0.command(&self.work(), args));
        c.kill_on_drop(true);
        c
    }

    /// Runs npm in `dir` (or the work folder) and returns (success, stdout, stderr).
    pub async fn run_in(&self, dir: Option<&Path>, args: &[&str]) -> (bool, String, String) {
        let mut c = self.command(args);
        if let Some(dir) = dir {
            c.current_dir(dir);
        }
        let out = tokio::time::timeout(Duration::from_secs(90), c.output())
            .await
            .expect("npm finishes in time")
            .expect("npm runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_in(None, args).await
    }
}

/// Writes a minimal package (package.json + README) into a new folder.
pub fn package_dir(name: &str, version: &str, readme: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = json!({
        "name": name,
        "version": version,
        "description": format!("{name}, published by the website tests"),
        "license": "MIT",
        "keywords": ["test", "tessera"],
        "main": "index.js"
    });
    std::fs::write(
        dir.path().join("package.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("index.js"), "module.exports = 42;\n").unwrap();
    std::fs::write(dir.path().join("README.md"), readme).unwrap();
    dir
}
