use crate::harness::*;

#[test]
fn migrations_have_matching_stems() {
    let list = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let root = env!("CARGO_MANIFEST_DIR");
    assert_eq!(
        list(&format!("{root}/migrations/sqlite")),
        list(&format!("{root}/migrations/postgres"))
    );
}

#[test]
fn token_and_user_round_trip_on_both_databases() {
    on_both_databases(|server| {
        let token = server.signup("erin");
        let app = server.app.clone();
        server.block_on(async {
            let user = app.store.user_by_name("erin").await.unwrap().unwrap();
            let caller = tessera::domain::auth::authenticate_token(
                &app,
                &token,
                tessera::cidr::ClientAddr::Ip([127, 0, 0, 1].into()),
            )
            .await
            .unwrap();
            let (rows, total) = tessera::domain::tokens::list(&app, &caller, 0, 10)
                .await
                .unwrap();
            assert_eq!(total, 1);
            assert_eq!(
                rows[0].kind,
                tessera::store::Stored::Known(tessera::domain::access::TokenKind::Publish)
            );
            assert_eq!(
                rows[0].origin,
                tessera::store::Stored::Known(tessera::domain::access::TokenOrigin::Login)
            );
            assert!(token.starts_with(&rows[0].display_prefix));
            assert!(
                rows[0].expires_at.is_some(),
                "login tokens expire (30 days by default)"
            );
            // Replay protection is a compare-and-set in the database.
            assert!(app.store.claim_totp_step(user.id, 100).await.unwrap());
            assert!(!app.store.claim_totp_step(user.id, 100).await.unwrap());
            assert!(!app.store.claim_totp_step(user.id, 99).await.unwrap());
            assert!(app.store.claim_totp_step(user.id, 101).await.unwrap());
            // Duplicate user names conflict.
            assert!(matches!(
                app.store.insert_user("erin", "e@x.io", "h", 0).await,
                Err(tessera::store::StoreError::Conflict)
            ));
        });
    });
}
