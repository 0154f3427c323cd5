//! `App`: the state every request shares (config, store, blobs, clock, keys, caches).
//! Built once by `App::open`, used by `main`, the operator commands and every test.

use std::sync::Arc;

use crate::blob::Blobs;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::server_key::ServerKey;
use crate::crypto::token_format::TokenHashKey;
use crate::domain::packument_cache::PackumentCache;
use crate::domain::usage::UsageRecorder;
use crate::store::Store;

/// Keys derived from the server key. `Debug` prints none of them.
#[derive(Clone)]
pub struct Keys {
    pub token_hash: TokenHashKey,
    pub totp: [u8; 32],
    pub lookup: TokenHashKey,
    /// Seals the registry's signing keys in the database.
    pub signing: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// Shared application state.
#[derive(Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub blobs: Blobs,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    /// Base URL of tarball links and login URLs, without trailing slash.
    pub public_url: String,
    pub packuments: PackumentCache,
    /// Uplink clients and the rendered proxied packuments.
    pub proxy: crate::domain::proxy::Proxy,
    pub usage: UsageRecorder,
    pub metrics: crate::metrics::Metrics,
    /// Bounded Argon2 work for password checks.
    pub hashing: crate::domain::credentials::Hashing,
    /// One permit per publish whose body is being read and processed
    /// (`max_concurrent_publishes`): bounds the memory publishes use.
    pub publish_slots: tokio::sync::Semaphore,
    /// Held while serving an embedded database (see `server::bind`).
    pub serve_lock: std::sync::OnceLock<std::fs::File>,
    /// Signing keys of the trusted OpenID Connect issuers (trusted publishing).
    pub oidc_keys: crate::domain::trust::keys::IssuerKeys,
}

/// Loads the server key from its file, creating it (mode 0600) on first start. Every
/// error names the file.
pub fn load_or_create_server_key(config: &Config) -> anyhow::Result<ServerKey> {
    let path = &config.server_key_file;
    let named = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "{} {}: {e}",
            crate::config::setting("server_key_file"),
            path.display()
        )
    };
    let parse = |text: &str| {
        ServerKey::from_hex(text).map_err(|e| {
            named(&format_args!(
                "not a server key ({e}); it must hold 64 hex characters"
            ))
        })
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| named(&format_args!("cannot create its folder: {e}")))?;
            }
            let key = ServerKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(key.to_hex().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| named(&format_args!("cannot write it: {e}")))?;
                    Ok(key)
                }
                // Another instance created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    parse(&std::fs::read_to_string(path).map_err(|e| named(&e))?)
                }
                Err(e) => Err(named(&format_args!("cannot create it: {e}"))),
            }
        }
        Err(e) => Err(named(&format_args!("cannot read it: {e}"))),
    }
}

impl App {
    /// Opens the store (running migrations), blobs and keys. `public_url` is the base
    /// for links when the config does not name one.
    pub async fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        public_url: String,
    ) -> anyhow::Result<Arc<App>> {
        crate::config::ensure_dir("data_dir", &config.data_dir)?;
        let key = load_or_create_server_key(&config)?;
        let store = Store::connect(&config.database_url).await.map_err(|e| {
            anyhow::anyhow!(
                "{} {}: cannot open the database: {e:#}",
                crate::config::setting("database_url"),
                crate::config::redact_url(&config.database_url)
            )
        })?;
        if let crate::config::BlobConfig::Folder(folder) = &config.blobs {
            crate::config::ensure_dir("blob_store", folder)?;
        }
        let blobs = Blobs::open(&config.blobs).map_err(|e| {
            anyhow::anyhow!(
                "{} {}: {e:#}",
                crate::config::setting("blob_store"),
                config.blobs.describe()
            )
        })?;
        let keys = Keys {
            token_hash: key.token_hash_key(),
            totp: key.totp_encryption_key(),
            lookup: key.lookup_hash_key(),
            signing: key.signing_encryption_key(),
        };
        let public_url = config.public_url.clone().unwrap_or(public_url);
        crate::domain::signing::ensure_key(&store, &keys.signing, clock.now_ms())
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the registry's signing key: {e}"))?;
        let usage = UsageRecorder::start(store.clone());
        let config_publishes = config.max_concurrent_publishes;
        let metrics = crate::metrics::Metrics::default();
        let proxy = crate::domain::proxy::Proxy::new(&config, &metrics)?;
        Ok(Arc::new(App {
            config: Arc::new(config),
            store,
            blobs,
            clock,
            keys,
            public_url,
            packuments: PackumentCache::default(),
            proxy,
            usage,
            metrics,
            hashing: crate::domain::credentials::Hashing::for_this_machine(),
            publish_slots: tokio::sync::Semaphore::new(config_publishes),
            serve_lock: std::sync::OnceLock::new(),
            oidc_keys: Default::default(),
        }))
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Flushes pending background writes and closes the database (clean shutdown).
    pub async fn shutdown(&self) {
        self.usage.flush().await;
        self.store.close().await;
    }
}
