//! Table of type × action decisions.

use super::*;
use Action::*;

fn principal(kind: TokenKind, tfa: TfaMode) -> Principal {
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

const ACTIONS: [Action; 14] = [
    ReadPackage,
    Publish,
    Unpublish,
    Deprecate,
    DistTag,
    ChangeAccess,
    ChangeOwners,
    ChangeMfaPolicy,
    ReadProfile,
    ChangeProfile,
    ChangeTwoFactor,
    ListTokens,
    CreateToken,
    RevokeToken,
];

#[track_caller]
fn check_row(who: Option<Principal>, expected: [&str; 14]) {
    let pkg = name("@me/pkg");
    let facts = own_public();
    for (action, want) in ACTIONS.iter().zip(expected) {
        let got = decide(who.as_ref(), *action, Some((&pkg, &facts)), true);
        assert_eq!(short(&got), want, "{action:?} for {who:?}");
    }
}

#[test]
fn type_by_action_without_two_factor() {
    use TokenKind::*;
    //                                    read   pub    unpub  depr   tag    access owners mfa    rdprof chprof 2fa    list   create revoke
    check_row(
        None,
        [
            ALLOW, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH, UNAUTH,
            UNAUTH, UNAUTH, UNAUTH,
        ],
    );
    check_row(
        Some(principal(ReadOnly, TfaMode::Off)),
        [
            ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Automation, TfaMode::Off)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Publish, TfaMode::Off)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW,
            ALLOW, ALLOW,
        ],
    );
}

#[test]
fn type_by_action_with_auth_only() {
    use TokenKind::*;
    check_row(
        Some(principal(ReadOnly, TfaMode::AuthOnly)),
        [
            ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Automation, TfaMode::AuthOnly)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Publish, TfaMode::AuthOnly)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, OTP, ALLOW, ALLOW, OTP, ALLOW, OTP,
            ALLOW,
        ],
    );
}

#[test]
fn type_by_action_with_auth_and_writes() {
    use TokenKind::*;
    check_row(
        Some(principal(ReadOnly, TfaMode::AuthAndWrites)),
        [
            ALLOW, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Automation, TfaMode::AuthAndWrites)),
        [
            ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, FORBID, FORBID, FORBID, ALLOW, FORBID, FORBID,
            FORBID, FORBID, FORBID,
        ],
    );
    check_row(
        Some(principal(Publish, TfaMode::AuthAndWrites)),
        [
            ALLOW, OTP, OTP, OTP, OTP, OTP, OTP, OTP, ALLOW, OTP, OTP, ALLOW, OTP, OTP,
        ],
    );
    let session = Principal {
        credential: Credential::Session,
        tfa: TfaMode::AuthAndWrites,
    };
    check_row(
        Some(session),
        [
            ALLOW, OTP, OTP, OTP, OTP, OTP, OTP, OTP, ALLOW, OTP, OTP, ALLOW, OTP, OTP,
        ],
    );
}

#[test]
fn restricted_packages_are_hidden_from_non_maintainers() {
    let pkg = name("@acme/secret");
    let facts = PackageFacts {
        exists: true,
        public: false,
        is_maintainer: false,
        ..Default::default()
    };
    let stranger = principal(TokenKind::Publish, TfaMode::Off);
    assert_eq!(
        decide(None, ReadPackage, Some((&pkg, &facts)), true),
        Decision::Deny(Denial::Hidden)
    );
    for action in [ReadPackage, Publish, DistTag, ChangeOwners] {
        assert_eq!(
            decide(Some(&stranger), action, Some((&pkg, &facts)), true),
            Decision::Deny(Denial::Hidden)
        );
    }
    let mine = PackageFacts {
        is_maintainer: true,
        ..facts
    };
    let reader = principal(TokenKind::ReadOnly, TfaMode::Off);
    assert_eq!(
        decide(Some(&reader), ReadPackage, Some((&pkg, &mine)), true),
        Decision::Allow
    );
}

#[test]
fn anonymous_read_switch() {
    let pkg = name("left-pad");
    let facts = PackageFacts {
        exists: true,
        public: true,
        ..Default::default()
    };
    assert_eq!(
        decide(None, ReadPackage, Some((&pkg, &facts)), false),
        Decision::Deny(Denial::Unauthenticated)
    );
    let reader = principal(TokenKind::ReadOnly, TfaMode::Off);
    assert_eq!(
        decide(Some(&reader), ReadPackage, Some((&pkg, &facts)), false),
        Decision::Allow
    );
}

#[test]
fn non_maintainers_cannot_publish_existing_public_packages() {
    let pkg = name("left-pad");
    let facts = PackageFacts {
        exists: true,
        public: true,
        ..Default::default()
    };
    let who = principal(TokenKind::Publish, TfaMode::Off);
    assert_eq!(
        short(&decide(Some(&who), Publish, Some((&pkg, &facts)), true)),
        FORBID
    );
    let new = PackageFacts {
        may_create: true,
        ..Default::default()
    };
    assert_eq!(
        decide(Some(&who), Publish, Some((&pkg, &new)), true),
        Decision::Allow
    );
    let taken = PackageFacts::default();
    assert_eq!(
        short(&decide(Some(&who), Publish, Some((&pkg, &taken)), true)),
        FORBID
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
        permission: Some("read-write".into()),
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
                permission: Some("read-only".into()),
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
    let auto = principal(TokenKind::Automation, TfaMode::AuthOnly);
    let publish = principal(TokenKind::Publish, TfaMode::AuthOnly);
    let no_tfa = principal(TokenKind::Publish, TfaMode::Off);
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
