//! User commands for organizations and the credentials views, where npm has no
//! command: `tessera org create|list|log|credentials`, `tessera package
//! credentials`. HTTP clients of the registry, like `tessera token`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::Registry;
use super::output::{Table, clean, outln};

// `adopt` carries the server settings; the enum is parsed once per run.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization owning the scope @NAME; you become its owner.
    Create {
        name: String,
        #[arg(long)]
        otp: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Turn a scope into an organization owned by USER (operator; runs beside the
    /// server, like `tessera user`). Maintainers of the scope's packages become
    /// developers.
    Adopt {
        scope: String,
        #[arg(long)]
        owner: String,
        #[command(flatten)]
        server: super::operator::ServerArgs,
    },
    /// Every credential that can publish one of the organization's packages,
    /// riskiest first (owners).
    Credentials {
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The organizations you belong to, with your role in each.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The organization's log: every change of members, roles, teams and package
    /// access, newest first (owners).
    Log {
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Trusted publishing: which CI identities may publish the package without a
    /// token, and whether tokens may publish it at all.
    #[command(subcommand)]
    Trust(super::trust_commands::TrustCommand),
    /// Everyone who can publish the package, through which path, and every token of
    /// theirs that could publish it now (maintainers and organization admins).
    Credentials {
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn logged_in(client: &ClientArgs) -> anyhow::Result<Registry> {
    let registry = Registry::from_args(client)?;
    anyhow::ensure!(
        registry.has_token(),
        "not logged in to {}; run `tessera login` or `npm login` first",
        registry.base
    );
    Ok(registry)
}

/// Dispatches `tessera org …`.
pub async fn org(cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { name, otp, client } => {
            let registry = logged_in(&client)?;
            let name = name.trim_start_matches('@').to_owned();
            registry
                .call(
                    Method::POST,
                    "/-/org",
                    Some(&json!({"name": name})),
                    otp.as_deref(),
                )
                .await?;
            outln!(
                "Created the organization {name}: it owns the scope @{name}, and you are its owner."
            )?;
            Ok(())
        }
        OrgCommand::Adopt {
            scope,
            owner,
            server,
        } => super::operator::adopt_scope(&server, &scope, &owner).await,
        OrgCommand::Credentials { name, json, client } => {
            let registry = logged_in(&client)?;
            let name = name.trim_start_matches('@');
            let view = registry
                .call(
                    Method::GET,
                    &format!("/-/org/{name}/credentials"),
                    None,
                    None,
                )
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                print_publishers(&view["publishers"])?;
            }
            Ok(())
        }
        OrgCommand::List { client } => {
            let registry = logged_in(&client)?;
            let mine = registry.call(Method::GET, "/-/org", None, None).await?;
            let orgs = mine.as_object().cloned().unwrap_or_default();
            if orgs.is_empty() {
                outln!("You are not a member of any organization.")?;
            }
            for (name, role) in orgs {
                outln!("@{name} - {}", text(&role))?;
            }
            Ok(())
        }
        OrgCommand::Log { name, json, client } => {
            let registry = logged_in(&client)?;
            let name = name.trim_start_matches('@');
            let log = registry
                .call(Method::GET, &format!("/-/org/{name}/log"), None, None)
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&log)?)?;
                return Ok(());
            }
            let mut table = Table::headless(4);
            for e in log["events"].as_array().into_iter().flatten() {
                let time: String = text(&e["time"]).chars().take(16).collect();
                table.row([
                    clean(&time.replace('T', " ")),
                    clean(text(&e["actor"])),
                    clean(text(&e["kind"])),
                    clean(text(&e["detail"])),
                ]);
            }
            table.print()?;
            Ok(())
        }
    }
}

/// Dispatches `tessera package …`.
pub async fn package(cmd: PackageCommand) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::Trust(cmd) => super::trust_commands::trust(cmd).await,
        PackageCommand::Credentials { name, json, client } => {
            let registry = logged_in(&client)?;
            let escaped = name.replace('/', "%2f");
            let view = registry
                .call(
                    Method::GET,
                    &format!("/-/package/{escaped}/credentials"),
                    None,
                    None,
                )
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&view)?)?;
                return Ok(());
            }
            outln!(
                "{} (publishing 2FA policy: {})",
                name,
                view["mfa"].as_str().unwrap_or("none")
            )?;
            outln!()?;
            outln!("Who can write it:")?;
            let mut writers = Table::headless(2);
            for w in view["writers"].as_array().into_iter().flatten() {
                let paths: Vec<String> = w["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(clean)
                    .collect();
                writers.row_lines([vec![format!("  {}", clean(text(&w["user"])))], paths]);
            }
            writers.print()?;
            outln!()?;
            print_publishers(&view["publishers"])?;
            Ok(())
        }
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn day(v: &Value) -> String {
    v.as_str()
        .map(|s| clean(&s.chars().take(10).collect::<String>()))
        .unwrap_or_else(|| "-".into())
}

/// One row per credential, riskiest first; a long range list or several risks make
/// a row taller, never shift the columns.
fn print_publishers(list: &Value) -> std::io::Result<()> {
    let mut table = Table::new([
        "PACKAGE",
        "USER",
        "TOKEN",
        "TYPE",
        "CIDR",
        "EXPIRES",
        "LAST USED",
        "RISKS",
    ]);
    for p in list.as_array().into_iter().flatten() {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(clean)
                .collect()
        };
        let mut cidr = strings(&p["cidr_whitelist"]);
        if cidr.is_empty() {
            cidr.push("any".into());
        }
        let otp = if p["needs_otp"] == json!(true) {
            " +otp"
        } else {
            ""
        };
        table.row_lines([
            vec![clean(text(&p["package"]))],
            vec![clean(text(&p["user"]))],
            vec![clean(text(&p["token"]))],
            vec![format!("{}{otp}", clean(text(&p["token_type"])))],
            cidr,
            vec![day(&p["expires"])],
            vec![day(&p["last_used"])],
            strings(&p["risks"]),
        ]);
    }
    if table.is_empty() {
        return outln!("No token can publish it right now.");
    }
    table.print()
}
