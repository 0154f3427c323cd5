//! The website: server-rendered pages and form posts (filled in by the web module).

use axum::Router;

use super::extract::AppState;

/// Website routes.
pub fn router(_app: AppState) -> Router<AppState> {
    Router::new()
}
