//! "Who can publish this?" as the website shows it: `domain::publishers` entries
//! turned into rows for `templates/credentials_table.html`, shared by the package
//! settings page and the organization page.

use super::page::fmt_date;
use super::token_pages::limits_text;
use crate::domain::packages::MfaPolicy;
use crate::domain::publishers::{Publisher, Writer};

/// One credential that could publish a package now.
pub struct PublisherRow {
    pub package: String,
    pub user: String,
    /// How the account reaches the package, each read as `user → path`.
    pub paths: Vec<String>,
    /// The token's id, for the link to revoke it (the viewer's own tokens only).
    pub key: String,
    pub name: String,
    pub masked: String,
    pub kind: &'static str,
    pub limits: String,
    pub cidr: String,
    pub expires: String,
    pub last_used: String,
    /// A publish with it asks for the owner's one-time password.
    pub needs_otp: bool,
    pub risks: Vec<&'static str>,
    /// The viewer owns it (and may revoke it).
    pub mine: bool,
}

/// Rows in the order the domain gives them (riskiest first), `me` marking the
/// viewer's own tokens.
pub fn rows(publishers: &[Publisher], me: &str) -> Vec<PublisherRow> {
    publishers
        .iter()
        .map(|p| match p {
            Publisher::Token(t) => PublisherRow {
                package: t.package.clone(),
                user: t.user.clone(),
                paths: t.paths.clone(),
                key: t.key.clone(),
                name: t.name.clone().unwrap_or_default(),
                masked: t.masked.clone(),
                kind: t.kind.as_str(),
                limits: t.limits.as_ref().map(limits_text).unwrap_or_default(),
                cidr: t.cidr.join(", "),
                expires: t.expires_at.map(fmt_date).unwrap_or_default(),
                last_used: t.last_used_at.map(fmt_date).unwrap_or_default(),
                needs_otp: t.needs_otp,
                risks: t.risks.iter().map(|r| r.as_str()).collect(),
                mine: t.user == me,
            },
        })
        .collect()
}

/// An account that can write the package, with every path that gives it.
pub struct WriterRow {
    pub user: String,
    pub paths: Vec<String>,
}

pub fn writer_rows(writers: &[Writer]) -> Vec<WriterRow> {
    writers
        .iter()
        .map(|w| WriterRow {
            user: w.user.clone(),
            paths: w.paths.clone(),
        })
        .collect()
}

/// What a package's publishing 2FA policy means for a publish, in our words.
pub fn policy_text(policy: MfaPolicy) -> &'static str {
    match policy {
        MfaPolicy::None => {
            "The package asks for no second factor: each account's own 2FA mode decides \
             (auth-and-writes asks for a one-time password; automation tokens never do)."
        }
        MfaPolicy::Publish => {
            "Every publish needs the publisher's one-time password: automation tokens are \
             refused, and accounts without 2FA cannot publish."
        }
        MfaPolicy::Automation => {
            "Every publish needs the publisher's one-time password, except with an automation \
             token; accounts without 2FA publish only with automation tokens."
        }
    }
}

/// The policy in a few words, for lists.
pub fn policy_short(policy: MfaPolicy) -> &'static str {
    match policy {
        MfaPolicy::None => "publishing 2FA: not required",
        MfaPolicy::Publish => "publishing 2FA: required; automation tokens refused",
        MfaPolicy::Automation => "publishing 2FA: required, or an automation token",
    }
}
