//! The website, driven in headless Chromium: sign-in, the Access Tokens pages as the
//! seed describes them (each web-made token then used with the real npm CLI), 2FA
//! enrolment, `npm login` through the browser, CSRF refusal and escaping.
//!
//! Browser tests print a skip reason and pass when chromium/chromedriver are not
//! installed. Set `TESSERA_SCREENSHOTS=<folder>` to save screenshots of the pages.

use std::time::Duration;

use fantoccini::Locator;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::web_harness::{Browser, Npm, Server, browser_missing, package_dir};

const PASSWORD: &str = "correct horse battery";

/// Form posts without reqwest's `form` feature.
trait FormExt {
    fn form_(self, fields: &[(&str, &str)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form_(self, fields: &[(&str, &str)]) -> Self {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Generates a token through the form and returns the full token shown at the top.
async fn generate(b: &Browser, name: &str, kind_label: &str, otp: Option<&str>) -> String {
    b.goto("/settings/tokens").await;
    b.click_link("Generate New Token").await;
    b.wait_path("/settings/tokens/new").await;
    b.fill("Name", name).await;
    b.choose(kind_label).await;
    b.fill("Password", PASSWORD).await;
    if let Some(code) = otp {
        b.fill("One-time password", code).await;
    }
    b.click_button("Generate Token").await;
    let token = b.text("#new-token-value").await;
    assert_eq!(
        b.path().await,
        "/settings/tokens",
        "back on the Access Tokens page"
    );
    assert!(
        token.starts_with("tsr_") && token.len() == 40,
        "full token at the top: {token}"
    );
    token
}

/// Timings of a page load, logged for the notes.
async fn timed(b: &Browser, label: &str, path: &str) {
    b.goto(path).await;
    let t = b.timing().await;
    eprintln!(
        "page-load {label:<28} {path:<32} response {:6.1} ms  DOMContentLoaded {:6.1} ms  load {:6.1} ms",
        t.0, t.1, t.2
    );
}

#[test]
fn web_tokens_in_browser_and_with_npm() {
    if let Some(why) = browser_missing() {
        eprintln!("{why}");
        return;
    }
    let server = Server::start();
    server.create_user("alice", PASSWORD);
    server.create_user("frank", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let b = Browser::start(&url).await;
        b.goto("/").await;
        b.screenshot("home-signed-out").await;
        assert!(b.has("a[href='/login']").await, "Sign in link when signed out");

        // Sign in.
        b.sign_in("alice", PASSWORD).await;
        let avatar = b.css("img[alt='Profile picture']").await;

        // Profile picture → Access Tokens.
        avatar.click().await.unwrap();
        b.screenshot("menu-open").await;
        b.click_link("Access Tokens").await;
        b.wait_path("/settings/tokens").await;
        assert_eq!(b.text("h1").await, "Access Tokens");

        // Generate New Token → name → each type → Generate Token → token at the top.
        let mut made = Vec::new();
        for (label, kind) in [("Read-only", "read-only"), ("Automation", "automation"), ("Publish", "publish")] {
            let name = format!("{kind} from the browser");
            let token = generate(&b, &name, label, None).await;
            let note = b.text(".new-token").await;
            assert!(note.contains("will not be shown again"), "{note}");
            // The Copy button copies (the script swaps its label).
            let copy = b.css("button[data-copy='new-token-value']").await;
            assert_eq!(copy.text().await.unwrap(), "Copy");
            copy.click().await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert_eq!(copy.text().await.unwrap(), "Copied");
            if kind == "read-only" {
                b.screenshot("tokens-new-token-shown").await;
            }
            // Reload: only the masked form.
            b.client.refresh().await.unwrap();
            assert!(!b.has("#new-token-value").await, "the token is shown once");
            let source = b.source().await;
            assert!(!source.contains(&token), "the full token never appears again");
            let masked = format!("{}…{}", &token[..8], &token[token.len() - 4..]);
            assert!(source.contains(&masked), "masked form {masked} listed");
            let row_kind = b
                .client
                .find(Locator::XPath(&format!("//tr[.//span[@class='token-name' and text()='{name}']]//span[contains(@class,'badge')]")))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(row_kind, kind);
            made.push((kind, token));
        }
        // Newest first.
        let names: Vec<String> = {
            let mut v = Vec::new();
            for e in b.client.find_all(Locator::Css("span.token-name")).await.unwrap() {
                v.push(e.text().await.unwrap());
            }
            v
        };
        assert_eq!(names, ["publish from the browser", "automation from the browser", "read-only from the browser"]);
        b.screenshot("tokens-list").await;

        // Invalid CIDR: the seed's message, form values kept.
        b.click_link("Generate New Token").await;
        b.fill("Name", "office only").await;
        b.choose("Publish").await;
        b.fill("Allowed IP ranges (CIDR)", "192.168.1.0/24, 10.0.0.1/33").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Generate Token").await;
        let alert = b.text(".alert.error").await;
        assert_eq!(alert, "CIDR whitelist contains invalid CIDR entry: 10.0.0.1/33");
        assert_eq!(b.field("Name").await.prop("value").await.unwrap().as_deref(), Some("office only"));
        assert_eq!(
            b.field("Allowed IP ranges (CIDR)").await.prop("value").await.unwrap().as_deref(),
            Some("192.168.1.0/24, 10.0.0.1/33")
        );
        assert!(b.css("#kind-publish").await.prop("checked").await.unwrap().as_deref() == Some("true"));
        b.screenshot("token-form-cidr-error").await;
        b.fill("Allowed IP ranges (CIDR)", "127.0.0.1/32, ::1/128").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Generate Token").await;
        let cidr_token = b.text("#new-token-value").await;
        assert!(b.source().await.contains("127.0.0.1/32, ::1/128"));

        // Escaping: a token named <script> shows as text.
        let evil = "<script>alert(1)</script>";
        generate(&b, evil, "Read-only", None).await;
        b.client.refresh().await.unwrap();
        let shown = b
            .client
            .find(Locator::XPath("//span[@class='token-name'][starts-with(text(),'<script>')]"))
            .await
            .expect("the name is text")
            .text()
            .await
            .unwrap();
        assert_eq!(shown, evil);
        let scripts: serde_json::Value =
            b.client.execute("return document.querySelectorAll('main script').length", vec![]).await.unwrap();
        assert_eq!(scripts, 0);

        // Each web-made token with the real npm CLI.
        let token = |k: &str| made.iter().find(|(kind, _)| *kind == k).unwrap().1.clone();
        let npm = Npm::new(&b.base);
        let readme = "# web-made\n\nA package with a **README**.\n\n<script>alert(2)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let pkg = package_dir("web-made", "1.0.0", readme);
        npm.use_token(&token("read-only"));
        let (ok, out, _) = npm.run(&["whoami"]).await;
        assert!(ok && out.trim() == "alice", "read-only token authenticates: {out}");
        let (ok, _, err) = npm.run_in(Some(pkg.path()), &["publish"]).await;
        assert!(!ok, "a read-only token cannot publish");
        assert!(err.contains("403") || err.contains("read-only"), "{err}");
        npm.use_token(&token("publish"));
        let (ok, _, err) = npm.run_in(Some(pkg.path()), &["publish"]).await;
        assert!(ok, "a publish token publishes: {err}");
        npm.use_token(&token("automation"));
        let pkg2 = package_dir("web-made", "1.1.0", readme);
        let (ok, _, err) = npm.run_in(Some(pkg2.path()), &["publish"]).await;
        assert!(ok, "an automation token publishes: {err}");
        // A publish token may not manage tokens if read-only; the read-only one reads.
        npm.use_token(&token("read-only"));
        let (ok, out, err) = npm.run(&["view", "web-made", "version"]).await;
        assert!(ok && out.trim() == "1.1.0", "read-only token reads: {out} {err}");
        let (ok, _, _) = npm.run(&["token", "create"]).await;
        assert!(!ok, "a read-only token cannot create tokens");
        // The CIDR-limited token works from 127.0.0.1.
        npm.use_token(&cidr_token);
        let (ok, out, _) = npm.run(&["whoami"]).await;
        assert!(ok && out.trim() == "alice");

        // A package named like a page is still a package for npm.
        npm.use_token(&token("publish"));
        let login_pkg = package_dir("login", "2.0.0", "# login\n");
        let (ok, _, err) = npm.run_in(Some(login_pkg.path()), &["publish"]).await;
        assert!(ok, "publishing a package named login: {err}");
        let (ok, out, err) = npm.run(&["view", "login", "version"]).await;
        assert!(ok && out.trim() == "2.0.0", "npm view login: {out} {err}");

        // Package page: README rendered and sanitised.
        b.goto("/package/web-made").await;
        assert_eq!(b.text("h1").await, "web-made");
        assert_eq!(b.text(".readme strong").await, "README");
        assert!(b.has(".readme table").await);
        assert!(!b.source().await.contains("<script>alert(2)"), "README script removed");
        assert!(b.text("#install-cmd").await.contains("npm install web-made"));
        assert!(b.text(".versions").await.contains("1.0.0"));
        assert!(b.has("a[href='/package/web-made/settings']").await, "maintainers see the settings");
        b.screenshot("package-page").await;
        b.click_link("Package settings").await;
        b.wait_path("/package/web-made/settings").await;
        b.css("h1").await;
        b.fill("Add maintainer (username)", "frank").await;
        b.click_button("Add maintainer").await;
        b.wait_text(".maintainers", "frank").await;
        b.choose("Require two-factor authentication or an automation token").await;
        b.click_button("Save publishing access").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.screenshot("package-settings").await;
        b.goto("/package/web-made").await;
        b.wait_text(".package-side", "required, or an automation token").await;
        let (ok, out, _) = npm.run(&["owner", "ls", "web-made"]).await;
        assert!(ok && out.contains("frank"), "npm sees the new maintainer: {out}");
        b.goto("/search?q=web").await;
        assert!(b.text(".packages").await.contains("web-made"));
        b.screenshot("search").await;

        // Revoke the read-only token, with its confirmation step.
        b.goto("/settings/tokens").await;
        let ro = token("read-only");
        let row = b
            .client
            .find(Locator::XPath("//tr[.//span[@class='token-name' and text()='read-only from the browser']]"))
            .await
            .unwrap();
        row.find(Locator::Css("summary")).await.unwrap().click().await.unwrap();
        b.screenshot("token-revoke-confirm").await;
        row.find(Locator::XPath(".//button[normalize-space(.)='Yes, revoke this token']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(b.text(".alert.ok").await.contains("revoked"));
        assert!(!b.source().await.contains("read-only from the browser"));
        npm.use_token(&ro);
        let (ok, _, _) = npm.run(&["whoami"]).await;
        assert!(!ok, "a revoked token is refused");

        // Security log.
        b.css("img[alt='Profile picture']").await.click().await.unwrap();
        b.click_link("Security Log").await;
        b.wait_path("/settings/security-log").await;
        let log = b.text("table.log").await;
        assert!(log.contains("Token created") && log.contains("Token revoked") && log.contains("Website sign-in"), "{log}");
        b.screenshot("security-log").await;
        b.css("img[alt='Profile picture']").await.click().await.unwrap();
        b.click_link("Profile").await;
        b.wait_path("/settings/profile").await;
        b.screenshot("profile").await;

        // Page-load timings.
        for (label, path) in [
            ("home", "/"),
            ("search", "/search?q=web"),
            ("package", "/package/web-made"),
            ("access tokens", "/settings/tokens"),
            ("generate new token", "/settings/tokens/new"),
            ("two-factor", "/settings/2fa"),
            ("security log", "/settings/security-log"),
            ("profile", "/settings/profile"),
        ] {
            // Logged for the notes; speed is measured, never asserted.
            timed(&b, label, path).await;
        }

        // Phone-sized screenshots.
        b.client.set_window_size(390, 844).await.unwrap();
        b.goto("/settings/tokens").await;
        b.screenshot("phone-tokens").await;
        b.goto("/settings/tokens/new").await;
        b.screenshot("phone-token-form").await;
        b.goto("/package/web-made").await;
        b.screenshot("phone-package").await;
        b.client.set_window_size(1280, 800).await.unwrap();

        // Sign out ends the session.
        b.css("img[alt='Profile picture']").await.click().await.unwrap();
        b.click_button("Sign out").await;
        b.css("a[href='/login']").await;
        b.goto("/settings/tokens").await;
        b.wait_path("/login?next=").await;
        b.close().await;
    });
}

/// The `YYYY-MM-DD` date `days` from now, as the token list prints it.
fn date_in_days(days: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((now_secs() + days * 86_400) as i64).unwrap();
    t.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap()
}

/// A DOM property (`value`, `checked`, `open`) of the element `css` selects.
async fn prop(b: &Browser, css: &str, name: &str) -> Option<String> {
    b.css(css).await.prop(name).await.unwrap()
}

/// Fills "Generate New Token" including its Advanced section, and submits it.
async fn submit_limited_token(
    b: &Browser,
    name: &str,
    kind_label: &str,
    expires: &str,
    packages: &str,
    permission: &str,
) {
    b.goto("/settings/tokens/new").await;
    b.fill("Name", name).await;
    b.choose(kind_label).await;
    let expiration = b.field("Expiration").await;
    expiration.select_by_value(expires).await.unwrap();
    b.click_button("Advanced").await;
    b.fill("Packages and scopes", packages).await;
    let permission_field = b.field("Package permission").await;
    permission_field.select_by_value(permission).await.unwrap();
    b.fill("Password", PASSWORD).await;
    b.click_button("Generate Token").await;
}

/// The text of the cell `css` in the listed token named `name`.
async fn token_cell(b: &Browser, name: &str, css: &str) -> String {
    let row = format!("//tr[.//span[@class='token-name' and text()='{name}']]");
    let row = b.client.find(Locator::XPath(&row)).await.unwrap();
    let cell = row.find(Locator::Css(css)).await.unwrap();
    cell.text().await.unwrap()
}

#[test]
fn web_sign_up_then_custom_expiry_and_package_limits() {
    if let Some(why) = browser_missing() {
        eprintln!("{why}");
        return;
    }
    let server = Server::start();
    server.create_user("alice", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let b = Browser::start(&url).await;

        // Sign up: a taken name is refused with the typed values kept, a new one
        // creates the account and signs in.
        b.goto("/").await;
        b.click_link("Sign up").await;
        b.wait_path("/signup").await;
        assert_eq!(b.text("h1").await, "Sign up");
        b.fill("Username", "alice").await;
        b.fill("Email", "grace@example.com").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Create account").await;
        assert_eq!(b.text(".alert.error").await, "user alice already exists");
        assert_eq!(
            prop(&b, "#email", "value").await.as_deref(),
            Some("grace@example.com")
        );
        b.fill("Username", "grace").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Create account").await;
        b.css("img[alt='Profile picture']").await;
        assert_eq!(b.path().await, "/");
        b.screenshot("signed-up").await;

        // Custom expiration without a number of days: a clear error, values kept.
        submit_limited_token(
            &b,
            "ci limited",
            "Automation",
            "custom",
            "solo-pkg, @grace",
            "read-write",
        )
        .await;
        assert_eq!(
            b.text(".alert.error").await,
            "Enter the custom expiration as a whole number of days (1 to 3650)."
        );
        assert_eq!(
            prop(&b, "#name", "value").await.as_deref(),
            Some("ci limited")
        );
        assert_eq!(
            prop(&b, "#packages", "value").await.as_deref(),
            Some("solo-pkg, @grace")
        );
        assert_eq!(
            prop(&b, "#permission", "value").await.as_deref(),
            Some("read-write")
        );
        assert_eq!(
            prop(&b, "#expires", "value").await.as_deref(),
            Some("custom")
        );
        assert_eq!(
            prop(&b, "#kind-automation", "checked").await.as_deref(),
            Some("true")
        );
        assert_eq!(
            prop(&b, "details.advanced", "open").await.as_deref(),
            Some("true"),
            "the Advanced section stays open with its values"
        );

        // Custom expiration of 3 days, limited to one package and one scope.
        let before = date_in_days(3);
        b.fill("Custom expiration (days)", "3").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Generate Token").await;
        let limited = b.text("#new-token-value").await;
        assert!(limited.starts_with("tsr_"), "{limited}");
        let expires = token_cell(&b, "ci limited", "td[data-label='Expires']").await;
        assert!(
            expires.starts_with(&before) || expires.starts_with(&date_in_days(3)),
            "expires in 3 days: {expires}"
        );
        let limits = token_cell(&b, "ci limited", "td[data-label='Name'] .hint").await;
        assert_eq!(limits, "solo-pkg, @grace · read-write");
        b.screenshot("token-limited-custom-expiry").await;

        // A publish-type token with read-only permission on one package, 7 days.
        let before = date_in_days(7);
        submit_limited_token(&b, "reads solo", "Publish", "7", "solo-pkg", "read-only").await;
        let reader = b.text("#new-token-value").await;
        let expires = token_cell(&b, "reads solo", "td[data-label='Expires']").await;
        assert!(
            expires.starts_with(&before) || expires.starts_with(&date_in_days(7)),
            "expires in 7 days: {expires}"
        );
        let limits = token_cell(&b, "reads solo", "td[data-label='Name'] .hint").await;
        assert_eq!(limits, "solo-pkg · read-only");

        // npm proves the limits: the listed package and scope publish, others do not.
        let npm = Npm::new(&b.base);
        npm.use_token(&limited);
        let (ok, out, _) = npm.run(&["whoami"]).await;
        assert!(ok && out.trim() == "grace", "{out}");
        let solo = package_dir("solo-pkg", "1.0.0", "# solo\n");
        let (ok, _, err) = npm.run_in(Some(solo.path()), &["publish"]).await;
        assert!(ok, "the listed package publishes: {err}");
        let scoped = package_dir("@grace/util", "1.0.0", "# util\n");
        let (ok, _, err) = npm.run_in(Some(scoped.path()), &["publish"]).await;
        assert!(ok, "a package in the listed scope publishes: {err}");
        let other = package_dir("other-pkg", "1.0.0", "# other\n");
        let (ok, _, err) = npm.run_in(Some(other.path()), &["publish"]).await;
        assert!(!ok, "a package outside the list is refused");
        assert!(
            err.contains("This token has no write access to other-pkg"),
            "{err}"
        );

        npm.use_token(&reader);
        let (ok, out, err) = npm.run(&["view", "solo-pkg", "version"]).await;
        assert!(
            ok && out.trim() == "1.0.0",
            "the read-only permission reads: {out} {err}"
        );
        let solo2 = package_dir("solo-pkg", "1.1.0", "# solo\n");
        let (ok, _, err) = npm.run_in(Some(solo2.path()), &["publish"]).await;
        assert!(!ok, "the read-only permission cannot publish");
        assert!(
            err.contains("This token is read-only and cannot change packages"),
            "{err}"
        );
        b.close().await;
    });
}

#[test]
fn web_two_factor_enrolment() {
    if let Some(why) = browser_missing() {
        eprintln!("{why}");
        return;
    }
    let server = Server::start();
    server.create_user("bob", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let b = Browser::start(&url).await;
        b.sign_in("bob", PASSWORD).await;
        b.css("img[alt='Profile picture']")
            .await
            .click()
            .await
            .unwrap();
        b.click_link("Two-Factor Authentication").await;
        b.wait_path("/settings/2fa").await;
        b.screenshot("2fa-off").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Enable two-factor authentication").await;

        // QR code (server-rendered SVG) and the secret as text.
        let qr = b.css("img.qr").await.attr("src").await.unwrap().unwrap();
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
        let secret_text = b.text("#tfa-secret").await;
        b.screenshot("2fa-enrol").await;
        let secret = totp_rs::Secret::try_from_base32(&secret_text)
            .expect("base32 secret")
            .as_ref()
            .to_vec();

        // A wrong code keeps it pending.
        b.fill("Code from your authenticator app", "000000").await;
        b.click_button("Confirm and turn on").await;
        assert!(b.text(".alert.error").await.contains("pending"));
        let code = tessera::auth::totp::code_at(&secret, now_secs());
        b.fill("Code from your authenticator app", &code).await;
        b.click_button("Confirm and turn on").await;

        // Recovery codes, once.
        b.css("#recovery-codes code").await;
        let codes: Vec<String> = {
            let mut v = Vec::new();
            for e in b
                .client
                .find_all(Locator::Css("#recovery-codes code"))
                .await
                .unwrap()
            {
                v.push(e.text().await.unwrap());
            }
            v
        };
        assert_eq!(codes.len(), 10);
        b.screenshot("2fa-recovery-codes").await;
        b.client.refresh().await.unwrap();
        assert!(
            !b.has("#recovery-codes").await,
            "recovery codes are shown once"
        );
        assert!(b.text("main").await.contains("auth-and-writes"));
        b.screenshot("2fa-on").await;

        // Sign out; signing in now asks for the one-time password (a recovery code works).
        b.css("img[alt='Profile picture']")
            .await
            .click()
            .await
            .unwrap();
        b.click_button("Sign out").await;
        b.sign_in("bob", PASSWORD).await;
        b.wait_path("/login/otp").await;
        b.screenshot("login-otp").await;
        b.fill("One-time password", "999999").await;
        b.click_button("Verify").await;
        assert!(b.text(".alert.error").await.contains("one-time"));
        b.fill("One-time password", &codes[0]).await;
        b.click_button("Verify").await;
        b.css("img[alt='Profile picture']").await;

        // And with the next TOTP code.
        b.css("img[alt='Profile picture']")
            .await
            .click()
            .await
            .unwrap();
        b.click_button("Sign out").await;
        b.sign_in("bob", PASSWORD).await;
        b.wait_path("/login/otp").await;
        let next = tessera::auth::totp::code_at(&secret, now_secs() + 30);
        b.fill("One-time password", &next).await;
        b.click_button("Verify").await;
        b.css("img[alt='Profile picture']").await;

        // Generating a token now asks for a one-time password too.
        b.goto("/settings/tokens/new").await;
        assert!(
            b.has("input[name='otp']").await,
            "OTP field when the account has 2FA"
        );
        assert_eq!(
            b.field("One-time password")
                .await
                .attr("required")
                .await
                .unwrap()
                .as_deref(),
            Some("true")
        );
        let token = generate(&b, "with otp", "Publish", Some(&codes[1])).await;
        assert!(token.starts_with("tsr_"));

        // Switch mode, then disable (each asks for the password and a one-time password).
        b.goto("/settings/2fa").await;
        b.choose("Authorization only").await;
        b.fill("Password", PASSWORD).await;
        b.fill("One-time password", &codes[2]).await;
        b.click_button("Switch mode").await;
        b.wait_text(".alert.ok", "mode was changed").await;
        assert!(b.text("main").await.contains("mode auth-only"));
        b.css("#disable-password")
            .await
            .send_keys(PASSWORD)
            .await
            .unwrap();
        b.css("#disable-otp")
            .await
            .send_keys(&codes[3])
            .await
            .unwrap();
        b.click_button("Disable two-factor authentication").await;
        b.wait_text(".alert.ok", "is off").await;
        assert!(b.has("#mode-aw").await, "enrolment is offered again");

        // The log shows it all.
        b.goto("/settings/security-log").await;
        let log = b.text("table.log").await;
        for event in [
            "2FA enabled",
            "2FA mode changed",
            "2FA disabled",
            "Website sign-in",
            "Recovery code used",
            "Token created",
        ] {
            assert!(log.contains(event), "{event} in {log}");
        }
        b.close().await;
    });
}

#[test]
fn web_npm_login_through_the_browser() {
    if let Some(why) = browser_missing() {
        eprintln!("{why}");
        return;
    }
    let server = Server::start();
    server.create_user("carol", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let npm = Npm::new(&url);
        let mut login = npm.command(&["login"]);
        login
            .current_dir(npm.home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = login.spawn().expect("npm login starts");
        let _stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let login_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let line = line.trim().to_owned();
                if line.starts_with("http") && line.contains("/login/cli/") {
                    return line;
                }
            }
            panic!("npm login printed no login URL");
        })
        .await
        .expect("npm prints Login at: <url>");
        assert!(login_url.starts_with(&url), "{login_url}");

        // Not signed in yet: the page sends us to sign in, then back.
        let b = Browser::start(&url).await;
        b.goto(&login_url).await;
        b.wait_path("/login?next=").await;
        b.fill("Username", "carol").await;
        b.fill("Password", PASSWORD).await;
        b.click_button("Sign in").await;
        b.wait_path("/login/cli/").await;
        assert_eq!(b.text("h1").await, "Log in to npm");
        b.screenshot("npm-login-approve").await;
        b.click_button("Approve login").await;
        b.wait_text("h1", "npm is logged in").await;
        b.screenshot("npm-login-done").await;

        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("npm login finishes")
            .unwrap();
        assert!(status.success(), "npm login exits 0");
        let (ok, out, err) = npm.run(&["whoami"]).await;
        assert!(
            ok && out.trim() == "carol",
            "npm whoami after browser login: {out} {err}"
        );

        // Single use: the approval page is gone now.
        b.goto(&login_url).await;
        assert!(b.text("main").await.contains("expired"));
        b.close().await;
    });
}

/// CSRF and Origin checks, security headers and the npm passthrough, over plain HTTP
/// (no browser needed).
#[test]
fn web_csrf_origin_and_headers() {
    let server = Server::start();
    server.create_user("dave", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let html = "text/html,application/xhtml+xml";
        let cookie_of = |r: &reqwest::Response, name: &str| -> Option<String> {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with(&format!("{name}=")))
                .map(|v| v.split(';').next().unwrap().to_owned())
        };
        let csrf_in = |body: &str| -> String {
            let i = body.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
            body[i..i + body[i..].find('"').unwrap()].to_owned()
        };

        // The sign-in form and its pre-session CSRF cookie.
        let r = http
            .get(format!("{url}/login"))
            .header("accept", html)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("referrer-policy"));
        let pre = cookie_of(&r, "tessera_csrf").expect("pre-session csrf cookie");
        let body = r.text().await.unwrap();
        let pre_token = csrf_in(&body);

        // Sign-in without the token: 403.
        let form = [("username", "dave"), ("password", PASSWORD)];
        let r = http
            .post(format!("{url}/login"))
            .header("cookie", &pre)
            .form_(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // From another origin: 403.
        let r = http
            .post(format!("{url}/login"))
            .header("cookie", &pre)
            .header("origin", "http://evil.example")
            .form_(&[
                ("csrf", pre_token.as_str()),
                ("username", "dave"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // Properly: a session cookie, HttpOnly and SameSite=Lax.
        let r = http
            .post(format!("{url}/login"))
            .header("cookie", &pre)
            .header("origin", &url)
            .form_(&[
                ("csrf", pre_token.as_str()),
                ("username", "dave"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let raw = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("tessera_session="))
            .unwrap();
        assert!(
            raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
            "{raw}"
        );
        let session = cookie_of(&r, "tessera_session").unwrap();

        let page = http
            .get(format!("{url}/settings/tokens/new"))
            .header("accept", html)
            .header("cookie", &session);
        let r = page.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let token = csrf_in(&r.text().await.unwrap());

        // Token creation without the CSRF token: 403, nothing created.
        let fields = [
            ("name", "csrf"),
            ("kind", "publish"),
            ("password", PASSWORD),
            ("expires", "never"),
        ];
        let r = http
            .post(format!("{url}/settings/tokens/new"))
            .header("cookie", &session)
            .form_(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // With a wrong one: 403.
        let mut wrong = fields.to_vec();
        wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        let r = http
            .post(format!("{url}/settings/tokens/new"))
            .header("cookie", &session)
            .form_(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // With the right one but from another site: 403.
        let mut right = fields.to_vec();
        right.push(("csrf", token.as_str()));
        let r = http
            .post(format!("{url}/settings/tokens/new"))
            .header("cookie", &session)
            .header("origin", "https://evil.example")
            .form_(&right)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let user = server_user(&url, &http, &session).await;
        assert_eq!(user, 0, "no token was created by refused posts");
        // Correct: created, shown once.
        let r = http
            .post(format!("{url}/settings/tokens/new"))
            .header("cookie", &session)
            .form_(&right)
            .send()
            .await
            .unwrap();
        // The answer to the form is the list with the new token at the top: the token
        // is rendered from memory and stored nowhere.
        assert_eq!(r.status(), 201);
        assert!(r.text().await.unwrap().contains("id=\"new-token-value\""));
        let list = |s: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(format!("{url}/settings/tokens"))
                    .header("accept", html)
                    .header("cookie", s)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let again = list(session.clone()).await;
        assert!(!again.contains("id=\"new-token-value\""));

        // npm asking for a package named like a page gets JSON, not HTML.
        let r = http
            .get(format!("{url}/login"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let r = http
            .get(format!("{url}/search"))
            .header(
                "accept",
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        // Sign-in throttling: repeated failures are refused with 429.
        let mut last = 0;
        for _ in 0..12 {
            let r = http
                .post(format!("{url}/login"))
                .header("cookie", &pre)
                .form_(&[
                    ("csrf", pre_token.as_str()),
                    ("username", "dave"),
                    ("password", "wrong password"),
                ])
                .send()
                .await
                .unwrap();
            last = r.status().as_u16();
        }
        assert_eq!(last, 429, "failed sign-ins are throttled");

        // Signing out invalidates the session server-side.
        let r = http
            .post(format!("{url}/logout"))
            .header("cookie", &session)
            .form_(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let r = http
            .get(format!("{url}/settings/tokens"))
            .header("accept", html)
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "the old cookie no longer signs in");
    });
}

/// Number of tokens listed for the session (0 when the table is empty).
async fn server_user(url: &str, http: &reqwest::Client, session: &str) -> usize {
    let body = http
        .get(format!("{url}/settings/tokens"))
        .header("accept", "text/html")
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.matches("data-token-key=").count()
}

/// Signs in over plain HTTP; returns (session cookie, CSRF token of the session).
async fn http_sign_in(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> (String, String) {
    let r = http
        .get(format!("{url}/login"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&r, "tessera_csrf").unwrap();
    let token = csrf_field(&r.text().await.unwrap());
    let r = http
        .post(format!("{url}/login"))
        .header("cookie", &pre)
        .form_(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let session = set_cookie(&r, "tessera_session").unwrap();
    let body = http
        .get(format!("{url}/settings/profile"))
        .header("accept", "text/html")
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (session, csrf_field(&body))
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn csrf_field(body: &str) -> String {
    let i = body.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    body[i..i + body[i..].find('"').unwrap()].to_owned()
}

/// Changing the password keeps the current session and ends the others.
#[test]
fn web_password_change_signs_out_other_sessions() {
    let server = Server::start();
    server.create_user("erin", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (a, a_csrf) = http_sign_in(&http, &url, "erin", PASSWORD).await;
        let (b, _) = http_sign_in(&http, &url, "erin", PASSWORD).await;
        let status = |cookie: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(format!("{url}/settings/profile"))
                    .header("accept", "text/html")
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(status(b.clone()).await, 200);
        // A wrong current password changes nothing.
        let r = http
            .post(format!("{url}/settings/password"))
            .header("cookie", &a)
            .form_(&[
                ("csrf", a_csrf.as_str()),
                ("current", "nope nope"),
                ("new", "a new password"),
                ("confirm", "a new password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Current password is incorrect")
        );
        assert_eq!(status(b.clone()).await, 200);
        let r = http
            .post(format!("{url}/settings/password"))
            .header("cookie", &a)
            .form_(&[
                ("csrf", a_csrf.as_str()),
                ("current", PASSWORD),
                ("new", "a new password"),
                ("confirm", "a new password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(status(a.clone()).await, 200, "the current session stays");
        assert_eq!(
            status(b.clone()).await,
            303,
            "other sessions are signed out"
        );
        http_sign_in(&http, &url, "erin", "a new password").await;
        // Name and email through the same domain call.
        let r = http
            .post(format!("{url}/settings/profile"))
            .header("cookie", &a)
            .form_(&[
                ("csrf", a_csrf.as_str()),
                ("fullname", "Erin Example"),
                ("email", "erin@example.org"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let body = http
            .get(format!("{url}/settings/profile"))
            .header("accept", "text/html")
            .header("cookie", &a)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("Erin Example") && body.contains("erin@example.org"));
    });
}
