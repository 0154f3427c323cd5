//! Access tokens: rows keyed by the HMAC of the token, never the token itself.

use std::sync::Arc;

use super::{BeginWrite, Store, StoreError, StoreResult, UserRow, execute_write, on_pool};
use crate::domain::access::{
    AccountAct, AccountGrant, ExposedTokenGrant, IssuesTokens, TfaMode, TokenKind, TokenOrigin, act,
};
use crate::store::Stored;

/// `SELECT <every TokenRow column> FROM tokens <rest>`, one column list for all reads.
macro_rules! select_token {
    ($rest:literal) => {
        concat!(
            "SELECT id, key, user_id, display_prefix, last_four, name, description, kind, limits, cidr, ",
            "origin, created_at, updated_at, expires_at, last_used_at, last_used_ip, revoked_at, ",
            "rotated_from, replaced_by, revoked_reason, trust_config_id, oidc FROM tokens ",
            $rest
        )
    };
}
/// A token row. Holds no secret: only the keyed hash, the 8-character display prefix
/// and the last four characters.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub key: String,
    pub user_id: i64,
    pub display_prefix: String,
    pub last_four: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[sqlx(try_from = "String")]
    pub kind: Stored<TokenKind>,
    /// Granular limits as JSON text.
    pub limits: Option<String>,
    /// CIDR list as JSON text.
    pub cidr: Option<String>,
    #[sqlx(try_from = "String")]
    pub origin: Stored<TokenOrigin>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<i64>,
    /// The token this one replaced by rotation.
    pub rotated_from: Option<i64>,
    /// The token that replaced this one by rotation (it works until `expires_at`).
    pub replaced_by: Option<i64>,
    /// Why the registry revoked it (`found exposed at …`); `None` when its owner did.
    pub revoked_reason: Option<String>,
    /// For a token minted by trusted publishing: its trust configuration.
    pub trust_config_id: Option<String>,
    /// For a token minted by trusted publishing: what it may do (`OidcScope` JSON).
    pub oidc: Option<String>,
}

/// A token row with its owner's columns (prefixed `u_`), from one joined read.
#[derive(sqlx::FromRow)]
struct TokenUserRow {
    #[sqlx(flatten)]
    token: TokenRow,
    u_name: String,
    u_email: String,
    u_password_hash: String,
    u_fullname: Option<String>,
    u_homepage: Option<String>,
    u_twitter: Option<String>,
    u_github: Option<String>,
    u_freenode: Option<String>,
    #[sqlx(try_from = "Option<String>")]
    u_tfa_mode: Stored<TfaMode>,
    u_tfa_pending: i64,
    u_tfa_secret: Option<String>,
    u_tfa_last_step: Option<i64>,
    u_created_at: i64,
    u_updated_at: i64,
}

impl TokenUserRow {
    fn split(self) -> (TokenRow, UserRow) {
        let user = UserRow {
            id: self.token.user_id,
            name: self.u_name,
            email: self.u_email,
            password_hash: self.u_password_hash,
            fullname: self.u_fullname,
            homepage: self.u_homepage,
            twitter: self.u_twitter,
            github: self.u_github,
            freenode: self.u_freenode,
            tfa_mode: self.u_tfa_mode,
            tfa_pending: self.u_tfa_pending,
            tfa_secret: self.u_tfa_secret,
            tfa_last_step: self.u_tfa_last_step,
            created_at: self.u_created_at,
            updated_at: self.u_updated_at,
        };
        (self.token, user)
    }
}

/// A token about to be stored.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub key: &'a str,
    pub user_id: i64,
    pub hash: &'a [u8],
    pub display_prefix: &'a str,
    pub last_four: &'a str,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub kind: TokenKind,
    pub limits: Option<&'a str>,
    pub cidr: Option<&'a str>,
    pub origin: TokenOrigin,
    pub now: i64,
    pub expires_at: Option<i64>,
}

impl Store {
    /// The live (not revoked, not expired) tokens of `users`, for a credentials view
    /// whose grant covers them.
    pub async fn live_tokens_of(
        &self,
        _grant: &impl crate::domain::access::ViewsCredentials,
        users: &[i64],
        now: i64,
    ) -> StoreResult<Vec<TokenRow>> {
        const SQL: &str = select_token!(
            "WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY created_at DESC, id DESC"
        );
        let mut out = Vec::new();
        for user in users {
            let rows = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(SQL)
                .bind(user)
                .bind(now)
                .fetch_all(p)
                .await)?;
            out.extend(rows);
        }
        Ok(out)
    }
}

/// Grants that may revoke tokens: an account's `RevokeToken`, or a token logging
/// itself out.
pub trait RevokesTokens {
    fn owner(&self) -> i64;
    fn may_revoke(&self, token_id: i64) -> bool;
}

impl RevokesTokens for AccountGrant<act::RevokeToken> {
    fn owner(&self) -> i64 {
        self.user_id()
    }

    fn may_revoke(&self, _token_id: i64) -> bool {
        true
    }
}

impl RevokesTokens for crate::domain::access::LogoutGrant {
    fn owner(&self) -> i64 {
        self.user_id()
    }

    fn may_revoke(&self, token_id: i64) -> bool {
        token_id == self.token_id()
    }
}

/// A batched last-used update.
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub token_id: i64,
    pub at: i64,
    pub ip: String,
}

impl Store {
    /// Stores a new token for the grant's account and returns the row as committed
    /// (read back inside the transaction, so success is never reported for a row
    /// that was not saved).
    pub async fn insert_token(
        &self,
        grant: &impl IssuesTokens,
        t: &NewToken<'_>,
    ) -> StoreResult<TokenRow> {
        if t.user_id != grant.token_owner() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a token grant for one account was used for another"
            )));
        }
        self.insert_token_row(t, None).await
    }

    /// Stores a token minted by trusted publishing (origin `oidc`), owned by the
    /// account that configured the trust, tied to its configuration.
    pub async fn insert_oidc_token(
        &self,
        grant: &crate::domain::access::TrustGrant,
        t: &NewToken<'_>,
        trust_config_id: &str,
        oidc: &str,
    ) -> StoreResult<TokenRow> {
        if t.user_id != grant.user_id() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a trust grant for one account was used for another"
            )));
        }
        self.insert_token_row(t, Some((trust_config_id, oidc)))
            .await
    }

    /// The one insert of a single token (ordinary, or minted by trusted publishing
    /// with its configuration id and id-token summary), read back as committed.
    async fn insert_token_row(
        &self,
        t: &NewToken<'_>,
        trust: Option<(&str, &str)>,
    ) -> StoreResult<TokenRow> {
        self.writing(async {
            const SQL: &str = "INSERT INTO tokens (key, key_prefix, user_id, hash, display_prefix, last_four, \
                name, description, kind, limits, cidr, origin, created_at, updated_at, expires_at, \
                trust_config_id, oidc) \
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16) \
                RETURNING id, key, user_id, display_prefix, last_four, name, description, kind, limits, \
                cidr, origin, created_at, updated_at, expires_at, last_used_at, last_used_ip, revoked_at, \
                rotated_from, replaced_by, revoked_reason, trust_config_id, oidc";
            let key_prefix = t.key.get(..8).ok_or_else(|| {
                StoreError::Other(anyhow::anyhow!("token keys have at least 8 characters"))
            })?;
            let (trust_config_id, oidc) = trust.unzip();
            let row = on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let row = sqlx::query_as::<_, TokenRow>(SQL)
                    .bind(t.key)
                    .bind(key_prefix)
                    .bind(t.user_id)
                    .bind(t.hash.to_vec())
                    .bind(t.display_prefix)
                    .bind(t.last_four)
                    .bind(t.name)
                    .bind(t.description)
                    .bind(t.kind.as_str())
                    .bind(t.limits)
                    .bind(t.cidr)
                    .bind(t.origin.as_str())
                    .bind(t.now)
                    .bind(t.expires_at)
                    .bind(trust_config_id)
                    .bind(oidc)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            })?;
            Ok(row)
        })
        .await
    }

    /// Inserts many tokens in one transaction (bulk loads such as the scale generator).
    pub async fn insert_tokens(&self, tokens: &[NewToken<'_>]) -> StoreResult<()> {
        self.writing(async {
        const SQL: &str = "INSERT INTO tokens (key, key_prefix, user_id, hash, display_prefix, last_four, \
            name, description, kind, limits, cidr, origin, created_at, updated_at, expires_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)";
        on_pool!(self, |p| {
            let mut tx = p.begin_write().await?;
            for t in tokens {
                sqlx::query(SQL)
                    .bind(t.key)
                    .bind(&t.key[..8])
                    .bind(t.user_id)
                    .bind(t.hash.to_vec())
                    .bind(t.display_prefix)
                    .bind(t.last_four)
                    .bind(t.name)
                    .bind(t.description)
                    .bind(t.kind.as_str())
                    .bind(t.limits)
                    .bind(t.cidr)
                    .bind(t.origin.as_str())
                    .bind(t.now)
                    .bind(t.expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
        }).await
    }

    /// The hot-path lookup: one indexed read by hash.
    pub async fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenRow>> {
        const SQL: &str = select_token!("WHERE hash = $1");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(SQL)
            .bind(hash.to_vec())
            .fetch_optional(p)
            .await)?)
    }

    /// The hot path in one indexed read: the token by hash joined with its owner.
    pub async fn token_and_user_by_hash(
        &self,
        hash: &[u8],
    ) -> StoreResult<Option<(Arc<TokenRow>, Arc<UserRow>)>> {
        const SQL: &str = "SELECT t.id, t.key, t.user_id, t.display_prefix, t.last_four, t.name, t.description, \
            t.kind, t.limits, t.cidr, t.origin, t.created_at, t.updated_at, t.expires_at, t.last_used_at, \
            t.last_used_ip, t.revoked_at, t.rotated_from, t.replaced_by, t.revoked_reason, t.trust_config_id, t.oidc, u.name AS u_name, u.email AS u_email, u.password_hash AS u_password_hash, \
            u.fullname AS u_fullname, u.homepage AS u_homepage, u.twitter AS u_twitter, u.github AS u_github, \
            u.freenode AS u_freenode, u.tfa_mode AS u_tfa_mode, u.tfa_pending AS u_tfa_pending, \
            u.tfa_secret AS u_tfa_secret, u.tfa_last_step AS u_tfa_last_step, u.created_at AS u_created_at, \
            u.updated_at AS u_updated_at FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1";
        let read = async {
            let row = on_pool!(self, |p| sqlx::query_as::<_, TokenUserRow>(SQL)
                .bind(hash.to_vec())
                .fetch_optional(p)
                .await)?;
            Ok(row.map(|r| {
                let (token, user) = r.split();
                (Arc::new(token), Arc::new(user))
            }))
        };
        self.cached_read(
            |c, t| c.token(t, hash),
            read,
            |c, t, pair| c.put_token(t, hash, pair.clone()),
        )
        .await
    }

    /// The user's tokens, newest first, including revoked ones when asked.
    pub async fn tokens_of_user(
        &self,
        grant: &AccountGrant<act::ListTokens>,
        include_revoked: bool,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<TokenRow>, i64)> {
        const SQL: &str = select_token!(
            "WHERE user_id = $1 AND ($2 = 1 OR revoked_at IS NULL) \
            ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        const COUNT: &str =
            "SELECT COUNT(*) FROM tokens WHERE user_id = $1 AND ($2 = 1 OR revoked_at IS NULL)";
        let flag = i64::from(include_revoked);
        let user_id = grant.user_id();
        let rows = on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(SQL)
            .bind(user_id)
            .bind(flag)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await)?;
        let total: i64 = on_pool!(self, |p| sqlx::query_scalar(COUNT)
            .bind(user_id)
            .bind(flag)
            .fetch_one(p)
            .await)?;
        Ok((rows, total))
    }

    /// One of the grant's account's tokens, by key (any account grant of the owner:
    /// revocation and rotation find the token they work on this way).
    pub async fn own_token_by_key<A: AccountAct>(
        &self,
        grant: &AccountGrant<A>,
        key: &str,
    ) -> StoreResult<Option<TokenRow>> {
        const SQL: &str = select_token!("WHERE key = $1 AND user_id = $2");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(SQL)
            .bind(key)
            .bind(grant.user_id())
            .fetch_optional(p)
            .await)?)
    }

    /// Marks one of the grant's tokens revoked. True only for the call that revoked
    /// it: revoking twice (or at once from two requests) succeeds once.
    pub async fn revoke_token(
        &self,
        grant: &impl RevokesTokens,
        id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        if !grant.may_revoke(id) {
            return Ok(false);
        }
        let user_id = grant.owner();
        self.writing(async {
            const SQL: &str = "UPDATE tokens SET revoked_at = $2, updated_at = $2 \
            WHERE id = $1 AND user_id = $3 AND revoked_at IS NULL";
            let done = execute_write!(self, sqlx::query(SQL).bind(id).bind(now).bind(user_id))?;
            Ok(done == 1)
        })
        .await
    }

    /// Rotation in one transaction: stores the successor (linked to the old token)
    /// and moves the old token's expiry to `old_stops_at`, linking it to the
    /// successor. `None` (nothing written) when the old token was revoked or rotated
    /// meanwhile, so two rotations of one token have one winner.
    pub async fn rotate_token(
        &self,
        grant: &AccountGrant<act::CreateToken>,
        old_id: i64,
        t: &NewToken<'_>,
        old_stops_at: i64,
    ) -> StoreResult<Option<TokenRow>> {
        if t.user_id != grant.token_owner() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "a token grant for one account was used for another"
            )));
        }
        self.writing(async {
            const INSERT: &str = "INSERT INTO tokens (key, key_prefix, user_id, hash, display_prefix, last_four, \
                name, description, kind, limits, cidr, origin, created_at, updated_at, expires_at, rotated_from) \
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15) \
                RETURNING id, key, user_id, display_prefix, last_four, name, description, kind, limits, \
                cidr, origin, created_at, updated_at, expires_at, last_used_at, last_used_ip, revoked_at, \
                rotated_from, replaced_by, revoked_reason, trust_config_id, oidc";
            const RETIRE: &str = "UPDATE tokens SET replaced_by = $2, updated_at = $3, \
                expires_at = CASE WHEN expires_at IS NULL OR expires_at > $4 THEN $4 ELSE expires_at END \
                WHERE id = $1 AND user_id = $5 AND revoked_at IS NULL AND replaced_by IS NULL";
            let key_prefix = t.key.get(..8).ok_or_else(|| {
                StoreError::Other(anyhow::anyhow!("token keys have at least 8 characters"))
            })?;
            let row = on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let row = sqlx::query_as::<_, TokenRow>(INSERT)
                    .bind(t.key)
                    .bind(key_prefix)
                    .bind(t.user_id)
                    .bind(t.hash.to_vec())
                    .bind(t.display_prefix)
                    .bind(t.last_four)
                    .bind(t.name)
                    .bind(t.description)
                    .bind(t.kind.as_str())
                    .bind(t.limits)
                    .bind(t.cidr)
                    .bind(t.origin.as_str())
                    .bind(t.now)
                    .bind(t.expires_at)
                    .bind(old_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let retired = sqlx::query(RETIRE)
                    .bind(old_id)
                    .bind(row.id)
                    .bind(t.now)
                    .bind(old_stops_at)
                    .bind(t.user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let row = if retired == 1 {
                    tx.commit().await?;
                    Some(row)
                } else {
                    tx.rollback().await?;
                    None
                };
                Ok::<_, sqlx::Error>(row)
            })?;
            Ok(row)
        })
        .await
    }

    /// Revokes an exposed token (whoever owns it) with the reason its owner reads.
    /// Live tokens only; one statement whether or not one matches. Returns the owner
    /// and the token's visible prefix when this call revoked it.
    pub async fn revoke_exposed_token(
        &self,
        grant: &ExposedTokenGrant,
        reason: &str,
        now: i64,
    ) -> StoreResult<Option<(i64, String)>> {
        self.writing(async {
            const SQL: &str = "UPDATE tokens SET revoked_at = $2, updated_at = $2, revoked_reason = $3 \
                WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) \
                RETURNING user_id, display_prefix";
            let row = on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let row: Option<(i64, String)> = sqlx::query_as(SQL)
                    .bind(grant.hash().to_vec())
                    .bind(now)
                    .bind(reason)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            })?;
            Ok(row)
        })
        .await
    }

    /// The account's tokens the registry revoked (with a reason) since `since`,
    /// newest first: the Access Tokens page shows them.
    pub async fn registry_revoked_tokens(
        &self,
        grant: &AccountGrant<act::ListTokens>,
        since: i64,
    ) -> StoreResult<Vec<TokenRow>> {
        const SQL: &str = select_token!(
            "WHERE user_id = $1 AND revoked_reason IS NOT NULL AND revoked_at >= $2 \
             ORDER BY revoked_at DESC, id DESC LIMIT 50"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(SQL)
            .bind(grant.user_id())
            .bind(since)
            .fetch_all(p)
            .await)?)
    }

    /// Applies a batch of last-used records (one statement per token).
    pub async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()> {
        self.writing(async {
            const SQL: &str = "UPDATE tokens SET last_used_at = $2, last_used_ip = $3 \
                           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
            for u in uses {
                on_pool!(self, |p| sqlx::query(SQL)
                    .bind(u.token_id)
                    .bind(u.at)
                    .bind(&u.ip)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
            Ok(())
        })
        .await
    }

    /// Number of live tokens (for metrics and the scale benchmark).
    pub async fn count_tokens(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens"
        )
        .fetch_one(p)
        .await)?)
    }
}
