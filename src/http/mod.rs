//! The HTTP boundary: the only module that knows axum, status codes, headers, cookies
//! and wire shapes. Three faces share one router: the npm protocol (`npm`), the
//! website (`web`), and operational endpoints. Handlers call `domain` only.

pub mod error;
pub mod extract;
pub mod npm;
pub mod web;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post, put};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use extract::AppState;
use npm::{
    meta_routes, org_routes, package_routes, profile_routes, star_routes, token_routes,
    trust_routes, user_routes,
};

/// Builds the whole router for `app`.
pub fn router(app: AppState) -> Router {
    let max_body = app.config.max_body_bytes;
    let registry = Router::new()
        .route("/-/ping", get(meta_routes::ping))
        .route("/-/health", get(meta_routes::health))
        .route("/-/ready", get(meta_routes::ready))
        .route("/-/metrics", get(meta_routes::metrics))
        .route("/-/whoami", get(user_routes::whoami))
        .route("/-/user/token/{token}", delete(user_routes::logout))
        .route(
            "/-/user/{id}",
            get(user_routes::get_user).put(user_routes::put_user),
        )
        .route("/-/user/{id}/-rev/{rev}", put(user_routes::put_user))
        .route("/-/user/{id}/package", get(meta_routes::user_packages))
        .route(
            "/-/org",
            get(org_routes::list_mine).post(org_routes::create_org),
        )
        .route("/-/org/{org}/log", get(org_routes::org_log))
        .route("/-/org/{org}/package", get(org_routes::list_org_packages))
        .route(
            "/-/org/{org}/user",
            get(org_routes::list_members)
                .put(org_routes::set_member)
                .delete(org_routes::remove_member),
        )
        .route(
            "/-/org/{org}/team",
            get(org_routes::list_teams).put(org_routes::create_team),
        )
        .route("/-/org/{org}/credentials", get(org_routes::org_credentials))
        .route("/-/team/{org}/{team}", delete(org_routes::destroy_team))
        .route(
            "/-/team/{org}/{team}/user",
            get(org_routes::list_team_members)
                .put(org_routes::add_team_member)
                .delete(org_routes::remove_team_member),
        )
        .route(
            "/-/team/{org}/{team}/package",
            get(org_routes::list_team_packages)
                .put(org_routes::grant_package)
                .delete(org_routes::revoke_package),
        )
        .route("/-/user/{id}/stars", get(star_routes::user_stars))
        .route(
            "/-/user/v1/star",
            get(star_routes::own_stars)
                .put(star_routes::star)
                .delete(star_routes::unstar),
        )
        .route(
            "/-/_view/starredByUser",
            get(star_routes::starred_by_user_view),
        )
        .route("/-/v1/login", post(user_routes::start_web_login))
        .route("/-/v1/done/{id}", get(user_routes::poll_web_login))
        .route("/-/v1/search", get(meta_routes::search))
        .route(
            "/-/npm/v1/tokens",
            get(token_routes::list_tokens).post(token_routes::create_token),
        )
        .route(
            "/-/npm/v1/tokens/token/{key}",
            delete(token_routes::revoke_token),
        )
        .route(
            "/-/npm/v1/tokens/token/{key}/rotate",
            post(token_routes::rotate_token),
        )
        .route(
            "/-/npm/v1/tokens/leaked",
            post(token_routes::report_leaked).layer(DefaultBodyLimit::max(
                token_routes::LEAK_REPORT_MAX_BYTES + 1,
            )),
        )
        .route(
            "/-/npm/v1/user",
            get(profile_routes::get_profile).post(profile_routes::post_profile),
        )
        .route("/-/npm/v1/keys", get(meta_routes::signing_keys))
        .route(
            "/-/npm/v1/attestations/{*spec}",
            get(package_routes::attestations),
        )
        .route(
            "/-/npm/v1/security/advisories/bulk",
            post(meta_routes::audit),
        )
        .route(
            "/-/npm/v1/security/audits/quick",
            post(meta_routes::audit_quick),
        )
        .route("/-/package/{*rest}", any(meta_routes::package_endpoint))
        .route(
            "/-/npm/v1/oidc/token/exchange/package/{*name}",
            post(trust_routes::exchange),
        )
        .route("/-/stage", get(trust_routes::stage_list))
        .route(
            "/-/stage/package/{*name}",
            post(trust_routes::stage_publish),
        )
        .route(
            "/-/stage/{id}",
            get(trust_routes::stage_view).delete(trust_routes::stage_reject),
        )
        .route("/-/stage/{id}/approve", post(trust_routes::stage_approve))
        .route("/-/stage/{id}/tarball", get(trust_routes::stage_tarball))
        .route(
            "/{*path}",
            get(package_routes::get_package_path)
                .put(package_routes::put_package_path)
                .delete(package_routes::delete_package_path)
                .fallback(package_routes::other_method),
        );
    let compress =
        SizeAbove::new(256).and(NotForContentType::const_new("application/octet-stream"));
    Router::new()
        .merge(web::router(app.clone()))
        .merge(registry)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new().compress_when(compress))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(token_notice))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(SequentialRequestId::new()))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(app)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal server error",
    )
    .into_response_owned()
}

impl error::ApiError {
    fn into_response_owned(self) -> Response {
        axum::response::IntoResponse::into_response(self)
    }
}

/// Marks a request whose body arrived more slowly than the configured minimum. The
/// connection layer (`server`) attaches one to every request that has a body and sets
/// it when it cuts the body off; `observe` then answers 408 and closes the connection,
/// whatever error the handler made of the cut body.
#[derive(Debug, Clone, Default)]
pub struct SlowBody(Arc<std::sync::atomic::AtomicBool>);

impl SlowBody {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Logs every request (without credentials) and feeds the metrics. The log line's
/// fields are only built when the access log is enabled.
async fn observe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let slow_body = request.extensions().get::<SlowBody>().cloned();
    let logged = tracing::enabled!(target: "tessera::access", tracing::Level::INFO).then(|| {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (request_id, redact_path(request.uri().path()))
    });
    // One read-cache ticket per request (the generation rule: `store::generation`).
    let mut response = crate::store::one_request(next.run(request)).await;
    if slow_body.is_some_and(|s| s.is_marked()) {
        response = error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "the request body arrived too slowly",
        )
        .into_response_owned();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.metrics.observe(method.as_str(), route, status, elapsed);
    if let Some((request_id, path)) = logged {
        let ms = elapsed.as_secs_f64() * 1000.0;
        tracing::info!(target: "tessera::access", request_id, %method, path, route, status, ms, "request");
    }
    response
}

/// Request ids: a random per-process prefix and a counter, unique without drawing
/// randomness for every request.
#[derive(Clone)]
struct SequentialRequestId {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> Self {
        SequentialRequestId {
            prefix: rand::random(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{:08x}-{n:012x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// A warning for the response, set by the `Auth` extractors when the request's token
/// is close to its end (`domain::tokens::expiry_notice`).
#[derive(Debug, Clone, Default)]
pub struct TokenNotice(Arc<std::sync::Mutex<Option<String>>>);

impl TokenNotice {
    pub fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Adds the token's warning as an `npm-notice` header (beside any the handler set).
async fn token_notice(mut request: Request, next: Next) -> Response {
    let notice = TokenNotice::default();
    request.extensions_mut().insert(notice.clone());
    let mut response = next.run(request).await;
    if let Some(value) = notice.take().as_deref().and_then(error::notice_value) {
        response.headers_mut().append("npm-notice", value);
    }
    response
}

/// Headers every response carries; the website's CSP forbids inline script.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'",
        ),
    );
    response
}

/// Removes secrets that some URLs carry (tokens in logout and revoke paths, browser
/// login ids, and a full token pasted anywhere in a path, percent-encoded or not)
/// before a path is logged.
pub fn redact_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for segment in path.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        let token_shaped = decoded
            .to_ascii_lowercase()
            .contains(crate::crypto::token_format::TOKEN_PREFIX);
        if hide_next || token_shaped {
            out.push("<redacted>");
            hide_next = false;
            continue;
        }
        hide_next = matches!(segment, "token" | "done" | "cli");
        out.push(segment);
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_paths_are_redacted() {
        assert_eq!(
            super::redact_path("/-/user/token/tsr_abc"),
            "/-/user/token/<redacted>"
        );
        assert_eq!(
            super::redact_path("/-/npm/v1/tokens/token/tsr_x"),
            "/-/npm/v1/tokens/token/<redacted>"
        );
        assert_eq!(
            super::redact_path("/-/v1/done/abc"),
            "/-/v1/done/<redacted>"
        );
        assert_eq!(super::redact_path("/left-pad"), "/left-pad");
        assert_eq!(
            super::redact_path("/settings/tokens/tsr_abcdef/revoke"),
            "/settings/tokens/<redacted>/revoke"
        );
        assert_eq!(
            super::redact_path("/settings/tokens/TSR%5Fabcdef/revoke"),
            "/settings/tokens/<redacted>/revoke"
        );
    }
}

#[cfg(test)]
mod layering {
    /// Every file under `dir`, recursively.
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Handlers reach data only through the domain, whose every operation passes the
    /// access gate: no file of the HTTP boundary touches the store.
    #[test]
    fn no_handler_reads_the_store() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 10, "found the http sources");
        // Built at run time so this test does not find itself.
        let field = [".", "store"].concat();
        let call = format!("{field}.");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                assert!(
                    !line.contains(&call) && !line.trim_end().ends_with(&field),
                    "{}:{}: the HTTP layer reads the store directly: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
