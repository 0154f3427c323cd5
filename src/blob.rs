//! Tarball storage by content key (the sha512 hex of the bytes), so a retried write
//! is idempotent. The local-folder backend writes to a temporary file, fsyncs it and
//! renames it into place: a crash never leaves a partial blob under a real key.

use bytes::Bytes;
use std::path::PathBuf;

/// Where blobs live.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

fn valid_key(key: &str) -> bool {
    key.len() == 128
        && key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Blobs {
    /// A folder-backed store, created if missing.
    pub fn open_dir(root: PathBuf) -> anyhow::Result<Blobs> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Blobs { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(&key[..2]).join(key)
    }

    /// Stores `bytes` under `key` durably before returning.
    pub async fn put(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        anyhow::ensure!(valid_key(key), "invalid blob key");
        let root = self.root.clone();
        let dest = self.path(key);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            use std::io::Write;
            if dest.exists() {
                return Ok(());
            }
            let dir = dest.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            let tmp = root.join("tmp").join(format!(
                "{}.{}",
                crate::auth::token::random_base62(12),
                "part"
            ));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        })
        .await?
    }

    /// Reads a blob; `None` when absent.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        if !valid_key(key) {
            return Ok(());
        }
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Every stored key (for garbage collection).
    pub async fn list(&self) -> anyhow::Result<Vec<String>> {
        let root = self.root.clone();
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

    /// Whether the backend is reachable (readiness).
    pub async fn ready(&self) -> bool {
        tokio::fs::metadata(&self.root).await.is_ok()
    }
}
