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
pub(crate) trait FormExt {
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
    let server = Server::live();
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
        row.find(Locator::Css("td.actions button")).await.unwrap().click().await.unwrap();
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
    let server = Server::live();
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
    let server = Server::live();
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
        let secret = crate::harness::secret_from_base32(&secret_text);

        // A wrong code keeps it pending.
        b.fill("Code from your authenticator app", "000000").await;
        b.click_button("Confirm and turn on").await;
        assert!(b.text(".alert.error").await.contains("pending"));
        let code = tessera::crypto::totp::code_at(&secret, now_secs());
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
        let next = tessera::crypto::totp::code_at(&secret, now_secs() + 30);
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
    let server = Server::live();
    server.create_user("carol", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let npm = Npm::new(&url);
        let mut login = npm.command(&["login"]);
        login
            .current_dir(npm.work())
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
    let server = Server::live();
    server.create_user("dave", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let html = "text/html,application/xhtml+xml";
        let cookie_of = set_cookie;
        let csrf_in = csrf_field;

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
pub(crate) async fn http_sign_in(
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

pub(crate) fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    crate::harness::set_cookie_in(r.headers(), name)
}

pub(crate) use crate::harness::csrf_in as csrf_field;

/// Changing the password keeps the current session and ends the others.
#[test]
fn web_password_change_signs_out_other_sessions() {
    let server = Server::live();
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

/// A token from npm's legacy login exchange (`PUT /-/user/org.couchdb.user:NAME`).
async fn login_token(http: &reqwest::Client, url: &str, user: &str) -> String {
    let r = http
        .put(format!("{url}/-/user/org.couchdb.user:{user}"))
        .json(&serde_json::json!({"name": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "npm login of {user}");
    let body: serde_json::Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// `tsr_AbCd…WxYz`, as pages show a token.
fn masked(token: &str) -> String {
    format!("{}…{}", &token[..8], &token[token.len() - 4..])
}

/// Organizations in Chromium: created from the profile menu, a member added, a team
/// created, filled and granted a package; the grant seen on the team page, the
/// credentials on the package settings and organization pages; the member removed,
/// after which the real npm CLI can no longer publish with their token.
#[test]
fn web_organizations_teams_and_who_can_publish() {
    if let Some(why) = browser_missing() {
        eprintln!("{why}");
        return;
    }
    let server = Server::live();
    server.create_user("alice", PASSWORD);
    server.create_user("bob", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login_expiry = date_in_days(30);
        let alice_token = login_token(&http, &url, "alice").await;
        let bob_token = login_token(&http, &url, "bob").await;
        let b = Browser::start(&url).await;
        b.sign_in("alice", PASSWORD).await;

        // Profile menu → Organizations → Create organization.
        b.css("img[alt='Profile picture']")
            .await
            .click()
            .await
            .unwrap();
        b.click_link("Organizations").await;
        b.wait_path("/orgs").await;
        assert_eq!(b.text("h1").await, "Organizations");
        assert!(b.text(".empty").await.contains("not a member"));
        // A user's name is not free: refused, the typed name kept.
        b.fill("Organization name", "bob").await;
        b.click_button("Create organization").await;
        assert!(b.text(".alert.error").await.contains("taken"));
        assert_eq!(prop(&b, "#org-name", "value").await.as_deref(), Some("bob"));
        b.fill("Organization name", "acme").await;
        b.click_button("Create organization").await;
        b.wait_path("/org/acme").await;
        assert_eq!(b.text("h1").await, "@acme");
        assert!(b.text(".alert.ok").await.contains("created"));

        // alice publishes a (restricted) package of the scope with npm.
        let npm_a = Npm::new(&url);
        npm_a.use_token(&alice_token);
        let lib = package_dir("@acme/lib", "1.0.0", "# lib\n");
        let (ok, _, err) = npm_a.run_in(Some(lib.path()), &["publish"]).await;
        assert!(ok, "alice publishes @acme/lib: {err}");

        // Add bob as a developer.
        b.goto("/org/acme").await;
        b.fill("Add member (username)", "bob").await;
        assert_eq!(
            prop(&b, "#new-role", "value").await.as_deref(),
            Some("developer")
        );
        b.click_button("Add member").await;
        let row = b.css("#members li[data-member='bob']").await;
        assert!(row.text().await.unwrap().contains("developer"));
        b.screenshot("org-page").await;

        // A team, whose description is shown as text.
        b.fill("Team name", "release").await;
        b.fill("Description (optional)", "ships <b>lib</b>").await;
        b.click_button("Create team").await;
        b.wait_path("/org/acme/team/release").await;
        assert_eq!(b.text("h1").await, "@acme:release");
        assert_eq!(b.text("p.lead").await, "ships <b>lib</b>");
        b.field("Member to add")
            .await
            .select_by_value("bob")
            .await
            .unwrap();
        b.click_button("Add to team").await;
        b.css("#team-members li[data-member='bob']").await;
        // Read-write on the package; the team page shows it with its permission.
        b.field("Package")
            .await
            .select_by_value("@acme/lib")
            .await
            .unwrap();
        b.field("Permission")
            .await
            .select_by_value("read-write")
            .await
            .unwrap();
        b.click_button("Grant access").await;
        let grant = b.css("#team-packages li[data-package='@acme/lib']").await;
        assert_eq!(
            grant
                .find(Locator::Css(".badge"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "read-write"
        );
        b.screenshot("team-page").await;

        // The grant is what lets bob's token publish.
        let npm_b = Npm::new(&url);
        npm_b.use_token(&bob_token);
        let lib2 = package_dir("@acme/lib", "1.0.1", "# lib\n");
        let (ok, _, err) = npm_b.run_in(Some(lib2.path()), &["publish"]).await;
        assert!(ok, "bob publishes through the team grant: {err}");

        // An automation token of alice's: the riskiest credential.
        let r = http
            .post(format!("{url}/-/npm/v1/tokens"))
            .bearer_auth(&alice_token)
            .json(&serde_json::json!({"password": PASSWORD, "automation": true, "name": "ci"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let automation: serde_json::Value = r.json().await.unwrap();
        let automation_key = automation["key"].as_str().unwrap().to_owned();

        // Package settings: who can write it, through what, and each token.
        b.goto("/package/@acme/lib/settings").await;
        let who = b.text("#publishers").await;
        for line in [
            "alice → maintainer",
            "alice → owner of @acme",
            "bob → team @acme:release (read-write)",
        ] {
            assert!(who.contains(line), "{line:?} in {who}");
        }
        let bob_row = b.css("#publishers tr[data-user='bob']").await;
        let bob_text = bob_row.text().await.unwrap();
        assert!(bob_text.contains(&masked(&bob_token)), "{bob_text}");
        // npm's login gives a token that expires (login_token_days) and works anywhere.
        assert!(
            bob_text.contains("Owned by bob") && bob_text.contains("works from any address"),
            "{bob_text}"
        );
        assert!(!bob_text.contains("never expires"), "{bob_text}");
        let expires = b
            .text("#publishers tr[data-user='bob'] td[data-label='Expires']")
            .await;
        assert!(
            expires == login_expiry || expires == date_in_days(30),
            "expires with the login: {expires}"
        );
        assert!(
            bob_text.contains("Not asked"),
            "no 2FA anywhere: {bob_text}"
        );
        assert!(
            !b.has("#publishers tr[data-user='bob'] a[href^='/settings/tokens']")
                .await,
            "no revoke link for someone else's token"
        );
        b.css(&format!(
            "#publishers a[href='/settings/tokens#token-{automation_key}']"
        ))
        .await;
        b.screenshot("package-who-can-publish").await;

        // The organization page (owner): riskiest first, the log.
        b.goto("/org/acme").await;
        let first = b.css("#credentials tbody tr:first-child").await;
        assert_eq!(
            first.attr("data-token-key").await.unwrap().as_deref(),
            Some(automation_key.as_str())
        );
        assert!(first.text().await.unwrap().contains("automation"));
        let creds = b.text("#credentials").await;
        assert!(
            creds.contains(&masked(&bob_token)) && creds.contains(&masked(&alice_token)),
            "{creds}"
        );
        let log = b.text("#log").await;
        for entry in [
            "bob joined as developer",
            "bob added to team release",
            "team release granted read-write on @acme/lib",
        ] {
            assert!(log.contains(entry), "{entry:?} in {log}");
        }
        b.screenshot("org-page-owner").await;
        // The revoke link of alice's own token leads to it on the Access Tokens page.
        b.css(&format!(
            "#credentials tr[data-token-key='{automation_key}'] td.actions a"
        ))
        .await
        .click()
        .await
        .unwrap();
        b.wait_path("/settings/tokens").await;
        b.css(&format!("tr#token-{automation_key} td.actions button"))
            .await;

        // Page-load timings, logged for the notes (never asserted).
        for (label, path) in [
            ("organizations", "/orgs"),
            ("organization (owner)", "/org/acme"),
            ("team", "/org/acme/team/release"),
            ("package settings + who", "/package/@acme/lib/settings"),
        ] {
            timed(&b, label, path).await;
        }

        // A member (not an owner) sees neither the log nor the credentials.
        let (bob_session, _) = http_sign_in(&http, &url, "bob", PASSWORD).await;
        let page = |path: &str, cookie: &str| {
            let (http, url, path, cookie) = (
                http.clone(),
                url.clone(),
                path.to_owned(),
                cookie.to_owned(),
            );
            async move {
                let r = http
                    .get(format!("{url}{path}"))
                    .header("accept", "text/html")
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (status, body) = page("/org/acme", &bob_session).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("@acme:release") && body.contains("@acme/lib"),
            "bob sees teams and packages"
        );
        for hidden in [
            "id=\"credentials\"",
            "id=\"log\"",
            "Add member",
            "Create team",
        ] {
            assert!(!body.contains(hidden), "a developer does not see {hidden}");
        }
        let (status, body) = page("/package/@acme/lib/settings", &bob_session).await;
        assert_eq!(status, 200, "a read-write team member reaches the settings");
        assert!(
            body.contains("Only the package’s maintainers") && !body.contains("data-token-key")
        );

        // Remove bob (with its confirmation step): his token stops publishing at once.
        b.goto("/org/acme").await;
        let row = b.css("#members li[data-member='bob']").await;
        row.find(Locator::Css("summary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        row.find(Locator::XPath(
            ".//button[normalize-space(.)='Yes, remove bob']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        b.wait_text(".alert.ok", "member list").await;
        assert!(!b.has("#members li[data-member='bob']").await);
        assert!(b.text("#log").await.contains("bob removed"));
        let lib3 = package_dir("@acme/lib", "1.0.2", "# lib\n");
        let (ok, _, err) = npm_b.run_in(Some(lib3.path()), &["publish"]).await;
        assert!(!ok, "bob's token no longer publishes");
        assert!(err.contains("E403") || err.contains("E404"), "{err}");
        let (status, _) = page("/org/acme", &bob_session).await;
        assert_eq!(status, 404, "nor does bob see the organization");
        b.close().await;
    });
}

/// The organization pages over plain HTTP: a stranger gets the same 404 as for an
/// organization that does not exist, forms without the CSRF token or from another
/// site change nothing, a developer cannot grant, and npm still gets the registry.
#[test]
fn web_org_pages_refuse_strangers_and_forged_posts() {
    let server = Server::live();
    for user in ["alice", "bob", "mallory"] {
        server.create_user(user, PASSWORD);
    }
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Set up through the npm wire.
        let alice = login_token(&http, &url, "alice").await;
        let wire = |method: reqwest::Method, path: &str, body: serde_json::Value| {
            let r = http
                .request(method, format!("{url}{path}"))
                .bearer_auth(&alice)
                .json(&body);
            async move { r.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            wire(
                reqwest::Method::POST,
                "/-/org",
                serde_json::json!({"name": "acme"})
            )
            .await,
            201
        );
        assert_eq!(
            wire(
                reqwest::Method::PUT,
                "/-/org/acme/user",
                serde_json::json!({"user": "bob"})
            )
            .await,
            200
        );
        assert_eq!(
            wire(
                reqwest::Method::PUT,
                "/-/org/acme/team",
                serde_json::json!({"name": "release"})
            )
            .await,
            201
        );

        let get = |path: &str, cookie: &str| {
            let r = http
                .get(format!("{url}{path}"))
                .header("accept", "text/html")
                .header("cookie", cookie.to_owned());
            async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let post = |path: &str, cookie: &str, origin: Option<&str>, fields: &[(&str, &str)]| {
            let mut r = http
                .post(format!("{url}{path}"))
                .header("cookie", cookie.to_owned());
            if let Some(o) = origin {
                r = r.header("origin", o.to_owned());
            }
            let r = r.form_(fields);
            async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (alice_s, alice_csrf) = http_sign_in(&http, &url, "alice", PASSWORD).await;
        let (bob_s, bob_csrf) = http_sign_in(&http, &url, "bob", PASSWORD).await;
        let (mallory_s, mallory_csrf) = http_sign_in(&http, &url, "mallory", PASSWORD).await;

        // A stranger: 404, exactly as for an organization that does not exist.
        let (status, acme) = get("/org/acme", &mallory_s).await;
        assert_eq!(status, 404);
        let (status, nothing) = get("/org/no-such-org", &mallory_s).await;
        assert_eq!(status, 404);
        assert_eq!(acme, nothing, "the stranger's page says nothing about acme");
        assert_eq!(get("/org/acme/team/release", &mallory_s).await.0, 404);
        assert_eq!(get("/org/acme/team/developers", &mallory_s).await.0, 404);
        // Signed out: the sign-in page, coming back afterwards.
        let r = http
            .get(format!("{url}/org/acme"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next=%2Forg%2Facme")
        );
        // With a valid CSRF token of her own, the stranger still cannot add herself.
        let (status, _) = post(
            "/org/acme/members",
            &mallory_s,
            None,
            &[
                ("csrf", &mallory_csrf),
                ("user", "mallory"),
                ("role", "owner"),
            ],
        )
        .await;
        assert_eq!(status, 404);

        // The owner's forms refuse a missing or wrong token and a foreign origin.
        let add = [("user", "mallory"), ("role", "owner")];
        assert_eq!(post("/org/acme/members", &alice_s, None, &add).await.0, 403);
        let mut wrong = add.to_vec();
        wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(
            post("/org/acme/members", &alice_s, None, &wrong).await.0,
            403
        );
        let mut right = add.to_vec();
        right.push(("csrf", alice_csrf.as_str()));
        assert_eq!(
            post(
                "/org/acme/members",
                &alice_s,
                Some("https://evil.example"),
                &right
            )
            .await
            .0,
            403
        );
        assert_eq!(
            post("/orgs", &alice_s, None, &[("name", "forged")]).await.0,
            403
        );
        assert_eq!(
            post(
                "/org/acme/team/release/delete",
                &alice_s,
                Some("https://evil.example"),
                &[("csrf", &alice_csrf)]
            )
            .await
            .0,
            403
        );
        assert_eq!(
            get("/org/acme", &mallory_s).await.0,
            404,
            "mallory was not added"
        );
        assert_eq!(
            get("/org/forged", &alice_s).await.0,
            404,
            "no organization was created"
        );
        assert_eq!(
            get("/org/acme/team/release", &alice_s).await.0,
            200,
            "the team is still there"
        );

        // A developer may look but not grant; the page says why.
        let (status, body) = post(
            "/org/acme/team/release/members",
            &bob_s,
            None,
            &[("csrf", &bob_csrf), ("user", "bob")],
        )
        .await;
        assert_eq!(status, 403);
        assert!(body.contains("Only owners and admins of acme"), "{body}");
        let (_, team) = get("/org/acme/team/release", &alice_s).await;
        assert!(
            team.contains("Nobody is in this team yet"),
            "nothing changed"
        );
        // An admin cannot make an owner; the owner can.
        let (status, _) = post(
            "/org/acme/members",
            &alice_s,
            None,
            &[("csrf", &alice_csrf), ("user", "bob"), ("role", "admin")],
        )
        .await;
        assert_eq!(status, 303);
        let (status, body) = post(
            "/org/acme/members",
            &bob_s,
            None,
            &[("csrf", &bob_csrf), ("user", "mallory"), ("role", "owner")],
        )
        .await;
        assert_eq!(status, 403, "{body}");
        let (_, page) = get("/org/acme", &bob_s).await;
        assert!(
            !page.contains("<option value=\"owner\""),
            "an admin is not offered the owner role"
        );
        assert!(
            !page.contains("id=\"log\""),
            "an admin does not see the log"
        );

        // npm on the same paths still talks to the registry.
        for path in ["/orgs", "/org/acme"] {
            let r = http
                .get(format!("{url}{path}"))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{path}");
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{path}"
            );
        }
    });
}
