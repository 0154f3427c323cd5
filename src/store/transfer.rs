//! Copies every row from one store to another (`tessera migrate-store`), e.g. from
//! the embedded SQLite database to PostgreSQL. Ids are kept; PostgreSQL sequences
//! are moved past the copied ids. The target must be empty.

use sqlx::Row;

use super::{Pool, Store, StoreResult};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
}

use Kind::{Blob, Int, Text};

/// Tables in dependency order with their columns. `check_columns` fails the copy if
/// the source has a column this list lacks, so a new migration cannot be forgotten.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("password_hash", Text),
            ("fullname", Text),
            ("homepage", Text),
            ("twitter", Text),
            ("github", Text),
            ("freenode", Text),
            ("tfa_mode", Text),
            ("tfa_pending", Int),
            ("tfa_secret", Text),
            ("tfa_last_step", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "tokens",
        &[
            ("id", Int),
            ("key", Text),
            ("key_prefix", Text),
            ("user_id", Int),
            ("hash", Blob),
            ("display_prefix", Text),
            ("last_four", Text),
            ("name", Text),
            ("description", Text),
            ("kind", Text),
            ("limits", Text),
            ("cidr", Text),
            ("origin", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("expires_at", Int),
            ("last_used_at", Int),
            ("last_used_ip", Text),
            ("revoked_at", Int),
            ("rotated_from", Int),
            ("replaced_by", Int),
            ("revoked_reason", Text),
            ("trust_config_id", Text),
            ("oidc", Text),
        ],
    ),
    (
        "packages",
        &[
            ("id", Int),
            ("name", Text),
            ("scope", Text),
            ("access", Text),
            ("publish_requires_tfa", Int),
            ("automation_overrides_tfa", Int),
            ("rev", Int),
            ("description", Text),
            ("created_at", Int),
            ("modified_at", Int),
            ("keywords", Text),
            ("trusted_publishing_only", Int),
        ],
    ),
    (
        "versions",
        &[
            ("id", Int),
            ("package_id", Int),
            ("version", Text),
            ("version_key", Text),
            ("manifest", Text),
            ("readme", Text),
            ("blob_key", Text),
            ("size", Int),
            ("integrity", Text),
            ("shasum", Text),
            ("deprecated", Text),
            ("published_by", Int),
            ("published_at", Int),
            ("provenance", Text),
        ],
    ),
    (
        "dist_tags",
        &[("package_id", Int), ("tag", Text), ("version", Text)],
    ),
    ("maintainers", &[("package_id", Int), ("user_id", Int)]),
    (
        "stars",
        &[("package_id", Int), ("user_id", Int), ("created_at", Int)],
    ),
    (
        "version_history",
        &[
            ("name", Text),
            ("version_key", Text),
            ("version", Text),
            ("published_at", Int),
        ],
    ),
    (
        "package_tombstones",
        &[
            ("name", Text),
            ("deleted_at", Int),
            ("former_maintainers", Text),
        ],
    ),
    ("scopes", &[("name", Text), ("owner_id", Int)]),
    (
        "trust_configs",
        &[
            ("id", Text),
            ("package_id", Int),
            ("kind", Text),
            ("issuer", Text),
            ("claims", Text),
            ("permissions", Text),
            ("created_by", Int),
            ("created_at", Int),
        ],
    ),
    (
        "oidc_token_ids",
        &[("issuer", Text), ("jti", Text), ("expires_at", Int)],
    ),
    (
        "staged_versions",
        &[
            ("id", Text),
            ("package_id", Int),
            ("version", Text),
            ("tag", Text),
            ("manifest", Text),
            ("readme", Text),
            ("blob_key", Text),
            ("size", Int),
            ("integrity", Text),
            ("shasum", Text),
            ("staged_by", Int),
            ("actor", Text),
            ("actor_type", Text),
            ("created_at", Int),
            ("provenance", Text),
        ],
    ),
    (
        "recovery_codes",
        &[
            ("id", Int),
            ("user_id", Int),
            ("code_hash", Blob),
            ("used_at", Int),
        ],
    ),
    (
        "security_events",
        &[
            ("id", Int),
            ("user_id", Int),
            ("kind", Text),
            ("detail", Text),
            ("ip", Text),
            ("created_at", Int),
        ],
    ),
    (
        "sessions",
        &[
            ("id_hash", Blob),
            ("user_id", Int),
            ("csrf", Text),
            ("pending_otp", Int),
            ("created_at", Int),
            ("last_seen_at", Int),
        ],
    ),
    (
        "signing_keys",
        &[
            ("id", Int),
            ("keyid", Text),
            ("public_key", Text),
            ("sealed_secret", Text),
            ("active", Int),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
];

/// Tables whose `id` comes from a sequence on PostgreSQL.
const SERIAL_TABLES: &[&str] = &[
    "users",
    "tokens",
    "packages",
    "versions",
    "recovery_codes",
    "security_events",
    "signing_keys",
];

enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// Every table, in dependency order (for backup manifests).
pub(super) fn table_names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(table, _)| *table)
}

/// Rows copied per table.
pub type CopyReport = Vec<(String, u64)>;

impl Store {
    async fn column_names(&self, table: &str) -> StoreResult<Vec<String>> {
        // DIALECT: schema introspection differs.
        Ok(match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                    .bind(table)
                    .fetch_all(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(table)
                .fetch_all(p)
                .await?
            }
        })
    }

    async fn read_table(
        &self,
        table: &str,
        columns: &[(&str, Kind)],
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let list: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let sql = format!("SELECT {} FROM {table}", list.join(", "));
        macro_rules! decode {
            ($rows:expr) => {
                $rows
                    .iter()
                    .map(|row| {
                        columns
                            .iter()
                            .map(|(name, kind)| {
                                Ok(match kind {
                                    Int => Cell::Int(row.try_get(*name)?),
                                    Text => Cell::Text(row.try_get(*name)?),
                                    Blob => Cell::Blob(row.try_get(*name)?),
                                })
                            })
                            .collect::<Result<Vec<Cell>, sqlx::Error>>()
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            };
        }
        Ok(match &self.pool {
            Pool::Sqlite(p) => decode!(sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?),
            Pool::Postgres(p) => decode!(sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?),
        })
    }

    async fn write_rows(
        &self,
        table: &str,
        columns: &[(&str, Kind)],
        rows: Vec<Vec<Cell>>,
    ) -> StoreResult<u64> {
        let list: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            list.join(", "),
            params.join(", ")
        );
        let mut count = 0;
        super::on_pool!(self, |p| {
            use super::BeginWrite;
            let mut tx = p.begin_write().await?;
            for row in rows {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for cell in row {
                    q = match cell {
                        Cell::Int(v) => q.bind(v),
                        Cell::Text(v) => q.bind(v),
                        Cell::Blob(v) => q.bind(v),
                    };
                }
                q.execute(&mut *tx).await?;
                count += 1;
            }
            tx.commit().await?;
        });
        Ok(count)
    }

    /// Copies every table of `self` into the empty store `target`.
    pub async fn copy_into(&self, target: &Store) -> anyhow::Result<CopyReport> {
        for (table, columns) in TABLES {
            let have = self.column_names(table).await?;
            for c in &have {
                anyhow::ensure!(
                    columns.iter().any(|(n, _)| n == c),
                    "migrate-store does not know column {table}.{c}"
                );
            }
            let existing: i64 = super::on_pool!(target, |p| sqlx::query_scalar(
                sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"))
            )
            .fetch_one(p)
            .await)?;
            anyhow::ensure!(
                existing == 0,
                "the target already has rows in {table}; migrate into an empty database"
            );
        }
        let mut report = Vec::new();
        for (table, columns) in TABLES {
            let rows = self.read_table(table, columns).await?;
            let n = target.write_rows(table, columns, rows).await?;
            report.push(((*table).to_owned(), n));
        }
        if let Pool::Postgres(p) = &target.pool {
            // DIALECT: move sequences past the copied ids.
            for table in SERIAL_TABLES {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
        }
        Ok(report)
    }
}
