//! Tarball storage by content key (the sha512 hex of the bytes), so a retried write
//! is idempotent, behind one small interface with two backends:
//!
//! - a local folder (default): write to a temporary file, fsync, rename into place —
//!   a crash never leaves a partial blob under a real key;
//! - S3-compatible object storage (`s3://bucket[/prefix]`) through `object_store`.
//!
//! Downloads are streamed on both backends; small blobs that were served recently are
//! kept in memory (`HotBlobs`): a key names its content, so an entry never goes stale.

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::PathBuf;
use std::sync::Arc;

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
        std::fs::create_dir_all(root.join("tmp"))?;
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

    /// Stores `bytes` under `key` durably before returning.
    pub async fn put(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        anyhow::ensure!(valid_key(key), "invalid blob key");
        match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                let dest = Self::file_path(&root, key);
                tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    use std::io::Write;
                    if dest.exists() {
                        return Ok(());
                    }
                    let dir = dest.parent().expect("blob paths have a parent");
                    std::fs::create_dir_all(dir)?;
                    let tmp = root
                        .join("tmp")
                        .join(format!("{}.part", crate::auth::token::random_base62(16)));
                    let mut file = std::fs::File::create(&tmp)?;
                    file.write_all(&bytes)?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, &dest)?;
                    std::fs::File::open(dir)?.sync_all()?;
                    Ok(())
                })
                .await?
            }
            Backend::S3 { store, prefix, .. } => {
                store
                    .put(&Self::object_path(prefix, key), PutPayload::from(bytes))
                    .await?;
                Ok(())
            }
        }
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

    /// Every stored key (for garbage collection).
    pub async fn list(&self) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    let mut keys = Vec::new();
                    for dir in std::fs::read_dir(&root)? {
                        let dir = dir?;
                        if dir.file_name() == "tmp" || !dir.file_type()?.is_dir() {
                            continue;
                        }
                        for f in std::fs::read_dir(dir.path())? {
                            let name = f?.file_name().to_string_lossy().into_owned();
                            if valid_key(&name) {
                                keys.push(name);
                            }
                        }
                    }
                    Ok(keys)
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
                    .filter_map(|m| m.location.filename().map(str::to_owned))
                    .filter(|k| valid_key(k))
                    .collect())
            }
        }
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
