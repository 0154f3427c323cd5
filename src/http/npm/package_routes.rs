//! Package URLs (`/<name>`, `/@scope%2fname`, `/@scope/name`, tarballs and the
//! CouchDB `-rev` forms). Parsed by hand so scoped names work encoded or not and
//! path tricks (`..%2f`) fail name validation.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::borrow::Cow;

use crate::domain::{self, packages, publish};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AppState, Auth};
use crate::npm::name::PackageName;
use crate::npm::publish_body::PutBody;

/// What a package URL addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum PackagePath {
    Document(PackageName),
    Revision(PackageName, String),
    Tarball(PackageName, String),
    TarballRevision(PackageName, String, String),
    Version(PackageName, String),
}

fn decode(segment: &str) -> Result<Cow<'_, str>, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("path is not valid UTF-8"))
}

fn name(text: &str) -> Result<PackageName, ApiError> {
    PackageName::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Parses the path of a package URL.
pub fn parse_path(path: &str) -> Result<PackagePath, ApiError> {
    // Borrowed segments unless percent-decoding changes them: the usual GET allocates
    // only the package name.
    let mut segments = path.trim_start_matches('/').split('/');
    let first = decode(segments.next().unwrap_or(""))?;
    let full = if first.starts_with('@') && !first.contains('/') {
        let second = segments
            .next()
            .ok_or_else(|| ApiError::bad_request("scoped name must look like @scope/name"))?;
        Cow::Owned(format!("{first}/{}", decode(second)?))
    } else {
        first
    };
    let pkg = name(&full)?;
    let rest: Vec<Cow<'_, str>> = segments.map(decode).collect::<Result<_, _>>()?;
    let rest: Vec<&str> = rest.iter().map(|s| s.as_ref()).collect();
    Ok(match rest.as_slice() {
        [] | [""] => PackagePath::Document(pkg),
        ["-rev", rev] => PackagePath::Revision(pkg, (*rev).to_owned()),
        ["-", file] => PackagePath::Tarball(pkg, (*file).to_owned()),
        ["-", file, "-rev", rev] => {
            PackagePath::TarballRevision(pkg, (*file).to_owned(), (*rev).to_owned())
        }
        // Scoped tarball links written by old clients: /@s/n/-/@s/n-1.0.0.tgz
        ["-", scope, file] if scope.starts_with('@') => {
            let bare = file.to_string();
            PackagePath::Tarball(pkg, bare)
        }
        [version] if !version.is_empty() && !version.starts_with('-') => {
            PackagePath::Version(pkg, (*version).to_owned())
        }
        _ => return Err(ApiError::not_found("no such endpoint")),
    })
}

/// Whether a read serves a write: `?write=true`, or a write command's own reads
/// (npm sends its command in `npm-command`; publish reads the document first).
fn for_write(uri: &Uri, headers: &HeaderMap) -> bool {
    const WRITES: [&str; 8] = [
        "publish",
        "unpublish",
        "deprecate",
        "undeprecate",
        "dist-tag",
        "owner",
        "access",
        "star",
    ];
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "write=true"))
        || headers
            .get("npm-command")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| WRITES.contains(&c))
}

fn wants_abbreviated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/vnd.npm.install-v1+json"))
}

/// Whether the client takes gzip (`accept-encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

fn etag_matches(headers: &HeaderMap, etags: &[&str]) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| etags.contains(&t.trim().trim_start_matches("W/")))
        })
}

/// GET of a packument, with ETag/304 and revalidation so a new version is never hidden.
/// Bodies, ETags and dates are prepared once per revision; the compression layer
/// passes the gzip body through because it already carries `content-encoding`.
async fn get_packument(
    app: &AppState,
    caller: Option<&domain::Caller>,
    pkg: &PackageName,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let served = crate::domain::proxy::packument(app, caller, pkg, for_write(uri, headers)).await?;
    let doc = &served.doc;
    let (rendition, content_type) = if wants_abbreviated(headers) {
        (&doc.abbreviated, "application/vnd.npm.install-v1+json")
    } else {
        (&doc.full, "application/json")
    };
    let gzip = accepts_gzip(headers);
    let mut builder = Response::builder()
        .header(
            header::ETAG,
            if gzip {
                rendition.etag_gzip.as_str()
            } else {
                rendition.etag.as_str()
            },
        )
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header(header::VARY, "accept, accept-encoding, authorization")
        .header(header::LAST_MODIFIED, doc.modified_http.as_str());
    if let Some(uplink) = &served.uplink {
        builder = builder.header("x-tessera-source", format!("uplink {uplink}"));
    }
    if served.stale_from.is_some() {
        builder = builder.header(header::WARNING, "110 - \"Response is Stale\"");
    }
    if etag_matches(headers, &[&rendition.etag, &rendition.etag_gzip]) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    let body = if gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        rendition.gzip.clone()
    } else {
        rendition.body.clone()
    };
    Ok(builder.body(Body::from(body)).expect("valid response"))
}

/// `GET` on any package URL.
pub async fn get_package_path(
    State(app): State<AppState>,
    Auth(caller): Auth,
    request: Request,
) -> ApiResult<Response> {
    match parse_path(request.uri().path())? {
        PackagePath::Document(pkg) | PackagePath::Revision(pkg, _) => {
            get_packument(
                &app,
                caller.as_ref(),
                &pkg,
                request.uri(),
                request.headers(),
            )
            .await
        }
        PackagePath::Tarball(pkg, file) => {
            let (size, stream) =
                crate::domain::proxy::tarball(&app, caller.as_ref(), &pkg, &file).await?;
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size)
                .header(
                    header::CACHE_CONTROL,
                    "private, max-age=31536000, immutable",
                )
                .body(Body::from_stream(stream))
                .expect("valid response"))
        }
        PackagePath::Version(pkg, spec) => {
            let local_only = for_write(request.uri(), request.headers());
            let doc = crate::domain::proxy::packument(&app, caller.as_ref(), &pkg, local_only)
                .await?
                .doc;
            let full: Value = serde_json::from_slice(&doc.full.body)
                .map_err(|e| domain::Error::Internal(e.into()))?;
            let version = full["dist-tags"][&spec]
                .as_str()
                .unwrap_or(&spec)
                .to_owned();
            let manifest = full["versions"]
                .get(&version)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("version not found: {spec}")))?;
            Ok((
                StatusCode::OK,
                [(header::CACHE_CONTROL, "private, no-cache")],
                axum::Json(manifest),
            )
                .into_response())
        }
        PackagePath::TarballRevision(..) => Err(ApiError::not_found("no such endpoint")),
    }
}

fn ok_body(extra: Value) -> Response {
    let mut body = json!({"ok": true});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Bodies read when the caller may not publish (or owes a one-time password): enough
/// for a star/unstar, the only body such a caller can still send successfully.
const SMALL_BODY: usize = 64 * 1024;

fn unauthenticated() -> ApiError {
    ApiError::from(domain::Error::Unauthenticated(
        "You must be logged in to publish packages.".into(),
    ))
}

pub(super) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger than this registry accepts",
    )
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Why a body was not read whole.
pub(super) enum BodyError {
    TooLarge,
    Read(String),
}

/// Reads a body of at most `limit` bytes (an announced length is reserved once).
pub(super) async fn read_limited(
    body: Body,
    limit: usize,
    announced: Option<u64>,
) -> Result<Vec<u8>, BodyError> {
    use futures_util::StreamExt;
    let reserve = announced.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit));
    let mut buf = Vec::with_capacity(reserve);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if chunk.len() > limit - buf.len() {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Answers without reading the body, then reads and discards up to `max` bytes of
/// it in the background. Closing a connection with request bytes still arriving
/// makes the client's TCP stack reset it, and a client still writing its body (npm
/// does not wait for `100 Continue`) may then lose the answer and report
/// `ECONNRESET` instead of the 401 (OTP), 403 or 413. Nothing read is kept. A client
/// that sent `Expect: 100-continue` is never asked for its body.
pub(super) fn answer_early(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    answer: ApiError,
) -> ApiError {
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !expects_continue {
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = body.into_data_stream();
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                seen = seen.saturating_add(chunk.len());
                if seen > max {
                    break;
                }
            }
        });
    }
    answer
}

/// `PUT` on a package URL: publish, full-document update, star, unpublish-version or
/// owners. Nothing is read before the caller is known; see `put_document`.
pub async fn put_package_path(
    State(app): State<AppState>,
    Auth(caller): Auth,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let max = app.config.max_body_bytes;
    let Some(caller) = caller else {
        return Err(answer_early(&parts.headers, body, max, unauthenticated()));
    };
    match parse_path(parts.uri.path())? {
        PackagePath::Document(pkg) => put_document(&app, &caller, &pkg, &parts.headers, body).await,
        PackagePath::Revision(pkg, rev) => {
            let announced = content_length(&parts.headers);
            if announced.is_some_and(|n| n > max as u64) {
                return Err(answer_early(&parts.headers, body, max, too_large()));
            }
            let bytes = match read_limited(body, max, announced).await {
                Ok(bytes) => bytes,
                Err(BodyError::TooLarge) => return Err(too_large()),
                Err(BodyError::Read(e)) => {
                    return Err(ApiError::bad_request(format!(
                        "could not read request body: {e}"
                    )));
                }
            };
            let body: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
            packages::update_revision(&app, &caller, &pkg, &rev, &body).await?;
            Ok(ok_body(json!({"id": pkg.as_str()})))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "PUT is not supported here",
        )),
    }
}

/// `PUT /<name>`: a publish, a deprecate (full document) or a star. Before the body
/// is read, the caller's right to publish this name is decided
/// (`publish::preflight`). A caller who may not publish gets at most `SMALL_BODY`
/// read (a star still works; anything announced or growing past it gets the publish
/// refusal at once). A caller who may publish waits for one of the
/// `max_concurrent_publishes` slots, then gets at most `max_body_bytes` read (an
/// announced larger body is answered 413 at once). Parsing, decoding, hashing and
/// unpacking run off the async runtime.
async fn put_document(
    app: &AppState,
    caller: &domain::Caller,
    pkg: &PackageName,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let refusal = publish::preflight(app, caller, pkg).await?;
    let announced = content_length(headers);
    let max = app.config.max_body_bytes;
    let limit = if refusal.is_some() { SMALL_BODY } else { max };
    let over_limit =
        |refusal: Option<domain::Error>| refusal.map_or_else(too_large, ApiError::from);
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(answer_early(headers, body, max, over_limit(refusal)));
    }
    let _slot = match refusal {
        None => Some(
            app.publish_slots
                .acquire()
                .await
                .map_err(|e| domain::Error::Internal(e.into()))?,
        ),
        Some(_) => None,
    };
    let bytes = match read_limited(body, limit, announced).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => return Err(over_limit(refusal)),
        Err(BodyError::Read(e)) => {
            return Err(ApiError::bad_request(format!(
                "could not read request body: {e}"
            )));
        }
    };
    match publish::parse_body(bytes, caller).await? {
        (buf, PutBody::Publish(body)) => {
            let published = publish::publish(app, caller, pkg, buf, body).await?;
            Ok(ok_body(
                json!({"id": published.name, "version": published.version}),
            ))
        }
        (_, PutBody::Document(body)) => {
            packages::update_document(app, caller, pkg, &body).await?;
            Ok(ok_body(json!({"id": pkg.as_str()})))
        }
        (_, PutBody::Unrecognised) => {
            Err(ApiError::bad_request("publish body has no _attachments"))
        }
    }
}

/// `DELETE` on a package URL: whole-package unpublish or a tarball after unpublish.
pub async fn delete_package_path(
    State(app): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let caller = caller.ok_or_else(|| {
        ApiError::from(domain::Error::Unauthenticated(
            "You must be logged in.".into(),
        ))
    })?;
    match parse_path(uri.path())? {
        PackagePath::Revision(pkg, rev) => {
            packages::delete_package(&app, &caller, &pkg, Some(&rev)).await?;
            Ok(ok_body(json!({})))
        }
        PackagePath::Document(pkg) => {
            packages::delete_package(&app, &caller, &pkg, None).await?;
            Ok(ok_body(json!({})))
        }
        PackagePath::TarballRevision(pkg, file, _) | PackagePath::Tarball(pkg, file) => {
            packages::delete_tarball(&app, &caller, &pkg, &file).await?;
            Ok(ok_body(json!({})))
        }
        PackagePath::Version(..) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE is not supported here",
        )),
    }
}

/// Any other method on a package URL.
pub async fn other_method(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported here"),
    )
}

/// `GET /-/npm/v1/attestations/<name>@<version>`: the version's provenance
/// attestations, `{"attestations": [{"predicateType", "bundle"}]}`; 404 when it has
/// none or the caller may not read the package.
pub async fn attestations(
    State(app): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let spec = uri
        .path()
        .strip_prefix("/-/npm/v1/attestations/")
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let spec = percent_encoding::percent_decode_str(spec).decode_utf8_lossy();
    // The version follows the last `@` (a scope's `@` comes first).
    let (name, version) = spec
        .rsplit_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("expected <name>@<version>"))?;
    let name = PackageName::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let found = packages::attestations(&app, caller.as_ref(), &name, version).await?;
    let mut list = Vec::with_capacity(found.len());
    for a in found {
        let bundle: Value =
            serde_json::from_str(&a.bundle).map_err(|e| domain::Error::Internal(e.into()))?;
        list.push(json!({"predicateType": a.predicate_type, "bundle": bundle}));
    }
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "private, no-cache")],
        axum::Json(json!({ "attestations": list })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_package_paths() {
        let n = |s| PackageName::parse(s).unwrap();
        assert_eq!(
            parse_path("/left-pad").unwrap(),
            PackagePath::Document(n("left-pad"))
        );
        assert_eq!(
            parse_path("/@acme%2fwidget").unwrap(),
            PackagePath::Document(n("@acme/widget"))
        );
        assert_eq!(
            parse_path("/@acme%2Fwidget").unwrap(),
            PackagePath::Document(n("@acme/widget"))
        );
        assert_eq!(
            parse_path("/@acme/widget").unwrap(),
            PackagePath::Document(n("@acme/widget"))
        );
        assert_eq!(
            parse_path("/@acme/widget/-/widget-1.0.0.tgz").unwrap(),
            PackagePath::Tarball(n("@acme/widget"), "widget-1.0.0.tgz".into())
        );
        assert_eq!(
            parse_path("/x/-/x-1.0.0.tgz/-rev/3-abc").unwrap(),
            PackagePath::TarballRevision(n("x"), "x-1.0.0.tgz".into(), "3-abc".into())
        );
        assert_eq!(
            parse_path("/x/-rev/1-a").unwrap(),
            PackagePath::Revision(n("x"), "1-a".into())
        );
        assert!(parse_path("/..%2fetc%2fpasswd").is_err());
        assert!(parse_path("/%2e%2e").is_err());
        assert!(parse_path("/@acme%2f..%2f..%2fx").is_err());
    }

    #[test]
    fn gzip_is_chosen_from_accept_encoding() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
