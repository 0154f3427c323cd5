//! User commands: `tessera token create|list|rotate|revoke`, `tessera login`, `tessera whoami`.
//! Clients of the registry API, like the npm CLI.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::Registry;
use super::operator::read_password;
use super::output::{Table, clean, outln};
use crate::cidr::CidrList;
use crate::domain::access::PackagePermission;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (read and publish by default); it is shown once.
    Create(CreateArgs),
    /// List your tokens (masked).
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a token by a successor with the same settings; the old token keeps
    /// working for the overlap window (the registry's default unless --overlap).
    Rotate {
        /// The token's id (or a unique id prefix) or its full value.
        id: String,
        /// How long the old token keeps working, e.g. 1h or 0s.
        #[arg(long)]
        overlap: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        otp: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke tokens by id (or a unique id prefix) or by full token value.
    Revoke {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        otp: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A read-only token: downloads only.
    #[arg(long, conflicts_with = "automation")]
    read_only: bool,
    /// An automation token: download and publish; two-factor auth is not enforced.
    #[arg(long)]
    automation: bool,
    /// Allowed CIDR ranges (comma-separated or repeated; IPv4 and IPv6).
    #[arg(long)]
    cidr: Vec<String>,
    /// A name for the token.
    #[arg(long)]
    name: Option<String>,
    /// A description.
    #[arg(long)]
    description: Option<String>,
    /// Days until the token expires.
    #[arg(long)]
    expires: Option<i64>,
    /// Limit the token to these packages (repeatable).
    #[arg(long = "package")]
    packages: Vec<String>,
    /// Limit the token to these scopes (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// One-time password, when the account has two-factor auth.
    #[arg(long)]
    otp: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Dispatches `tessera token …`.
pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(args) => create(args).await,
        TokenCommand::List { json, client } => list(json, client).await,
        TokenCommand::Revoke { ids, otp, client } => revoke(ids, otp, client).await,
        TokenCommand::Rotate {
            id,
            overlap,
            password_stdin,
            otp,
            json,
            client,
        } => rotate(id, overlap, password_stdin, otp, json, client).await,
    }
}

fn require_login(registry: &Registry) -> anyhow::Result<()> {
    anyhow::ensure!(
        registry.has_token(),
        "not logged in to {}; run `tessera login` or `npm login` first",
        registry.base
    );
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    // Validate ranges before asking for anything (as npm does).
    let cidr = CidrList::parse_entries(&args.cidr).map_err(|e| anyhow::anyhow!("{e}"))?;
    let registry = Registry::from_args(&args.client)?;
    require_login(&registry)?;
    let password = read_password(args.password_stdin, "Password", false)?;
    let mut body = json!({
        "name": args.name,
        "password": password,
        "readonly": args.read_only,
        "automation": args.automation,
        "cidr_whitelist": cidr.map(|c| c.to_strings()).unwrap_or_default(),
    });
    if let Some(d) = &args.description {
        body["description"] = json!(d);
    }
    if let Some(days) = args.expires {
        body["expires"] = json!(days);
    }
    if !args.packages.is_empty() || !args.scopes.is_empty() {
        body["packages"] = json!(args.packages);
        body["scopes"] = json!(args.scopes);
        body["packages_and_scopes_permission"] = json!(
            if args.read_only {
                PackagePermission::ReadOnly
            } else {
                PackagePermission::ReadWrite
            }
            .as_str()
        );
    }
    let created = registry
        .call(
            Method::POST,
            "-/npm/v1/tokens",
            Some(&body),
            args.otp.as_deref(),
        )
        .await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&created)?)?;
    } else {
        outln!(
            "Created {} token {}",
            created["type"].as_str().unwrap_or("publish"),
            created["token"].as_str().unwrap_or("")
        )?;
        outln!("  id:      {}", created["key"].as_str().unwrap_or(""))?;
        if let Some(list) = created["cidr_whitelist"].as_array() {
            let ranges: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            outln!("  allowed: {}", ranges.join(", "))?;
        }
        if let Some(exp) = created["expires"].as_str() {
            outln!("  expires: {exp}")?;
        }
    }
    eprintln!("This token will not be shown again. Copy it now and store it safely.");
    Ok(())
}

async fn fetch_all(registry: &Registry) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut path = "-/npm/v1/tokens?perPage=1000".to_owned();
    loop {
        let page = registry.call(Method::GET, &path, None, None).await?;
        all.extend(page["objects"].as_array().cloned().unwrap_or_default());
        match page["urls"]["next"].as_str() {
            Some(next) => path = next.strip_prefix(&registry.base).unwrap_or(next).to_owned(),
            None => return Ok(all),
        }
    }
}

fn day(v: &Value) -> String {
    v.as_str()
        .map(|s| clean(&s.chars().take(16).collect::<String>().replace('T', " ")))
        .unwrap_or_else(|| "-".into())
}

async fn list(json_out: bool, client: ClientArgs) -> anyhow::Result<()> {
    let registry = Registry::from_args(&client)?;
    require_login(&registry)?;
    let tokens = fetch_all(&registry).await?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&tokens)?)?;
        return Ok(());
    }
    let mut table = Table::new([
        "ID",
        "NAME",
        "TYPE",
        "TOKEN",
        "CIDR",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for t in &tokens {
        // One range per line: a long list makes the row taller, not the table wider.
        let cidr: Vec<String> = t["cidr_whitelist"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(clean).collect())
            .filter(|ranges: &Vec<String>| !ranges.is_empty())
            .unwrap_or_else(|| vec!["-".into()]);
        let last_used = match (t["last_used"].as_str(), t["last_used_ip"].as_str()) {
            (Some(_), Some(ip)) => format!("{} from {}", day(&t["last_used"]), clean(ip)),
            _ => "never".into(),
        };
        let key: String = t["key"].as_str().unwrap_or("").chars().take(10).collect();
        table.row_lines([
            vec![clean(&key)],
            name_lines(t),
            vec![clean(t["type"].as_str().unwrap_or(""))],
            vec![clean(t["masked"].as_str().unwrap_or(""))],
            cidr,
            vec![day(&t["created"])],
            vec![day(&t["expires"])],
            vec![last_used],
        ]);
    }
    table.print()?;
    Ok(())
}

/// A token's name, then its rotation links (the successor that replaces it, the
/// token it succeeds), one per line.
fn name_lines(t: &Value) -> Vec<String> {
    let mut lines = vec![clean(t["name"].as_str().unwrap_or("-"))];
    if let Some(next) = t["replaced_by"].as_str() {
        lines.push(format!("replaced by {} (rotation)", clean(next)));
    }
    if let Some(prev) = t["rotated_from"].as_str() {
        lines.push(format!("successor of {}", clean(prev)));
    }
    lines
}

/// The one listed key `id` names (a unique prefix), or `id` itself when it is a
/// full token value.
fn resolve_id(tokens: &[Value], id: &str) -> anyhow::Result<String> {
    let matches: Vec<&str> = tokens
        .iter()
        .filter_map(|t| t["key"].as_str())
        .filter(|k| k.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] if id.starts_with(crate::crypto::token_format::TOKEN_PREFIX) => Ok(id.to_owned()),
        [] => anyhow::bail!("Unknown token id or value \"{id}\"."),
        _ => anyhow::bail!("Token ID \"{id}\" was ambiguous; use more characters."),
    }
}

async fn rotate(
    id: String,
    overlap: Option<String>,
    password_stdin: bool,
    otp: Option<String>,
    json_out: bool,
    client: ClientArgs,
) -> anyhow::Result<()> {
    if let Some(text) = &overlap {
        crate::config::parse_overlap(text).map_err(|e| anyhow::anyhow!("--overlap: {e}"))?;
    }
    let registry = Registry::from_args(&client)?;
    require_login(&registry)?;
    let tokens = fetch_all(&registry).await?;
    let target = resolve_id(&tokens, &id)?;
    let password = read_password(password_stdin, "Password", false)?;
    let mut body = json!({ "password": password });
    if let Some(o) = overlap {
        body["overlap"] = json!(o);
    }
    let created = registry
        .call(
            Method::POST,
            &format!("-/npm/v1/tokens/token/{target}/rotate"),
            Some(&body),
            otp.as_deref(),
        )
        .await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        println!(
            "Created {} token {}",
            created["type"].as_str().unwrap_or("publish"),
            created["token"].as_str().unwrap_or("")
        );
        println!("  id:      {}", created["key"].as_str().unwrap_or(""));
        if let Some(exp) = created["expires"].as_str() {
            println!("  expires: {exp}");
        }
        println!(
            "It replaces {} ({}…), which stops working {}.",
            created["previous"]["key"].as_str().unwrap_or(""),
            created["previous"]["token"].as_str().unwrap_or(""),
            day(&created["previous"]["stops"])
        );
    }
    eprintln!("This token will not be shown again. Copy it now and store it safely.");
    Ok(())
}

async fn revoke(ids: Vec<String>, otp: Option<String>, client: ClientArgs) -> anyhow::Result<()> {
    let registry = Registry::from_args(&client)?;
    require_login(&registry)?;
    let tokens = fetch_all(&registry).await?;
    let mut removed = 0;
    for id in &ids {
        let matches: Vec<&str> = tokens
            .iter()
            .filter_map(|t| t["key"].as_str())
            .filter(|k| k.starts_with(id.as_str()))
            .collect();
        let target = match matches.as_slice() {
            [one] => (*one).to_owned(),
            [] if id.starts_with(crate::crypto::token_format::TOKEN_PREFIX) => id.clone(),
            [] => anyhow::bail!("Unknown token id or value \"{id}\"."),
            _ => anyhow::bail!("Token ID \"{id}\" was ambiguous; use more characters."),
        };
        registry
            .call(
                Method::DELETE,
                &format!("-/npm/v1/tokens/token/{target}"),
                None,
                otp.as_deref(),
            )
            .await?;
        removed += 1;
    }
    outln!(
        "Removed {removed} token{}",
        if removed == 1 { "" } else { "s" }
    )?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username (prompted when absent).
    #[arg(long)]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    otp: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `tessera login`: password login through the CouchDB endpoint; saves the token.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let registry = Registry::from_args(&args.client)?;
    let username = match args.username {
        Some(u) => u,
        None => dialoguer::Input::<String>::new()
            .with_prompt("Username")
            .interact_text()?,
    };
    let password = read_password(args.password_stdin, "Password", false)?;
    let body = json!({"_id": format!("org.couchdb.user:{username}"), "name": username, "password": password, "type": "user", "roles": []});
    let anonymous = registry_without_token(&registry)?;
    let answer = anonymous
        .call(
            Method::PUT,
            &format!("-/user/org.couchdb.user:{username}"),
            Some(&body),
            args.otp.as_deref(),
        )
        .await?;
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the registry sent no token"))?;
    super::npmrc::save_token(&registry.userconfig, &registry.base, token)?;
    outln!("Logged in as {username} on {}.", registry.base)?;
    Ok(())
}

fn registry_without_token(registry: &Registry) -> anyhow::Result<Registry> {
    Registry::from_args(&ClientArgs {
        registry: Some(registry.base.clone()),
        userconfig: Some(std::path::PathBuf::from("/nonexistent/.npmrc")),
        local_address: None,
    })
}

/// `tessera whoami`.
pub async fn whoami(args: ClientArgs) -> anyhow::Result<()> {
    let registry = Registry::from_args(&args)?;
    require_login(&registry)?;
    let me = registry.call(Method::GET, "-/whoami", None, None).await?;
    outln!("{}", me["username"].as_str().unwrap_or(""))?;
    Ok(())
}
