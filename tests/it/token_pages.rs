//! The Access Tokens pages: the Generate New Token page speaks in Tessera's words.

use crate::web::http_sign_in;
use crate::web_harness::Server;

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

#[test]
fn token_types_are_described_in_our_own_words() {
    let server = Server::start();
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
