//! Configuration in two stages: `RawConfig` (every field optional, merged from the
//! TOML file, then `TESSERA_*` environment variables, then flags — flags win) and
//! `Config` (validated and typed). Nothing below `app` reads the environment.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4880";

/// Default settings that are durations or limits (documented in README's table).
pub mod defaults {
    use std::time::Duration;

    pub const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MIN_BODY_RATE: u64 = 1024;
    pub const SECURITY_LOG_RETENTION_DAYS: u32 = 365;
    pub const TOKEN_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
}

/// How a setting is spelt in each source, for error messages:
/// `max_body_bytes (--max-body-bytes, TESSERA_MAX_BODY_BYTES)`.
pub fn setting(key: &str) -> String {
    format!(
        "{key} (--{}, TESSERA_{})",
        key.replace('_', "-"),
        key.to_ascii_uppercase()
    )
}

fn invalid(key: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid {}: {problem}", setting(key))
}

/// Settings as read from one source; `None` means "not set here".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `listen` / `TESSERA_LISTEN` / `--listen`. Default 127.0.0.1:4880.
    pub listen: Option<String>,
    /// `data_dir` / `TESSERA_DATA_DIR`. Default: the platform data dir + `tessera`.
    pub data_dir: Option<PathBuf>,
    /// `database_url` / `TESSERA_DATABASE_URL`. Default: `sqlite://<data_dir>/tessera.db`.
    pub database_url: Option<DatabaseUrl>,
    /// `public_url` / `TESSERA_PUBLIC_URL`: base of tarball links. Default: `http://<listen>`.
    pub public_url: Option<String>,
    /// `blob_store` / `TESSERA_BLOB_STORE`: a folder path or `s3://bucket[/prefix]`.
    /// Default: `<data_dir>/blobs`.
    pub blob_store: Option<String>,
    /// `s3_endpoint` / `TESSERA_S3_ENDPOINT`: S3-compatible endpoint (else `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// `s3_region` / `TESSERA_S3_REGION` (else `AWS_REGION`, else us-east-1).
    pub s3_region: Option<String>,
    /// `s3_access_key_id` / `TESSERA_S3_ACCESS_KEY_ID` (else `AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// `s3_secret_access_key` / `TESSERA_S3_SECRET_ACCESS_KEY`, no flag (else
    /// `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: Option<SecretString>,
    /// `open_signup` / `TESSERA_OPEN_SIGNUP`. Default true.
    pub open_signup: Option<bool>,
    /// `anonymous_read` / `TESSERA_ANONYMOUS_READ`. Default true.
    pub anonymous_read: Option<bool>,
    /// `login_token_days` / `TESSERA_LOGIN_TOKEN_DAYS`: lifetime of `npm login` tokens. Default 30.
    pub login_token_days: Option<i64>,
    /// `max_write_token_days` / `TESSERA_MAX_WRITE_TOKEN_DAYS`: longest lifetime of a
    /// token that can write; such tokens created without an expiry get it. 0: no cap
    /// (the default). Read-only tokens are not capped.
    pub max_write_token_days: Option<i64>,
    /// `token_rotation_overlap` / `TESSERA_TOKEN_ROTATION_OVERLAP`: how long a rotated
    /// token keeps working beside its successor. Default 24h.
    pub token_rotation_overlap: Option<String>,
    /// `max_body_bytes` / `TESSERA_MAX_BODY_BYTES`. Default 100 MiB.
    pub max_body_bytes: Option<usize>,
    /// `max_unpacked_bytes` / `TESSERA_MAX_UNPACKED_BYTES`: largest unpacked size of a
    /// published tarball. Default 1 GiB.
    pub max_unpacked_bytes: Option<u64>,
    /// `max_concurrent_publishes` / `TESSERA_MAX_CONCURRENT_PUBLISHES`: publishes whose
    /// bodies are read and processed at once (others wait). Default 2.
    pub max_concurrent_publishes: Option<usize>,
    /// `trusted_proxies` / `TESSERA_TRUSTED_PROXIES` (comma-separated CIDRs). Default none.
    pub trusted_proxies: Option<Vec<String>>,
    /// `server_key_file` / `TESSERA_SERVER_KEY_FILE`. Default `<data_dir>/server.key`.
    pub server_key_file: Option<PathBuf>,
    /// `log_format` / `TESSERA_LOG_FORMAT`: `text` or `json`. Default text.
    pub log_format: Option<String>,
    /// `shutdown_timeout` / `TESSERA_SHUTDOWN_TIMEOUT`: how long a stopping server
    /// lets in-flight requests finish. Default 30s.
    pub shutdown_timeout: Option<String>,
    /// `header_read_timeout` / `TESSERA_HEADER_READ_TIMEOUT`: a new connection must
    /// complete its request headers within this time, and any later request within
    /// this time of its first byte. Default 10s.
    pub header_read_timeout: Option<String>,
    /// `idle_timeout` / `TESSERA_IDLE_TIMEOUT`: a keep-alive connection waiting for
    /// its next request, or a client that stops reading a response, is closed after
    /// this long. Default 60s.
    pub idle_timeout: Option<String>,
    /// `body_read_timeout` / `TESSERA_BODY_READ_TIMEOUT`: each period of this length
    /// must bring at least `min_body_rate` × its length of a request body (and at
    /// least one byte), else the request is answered 408. Default 30s.
    pub body_read_timeout: Option<String>,
    /// `min_body_rate` / `TESSERA_MIN_BODY_RATE`: bytes per second. Default 1024.
    pub min_body_rate: Option<u64>,
    /// `security_log_retention_days` / `TESSERA_SECURITY_LOG_RETENTION_DAYS`:
    /// security-log entries older than this are deleted (0: kept for ever). Default 365.
    pub security_log_retention_days: Option<u32>,
    /// `[[uplinks]]` tables; `--uplink NAME=URL` / `TESSERA_UPLINKS` (comma-separated
    /// `NAME=URL` items) replace them. Default: none.
    pub uplinks: Option<Vec<RawUplink>>,
    /// `[[routes]]` tables (file only): which uplink serves which names.
    pub routes: Option<Vec<RawRoute>>,
    /// `min_release_age` / `TESSERA_MIN_RELEASE_AGE` / `--min-release-age`: proxied
    /// versions younger than this are held back (`3d`, `12h`; `0` = off, the default).
    pub min_release_age: Option<String>,
    /// `[[oidc_issuers]]` (`kind`, `url`) / `TESSERA_OIDC_ISSUERS` (comma-separated
    /// `KIND=URL`) / `--oidc-issuer KIND=URL` (repeatable): OpenID Connect issuers
    /// trusted for trusted publishing, besides GitHub Actions, GitLab.com and CircleCI.
    pub oidc_issuers: Option<Vec<RawIssuer>>,
}

/// An OpenID Connect issuer as written in a setting.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    pub kind: String,
    pub url: String,
}

impl RawIssuer {
    /// `github=https://ghe.example.com/_services/token` (flags and environment).
    pub fn parse_pair(text: &str) -> RawIssuer {
        match text.split_once('=') {
            Some((kind, url)) => RawIssuer {
                kind: kind.trim().to_owned(),
                url: url.trim().to_owned(),
            },
            None => RawIssuer {
                kind: text.trim().to_owned(),
                url: String::new(),
            },
        }
    }
}

/// The claim layout an OpenID Connect issuer uses, named after the CI system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiKind {
    Github,
    Gitlab,
    Circleci,
}

impl CiKind {
    pub const ALL: [CiKind; 3] = [CiKind::Github, CiKind::Gitlab, CiKind::Circleci];

    pub fn as_str(self) -> &'static str {
        match self {
            CiKind::Github => "github",
            CiKind::Gitlab => "gitlab",
            CiKind::Circleci => "circleci",
        }
    }

    pub fn parse(text: &str) -> Option<CiKind> {
        CiKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The issuer trusted without configuration. CircleCI's id tokens name one
    /// issuer per organization: `<this>/org/<org id>`.
    pub fn default_issuer(self) -> &'static str {
        match self {
            CiKind::Github => "https://token.actions.githubusercontent.com",
            CiKind::Gitlab => "https://gitlab.com",
            CiKind::Circleci => "https://oidc.circleci.com",
        }
    }
}

/// The stored name (a trust configuration's `kind` column).
impl std::str::FromStr for CiKind {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        CiKind::parse(text).ok_or(())
    }
}

/// A trusted OpenID Connect issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    pub kind: CiKind,
    /// Without a trailing slash.
    pub url: String,
    /// Configured by the operator (else one of the defaults).
    pub configured: bool,
}

/// The repeatable flag is singular: `--oidc-issuer`.
fn invalid_issuer(problem: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid oidc_issuers (--oidc-issuer, TESSERA_OIDC_ISSUERS, [[oidc_issuers]]): {problem}"
    )
}

/// Checks an issuer URL: `https://host[/path]`, or `http://` on a loopback address
/// (for tests and local setups).
fn check_issuer_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not a URL; write KIND=https://host"))?;
    if rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} must be a plain base URL"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() || authority.contains('@') {
        return Err(format!("{text:?} names no host"));
    }
    match scheme {
        "https" => Ok(url.to_owned()),
        "http" => {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(url.to_owned())
            } else {
                Err(format!(
                    "{text:?} uses http://, which is accepted only on a loopback address; use https://"
                ))
            }
        }
        _ => Err(format!("{text:?} must start with https://")),
    }
}

/// One `[[uplinks]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUplink {
    pub name: String,
    pub url: String,
    /// Bearer token sent to the upstream (a secret: never shown or logged).
    pub token: Option<SecretString>,
    /// Default 30s.
    pub timeout: Option<String>,
    /// How long a cached packument is fresh. Default 2m.
    pub max_age: Option<String>,
    /// Default true.
    pub cache_tarballs: Option<bool>,
}

/// One `[[routes]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub pattern: String,
    /// An uplink name or `"none"`.
    pub uplink: String,
    pub min_release_age: Option<String>,
    pub allow_shadowing: Option<bool>,
}

impl RawUplink {
    /// Parses a `NAME=URL` item of `--uplink` / `TESSERA_UPLINKS`.
    pub fn from_flag(item: &str) -> anyhow::Result<RawUplink> {
        let (name, url) = item.trim().split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "invalid uplinks (--uplink, TESSERA_UPLINKS): {item:?} must look like NAME=URL, \
                 e.g. npmjs=https://registry.npmjs.org"
            )
        })?;
        Ok(RawUplink {
            name: name.trim().to_owned(),
            url: url.trim().to_owned(),
            ..RawUplink::default()
        })
    }
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<RawConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Fields of `over` win over fields of `self`.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        RawConfig {
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            database_url: over.database_url.or(self.database_url),
            public_url: over.public_url.or(self.public_url),
            blob_store: over.blob_store.or(self.blob_store),
            s3_endpoint: over.s3_endpoint.or(self.s3_endpoint),
            s3_region: over.s3_region.or(self.s3_region),
            s3_access_key_id: over.s3_access_key_id.or(self.s3_access_key_id),
            s3_secret_access_key: over.s3_secret_access_key.or(self.s3_secret_access_key),
            open_signup: over.open_signup.or(self.open_signup),
            anonymous_read: over.anonymous_read.or(self.anonymous_read),
            login_token_days: over.login_token_days.or(self.login_token_days),
            max_write_token_days: over.max_write_token_days.or(self.max_write_token_days),
            token_rotation_overlap: over.token_rotation_overlap.or(self.token_rotation_overlap),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_unpacked_bytes: over.max_unpacked_bytes.or(self.max_unpacked_bytes),
            max_concurrent_publishes: over
                .max_concurrent_publishes
                .or(self.max_concurrent_publishes),
            trusted_proxies: over.trusted_proxies.or(self.trusted_proxies),
            server_key_file: over.server_key_file.or(self.server_key_file),
            log_format: over.log_format.or(self.log_format),
            shutdown_timeout: over.shutdown_timeout.or(self.shutdown_timeout),
            header_read_timeout: over.header_read_timeout.or(self.header_read_timeout),
            idle_timeout: over.idle_timeout.or(self.idle_timeout),
            body_read_timeout: over.body_read_timeout.or(self.body_read_timeout),
            min_body_rate: over.min_body_rate.or(self.min_body_rate),
            security_log_retention_days: over
                .security_log_retention_days
                .or(self.security_log_retention_days),
            uplinks: over.uplinks.or(self.uplinks),
            routes: over.routes.or(self.routes),
            min_release_age: over.min_release_age.or(self.min_release_age),
            oidc_issuers: over.oidc_issuers.or(self.oidc_issuers),
        }
    }
}

pub use secrecy::{ExposeSecret, SecretString};

/// A database URL. It may carry a password, so `Debug` shows it with the password
/// replaced and there is no `Display`: print `redacted()`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.clone();
        };
        let (authority, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                if userinfo.contains(':') {
                    format!("{scheme}://{user}:***@{host}{tail}")
                } else {
                    format!("{scheme}://{user}@{host}{tail}")
                }
            }
            None => url.clone(),
        }
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(s: String) -> Self {
        DatabaseUrl(s)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        DatabaseUrl(s.to_owned())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// S3-compatible object storage settings.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}

/// Where tarballs are stored.
#[derive(Debug, Clone)]
pub enum BlobConfig {
    Folder(PathBuf),
    S3(S3Config),
}

impl BlobConfig {
    /// Human-readable location.
    pub fn describe(&self) -> String {
        match self {
            BlobConfig::Folder(p) => p.display().to_string(),
            BlobConfig::S3(s) if s.prefix.is_empty() => format!("s3://{}", s.bucket),
            BlobConfig::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Connection limits of the HTTP server (see `server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub shutdown_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Bytes per second.
    pub min_body_rate: u64,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// Without trailing slash; `None` until the listener is bound when not configured.
    pub public_url: Option<String>,
    pub blobs: BlobConfig,
    pub open_signup: bool,
    pub anonymous_read: bool,
    pub login_token_days: i64,
    /// 0: tokens that can write may live for ever.
    pub max_write_token_days: i64,
    /// How long a rotated token keeps working beside its successor.
    pub token_rotation_overlap: Duration,
    pub max_body_bytes: usize,
    /// Cap on the unpacked size of a published tarball.
    pub max_unpacked_bytes: u64,
    /// Publish bodies held in memory at once; with `max_body_bytes` this bounds the
    /// memory publishes use (see `domain::publish`).
    pub max_concurrent_publishes: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub server_key_file: PathBuf,
    pub log_format: LogFormat,
    pub limits: ConnectionLimits,
    /// 0: security-log entries are kept for ever.
    pub security_log_retention_days: u32,
    /// Upstream registries and the routes that choose between them.
    pub uplinks: UplinkSettings,
    /// Trusted OpenID Connect issuers: the defaults, then the configured ones.
    pub oidc_issuers: Vec<OidcIssuer>,
}

/// One upstream registry.
#[derive(Debug, Clone)]
pub struct Uplink {
    pub name: String,
    /// Without trailing slash.
    pub url: String,
    pub token: Option<SecretString>,
    pub timeout: Duration,
    pub max_age: Duration,
    pub cache_tarballs: bool,
}

/// Where a route sends the names it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// Index into `UplinkSettings::uplinks`.
    Uplink(usize),
    /// Local only: never proxied.
    None,
}

/// A package-name pattern: `*` matches within one segment (not `/`), `**` anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    pub fn parse(text: &str) -> Result<NamePattern, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("the pattern is empty".into());
        }
        if t.len() > 214 {
            return Err("the pattern is longer than a package name can be".into());
        }
        let ok = t.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '-' | '.' | '_' | '~' | '@' | '/' | '*')
        });
        if !ok {
            return Err(format!(
                "{t:?} may hold only lower-case package-name characters, `@`, `/` and `*`"
            ));
        }
        if t.contains("***") {
            return Err(format!("{t:?}: write `*` or `**`, not `***`"));
        }
        Ok(NamePattern(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// One validated `[[routes]]` table.
#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: NamePattern,
    pub target: RouteTarget,
    /// Overrides the global `min_release_age` for the names it matches.
    pub min_release_age: Option<Duration>,
    pub allow_shadowing: bool,
}

/// What the routes decide for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChoice {
    /// `None`: the name is local only.
    pub uplink: Option<usize>,
    /// Zero: no cooldown.
    pub min_release_age: Duration,
    pub allow_shadowing: bool,
    /// The matching route's pattern, if a route matched.
    pub pattern: Option<String>,
}

/// Uplinks, routes and the release cooldown.
#[derive(Debug, Clone, Default)]
pub struct UplinkSettings {
    pub uplinks: Vec<Uplink>,
    pub routes: Vec<Route>,
    /// Zero: off.
    pub min_release_age: Duration,
}

impl UplinkSettings {
    pub fn is_empty(&self) -> bool {
        self.uplinks.is_empty()
    }

    /// First matching route wins; no match sends the name to the first uplink.
    pub fn route(&self, name: &str) -> RouteChoice {
        match self.routes.iter().find(|r| r.pattern.matches(name)) {
            Some(r) => RouteChoice {
                uplink: match r.target {
                    RouteTarget::Uplink(i) => Some(i),
                    RouteTarget::None => None,
                },
                min_release_age: r.min_release_age.unwrap_or(self.min_release_age),
                allow_shadowing: r.allow_shadowing,
                pattern: Some(r.pattern.as_str().to_owned()),
            },
            None => RouteChoice {
                uplink: (!self.uplinks.is_empty()).then_some(0),
                min_release_age: self.min_release_age,
                allow_shadowing: false,
                pattern: None,
            },
        }
    }
}

/// Parses a release age: `0` (off), `3d`, `12h`, `90m`; at most a year.
fn release_age(key: &str, text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        invalid(
            key,
            format!("{text:?} is not a duration ({e}); write for example 3d, 12h or 0 (off)"),
        )
    })?;
    if d > Duration::from_secs(366 * 24 * 3600) {
        return Err(invalid(key, format!("{text:?} is longer than a year")));
    }
    Ok(d)
}

/// Checks an uplink URL: http(s) with a host, no query; returned without trailing `/`.
fn check_uplink_url(name: &str, url: &str) -> anyhow::Result<String> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "invalid uplinks: uplink {name:?} has url {:?}: {why}",
            redact_url(url)
        )
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("it must start with http:// or https://"));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(bad("it must start with http:// or https://"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || rest.contains(['?', '#', ' ']) {
        return Err(bad(
            "it must be a base URL with a host and no credentials (put a credential in token)",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn uplink_settings(raw: &RawConfig) -> anyhow::Result<UplinkSettings> {
    let min_release_age = match &raw.min_release_age {
        Some(t) => release_age("min_release_age", t)?,
        None => Duration::ZERO,
    };
    let mut uplinks: Vec<Uplink> = Vec::new();
    for u in raw.uplinks.iter().flatten() {
        let name = u.name.trim();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            anyhow::bail!(
                "invalid uplinks: {name:?} is not an uplink name (letters, digits, `-`, `_`, `.`)"
            );
        }
        if name == "none" {
            anyhow::bail!("invalid uplinks: \"none\" is reserved (a route to no uplink)");
        }
        if uplinks.iter().any(|x| x.name == name) {
            anyhow::bail!("invalid uplinks: the name {name:?} is used twice");
        }
        let url = check_uplink_url(name, u.url.trim())?;
        let field = |key: &str, value: Option<&str>, default: Duration| match value {
            None => Ok(default),
            Some(t) => match humantime::parse_duration(t.trim()) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(7 * 86400) => {
                    Ok(d)
                }
                Ok(_) => Err(anyhow::anyhow!(
                    "invalid uplinks: uplink {name:?} has {key} {t:?}, outside 1s to 7days"
                )),
                Err(e) => Err(anyhow::anyhow!(
                    "invalid uplinks: uplink {name:?} has {key} {t:?}, not a duration ({e}); \
                     write for example 30s, 2m or 1h"
                )),
            },
        };
        let timeout = field("timeout", u.timeout.as_deref(), Duration::from_secs(30))?;
        let max_age = field("max_age", u.max_age.as_deref(), Duration::from_secs(120))?;
        if let Some(token) = &u.token
            && (token.expose_secret().trim().is_empty()
                || token.expose_secret().chars().any(char::is_control))
        {
            anyhow::bail!("invalid uplinks: uplink {name:?} has an empty or unprintable token");
        }
        uplinks.push(Uplink {
            name: name.to_owned(),
            url,
            token: u.token.clone(),
            timeout,
            max_age,
            cache_tarballs: u.cache_tarballs.unwrap_or(true),
        });
    }
    let mut routes = Vec::new();
    for r in raw.routes.iter().flatten() {
        let pattern = NamePattern::parse(&r.pattern)
            .map_err(|e| anyhow::anyhow!("invalid routes: pattern {:?}: {e}", r.pattern))?;
        let target = match r.uplink.trim() {
            "none" => RouteTarget::None,
            name => RouteTarget::Uplink(uplinks.iter().position(|u| u.name == name).ok_or_else(
                || {
                    anyhow::anyhow!(
                        "invalid routes: the route for {:?} names uplink {name:?}, which is \
                             not configured (uplinks: {}; or \"none\")",
                        r.pattern,
                        if uplinks.is_empty() {
                            "none configured".to_owned()
                        } else {
                            uplinks
                                .iter()
                                .map(|u| u.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )
                },
            )?),
        };
        let min_release_age = r
            .min_release_age
            .as_deref()
            .map(|t| release_age("min_release_age", t))
            .transpose()
            .map_err(|e| anyhow::anyhow!("route {:?}: {e}", r.pattern))?;
        routes.push(Route {
            pattern,
            target,
            min_release_age,
            allow_shadowing: r.allow_shadowing.unwrap_or(false),
        });
    }
    Ok(UplinkSettings {
        uplinks,
        routes,
        min_release_age,
    })
}

/// Largest accepted `max_body_bytes`: a publish body is held in memory (base64 JSON).
const MAX_BODY_BYTES_CEILING: usize = 1024 * 1024 * 1024;
/// Smallest accepted `max_body_bytes`: below this not even a login fits.
const MAX_BODY_BYTES_FLOOR: usize = 1024;
/// Longest accepted `login_token_days` (ten years) and retention (a century).
const MAX_LOGIN_TOKEN_DAYS: i64 = 3650;
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Accepted range of every timeout.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// Largest accepted `min_body_rate` (100 MiB/s): anything above cuts ordinary uploads.
const MAX_MIN_BODY_RATE: u64 = 100 * 1024 * 1024;

/// Longest rotation overlap: a rotated token should stop working soon.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a rotation overlap (`0s` to 30 days), for the setting and for one rotation.
pub fn parse_overlap(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write for example 1h, 24h or 7d")
    })?;
    if parsed > MAX_ROTATION_OVERLAP {
        return Err(format!("{text:?} is longer than 30 days"));
    }
    Ok(parsed)
}

/// Parses a duration setting such as `30s`, `2m` or `1h 30m`, within `TIMEOUT_RANGE`.
fn duration(key: &str, value: Option<&str>, default: Duration) -> anyhow::Result<Duration> {
    let Some(text) = value else {
        return Ok(default);
    };
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            key,
            format!("{text:?} is not a duration ({e}); write for example 30s, 2m or 1h"),
        )
    })?;
    let (low, high) = TIMEOUT_RANGE;
    if parsed < low || parsed > high {
        return Err(invalid(
            key,
            format!(
                "{text:?} is outside the accepted range {} to {}",
                humantime::format_duration(low),
                humantime::format_duration(high)
            ),
        ));
    }
    Ok(parsed)
}

/// Checks a database URL: SQLite must name a file (an in-memory database would be
/// one empty database per pooled connection), PostgreSQL must use its own scheme.
fn check_database_url(url: &str) -> anyhow::Result<()> {
    const KEY: &str = "database_url";
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or("");
        if path.is_empty() {
            return Err(invalid(
                KEY,
                format!("{url:?} names no database file; write sqlite:///path/to/tessera.db"),
            ));
        }
        if path == ":memory:" || rest.contains("mode=memory") {
            return Err(invalid(
                KEY,
                format!(
                    "{url:?} is an in-memory database, which would lose every write; \
                     name a file instead"
                ),
            ));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(invalid(
        KEY,
        format!(
            "{:?} must start with sqlite:// or postgres://",
            redact_url(url)
        ),
    ))
}

/// Checks a public URL: http(s) with a host.
fn check_public_url(url: &str) -> anyhow::Result<String> {
    const KEY: &str = "public_url";
    let Some((_, rest)) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
    else {
        return Err(invalid(
            KEY,
            format!("{url:?} must start with http:// or https://"),
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.chars().any(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(invalid(
            KEY,
            format!("{url:?} must be a base URL with a host, e.g. https://npm.example.com"),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl Config {
    /// Validates every setting; an error names the setting (its TOML key, flag and
    /// environment variable) and the value that was refused.
    pub fn from_raw(raw: RawConfig) -> anyhow::Result<Config> {
        let uplinks = uplink_settings(&raw)?;
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.trim().parse().map_err(|e| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an IP address and port ({e})"),
            )
        })?;
        let data_dir = match raw.data_dir {
            Some(d) if d.as_os_str().is_empty() => {
                return Err(invalid("data_dir", "the path is empty"));
            }
            Some(d) => d,
            None => dirs::data_dir()
                .ok_or_else(|| anyhow::anyhow!("no platform data directory; pass --data-dir"))?
                .join("tessera"),
        };
        let database_url = raw.database_url.unwrap_or_else(|| {
            DatabaseUrl(format!(
                "sqlite://{}",
                data_dir.join("tessera.db").display()
            ))
        });
        check_database_url(&database_url)?;
        let public_url = raw
            .public_url
            .as_deref()
            .map(check_public_url)
            .transpose()?;
        let blobs = match raw.blob_store {
            Some(url) if url.starts_with("s3://") => {
                let rest = &url["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("blob_store", format!("{url:?} names no bucket")));
                }
                BlobConfig::S3(S3Config {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                    endpoint: raw.s3_endpoint,
                    region: raw.s3_region,
                    access_key_id: raw.s3_access_key_id,
                    secret_access_key: raw.s3_secret_access_key,
                })
            }
            Some(url) if url.contains("://") => {
                return Err(invalid(
                    "blob_store",
                    format!("{url:?} is neither a folder nor s3://bucket[/prefix]"),
                ));
            }
            Some(path) if path.trim().is_empty() => {
                return Err(invalid("blob_store", "the path is empty"));
            }
            Some(path) => BlobConfig::Folder(PathBuf::from(path)),
            None => BlobConfig::Folder(data_dir.join("blobs")),
        };
        let trusted_proxies = raw
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "trusted_proxies",
                            format!("{s:?} is not an address or CIDR range"),
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let max_unpacked_bytes = raw
            .max_unpacked_bytes
            .unwrap_or(crate::npm::tarball::DEFAULT_MAX_UNPACKED_BYTES);
        if max_unpacked_bytes == 0 {
            anyhow::bail!("max_unpacked_bytes must be at least 1");
        }
        let max_concurrent_publishes = raw.max_concurrent_publishes.unwrap_or(2);
        if max_concurrent_publishes == 0 {
            anyhow::bail!("max_concurrent_publishes must be at least 1");
        }
        let login_token_days = raw.login_token_days.unwrap_or(30);
        if !(0..=MAX_LOGIN_TOKEN_DAYS).contains(&login_token_days) {
            return Err(invalid(
                "login_token_days",
                format!(
                    "{login_token_days} is outside 0 (never expires) to {MAX_LOGIN_TOKEN_DAYS}"
                ),
            ));
        }
        let max_write_token_days = raw.max_write_token_days.unwrap_or(0);
        if !(0..=MAX_LOGIN_TOKEN_DAYS).contains(&max_write_token_days) {
            return Err(invalid(
                "max_write_token_days",
                format!("{max_write_token_days} is outside 0 (no cap) to {MAX_LOGIN_TOKEN_DAYS}"),
            ));
        }
        let token_rotation_overlap = match raw.token_rotation_overlap.as_deref() {
            None => defaults::TOKEN_ROTATION_OVERLAP,
            Some(text) => {
                parse_overlap(text).map_err(|problem| invalid("token_rotation_overlap", problem))?
            }
        };
        let max_body_bytes = raw.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES);
        if !(MAX_BODY_BYTES_FLOOR..=MAX_BODY_BYTES_CEILING).contains(&max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                format!(
                    "{max_body_bytes} is outside {MAX_BODY_BYTES_FLOOR} to {MAX_BODY_BYTES_CEILING} bytes"
                ),
            ));
        }
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?} is not a log format; use text or json"),
                ));
            }
        };
        let min_body_rate = raw.min_body_rate.unwrap_or(defaults::MIN_BODY_RATE);
        if min_body_rate > MAX_MIN_BODY_RATE {
            return Err(invalid(
                "min_body_rate",
                format!("{min_body_rate} bytes per second is above {MAX_MIN_BODY_RATE}"),
            ));
        }
        let limits = ConnectionLimits {
            shutdown_timeout: duration(
                "shutdown_timeout",
                raw.shutdown_timeout.as_deref(),
                defaults::SHUTDOWN_TIMEOUT,
            )?,
            header_read_timeout: duration(
                "header_read_timeout",
                raw.header_read_timeout.as_deref(),
                defaults::HEADER_READ_TIMEOUT,
            )?,
            idle_timeout: duration(
                "idle_timeout",
                raw.idle_timeout.as_deref(),
                defaults::IDLE_TIMEOUT,
            )?,
            body_read_timeout: duration(
                "body_read_timeout",
                raw.body_read_timeout.as_deref(),
                defaults::BODY_READ_TIMEOUT,
            )?,
            min_body_rate,
        };
        let security_log_retention_days = raw
            .security_log_retention_days
            .unwrap_or(defaults::SECURITY_LOG_RETENTION_DAYS);
        if security_log_retention_days > MAX_RETENTION_DAYS {
            return Err(invalid(
                "security_log_retention_days",
                format!(
                    "{security_log_retention_days} is above {MAX_RETENTION_DAYS} (0 keeps entries for ever)"
                ),
            ));
        }
        let server_key_file = match raw.server_key_file {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(invalid("server_key_file", "the path is empty"));
            }
            Some(p) => p,
            None => data_dir.join("server.key"),
        };
        let mut oidc_issuers: Vec<OidcIssuer> = CiKind::ALL
            .into_iter()
            .map(|kind| OidcIssuer {
                kind,
                url: kind.default_issuer().to_owned(),
                configured: false,
            })
            .collect();
        for raw_issuer in raw.oidc_issuers.unwrap_or_default() {
            let kind = CiKind::parse(raw_issuer.kind.trim()).ok_or_else(|| {
                invalid_issuer(format!(
                    "{:?} is not an issuer kind; write github=URL, gitlab=URL or circleci=URL",
                    raw_issuer.kind
                ))
            })?;
            let url = check_issuer_url(&raw_issuer.url).map_err(invalid_issuer)?;
            oidc_issuers.retain(|i| i.url != url);
            oidc_issuers.push(OidcIssuer {
                kind,
                url,
                configured: true,
            });
        }
        Ok(Config {
            oidc_issuers,
            listen,
            server_key_file,
            data_dir,
            database_url,
            public_url,
            blobs,
            open_signup: raw.open_signup.unwrap_or(true),
            anonymous_read: raw.anonymous_read.unwrap_or(true),
            login_token_days,
            max_write_token_days,
            token_rotation_overlap,
            max_body_bytes,
            max_unpacked_bytes,
            max_concurrent_publishes,
            trusted_proxies,
            log_format,
            limits,
            security_log_retention_days,
            uplinks,
        })
    }

    /// The issuer a new trust configuration of `kind` is bound to when it names none:
    /// the last one the operator configured for that kind, else the default.
    pub fn primary_issuer(&self, kind: CiKind) -> Option<&OidcIssuer> {
        self.oidc_issuers.iter().rev().find(|i| i.kind == kind)
    }

    /// A configuration for tests and embedding: everything under `dir`, ephemeral port.
    pub fn for_data_dir(dir: &Path) -> Config {
        Config::from_raw(RawConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.to_owned()),
            ..Default::default()
        })
        .expect("defaults are valid")
    }
}

/// Creates `path` as a directory (with its parents) unless it exists; the error
/// names the setting and the path.
pub fn ensure_dir(key: &str, path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(anyhow::anyhow!(
            "{} {} is not a directory",
            setting(key),
            path.display()
        )),
        Err(_) => std::fs::create_dir_all(path).map_err(|e| {
            anyhow::anyhow!(
                "{} {}: cannot create the directory: {e}",
                setting(key),
                path.display()
            )
        }),
    }
}

/// Hides a password in a database URL.
pub fn redact_url(url: &str) -> String {
    DatabaseUrl(url.to_owned()).redacted()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut RawConfig)) -> anyhow::Result<Config> {
        let mut raw = RawConfig {
            data_dir: Some("/tmp/tessera-config-test".into()),
            ..Default::default()
        };
        f(&mut raw);
        Config::from_raw(raw)
    }

    #[track_caller]
    fn refused(f: impl FnOnce(&mut RawConfig), needle: &str) {
        let err = with(f).expect_err("setting should be refused").to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }

    #[test]
    fn durations_take_units_and_stay_in_range() {
        let c = with(|r| {
            r.shutdown_timeout = Some("2m".into());
            r.header_read_timeout = Some("1500ms".into());
            r.idle_timeout = Some("1h".into());
        })
        .unwrap();
        assert_eq!(c.limits.shutdown_timeout, Duration::from_secs(120));
        assert_eq!(c.limits.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(3600));
        assert_eq!(c.limits.body_read_timeout, defaults::BODY_READ_TIMEOUT);
        refused(
            |r| r.shutdown_timeout = Some("30".into()),
            "shutdown_timeout (--shutdown-timeout, TESSERA_SHUTDOWN_TIMEOUT)",
        );
        refused(|r| r.idle_timeout = Some("0s".into()), "idle_timeout");
        refused(|r| r.header_read_timeout = Some("2d".into()), "outside");
        refused(
            |r| r.body_read_timeout = Some("soon".into()),
            "not a duration",
        );
    }

    #[test]
    fn uplinks_routes_and_cooldown() {
        let file: RawConfig = toml::from_str(
            r#"
            min_release_age = "3d"
            [[uplinks]]
            name = "npmjs"
            url = "https://registry.npmjs.org/"
            token = "s3cret"
            [[uplinks]]
            name = "mirror"
            url = "http://127.0.0.1:9/"
            timeout = "5s"
            max_age = "10m"
            cache_tarballs = false
            [[routes]]
            pattern = "@acme/*"
            uplink = "none"
            [[routes]]
            pattern = "internal-*"
            uplink = "mirror"
            min_release_age = "0"
            allow_shadowing = true
            "#,
        )
        .unwrap();
        let mut raw = file;
        raw.data_dir = Some("/tmp/x".into());
        let c = Config::from_raw(raw).unwrap();
        let u = &c.uplinks;
        assert_eq!(u.uplinks[0].url, "https://registry.npmjs.org");
        assert_eq!(u.uplinks[0].timeout, Duration::from_secs(30));
        assert_eq!(u.uplinks[0].max_age, Duration::from_secs(120));
        assert!(u.uplinks[0].cache_tarballs && !u.uplinks[1].cache_tarballs);
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(u.route("@acme/x").uplink, None);
        let internal = u.route("internal-lib");
        assert_eq!(internal.uplink, Some(1));
        assert_eq!(internal.min_release_age, Duration::ZERO);
        assert!(internal.allow_shadowing);
        let other = u.route("lodash");
        assert_eq!(other.uplink, Some(0));
        assert_eq!(other.min_release_age, Duration::from_secs(3 * 86400));
        assert!(!other.allow_shadowing);
        refused(
            |r| {
                r.uplinks = Some(vec![RawUplink::from_flag("a=ftp://x").unwrap()]);
            },
            "http://",
        );
        refused(
            |r| {
                r.uplinks = Some(vec![RawUplink::from_flag("a=http://x").unwrap()]);
                r.routes = Some(vec![RawRoute {
                    pattern: "**".into(),
                    uplink: "b".into(),
                    ..Default::default()
                }]);
            },
            "not configured",
        );
        refused(
            |r| r.min_release_age = Some("soon".into()),
            "min_release_age",
        );
        assert!(RawUplink::from_flag("nourl").is_err());
    }

    #[test]
    fn name_patterns() {
        let p = |s: &str| NamePattern::parse(s).unwrap();
        assert!(p("@acme/*").matches("@acme/x"));
        assert!(!p("@acme/*").matches("@acmex/x"));
        assert!(!p("@acme/*").matches("acme"));
        assert!(p("internal-*").matches("internal-lib"));
        assert!(!p("internal-*").matches("@s/internal-lib"));
        assert!(p("**").matches("@s/x") && p("**").matches("x"));
        assert!(p("*").matches("x") && !p("*").matches("@s/x"));
        assert!(NamePattern::parse("").is_err());
        assert!(NamePattern::parse("A*").is_err());
    }

    #[test]
    fn database_urls_must_name_a_store() {
        for bad in [
            "sqlite://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite://?mode=rwc",
            "sqlite://db?mode=memory",
            "mysql://x",
            "postgresfoo://x",
            "/var/lib/tessera.db",
        ] {
            refused(|r| r.database_url = Some(bad.into()), "database_url");
        }
        refused(
            |r| r.database_url = Some("mysql://u:secret@h/db".into()),
            "u:***@h/db",
        );
        assert!(
            !with(|r| r.database_url = Some("mysql://u:secret@h/db".into()))
                .unwrap_err()
                .to_string()
                .contains("secret")
        );
        for good in [
            "sqlite:///var/lib/t.db",
            "sqlite://t.db",
            "postgres://u@h/db",
            "postgresql://h/db",
        ] {
            with(|r| r.database_url = Some(good.into())).unwrap();
        }
    }

    #[test]
    fn oidc_issuers_are_checked() {
        let issuer = |kind: &str, url: &str| RawIssuer {
            kind: kind.into(),
            url: url.into(),
        };
        let c = with(|r| {
            r.oidc_issuers = Some(vec![
                issuer("gitlab", "https://gitlab.example.com/"),
                issuer("github", "http://127.0.0.1:9000/gh"),
            ])
        })
        .unwrap();
        assert_eq!(c.oidc_issuers.len(), 5);
        assert_eq!(
            c.primary_issuer(CiKind::Gitlab).unwrap().url,
            "https://gitlab.example.com"
        );
        assert_eq!(
            c.primary_issuer(CiKind::Circleci).unwrap().url,
            "https://oidc.circleci.com"
        );
        for (kind, url, needle) in [
            ("forgejo", "https://x.example", "not an issuer kind"),
            ("gitlab", "http://gitlab.example.com", "loopback"),
            ("gitlab", "ftp://x", "https://"),
            ("gitlab", "", "not a URL"),
            ("gitlab", "https://", "not a URL"),
            ("gitlab", "https://:443", "no host"),
            ("gitlab", "https://h/?x", "plain base URL"),
        ] {
            refused(|r| r.oidc_issuers = Some(vec![issuer(kind, url)]), needle);
        }
        assert_eq!(
            RawIssuer::parse_pair("gitlab=https://g.example"),
            issuer("gitlab", "https://g.example")
        );
    }

    #[test]
    fn limits_and_formats_are_checked() {
        refused(|r| r.max_body_bytes = Some(0), "max_body_bytes");
        refused(|r| r.max_body_bytes = Some(usize::MAX), "max_body_bytes");
        refused(|r| r.log_format = Some("yaml".into()), "log_format");
        refused(|r| r.login_token_days = Some(-1), "login_token_days");
        refused(|r| r.login_token_days = Some(i64::MAX), "login_token_days");
        refused(
            |r| r.security_log_retention_days = Some(u32::MAX),
            "security_log_retention_days",
        );
        refused(|r| r.min_body_rate = Some(u64::MAX), "min_body_rate");
        refused(|r| r.listen = Some("localhost".into()), "listen");
        refused(
            |r| r.trusted_proxies = Some(vec!["10.0.0.0/33".into()]),
            "trusted_proxies",
        );
        refused(|r| r.public_url = Some("ftp://x".into()), "public_url");
        refused(|r| r.public_url = Some("https://".into()), "public_url");
        refused(|r| r.blob_store = Some("s3://".into()), "blob_store");
        refused(|r| r.blob_store = Some("gs://bucket".into()), "blob_store");
        let c = with(|r| {
            r.log_format = Some("json".into());
            r.security_log_retention_days = Some(0);
            r.min_body_rate = Some(0);
        })
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.security_log_retention_days, 0);
    }
}
