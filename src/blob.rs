//! Tarball storage by content key (the sha512 hex of the bytes), so a retried write
//! is idempotent, behind one small interface with two backends:
//!
//! - a local folder (default): write to a temporary file, fsync, rename into place —
//!   a crash never leaves a partial blob under a real key;
//! - S3-compatible object storage (`s3://bucket[/prefix]`) through `object_store`.
//!
//! Downloads are streamed on both backends; small blobs that were served recently are
//! kept in memory (`HotBlobs`): a key names its content, so an entry never goes stale.
//!
//! Garbage collection runs beside serving instances, so ages matter: writing a blob
//! that already exists refreshes its modification time (touch on the folder, a new
//! PUT on S3), `list` reports each blob's age, and `delete_if_older` re-checks the age
//! right before deleting. Temporary files live in `<folder>/tmp`; a failed write
//! removes its own, and `sweep_temporary` removes those an interrupted process left.

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{BlobConfig, ExposeSecret, S3Config};

/// Blobs up to this size are read in one piece; larger ones are streamed.
const SMALL_BLOB: u64 = 4 * 1024 * 1024;

/// Blobs up to this size are kept in memory once served…
const HOT_BLOB_MAX: u64 = 256 * 1024;
/// …up to this many bytes in all (then the set starts afresh).
const HOT_TOTAL_MAX: usize = 16 * 1024 * 1024;

/// Recently served small blobs by key.
#[derive(Default)]
struct HotBlobs {
    inner: std::sync::RwLock<(usize, std::collections::HashMap<String, Bytes>)>,
}

impl HotBlobs {
    fn get(&self, key: &str) -> Option<Bytes> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.1.get(key).cloned()
    }

    fn put(&self, key: &str, bytes: &Bytes) {
        if bytes.len() as u64 > HOT_BLOB_MAX {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.0 + bytes.len() > HOT_TOTAL_MAX {
            *inner = Default::default();
        }
        if inner.1.insert(key.to_owned(), bytes.clone()).is_none() {
            inner.0 += bytes.len();
        }
    }

    fn remove(&self, key: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = inner.1.remove(key) {
            inner.0 -= b.len();
        }
    }
}

fn whole(bytes: Bytes) -> BlobStream {
    futures_util::stream::once(async move { Ok(bytes) }).boxed()
}

/// A local blob: read whole, or an open file to stream.
enum LocalBody {
    Whole(Bytes),
    File(std::fs::File),
}

/// Opens a local blob (blocking); `None` when absent.
fn open_local(path: &std::path::Path) -> std::io::Result<Option<(u64, LocalBody)>> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    if size > SMALL_BLOB {
        return Ok(Some((size, LocalBody::File(file))));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Some((
        bytes.len() as u64,
        LocalBody::Whole(Bytes::from(bytes)),
    )))
}

/// A stream of blob bytes.
pub type BlobStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The folder (under the blob root) that holds temporary files.
const TMP_DIR: &str = "tmp";

/// How old a temporary file is before start-up removes it, and the default grace
/// period of `tessera gc`: far longer than any write takes, so what is older than
/// this was abandoned.
pub const GRACE_PERIOD: Duration = Duration::from_secs(60 * 60);

/// Why a blob write failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The file system holding the blob folder has no space (or quota) left.
    #[error("the blob store is full: {0}")]
    Full(std::io::Error),
    #[error("blob store: {0:#}")]
    Other(anyhow::Error),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        if crate::disk::is_full(&e) {
            BlobError::Full(e)
        } else {
            BlobError::Other(e.into())
        }
    }
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        BlobError::Other(e.into())
    }
}

impl From<tokio::task::JoinError> for BlobError {
    fn from(e: tokio::task::JoinError) -> Self {
        BlobError::Other(e.into())
    }
}

/// A stored blob as a listing sees it.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub key: String,
    /// Last write (or refresh) of the blob.
    pub modified: SystemTime,
    pub size: u64,
}

/// A temporary file in `<root>/tmp`, removed when dropped unless it was renamed into
/// place: a failed or abandoned write never leaves its bytes behind. Its writer holds
/// an exclusive lock on it, so a sweep (whatever its grace period) skips it; a
/// killed writer's lock goes with its process.
struct TempFile {
    path: PathBuf,
    file: std::fs::File,
    placed: bool,
}

impl TempFile {
    fn create(root: &Path) -> std::io::Result<TempFile> {
        let path = root.join(TMP_DIR).join(format!(
            "{}.part",
            crate::crypto::token_format::random_base62(16)
        ));
        let file = std::fs::File::create(&path)?;
        file.lock()?;
        Ok(TempFile {
            path,
            file,
            placed: false,
        })
    }

    /// Writes and fsyncs `bytes`, then renames the file to `dest`.
    fn write_into_place(mut self, bytes: &[u8], dest: &Path) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(bytes)?;
        self.file.sync_all()?;
        std::fs::rename(&self.path, dest)?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Refreshes the modification time of an existing blob file; false when it is absent.
fn refresh_local(path: &Path) -> std::io::Result<bool> {
    match std::fs::File::open(path) {
        Ok(file) => {
            file.set_modified(SystemTime::now())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes a blob into the folder durably (temporary file, fsync, rename, fsync of
/// the directory). An existing blob is refreshed instead of rewritten (or rewritten
/// when its time cannot be set, e.g. another user owns the file: same bytes).
fn put_local(root: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Ok(true) = refresh_local(dest) {
        return Ok(());
    }
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match TempFile::create(root)?.write_into_place(bytes, dest) {
            Ok(()) => break,
            // A sweep took the file in the moment between its creation and its
            // lock: write it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// The modification time of a local file; `None` when absent.
fn local_modified(path: &Path) -> std::io::Result<Option<SystemTime>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.modified()?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Clone)]
enum Backend {
    Folder(PathBuf),
    S3 {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        bucket: String,
    },
}

/// Where blobs live.
#[derive(Clone)]
pub struct Blobs {
    backend: Backend,
    hot: Arc<HotBlobs>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Folder(p) => write!(f, "Blobs(folder {})", p.display()),
            Backend::S3 { bucket, prefix, .. } => write!(f, "Blobs(s3://{bucket}/{prefix})"),
        }
    }
}

fn valid_key(key: &str) -> bool {
    key.len() == 128
        && key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Blobs {
    /// Opens the configured backend.
    pub fn open(config: &BlobConfig) -> anyhow::Result<Blobs> {
        match config {
            BlobConfig::Folder(root) => Blobs::open_dir(root.clone()),
            BlobConfig::S3(s3) => Blobs::open_s3(s3),
        }
    }

    /// A folder-backed store, created if missing.
    pub fn open_dir(root: PathBuf) -> anyhow::Result<Blobs> {
        std::fs::create_dir_all(root.join(TMP_DIR))?;
        Ok(Blobs {
            backend: Backend::Folder(root),
            hot: Arc::default(),
        })
    }

    fn open_s3(s3: &S3Config) -> anyhow::Result<Blobs> {
        let mut builder =
            object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
        let endpoint = s3
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        } else if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(id) = &s3.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("invalid S3 blob store: {e}"))?;
        Ok(Blobs {
            backend: Backend::S3 {
                store: Arc::new(store),
                prefix: s3.prefix.clone(),
                bucket: s3.bucket.clone(),
            },
            hot: Arc::default(),
        })
    }

    fn object_path(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(format!("tarballs/{key}"))
        } else {
            ObjectPath::from(format!("{prefix}/tarballs/{key}"))
        }
    }

    fn file_path(root: &std::path::Path, key: &str) -> PathBuf {
        root.join(&key[..2]).join(key)
    }

    /// Stores `bytes` under `key` durably before returning. A blob that already
    /// exists is refreshed (its age starts again), so a garbage collection that listed
    /// it as old re-checks and keeps it.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        if !valid_key(key) {
            return Err(BlobError::Other(anyhow::anyhow!("invalid blob key")));
        }
        match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                let dest = Self::file_path(&root, key);
                tokio::task::spawn_blocking(move || put_local(&root, &dest, &bytes)).await??;
                Ok(())
            }
            Backend::S3 { store, prefix, .. } => {
                // A PUT of an existing object replaces it and renews `last_modified`.
                store
                    .put(&Self::object_path(prefix, key), PutPayload::from(bytes))
                    .await?;
                Ok(())
            }
        }
    }

    /// Makes sure the blob is stored: nothing to do when it is there, else it is
    /// written again from `bytes` (a garbage collection removed it meanwhile).
    pub async fn ensure(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        if self
            .modified(key)
            .await
            .map_err(BlobError::Other)?
            .is_some()
        {
            return Ok(());
        }
        tracing::warn!(
            key,
            "blob vanished before its version was committed; writing it again"
        );
        self.put(key, bytes).await
    }

    /// Streams a blob: its size and bytes; `None` when absent.
    pub async fn stream(&self, key: &str) -> anyhow::Result<Option<(u64, BlobStream)>> {
        if !valid_key(key) {
            return Ok(None);
        }
        if let Some(bytes) = self.hot.get(key) {
            return Ok(Some((bytes.len() as u64, whole(bytes))));
        }
        match &self.backend {
            Backend::Folder(root) => {
                // One blocking hop opens, sizes and (for the usual small tarball) reads
                // the file; large files are streamed in 64 KiB chunks.
                let path = Self::file_path(root, key);
                let opened = tokio::task::spawn_blocking(move || open_local(&path)).await??;
                Ok(opened.map(|(size, body)| match body {
                    LocalBody::Whole(bytes) => {
                        self.hot.put(key, &bytes);
                        (size, whole(bytes))
                    }
                    LocalBody::File(file) => {
                        let file = tokio::fs::File::from_std(file);
                        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
                        (size, stream.boxed())
                    }
                }))
            }
            Backend::S3 { store, prefix, .. } => {
                match store.get(&Self::object_path(prefix, key)).await {
                    Ok(result) => {
                        let size = result.meta.size;
                        if size <= HOT_BLOB_MAX {
                            let bytes = result.bytes().await?;
                            self.hot.put(key, &bytes);
                            return Ok(Some((size, whole(bytes))));
                        }
                        Ok(Some((size, result.into_stream().map_err(io_error).boxed())))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Reads a whole blob; `None` when absent.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let Some((size, mut stream)) = self.stream(key).await? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Some(Bytes::from(out)))
    }

    /// Deletes a blob (absent is fine).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        if !valid_key(key) {
            return Ok(());
        }
        self.hot.remove(key);
        match &self.backend {
            Backend::Folder(root) => match tokio::fs::remove_file(Self::file_path(root, key)).await
            {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::S3 { store, prefix, .. } => {
                match store.delete(&Self::object_path(prefix, key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// When the blob was last written or refreshed; `None` when absent.
    pub async fn modified(&self, key: &str) -> anyhow::Result<Option<SystemTime>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match &self.backend {
            Backend::Folder(root) => {
                let path = Self::file_path(root, key);
                Ok(tokio::task::spawn_blocking(move || local_modified(&path)).await??)
            }
            Backend::S3 { store, prefix, .. } => {
                match store.head(&Self::object_path(prefix, key)).await {
                    Ok(meta) => Ok(Some(meta.last_modified.into())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Deletes the blob only if it was last written before `cutoff`, checking its age
    /// right before the delete; true when it was deleted.
    pub async fn delete_if_older(&self, key: &str, cutoff: SystemTime) -> anyhow::Result<bool> {
        match self.modified(key).await? {
            Some(modified) if modified < cutoff => {
                self.delete(key).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Every stored blob with its age (for garbage collection and backups).
    pub async fn list(&self) -> anyhow::Result<Vec<StoredBlob>> {
        match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    let mut blobs = Vec::new();
                    for dir in std::fs::read_dir(&root)? {
                        let dir = dir?;
                        if dir.file_name() == TMP_DIR || !dir.file_type()?.is_dir() {
                            continue;
                        }
                        for f in std::fs::read_dir(dir.path())? {
                            let f = f?;
                            let key = f.file_name().to_string_lossy().into_owned();
                            if !valid_key(&key) {
                                continue;
                            }
                            // Deleted since the directory was read: not a blob any more.
                            let Ok(meta) = f.metadata() else { continue };
                            blobs.push(StoredBlob {
                                key,
                                modified: meta.modified()?,
                                size: meta.len(),
                            });
                        }
                    }
                    Ok(blobs)
                })
                .await?
            }
            Backend::S3 { store, prefix, .. } => {
                let base = if prefix.is_empty() {
                    "tarballs".to_owned()
                } else {
                    format!("{prefix}/tarballs")
                };
                let metas: Vec<_> = store
                    .list(Some(&ObjectPath::from(base)))
                    .try_collect()
                    .await?;
                Ok(metas
                    .into_iter()
                    .filter_map(|m| {
                        let key = m.location.filename()?.to_owned();
                        valid_key(&key).then(|| StoredBlob {
                            key,
                            modified: m.last_modified.into(),
                            size: m.size,
                        })
                    })
                    .collect())
            }
        }
    }

    /// Removes temporary files older than `age` that interrupted writes left behind;
    /// a write in progress holds a lock on its file and is never disturbed. Returns
    /// how many were removed. S3 writes leave no temporary objects.
    pub async fn sweep_temporary(&self, age: Duration) -> anyhow::Result<usize> {
        let Backend::Folder(root) = &self.backend else {
            return Ok(0);
        };
        let tmp = root.join(TMP_DIR);
        Ok(
            tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
                let cutoff = SystemTime::now()
                    .checked_sub(age)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let mut removed = 0;
                let entries = match std::fs::read_dir(&tmp) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let Ok(meta) = entry.metadata() else { continue };
                    if !meta.is_file() || meta.modified()? >= cutoff {
                        continue;
                    }
                    // A write in progress holds the lock: leave its file alone.
                    let Ok(file) = std::fs::File::open(entry.path()) else {
                        continue;
                    };
                    if file.try_lock().is_err() {
                        continue;
                    }
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(removed)
            })
            .await??,
        )
    }

    /// Whether the blob folder's file system is out of space: a small probe file is
    /// written and removed (S3 is never reported full).
    pub async fn is_full(&self) -> bool {
        let Backend::Folder(root) = &self.backend else {
            return false;
        };
        let tmp = root.join(TMP_DIR);
        let name = format!(
            "ready-{}.probe",
            crate::crypto::token_format::random_base62(8)
        );
        tokio::task::spawn_blocking(move || crate::disk::probe_full(&tmp, &name))
            .await
            .unwrap_or(false)
    }

    /// Whether the backend answers (readiness).
    pub async fn ready(&self) -> bool {
        match &self.backend {
            Backend::Folder(root) => tokio::fs::metadata(root).await.is_ok(),
            Backend::S3 { store, prefix, .. } => {
                let probe = if prefix.is_empty() {
                    "tarballs".to_owned()
                } else {
                    format!("{prefix}/tarballs")
                };
                store
                    .list_with_delimiter(Some(&ObjectPath::from(probe)))
                    .await
                    .is_ok()
            }
        }
    }
}
