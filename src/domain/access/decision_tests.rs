//! The decision table: every classic credential × action × 2FA mode, the credential
//! rules (passwords, granular tokens), hiding, and properties that must hold for every
//! input (`proptest`).

use super::*;
use Action::*;

fn token(kind: TokenKind, tfa: TfaMode) -> Principal {
    Principal {
        credential: Credential::Token { kind, limits: None },
        tfa,
    }
}

fn own_public() -> PackageFacts {
    PackageFacts {
        exists: true,
        public: true,
        is_maintainer: true,
        ..Default::default()
    }
}

fn name(n: &str) -> PackageName {
    PackageName::parse(n).unwrap()
}

const ALLOW: &str = "allow";
const OTP: &str = "otp";
const FORBID: &str = "forbid";
const HIDDEN: &str = "hidden";
const UNAUTH: &str = "unauth";

fn short(d: &Decision) -> &'static str {
    match d {
        Decision::Allow => ALLOW,
        Decision::AllowWithOtp => OTP,
        Decision::Deny(Denial::Forbidden(_)) => FORBID,
        Decision::Deny(Denial::Hidden) => HIDDEN,
        Decision::Deny(Denial::Unauthenticated) => UNAUTH,
    }
}

/// The columns of the table below, in order.
const COLUMNS: [Action; 18] = [
    ReadPackage,
    Star,
    Publish,
    Unpublish,
    Deprecate,
    DistTag,
    ChangeAccess,
    ChangeOwners,
    ChangeMfaPolicy,
    ListPackages,
    ReadProfile,
    ChangeProfile,
    ChangeTwoFactor,
    ListTokens,
    CreateToken,
    RevokeToken,
    ApproveWebLogin,
    ReadSecurityLog,
];

#[track_caller]
fn check_row(who: Option<Principal>, expected: [&str; 18]) {
    let pkg = name("@me/pkg");
    let facts = own_public();
    for (action, want) in COLUMNS.iter().zip(expected) {
        let got = decide(who.as_ref(), *action, Some((&pkg, &facts)), true);
        assert_eq!(short(&got), want, "{action:?} for {who:?}");
    }
}

//   read   star   pub    unpub  depr   tag    access owners mfa    list   rdprof chprof 2fa    tokens create revoke weblog seclog
#[test]
fn classic_types_without_two_factor() {
    use TokenKind::*;
    let off = TfaMode::Off;
    check_row(
        None,
        [
            ALLOW, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, ALLOW, UNAUTH,
            UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH,
        ],
    );
    check_row(
        Some(token(ReadOnly, off)),
        [
            ALLOW, ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Automation, off)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Publish, off)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW,
            ALLOW, ALLOW, ALLOW, ALLOW, FORBID, ALLOW,
        ],
    );
    let session = Principal {
        credential: Credential::Session,
        tfa: off,
    };
    check_row(
        Some(session),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW,
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW,
        ],
    );
    let password = Principal {
        credential: Credential::Password,
        tfa: off,
    };
    check_row(
        Some(password),
        [
            ALLOW, ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, ALLOW,
            FORBID, ALLOW, FORBID, ALLOW, FORBID, FORBID, FORBID,
        ],
    );
}

#[test]
fn classic_types_with_auth_only() {
    use TokenKind::*;
    let mode = TfaMode::AuthOnly;
    check_row(
        Some(token(ReadOnly, mode)),
        [
            ALLOW, ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Automation, mode)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Publish, mode)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, OTP, ALLOW, ALLOW, ALLOW, OTP,
            ALLOW, OTP, ALLOW, FORBID, ALLOW,
        ],
    );
    let session = Principal {
        credential: Credential::Session,
        tfa: mode,
    };
    check_row(
        Some(session),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, OTP, ALLOW, ALLOW, ALLOW, OTP,
            ALLOW, OTP, ALLOW, OTP, ALLOW,
        ],
    );
    // A password alone never does more than a session without its second factor.
    let password = Principal {
        credential: Credential::Password,
        tfa: mode,
    };
    check_row(
        Some(password),
        [
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, OTP,
            FORBID, OTP, FORBID, OTP, FORBID, FORBID, FORBID,
        ],
    );
}

#[test]
fn classic_types_with_auth_and_writes() {
    use TokenKind::*;
    let mode = TfaMode::AuthAndWrites;
    check_row(
        Some(token(ReadOnly, mode)),
        [
            ALLOW, ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Automation, mode)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID,
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(token(Publish, mode)),
        [
            ALLOW, ALLOW, OTP, OTP, OTP, OTP, OTP, OTP, OTP, ALLOW, ALLOW, OTP, OTP, ALLOW, OTP,
            OTP, FORBID, ALLOW,
        ],
    );
    let session = Principal {
        credential: Credential::Session,
        tfa: mode,
    };
    check_row(
        Some(session),
        [
            ALLOW, ALLOW, OTP, OTP, OTP, OTP, OTP, OTP, OTP, ALLOW, ALLOW, OTP, OTP, ALLOW, OTP,
            OTP, OTP, ALLOW,
        ],
    );
    let password = Principal {
        credential: Credential::Password,
        tfa: mode,
    };
    check_row(
        Some(password),
        [
            FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, OTP,
            FORBID, OTP, FORBID, OTP, FORBID, FORBID, FORBID,
        ],
    );
}

#[test]
fn granular_tokens_never_manage_the_account() {
    let limited = Principal {
        credential: Credential::Token {
            kind: TokenKind::Publish,
            limits: Some(Limits {
                packages_all: true,
                permission: Some(PackagePermission::ReadWrite),
                ..Default::default()
            }),
        },
        tfa: TfaMode::Off,
    };
    for action in Action::ALL.into_iter().filter(|a| a.is_account_action()) {
        assert_eq!(
            short(&decide(Some(&limited), action, None, true)),
            FORBID,
            "{action:?}"
        );
    }
    // …but reach their packages.
    let pkg = name("@me/pkg");
    assert_eq!(
        short(&decide(
            Some(&limited),
            Publish,
            Some((&pkg, &own_public())),
            true
        )),
        ALLOW
    );
}

#[test]
fn nothing_selected_grants_nothing() {
    let restricted = PackageFacts {
        public: false,
        ..own_public()
    };
    for limits in [
        Limits::default(),
        Limits {
            orgs: vec!["acme".into()],
            orgs_permission: Some(PackagePermission::ReadWrite),
            ..Default::default()
        },
        Limits {
            packages: vec![],
            scopes: vec![],
            permission: Some(PackagePermission::ReadWrite),
            ..Default::default()
        },
    ] {
        let who = Principal {
            credential: Credential::Token {
                kind: TokenKind::Publish,
                limits: Some(limits.clone()),
            },
            tfa: TfaMode::Off,
        };
        for pkg in ["@me/pkg", "left-pad", "@acme/x"] {
            let pkg = name(pkg);
            assert_eq!(
                who.permission_for(&pkg),
                PackagePermission::NoAccess,
                "{limits:?}"
            );
            for action in [Publish, Unpublish, DistTag, Deprecate, ChangeOwners] {
                assert_eq!(
                    short(&decide(
                        Some(&who),
                        action,
                        Some((&pkg, &own_public())),
                        true
                    )),
                    FORBID
                );
            }
            assert_eq!(
                short(&decide(
                    Some(&who),
                    ReadPackage,
                    Some((&pkg, &restricted)),
                    true
                )),
                HIDDEN
            );
        }
    }
}

#[test]
fn a_hidden_package_answers_like_a_missing_one() {
    let pkg = name("@acme/secret");
    let hidden = PackageFacts {
        exists: true,
        public: false,
        is_maintainer: false,
        ..Default::default()
    };
    let missing = PackageFacts::default();
    for kind in TokenKind::ALL {
        for tfa in [TfaMode::Off, TfaMode::AuthOnly, TfaMode::AuthAndWrites] {
            let who = token(kind, tfa);
            for action in Action::ALL {
                let a = decide(Some(&who), action, Some((&pkg, &hidden)), true);
                let b = decide(Some(&who), action, Some((&pkg, &missing)), true);
                assert_eq!(a, b, "{kind:?} {tfa:?} {action:?}");
            }
        }
    }
    // Anonymous callers without anonymous reads learn nothing either.
    for facts in [hidden, missing, own_public()] {
        assert_eq!(
            short(&decide(None, ReadPackage, Some((&pkg, &facts)), false)),
            UNAUTH
        );
    }
}

#[test]
fn new_packages_and_foreign_scopes() {
    let who = token(TokenKind::Publish, TfaMode::Off);
    let pkg = name("@me/new");
    let new = PackageFacts {
        may_create: true,
        ..Default::default()
    };
    assert_eq!(
        decide(Some(&who), Publish, Some((&pkg, &new)), true),
        Decision::Allow
    );
    let taken = PackageFacts::default();
    let public_foreign = PackageFacts {
        exists: true,
        public: true,
        ..Default::default()
    };
    let expected = Decision::Deny(Denial::Forbidden(publish_refusal(&pkg)));
    assert_eq!(
        decide(Some(&who), Publish, Some((&pkg, &taken)), true),
        expected
    );
    assert_eq!(
        decide(Some(&who), Publish, Some((&pkg, &public_foreign)), true),
        expected
    );
    assert_eq!(
        short(&decide(Some(&who), DistTag, Some((&pkg, &taken)), true)),
        HIDDEN
    );
}

#[test]
fn granular_limits_cap_packages() {
    let limits = Limits {
        packages: vec!["allowed".into()],
        scopes: vec!["team".into()],
        permission: Some(PackagePermission::ReadWrite),
        ..Default::default()
    };
    let who = Principal {
        credential: Credential::Token {
            kind: TokenKind::Publish,
            limits: Some(limits.clone()),
        },
        tfa: TfaMode::Off,
    };
    let facts = own_public();
    for (pkg, want) in [
        ("allowed", ALLOW),
        ("@team/x", ALLOW),
        ("other", FORBID),
        ("@else/y", FORBID),
    ] {
        assert_eq!(
            short(&decide(
                Some(&who),
                Publish,
                Some((&name(pkg), &facts)),
                true
            )),
            want,
            "{pkg}"
        );
    }
    let private = PackageFacts {
        public: false,
        ..own_public()
    };
    assert_eq!(
        short(&decide(
            Some(&who),
            ReadPackage,
            Some((&name("other"), &private)),
            true
        )),
        HIDDEN
    );
    assert_eq!(
        short(&decide(
            Some(&who),
            ReadPackage,
            Some((&name("allowed"), &private)),
            true
        )),
        ALLOW
    );
    let reader = Principal {
        credential: Credential::Token {
            kind: TokenKind::Publish,
            limits: Some(Limits {
                permission: Some(PackagePermission::ReadOnly),
                ..limits
            }),
        },
        tfa: TfaMode::Off,
    };
    assert_eq!(
        short(&decide(
            Some(&reader),
            Publish,
            Some((&name("allowed"), &facts)),
            true
        )),
        FORBID
    );
}

#[test]
fn package_two_factor_policy() {
    let pkg = name("@me/pkg");
    let strict = PackageFacts {
        publish_requires_tfa: true,
        ..own_public()
    };
    let lenient = PackageFacts {
        automation_overrides_tfa: true,
        ..strict
    };
    let auto = token(TokenKind::Automation, TfaMode::AuthOnly);
    let publish = token(TokenKind::Publish, TfaMode::AuthOnly);
    let no_tfa = token(TokenKind::Publish, TfaMode::Off);
    assert_eq!(
        short(&decide(Some(&auto), Publish, Some((&pkg, &strict)), true)),
        FORBID
    );
    assert_eq!(
        short(&decide(Some(&auto), Publish, Some((&pkg, &lenient)), true)),
        ALLOW
    );
    assert_eq!(
        short(&decide(
            Some(&publish),
            Publish,
            Some((&pkg, &strict)),
            true
        )),
        OTP
    );
    assert_eq!(
        short(&decide(Some(&no_tfa), Publish, Some((&pkg, &strict)), true)),
        FORBID
    );
}

#[test]
fn stored_limits_read_strictly() {
    assert!(serde_json::from_str::<Limits>(r#"{"packages":["a"],"permission":"admin"}"#).is_err());
    assert!(serde_json::from_str::<Limits>(r#"{"packages":["a"],"grant":"all"}"#).is_err());
    let old: Limits = serde_json::from_str(r#"{"packages":["a"],"permission":null}"#).unwrap();
    assert_eq!(old.permission, None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = TokenKind> {
        prop::sample::select(TokenKind::ALL.to_vec())
    }

    fn tfa() -> impl Strategy<Value = TfaMode> {
        prop::sample::select(vec![
            TfaMode::Off,
            TfaMode::AuthOnly,
            TfaMode::AuthAndWrites,
        ])
    }

    fn permission() -> impl Strategy<Value = Option<PackagePermission>> {
        prop::option::of(prop::sample::select(vec![
            PackagePermission::NoAccess,
            PackagePermission::ReadOnly,
            PackagePermission::ReadWrite,
        ]))
    }

    fn package() -> impl Strategy<Value = PackageName> {
        prop::sample::select(vec!["left-pad", "@me/pkg", "@team/x", "other"]).prop_map(name)
    }

    fn limits() -> impl Strategy<Value = Limits> {
        (
            prop::collection::vec(
                prop::sample::select(vec!["left-pad", "@me/pkg", "other"]),
                0..3,
            ),
            prop::collection::vec(prop::sample::select(vec!["me", "team"]), 0..2),
            any::<bool>(),
            permission(),
            prop::collection::vec(prop::sample::select(vec!["me", "team"]), 0..2),
            permission(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    packages,
                    scopes,
                    packages_all,
                    permission,
                    orgs,
                    orgs_permission,
                    bypass_2fa,
                )| Limits {
                    packages: packages.into_iter().map(str::to_owned).collect(),
                    scopes: scopes.into_iter().map(str::to_owned).collect(),
                    packages_all,
                    permission,
                    orgs: orgs.into_iter().map(str::to_owned).collect(),
                    orgs_permission,
                    bypass_2fa,
                },
            )
    }

    fn facts() -> impl Strategy<Value = PackageFacts> {
        (
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            prop::option::of(prop::sample::select(OrgRole::ALL.to_vec())),
            permission(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    (
                        exists,
                        public,
                        is_maintainer,
                        may_create,
                        publish_requires_tfa,
                        automation_overrides_tfa,
                    ),
                    org_role,
                    team_permission,
                    trusted_publishing_only,
                )| PackageFacts {
                    exists,
                    public,
                    is_maintainer,
                    org_role,
                    team_permission,
                    may_create: may_create && !exists,
                    publish_requires_tfa,
                    automation_overrides_tfa,
                    trusted_publishing_only,
                },
            )
    }

    /// How much a decision allows, for comparing two of them.
    fn rank(d: &Decision) -> u8 {
        match d {
            Decision::Deny(_) => 0,
            Decision::AllowWithOtp => 1,
            Decision::Allow => 2,
        }
    }

    proptest! {
        /// A granular token never exceeds the classic token of its type.
        #[test]
        fn granular_never_exceeds_classic(kind in kind(), tfa in tfa(), limits in limits(), pkg in package(), facts in facts(), anon in any::<bool>()) {
            let classic = Principal { credential: Credential::Token { kind, limits: None }, tfa };
            let granular = Principal { credential: Credential::Token { kind, limits: Some(limits) }, tfa };
            for action in Action::ALL {
                let c = decide(Some(&classic), action, Some((&pkg, &facts)), anon);
                let g = decide(Some(&granular), action, Some((&pkg, &facts)), anon);
                prop_assert!(rank(&g) <= rank(&c), "{action:?}: granular {g:?} beyond classic {c:?}");
            }
        }

        /// A password never does more than a website session, and with 2FA on never
        /// does anything without a one-time password.
        #[test]
        fn a_password_never_exceeds_a_session(tfa in tfa(), pkg in package(), facts in facts(), anon in any::<bool>()) {
            let password = Principal { credential: Credential::Password, tfa };
            let session = Principal { credential: Credential::Session, tfa };
            for action in Action::ALL {
                let p = decide(Some(&password), action, Some((&pkg, &facts)), anon);
                let s = decide(Some(&session), action, Some((&pkg, &facts)), anon);
                prop_assert!(!p.allows() || s.allows(), "{action:?}: {p:?} vs session {s:?}");
                if tfa != TfaMode::Off {
                    prop_assert!(p != Decision::Allow, "{action:?} allowed by a password alone");
                }
            }
        }

        /// Read-only tokens never change anything; nothing selected means nothing
        /// reached.
        #[test]
        fn read_only_and_empty_selection(tfa in tfa(), limits in limits(), pkg in package(), facts in facts()) {
            let reader = token(TokenKind::ReadOnly, tfa);
            let empty = Limits { packages: vec![], scopes: vec![], packages_all: false, ..limits };
            let nothing = Principal { credential: Credential::Token { kind: TokenKind::Publish, limits: Some(empty) }, tfa };
            for action in Action::ALL.into_iter().filter(|a| a.is_package_change() || a.is_account_action()) {
                prop_assert!(!decide(Some(&reader), action, Some((&pkg, &facts)), true).allows());
                prop_assert!(!decide(Some(&nothing), action, Some((&pkg, &facts)), true).allows());
            }
        }

        /// Whatever the credential, a hidden package and a missing one get the same
        /// answer.
        #[test]
        fn hidden_is_missing(kind in kind(), tfa in tfa(), limits in prop::option::of(limits()), pkg in package(), anon in any::<bool>()) {
            let who = Principal { credential: Credential::Token { kind, limits }, tfa };
            let hidden = PackageFacts { exists: true, public: false, is_maintainer: false, ..Default::default() };
            for action in Action::ALL {
                prop_assert_eq!(
                    decide(Some(&who), action, Some((&pkg, &hidden)), anon),
                    decide(Some(&who), action, Some((&pkg, &PackageFacts::default())), anon)
                );
            }
        }
    }
}

#[test]
fn organization_roles_and_credentials() {
    let org = "acme";
    let member = |role| OrgFacts {
        exists: true,
        role: Some(role),
    };
    let publish = token(TokenKind::Publish, TfaMode::Off);
    let read_only = token(TokenKind::ReadOnly, TfaMode::Off);
    // Roles: developers read, admins manage, owners manage owners.
    for (role, read, manage, owners) in [
        (OrgRole::Developer, ALLOW, FORBID, FORBID),
        (OrgRole::Admin, ALLOW, ALLOW, FORBID),
        (OrgRole::Owner, ALLOW, ALLOW, ALLOW),
    ] {
        let f = member(role);
        assert_eq!(
            short(&decide_org(Some(&publish), ReadOrg, org, &f)),
            read,
            "{role:?}"
        );
        assert_eq!(
            short(&decide_org(Some(&publish), ManageOrg, org, &f)),
            manage,
            "{role:?}"
        );
        assert_eq!(
            short(&decide_org(Some(&publish), ManageOrgOwners, org, &f)),
            owners,
            "{role:?}"
        );
    }
    // A stranger, or a missing organization: the same 404.
    for f in [
        OrgFacts::default(),
        OrgFacts {
            exists: true,
            role: None,
        },
    ] {
        for action in [ReadOrg, ManageOrg, ManageOrgOwners] {
            assert_eq!(short(&decide_org(Some(&publish), action, org, &f)), HIDDEN);
        }
    }
    assert_eq!(
        short(&decide_org(None, ReadOrg, org, &member(OrgRole::Owner))),
        UNAUTH
    );
    // Classic tokens below publish only read; passwords do nothing.
    let owner = member(OrgRole::Owner);
    assert_eq!(
        short(&decide_org(Some(&read_only), ReadOrg, org, &owner)),
        ALLOW
    );
    assert_eq!(
        short(&decide_org(Some(&read_only), ManageOrg, org, &owner)),
        FORBID
    );
    let password = Principal {
        credential: Credential::Password,
        tfa: TfaMode::Off,
    };
    assert_eq!(
        short(&decide_org(Some(&password), ReadOrg, org, &owner)),
        FORBID
    );
    // Granular tokens: only the organizations they list, at their permission.
    let granular = |orgs: Vec<&str>, permission| Principal {
        credential: Credential::Token {
            kind: TokenKind::Publish,
            limits: Some(Limits {
                orgs: orgs.into_iter().map(str::to_owned).collect(),
                orgs_permission: permission,
                ..Default::default()
            }),
        },
        tfa: TfaMode::Off,
    };
    let reader = granular(vec!["acme"], Some(PackagePermission::ReadOnly));
    let writer = granular(vec!["acme"], Some(PackagePermission::ReadWrite));
    let elsewhere = granular(vec!["other"], Some(PackagePermission::ReadWrite));
    assert_eq!(
        short(&decide_org(Some(&reader), ReadOrg, org, &owner)),
        ALLOW
    );
    assert_eq!(
        short(&decide_org(Some(&reader), ManageOrg, org, &owner)),
        FORBID
    );
    assert_eq!(
        short(&decide_org(Some(&writer), ManageOrgOwners, org, &owner)),
        ALLOW
    );
    assert_eq!(
        short(&decide_org(Some(&elsewhere), ReadOrg, org, &owner)),
        FORBID
    );
    // 2FA in auth-and-writes asks for a code on changes.
    let strict = token(TokenKind::Publish, TfaMode::AuthAndWrites);
    assert_eq!(
        short(&decide_org(Some(&strict), ManageOrg, org, &owner)),
        OTP
    );
    assert_eq!(
        short(&decide_org(Some(&strict), ReadOrg, org, &owner)),
        ALLOW
    );
}

#[test]
fn team_grants_and_org_roles_give_package_rights() {
    let pkg = name("@acme/lib");
    let who = token(TokenKind::Publish, TfaMode::Off);
    let restricted = |org_role, team_permission, is_maintainer| PackageFacts {
        exists: true,
        public: false,
        is_maintainer,
        org_role,
        team_permission,
        ..Default::default()
    };
    use PackagePermission::*;
    for (facts, read, write) in [
        // A publish into a hidden package is refused like one into a foreign scope.
        (restricted(None, None, false), HIDDEN, FORBID),
        (
            restricted(Some(OrgRole::Developer), None, false),
            HIDDEN,
            FORBID,
        ),
        (
            restricted(Some(OrgRole::Developer), Some(ReadOnly), false),
            ALLOW,
            FORBID,
        ),
        (
            restricted(Some(OrgRole::Developer), Some(ReadWrite), false),
            ALLOW,
            ALLOW,
        ),
        (restricted(Some(OrgRole::Admin), None, false), ALLOW, ALLOW),
        (restricted(Some(OrgRole::Owner), None, false), ALLOW, ALLOW),
        (
            restricted(Some(OrgRole::Developer), None, true),
            ALLOW,
            ALLOW,
        ),
    ] {
        assert_eq!(
            short(&decide(Some(&who), ReadPackage, Some((&pkg, &facts)), true)),
            read,
            "{facts:?}"
        );
        assert_eq!(
            short(&decide(Some(&who), Publish, Some((&pkg, &facts)), true)),
            write,
            "{facts:?}"
        );
    }
    // The credentials view: maintainers and owners/admins only.
    let dev_rw = restricted(Some(OrgRole::Developer), Some(ReadWrite), false);
    assert_eq!(
        short(&decide(
            Some(&who),
            ReadPackageCredentials,
            Some((&pkg, &dev_rw)),
            true
        )),
        FORBID
    );
    let admin = restricted(Some(OrgRole::Admin), None, false);
    assert_eq!(
        short(&decide(
            Some(&who),
            ReadPackageCredentials,
            Some((&pkg, &admin)),
            true
        )),
        ALLOW
    );
}
