//! Extractors: the client address (trusted proxies only), the authenticated caller
//! (every protected handler takes `Auth` or `RequireAuth`, so none can forget it),
//! and JSON bodies whose errors are npm-shaped.

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::ApiError;
use crate::app::App;
use crate::cidr::{CidrList, ClientAddr, canonical};
use crate::domain::{self, Caller};

/// The shared state handlers receive.
pub type AppState = Arc<App>;

/// The client's address: the TCP peer, or the forwarded address when the peer is a
/// configured trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub ClientAddr);

/// Resolves the client address from the peer and forwarding headers.
///
/// `X-Forwarded-For` is read only when the TCP peer is a trusted proxy, from the
/// right: trusted proxies are skipped, and the first other entry is the client. An
/// entry that does not parse (in the forms proxies write: `ip`, `ip:port`, `[v6]`,
/// `[v6]:port`) ends the walk: the client is then `Unknown`, which matches no CIDR
/// range, so text an attacker wrote further left can never be taken for the client.
pub fn client_ip(app: &App, parts: &Parts) -> ClientAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()))
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let trusted = |ip: &std::net::IpAddr| app.config.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return ClientAddr::Ip(peer);
    }
    let entries: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.iter().rev() {
        match CidrList::parse_forwarded(entry) {
            Some(ip) if trusted(&ip) => continue,
            Some(ip) => return ClientAddr::Ip(ip),
            None => return ClientAddr::Unknown,
        }
    }
    ClientAddr::Ip(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(app, parts)))
    }
}

fn otp_header(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("npm-otp")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn caller_from_parts(parts: &Parts, app: &AppState) -> Result<Option<Caller>, ApiError> {
    let ip = client_ip(app, parts);
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut caller = domain::authenticate_header(app, header, ip).await?;
    if let Some(c) = caller.as_mut() {
        c.otp = otp_header(parts);
        if let (Some(token), Some(slot)) = (&c.token, parts.extensions.get::<super::TokenNotice>())
            && let Some(text) = domain::tokens::expiry_notice(app, token)
        {
            slot.set(text);
        }
    }
    Ok(caller)
}

/// The caller if credentials were sent (invalid credentials are refused).
#[derive(Debug)]
pub struct Auth(pub Option<Caller>);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Auth(caller_from_parts(parts, app).await?))
    }
}

/// A caller that must be authenticated.
#[derive(Debug)]
pub struct RequireAuth(pub Caller);

impl FromRequestParts<AppState> for RequireAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match caller_from_parts(parts, app).await? {
            Some(c) => Ok(RequireAuth(c)),
            None => Err(domain::Error::Unauthenticated(
                "authentication required; log in with `npm login`".into(),
            )
            .into()),
        }
    }
}

/// For login endpoints: a stale or invalid credential counts as anonymous, so a
/// re-login is never blocked by the token it replaces.
#[derive(Debug)]
pub struct LenientAuth(pub Option<Caller>);

impl FromRequestParts<AppState> for LenientAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(LenientAuth(
            caller_from_parts(parts, app).await.ok().flatten(),
        ))
    }
}

/// The `npm-otp` header.
#[derive(Debug)]
pub struct Otp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Otp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Otp(otp_header(parts)))
    }
}

/// The user agent, for naming login tokens.
#[derive(Debug)]
pub struct UserAgent(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(UserAgent(
            parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown client")
                .to_owned(),
        ))
    }
}

/// A JSON body; malformed JSON and oversized bodies become npm-shaped 4xx errors.
#[derive(Debug)]
pub struct NpmJson<T>(pub T);

impl<T, S> FromRequest<S> for NpmJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status();
                if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "request body is larger than this registry accepts")
                } else {
                    ApiError::bad_request(format!("could not read request body: {e}"))
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(NpmJson)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
    }
}
