//! Configuration in two stages: `RawConfig` (every field optional, merged from the
//! TOML file, then `TESSERA_*` environment variables, then flags — flags win) and
//! `Config` (validated and typed). Nothing below `app` reads the environment.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4880";

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
    /// `s3_endpoint`: S3-compatible endpoint (else `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// `s3_region` (else `AWS_REGION`, else us-east-1).
    pub s3_region: Option<String>,
    /// `s3_access_key_id` (else `AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// `s3_secret_access_key` (else `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: Option<SecretString>,
    /// `open_signup` / `TESSERA_OPEN_SIGNUP`. Default true.
    pub open_signup: Option<bool>,
    /// `anonymous_read` / `TESSERA_ANONYMOUS_READ`. Default true.
    pub anonymous_read: Option<bool>,
    /// `login_token_days` / `TESSERA_LOGIN_TOKEN_DAYS`: lifetime of `npm login` tokens. Default 30.
    pub login_token_days: Option<i64>,
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
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_unpacked_bytes: over.max_unpacked_bytes.or(self.max_unpacked_bytes),
            max_concurrent_publishes: over
                .max_concurrent_publishes
                .or(self.max_concurrent_publishes),
            trusted_proxies: over.trusted_proxies.or(self.trusted_proxies),
            server_key_file: over.server_key_file.or(self.server_key_file),
            log_format: over.log_format.or(self.log_format),
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
    pub max_body_bytes: usize,
    /// Cap on the unpacked size of a published tarball.
    pub max_unpacked_bytes: u64,
    /// Publish bodies held in memory at once; with `max_body_bytes` this bounds the
    /// memory publishes use (see `domain::publish`).
    pub max_concurrent_publishes: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub server_key_file: PathBuf,
    pub json_logs: bool,
}

impl Config {
    pub fn from_raw(raw: RawConfig) -> anyhow::Result<Config> {
        let listen: SocketAddr = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid listen address: {e}"))?;
        let data_dir = match raw.data_dir {
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
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            anyhow::bail!("database URL must start with sqlite:// or postgres://");
        }
        let public_url = match raw.public_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) => anyhow::bail!("public URL must start with http:// or https:// (got {u:?})"),
            None => None,
        };
        let blobs = match raw.blob_store {
            Some(url) if url.starts_with("s3://") => {
                let rest = &url["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    anyhow::bail!("blob store {url:?} names no bucket");
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
                    .map_err(|_| anyhow::anyhow!("invalid trusted proxy range {s:?}"))
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
        if login_token_days < 0 {
            anyhow::bail!("login_token_days must be 0 (never expires) or more");
        }
        Ok(Config {
            listen,
            server_key_file: raw
                .server_key_file
                .unwrap_or_else(|| data_dir.join("server.key")),
            data_dir,
            database_url,
            public_url,
            blobs,
            open_signup: raw.open_signup.unwrap_or(true),
            anonymous_read: raw.anonymous_read.unwrap_or(true),
            login_token_days,
            max_body_bytes: raw.max_body_bytes.unwrap_or(100 * 1024 * 1024),
            max_unpacked_bytes,
            max_concurrent_publishes,
            trusted_proxies,
            json_logs: raw.log_format.as_deref() == Some("json"),
        })
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
