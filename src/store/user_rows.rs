//! Users and their two-factor state.

use super::{BeginWrite, Store, StoreResult, Stored, execute_write, on_pool};
use crate::domain::access::{AccountGrant, TfaMode, act};

/// A user row. `password_hash` and `tfa_secret` are never logged: `Debug` skips them.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub fullname: Option<String>,
    pub homepage: Option<String>,
    pub twitter: Option<String>,
    pub github: Option<String>,
    pub freenode: Option<String>,
    /// The mode enabled or being enrolled in (`NULL`: off).
    #[sqlx(try_from = "Option<String>")]
    pub tfa_mode: Stored<TfaMode>,
    pub tfa_pending: i64,
    /// Sealed with the server key.
    pub tfa_secret: Option<String>,
    pub tfa_last_step: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    /// The two-factor mode in force. A pending enrolment is still off; a stored mode
    /// that cannot be read counts as the strictest one (fail closed).
    pub fn tfa_mode(&self) -> TfaMode {
        if self.tfa_pending != 0 {
            return TfaMode::Off;
        }
        self.tfa_mode.get().unwrap_or(TfaMode::AuthAndWrites)
    }
}

/// The stored 2FA mode: `NULL` is off, and only the two enabled modes are ever
/// written (`set_two_factor`), so any other text, `off` included, is unreadable.
impl From<Option<String>> for Stored<TfaMode> {
    fn from(text: Option<String>) -> Self {
        let Some(text) = text else {
            return Stored::Known(TfaMode::Off);
        };
        match text.as_str() {
            "auth-only" => Stored::Known(TfaMode::AuthOnly),
            "auth-and-writes" => Stored::Known(TfaMode::AuthAndWrites),
            _ => Stored::Unreadable(text),
        }
    }
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("tfa_mode", &self.tfa_mode)
            .finish_non_exhaustive()
    }
}

/// Editable profile fields (`None` leaves a field unchanged; `Some(None)` clears it).
#[derive(Debug, Default, Clone)]
pub struct ProfileUpdate {
    pub email: Option<String>,
    pub fullname: Option<Option<String>>,
    pub homepage: Option<Option<String>>,
    pub twitter: Option<Option<String>>,
    pub github: Option<Option<String>>,
    pub freenode: Option<Option<String>>,
}

impl Store {
    /// Inserts a user and returns the row as committed (read back inside the
    /// transaction, so success is never reported for a row that was not saved).
    pub async fn insert_user(
        &self,
        name: &str,
        email: &str,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<UserRow> {
        self.writing(async {
            const SQL: &str = "INSERT INTO users (name, email, password_hash, created_at, updated_at) \
                VALUES ($1, $2, $3, $4, $4) RETURNING id, name, email, password_hash, fullname, \
                homepage, twitter, github, freenode, tfa_mode, tfa_pending, tfa_secret, tfa_last_step, \
                created_at, updated_at";
            let user = on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                let user = sqlx::query_as::<_, UserRow>(SQL)
                    .bind(name)
                    .bind(email)
                    .bind(password_hash)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(user)
            })?;
            Ok(user)
        })
        .await
    }

    pub async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRow>> {
        const SQL: &str = "SELECT id, name, email, password_hash, fullname, homepage, twitter, github, \
            freenode, tfa_mode, tfa_pending, tfa_secret, tfa_last_step, created_at, updated_at \
            FROM users WHERE name = $1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, UserRow>(SQL)
            .bind(name)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRow>> {
        const SQL: &str = "SELECT id, name, email, password_hash, fullname, homepage, twitter, github, \
            freenode, tfa_mode, tfa_pending, tfa_secret, tfa_last_step, created_at, updated_at \
            FROM users WHERE id = $1";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, UserRow>(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn update_profile(
        &self,
        grant: &AccountGrant<act::ChangeProfile>,
        u: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<()> {
        let id = grant.user_id();
        self.writing(async {
            // One statement; each field keeps its value unless a change flag is set.
            const SQL: &str = "UPDATE users SET \
            email = CASE WHEN $2 = 1 THEN $3 ELSE email END, \
            fullname = CASE WHEN $4 = 1 THEN $5 ELSE fullname END, \
            homepage = CASE WHEN $6 = 1 THEN $7 ELSE homepage END, \
            twitter = CASE WHEN $8 = 1 THEN $9 ELSE twitter END, \
            github = CASE WHEN $10 = 1 THEN $11 ELSE github END, \
            freenode = CASE WHEN $12 = 1 THEN $13 ELSE freenode END, \
            updated_at = $14 WHERE id = $1";
            let flag = |o: bool| if o { 1i64 } else { 0 };
            let opt = |o: &Option<Option<String>>| o.clone().flatten();
            execute_write!(
                self,
                sqlx::query(SQL)
                    .bind(id)
                    .bind(flag(u.email.is_some()))
                    .bind(u.email.clone().unwrap_or_default())
                    .bind(flag(u.fullname.is_some()))
                    .bind(opt(&u.fullname))
                    .bind(flag(u.homepage.is_some()))
                    .bind(opt(&u.homepage))
                    .bind(flag(u.twitter.is_some()))
                    .bind(opt(&u.twitter))
                    .bind(flag(u.github.is_some()))
                    .bind(opt(&u.github))
                    .bind(flag(u.freenode.is_some()))
                    .bind(opt(&u.freenode))
                    .bind(now)
            )?;
            Ok(())
        })
        .await
    }

    pub async fn set_password_hash(
        &self,
        grant: &AccountGrant<act::ChangeProfile>,
        hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        let id = grant.user_id();
        self.writing(async {
            const SQL: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
            execute_write!(self, sqlx::query(SQL).bind(id).bind(hash).bind(now))?;
            Ok(())
        })
        .await
    }

    /// Writes the whole two-factor state at once (enrol, confirm, switch, disable).
    pub async fn set_two_factor(
        &self,
        grant: &AccountGrant<act::ChangeTwoFactor>,
        mode: TfaMode,
        pending: bool,
        sealed_secret: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let id = grant.user_id();
        let mode = (mode != TfaMode::Off).then(|| mode.as_str());
        self.writing(async {
            const SQL: &str = "UPDATE users SET tfa_mode = $2, tfa_pending = $3, tfa_secret = $4, \
                           tfa_last_step = NULL, updated_at = $5 WHERE id = $1";
            execute_write!(
                self,
                sqlx::query(SQL)
                    .bind(id)
                    .bind(mode)
                    .bind(i64::from(pending))
                    .bind(sealed_secret)
                    .bind(now)
            )?;
            Ok(())
        })
        .await
    }

    /// Records `step` as the last accepted TOTP step if it is newer than the stored one.
    /// Returns false when the step was already used (a replay), atomically across
    /// instances.
    pub async fn claim_totp_step(&self, id: i64, step: i64) -> StoreResult<bool> {
        self.writing(async {
            const SQL: &str = "UPDATE users SET tfa_last_step = $2 \
                           WHERE id = $1 AND (tfa_last_step IS NULL OR tfa_last_step < $2)";
            let done = execute_write!(self, sqlx::query(SQL).bind(id).bind(step))?;
            Ok(done == 1)
        })
        .await
    }

    /// Replaces the user's recovery codes with new hashes.
    pub async fn replace_recovery_codes(
        &self,
        grant: &AccountGrant<act::ChangeTwoFactor>,
        hashes: &[[u8; 32]],
    ) -> StoreResult<()> {
        let id = grant.user_id();
        self.writing(async {
            on_pool!(self, |p| {
                let mut tx = p.begin_write().await?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for h in hashes {
                    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                        .bind(id)
                        .bind(h.to_vec())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            })?;
            Ok(())
        })
        .await
    }

    /// Marks a recovery code used; true if it existed and was unused.
    pub async fn consume_recovery_code(
        &self,
        id: i64,
        hash: &[u8; 32],
        now: i64,
    ) -> StoreResult<bool> {
        self.writing(async {
            const SQL: &str = "UPDATE recovery_codes SET used_at = $3 \
                           WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
            let done = execute_write!(
                self,
                sqlx::query(SQL).bind(id).bind(hash.to_vec()).bind(now)
            )?;
            Ok(done == 1)
        })
        .await
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM users"
        )
        .fetch_one(p)
        .await)?)
    }
}

impl Store {
    /// Changes the 2FA mode of an enabled account, keeping its secret and last step.
    pub async fn set_mode_keep_secret(
        &self,
        grant: &AccountGrant<act::ChangeTwoFactor>,
        mode: TfaMode,
        sealed_secret: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let id = grant.user_id();
        let mode = mode.as_str();
        self.writing(async {
        const SQL: &str = "UPDATE users SET tfa_mode = $2, tfa_secret = COALESCE($3, tfa_secret), updated_at = $4 WHERE id = $1";
        execute_write!(self, sqlx::query(SQL)
            .bind(id)
            .bind(mode)
            .bind(sealed_secret)
            .bind(now))?;
        Ok(())
        }).await
    }
}

impl Store {
    /// How many of the user's recovery codes are still unused.
    pub async fn unused_recovery_codes(&self, id: i64) -> StoreResult<i64> {
        const SQL: &str =
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";
        Ok(on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(id)
            .fetch_one(p)
            .await)?)
    }
}
