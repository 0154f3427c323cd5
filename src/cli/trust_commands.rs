//! `tessera package trust …`: trust configurations and the "publish only through
//! trusted publishing" policy, over the same HTTP endpoints `npm trust` uses.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::Registry;

/// What a new configuration allows.
#[derive(Debug, Clone, Args)]
pub struct Allow {
    /// Allow `npm publish` from this identity.
    #[arg(long)]
    allow_publish: bool,
    /// Allow `npm stage publish` from this identity (a maintainer then approves).
    #[arg(long)]
    allow_stage_publish: bool,
    /// The issuer (a URL the registry's operator trusts); default: the registry's
    /// main issuer for this CI system.
    #[arg(long)]
    issuer: Option<String>,
    #[arg(long)]
    otp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// The package's trust configurations.
    List {
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Trust a GitHub Actions workflow.
    Github {
        name: String,
        /// owner/repository
        #[arg(long)]
        repository: String,
        /// The workflow file name in .github/workflows, e.g. release.yml.
        #[arg(long)]
        file: String,
        /// Only jobs running in this deployment environment.
        #[arg(long)]
        environment: Option<String>,
        #[command(flatten)]
        allow: Allow,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Trust a GitLab CI pipeline (GitLab.com or an operator-configured GitLab).
    Gitlab {
        name: String,
        /// group/project
        #[arg(long)]
        project: String,
        /// The CI file, e.g. .gitlab-ci.yml.
        #[arg(long)]
        file: String,
        #[arg(long)]
        environment: Option<String>,
        #[command(flatten)]
        allow: Allow,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Trust a CircleCI project.
    Circleci {
        name: String,
        #[arg(long)]
        org_id: String,
        #[arg(long)]
        project_id: String,
        #[arg(long)]
        pipeline_definition_id: Option<String>,
        #[arg(long)]
        vcs_origin: Option<String>,
        #[command(flatten)]
        allow: Allow,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a trust configuration (tokens minted from it stop working).
    Revoke {
        name: String,
        id: String,
        #[arg(long)]
        otp: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// `on`: refuse token publishes of the package, only trusted publishing may add
    /// versions; `off`: tokens may publish again.
    Only {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long)]
        otp: Option<String>,
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

fn escaped(name: &str) -> String {
    name.replace('/', "%2f")
}

fn permissions(allow: &Allow) -> anyhow::Result<Value> {
    let mut list = Vec::new();
    if allow.allow_publish {
        list.push("createPackage");
    }
    if allow.allow_stage_publish {
        list.push("createStagedPackage");
    }
    anyhow::ensure!(
        !list.is_empty(),
        "choose what the identity may do: --allow-publish, --allow-stage-publish or both"
    );
    Ok(json!(list))
}

fn print_config(c: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let claims = &c["claims"];
    let what = match c["type"].as_str() {
        Some("github") => format!(
            "{} workflow {}",
            text(&claims["repository"]),
            text(&claims["workflow_ref"]["file"])
        ),
        Some("gitlab") => format!(
            "{} CI file {}",
            text(&claims["project_path"]),
            text(&claims["ci_config_ref_uri"]["file"])
        ),
        _ => format!("project {}", text(&claims["oidc.circleci.com/project-id"])),
    };
    let env = claims["environment"]
        .as_str()
        .map(|e| format!(", environment {e}"))
        .unwrap_or_default();
    let perms: Vec<&str> = c["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| match p {
            "createPackage" => "publish",
            "createStagedPackage" => "stage publish",
            other => other,
        })
        .collect();
    println!(
        "{}  {:<8} {what}{env}  may {}  (issuer {})",
        text(&c["id"]),
        text(&c["type"]),
        perms.join(", "),
        text(&c["issuer"])
    );
}

async fn create(
    client: &ClientArgs,
    name: &str,
    kind: &str,
    claims: Value,
    allow: &Allow,
) -> anyhow::Result<()> {
    let registry = logged_in(client)?;
    let mut config = json!({"type": kind, "claims": claims, "permissions": permissions(allow)?});
    if let Some(issuer) = &allow.issuer {
        config["issuer"] = json!(issuer);
    }
    let created = registry
        .call(
            Method::POST,
            &format!("/-/package/{}/trust", escaped(name)),
            Some(&json!([config])),
            allow.otp.as_deref(),
        )
        .await?;
    println!("{name} now trusts:");
    for c in created.as_array().into_iter().flatten() {
        print_config(c);
    }
    Ok(())
}

/// Dispatches `tessera package trust …`.
pub async fn trust(cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::List { name, json, client } => {
            let registry = logged_in(&client)?;
            let list = registry
                .call(
                    Method::GET,
                    &format!("/-/package/{}/trust", escaped(&name)),
                    None,
                    None,
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let items = list.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("{name} has no trust configurations.");
            }
            for c in &items {
                print_config(c);
            }
            Ok(())
        }
        TrustCommand::Github {
            name,
            repository,
            file,
            environment,
            allow,
            client,
        } => {
            let mut claims = json!({"repository": repository, "workflow_ref": {"file": file}});
            if let Some(e) = environment {
                claims["environment"] = json!(e);
            }
            create(&client, &name, "github", claims, &allow).await
        }
        TrustCommand::Gitlab {
            name,
            project,
            file,
            environment,
            allow,
            client,
        } => {
            let mut claims = json!({"project_path": project, "ci_config_ref_uri": {"file": file}});
            if let Some(e) = environment {
                claims["environment"] = json!(e);
            }
            create(&client, &name, "gitlab", claims, &allow).await
        }
        TrustCommand::Circleci {
            name,
            org_id,
            project_id,
            pipeline_definition_id,
            vcs_origin,
            allow,
            client,
        } => {
            let mut claims = json!({
                "oidc.circleci.com/org-id": org_id,
                "oidc.circleci.com/project-id": project_id,
            });
            if let Some(p) = pipeline_definition_id {
                claims["oidc.circleci.com/pipeline-definition-id"] = json!(p);
            }
            if let Some(o) = vcs_origin {
                claims["oidc.circleci.com/vcs-origin"] = json!(o);
            }
            create(&client, &name, "circleci", claims, &allow).await
        }
        TrustCommand::Revoke {
            name,
            id,
            otp,
            client,
        } => {
            let registry = logged_in(&client)?;
            registry
                .call(
                    Method::DELETE,
                    &format!("/-/package/{}/trust/{id}", escaped(&name)),
                    None,
                    otp.as_deref(),
                )
                .await?;
            println!("Revoked the trust configuration {id} of {name}.");
            Ok(())
        }
        TrustCommand::Only {
            name,
            state,
            otp,
            client,
        } => {
            let registry = logged_in(&client)?;
            let on = state == "on";
            registry
                .call(
                    Method::POST,
                    &format!("/-/package/{}/access", escaped(&name)),
                    Some(&json!({"trusted_publishing_only": on})),
                    otp.as_deref(),
                )
                .await?;
            if on {
                println!("{name} now accepts new versions only through trusted publishing.");
            } else {
                println!("{name} accepts token publishes again.");
            }
            Ok(())
        }
    }
}
