//! `tessera backup DIR` and `tessera restore DIR` (operator commands; see
//! docs/backup.md). They take the same server settings as `serve`.
//!
//! A backup folder holds `manifest.json`, `server.key` (mode 0600), `blobs/ab/<key>`
//! (the blob folder layout; each file is named by the sha512 of its bytes) and, for
//! SQLite, `tessera.db`. The manifest is written last: a folder without one is an
//! unfinished backup, and `restore` refuses it.
//!
//! SQLite: the database is copied first (`Store::snapshot_into`, one consistent
//! view), then the blobs that copy refers to. Those were written before their versions
//! committed, so they exist unless an unpublish removed them after the copy was taken;
//! then no version in the live database refers to them any more, and the backup takes
//! a newer copy of the database and goes on (a few times at most). PostgreSQL: the
//! operator runs `pg_dump` first, then this command copies every stored blob (a
//! superset of what the dump refers to) and the server key.

use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::operator::ServerArgs;
use super::output::outln;
use crate::blob::Blobs;
use crate::config::Config;
use crate::store::{Dialect, SnapshotFacts, Store, TableCount};

const FORMAT: &str = "tessera-backup";
const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const DATABASE_FILE: &str = "tessera.db";
const KEY_FILE: &str = "server.key";
const BLOB_DIR: &str = "blobs";
/// Database copies a backup takes at most while unpublishes remove blobs under it.
const MAX_SNAPSHOTS: usize = 10;

/// `tessera backup DIR`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Folder to write the backup into (created if missing; must be empty).
    dir: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// `tessera restore DIR`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A folder written by `tessera backup`.
    dir: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Which database a backup came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl From<Dialect> for DatabaseKind {
    fn from(d: Dialect) -> Self {
        match d {
            Dialect::Sqlite => DatabaseKind::Sqlite,
            Dialect::Postgres => DatabaseKind::Postgres,
        }
    }
}

/// A file in the backup with its checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

/// A blob in the backup; its key is the sha512 of its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlobEntry {
    key: String,
    size: u64,
}

/// A blob a version refers to that the live store could not provide.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MissingBlob {
    key: String,
    reason: String,
}

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    /// RFC 3339, UTC.
    created_at: String,
    tessera_version: String,
    database: DatabaseKind,
    /// The SQLite database copy (absent for PostgreSQL: see docs/backup.md).
    database_file: Option<FileEntry>,
    server_key: FileEntry,
    /// Rows per table: of the copy (SQLite) or of the live database when the blobs
    /// were copied (PostgreSQL).
    counts: Vec<TableCount>,
    blobs: Vec<BlobEntry>,
    /// Blobs the database refers to that the live store lacked (already lost there).
    missing_blobs: Vec<MissingBlob>,
}

/// `tessera backup`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = args.server.resolve()?;
    anyhow::ensure!(
        config.server_key_file.exists(),
        "no server key at {}: is this the registry's data directory? (--data-dir, \
         --server-key-file)",
        config.server_key_file.display()
    );
    if let Some(file) = crate::store::sqlite_file(&config.database_url) {
        anyhow::ensure!(
            file.exists(),
            "no database at {}: is this the registry's data directory? (--data-dir)",
            file.display()
        );
    }
    prepare_empty_dir(&args.dir, "a backup")?;
    let store = Store::connect(&config.database_url).await?;
    let blobs = Blobs::open(&config.blobs)?;
    let result = write_backup(&config, &store, &blobs, &args.dir).await;
    store.close().await;
    let (manifest, copies) = result?;
    let bytes: u64 = manifest.blobs.iter().map(|b| b.size).sum();
    outln!(
        "backup written to {}: {} database, {} blob(s) ({:.1} MiB), server key; {:.1} s",
        args.dir.display(),
        match manifest.database {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "no (PostgreSQL: use pg_dump)",
        },
        manifest.blobs.len(),
        bytes as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    )?;
    if copies > 1 {
        outln!(
            "  took {copies} copies of the database: unpublishes removed blobs of the earlier ones"
        )?;
    }
    for table in &manifest.counts {
        outln!("  {:<16} {} row(s)", table.table, table.rows)?;
    }
    for missing in &manifest.missing_blobs {
        eprintln!(
            "warning: blob {} is not in the backup: {}",
            missing.key, missing.reason
        );
    }
    Ok(())
}

/// Writes the backup; returns its manifest and how many database copies it took.
async fn write_backup(
    config: &Config,
    store: &Store,
    blobs: &Blobs,
    dir: &Path,
) -> anyhow::Result<(Manifest, usize)> {
    let blob_dir = dir.join(BLOB_DIR);
    std::fs::create_dir_all(&blob_dir)?;
    let mut copied: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing = Vec::new();
    let kind = DatabaseKind::from(store.dialect());
    let mut copies = 0;
    let (facts, database_file) = match kind {
        DatabaseKind::Sqlite => {
            // The bulk first: every blob stored now. Whatever a version refers to
            // when the database is copied right after is among these, unless it was
            // written in between (copied next).
            for blob in blobs.list().await? {
                if let Copied::Bytes(size) = copy_blob(blobs, &blob.key, &blob_dir).await? {
                    copied.insert(blob.key, size);
                }
            }
            let db_path = dir.join(DATABASE_FILE);
            let facts = loop {
                copies += 1;
                store.snapshot_into(&db_path).await?;
                let snapshot = Store::open_snapshot(&db_path).await?;
                let facts = snapshot.facts().await;
                snapshot.close().await;
                let facts = facts?;
                let (lost, unpublished) =
                    copy_referenced(store, blobs, &facts, &blob_dir, &mut copied).await?;
                if !unpublished {
                    missing = lost;
                    break facts;
                }
                anyhow::ensure!(
                    copies < MAX_SNAPSHOTS,
                    "blobs kept disappearing while the backup ran (unpublishes); run it again"
                );
                std::fs::remove_file(&db_path)?;
            };
            // Orphans, and blobs of versions unpublished before the final copy.
            let wanted: std::collections::HashSet<&String> = facts.blob_keys.iter().collect();
            let extra: Vec<String> = copied
                .keys()
                .filter(|k| !wanted.contains(k))
                .cloned()
                .collect();
            for key in extra {
                std::fs::remove_file(blob_file(&blob_dir, &key))?;
                copied.remove(&key);
            }
            let entry = file_entry(dir, DATABASE_FILE)?;
            (facts, Some(entry))
        }
        DatabaseKind::Postgres => {
            // The dump was taken before this: every blob it refers to is stored now,
            // unless an unpublish removed it since. Copy everything stored.
            let facts = store.facts().await?;
            let mut corrupt = std::collections::HashMap::new();
            for blob in blobs.list().await? {
                match copy_blob(blobs, &blob.key, &blob_dir).await? {
                    Copied::Bytes(size) => {
                        copied.insert(blob.key, size);
                    }
                    Copied::Absent => {}
                    Copied::Corrupt(reason) => {
                        corrupt.insert(blob.key, reason);
                    }
                }
            }
            for key in &facts.blob_keys {
                if !copied.contains_key(key) {
                    missing.push(MissingBlob {
                        key: key.clone(),
                        reason: corrupt.remove(key).unwrap_or_else(|| ABSENT.into()),
                    });
                }
            }
            (facts, None)
        }
    };
    let key_bytes = std::fs::read(&config.server_key_file)?;
    write_private(&dir.join(KEY_FILE), &key_bytes)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        tessera_version: env!("CARGO_PKG_VERSION").into(),
        database: kind,
        database_file,
        server_key: file_entry(dir, KEY_FILE)?,
        counts: facts.counts,
        blobs: copied
            .into_iter()
            .map(|(key, size)| BlobEntry { key, size })
            .collect(),
        missing_blobs: missing,
    };
    sync_tree(dir)?;
    let text = serde_json::to_vec_pretty(&manifest)?;
    let tmp = dir.join(format!("{MANIFEST}.part"));
    write_synced(&tmp, &text)?;
    std::fs::rename(&tmp, dir.join(MANIFEST))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok((manifest, copies))
}

/// Copies the blobs `facts` refers to that are not copied yet. Returns the blobs
/// lost in the live store (still referenced there, yet absent) and whether any
/// vanished because an unpublish removed its version after the snapshot.
async fn copy_referenced(
    store: &Store,
    blobs: &Blobs,
    facts: &SnapshotFacts,
    blob_dir: &Path,
    copied: &mut BTreeMap<String, u64>,
) -> anyhow::Result<(Vec<MissingBlob>, bool)> {
    let mut lost = Vec::new();
    let mut unpublished = false;
    for key in &facts.blob_keys {
        if copied.contains_key(key) {
            continue;
        }
        match copy_blob(blobs, key, blob_dir).await? {
            Copied::Bytes(size) => {
                copied.insert(key.clone(), size);
            }
            Copied::Corrupt(reason) => lost.push(MissingBlob {
                key: key.clone(),
                reason,
            }),
            Copied::Absent if store.blob_in_use(key).await? => lost.push(MissingBlob {
                key: key.clone(),
                reason: ABSENT.into(),
            }),
            Copied::Absent => unpublished = true,
        }
    }
    Ok((lost, unpublished))
}

const ABSENT: &str = "referenced by a version but absent from the blob store";

/// What copying one blob found.
enum Copied {
    Bytes(u64),
    Absent,
    /// Its bytes do not match its key (nothing is kept).
    Corrupt(String),
}

/// Streams one blob into the backup, checking that its bytes match its key.
async fn copy_blob(blobs: &Blobs, key: &str, blob_dir: &Path) -> anyhow::Result<Copied> {
    use futures_util::StreamExt;
    let Some((_, mut stream)) = blobs.stream(key).await? else {
        return Ok(Copied::Absent);
    };
    let path = blob_file(blob_dir, key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create(&path)?;
    let mut hasher = sha2::Sha512::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        size += chunk.len() as u64;
    }
    file.sync_all()?;
    let actual = hex::encode(hasher.finalize());
    if actual != key {
        std::fs::remove_file(&path)?;
        return Ok(Copied::Corrupt(format!(
            "corrupted in the blob store: its bytes hash to {actual}"
        )));
    }
    Ok(Copied::Bytes(size))
}

fn blob_file(blob_dir: &Path, key: &str) -> PathBuf {
    blob_dir.join(&key[..2]).join(key)
}

/// Size and sha256 of `dir/name`.
fn file_entry(dir: &Path, name: &str) -> anyhow::Result<FileEntry> {
    let (size, sha256) = sha256_of(&dir.join(name))?;
    Ok(FileEntry {
        path: name.into(),
        size,
        sha256,
    })
}

fn sha256_of(path: &Path) -> anyhow::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Creates `dir` or accepts it empty; anything in it is refused.
fn prepare_empty_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: {what} goes into an empty folder",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)?,
        Err(e) => anyhow::bail!("cannot read {}: {e}", dir.display()),
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Writes a new file readable by its owner only (the server key).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Fsyncs every directory under `dir` (the files were synced when written).
fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// `tessera restore`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let manifest = read_manifest(&args.dir)?;
    let config = args.server.resolve()?;
    // Everything is checked before anything is written.
    let key_path = args.dir.join(KEY_FILE);
    verify_file(&key_path, &manifest.server_key)?;
    let sqlite_target = crate::store::sqlite_file(&config.database_url);
    match (manifest.database, &sqlite_target) {
        (DatabaseKind::Sqlite, None) => anyhow::bail!(
            "this backup holds an SQLite database: restore it with an SQLite --database-url \
             (then move it with `tessera migrate-store` if you like)"
        ),
        (DatabaseKind::Postgres, Some(_)) => anyhow::bail!(
            "this backup comes from PostgreSQL: restore the pg_dump file with pg_restore, then \
             run restore with that --database-url (see docs/backup.md)"
        ),
        _ => {}
    }
    if let Some(entry) = &manifest.database_file {
        verify_file(&args.dir.join(DATABASE_FILE), entry)?;
    }
    prepare_empty_dir(&config.data_dir, "a restore")?;
    anyhow::ensure!(
        !config.server_key_file.exists(),
        "{} exists: restore writes a new server key file",
        config.server_key_file.display()
    );
    if let Some(target) = &sqlite_target {
        anyhow::ensure!(
            !target.exists(),
            "{} exists: restore into a new database file",
            target.display()
        );
    }

    let written = restore_files(&args.dir, &manifest, &config, sqlite_target.as_deref()).await;
    if let Err(e) = written {
        anyhow::bail!(
            "{e:#}\nthe restore stopped half-way: empty {} (and the blob store) before trying again",
            config.data_dir.display()
        );
    }
    let blobs = Blobs::open(&config.blobs)?;
    let store = Store::connect(&config.database_url).await?;
    let checked = check_restored(&manifest, &store, &blobs).await;
    store.close().await;
    let (facts, unbacked) = checked?;
    outln!(
        "restored {} blob(s), the server key{} into {}; {:.1} s",
        manifest.blobs.len(),
        if manifest.database == DatabaseKind::Sqlite {
            " and the SQLite database"
        } else {
            ""
        },
        config.data_dir.display(),
        started.elapsed().as_secs_f64()
    )?;
    for table in &facts.counts {
        outln!("  {:<16} {} row(s)", table.table, table.rows)?;
    }
    if !unbacked.is_empty() {
        eprintln!(
            "warning: {} version(s) have no tarball in this backup (lost in the live registry \
             already, or unpublished between pg_dump and tessera backup); unpublish them: {}",
            unbacked.len(),
            unbacked.join(", ")
        );
    }
    Ok(())
}

/// Checks the restored database against the manifest and the blob store. Returns
/// the database's facts and the versions (`name@version`) whose tarball is absent
/// for a reason the backup already knew: lost in the live registry, or (PostgreSQL)
/// unpublished between the dump and the blob copy. Any other absent tarball fails.
async fn check_restored(
    manifest: &Manifest,
    store: &Store,
    blobs: &Blobs,
) -> anyhow::Result<(SnapshotFacts, Vec<String>)> {
    let facts = store.facts().await?;
    if manifest.database == DatabaseKind::Sqlite {
        for expected in &manifest.counts {
            let rows = facts
                .counts
                .iter()
                .find(|t| t.table == expected.table)
                .map(|t| t.rows);
            anyhow::ensure!(
                rows == Some(expected.rows),
                "the restored database has {rows:?} row(s) in {}, the manifest says {}",
                expected.table,
                expected.rows
            );
        }
    } else if facts.counts.iter().all(|t| t.rows == 0) {
        anyhow::bail!(
            "the database is empty: restore the pg_dump file with pg_restore first (see docs/backup.md)"
        );
    }
    let known_lost: std::collections::HashSet<&str> = manifest
        .missing_blobs
        .iter()
        .map(|m| m.key.as_str())
        .collect();
    let mut unbacked = Vec::new();
    let mut unexplained = Vec::new();
    for key in &facts.blob_keys {
        if blobs.modified(key).await?.is_some() {
            continue;
        }
        if manifest.database == DatabaseKind::Postgres || known_lost.contains(key.as_str()) {
            unbacked.extend(store.versions_using_blob(key).await?);
        } else {
            unexplained.push(key.clone());
        }
    }
    anyhow::ensure!(
        unexplained.is_empty(),
        "{} blob(s) that versions refer to are missing from the restored blob store: {}",
        unexplained.len(),
        unexplained.join(", ")
    );
    Ok((facts, unbacked))
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e} (a folder without a manifest is not a finished backup)",
            path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a backup manifest: {e}", path.display()))?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "{} is not a Tessera backup manifest",
        path.display()
    );
    anyhow::ensure!(
        manifest.format_version == FORMAT_VERSION,
        "backup format {} is not supported (this tessera reads format {FORMAT_VERSION})",
        manifest.format_version
    );
    // Files are read from their fixed names; a manifest naming others is not ours.
    let names_ok = manifest.server_key.path == KEY_FILE
        && manifest
            .database_file
            .as_ref()
            .is_none_or(|f| f.path == DATABASE_FILE);
    anyhow::ensure!(
        names_ok,
        "{} names files this version does not write",
        path.display()
    );
    Ok(manifest)
}

fn verify_file(path: &Path, entry: &FileEntry) -> anyhow::Result<()> {
    let (size, sha256) =
        sha256_of(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e:#}", path.display()))?;
    anyhow::ensure!(
        size == entry.size && sha256 == entry.sha256,
        "{} does not match its checksum in the manifest: the backup is damaged",
        path.display()
    );
    Ok(())
}

/// Copies the server key, every blob (each checked against its key) and the SQLite
/// database (last, so a half-done restore has no database to start on).
async fn restore_files(
    dir: &Path,
    manifest: &Manifest,
    config: &Config,
    sqlite_target: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(parent) = config.server_key_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(&config.server_key_file, &std::fs::read(dir.join(KEY_FILE))?)?;
    let blobs = Blobs::open(&config.blobs)?;
    let blob_dir = dir.join(BLOB_DIR);
    for entry in &manifest.blobs {
        anyhow::ensure!(
            entry.key.len() == 128 && entry.key.bytes().all(|b| b.is_ascii_hexdigit()),
            "the manifest names an invalid blob key {:?}",
            entry.key
        );
        let path = blob_file(&blob_dir, &entry.key);
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let actual = hex::encode(sha2::Sha512::digest(&bytes));
        anyhow::ensure!(
            bytes.len() as u64 == entry.size && actual == entry.key,
            "{} does not match its checksum: the backup is damaged",
            path.display()
        );
        blobs.put(&entry.key, bytes.into()).await?;
    }
    if let (Some(_), Some(target)) = (&manifest.database_file, sqlite_target) {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut partial = target.as_os_str().to_owned();
        partial.push(".restoring");
        let partial = PathBuf::from(partial);
        std::fs::copy(dir.join(DATABASE_FILE), &partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, target)?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}
