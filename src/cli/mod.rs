//! Command-line entry points. Operator commands (`serve`, `user`, `gc`, `migrate`,
//! `backup`, `restore`, `config show`, `keys`) call the domain layer and the store directly;
//! user commands (`login`, `whoami`, `token`) are HTTP clients of a registry, exactly
//! like the npm CLI, and read the same `.npmrc` files.

mod backup;
mod client;
mod npmrc;
mod operator;
mod org_commands;
mod output;
mod trust_commands;
mod uplink_commands;
mod user_commands;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// Tessera: a self-hosted npm registry with first-class access tokens.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry.
    Serve(operator::ServerArgs),
    /// Manage accounts on this server (operator).
    #[command(subcommand)]
    User(operator::UserCommand),
    /// Run database migrations and exit (operator).
    Migrate(operator::ServerArgs),
    /// Delete stored tarballs that no version refers to, and stale temporary files
    /// (operator; safe beside serving instances).
    Gc(operator::GcArgs),
    /// Write a consistent copy of a live registry into an empty folder (operator).
    Backup(backup::BackupArgs),
    /// Bring a backup back into an empty data directory (operator).
    Restore(backup::RestoreArgs),
    /// Copy all data to another database (and blob store), e.g. SQLite to PostgreSQL.
    MigrateStore(operator::MigrateStoreArgs),
    /// The registry's signing keys: list them, or rotate the active one (operator).
    #[command(subcommand)]
    Keys(operator::KeysCommand),
    /// Print the effective configuration and where each value came from.
    #[command(subcommand)]
    Config(operator::ConfigCommand),
    /// Create, list and revoke access tokens on a registry.
    #[command(subcommand)]
    Token(user_commands::TokenCommand),
    /// Log in to a registry with a username and password and save the token.
    Login(user_commands::LoginArgs),
    /// Print the user a registry knows you as.
    Whoami(ClientArgs),
    /// Organizations: create one, see every credential that can publish its packages.
    #[command(subcommand)]
    Org(org_commands::OrgCommand),
    /// Packages: who can publish one, and with which tokens.
    #[command(subcommand)]
    Package(org_commands::PackageCommand),
    /// Uplinks: the configured upstream registries, their cache and counters (operator).
    #[command(subcommand)]
    Uplink(uplink_commands::UplinkCommand),
    /// The uplink cache: warm it from a lockfile through a registry.
    #[command(subcommand)]
    Cache(uplink_commands::CacheCommand),
}

/// Where the user commands find the registry and their credentials.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Registry URL (default: `registry` from .npmrc, else http://127.0.0.1:4880/).
    #[arg(long, global = true)]
    pub registry: Option<String>,
    /// The user .npmrc to read and write (default: ~/.npmrc, or $NPM_CONFIG_USERCONFIG).
    #[arg(long, global = true)]
    pub userconfig: Option<std::path::PathBuf>,
    /// Local address to send requests from.
    #[arg(long, global = true, hide = true)]
    pub local_address: Option<std::net::IpAddr>,
}

/// Parses arguments, runs the command and maps errors to an exit code.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => operator::serve(args).await,
            Command::User(cmd) => operator::user(cmd).await,
            Command::Migrate(args) => operator::migrate(args).await,
            Command::Gc(args) => operator::gc(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::MigrateStore(args) => operator::migrate_store(args).await,
            Command::Config(cmd) => {
                let show = matches
                    .subcommand_matches("config")
                    .and_then(|m| m.subcommand_matches("show"))
                    .cloned()
                    .unwrap_or_default();
                operator::config(cmd, &show).await
            }
            Command::Keys(cmd) => operator::keys(cmd).await,
            Command::Token(cmd) => user_commands::token(cmd).await,
            Command::Login(args) => user_commands::login(args).await,
            Command::Whoami(args) => user_commands::whoami(args).await,
            Command::Org(cmd) => org_commands::org(cmd).await,
            Command::Package(cmd) => org_commands::package(cmd).await,
            Command::Uplink(uplink_commands::UplinkCommand::Status(args)) => {
                uplink_commands::status(args).await
            }
            Command::Cache(uplink_commands::CacheCommand::Warm(args)) => {
                uplink_commands::warm(args).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped reading (`| head`): nothing to report.
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
