//! Packages served from uplinks, behind the dependency-confusion shield.
//!
//! Where a name is served from (`source`): a name that is local in any way (a
//! package, any version ever published, a tombstone, or a scope owned here) is
//! local, whatever the uplinks have; otherwise the first matching route (or the
//! first uplink) decides. Proxied names pass the one access decision as public
//! packages (`access::authorize_proxied_read`).
//!
//! Packuments: kept in the database as the uplink sent them (with its ETag and
//! Last-Modified, shared by every instance) and rendered in memory; fresh for the
//! uplink's `max_age`, then refreshed with a conditional request; when the uplink
//! fails (down, past its timeout, 5xx, dropped connection) the cached document is
//! served stale, marked so the handler adds a `Warning` header, and the uplink is
//! left alone for `RETRY_AFTER_FAILURE_MS`. A refresh replaces the document: a
//! version the uplink no longer lists is no longer served.
//!
//! Tarballs: read whole from the uplink, checked against the integrity of the
//! uplink's packument before a byte reaches the client (a mismatch is refused,
//! logged and counted, never stored), then stored content-addressed in the blob
//! store and recorded, so later requests and other instances read them locally.
//!
//! Concurrent misses for one packument or tarball wait for one upstream request
//! (`KeyedLocks`).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

use super::access::{self, ProxyGrant, act};
use super::packument_cache::{CachedDoc, Rendition, http_date};
use super::{Caller, Error, Result, Target, package_facts};
use crate::app::App;
use crate::config::RouteChoice;
use crate::npm::integrity;
use crate::npm::name::PackageName;
use crate::npm::proxied::{self, ProxyDocError, UpstreamDist};
use crate::store::{CachedPackumentRow, CachedTarballRow};
use crate::uplink_client::{Fetched, UplinkClient};

/// After a failed refresh, stale documents are served without asking the uplink
/// again for this long (an install makes hundreds of requests; each would wait for
/// the timeout otherwise).
const RETRY_AFTER_FAILURE_MS: i64 = 10_000;

/// Rendered proxied documents kept in memory, in approximate bytes (quick_cache:
/// when full, the least useful entries go; a dropped one is rendered again from the
/// database row). 16 MiB holds the packuments of a few thousand packages in both
/// shapes, the working set of many installs, and keeps a proxy that has seen
/// 10,000 names under 70 MiB resident (`bench/proxy.sh`).
const MAX_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

/// Where a name is served from.
#[derive(Debug)]
pub enum Source {
    Local(Target),
    Proxied { uplink: usize, choice: RouteChoice },
}

/// A packument as served: rendered, and whether it is a stale copy (the name of the
/// uplink that failed).
#[derive(Debug, Clone)]
pub struct Served {
    pub doc: Arc<CachedDoc>,
    pub stale_from: Option<Arc<str>>,
    /// `Some(uplink name)` for a proxied package.
    pub uplink: Option<Arc<str>>,
}

/// One proxied package as rendered here.
#[derive(Debug)]
struct Entry {
    uplink: usize,
    fetched_at: i64,
    failed_at: Option<i64>,
    doc: Arc<CachedDoc>,
    /// Served versions → what the uplink says about their tarballs.
    dists: HashMap<String, UpstreamDist>,
    held_back: Vec<String>,
    min_age_ms: i64,
    /// When a held-back version becomes eligible (re-render then).
    valid_until: Option<i64>,
    size: usize,
    /// `x-tessera-source`'s uplink name, shared by every answer from this entry.
    uplink_name: Arc<str>,
}

/// An entry weighs its four bodies, its tarball table and its name.
#[derive(Debug, Clone, Copy)]
struct EntryWeight;

impl quick_cache::Weighter<String, Arc<Entry>> for EntryWeight {
    fn weight(&self, name: &String, e: &Arc<Entry>) -> u64 {
        let dists: usize = e
            .dists
            .iter()
            .map(|(v, d)| {
                v.len() + d.tarball.len() + d.integrity.as_ref().map_or(0, String::len) + 96
            })
            .sum();
        (name.len() + e.size + dists + 512) as u64
    }
}

/// Per-key async locks: one upstream request per missing packument or tarball.
#[derive(Debug, Default)]
struct KeyedLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    async fn lock(&self, key: String) -> KeyGuard<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        KeyGuard {
            locks: self,
            key,
            lock,
            guard: Some(guard),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else waits.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

/// The uplink clients and the in-memory side of the cache.
#[derive(Debug)]
pub struct Proxy {
    clients: Vec<UplinkClient>,
    /// Name → rendered document. An entry is used only for a name `source` found
    /// not local under the current generation (checked before every use), and only
    /// while fresh and before its cooldown cut-off moves (`usable`).
    docs: quick_cache::sync::Cache<String, Arc<Entry>, EntryWeight>,
    locks: KeyedLocks,
    /// Verified tarballs being stored in the background, by `name\0version`: served
    /// from here until their blob and row are written.
    storing: Arc<Storing>,
}

/// Tarballs fetched, verified and answered, whose blob and row are still being
/// written; bounded in bytes (past the bound a request stores before it answers).
#[derive(Debug, Default)]
struct Storing(std::sync::Mutex<Waiting>);

/// `name\0version` → (declared integrity, bytes), and their total size.
type Waiting = (HashMap<String, (String, Bytes)>, usize);

/// Most bytes of tarballs waiting to be stored in the background.
const MAX_STORING_BYTES: usize = 64 * 1024 * 1024;

impl Storing {
    /// The bytes of `key` if they are waiting to be stored with this integrity.
    fn get(&self, key: &str, integrity: &str) -> Option<Bytes> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.0
            .get(key)
            .filter(|(i, _)| i == integrity)
            .map(|(_, b)| b.clone())
    }

    /// Takes `bytes` for background storing; false when the bound is reached.
    fn insert(&self, key: &str, integrity: &str, bytes: &Bytes) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.1 + bytes.len() > MAX_STORING_BYTES || map.0.contains_key(key) {
            return false;
        }
        map.1 += bytes.len();
        map.0
            .insert(key.to_owned(), (integrity.to_owned(), bytes.clone()));
        true
    }

    fn remove(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b)) = map.0.remove(key) {
            map.1 -= b.len();
        }
    }
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            clients: Vec::new(),
            docs: quick_cache::sync::Cache::with_weighter(4096, MAX_MEMORY_BYTES, EntryWeight),
            locks: KeyedLocks::default(),
            storing: Arc::default(),
        }
    }
}

impl Proxy {
    pub fn new(
        config: &crate::config::Config,
        metrics: &crate::metrics::Metrics,
    ) -> anyhow::Result<Proxy> {
        let clients = config
            .uplinks
            .uplinks
            .iter()
            .map(|u| UplinkClient::new(u.clone(), metrics.uplink(&u.name)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Proxy {
            clients,
            ..Proxy::default()
        })
    }

    pub fn clients(&self) -> &[UplinkClient] {
        &self.clients
    }

    fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.docs.get(name)
    }

    fn put(&self, name: &str, entry: Arc<Entry>) {
        self.docs.insert(name.to_owned(), entry);
    }

    fn forget(&self, name: &str) {
        self.docs.remove(name);
    }
}

/// Decides where `name` is served from; see the module comment. For a name routed
/// to an uplink the shield is asked first: "not local" (which also means no package
/// row) comes from the read cache under the request's generation ticket, so a warm
/// proxied read makes no database read here, and the first request after anything
/// made the name local (on any instance) reads the tables again.
pub async fn source(app: &App, caller: Option<&Caller>, name: &PackageName) -> Result<Source> {
    if !app.config.uplinks.is_empty() {
        let choice = app.config.uplinks.route(name.as_str());
        if let Some(uplink) = choice.uplink
            && !app.store.name_is_local(name.as_str(), name.scope()).await?
        {
            return Ok(Source::Proxied { uplink, choice });
        }
    }
    Ok(Source::Local(package_facts(app, caller, name).await?))
}

/// The packument of `name`, local or proxied. `local_only` (reads made for a write
/// command: npm's publish pre-check, `?write=true`) never reaches an uplink: a
/// proxied name is then "not found here", so a write never acts on an uplink's
/// package.
pub async fn packument(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
    local_only: bool,
) -> Result<Served> {
    match source(app, caller, name).await? {
        Source::Proxied { uplink, .. } if local_only => {
            access::authorize_proxied_read(app, caller, name).await?;
            Err(Error::NotFound(format!(
                "package {name} is not published here (it is served from uplink {}; \
                 changes apply to local packages only)",
                app.proxy.clients[uplink].config.name
            )))
        }
        Source::Local(target) => {
            let grant = access::authorize::<act::ReadPackage>(app, caller, &target).await?;
            Ok(Served {
                doc: super::packages::render(app, &grant).await?,
                stale_from: None,
                uplink: None,
            })
        }
        Source::Proxied { uplink, choice } => {
            let grant = access::authorize_proxied_read(app, caller, name).await?;
            let (entry, stale) = proxied(app, &grant, uplink, &choice).await?;
            Ok(Served {
                doc: entry.doc.clone(),
                stale_from: stale.then(|| entry.uplink_name.clone()),
                uplink: Some(entry.uplink_name.clone()),
            })
        }
    }
}

fn usable(e: &Entry, uplink: usize, now: i64, min_age_ms: i64) -> bool {
    e.uplink == uplink && e.min_age_ms == min_age_ms && e.valid_until.is_none_or(|t| now < t)
}

/// The rendered proxied document, fetched or refreshed when needed; `true` when
/// it is a stale copy served because the uplink failed.
async fn proxied(
    app: &App,
    grant: &ProxyGrant,
    uplink: usize,
    choice: &RouteChoice,
) -> Result<(Arc<Entry>, bool)> {
    let name = grant.name().as_str();
    let proxy = &app.proxy;
    let client = &proxy.clients[uplink];
    let stats = client.stats();
    let min_age_ms = i64::try_from(choice.min_release_age.as_millis()).unwrap_or(i64::MAX);
    let max_age_ms = i64::try_from(client.config.max_age.as_millis()).unwrap_or(i64::MAX);
    let fresh = |e: &Entry, now: i64| now.saturating_sub(e.fetched_at) < max_age_ms;
    let now = app.now();
    if let Some(e) = proxy
        .get(name)
        .filter(|e| usable(e, uplink, now, min_age_ms))
    {
        if fresh(&e, now) {
            stats.hits.inc();
            return Ok((e, false));
        }
        if e.failed_at
            .is_some_and(|f| now.saturating_sub(f) < RETRY_AFTER_FAILURE_MS)
        {
            stats.stale_serves.inc();
            return Ok((e, true));
        }
    }
    let _single = proxy.locks.lock(format!("doc\0{name}")).await;
    let now = app.now();
    if let Some(e) = proxy
        .get(name)
        .filter(|e| usable(e, uplink, now, min_age_ms))
    {
        if fresh(&e, now) {
            stats.hits.inc();
            return Ok((e, false));
        }
        if e.failed_at
            .is_some_and(|f| now.saturating_sub(f) < RETRY_AFTER_FAILURE_MS)
        {
            stats.stale_serves.inc();
            return Ok((e, true));
        }
    }
    let uplink_name = client.config.name.as_str();
    let row = app
        .store
        .cached_packument(grant)
        .await?
        .filter(|r| r.uplink == uplink_name);
    if let Some(r) = row
        .as_ref()
        .filter(|r| now.saturating_sub(r.fetched_at) < max_age_ms)
    {
        // Another instance (or an earlier run) refreshed it.
        let e = build(app, name, uplink, r, min_age_ms, now, None).await?;
        stats.hits.inc();
        return Ok((e, false));
    }
    let etag = row.as_ref().and_then(|r| r.etag.as_deref());
    let modified = row.as_ref().and_then(|r| r.last_modified.as_deref());
    match client.packument(name, etag, modified).await {
        Ok(Fetched::Document {
            body,
            etag,
            last_modified,
        }) => {
            stats.misses.inc();
            let fetched = CachedPackumentRow {
                uplink: uplink_name.to_owned(),
                body: body.to_vec(),
                etag,
                last_modified,
                fetched_at: now,
            };
            let entry = build(app, name, uplink, &fetched, min_age_ms, now, None).await;
            if !matches!(&entry, Err(Error::Upstream(_))) {
                // The rendered copy is in memory for this instance's next requests; the
                // shared row is written off the request, since npm asks for packuments
                // one after another and a cold install waited for each write. A row
                // that fails to be written only means another fetch later.
                let (store, grant) = (app.store.clone(), grant.clone());
                tokio::spawn(async move {
                    if let Err(e) = store.put_cached_packument(&grant, &fetched).await {
                        tracing::warn!(package = %grant.name(), error = %e, "could not cache a proxied packument");
                    }
                });
            }
            entry.map(|e| (e, false))
        }
        Ok(Fetched::NotModified) => match row {
            Some(mut r) => {
                stats.hits.inc();
                app.store.touch_cached_packument(grant, now).await?;
                r.fetched_at = now;
                Ok((
                    build(app, name, uplink, &r, min_age_ms, now, None).await?,
                    false,
                ))
            }
            None => Err(Error::Upstream(format!(
                "uplink {uplink_name} answered 304 to an unconditional request for {name}"
            ))),
        },
        Ok(Fetched::NotFound) => {
            app.store.drop_cached_packument(grant).await?;
            proxy.forget(name);
            Err(Error::NotFound(format!(
                "package {name} not found (neither here nor on uplink {uplink_name})"
            )))
        }
        Err(err) => match row {
            Some(r) => {
                tracing::warn!(
                    uplink = uplink_name,
                    package = name,
                    error = %err,
                    "uplink failed; serving the cached packument (stale)"
                );
                stats.stale_serves.inc();
                let e = build(app, name, uplink, &r, min_age_ms, now, Some(now)).await?;
                Ok((e, true))
            }
            None => {
                tracing::warn!(uplink = uplink_name, package = name, error = %err, "uplink failed; nothing cached");
                Err(Error::Upstream(format!(
                    "uplink {uplink_name} failed for {name} ({err}) and no copy is cached here"
                )))
            }
        },
    }
}

/// Renders a cached upstream document and keeps it in memory.
async fn build(
    app: &App,
    name: &str,
    uplink: usize,
    row: &CachedPackumentRow,
    min_age_ms: i64,
    now: i64,
    failed_at: Option<i64>,
) -> Result<Arc<Entry>> {
    let uplink_name = app.proxy.clients[uplink].config.name.clone();
    let body = Bytes::from(row.body.clone());
    let base = app.public_url.clone();
    let owned_name = name.to_owned();
    let render = move || -> Result<(Entry, Vec<String>)> {
        let upstream: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Error::Upstream(format!(
                "uplink {uplink_name} sent a packument for {owned_name} that is not JSON ({e})"
            ))
        })?;
        let rendering = proxied::Rendering {
            name: &owned_name,
            base: &base,
            uplink: &uplink_name,
            now_ms: now,
            min_age_ms,
        };
        let p = proxied::render(&upstream, &rendering).map_err(|e| match e {
            ProxyDocError::Malformed(_) => Error::Upstream(format!("uplink {uplink_name}: {e}")),
            ProxyDocError::AllHeldBack(_) => Error::NotFound(e.to_string()),
        })?;
        let dists = p
            .full
            .get("versions")
            .and_then(serde_json::Value::as_object)
            .map(|vs| {
                vs.keys()
                    .filter_map(|v| proxied::upstream_dist(&upstream, v).map(|d| (v.clone(), d)))
                    .collect()
            })
            .unwrap_or_default();
        let json =
            |v: &serde_json::Value| serde_json::to_vec(v).map_err(|e| Error::Internal(e.into()));
        let full = Rendition::new(Bytes::from(json(&p.full)?));
        let abbreviated = Rendition::new(Bytes::from(json(&p.abbreviated)?));
        let size =
            full.body.len() + full.gzip.len() + abbreviated.body.len() + abbreviated.gzip.len();
        let modified_ms = if p.modified_ms > 0 {
            p.modified_ms
        } else {
            now
        };
        let doc = CachedDoc {
            rev: 0,
            modified_ms,
            modified_http: http_date(modified_ms),
            full,
            abbreviated,
        };
        Ok((
            Entry {
                uplink,
                fetched_at: 0,
                failed_at: None,
                doc: Arc::new(doc),
                dists,
                held_back: p.held_back.clone(),
                min_age_ms,
                valid_until: p.next_change_ms,
                size,
                uplink_name: Arc::from(uplink_name.as_str()),
            },
            p.held_back,
        ))
    };
    let (mut entry, held_back) = if row.body.len() > 256 * 1024 {
        tokio::task::spawn_blocking(render)
            .await
            .map_err(|e| Error::Internal(e.into()))??
    } else {
        render()?
    };
    entry.fetched_at = row.fetched_at;
    entry.failed_at = failed_at;
    if !held_back.is_empty() {
        let client = &app.proxy.clients[uplink];
        for _ in &held_back {
            client.stats().held_back.inc();
        }
        tracing::info!(
            uplink = client.config.name.as_str(),
            package = name,
            versions = held_back.join(", "),
            min_release_age = %humantime::format_duration(std::time::Duration::from_millis(min_age_ms as u64)),
            "versions younger than the minimum release age are held back"
        );
    }
    let entry = Arc::new(entry);
    app.proxy.put(name, entry.clone());
    Ok(entry)
}

fn version_of_file<'a>(name: &PackageName, file: &'a str) -> Option<&'a str> {
    file.strip_prefix(name.bare())
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tgz"))
}

fn whole(bytes: Bytes) -> crate::blob::BlobStream {
    use futures_util::StreamExt;
    futures_util::stream::once(async move { Ok(bytes) }).boxed()
}

/// The tarball of `name` named `file`, local or proxied.
pub async fn tarball(
    app: &App,
    caller: Option<&Caller>,
    name: &PackageName,
    file: &str,
) -> Result<(u64, crate::blob::BlobStream)> {
    let (uplink, choice) = match source(app, caller, name).await? {
        Source::Local(target) => {
            return super::packages::tarball_of_target(app, caller, &target, file).await;
        }
        Source::Proxied { uplink, choice } => (uplink, choice),
    };
    let version = version_of_file(name, file)
        .ok_or_else(|| Error::NotFound(format!("tarball {file} not found")))?;
    let grant = access::authorize_proxied_read(app, caller, name).await?;
    let (entry, _) = proxied(app, &grant, uplink, &choice).await?;
    let client = &app.proxy.clients[uplink];
    let uplink_name = client.config.name.as_str();
    let Some(dist) = entry.dists.get(version) else {
        return Err(Error::NotFound(
            if entry.held_back.iter().any(|v| v == version) {
                format!(
                    "{name}@{version} is younger than this registry's minimum release age and is held back"
                )
            } else {
                format!("{name}@{version} not found")
            },
        ));
    };
    let Some(declared) = dist.integrity.clone() else {
        return Err(Error::Upstream(format!(
            "uplink {uplink_name} declares no integrity for {name}@{version}; it is not served"
        )));
    };
    let storing_key = format!("{name}\0{version}");
    let _single = app.proxy.locks.lock(format!("tgz\0{storing_key}")).await;
    if let Some(bytes) = app.proxy.storing.get(&storing_key, &declared) {
        client.stats().hits.inc();
        return Ok((bytes.len() as u64, whole(bytes)));
    }
    if let Some(row) = app.store.cached_tarball(&grant, version).await?
        && row.integrity == declared
    {
        match app.blobs.stream(&row.blob_key).await {
            Ok(Some(found)) => {
                client.stats().hits.inc();
                return Ok(found);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "blob store: reading a cached tarball failed"),
        }
    }
    client.stats().misses.inc();
    let bytes = client
        .tarball(&dist.tarball, app.config.max_body_bytes)
        .await
        .map_err(|e| {
            tracing::warn!(uplink = uplink_name, package = %name, version, error = %e, "tarball fetch failed");
            Error::Upstream(format!(
                "uplink {uplink_name} failed for the tarball of {name}@{version} ({e})"
            ))
        })?;
    let hashed = bytes.clone();
    let digests = tokio::task::spawn_blocking(move || integrity::digest(&hashed))
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if !integrity::matches_declared(&declared, &digests) {
        client.stats().integrity_refused.inc();
        tracing::error!(
            uplink = uplink_name,
            package = %name,
            version,
            declared = declared.as_str(),
            received = digests.integrity.as_str(),
            "tarball from the uplink does not match its packument's integrity; refused"
        );
        return Err(Error::Upstream(format!(
            "the tarball of {name}@{version} from uplink {uplink_name} does not match the \
             integrity its packument declares; it was refused"
        )));
    }
    if client.config.cache_tarballs {
        let key = digests.sha512_hex.clone();
        let row = CachedTarballRow {
            integrity: declared.clone(),
            blob_key: key.clone(),
            size: bytes.len() as i64,
        };
        let (store, blobs) = (app.store.clone(), app.blobs.clone());
        let (now, uplink_name) = (app.now(), uplink_name.to_owned());
        let (owned_grant, owned_version) = (grant.clone(), version.to_owned());
        let owned_bytes = bytes.clone();
        let store_it = async move {
            let stored = async {
                blobs.put(&key, owned_bytes.clone()).await?;
                store
                    .record_cached_tarball(
                        &owned_grant,
                        &owned_version,
                        &uplink_name,
                        &row,
                        now,
                        || async {
                            blobs
                                .ensure(&key, owned_bytes.clone())
                                .await
                                .map_err(anyhow::Error::from)
                        },
                    )
                    .await
            }
            .await;
            if let Err(e) = stored {
                // Served anyway; the next request fetches it again.
                tracing::warn!(package = %owned_grant.name(), version = owned_version, error = %format!("{e:#}"), "could not cache a proxied tarball");
            }
        };
        // Verified bytes are answered at once and stored behind the answer (npm
        // fetches many tarballs at a time and each would wait for a blob fsync and a
        // commit); until the row is written, requests for them are served from
        // memory, so one fetch still serves every request.
        let storing = app.proxy.storing.clone();
        if storing.insert(&storing_key, &declared, &bytes) {
            tokio::spawn(async move {
                store_it.await;
                storing.remove(&storing_key);
            });
        } else {
            store_it.await;
        }
    }
    Ok((bytes.len() as u64, whole(bytes)))
}

/// Refuses a new local name that its uplink already has, unless a route with
/// `allow_shadowing` matches it (dependency confusion: a local name must never be
/// taken for the public package, nor the public package for it).
pub async fn shield_new_name(app: &App, caller: &Caller, name: &PackageName) -> Result<()> {
    if app.config.uplinks.is_empty() {
        return Ok(());
    }
    let choice = app.config.uplinks.route(name.as_str());
    let Some(uplink) = choice.uplink else {
        return Ok(());
    };
    if choice.allow_shadowing || app.store.name_is_local(name.as_str(), name.scope()).await? {
        return Ok(());
    }
    let client = &app.proxy.clients[uplink];
    let uplink_name = client.config.name.as_str();
    let refusal = || {
        Error::Forbidden(format!(
            "{name} already exists on uplink {uplink_name}: publishing it here would shadow that \
             package (dependency confusion). Publish under a scope you own, or ask the operator \
             for a route with allow_shadowing = true for this name"
        ))
    };
    let grant = access::authorize_proxied_read(app, Some(caller), name).await?;
    if app.store.cached_packument(&grant).await?.is_some() {
        return Err(refusal());
    }
    match client.packument(name.as_str(), None, None).await {
        Ok(Fetched::NotFound) => Ok(()),
        Ok(_) => Err(refusal()),
        Err(e) => Err(Error::Upstream(format!(
            "cannot check whether {name} exists on uplink {uplink_name} ({e}); a new name is \
             published only once the uplink says it does not have it"
        ))),
    }
}

/// One audit request, split by the uplink that serves each package. Local and
/// unreadable names are left out (there is no advisory database here).
pub async fn audit_groups(
    app: &App,
    caller: Option<&Caller>,
    request: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(usize, serde_json::Map<String, serde_json::Value>)>> {
    let mut groups: Vec<(usize, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    for (name, versions) in request {
        let Ok(pkg) = PackageName::parse(name) else {
            continue;
        };
        let Source::Proxied { uplink, .. } = source(app, caller, &pkg).await? else {
            continue;
        };
        if access::authorize_proxied_read(app, caller, &pkg)
            .await
            .is_err()
        {
            continue;
        }
        match groups.iter_mut().find(|(u, _)| *u == uplink) {
            Some((_, m)) => {
                m.insert(name.clone(), versions.clone());
            }
            None => {
                let mut m = serde_json::Map::new();
                m.insert(name.clone(), versions.clone());
                groups.push((uplink, m));
            }
        }
    }
    Ok(groups)
}

/// What the uplinks answered to an audit.
#[derive(Debug)]
pub enum AuditAnswer {
    /// No uplink serves any of the packages, or every uplink has no audit service.
    Unavailable,
    Advisories(serde_json::Map<String, serde_json::Value>),
}

/// Forwards each group (gzip JSON, as npm sends it) to its uplink and merges the
/// answers.
pub async fn audit(
    app: &App,
    caller: Option<&Caller>,
    request: &serde_json::Map<String, serde_json::Value>,
) -> Result<AuditAnswer> {
    if app.config.uplinks.is_empty() {
        return Ok(AuditAnswer::Unavailable);
    }
    let groups = audit_groups(app, caller, request).await?;
    if groups.is_empty() {
        return Ok(AuditAnswer::Advisories(serde_json::Map::new()));
    }
    let mut merged = serde_json::Map::new();
    let mut answered = false;
    for (uplink, body) in groups {
        let client = &app.proxy.clients[uplink];
        let json = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.into()))?;
        let gz = super::packument_cache::gzip(&json).to_vec();
        let (status, answer) = client.audit(gz).await.map_err(|e| {
            Error::Upstream(format!(
                "uplink {} failed for the audit ({e})",
                client.config.name
            ))
        })?;
        match status {
            200..=299 => {
                answered = true;
                let parsed: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| {
                    Error::Upstream(format!(
                        "uplink {} answered the audit with something that is not JSON ({e})",
                        client.config.name
                    ))
                })?;
                if let serde_json::Value::Object(m) = parsed {
                    merged.extend(m);
                }
            }
            404 => {}
            s => {
                return Err(Error::Upstream(format!(
                    "uplink {} answered the audit with status {s}",
                    client.config.name
                )));
            }
        }
    }
    Ok(if answered {
        AuditAnswer::Advisories(merged)
    } else {
        AuditAnswer::Unavailable
    })
}
