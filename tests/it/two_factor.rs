use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// Enables 2FA through the profile API exactly as `npm profile enable-2fa` does;
/// returns the TOTP secret and the recovery codes.
pub(crate) fn enable(
    server: &TestServer,
    token: &str,
    user: &str,
    mode: &str,
) -> (Vec<u8>, Vec<String>) {
    let r = server
        .request(Method::POST, "/-/npm/v1/user", Some(token))
        .json(&json!({"tfa": {"mode": mode, "password": password_of(user)}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let url = r.json::<Value>().unwrap()["tfa"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(&format!("otpauth://totp/Tessera:{user}?")),
        "{url}"
    );
    assert!(url.contains("issuer=Tessera"));
    let secret = secret_from_otpauth(&url);
    assert_eq!(secret.len(), 20, "160-bit secret");
    // Pending until the first valid code.
    let profile: Value = server.get("/-/npm/v1/user", Some(token)).json().unwrap();
    assert_eq!(profile["tfa"]["pending"], true);
    let r = server
        .request(Method::POST, "/-/npm/v1/user", Some(token))
        .json(&json!({"tfa": [otp_now(server, &secret)]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().unwrap()["tfa"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    server.clock.advance_ms(30_000);
    (secret, codes)
}

#[test]
fn auth_and_writes_asks_publish_tokens_for_an_otp_but_not_automation_tokens() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let automation = server.create_token(&login, "alice", json!({"automation": true}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (secret, _) = enable(&server, &login, "alice", "auth-and-writes");
    let npm = server.npm(Some(&login));
    let profile = npm.run(&["profile", "get"]).ok();
    assert!(
        profile.stdout.contains("auth-and-writes"),
        "{}",
        profile.stdout
    );

    npm.publish("otp-t", "1.0.0", &[]).fails_with("EOTP");
    let code = otp_now(&server, &secret);
    npm.publish("otp-t", "1.0.0", &[&format!("--otp={code}")])
        .ok();
    // The same code twice is a replay.
    npm.publish("otp-t", "1.0.1", &[&format!("--otp={code}")])
        .fails_with("EOTP");
    server.clock.advance_ms(30_000);
    npm.run(&["dist-tag", "add", "otp-t@1.0.0", "beta"])
        .fails_with("EOTP");
    npm.run(&[
        "dist-tag",
        "add",
        "otp-t@1.0.0",
        "beta",
        &format!("--otp={}", otp_now(&server, &secret)),
    ])
    .ok();
    // Automation tokens never need an OTP.
    let auto_npm = server.npm(Some(&automation));
    auto_npm.publish("otp-t", "1.0.1", &[]).ok();
    auto_npm
        .run(&["dist-tag", "add", "otp-t@1.0.1", "next"])
        .ok();
    // Token creation asks too.
    npm.run(&["token", "create", "--password", &password_of("alice")])
        .fails_with("EOTP");
    server.clock.advance_ms(30_000);
    npm.run(&[
        "token",
        "create",
        "--password",
        &password_of("alice"),
        &format!("--otp={}", otp_now(&server, &secret)),
    ])
    .ok();
}

#[test]
fn auth_only_asks_at_login_and_token_creation_only() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let (secret, _) = enable(&server, &login, "alice", "auth-only");
    let npm = server.npm(Some(&login));
    npm.publish("authonly-t", "1.0.0", &[]).ok();
    npm.run(&["token", "create", "--password", &password_of("alice")])
        .fails_with("EOTP");
    // Login needs the OTP: 401 + www-authenticate: OTP, then success with npm-otp.
    let body = json!({"name": "alice", "password": password_of("alice")});
    let r = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "OTP");
    assert!(r.text().unwrap().contains("one-time pass"));
    let r = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .header("npm-otp", otp_now(&server, &secret))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // Clock drift of one step either way is tolerated.
    server.clock.advance_ms(30_000);
    use tessera::clock::Clock;
    let previous_step =
        tessera::crypto::totp::code_at(&secret, (server.clock.now_ms() / 1000 + 30) as u64);
    let r = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .header("npm-otp", previous_step)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "a code one step ahead is accepted");
    server.clock.advance_ms(90_000);
    let far = tessera::crypto::totp::code_at(&secret, (server.clock.now_ms() / 1000 + 120) as u64);
    let r = server
        .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
        .header("npm-otp", far)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "four steps away is refused");
}

#[test]
fn recovery_codes_work_once_and_wrong_codes_are_throttled() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let (secret, codes) = enable(&server, &login, "alice", "auth-only");
    let body = json!({"name": "alice", "password": password_of("alice")});
    let attempt = |otp: &str| {
        server
            .request(Method::PUT, "/-/user/org.couchdb.user:alice", None)
            .header("npm-otp", otp)
            .json(&body)
            .send()
            .unwrap()
    };
    assert_eq!(attempt(&codes[0]).status(), 201);
    assert_eq!(
        attempt(&codes[0]).status(),
        401,
        "recovery codes are single-use"
    );
    assert_eq!(attempt(&codes[1]).status(), 201);
    // One failure so far (the reused code); nine more make ten.
    for _ in 0..9 {
        assert_eq!(attempt("000000").status(), 401);
    }
    let throttled = attempt("000000");
    assert_eq!(throttled.status(), 429);
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    // Even the right code waits until the window passes, then works.
    assert_eq!(attempt(&otp_now(&server, &secret)).status(), 429);
    server.clock.advance_ms(15 * 60 * 1000 + 1000);
    assert_eq!(attempt(&otp_now(&server, &secret)).status(), 201);
    let log = server.block_on(async {
        let caller = tessera::domain::auth::authenticate_token(
            &server.app,
            &login,
            tessera::cidr::ClientAddr::Ip([127, 0, 0, 1].into()),
        )
        .await
        .unwrap();
        tessera::domain::security_log::list(&server.app, &caller, 100)
            .await
            .unwrap()
    });
    use tessera::domain::security_log::SecurityEventKind as K;
    let kinds: Vec<K> = log.iter().filter_map(|e| e.kind.get()).collect();
    for kind in [K::TfaEnabled, K::RecoveryCodeUsed, K::OtpFailures, K::Login] {
        assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
    }
}

#[test]
fn package_policies_mode_switch_and_disable() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let automation = server.create_token(&login, "alice", json!({"automation": true}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let npm = server.npm(Some(&login));
    npm.publish("policy-t", "1.0.0", &[]).ok();
    // Requiring 2FA for publishing needs the account to have it.
    npm.run(&["access", "set", "mfa=publish", "policy-t"]).ok();
    npm.publish("policy-t", "1.0.1", &[])
        .fails_with("two-factor");
    let (secret, _) = enable(&server, &login, "alice", "auth-only");
    let code = || otp_now(&server, &secret);
    let auto_npm = server.npm(Some(&automation));
    auto_npm
        .publish("policy-t", "1.0.1", &[])
        .fails_with("disallow tokens");
    npm.publish("policy-t", "1.0.1", &[]).fails_with("EOTP");
    npm.publish("policy-t", "1.0.1", &[&format!("--otp={}", code())])
        .ok();
    server.clock.advance_ms(30_000);
    // mfa=automation: automation tokens may publish again. Changing policy needs an OTP.
    npm.run(&["access", "set", "mfa=automation", "policy-t"])
        .fails_with("one-time password");
    npm.run(&[
        "access",
        "set",
        "mfa=automation",
        "policy-t",
        &format!("--otp={}", code()),
    ])
    .ok();
    server.clock.advance_ms(30_000);
    let access: Value = server
        .get("/-/package/policy-t/access", Some(&login))
        .json()
        .unwrap();
    assert_eq!(access["mfa"], "automation");
    let shown = npm.run(&["access", "get", "status", "policy-t"]).ok();
    assert!(shown.all().contains("mfa=automation"), "{}", shown.all());
    auto_npm.publish("policy-t", "1.0.2", &[]).ok();
    // Switching modes needs an OTP.
    let switch = |otp: Option<String>| {
        let mut r = server.request(Method::POST, "/-/npm/v1/user", Some(&login));
        if let Some(o) = otp {
            r = r.header("npm-otp", o);
        }
        r.json(&json!({"tfa": {"mode": "auth-and-writes", "password": password_of("alice")}}))
            .send()
            .unwrap()
    };
    assert_eq!(switch(None).status(), 401);
    let switched = switch(Some(code()));
    assert_eq!(switched.status(), 200);
    assert_eq!(
        switched.json::<Value>().unwrap()["tfa"]["mode"],
        "auth-and-writes"
    );
    server.clock.advance_ms(30_000);
    // Disable with password and OTP.
    let disable = |otp: Option<String>| {
        let mut r = server.request(Method::POST, "/-/npm/v1/user", Some(&login));
        if let Some(o) = otp {
            r = r.header("npm-otp", o);
        }
        r.json(&json!({"tfa": {"mode": "disable", "password": password_of("alice")}}))
            .send()
            .unwrap()
    };
    assert_eq!(disable(None).status(), 401);
    assert_eq!(disable(Some(code())).status(), 200);
    let profile = npm.run(&["profile", "get"]).ok();
    assert!(
        profile.stdout.contains("two-factor auth: disabled"),
        "{}",
        profile.stdout
    );
    // The TOTP secret and recovery codes are not stored in plaintext.
    let data = server.data_dir_bytes();
    assert!(!data.windows(secret.len()).any(|w| w == secret.as_slice()));
}

/// `npm profile enable-2fa` on a pseudo-terminal prints the QR code and the
/// recovery codes.
#[test]
fn npm_profile_enable_2fa_interactive() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let npm = server.npm(Some(&login));
    use tessera::clock::Clock;
    let script = r#"
import os, pty, sys, time, hmac, hashlib, struct, base64, re, select, fcntl, termios
npm_args, password, now = sys.argv[1:-2], sys.argv[-2], int(sys.argv[-1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp("npm", ["npm"] + npm_args)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
out = b""
def wait_for(pattern, timeout=60):
    global out
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, out)
        if m:
            return m
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            m = re.search(pattern, out)
            if m:
                return m
    sys.stdout.write(out.decode(errors="replace"))
    sys.exit("timed out waiting for %r" % pattern)
wait_for(rb"password")
os.write(fd, password.encode() + b"\r")
m = wait_for(rb"Or enter code: *([A-Z2-7]+)[^A-Z2-7]")
secret = base64.b32decode(m.group(1) + b"=" * (-len(m.group(1)) % 8))
wait_for(rb"OTP code")
mac = hmac.new(secret, struct.pack(">Q", now // 30), hashlib.sha1).digest()
off = mac[-1] & 15
code = "%06d" % ((struct.unpack(">I", mac[off:off+4])[0] & 0x7fffffff) % 1000000)
os.write(fd, code.encode() + b"\r")
wait_for(rb"recovery codes")
try:
    while True:
        chunk = os.read(fd, 65536)
        if not chunk: break
        out += chunk
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let path = npm.dir.path().join("drive.py");
    std::fs::write(&path, script).unwrap();
    let now = (server.clock.now_ms() / 1000).to_string();
    let output = std::process::Command::new("python3")
        .arg(&path)
        .args([
            "profile",
            "enable-2fa",
            "auth-and-writes",
            "--userconfig",
            npm.userconfig.to_str().unwrap(),
        ])
        .args(["--cache", npm.dir.path().join("cache").to_str().unwrap()])
        .arg(password_of("alice"))
        .arg(now)
        .env("HOME", npm.dir.path().join("home"))
        .env("npm_config_audit", "false")
        .env("npm_config_update_notifier", "false")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("Scan into your authenticator app"), "{text}");
    let qr_cells = text.matches("\u{1b}[47m").count() + text.matches("\u{1b}[40m").count();
    assert!(qr_cells > 200, "a QR code was drawn: {text}");
    assert!(text.contains("2FA successfully enabled"), "{text}");
    let profile = npm.run(&["profile", "get"]).ok();
    assert!(
        profile.stdout.contains("auth-and-writes"),
        "{}",
        profile.stdout
    );
}

/// `npm login --auth-type=legacy` on a terminal with 2FA: username, password, then
/// the OTP prompt the server's challenge triggers; and `--otp` on the command line.
#[test]
fn npm_login_with_two_factor() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let (secret, _) = enable(&server, &login, "alice", "auth-only");
    let npm = server.npm(None);
    let password = password_of("alice");
    let code = otp_now(&server, &secret);
    let (status, out) = npm_on_pty(
        &npm,
        &["login", "--auth-type=legacy"],
        &[
            ("Username:", "alice"),
            ("Password:", &password),
            ("(?i)one-time password|OTP", &code),
        ],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Logged in on"), "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().stdout.trim(), "alice");
    // Without a terminal, --otp supplies the code up front.
    server.clock.advance_ms(30_000);
    let other = server.npm(None);
    let (status, out) = npm_on_pty(
        &other,
        &[
            "login",
            "--auth-type=legacy",
            &format!("--otp={}", otp_now(&server, &secret)),
        ],
        &[("Username:", "alice"), ("Password:", &password)],
    );
    assert_eq!(status, 0, "{out}");
    assert_eq!(other.run(&["whoami"]).ok().stdout.trim(), "alice");
}

/// `npm profile enable-2fa <other mode>` and `npm profile disable-2fa` on a terminal:
/// both ask for the password and then a one-time password.
#[test]
fn npm_profile_switch_mode_and_disable_2fa() {
    let server = TestServer::start();
    let login = server.signup("alice");
    let (secret, _) = enable(&server, &login, "alice", "auth-and-writes");
    let npm = server.npm(Some(&login));
    let password = password_of("alice");
    let code = otp_now(&server, &secret);
    let (status, out) = npm_on_pty(
        &npm,
        &["profile", "enable-2fa", "auth-only"],
        &[
            ("password", &password),
            ("(?i)one-time password|OTP", &code),
        ],
    );
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("Two factor authentication mode changed to: auth-only"),
        "{out}"
    );
    server.clock.advance_ms(30_000);
    let code = otp_now(&server, &secret);
    let (status, out) = npm_on_pty(
        &npm,
        &["profile", "disable-2fa"],
        &[
            ("password", &password),
            ("(?i)one-time password|OTP", &code),
        ],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Two factor authentication disabled"), "{out}");
    let profile = npm.run(&["profile", "get"]).ok();
    assert!(
        profile.stdout.contains("two-factor auth: disabled"),
        "{}",
        profile.stdout
    );
}
