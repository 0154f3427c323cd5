//! A small HTTP client for the registry API, shared by the user commands. It sends
//! the token from .npmrc and turns npm-shaped errors (`{"error": …}`) into messages;
//! a 401 OTP challenge is retried once with a code from `--otp` or a prompt.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::IsTerminal;

use super::ClientArgs;
use super::npmrc;

/// A configured client for one registry.
pub struct Registry {
    pub base: String,
    pub userconfig: std::path::PathBuf,
    token: Option<String>,
    http: reqwest::Client,
}

/// An error answer from the registry.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
    pub otp_requested: bool,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiFailure {}

impl Registry {
    /// Resolves the registry and token from flags, environment and .npmrc.
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Registry> {
        let userconfig = npmrc::userconfig_path(args.userconfig.as_deref());
        let lines = npmrc::read(&userconfig);
        let base = args
            .registry
            .clone()
            .or_else(|| std::env::var("npm_config_registry").ok())
            .or_else(|| std::env::var("NPM_CONFIG_REGISTRY").ok())
            .or_else(|| npmrc::get(&lines, "registry").map(str::to_owned))
            .unwrap_or_else(|| "http://127.0.0.1:4880/".to_owned());
        let base = format!("{}/", base.trim_end_matches('/'));
        let token = npmrc::token_for(&lines, &base);
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")));
        if let Some(addr) = args.local_address {
            builder = builder.local_address(addr);
        }
        Ok(Registry {
            base,
            userconfig,
            token,
            http: builder.build()?,
        })
    }

    /// GETs `path` and reads the whole answer; the status and its size in bytes.
    pub async fn fetch(&self, path: &str, accept: &str) -> anyhow::Result<(StatusCode, usize)> {
        let mut request = self
            .http
            .get(self.url(path))
            .header(reqwest::header::ACCEPT, accept);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok((status, body.len()))
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends a request; on an OTP challenge, retries once with `otp` or a prompt.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        otp: Option<&str>,
    ) -> anyhow::Result<Value> {
        match self.send(method.clone(), path, body, otp).await {
            Err(e) if otp.is_none() => match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.otp_requested => {
                    let code = prompt_otp()?;
                    self.send(method, path, body, Some(&code)).await
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        otp: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        if let Some(code) = otp {
            request = request.header("npm-otp", code);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the registry at {}: {e}", self.base))?;
        let status = response.status();
        let otp_requested = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("otp")));
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if text.is_empty() {
                    status.to_string()
                } else {
                    text.chars().take(300).collect()
                }
            });
        Err(ApiFailure {
            status,
            message,
            otp_requested,
        }
        .into())
    }
}

fn prompt_otp() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("This operation requires a one-time password; pass --otp=<code>.");
    }
    Ok(dialoguer::Input::<String>::new()
        .with_prompt("This operation requires a one-time password.\nEnter OTP")
        .interact_text()?)
}
