//! Trust configurations as npm 11 sends them (`npm trust github|gitlab|circleci`),
//! checked strictly, and the match of a verified id token's claims against one. Pure:
//! no I/O.

use serde_json::{Map, Value, json};

use crate::config::CiKind;

/// What a configuration allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// `createPackage`: `npm publish`.
    pub publish: bool,
    /// `createStagedPackage`: `npm stage publish`.
    pub stage: bool,
}

impl Permissions {
    pub const PUBLISH: &'static str = "createPackage";
    pub const STAGE: &'static str = "createStagedPackage";

    pub fn to_json(self) -> Value {
        let mut list = Vec::new();
        if self.publish {
            list.push(Self::PUBLISH);
        }
        if self.stage {
            list.push(Self::STAGE);
        }
        json!(list)
    }

    /// Reads a stored or sent list; unknown values are refused.
    pub fn parse(value: &Value) -> Result<Permissions, String> {
        let list = value
            .as_array()
            .ok_or("permissions must be a list of createPackage and createStagedPackage")?;
        let mut p = Permissions {
            publish: false,
            stage: false,
        };
        for item in list {
            match item.as_str() {
                Some(Self::PUBLISH) => p.publish = true,
                Some(Self::STAGE) => p.stage = true,
                _ => {
                    return Err(format!(
                        "unknown permission {item}: use createPackage (publish) or createStagedPackage (stage publish)"
                    ));
                }
            }
        }
        if !p.publish && !p.stage {
            return Err("a trust configuration must allow publish (createPackage), stage publish (createStagedPackage) or both".into());
        }
        Ok(p)
    }

    /// How the token list and the website say it.
    pub fn describe(self) -> &'static str {
        match (self.publish, self.stage) {
            (true, true) => "publish, stage publish",
            (true, false) => "publish",
            _ => "stage publish",
        }
    }
}

const MAX_FIELD: usize = 256;

fn text<'a>(
    claims: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<&'a str>, String> {
    match claims.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(format!("claims.{key} is required")),
        Some(Value::String(s)) if s.trim().is_empty() && !required => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("claims.{key} is empty")),
        Some(Value::String(s)) if s.len() > MAX_FIELD || s.chars().any(char::is_control) => {
            Err(format!("claims.{key} is not a valid value"))
        }
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("claims.{key} must be a string")),
    }
}

/// `{ "file": "ci.yml" }` as npm sends the workflow / CI config file.
fn file_claim(claims: &Map<String, Value>, key: &str) -> Result<String, String> {
    let file = claims
        .get(key)
        .and_then(Value::as_object)
        .and_then(|o| o.get("file"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("claims.{key}.file is required"))?;
    if file.is_empty() || file.len() > MAX_FIELD || file.chars().any(char::is_control) {
        return Err(format!("claims.{key}.file is not a valid file name"));
    }
    Ok(file.to_owned())
}

/// A path like `owner/repo` or `group/sub/project`.
fn check_path(key: &str, value: &str, exactly_two: bool) -> Result<(), String> {
    let parts: Vec<&str> = value.split('/').collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }) && if exactly_two {
        parts.len() == 2
    } else {
        parts.len() >= 2
    };
    if ok {
        Ok(())
    } else if exactly_two {
        Err(format!(
            "claims.{key} must be owner/repository, not {value:?}"
        ))
    } else {
        Err(format!("claims.{key} must be group/project, not {value:?}"))
    }
}

/// A checked trust configuration: what an id token must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Github {
        repository: String,
        workflow_file: String,
        environment: Option<String>,
    },
    Gitlab {
        project_path: String,
        config_file: String,
        environment: Option<String>,
    },
    Circleci {
        org_id: String,
        project_id: String,
        pipeline_definition_id: Option<String>,
        vcs_origin: Option<String>,
        context_ids: Vec<String>,
    },
}

const CIRCLE: &str = "oidc.circleci.com/";

impl Rule {
    pub fn kind(&self) -> CiKind {
        match self {
            Rule::Github { .. } => CiKind::Github,
            Rule::Gitlab { .. } => CiKind::Gitlab,
            Rule::Circleci { .. } => CiKind::Circleci,
        }
    }

    /// Reads the `claims` of a configuration of `kind` (as sent, or as stored).
    pub fn parse(kind: CiKind, claims: &Value) -> Result<Rule, String> {
        let claims = claims.as_object().ok_or("claims must be an object")?;
        match kind {
            CiKind::Github => {
                let repository = text(claims, "repository", true)?.unwrap_or_default();
                check_path("repository", repository, true)?;
                let workflow_file = file_claim(claims, "workflow_ref")?;
                let ext_ok = workflow_file.ends_with(".yml") || workflow_file.ends_with(".yaml");
                if workflow_file.contains('/') || !ext_ok {
                    return Err(format!(
                        "claims.workflow_ref.file must be a workflow file name ending in .yml or .yaml, not {workflow_file:?}"
                    ));
                }
                Ok(Rule::Github {
                    repository: repository.to_owned(),
                    workflow_file,
                    environment: text(claims, "environment", false)?.map(str::to_owned),
                })
            }
            CiKind::Gitlab => {
                let project_path = text(claims, "project_path", true)?.unwrap_or_default();
                check_path("project_path", project_path, false)?;
                let config_file = file_claim(claims, "ci_config_ref_uri")?;
                if config_file.starts_with('/')
                    || config_file.contains("..")
                    || config_file.contains('@')
                {
                    return Err(format!(
                        "claims.ci_config_ref_uri.file must be a path in the project, not {config_file:?}"
                    ));
                }
                Ok(Rule::Gitlab {
                    project_path: project_path.to_owned(),
                    config_file,
                    environment: text(claims, "environment", false)?.map(str::to_owned),
                })
            }
            CiKind::Circleci => {
                let key = |k: &str| format!("{CIRCLE}{k}");
                let context_ids = match claims.get(&key("context-ids")) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .filter(|s| !s.is_empty() && s.len() <= MAX_FIELD)
                                .map(str::to_owned)
                                .ok_or_else(|| {
                                    format!("claims.{} must list strings", key("context-ids"))
                                })
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(format!("claims.{} must be a list", key("context-ids"))),
                };
                Ok(Rule::Circleci {
                    org_id: text(claims, &key("org-id"), true)?
                        .unwrap_or_default()
                        .to_owned(),
                    project_id: text(claims, &key("project-id"), true)?
                        .unwrap_or_default()
                        .to_owned(),
                    pipeline_definition_id: text(claims, &key("pipeline-definition-id"), false)?
                        .map(str::to_owned),
                    vcs_origin: text(claims, &key("vcs-origin"), false)?.map(str::to_owned),
                    context_ids,
                })
            }
        }
    }

    /// The claims as npm reads them back (`npm trust list`).
    pub fn to_claims(&self) -> Value {
        match self {
            Rule::Github {
                repository,
                workflow_file,
                environment,
            } => {
                let mut v =
                    json!({"repository": repository, "workflow_ref": {"file": workflow_file}});
                if let Some(e) = environment {
                    v["environment"] = json!(e);
                }
                v
            }
            Rule::Gitlab {
                project_path,
                config_file,
                environment,
            } => {
                let mut v = json!({"project_path": project_path, "ci_config_ref_uri": {"file": config_file}});
                if let Some(e) = environment {
                    v["environment"] = json!(e);
                }
                v
            }
            Rule::Circleci {
                org_id,
                project_id,
                pipeline_definition_id,
                vcs_origin,
                context_ids,
            } => {
                let mut v = Map::new();
                v.insert(format!("{CIRCLE}org-id"), json!(org_id));
                v.insert(format!("{CIRCLE}project-id"), json!(project_id));
                if let Some(p) = pipeline_definition_id {
                    v.insert(format!("{CIRCLE}pipeline-definition-id"), json!(p));
                }
                if let Some(o) = vcs_origin {
                    v.insert(format!("{CIRCLE}vcs-origin"), json!(o));
                }
                if !context_ids.is_empty() {
                    v.insert(format!("{CIRCLE}context-ids"), json!(context_ids));
                }
                Value::Object(v)
            }
        }
    }

    /// One line for people: `owner/repo, workflow ci.yml, environment prod`.
    pub fn describe(&self) -> String {
        match self {
            Rule::Github {
                repository,
                workflow_file,
                environment,
            } => with_env(
                format!("{repository}, workflow {workflow_file}"),
                environment,
            ),
            Rule::Gitlab {
                project_path,
                config_file,
                environment,
            } => with_env(
                format!("{project_path}, CI file {config_file}"),
                environment,
            ),
            Rule::Circleci {
                org_id, project_id, ..
            } => format!("organization {org_id}, project {project_id}"),
        }
    }

    /// Whether a verified id token's claims satisfy this rule; the error says which
    /// claim differs (shown to the CI job, which holds the token anyway).
    pub fn check(&self, claims: &Map<String, Value>) -> Result<(), String> {
        let get = |k: &str| claims.get(k).and_then(Value::as_str);
        let env_ok = |want: &Option<String>| -> Result<(), String> {
            match want {
                None => Ok(()),
                Some(w) if get("environment") == Some(w.as_str()) => Ok(()),
                Some(_) => Err(format!(
                    "environment {:?} is not the trusted one",
                    get("environment").unwrap_or("")
                )),
            }
        };
        match self {
            Rule::Github {
                repository,
                workflow_file,
                environment,
            } => {
                let repo = get("repository").unwrap_or("");
                if !repo.eq_ignore_ascii_case(repository) {
                    return Err(format!("repository {repo:?} is not trusted"));
                }
                // `owner/repo/.github/workflows/ci.yml@refs/heads/main`
                let workflow_ref = get("workflow_ref").unwrap_or("");
                let path = workflow_ref.split('@').next().unwrap_or("");
                let expected = format!("{repo}/.github/workflows/{workflow_file}");
                if !path.eq_ignore_ascii_case(&expected) || !workflow_ref.contains('@') {
                    return Err(format!(
                        "workflow {workflow_ref:?} is not the trusted workflow file"
                    ));
                }
                env_ok(environment)
            }
            Rule::Gitlab {
                project_path,
                config_file,
                environment,
            } => {
                let project = get("project_path").unwrap_or("");
                if project != project_path {
                    return Err(format!("project_path {project:?} is not trusted"));
                }
                // `gitlab.example.com/group/project//.gitlab-ci.yml@refs/heads/main`
                let uri = get("ci_config_ref_uri").unwrap_or("");
                let (location, _) = uri.split_once('@').unwrap_or((uri, ""));
                let ok = location
                    .split_once("//")
                    .is_some_and(|(host_project, file)| {
                        file == config_file
                            && host_project
                                .split_once('/')
                                .is_some_and(|(_, p)| p == project_path)
                    });
                if !ok || !uri.contains('@') {
                    return Err(format!(
                        "ci_config_ref_uri {uri:?} is not the trusted CI file"
                    ));
                }
                env_ok(environment)
            }
            Rule::Circleci {
                org_id,
                project_id,
                pipeline_definition_id,
                vcs_origin,
                context_ids,
            } => {
                let key = |k: &str| format!("{CIRCLE}{k}");
                let same = |k: &str, want: &str| -> Result<(), String> {
                    let have = get(&key(k)).unwrap_or("");
                    if have == want {
                        Ok(())
                    } else {
                        Err(format!("{} {have:?} is not trusted", key(k)))
                    }
                };
                same("org-id", org_id)?;
                same("project-id", project_id)?;
                if let Some(p) = pipeline_definition_id {
                    same("pipeline-definition-id", p)?;
                }
                if let Some(o) = vcs_origin {
                    same("vcs-origin", o)?;
                }
                let have: Vec<&str> = claims
                    .get(&key("context-ids"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if context_ids.iter().any(|c| !have.contains(&c.as_str())) {
                    return Err("the job does not run in every trusted context".into());
                }
                Ok(())
            }
        }
    }
}

fn with_env(text: String, environment: &Option<String>) -> String {
    match environment {
        Some(e) => format!("{text}, environment {e}"),
        None => text,
    }
}

/// The workflow identity a token is minted for, as shown in the token list and the
/// security log.
pub fn identity(kind: CiKind, claims: &Map<String, Value>) -> String {
    let get = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("?");
    let env = claims
        .get("environment")
        .and_then(Value::as_str)
        .map(|e| format!(" (environment {e})"))
        .unwrap_or_default();
    let text = match kind {
        CiKind::Github => format!("GitHub Actions {}{env}", get("workflow_ref")),
        CiKind::Gitlab => format!("GitLab CI {}{env}", get("ci_config_ref_uri")),
        CiKind::Circleci => format!(
            "CircleCI project {} ({})",
            get(&format!("{CIRCLE}project-id")),
            get(&format!("{CIRCLE}vcs-origin"))
        ),
    };
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn github_rules_match_repository_workflow_and_environment() {
        let rule = Rule::parse(
            CiKind::Github,
            &json!({"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}, "environment": "prod"}),
        )
        .unwrap();
        let good = json!({"repository": "acme/widget", "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/tags/v1", "environment": "prod"});
        rule.check(&obj(good.clone())).unwrap();
        for (key, value, needle) in [
            ("repository", json!("acme/other"), "repository"),
            (
                "workflow_ref",
                json!("acme/widget/.github/workflows/ci.yml@refs/heads/main"),
                "workflow",
            ),
            (
                "workflow_ref",
                json!("evil/fork/.github/workflows/release.yml@refs/heads/main"),
                "workflow",
            ),
            (
                "workflow_ref",
                json!("acme/widget/.github/workflows/release.yml"),
                "workflow",
            ),
            ("environment", json!("staging"), "environment"),
            ("environment", Value::Null, "environment"),
        ] {
            let mut bad = good.clone();
            bad[key] = value;
            let err = rule.check(&obj(bad)).unwrap_err();
            assert!(err.contains(needle), "{key}: {err}");
        }
    }

    #[test]
    fn gitlab_rules_match_project_and_ci_file() {
        let rule = Rule::parse(
            CiKind::Gitlab,
            &json!({"project_path": "group/project", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}),
        )
        .unwrap();
        let good = json!({"project_path": "group/project", "ci_config_ref_uri": "gitlab.example.com/group/project//.gitlab-ci.yml@refs/heads/main"});
        rule.check(&obj(good.clone())).unwrap();
        let mut other_file = good.clone();
        other_file["ci_config_ref_uri"] =
            json!("gitlab.example.com/group/project//other.yml@refs/heads/main");
        assert!(rule.check(&obj(other_file)).is_err());
        let mut other_project = good.clone();
        other_project["ci_config_ref_uri"] =
            json!("gitlab.example.com/group/evil//.gitlab-ci.yml@refs/heads/main");
        assert!(rule.check(&obj(other_project)).is_err());
    }

    #[test]
    fn circleci_rules_match_ids_and_contexts() {
        let rule = Rule::parse(
            CiKind::Circleci,
            &json!({"oidc.circleci.com/org-id": "o1", "oidc.circleci.com/project-id": "p1", "oidc.circleci.com/context-ids": ["c1"]}),
        )
        .unwrap();
        rule.check(&obj(json!({"oidc.circleci.com/org-id": "o1", "oidc.circleci.com/project-id": "p1", "oidc.circleci.com/context-ids": ["c0", "c1"]})))
            .unwrap();
        assert!(
            rule.check(&obj(
                json!({"oidc.circleci.com/org-id": "o1", "oidc.circleci.com/project-id": "p1"})
            ))
            .is_err()
        );
        assert!(rule.check(&obj(json!({"oidc.circleci.com/org-id": "o2", "oidc.circleci.com/project-id": "p1", "oidc.circleci.com/context-ids": ["c1"]}))).is_err());
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (kind, claims) in [
            (
                CiKind::Github,
                json!({"repository": "acme", "workflow_ref": {"file": "ci.yml"}}),
            ),
            (
                CiKind::Github,
                json!({"repository": "acme/widget", "workflow_ref": {"file": "../ci.yml"}}),
            ),
            (
                CiKind::Github,
                json!({"repository": "acme/widget", "workflow_ref": {"file": "ci.sh"}}),
            ),
            (CiKind::Github, json!({"repository": "acme/widget"})),
            (
                CiKind::Github,
                json!({"repository": 5, "workflow_ref": {"file": "ci.yml"}}),
            ),
            (
                CiKind::Gitlab,
                json!({"project_path": "project", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}),
            ),
            (CiKind::Circleci, json!({"oidc.circleci.com/org-id": "o1"})),
            (CiKind::Github, json!([])),
        ] {
            assert!(Rule::parse(kind, &claims).is_err(), "{claims}");
        }
        assert!(Permissions::parse(&json!([])).is_err());
        assert!(Permissions::parse(&json!(["admin"])).is_err());
        assert_eq!(
            Permissions::parse(&json!(["createStagedPackage"])).unwrap(),
            Permissions {
                publish: false,
                stage: true
            }
        );
    }
}
