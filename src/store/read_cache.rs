//! The read cache: the three reads every authenticated download makes (token + owner
//! by hash, package + the caller's rights, tarball key), and for a proxied name the
//! shield's answer (whether the name is local in any way), kept in memory in bounded
//! maps (quick_cache, weighed in approximate bytes), each entry under the tag it was
//! read in; an entry under an older tag is never used.
//!
//! The tag moves on every write through this `Store` (`Store::writing`, when the
//! write has finished), and an answer read across a move is never kept. Where the
//! tickets come from depends on the database:
//!
//! - Embedded SQLite: one `tessera serve` process owns the database (it holds the
//!   serve lock), so every write goes through this `Store` and the local tag is the
//!   whole truth (`ticket`). A write whose future is dropped before it finishes (a
//!   client hanging up) may still be committed afterwards; then the cache is off for
//!   `SETTLE` (longer than any statement can wait for the lock).
//! - PostgreSQL (several instances): a request's ticket comes from a generation value
//!   read after it arrived (`store::generation`, `ticket_at`). A value other than the
//!   one the current tag was taken under moves the tag; the local moves on local
//!   writes still apply (a request sees its own writes at once). A write that commits
//!   after its client gave up advanced the database's generation in its own
//!   transaction, so the next generation read sees it: no settling needed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use super::generation::Generation;
use super::{PackageRow, TokenRow, UserRow};

/// How long the cache stays off after an interrupted write. The SQLite busy timeout
/// (10 s) bounds how long a queued statement can still take effect.
const SETTLE: Duration = Duration::from_secs(30);

/// Memory bounds per map, in approximate bytes (`Weigh`): when full, the least
/// useful entries go (quick_cache's CLOCK-Pro), not everything at once.
const TOKEN_BYTES: u64 = 64 << 20;
const PACKAGE_BYTES: u64 = 32 << 20;
const TARBALL_BYTES: u64 = 32 << 20;
const NAME_BYTES: u64 = 8 << 20;

/// A cached token with its owner.
pub type TokenAndUser = (Arc<TokenRow>, Arc<UserRow>);

/// A package row and one user's rights on it.
pub type PackageForUser = (Arc<PackageRow>, super::CallerRights);

/// A cached answer with the tag it was read under.
type Tagged<T> = (u64, T);

/// The cached reads and the tag that validates them.
#[derive(Debug)]
pub struct ReadCache {
    generation: AtomicU64,
    /// PostgreSQL: the database generation the current tag was taken under.
    adopted: Mutex<Option<Generation>>,
    /// Fast check for `off_until`, so the common path takes no lock.
    off: AtomicBool,
    off_until: Mutex<Option<Instant>>,
    tokens: Cache<Vec<u8>, Tagged<TokenAndUser>, Weigh>,
    packages: Cache<(String, Option<i64>), Tagged<PackageForUser>, Weigh>,
    tarballs: Cache<(i64, String), Tagged<(String, i64)>, Weigh>,
    /// Whether a name is local (`Store::name_is_local`), both answers: "not local"
    /// is what lets a proxied read skip the database, and it is exactly as valid as
    /// any other entry under its tag (a publish, an organization or a user that
    /// makes the name local is a write, which moves the tag here or, on another
    /// instance, the generation).
    names: Cache<String, Tagged<bool>, Weigh>,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache {
            generation: AtomicU64::default(),
            adopted: Mutex::default(),
            off: AtomicBool::default(),
            off_until: Mutex::default(),
            tokens: Cache::with_weighter(16_384, TOKEN_BYTES, Weigh),
            packages: Cache::with_weighter(16_384, PACKAGE_BYTES, Weigh),
            tarballs: Cache::with_weighter(16_384, TARBALL_BYTES, Weigh),
            names: Cache::with_weighter(16_384, NAME_BYTES, Weigh),
        }
    }
}

/// Approximate bytes of an entry: its key and value with their heap parts.
#[derive(Debug, Clone, Copy)]
struct Weigh;

impl quick_cache::Weighter<Vec<u8>, Tagged<TokenAndUser>> for Weigh {
    fn weight(&self, key: &Vec<u8>, (_, (t, u)): &Tagged<TokenAndUser>) -> u64 {
        let strings = t.name.as_ref().map_or(0, String::len)
            + t.description.as_ref().map_or(0, String::len)
            + t.limits.as_ref().map_or(0, String::len)
            + t.cidr.as_ref().map_or(0, String::len)
            + u.name.len()
            + u.email.len()
            + u.password_hash.len();
        (key.len() + strings + 1024) as u64
    }
}

impl quick_cache::Weighter<(String, Option<i64>), Tagged<PackageForUser>> for Weigh {
    fn weight(
        &self,
        (name, _): &(String, Option<i64>),
        (_, (p, _)): &Tagged<PackageForUser>,
    ) -> u64 {
        (2 * name.len() + p.description.as_ref().map_or(0, String::len) + 256) as u64
    }
}

impl quick_cache::Weighter<(i64, String), Tagged<(String, i64)>> for Weigh {
    fn weight(&self, (_, version): &(i64, String), (_, (key, _)): &Tagged<(String, i64)>) -> u64 {
        (version.len() + key.len() + 128) as u64
    }
}

impl quick_cache::Weighter<String, Tagged<bool>> for Weigh {
    fn weight(&self, name: &String, _: &Tagged<bool>) -> u64 {
        (name.len() + 64) as u64
    }
}

/// Looks a package entry up without allocating its key (hashes like the tuple).
#[derive(Hash)]
struct PackageKey<'a>(&'a str, Option<i64>);

impl Equivalent<(String, Option<i64>)> for PackageKey<'_> {
    fn equivalent(&self, key: &(String, Option<i64>)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[derive(Hash)]
struct TarballKey<'a>(i64, &'a str);

impl Equivalent<(i64, String)> for TarballKey<'_> {
    fn equivalent(&self, key: &(i64, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A point in the write history: reads started here may be cached under it.
#[derive(Debug, Clone, Copy)]
pub struct ReadTicket(u64);

/// The answer of an entry if it was read under `ticket`.
fn under<T: Clone>(ticket: ReadTicket, entry: Option<Tagged<T>>) -> Option<T> {
    entry.filter(|(tag, _)| *tag == ticket.0).map(|(_, v)| v)
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

    /// The ticket for a request that read `seen` from the shared database after it
    /// arrived: the current tag if it was taken under that very value, else a new
    /// tag (everything cached before is dropped on its first use).
    pub fn ticket_at(&self, seen: Generation) -> ReadTicket {
        let mut adopted = self.adopted.lock().unwrap_or_else(|p| p.into_inner());
        if *adopted != Some(seen) {
            *adopted = Some(seen);
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        ReadTicket(self.generation.load(Ordering::SeqCst))
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

    /// Whether an answer read under `ticket` may still be kept: no write has moved
    /// the tag since the read began. (A tag move after this check leaves the entry
    /// under the old tag, which later tickets do not match.)
    fn current(&self, ticket: ReadTicket) -> bool {
        self.generation.load(Ordering::SeqCst) == ticket.0
    }

    pub fn token(&self, ticket: ReadTicket, hash: &[u8]) -> Option<TokenAndUser> {
        under(ticket, self.tokens.get(hash))
    }

    pub fn put_token(&self, ticket: ReadTicket, hash: &[u8], value: TokenAndUser) {
        if self.current(ticket) {
            self.tokens.insert(hash.to_vec(), (ticket.0, value));
        }
    }

    pub fn package(
        &self,
        ticket: ReadTicket,
        name: &str,
        user: Option<i64>,
    ) -> Option<PackageForUser> {
        under(ticket, self.packages.get(&PackageKey(name, user)))
    }

    pub fn put_package(
        &self,
        ticket: ReadTicket,
        name: &str,
        user: Option<i64>,
        value: PackageForUser,
    ) {
        if self.current(ticket) {
            self.packages
                .insert((name.to_owned(), user), (ticket.0, value));
        }
    }

    pub fn tarball(
        &self,
        ticket: ReadTicket,
        package: i64,
        version: &str,
    ) -> Option<(String, i64)> {
        under(ticket, self.tarballs.get(&TarballKey(package, version)))
    }

    pub fn put_tarball(
        &self,
        ticket: ReadTicket,
        package: i64,
        version: &str,
        value: (String, i64),
    ) {
        if self.current(ticket) {
            self.tarballs
                .insert((package, version.to_owned()), (ticket.0, value));
        }
    }

    pub fn name_is_local(&self, ticket: ReadTicket, name: &str) -> Option<bool> {
        under(ticket, self.names.get(name))
    }

    pub fn put_name_is_local(&self, ticket: ReadTicket, name: &str, local: bool) {
        if self.current(ticket) {
            self.names.insert(name.to_owned(), (ticket.0, local));
        }
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
                mfa: crate::domain::access::MfaPolicy::None,
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
    fn a_name_read_as_not_local_is_forgotten_at_the_next_write() {
        let cache = ReadCache::default();
        let t = cache.ticket().unwrap();
        cache.put_name_is_local(t, "left-pad", false);
        assert_eq!(cache.name_is_local(t, "left-pad"), Some(false));
        assert_eq!(cache.name_is_local(t, "right-pad"), None);
        cache.written(); // say, a publish of left-pad
        let t2 = cache.ticket().unwrap();
        assert_eq!(cache.name_is_local(t2, "left-pad"), None);
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
