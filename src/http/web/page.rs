//! What every page shares: the header data (`Layout`), rendering with the right
//! headers, the HTML error page, and small formatting helpers for templates.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::identicon;
use super::session::Viewer;
use crate::app::App;
use crate::domain;
use crate::http::error::ApiError;

/// The signed-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct HeaderUser {
    pub name: String,
    /// `data:` URI of the profile picture.
    pub avatar: String,
}

/// Header and page-wide data every template receives.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub user: Option<HeaderUser>,
    /// The CSRF token forms on this page carry.
    pub csrf: String,
    pub signup_open: bool,
    /// The search box's text.
    pub query: String,
    /// Which settings page is open (for the side navigation), if any.
    pub section: &'static str,
}

impl Layout {
    pub fn new(app: &App, viewer: &Viewer, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            user: viewer.caller().map(|c| HeaderUser {
                name: c.user.name.clone(),
                avatar: identicon::data_uri(&c.user.name),
            }),
            csrf: viewer.csrf(),
            signup_open: app.config.open_signup,
            query: String::new(),
            section: "",
        }
    }

    pub fn section(mut self, section: &'static str) -> Layout {
        self.section = section;
        self
    }
}

/// Renders a template as an HTML page that is never cached (pages show private data).
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

/// Renders with status 200.
pub fn ok<T: Template>(template: &T) -> Response {
    render(StatusCode::OK, template)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

/// An error shown as an HTML page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub layout: Option<Box<Layout>>,
    /// A redirect instead of an error page (e.g. to the sign-in page).
    pub location: Option<String>,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
            layout: None,
            location: None,
        }
    }

    pub fn redirect(location: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            layout: None,
            location: Some(location.into()),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> PageError {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found() -> PageError {
        Self::new(
            StatusCode::NOT_FOUND,
            "There is nothing here, or you may not see it.",
        )
    }

    pub fn with_layout(mut self, layout: Layout) -> PageError {
        self.layout = Some(Box::new(layout));
        self
    }
}

impl From<domain::Error> for PageError {
    fn from(e: domain::Error) -> Self {
        let api = ApiError::from(e);
        PageError::new(api.status, api.message)
    }
}

/// The status and user-facing message of a domain error (5xx causes are logged, not shown).
pub fn describe(e: domain::Error) -> (StatusCode, String) {
    let api = ApiError::from(e);
    (api.status, api.message)
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let Some(location) = &self.location {
            return axum::response::Redirect::to(location).into_response();
        }
        let layout = self.layout.map(|l| *l).unwrap_or_else(|| Layout {
            title: "Error".into(),
            user: None,
            csrf: String::new(),
            signup_open: false,
            query: String::new(),
            section: "",
        });
        render(
            self.status,
            &ErrorPage {
                layout: &layout,
                status: self.status.as_u16(),
                reason: self.status.canonical_reason().unwrap_or("Error"),
                message: &self.message,
            },
        )
    }
}

/// Result of page handlers.
pub type PageResult = Result<Response, PageError>;

/// `2024-05-01 14:03 UTC`.
pub fn fmt_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

/// `2024-05-01`.
pub fn fmt_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&f).unwrap_or_default()
}

/// A `next` parameter that may be followed: a local path only.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?.trim();
    let local =
        n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("://");
    (local && n.len() < 512 && !n.bytes().any(|b| b.is_ascii_control())).then(|| n.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_must_be_local() {
        assert_eq!(
            super::safe_next(Some("/login/cli/abc")).as_deref(),
            Some("/login/cli/abc")
        );
        assert_eq!(super::safe_next(Some("//evil.example")), None);
        assert_eq!(super::safe_next(Some("https://evil.example")), None);
        assert_eq!(super::safe_next(Some("/\\evil")), None);
        assert_eq!(super::safe_next(None), None);
    }

    #[test]
    fn times_format() {
        assert_eq!(super::fmt_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::fmt_date(86_400_000), "1970-01-02");
    }
}
