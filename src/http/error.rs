//! `ApiError`: the only place that turns a domain error into a status, headers and
//! the JSON body npm prints (`{"error": "…"}`). Internal causes are logged, never
//! sent: a 5xx answers with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::Error;

/// What a client is told when the registry's disk is full (507).
pub const STORAGE_FULL: &str = "the registry's storage is full and could not save this \
     change; ask the registry's operator to free space, then try again";

/// An error response for the npm and JSON APIs.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub www_authenticate: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// Sent as `npm-notice` (npm prints it as `npm notice …`), for refusals whose
    /// reason npm would otherwise replace with a generic message of its own.
    pub notice: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            www_authenticate: None,
            retry_after: None,
            notice: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, www, retry) = match &e {
            Error::NotFound(_) => (StatusCode::NOT_FOUND, None, None),
            Error::Unauthenticated(_) | Error::TokenRefused(_) => {
                (StatusCode::UNAUTHORIZED, Some("Bearer"), None)
            }
            Error::BadPassword(_) => (StatusCode::UNAUTHORIZED, Some("Basic"), None),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, None, None),
            Error::OtpRequired(_) => (StatusCode::UNAUTHORIZED, Some("OTP"), None),
            Error::TooManyAttempts {
                retry_after_secs, ..
            } => (StatusCode::TOO_MANY_REQUESTS, None, Some(*retry_after_secs)),
            Error::IpNotAllowed(_) => (StatusCode::UNAUTHORIZED, Some("ipaddress"), None),
            Error::Invalid(_) => (StatusCode::BAD_REQUEST, None, None),
            Error::Conflict(_) => (StatusCode::CONFLICT, None, None),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None, None),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None, None),
            Error::Upstream(_) => (StatusCode::BAD_GATEWAY, None, None),
            Error::StorageFull(_) => (StatusCode::INSUFFICIENT_STORAGE, None, None),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None, None),
        };
        let message = match &e {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error".to_owned()
            }
            Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable");
                "service temporarily unavailable; try again shortly".to_owned()
            }
            Error::StorageFull(cause) => {
                tracing::error!(error = %cause, "storage full: a write was refused");
                STORAGE_FULL.to_owned()
            }
            other => other.to_string(),
        };
        // npm shows 401s as "your authentication token seems to be invalid" or "Login
        // is not allowed from your IP address", whatever the body says.
        let notice = match &e {
            Error::TokenRefused(_) => Some(message.clone()),
            Error::IpNotAllowed(ip) => Some(format!(
                "This token may not be used from {ip}: it is limited to other addresses."
            )),
            _ => None,
        };
        ApiError {
            status,
            message,
            www_authenticate: www,
            retry_after: retry,
            notice,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(w) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(w));
        }
        if let Some(r) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(r));
        }
        if let Some(value) = self.notice.as_deref().and_then(notice_value) {
            headers.insert("npm-notice", value);
        }
        response
    }
}

/// A header value for an `npm-notice`: npm reads header bytes as Latin-1, so only
/// printable ASCII goes out (anything else becomes `?`).
pub fn notice_value(text: &str) -> Option<HeaderValue> {
    let ascii: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&ascii).ok()
}

/// Result type of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
