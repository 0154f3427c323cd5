//! The user-readable security log. Recording never fails the request it describes.

use crate::app::App;

/// Appends an event; a storage error is logged, not returned.
pub async fn record(app: &App, user_id: i64, kind: &str, detail: &str, ip: Option<&str>) {
    if let Err(e) = app
        .store
        .add_security_event(user_id, kind, detail, ip, app.now())
        .await
    {
        tracing::warn!(user_id, kind, error = %e, "could not record security event");
    }
}
