//! The website's session: the `tessera_session` cookie (random id; the database
//! keeps its keyed hash), the viewer extractor, and `Posted`, the extractor every
//! form post goes through: it refuses a foreign `Origin` and a missing or wrong CSRF
//! token with 403 before the handler runs.

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::time::Duration;
use cookie::{Cookie, CookieBuilder, SameSite};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::page::PageError;
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::domain::sessions::{self, Session};
use crate::domain::{self, Caller};
use crate::http::extract::{AppState, client_ip};

/// Cookie holding the session id.
pub const SESSION_COOKIE: &str = "tessera_session";
/// Double-submit CSRF cookie for forms shown before signing in (sign-in, sign-up).
pub const PRE_COOKIE: &str = "tessera_csrf";

/// The value of the cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Every cookie Tessera sets: the whole site, never readable by scripts, not sent
/// on cross-site posts, and `Secure` when the public address is https.
fn set_cookie(app: &App, cookie: CookieBuilder<'static>) -> HeaderValue {
    set_cookie_for(app.public_url.starts_with("https://"), cookie)
}

fn set_cookie_for(https: bool, cookie: CookieBuilder<'static>) -> HeaderValue {
    let cookie = cookie
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are ASCII")
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(app: &App, id: &str) -> HeaderValue {
    let max_age = Duration::milliseconds(sessions::ABSOLUTE_MS);
    set_cookie(
        app,
        Cookie::build((SESSION_COOKIE, id.to_owned())).max_age(max_age),
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(app: &App) -> HeaderValue {
    set_cookie(app, Cookie::build(SESSION_COOKIE).removal())
}

/// `Set-Cookie` for the pre-session CSRF cookie (lives as long as the browser).
pub fn pre_cookie(app: &App, value: &str) -> HeaderValue {
    set_cookie(app, Cookie::build((PRE_COOKIE, value.to_owned())))
}

/// Who is looking at the page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session, possibly still waiting for its one-time password.
    pub session: Option<Session>,
    pub ip: ClientAddr,
    /// The pre-session CSRF cookie as sent.
    pub pre_csrf: Option<String>,
    /// A pre-session CSRF value to set on the response (none was sent).
    pub new_pre_csrf: Option<String>,
}

impl Viewer {
    /// The fully signed-in session.
    pub fn signed_in(&self) -> Option<&Session> {
        self.session.as_ref().filter(|s| !s.pending_otp)
    }

    /// The signed-in caller (a `Credential::Session` principal).
    pub fn caller(&self) -> Option<&Caller> {
        self.signed_in().map(|s| &s.caller)
    }

    /// The CSRF token forms on the page must carry.
    pub fn csrf(&self) -> String {
        match &self.session {
            Some(s) => s.csrf.clone(),
            None => self
                .pre_csrf
                .clone()
                .or_else(|| self.new_pre_csrf.clone())
                .unwrap_or_default(),
        }
    }

    /// The token a posted form is checked against (never a freshly minted one).
    fn expected_csrf(&self) -> Option<&str> {
        match &self.session {
            Some(s) => Some(&s.csrf),
            None => self.pre_csrf.as_deref(),
        }
    }

    /// The signed-in caller, or a redirect to the sign-in page that comes back to `here`.
    pub fn require(&self, here: &str) -> Result<&Caller, PageError> {
        self.caller().ok_or_else(|| sign_in_redirect(here))
    }

    /// The signed-in caller and their session, or the sign-in redirect.
    pub fn require_session(&self, here: &str) -> Result<(&Caller, &Session), PageError> {
        self.signed_in()
            .map(|s| (&s.caller, s))
            .ok_or_else(|| sign_in_redirect(here))
    }
}

/// A 303 to the sign-in page, returning to `here` afterwards.
pub fn sign_in_redirect(here: &str) -> PageError {
    let next: String =
        percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC).collect();
    PageError::redirect(format!("/login?next={next}"))
}

/// A pre-session CSRF value minted for this request (the response sets its cookie).
#[derive(Debug, Clone)]
pub struct NewPreCsrf(pub String);

/// Whether the request carries a pre-session CSRF cookie.
pub fn has_pre_cookie(headers: &HeaderMap) -> bool {
    cookie(headers, PRE_COOKIE).is_some_and(|v| is_pre_token(&v))
}

fn is_session_id(v: &str) -> bool {
    v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_pre_token(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let ip = client_ip(app, parts);
        let session = match cookie(&parts.headers, SESSION_COOKIE).filter(|v| is_session_id(v)) {
            Some(id) => sessions::load(app, &id, ip)
                .await
                .map_err(PageError::from)?,
            None => None,
        };
        let pre_csrf = cookie(&parts.headers, PRE_COOKIE).filter(|v| is_pre_token(v));
        let new_pre_csrf = parts.extensions.get::<NewPreCsrf>().map(|n| n.0.clone());
        let viewer = Viewer {
            session,
            ip,
            pre_csrf,
            new_pre_csrf,
        };
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

/// The origin (`scheme://host[:port]`) of the public URL.
pub fn public_origin(app: &App) -> &str {
    let url = app.public_url.as_str();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Refuses a request whose `Origin` is present and not the registry's own.
pub fn check_origin(app: &App, headers: &HeaderMap) -> Result<(), PageError> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(v)
            if v.to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(public_origin(app))) =>
        {
            Ok(())
        }
        Some(_) => Err(PageError::forbidden(
            "This form was sent from another site and was refused.",
        )),
    }
}

/// A form that carries a CSRF token.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// Implements `CsrfForm` for structs with a `csrf: String` field.
macro_rules! csrf_form {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::http::web::session::CsrfForm for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use csrf_form;

/// A posted form from this site: `Origin` checked, CSRF token checked.
#[derive(Debug)]
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T> FromRequest<AppState> for Posted<T>
where
    T: DeserializeOwned + CsrfForm + Send,
{
    type Rejection = PageError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        check_origin(app, &parts.headers)?;
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|e| {
                PageError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("Malformed form: {e}"),
                )
            })?;
        let valid = viewer.expected_csrf().is_some_and(|expected| {
            !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(form.csrf().as_bytes()))
        });
        if !valid {
            return Err(PageError::forbidden(
                "The form's security token is missing or out of date. Reload the page and try again.",
            ));
        }
        Ok(Posted { viewer, form })
    }
}

/// The caller with the form's one-time password attached (for actions the access
/// check may ask an OTP for).
pub fn with_otp(caller: &Caller, otp: &str) -> Caller {
    let mut c = caller.clone();
    let otp = otp.trim();
    c.otp = (!otp.is_empty()).then(|| otp.to_owned());
    c
}

/// Whether the account has two-factor authentication on (confirmed).
pub fn tfa_on(caller: &Caller) -> bool {
    caller.principal.tfa != domain::access::TfaMode::Off
}

/// Whether writes need a one-time password (mode auth-and-writes).
pub fn writes_need_otp(caller: &Caller) -> bool {
    caller.principal.tfa == domain::access::TfaMode::AuthAndWrites
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    #[test]
    fn reads_cookies() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; tessera_session=xyz; b=2".parse().unwrap());
        assert_eq!(super::cookie(&h, "tessera_session").as_deref(), Some("xyz"));
        assert_eq!(super::cookie(&h, "c"), None);
    }

    #[test]
    fn sets_cookies_with_their_attributes() {
        use super::{Cookie, set_cookie_for};
        let session = set_cookie_for(
            true,
            Cookie::build(("tessera_session", "abc")).max_age(cookie::time::Duration::days(7)),
        );
        let text = session.to_str().unwrap();
        for part in [
            "tessera_session=abc",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=604800",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let removal = set_cookie_for(false, Cookie::build("tessera_session").removal());
        let text = removal.to_str().unwrap();
        assert!(
            text.starts_with("tessera_session=;") && text.contains("Max-Age=0"),
            "{text}"
        );
        assert!(!text.contains("Secure"), "plain http: {text}");
    }
}
