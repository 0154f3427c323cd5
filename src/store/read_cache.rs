//! The read cache of the embedded (SQLite) store: the three reads every authenticated
//! download makes (token + owner by hash, package + maintainer flag, tarball key),
//! kept in memory and dropped wholesale whenever anything is written.
//!
//! Why it is safe: with SQLite, one `tessera serve` process owns the database (it
//! holds the serve lock), so every write that could change what these reads return
//! goes through this `Store`. Each write runs inside `Store::writing`, which advances
//! the write generation when the write has finished; an entry is only used while the
//! generation it was read under is current. So a revocation, a 2FA change or an
//! owner change is seen by the very next request, exactly as without the cache.
//!
//! A write whose future is dropped before it finishes (a client hanging up mid
//! request) may still be committed by the database afterwards. Then the cache is
//! switched off for `SETTLE` (longer than any statement can wait for the lock), so
//! no read can cache the state from before that late commit.
//!
//! PostgreSQL deployments run several instances on one database: there a write on
//! one instance is invisible to the others' memory, so the cache is never enabled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{PackageRow, TokenRow, UserRow};

/// How long the cache stays off after an interrupted write. The SQLite busy timeout
/// (10 s) bounds how long a queued statement can still take effect.
const SETTLE: Duration = Duration::from_secs(30);

/// Entries per map before it is emptied (a crude bound on memory).
const MAX_ENTRIES: usize = 50_000;

/// A cached token with its owner.
pub type TokenAndUser = (Arc<TokenRow>, Arc<UserRow>);

/// A package row and one user's rights on it.
pub type PackageForUser = (Arc<PackageRow>, super::CallerRights);

/// name → (user id, answer) for the users that asked.
type PackageTable = HashMap<String, Vec<(Option<i64>, PackageForUser)>>;

/// package id → version → (blob key, size).
type TarballTable = HashMap<i64, HashMap<String, (String, i64)>>;

/// The cached reads and the write generation that validates them.
#[derive(Debug, Default)]
pub struct ReadCache {
    generation: AtomicU64,
    /// Fast check for `off_until`, so the common path takes no lock.
    off: AtomicBool,
    off_until: Mutex<Option<Instant>>,
    tokens: Generational<HashMap<Vec<u8>, TokenAndUser>>,
    packages: Generational<PackageTable>,
    tarballs: Generational<TarballTable>,
}

/// One map, tagged with the generation its entries were read under.
#[derive(Debug, Default)]
struct Generational<M> {
    inner: RwLock<(u64, M)>,
}

/// A point in the write history: reads started here may be cached under it.
#[derive(Debug, Clone, Copy)]
pub struct ReadTicket(u64);

impl<M: Default + Len> Generational<M> {
    fn read<T>(&self, ticket: ReadTicket, f: impl FnOnce(&M) -> Option<T>) -> Option<T> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if guard.0 != ticket.0 {
            return None;
        }
        f(&guard.1)
    }

    /// Stores an answer read under `ticket`, unless a write has happened since.
    fn write(&self, ticket: ReadTicket, current: &AtomicU64, f: impl FnOnce(&mut M)) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: a write that finished after the read began makes
        // the answer possibly stale, so it is not kept.
        if current.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        if guard.0 != ticket.0 || guard.1.len() >= MAX_ENTRIES {
            *guard = (ticket.0, M::default());
        }
        f(&mut guard.1);
    }
}

trait Len {
    fn len(&self) -> usize;
}

impl<K, V> Len for HashMap<K, V> {
    fn len(&self) -> usize {
        HashMap::len(self)
    }
}

impl ReadCache {
    /// The ticket for a read starting now, or `None` while the cache is off.
    pub fn ticket(&self) -> Option<ReadTicket> {
        let generation = self.generation.load(Ordering::SeqCst);
        if !self.off.load(Ordering::SeqCst) {
            return Some(ReadTicket(generation));
        }
        let mut off = self.off_until.lock().unwrap_or_else(|p| p.into_inner());
        match *off {
            Some(until) if Instant::now() < until => None,
            Some(_) => {
                *off = None;
                self.off.store(false, Ordering::SeqCst);
                // Entries from before the interruption must not come back.
                self.generation.fetch_add(1, Ordering::SeqCst);
                None
            }
            None => Some(ReadTicket(generation)),
        }
    }

    /// A write has finished (committed or failed): everything cached may be stale.
    pub fn written(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A write was dropped before it finished: its effect may land later.
    pub fn interrupted(&self) {
        *self.off_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + SETTLE);
        self.off.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn token(&self, ticket: ReadTicket, hash: &[u8]) -> Option<TokenAndUser> {
        self.tokens.read(ticket, |m| m.get(hash).cloned())
    }

    pub fn put_token(&self, ticket: ReadTicket, hash: &[u8], value: TokenAndUser) {
        self.tokens.write(ticket, &self.generation, |m| {
            m.insert(hash.to_vec(), value);
        });
    }

    pub fn package(
        &self,
        ticket: ReadTicket,
        name: &str,
        user: Option<i64>,
    ) -> Option<PackageForUser> {
        self.packages.read(ticket, |m| {
            m.get(name)?
                .iter()
                .find(|(u, _)| *u == user)
                .map(|(_, v)| v.clone())
        })
    }

    pub fn put_package(
        &self,
        ticket: ReadTicket,
        name: &str,
        user: Option<i64>,
        value: PackageForUser,
    ) {
        self.packages.write(ticket, &self.generation, |m| {
            let users = m.entry(name.to_owned()).or_default();
            if users.len() >= 64 {
                users.clear();
            }
            users.retain(|(u, _)| *u != user);
            users.push((user, value));
        });
    }

    pub fn tarball(
        &self,
        ticket: ReadTicket,
        package: i64,
        version: &str,
    ) -> Option<(String, i64)> {
        self.tarballs
            .read(ticket, |m| m.get(&package)?.get(version).cloned())
    }

    pub fn put_tarball(
        &self,
        ticket: ReadTicket,
        package: i64,
        version: &str,
        value: (String, i64),
    ) {
        self.tarballs.write(ticket, &self.generation, |m| {
            m.entry(package)
                .or_default()
                .insert(version.to_owned(), value);
        });
    }
}

/// Marks one write in progress; see `Store::writing`.
pub(super) struct WriteGuard<'a> {
    cache: Option<&'a ReadCache>,
    finished: bool,
}

impl<'a> WriteGuard<'a> {
    pub(super) fn new(cache: Option<&'a ReadCache>) -> Self {
        WriteGuard {
            cache,
            finished: false,
        }
    }

    pub(super) fn finish(mut self) {
        self.finished = true;
        if let Some(c) = self.cache {
            c.written();
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if !self.finished
            && let Some(c) = self.cache
        {
            c.interrupted();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(rev: i64) -> PackageForUser {
        (
            Arc::new(PackageRow {
                id: 1,
                name: "p".into(),
                scope: None,
                access: crate::store::Stored::Known(crate::domain::access::PackageAccess::Public),
                publish_requires_tfa: 0,
                automation_overrides_tfa: 0,
                trusted_publishing_only: 0,
                rev,
                description: None,
                created_at: 0,
                modified_at: 0,
            }),
            crate::store::CallerRights {
                maintains: true,
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_write_invalidates_what_was_read_before_it() {
        let cache = ReadCache::default();
        let t = cache.ticket().unwrap();
        cache.put_package(t, "p", Some(1), package(1));
        assert_eq!(cache.package(t, "p", Some(1)).unwrap().0.rev, 1);
        assert!(cache.package(t, "p", Some(2)).is_none());
        cache.written();
        let t2 = cache.ticket().unwrap();
        assert!(cache.package(t2, "p", Some(1)).is_none());
    }

    #[test]
    fn an_answer_read_across_a_write_is_not_kept() {
        let cache = ReadCache::default();
        let before = cache.ticket().unwrap();
        cache.written(); // a write finished while the read was in flight
        cache.put_tarball(before, 1, "1.0.0", ("k".into(), 3));
        let now = cache.ticket().unwrap();
        assert!(cache.tarball(now, 1, "1.0.0").is_none());
        assert!(cache.tarball(before, 1, "1.0.0").is_none());
    }

    #[test]
    fn an_interrupted_write_switches_the_cache_off() {
        let cache = ReadCache::default();
        let t = cache.ticket().unwrap();
        cache.put_tarball(t, 1, "1.0.0", ("k".into(), 3));
        drop(WriteGuard::new(Some(&cache)));
        assert!(cache.ticket().is_none());
        WriteGuard::new(Some(&cache)).finish();
        assert!(cache.ticket().is_none(), "still settling");
    }
}
