//! Operator commands that run beside the server: serve, user add, migrate, gc,
//! config show. They use the domain layer and the store directly, never HTTP.

use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::output::outln;
use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat, RawConfig};

/// Server settings: each flag also reads its `TESSERA_*` variable; both win over
/// the `--config` file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:4880].
    #[arg(long, env = "TESSERA_LISTEN")]
    listen: Option<String>,
    /// Data directory [default: platform data dir + /tessera].
    #[arg(long, env = "TESSERA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [default: SQLite in the data dir].
    #[arg(long, env = "TESSERA_DATABASE_URL")]
    database_url: Option<crate::config::DatabaseUrl>,
    /// Public base URL for links (behind a proxy).
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    public_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Blob folder, or s3://bucket[/prefix] [default: <data dir>/blobs].
    #[arg(long, env = "TESSERA_BLOB_STORE")]
    blob_store: Option<String>,
    /// S3-compatible endpoint for an s3:// blob store [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, env = "TESSERA_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "TESSERA_S3_REGION")]
    s3_region: Option<String>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID]. Its secret has no flag (a
    /// command line is visible to every local user): TESSERA_S3_SECRET_ACCESS_KEY,
    /// AWS_SECRET_ACCESS_KEY or the file's s3_secret_access_key.
    #[arg(long, env = "TESSERA_S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// Allow anyone to sign up [default: true].
    #[arg(long, env = "TESSERA_OPEN_SIGNUP")]
    open_signup: Option<bool>,
    /// Allow reads without logging in [default: true].
    #[arg(long, env = "TESSERA_ANONYMOUS_READ")]
    anonymous_read: Option<bool>,
    /// Lifetime in days of tokens issued by `npm login` (0: never expire) [default: 30].
    #[arg(long, env = "TESSERA_LOGIN_TOKEN_DAYS")]
    login_token_days: Option<i64>,
    /// Longest lifetime in days of a token that can write; such tokens created
    /// without an expiry get it (0: no cap) [default: 0].
    #[arg(long, env = "TESSERA_MAX_WRITE_TOKEN_DAYS")]
    max_write_token_days: Option<i64>,
    /// How long a rotated token keeps working beside its successor, e.g. 24h
    /// [default: 24h].
    #[arg(long, env = "TESSERA_TOKEN_ROTATION_OVERLAP")]
    token_rotation_overlap: Option<String>,
    /// Largest accepted request body in bytes [default: 104857600].
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest unpacked size of a published tarball in bytes [default: 1073741824].
    #[arg(long, env = "TESSERA_MAX_UNPACKED_BYTES")]
    max_unpacked_bytes: Option<u64>,
    /// Publishes read and processed at once; memory for publish bodies stays below
    /// this × max-body-bytes [default: 2].
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_PUBLISHES")]
    max_concurrent_publishes: Option<usize>,
    /// Comma-separated CIDR ranges of reverse proxies whose X-Forwarded-For is trusted.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Option<Vec<String>>,
    /// File holding the server key [default: <data dir>/server.key].
    #[arg(long, env = "TESSERA_SERVER_KEY_FILE")]
    server_key_file: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT")]
    log_format: Option<String>,
    /// How long a stopping server lets in-flight requests finish, e.g. 30s [default: 30s].
    #[arg(long, env = "TESSERA_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: Option<String>,
    /// Time allowed for a request's headers (from the connection, or from the first
    /// byte of a later request) [default: 10s].
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<String>,
    /// Idle keep-alive connections, and clients that stop reading, are closed after
    /// this long [default: 60s].
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT")]
    idle_timeout: Option<String>,
    /// Each period of this length must bring min-body-rate × its length of a request
    /// body, else 408 [default: 30s].
    #[arg(long, env = "TESSERA_BODY_READ_TIMEOUT")]
    body_read_timeout: Option<String>,
    /// Slowest accepted request body, in bytes per second [default: 1024].
    #[arg(long, env = "TESSERA_MIN_BODY_RATE")]
    min_body_rate: Option<u64>,
    /// Days the security log is kept (0: for ever) [default: 365].
    #[arg(long, env = "TESSERA_SECURITY_LOG_RETENTION_DAYS")]
    security_log_retention_days: Option<u32>,
    /// An upstream registry to proxy, NAME=URL (repeatable, also spelt --uplink; the
    /// variable takes a comma-separated list). Replaces the file's [[uplinks]].
    #[arg(
        long = "uplinks",
        visible_alias = "uplink",
        env = "TESSERA_UPLINKS",
        value_delimiter = ','
    )]
    uplinks: Option<Vec<String>>,
    /// Hold back proxied versions younger than this, e.g. 3d or 12h (0: off) [default: 0].
    #[arg(long, env = "TESSERA_MIN_RELEASE_AGE")]
    min_release_age: Option<String>,
    /// An OpenID Connect issuer trusted for trusted publishing, as KIND=URL with KIND
    /// github, gitlab or circleci (the claim layout); repeatable, also spelt
    /// --oidc-issuer. GitHub Actions, GitLab.com and CircleCI are trusted by default.
    #[arg(
        long = "oidc-issuers",
        visible_alias = "oidc-issuer",
        env = "TESSERA_OIDC_ISSUERS",
        value_delimiter = ','
    )]
    oidc_issuers: Option<Vec<String>>,
}

impl ServerArgs {
    fn raw(&self) -> anyhow::Result<RawConfig> {
        let uplinks = self
            .uplinks
            .as_ref()
            .map(|items| {
                items
                    .iter()
                    .filter(|i| !i.trim().is_empty())
                    .map(|i| crate::config::RawUplink::from_flag(i))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(RawConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            public_url: self.public_url.clone(),
            blob_store: self.blob_store.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_region: self.s3_region.clone(),
            s3_access_key_id: self.s3_access_key_id.clone(),
            s3_secret_access_key: s3_secret_from_env(),
            open_signup: self.open_signup,
            anonymous_read: self.anonymous_read,
            login_token_days: self.login_token_days,
            max_write_token_days: self.max_write_token_days,
            token_rotation_overlap: self.token_rotation_overlap.clone(),
            max_body_bytes: self.max_body_bytes,
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_concurrent_publishes: self.max_concurrent_publishes,
            trusted_proxies: self.trusted_proxies.clone(),
            server_key_file: self.server_key_file.clone(),
            log_format: self.log_format.clone(),
            shutdown_timeout: self.shutdown_timeout.clone(),
            header_read_timeout: self.header_read_timeout.clone(),
            idle_timeout: self.idle_timeout.clone(),
            body_read_timeout: self.body_read_timeout.clone(),
            min_body_rate: self.min_body_rate,
            security_log_retention_days: self.security_log_retention_days,
            uplinks,
            routes: None,
            min_release_age: self.min_release_age.clone(),
            oidc_issuers: self.oidc_issuers.as_ref().map(|list| {
                list.iter()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| crate::config::RawIssuer::parse_pair(s))
                    .collect()
            }),
        })
    }

    fn file(&self) -> anyhow::Result<RawConfig> {
        match &self.config {
            Some(path) => RawConfig::from_file(path),
            None => Ok(RawConfig::default()),
        }
    }

    /// Defaults < file < environment < flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        Config::from_raw(self.file()?.merge(self.raw()?))
    }
}

/// The S3 secret from the environment (never a flag: command lines are visible to
/// every local user).
const S3_SECRET_ENV: &str = "TESSERA_S3_SECRET_ACCESS_KEY";

fn s3_secret_from_env() -> Option<crate::config::SecretString> {
    std::env::var(S3_SECRET_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the app for an operator command (store, blobs, keys).
pub async fn open_app(args: &ServerArgs) -> anyhow::Result<Arc<App>> {
    open(args).await
}

async fn open(args: &ServerArgs) -> anyhow::Result<Arc<App>> {
    let config = args.resolve()?;
    let url = format!("http://{}", config.listen);
    App::open(config, Arc::new(SystemClock), url).await
}

/// `tessera serve`.
pub async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    init_logging(config.log_format);
    crate::server::raise_open_file_limit();
    let (listener, app) = crate::server::bind(config, Arc::new(SystemClock)).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, public_url = %app.public_url, database = ?app.store.dialect(), "tessera is serving");
    // The server keeps running when nobody reads its standard output.
    let _ = outln!("Tessera listening on http://{addr}");
    crate::server::serve(listener, app, crate::server::shutdown_signal()).await
}

/// `tessera migrate`.
pub async fn migrate(args: ServerArgs) -> anyhow::Result<()> {
    let app = open(&args).await?;
    outln!("database is up to date ({:?})", app.store.dialect())?;
    app.shutdown().await;
    Ok(())
}

/// `tessera keys …`: the registry's signing keys (operator).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys, as `/-/npm/v1/keys` serves them.
    List(ServerArgs),
    /// Make a new signing key for new versions; the current one expires now and
    /// stays listed, so versions it signed still verify.
    Rotate(ServerArgs),
}

/// `tessera keys list|rotate`.
pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List(args) => {
            let app = open(&args).await?;
            let keys = crate::domain::signing::public_keys(&app).await;
            app.shutdown().await;
            for k in keys? {
                let expires = k
                    .expires_at
                    .map_or_else(|| "active".to_owned(), crate::domain::tokens::human_time);
                println!("{}  {expires}", k.keyid);
            }
            Ok(())
        }
        KeysCommand::Rotate(args) => {
            let app = open(&args).await?;
            let rotated = crate::domain::signing::rotate(&app).await;
            app.shutdown().await;
            let (retired, new) = rotated?;
            println!("New versions are now signed with {new}.");
            if let Some(old) = retired {
                println!(
                    "{old} expired now; it stays listed at /-/npm/v1/keys, so what it signed still verifies."
                );
            }
            Ok(())
        }
    }
}

/// `tessera gc`: the server settings and how old an unreferenced blob must be.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep unreferenced blobs and temporary files younger than this (e.g. 30m, 1h,
    /// 2days): a publish in progress has written its tarball but not yet committed
    /// the version that refers to it.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    grace_period: Duration,
    #[command(flatten)]
    server: ServerArgs,
}

/// What one garbage collection did.
#[derive(Debug, Default)]
struct GcReport {
    removed: usize,
    in_use: usize,
    young: usize,
    temporary: usize,
}

/// `tessera gc`: safe beside any number of serving instances.
pub async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let app = open(&args.server).await?;
    let result = collect_garbage(&app, args.grace_period).await;
    app.shutdown().await;
    let report = result?;
    outln!(
        "removed {} unreferenced blob(s); {} in use; {} unreferenced but younger than {} kept; \
         {} temporary file(s) removed",
        report.removed,
        report.in_use,
        report.young,
        humantime::format_duration(args.grace_period),
        report.temporary
    )?;
    Ok(())
}

/// Lists blobs first, keeps those younger than `grace`, then reads references, then
/// deletes each remaining candidate under its blob lock after re-checking that no
/// version refers to it and that it is still old (a publish of the same bytes
/// refreshes it). A publish re-checks its blob under the same lock before its
/// commit, so a version is never committed without its tarball.
async fn collect_garbage(app: &App, grace: Duration) -> anyhow::Result<GcReport> {
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let listed = app.blobs.list().await?;
    let referenced: std::collections::HashSet<String> = app
        .store
        .referenced_blob_keys()
        .await?
        .into_iter()
        .collect();
    let mut report = GcReport {
        in_use: referenced.len(),
        ..GcReport::default()
    };
    for blob in listed {
        if referenced.contains(&blob.key) {
            continue;
        }
        if blob.modified >= cutoff {
            report.young += 1;
            continue;
        }
        let deleted = app
            .store
            .delete_blob_if_unreferenced(&blob.key, || app.blobs.delete_if_older(&blob.key, cutoff))
            .await?;
        match deleted {
            Some(true) => report.removed += 1,
            // Refreshed by a publish since the listing.
            Some(false) => report.young += 1,
            // Referenced by a version committed since the references were read.
            None => {}
        }
    }
    report.temporary = app.blobs.sweep_temporary(grace).await?;
    Ok(report)
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (for registries with sign-up closed).
    Add {
        name: String,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Reads a password from stdin (`--password-stdin`) or a prompt on a terminal.
pub fn read_password(from_stdin: bool, prompt: &str, confirm: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        return Ok(password);
    }
    let mut input = dialoguer::Password::new().with_prompt(prompt);
    if confirm {
        input = input.with_confirmation("Repeat password", "Passwords do not match");
    }
    Ok(input.interact()?)
}

/// `tessera user add`.
pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            email,
            password_stdin,
            server,
        } => {
            let password = read_password(password_stdin, "Password", true)?;
            let app = open(&server).await?;
            let result =
                crate::domain::users::create_user(&app, &name, &email, &password.into()).await;
            app.shutdown().await;
            let user = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            outln!("created user {}", user.name)?;
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration with where each value came from.
    Show(ServerArgs),
}

/// `tessera config show`: every setting, its effective value and where it came from.
/// `matches` are the parsed arguments of `config show`: clap fills a flag from its
/// variable, so only `value_source` tells a flag from the environment.
pub async fn config(cmd: ConfigCommand, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let ConfigCommand::Show(args) = cmd;
    let in_file: std::collections::HashSet<String> = match &args.config {
        Some(path) => {
            args.file()?;
            let text = std::fs::read_to_string(path)?;
            toml::from_str::<toml::Table>(&text)?
                .keys()
                .cloned()
                .collect()
        }
        None => Default::default(),
    };
    let config = args.resolve()?;
    let source = |key: &str| -> &'static str {
        let from_args = if key == "s3_secret_access_key" {
            s3_secret_from_env().map(|_| clap::parser::ValueSource::EnvVariable)
        } else {
            matches.value_source(key)
        };
        match from_args {
            Some(clap::parser::ValueSource::CommandLine) => "flag",
            Some(clap::parser::ValueSource::EnvVariable) => "env",
            _ if in_file.contains(key) => "file",
            _ => "default",
        }
    };
    let s3 = match &config.blobs {
        crate::config::BlobConfig::S3(s3) => Some(s3),
        crate::config::BlobConfig::Folder(_) => None,
    };
    // Unset S3 values fall back to the AWS_* variables when the store opens.
    let s3_value = |value: Option<&str>, aws: &str| match value {
        Some(v) => v.to_owned(),
        None if std::env::var_os(aws).is_some() => format!("(from {aws})"),
        None if s3.is_some() => "(not set)".to_owned(),
        None => "(unused: the blob store is a folder)".to_owned(),
    };
    let secret = s3
        .and_then(|s| s.secret_access_key.as_ref())
        .map(|_| "(set)");
    let limits = &config.limits;
    let rows: Vec<(&str, String)> = vec![
        ("listen", config.listen.to_string()),
        ("data_dir", config.data_dir.display().to_string()),
        ("database_url", config.database_url.redacted()),
        (
            "public_url",
            config
                .public_url
                .clone()
                .unwrap_or_else(|| "(listen address)".into()),
        ),
        ("blob_store", config.blobs.describe()),
        (
            "s3_endpoint",
            s3_value(s3.and_then(|s| s.endpoint.as_deref()), "AWS_ENDPOINT_URL"),
        ),
        (
            "s3_region",
            s3_value(s3.and_then(|s| s.region.as_deref()), "AWS_REGION"),
        ),
        (
            "s3_access_key_id",
            s3_value(
                s3.and_then(|s| s.access_key_id.as_deref()),
                "AWS_ACCESS_KEY_ID",
            ),
        ),
        (
            "s3_secret_access_key",
            s3_value(secret, "AWS_SECRET_ACCESS_KEY"),
        ),
        ("open_signup", config.open_signup.to_string()),
        ("anonymous_read", config.anonymous_read.to_string()),
        ("login_token_days", config.login_token_days.to_string()),
        (
            "max_write_token_days",
            config.max_write_token_days.to_string(),
        ),
        (
            "token_rotation_overlap",
            humantime::format_duration(config.token_rotation_overlap).to_string(),
        ),
        ("max_body_bytes", config.max_body_bytes.to_string()),
        ("max_unpacked_bytes", config.max_unpacked_bytes.to_string()),
        (
            "max_concurrent_publishes",
            config.max_concurrent_publishes.to_string(),
        ),
        (
            "trusted_proxies",
            format!(
                "{:?}",
                config
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "server_key_file",
            config.server_key_file.display().to_string(),
        ),
        ("log_format", config.log_format.as_str().to_owned()),
        ("shutdown_timeout", show_duration(limits.shutdown_timeout)),
        (
            "header_read_timeout",
            show_duration(limits.header_read_timeout),
        ),
        ("idle_timeout", show_duration(limits.idle_timeout)),
        ("body_read_timeout", show_duration(limits.body_read_timeout)),
        ("min_body_rate", limits.min_body_rate.to_string()),
        (
            "security_log_retention_days",
            config.security_log_retention_days.to_string(),
        ),
        (
            "oidc_issuers",
            format!(
                "{:?}",
                config
                    .oidc_issuers
                    .iter()
                    .map(|i| format!("{}={}", i.kind.as_str(), i.url))
                    .collect::<Vec<_>>()
            ),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        outln!("{key:<width$} = {value}  ({})", source(key))?;
    }
    let u = &config.uplinks;
    let min_release_age = if u.min_release_age.is_zero() {
        "0 (off)".to_owned()
    } else {
        show_duration(u.min_release_age)
    };
    outln!(
        "{:<width$} = {min_release_age}  ({})",
        "min_release_age",
        source("min_release_age")
    )?;
    let uplinks_from = source("uplinks");
    if u.uplinks.is_empty() {
        outln!("{:<width$} = (none)  ({uplinks_from})", "uplinks")?;
    }
    for up in &u.uplinks {
        outln!(
            "uplink {} = {} timeout={} max_age={} cache_tarballs={} token={}  ({uplinks_from})",
            up.name,
            up.url,
            show_duration(up.timeout),
            show_duration(up.max_age),
            up.cache_tarballs,
            if up.token.is_some() {
                "(set)"
            } else {
                "(none)"
            },
        )?;
    }
    for r in &u.routes {
        outln!(
            "route {} = uplink={} min_release_age={} allow_shadowing={}  (file)",
            r.pattern.as_str(),
            match r.target {
                crate::config::RouteTarget::Uplink(i) => u.uplinks[i].name.as_str(),
                crate::config::RouteTarget::None => "none",
            },
            r.min_release_age
                .map_or_else(|| "(global)".to_owned(), show_duration),
            r.allow_shadowing
        )?;
    }
    if let Some(first) = u.uplinks.first() {
        outln!("{:<width$} = {}", "unrouted names go to", first.name)?;
    }
    Ok(())
}

fn show_duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `tessera migrate-store`: the source is the usual server settings.
#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// Database to copy into (must be empty), e.g. postgres://user@host/db.
    #[arg(long)]
    to_database_url: crate::config::DatabaseUrl,
    /// Blob store to copy tarballs into (a folder or s3://bucket/prefix); default: keep.
    #[arg(long)]
    to_blob_store: Option<String>,
    #[command(flatten)]
    source: ServerArgs,
}

/// Copies rows (and optionally blobs) from the configured store to another one.
pub async fn migrate_store(args: MigrateStoreArgs) -> anyhow::Result<()> {
    let source = open(&args.source).await?;
    let target = crate::store::Store::connect(&args.to_database_url).await?;
    let report = source.store.copy_into(&target).await?;
    for (table, rows) in &report {
        outln!("{table:<16} {rows} row(s)")?;
    }
    if let Some(blob_target) = &args.to_blob_store {
        let mut raw = args.source.file()?.merge(args.source.raw()?);
        raw.blob_store = Some(blob_target.clone());
        let to = crate::blob::Blobs::open(&Config::from_raw(raw)?.blobs)?;
        let mut copied = 0;
        for key in source.store.referenced_blob_keys().await? {
            let bytes = source
                .blobs
                .get(&key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("blob {key} is referenced but missing"))?;
            to.put(&key, bytes).await?;
            copied += 1;
        }
        outln!("blobs            {copied} copied")?;
    }
    target.close().await;
    source.shutdown().await;
    outln!("done: point --database-url at the new database")?;
    Ok(())
}

/// `tessera org adopt SCOPE --owner USER`: turns a scope (first-come, or unused) into
/// an organization owned by USER.
pub async fn adopt_scope(args: &ServerArgs, scope: &str, owner: &str) -> anyhow::Result<()> {
    let scope = scope.trim_start_matches('@');
    crate::domain::orgs::validate_org_name(scope).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = open(args).await?;
    let user = app
        .store
        .user_by_name(owner)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named {owner} on this registry"))?;
    if app.store.org_exists(scope).await? {
        anyhow::bail!("@{scope} is already an organization");
    }
    let actor = crate::store::Actor {
        ip: "operator",
        now: app.now(),
    };
    let org = app.store.adopt_scope_as_org(scope, user.id, actor).await?;
    outln!(
        "@{} is now an organization owned by {}; maintainers of its packages are developers.",
        org.name,
        user.name
    )?;
    app.shutdown().await;
    Ok(())
}
