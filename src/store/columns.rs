//! Typed columns. An enum is stored by name; `Stored` keeps a name this build does not
//! know as text, so a row that cannot be read fails closed where it is used (a token
//! of an unknown type authenticates nothing) instead of failing the whole query.

use std::str::FromStr;

/// An enum column: a known value, or the unreadable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    Known(T),
    Unreadable(String),
}

impl<T> Stored<T> {
    /// The value, when it could be read.
    pub fn known(&self) -> Option<&T> {
        match self {
            Stored::Known(v) => Some(v),
            Stored::Unreadable(_) => None,
        }
    }
}

impl<T: FromStr> From<String> for Stored<T> {
    fn from(text: String) -> Self {
        match text.parse() {
            Ok(v) => Stored::Known(v),
            Err(_) => Stored::Unreadable(text),
        }
    }
}

impl<T: Copy> Stored<T> {
    pub fn get(&self) -> Option<T> {
        self.known().copied()
    }

    /// The text to store for this value: its name, or the unreadable text as read
    /// (a row written back keeps what it had).
    pub fn text(&self, name: fn(T) -> &'static str) -> &str {
        match self {
            Stored::Known(v) => name(*v),
            Stored::Unreadable(text) => text,
        }
    }
}

/// The package 2FA policy is two flag columns; a row type flattens it from them.
impl<'r, R> sqlx::FromRow<'r, R> for crate::domain::access::MfaPolicy
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self::from_flags(
            row.try_get("publish_requires_tfa")?,
            row.try_get("automation_overrides_tfa")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    //! Every stored enum reads back what it writes, and a value no build writes fails
    //! closed where it is used.
    use super::Stored;
    use crate::domain::access::{ActorType, MfaPolicy, TfaMode, TokenKind, TokenOrigin};
    use crate::store::{OrgEventKind, SecurityEventKind, TokenRow, UserRow};

    fn round_trips<T>(all: &[T], name: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr,
    {
        let mut names = std::collections::HashSet::new();
        for &v in all {
            assert!(names.insert(name(v)), "{} is used twice", name(v));
            assert_eq!(Stored::<T>::from(name(v).to_owned()), Stored::Known(v));
        }
        for text in ["", "bogus", "TOKEN-CREATED", " login"] {
            assert_eq!(
                Stored::<T>::from(text.to_owned()),
                Stored::Unreadable(text.to_owned())
            );
        }
    }

    #[test]
    fn every_kind_reads_back_its_stored_name() {
        round_trips(&SecurityEventKind::ALL, SecurityEventKind::as_str);
        round_trips(&OrgEventKind::ALL, OrgEventKind::as_str);
        round_trips(&TokenOrigin::ALL, TokenOrigin::as_str);
        round_trips(&TokenKind::ALL, TokenKind::as_str);
        round_trips(&ActorType::ALL, ActorType::as_str);
        round_trips(&MfaPolicy::ALL, MfaPolicy::as_str);
        for p in MfaPolicy::ALL {
            let (requires, overrides) = p.flags();
            assert_eq!(MfaPolicy::from_flags(requires, overrides), p);
        }
    }

    #[test]
    fn stored_names_never_change() {
        // Existing databases hold these exact strings.
        let kinds: Vec<&str> = SecurityEventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "token-created",
                "token-revoked",
                "token-rotated",
                "token-exposed",
                "token-new-address",
                "login",
                "logout",
                "web-sign-in",
                "password-failures",
                "otp-failures",
                "leak-reports",
                "email-changed",
                "password-changed",
                "recovery-code-used",
                "2fa-enabled",
                "2fa-disabled",
                "2fa-mode-changed",
                "trust-created",
                "trust-revoked",
                "trust-policy",
                "trusted-publishing",
                "trusted-publish",
                "stage-approved",
                "stage-rejected",
            ]
        );
        let origins: Vec<&str> = TokenOrigin::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(origins, ["web", "api", "login", "oidc"]);
        let org: Vec<&str> = OrgEventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            org,
            [
                "org-created",
                "member-set",
                "member-removed",
                "team-created",
                "team-destroyed",
                "team-member-added",
                "team-member-removed",
                "grant-set",
                "grant-revoked",
            ]
        );
    }

    fn user(mode: Option<&str>, pending: bool) -> UserRow {
        UserRow {
            id: 1,
            name: "u".into(),
            email: "u@example.com".into(),
            password_hash: String::new(),
            fullname: None,
            homepage: None,
            twitter: None,
            github: None,
            freenode: None,
            tfa_mode: mode.map(str::to_owned).into(),
            tfa_pending: i64::from(pending),
            tfa_secret: None,
            tfa_last_step: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn an_unreadable_tfa_mode_is_the_strictest() {
        assert_eq!(user(None, false).tfa_mode(), TfaMode::Off);
        assert_eq!(user(Some("auth-only"), false).tfa_mode(), TfaMode::AuthOnly);
        assert_eq!(
            user(Some("auth-and-writes"), false).tfa_mode(),
            TfaMode::AuthAndWrites
        );
        // `off` is never written (off is NULL), so it is not taken at its word.
        for text in ["off", "none", "", "AUTH-ONLY", "auth_only"] {
            let u = user(Some(text), false);
            assert_eq!(u.tfa_mode, Stored::Unreadable(text.to_owned()));
            assert_eq!(u.tfa_mode(), TfaMode::AuthAndWrites, "{text:?}");
        }
        // A pending enrolment is off until confirmed, whatever it names.
        assert_eq!(user(Some("auth-only"), true).tfa_mode(), TfaMode::Off);
    }

    #[test]
    fn unknown_policy_flags_read_as_the_stricter_policy() {
        assert_eq!(MfaPolicy::from_flags(0, 0), MfaPolicy::None);
        assert_eq!(MfaPolicy::from_flags(0, 1), MfaPolicy::None);
        assert_eq!(MfaPolicy::from_flags(1, 0), MfaPolicy::Publish);
        assert_eq!(MfaPolicy::from_flags(1, 1), MfaPolicy::Automation);
        // Any non-zero requirement requires; only 1 lets automation tokens past it.
        assert_eq!(MfaPolicy::from_flags(2, 0), MfaPolicy::Publish);
        assert_eq!(MfaPolicy::from_flags(-1, 0), MfaPolicy::Publish);
        assert_eq!(MfaPolicy::from_flags(1, 2), MfaPolicy::Publish);
        assert_eq!(MfaPolicy::from_flags(1, -1), MfaPolicy::Publish);
    }

    fn token(kind: &str, origin: &str, oidc: Option<&str>) -> TokenRow {
        TokenRow {
            id: 1,
            key: "k".into(),
            user_id: 1,
            display_prefix: "tsr_abcd".into(),
            last_four: "wxyz".into(),
            name: None,
            description: None,
            kind: kind.to_owned().into(),
            limits: None,
            cidr: None,
            origin: origin.to_owned().into(),
            created_at: 0,
            updated_at: 0,
            expires_at: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
            rotated_from: None,
            replaced_by: None,
            revoked_reason: None,
            trust_config_id: None,
            oidc: oidc.map(str::to_owned),
        }
    }

    #[test]
    fn a_token_of_an_unknown_origin_or_kind_is_refused() {
        use crate::domain::auth::TokenSettings;
        for origin in ["web", "api", "login"] {
            let s = TokenSettings::of(&token("publish", origin, None)).unwrap();
            assert_eq!(s.origin.as_str(), origin);
            assert_eq!(s.kind, TokenKind::Publish);
            assert!(s.oidc.is_none());
        }
        // An origin this build does not know may carry rules it does not know.
        for origin in ["scale-gen", "", "OIDC", "oidc "] {
            assert!(TokenSettings::of(&token("publish", origin, None)).is_err());
        }
        assert!(TokenSettings::of(&token("superuser", "api", None)).is_err());
        // A trusted-publishing token needs its scope, and only it has one.
        assert!(TokenSettings::of(&token("publish", "oidc", None)).is_err());
        assert!(TokenSettings::of(&token("publish", "api", Some("{}"))).is_err());
        let scope = r#"{"package":"p","publish":true,"stage":false,"identity":"ci"}"#;
        let s = TokenSettings::of(&token("publish", "oidc", Some(scope))).unwrap();
        assert_eq!(s.origin, TokenOrigin::Oidc);
        assert_eq!(s.oidc.unwrap().package, "p");
    }

    #[test]
    fn a_staged_version_of_an_unknown_actor_is_not_taken_for_trusted_publishing() {
        let stored = Stored::<ActorType>::from("OIDC".to_owned());
        assert_ne!(stored.get(), Some(ActorType::Oidc));
        // Written back unchanged.
        assert_eq!(stored.text(ActorType::as_str), "OIDC");
        assert_eq!(
            Stored::Known(ActorType::Oidc).text(ActorType::as_str),
            "oidc"
        );
    }

    #[test]
    fn a_trust_configuration_of_an_unknown_ci_kind_matches_nothing() {
        use crate::domain::trust::TrustConfig;
        let row = |kind: &str| crate::store::TrustConfigRow {
            id: "t".into(),
            package_id: 1,
            kind: kind.to_owned().into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            claims: r#"{"repository":"acme/lib","workflow_ref":{"file":"release.yml"}}"#.into(),
            permissions: r#"["createPackage"]"#.into(),
            created_by: 1,
            created_at: 0,
        };
        let read = TrustConfig::of(&row("github")).expect("a github configuration reads");
        assert_eq!(read.kind, crate::config::CiKind::Github);
        for kind in ["GitHub", "jenkins", ""] {
            assert!(TrustConfig::of(&row(kind)).is_none(), "{kind:?}");
        }
    }
}
