//! Operator commands that run beside the server: serve, user add, migrate, gc,
//! config show. They use the domain layer and the store directly, never HTTP.

use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// Blob folder [default: <data dir>/blobs].
    #[arg(long, env = "TESSERA_BLOB_STORE")]
    blob_store: Option<String>,
    /// Allow anyone to sign up [default: true].
    #[arg(long, env = "TESSERA_OPEN_SIGNUP")]
    open_signup: Option<bool>,
    /// Allow reads without logging in [default: true].
    #[arg(long, env = "TESSERA_ANONYMOUS_READ")]
    anonymous_read: Option<bool>,
    /// Lifetime in days of tokens issued by `npm login` (0: never expire) [default: 30].
    #[arg(long, env = "TESSERA_LOGIN_TOKEN_DAYS")]
    login_token_days: Option<i64>,
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
    /// An OpenID Connect issuer trusted for trusted publishing, as KIND=URL with KIND
    /// github, gitlab or circleci (the claim layout); repeatable. GitHub Actions,
    /// GitLab.com and CircleCI are trusted by default.
    #[arg(
        long = "oidc-issuer",
        env = "TESSERA_OIDC_ISSUERS",
        value_delimiter = ','
    )]
    oidc_issuers: Option<Vec<String>>,
}

impl ServerArgs {
    fn raw(&self) -> RawConfig {
        RawConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            public_url: self.public_url.clone(),
            blob_store: self.blob_store.clone(),
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            open_signup: self.open_signup,
            anonymous_read: self.anonymous_read,
            login_token_days: self.login_token_days,
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
            oidc_issuers: self.oidc_issuers.as_ref().map(|list| {
                list.iter()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| crate::config::RawIssuer::parse_pair(s))
                    .collect()
            }),
        }
    }

    fn file(&self) -> anyhow::Result<RawConfig> {
        match &self.config {
            Some(path) => RawConfig::from_file(path),
            None => Ok(RawConfig::default()),
        }
    }

    /// Defaults < file < environment < flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        Config::from_raw(self.file()?.merge(self.raw()))
    }
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
    println!("Tessera listening on http://{addr}");
    crate::server::serve(listener, app, crate::server::shutdown_signal()).await
}

/// `tessera migrate`.
pub async fn migrate(args: ServerArgs) -> anyhow::Result<()> {
    let app = open(&args).await?;
    println!("database is up to date ({:?})", app.store.dialect());
    app.shutdown().await;
    Ok(())
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
    println!(
        "removed {} unreferenced blob(s); {} in use; {} unreferenced but younger than {} kept; \
         {} temporary file(s) removed",
        report.removed,
        report.in_use,
        report.young,
        humantime::format_duration(args.grace_period),
        report.temporary
    );
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
            println!("created user {}", user.name);
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration with where each value came from.
    Show(ServerArgs),
}

/// `tessera config show`.
pub async fn config(cmd: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Show(args) = cmd;
    let file = args.file()?;
    let flags = args.raw();
    let config = args.resolve()?;
    let source = |env: &str, from_flags: bool, from_file: bool| {
        if std::env::var_os(env).is_some() {
            "env"
        } else if from_flags {
            "flag"
        } else if from_file {
            "file"
        } else {
            "default"
        }
    };
    let rows = [
        (
            "listen",
            config.listen.to_string(),
            source(
                "TESSERA_LISTEN",
                flags.listen.is_some(),
                file.listen.is_some(),
            ),
        ),
        (
            "data_dir",
            config.data_dir.display().to_string(),
            source(
                "TESSERA_DATA_DIR",
                flags.data_dir.is_some(),
                file.data_dir.is_some(),
            ),
        ),
        (
            "database_url",
            config.database_url.redacted(),
            source(
                "TESSERA_DATABASE_URL",
                flags.database_url.is_some(),
                file.database_url.is_some(),
            ),
        ),
        (
            "public_url",
            config
                .public_url
                .clone()
                .unwrap_or_else(|| "(listen address)".into()),
            source(
                "TESSERA_PUBLIC_URL",
                flags.public_url.is_some(),
                file.public_url.is_some(),
            ),
        ),
        (
            "blob_store",
            config.blobs.describe(),
            source(
                "TESSERA_BLOB_STORE",
                flags.blob_store.is_some(),
                file.blob_store.is_some(),
            ),
        ),
        (
            "open_signup",
            config.open_signup.to_string(),
            source(
                "TESSERA_OPEN_SIGNUP",
                flags.open_signup.is_some(),
                file.open_signup.is_some(),
            ),
        ),
        (
            "anonymous_read",
            config.anonymous_read.to_string(),
            source(
                "TESSERA_ANONYMOUS_READ",
                flags.anonymous_read.is_some(),
                file.anonymous_read.is_some(),
            ),
        ),
        (
            "login_token_days",
            config.login_token_days.to_string(),
            source(
                "TESSERA_LOGIN_TOKEN_DAYS",
                flags.login_token_days.is_some(),
                file.login_token_days.is_some(),
            ),
        ),
        (
            "max_body_bytes",
            config.max_body_bytes.to_string(),
            source(
                "TESSERA_MAX_BODY_BYTES",
                flags.max_body_bytes.is_some(),
                file.max_body_bytes.is_some(),
            ),
        ),
        (
            "max_unpacked_bytes",
            config.max_unpacked_bytes.to_string(),
            source(
                "TESSERA_MAX_UNPACKED_BYTES",
                flags.max_unpacked_bytes.is_some(),
                file.max_unpacked_bytes.is_some(),
            ),
        ),
        (
            "max_concurrent_publishes",
            config.max_concurrent_publishes.to_string(),
            source(
                "TESSERA_MAX_CONCURRENT_PUBLISHES",
                flags.max_concurrent_publishes.is_some(),
                file.max_concurrent_publishes.is_some(),
            ),
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
            source(
                "TESSERA_TRUSTED_PROXIES",
                flags.trusted_proxies.is_some(),
                file.trusted_proxies.is_some(),
            ),
        ),
        (
            "server_key_file",
            config.server_key_file.display().to_string(),
            source(
                "TESSERA_SERVER_KEY_FILE",
                flags.server_key_file.is_some(),
                file.server_key_file.is_some(),
            ),
        ),
        (
            "log_format",
            config.log_format.as_str().to_owned(),
            source(
                "TESSERA_LOG_FORMAT",
                flags.log_format.is_some(),
                file.log_format.is_some(),
            ),
        ),
        (
            "shutdown_timeout",
            show_duration(config.limits.shutdown_timeout),
            source(
                "TESSERA_SHUTDOWN_TIMEOUT",
                flags.shutdown_timeout.is_some(),
                file.shutdown_timeout.is_some(),
            ),
        ),
        (
            "header_read_timeout",
            show_duration(config.limits.header_read_timeout),
            source(
                "TESSERA_HEADER_READ_TIMEOUT",
                flags.header_read_timeout.is_some(),
                file.header_read_timeout.is_some(),
            ),
        ),
        (
            "idle_timeout",
            show_duration(config.limits.idle_timeout),
            source(
                "TESSERA_IDLE_TIMEOUT",
                flags.idle_timeout.is_some(),
                file.idle_timeout.is_some(),
            ),
        ),
        (
            "body_read_timeout",
            show_duration(config.limits.body_read_timeout),
            source(
                "TESSERA_BODY_READ_TIMEOUT",
                flags.body_read_timeout.is_some(),
                file.body_read_timeout.is_some(),
            ),
        ),
        (
            "min_body_rate",
            config.limits.min_body_rate.to_string(),
            source(
                "TESSERA_MIN_BODY_RATE",
                flags.min_body_rate.is_some(),
                file.min_body_rate.is_some(),
            ),
        ),
        (
            "security_log_retention_days",
            config.security_log_retention_days.to_string(),
            source(
                "TESSERA_SECURITY_LOG_RETENTION_DAYS",
                flags.security_log_retention_days.is_some(),
                file.security_log_retention_days.is_some(),
            ),
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
            source(
                "TESSERA_OIDC_ISSUERS",
                flags.oidc_issuers.is_some(),
                file.oidc_issuers.is_some(),
            ),
        ),
    ];
    for (key, value, from) in rows {
        println!("{key:<27} = {value}  ({from})");
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
        println!("{table:<16} {rows} row(s)");
    }
    if let Some(blob_target) = &args.to_blob_store {
        let mut raw = args.source.file()?.merge(args.source.raw());
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
        println!("blobs            {copied} copied");
    }
    target.close().await;
    source.shutdown().await;
    println!("done: point --database-url at the new database");
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
    println!(
        "@{} is now an organization owned by {}; maintainers of its packages are developers.",
        org.name, user.name
    );
    app.shutdown().await;
    Ok(())
}
