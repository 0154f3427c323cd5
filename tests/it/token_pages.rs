//! The Access Tokens pages: the Generate New Token page speaks in Tessera's words,
//! and the list fits a 1280-pixel window with a Revoke button that works from the
//! keyboard.

use std::time::Duration;

use fantoccini::key::Key;

use crate::web::{FormExt, csrf_field, http_sign_in};
use crate::web_harness::{Browser, Server, browser_missing};

const PASSWORD: &str = "correct horse battery";

/// npm's descriptions of its three token types, as the seed quotes them
/// (docs.npmjs.com, "Creating and viewing access tokens"). The page must not reuse
/// their sentences.
const NPM_TYPE_TEXTS: [&str; 4] = [
    "a read-only token can only be used to download packages from the registry. It will have permission to read any private package that you have access to. This is recommended for automation and workflows where you are installing packages, but not publishing new ones.",
    "an automation token can download packages and publish new ones, but if you have two-factor authentication (2FA) configured on your account, it will not be enforced. You can use an automation token in continuous integration workflows and other automation systems to publish a package even when you cannot enter a one-time passcode. This is recommended for automation workflows where you are publishing new packages.",
    "a publish token can perform any action on your behalf, including downloading packages, publishing packages, and changing user settings or package settings. If you have two-factor authentication configured on your account, you will be required to enter a one-time passcode when using a publish token. This is recommended for interactive workflows.",
    "In addition, you can specify that the token is only valid for a specific IPv4 address range, using CIDR notation. The token will only be valid when used from the specified IP addresses.",
];

/// Lower-case words of a text, markup removed.
fn words(html: &str) -> Vec<String> {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The first run of `n` consecutive words of `source` that also appears in `page`.
fn shared_run(page: &[String], source: &str, n: usize) -> Option<String> {
    let source = words(source);
    let page = format!(" {} ", page.join(" "));
    source
        .windows(n)
        .map(|w| w.join(" "))
        .find(|run| page.contains(&format!(" {run} ")))
}

/// Posts the Generate New Token form and returns the new token.
async fn create_token(
    http: &reqwest::Client,
    url: &str,
    session: &str,
    fields: &[(&str, &str)],
) -> String {
    let r = http
        .get(format!("{url}/settings/tokens/new"))
        .header("accept", "text/html")
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    let csrf = csrf_field(&r.text().await.unwrap());
    let mut form = vec![("csrf", csrf.as_str()), ("password", PASSWORD)];
    form.extend_from_slice(fields);
    if !fields.iter().any(|(k, _)| *k == "expires") {
        form.push(("expires", "never"));
    }
    let r = http
        .post(format!("{url}/settings/tokens/new"))
        .header("accept", "text/html")
        .header("cookie", session)
        .form_(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 201, "token created: {}", words(&body).join(" "));
    let start = body
        .find("id=\"new-token-value\"")
        .expect("new token shown");
    let start = start + body[start..].find('>').unwrap() + 1;
    body[start..start + body[start..].find('<').unwrap()].to_owned()
}

async fn whoami_status(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(format!("{url}/-/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn token_types_are_described_in_our_own_words() {
    let server = Server::live();
    server.create_user("nina", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, _) = http_sign_in(&http, &url, "nina", PASSWORD).await;
        let page = http
            .get(format!("{url}/settings/tokens/new"))
            .header("accept", "text/html")
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page_words = words(&page);
        // The check itself finds a copied sentence.
        assert!(
            shared_run(&words(NPM_TYPE_TEXTS[0]), NPM_TYPE_TEXTS[0], 6).is_some(),
            "the check can fail"
        );
        for text in NPM_TYPE_TEXTS {
            if let Some(run) = shared_run(&page_words, text, 6) {
                panic!("the page repeats npm's documentation: {run:?}");
            }
        }
        // And it says what each type can and cannot do here.
        let flat = page_words.join(" ");
        for fact in [
            "never writes",
            "without ever asking for a one-time password",
            "cannot change package settings",
            "manages your account and tokens",
            "ipv4 or ipv6 ranges",
            "granular",
            "the refusal names the date",
        ] {
            assert!(flat.contains(fact), "the page says {fact:?}: {flat}");
        }
    });
}

/// The list at 1280×800 with the widest rows it can have, and a keyboard-only revoke.
#[test]
fn token_list_fits_a_desktop_window_and_revokes_from_the_keyboard() {
    if let Some(why) = browser_missing() {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("{why}");
        return;
    }
    let server = Server::live();
    server.create_user("olga", PASSWORD);
    let url = server.url.clone();
    server.rt.block_on(async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, _) = http_sign_in(&http, &url, "olga", PASSWORD).await;
        let ranges = [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.100.0/24",
            "198.51.100.0/24",
            "2001:db8:aaaa:bbbb::/64",
            "2001:db8:cccc:dddd::/64",
            "fd12:3456:789a:1::/64",
        ]
        .join(", ");
        let wide = create_token(
            &http,
            &url,
            &session,
            &[
                ("name", "release pipeline for the monorepo's publishing job"),
                ("kind", "automation"),
                ("cidr", &ranges),
                ("packages", "@acme, @tools, left-pad, right-pad, center-pad"),
                ("permission", "read-write"),
            ],
        )
        .await;
        let expiring = create_token(
            &http,
            &url,
            &session,
            &[("name", "laptop"), ("kind", "publish"), ("expires", "30")],
        )
        .await;
        let plain = create_token(&http, &url, &session, &[("kind", "read-only")]).await;
        for token in [&wide, &expiring, &plain] {
            assert_eq!(whoami_status(&http, &url, token).await, 200, "token works");
        }

        let b = Browser::start(&url).await;
        b.client.set_window_size(1280, 800).await.unwrap();
        b.sign_in("olga", PASSWORD).await;
        b.css("img[alt='Profile picture']").await;
        b.goto("/settings/tokens").await;
        b.css("table.tokens").await;
        b.screenshot("tokens-1280").await;
        let m = b
            .client
            .execute(
                "const w = document.querySelector('.table-wrap');
                 const d = document.documentElement;
                 const buttons = [...document.querySelectorAll('table.tokens td.actions > button[popovertarget^=revoke-]')]
                   .map(e => { const r = e.getBoundingClientRect();
                               return [e.tagName, r.left, r.right, r.top, r.bottom]; });
                 const columns = [...document.querySelectorAll('table.tokens th')]
                   .map(t => Math.round(t.getBoundingClientRect().width));
                 return [window.innerWidth, window.innerHeight, w.scrollWidth, w.clientWidth,
                         d.scrollWidth, d.clientWidth, buttons, columns];",
                vec![],
            )
            .await
            .unwrap();
        let n = |i: usize| m[i].as_f64().unwrap();
        assert!(n(0) >= 1200.0, "a desktop-sized window: {m}");
        assert!(
            n(2) <= n(3),
            "the table fits without scrolling sideways: {m}"
        );
        assert!(n(4) <= n(5), "the page does not scroll sideways: {m}");
        let buttons = m[6].as_array().unwrap();
        assert_eq!(buttons.len(), 3, "one Revoke button per token: {m}");
        for b in buttons {
            assert_eq!(b[0], "BUTTON", "Revoke is a real button: {m}");
            let (left, right) = (b[1].as_f64().unwrap(), b[2].as_f64().unwrap());
            assert!(
                left >= 0.0 && right <= n(0),
                "Revoke is within the window horizontally: {m}"
            );
        }

        // Keyboard only: focus Revoke, Enter opens the confirmation, Escape closes it
        // and gives focus back, Enter again, Tab to the confirm button, Enter revokes.
        let key = b
            .css("tr[data-token-key] td.actions > button")
            .await
            .attr("popovertarget")
            .await
            .unwrap()
            .expect("Revoke names its confirmation");
        let row_key = key.trim_start_matches("revoke-").to_owned();
        let revoke = b
            .css(&format!(
                "tr[data-token-key='{row_key}'] td.actions > button"
            ))
            .await;
        assert_eq!(
            revoke.attr("type").await.unwrap().as_deref(),
            Some("button")
        );
        let label = revoke.attr("aria-label").await.unwrap().unwrap_or_default();
        assert!(
            label.starts_with("Revoke ") && label.contains("tsr_"),
            "the button names the token it revokes: {label:?}"
        );
        let is_open = || {
            let key = key.clone();
            let b = &b;
            async move {
                b.client
                    .execute(
                        "return document.getElementById(arguments[0]).matches(':popover-open')",
                        vec![key.into()],
                    )
                    .await
                    .unwrap()
                    == true
            }
        };
        let active_text = || async {
            let e = b.client.active_element().await.unwrap();
            (
                e.tag_name().await.unwrap(),
                e.text().await.unwrap().trim().to_owned(),
                e.attr("popovertarget").await.unwrap(),
            )
        };
        b.client
            .execute(
                "arguments[0].focus()",
                vec![serde_json::to_value(&revoke).unwrap()],
            )
            .await
            .unwrap();
        assert!(!is_open().await, "the confirmation starts closed");
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(is_open().await, "Enter on Revoke opens the confirmation");
        b.screenshot("token-revoke-keyboard").await;
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Escape)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!is_open().await, "Escape closes the confirmation");
        let (tag, _, target) = active_text().await;
        assert_eq!(
            (tag.to_lowercase().as_str(), target.as_deref()),
            ("button", Some(key.as_str())),
            "focus is back on Revoke"
        );
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(is_open().await, "the confirmation opens again");
        let mut reached = false;
        for _ in 0..6 {
            let (tag, text, _) = active_text().await;
            if tag.eq_ignore_ascii_case("button") && text == "Yes, revoke this token" {
                reached = true;
                break;
            }
            b.client
                .active_element()
                .await
                .unwrap()
                .send_keys(&Key::Tab)
                .await
                .unwrap();
        }
        assert!(
            reached,
            "Tab reaches the confirm button: {:?}",
            active_text().await
        );
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        b.wait_text(".alert.ok", "revoked").await;
        assert!(!b.has(&format!("tr[data-token-key='{row_key}']")).await);
        assert!(b.has("tr[data-token-key]").await, "the other tokens stay");
        let statuses = [
            whoami_status(&http, &url, &wide).await,
            whoami_status(&http, &url, &expiring).await,
            whoami_status(&http, &url, &plain).await,
        ];
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            1,
            "exactly the revoked token is refused: {statuses:?}"
        );
        b.close().await;
    });
}
