//! HTTP client of one upstream registry: packuments with conditional requests, and
//! tarballs read whole within a size limit. Every failure (refused or dropped
//! connection, timeout, 5xx, a body cut short) is an `UplinkError` whose message
//! never holds the token.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use std::time::{Duration, Instant};

use crate::config::{ExposeSecret, Uplink};
use crate::metrics::{UplinkResult, UplinkStats};

/// Largest packument read from an uplink (the biggest public ones are tens of MiB).
const MAX_PACKUMENT_BYTES: usize = 64 * 1024 * 1024;

/// An uplink request that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct UplinkError(pub String);

/// What the uplink said about a packument.
#[derive(Debug)]
pub enum Fetched {
    Document {
        body: Bytes,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    NotModified,
    NotFound,
}

/// One configured uplink and its connection pool.
#[derive(Debug)]
pub struct UplinkClient {
    pub config: Uplink,
    http: reqwest::Client,
    stats: std::sync::Arc<UplinkStats>,
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}", humantime::format_duration(timeout))
    } else if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the connection dropped while reading the answer".to_owned()
    } else {
        // reqwest's message names the URL, which carries no credential here.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

impl UplinkClient {
    pub fn new(config: Uplink, stats: std::sync::Arc<UplinkStats>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(UplinkClient {
            config,
            http,
            stats,
        })
    }

    pub fn stats(&self) -> &UplinkStats {
        &self.stats
    }

    /// The URL of `name`'s packument (`@scope%2fname` for scoped names, as npm asks).
    pub fn packument_url(&self, name: &str) -> String {
        format!("{}/{}", self.config.url, name.replace('/', "%2f"))
    }

    /// Whether `url` lies on this uplink (the token goes only there).
    fn same_origin(&self, url: &str) -> bool {
        let origin = |u: &str| -> Option<String> {
            let (scheme, rest) = u.split_once("://")?;
            let host = rest.split(['/', '?', '#']).next()?;
            Some(format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ))
        };
        origin(url).is_some() && origin(url) == origin(&self.config.url)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, url);
        if let Some(token) = &self.config.token
            && self.same_origin(url)
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        {
            v.set_sensitive(true);
            r = r.header(header::AUTHORIZATION, v);
        }
        r
    }

    fn record<T>(&self, start: Instant, result: &Result<T, UplinkError>, ok: UplinkResult) {
        let label = if result.is_ok() {
            ok
        } else {
            UplinkResult::Error
        };
        self.stats.request(label, start.elapsed());
    }

    /// GETs a full packument, conditionally when validators are given.
    pub async fn packument(
        &self,
        name: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Fetched, UplinkError> {
        let start = Instant::now();
        let result = self.packument_inner(name, etag, last_modified).await;
        let ok = match &result {
            Ok(Fetched::Document { .. }) => UplinkResult::Ok,
            Ok(Fetched::NotModified) => UplinkResult::NotModified,
            Ok(Fetched::NotFound) => UplinkResult::NotFound,
            Err(_) => UplinkResult::Error,
        };
        self.record(start, &result, ok);
        result
    }

    async fn packument_inner(
        &self,
        name: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Fetched, UplinkError> {
        let url = self.packument_url(name);
        let mut r = self
            .request(reqwest::Method::GET, &url)
            .header(header::ACCEPT, "application/json");
        if let Some(e) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            r = r.header(header::IF_NONE_MATCH, e);
        }
        if let Some(m) = last_modified.and_then(|m| HeaderValue::from_str(m).ok()) {
            r = r.header(header::IF_MODIFIED_SINCE, m);
        }
        let timeout = self.config.timeout;
        let response = r
            .send()
            .await
            .map_err(|e| UplinkError(describe(&e, timeout)))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND => Ok(Fetched::NotFound),
            s if s.is_success() => {
                let header_text = |h: header::HeaderName| {
                    response
                        .headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let etag = header_text(header::ETAG);
                let last_modified = header_text(header::LAST_MODIFIED);
                let body = read_capped(response, MAX_PACKUMENT_BYTES, timeout).await?;
                Ok(Fetched::Document {
                    body,
                    etag,
                    last_modified,
                })
            }
            s => Err(UplinkError(format!("answered {s}"))),
        }
    }

    /// GETs a tarball whole, at most `limit` bytes.
    pub async fn tarball(&self, url: &str, limit: usize) -> Result<Bytes, UplinkError> {
        let start = Instant::now();
        let timeout = self.config.timeout;
        let result = async {
            let response = self
                .request(reqwest::Method::GET, url)
                .send()
                .await
                .map_err(|e| UplinkError(describe(&e, timeout)))?;
            match response.status() {
                s if s.is_success() => read_capped(response, limit, timeout).await,
                s => Err(UplinkError(format!("answered {s} for the tarball"))),
            }
        }
        .await;
        self.record(start, &result, UplinkResult::Ok);
        result
    }

    /// POSTs an audit body (gzip JSON) and returns the status and answer.
    pub async fn audit(&self, gzip_body: Vec<u8>) -> Result<(u16, Bytes), UplinkError> {
        let start = Instant::now();
        let timeout = self.config.timeout;
        let url = format!("{}/-/npm/v1/security/advisories/bulk", self.config.url);
        let result = async {
            let response = self
                .request(reqwest::Method::POST, &url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, "gzip")
                .body(gzip_body)
                .send()
                .await
                .map_err(|e| UplinkError(describe(&e, timeout)))?;
            let status = response.status().as_u16();
            let body = read_capped(response, MAX_PACKUMENT_BYTES, timeout).await?;
            Ok((status, body))
        }
        .await;
        self.record(start, &result, UplinkResult::Ok);
        result
    }
}

async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, UplinkError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UplinkError(format!(
            "the answer is larger than {limit} bytes"
        )));
    }
    let mut buf = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |n| (n as usize).min(limit)),
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UplinkError(describe(&e, timeout)))?
    {
        if chunk.len() > limit - buf.len() {
            return Err(UplinkError(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
