//! Leak response: a token found exposed is revoked at once, whoever finds it.
//! Holding a token is all it takes to use it, so holding it is enough to kill it:
//! the leak endpoint takes token strings from anyone (throttled per address), and a
//! publish whose tarball carries a live token revokes that token too. The checksum
//! turns away strings that are not tokens before any lookup; for the rest, one
//! `UPDATE … WHERE hash = …` runs whether or not the token is live, and the owner's
//! security-log entry is written off the request, so neither the answer nor its
//! timing says which tokens were live.

use std::sync::Arc;

use super::{Result, access, credentials, security_log};
use crate::app::App;
use crate::cidr::ClientAddr;
use crate::crypto::token_format::PlainToken;
use crate::npm::tarball::FoundToken;
use crate::store::SecurityEventKind;

/// Longest location kept from a report.
const MAX_URL_CHARS: usize = 500;

/// What a report contained, by shape only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOutcome {
    pub well_formed: usize,
    pub not_tokens: usize,
}

/// A reported location as stored and shown: printable characters only, bounded.
fn clean_location(url: Option<&str>) -> Option<String> {
    let text: String = url?
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_URL_CHARS)
        .collect();
    (!text.is_empty()).then_some(text)
}

/// `POST /-/npm/v1/tokens/leaked`: revokes every live token among `strings`.
pub async fn report(
    app: &Arc<App>,
    strings: &[String],
    url: Option<&str>,
    ip: ClientAddr,
) -> Result<ReportOutcome> {
    credentials::count_leak_report(app, ip).await?;
    let location = clean_location(url);
    let reason = match &location {
        Some(at) => format!("found exposed at {at}"),
        None => "reported exposed".to_owned(),
    };
    let mut outcome = ReportOutcome {
        well_formed: 0,
        not_tokens: 0,
    };
    let mut seen = std::collections::HashSet::new();
    for text in strings {
        let Ok(token) = PlainToken::parse(text.trim()) else {
            outcome.not_tokens += 1;
            continue;
        };
        outcome.well_formed += 1;
        if !seen.insert(token.expose().to_owned()) {
            continue;
        }
        if let Some((owner, prefix)) = revoke_exposed(app, &token, &reason).await? {
            // Written off the request: the answer takes the same time either way.
            let app = app.clone();
            let detail = format!("token {prefix} revoked: {reason}");
            let ip = ip.to_string();
            tokio::spawn(async move {
                security_log::record(
                    &app,
                    owner,
                    SecurityEventKind::TokenExposed,
                    &detail,
                    Some(&ip),
                )
                .await;
            });
        }
    }
    Ok(outcome)
}

/// Revokes `token` if it is live; returns its owner and visible prefix when this
/// call revoked it (the caller tells the owner).
pub async fn revoke_exposed(
    app: &App,
    token: &PlainToken,
    reason: &str,
) -> Result<Option<(i64, String)>> {
    let grant = access::exposed_token_grant(token, &app.keys.token_hash);
    Ok(app
        .store
        .revoke_exposed_token(&grant, reason, app.now())
        .await?)
}

/// Tokens found in a publish's tarball: each live one is revoked (it now sits on
/// the publisher's disk and in their CI logs) and its owner told. Returns the files
/// that held a live token; the publish is then refused.
pub async fn revoke_found_in_tarball(
    app: &App,
    found: &[FoundToken],
    package: &str,
    version: &str,
    ip: &str,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for f in found {
        let reason = format!(
            "found in {} of a tarball published as {package}@{version} (the publish was refused)",
            f.path
        );
        if let Some((owner, prefix)) = revoke_exposed(app, &f.token, &reason).await? {
            security_log::record(
                app,
                owner,
                SecurityEventKind::TokenExposed,
                &format!("token {prefix} revoked: {reason}"),
                Some(ip),
            )
            .await;
            if !files.contains(&f.path) {
                files.push(f.path.clone());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_are_printable_and_bounded() {
        assert_eq!(super::clean_location(Some("  ")), None);
        assert_eq!(
            super::clean_location(Some("https://x.test/a\r\nb")).unwrap(),
            "https://x.test/ab"
        );
        assert_eq!(
            super::clean_location(Some(&"a".repeat(900))).unwrap().len(),
            500
        );
    }
}
