//! The user-readable security log. Recording never fails the request it describes.

use crate::app::App;
pub use crate::store::SecurityEventKind;

/// Appends an event; a storage error is logged, not returned.
pub async fn record(
    app: &App,
    user_id: i64,
    kind: SecurityEventKind,
    detail: &str,
    ip: Option<&str>,
) {
    if let Err(e) = app
        .store
        .add_security_event(user_id, kind, detail, ip, app.now())
        .await
    {
        tracing::warn!(user_id, kind = kind.as_str(), error = %e, "could not record security event");
    }
}

/// The caller's security log, newest first.
pub async fn list(
    app: &App,
    caller: &super::Caller,
    limit: i64,
) -> super::Result<Vec<crate::store::SecurityEventRow>> {
    let grant =
        super::access::authorize_account::<super::access::act::ReadSecurityLog>(app, caller)
            .await?;
    Ok(app
        .store
        .security_events(&grant, limit.clamp(1, 1000))
        .await?)
}
