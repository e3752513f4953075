//! One core's shard of every group: main and hot cache plus in-flight table.
//!
//! A pure state machine in the style of quinn-proto: requests go in with an explicit
//! `now`, [`Effect`]s come out (answer this waiter, start that load). No sockets, no
//! threads, no clock, so every rule here is unit-tested directly.
//!
//! The memcached front end's writes (add, replace, append, prepend, cas, incr,
//! decr, touch) are applied here too, at the key's owner, as plain functions of the
//! shard's state: see [`mod@write`]. Items they write carry flags and a CAS unique
//! issued by the shard's [`CasSource`].

pub mod arith;
pub mod cas;
pub mod inflight;
mod loads;
pub mod lru;
mod types;
pub mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::Status;

use crate::origin::OriginError;
use crate::stats::{CacheCounters, CoreStats, GroupCounters};
use crate::value::ByteView;
pub use cas::CasSource;
use inflight::{InflightTable, Join};
use lru::{item_charge, Hit, Lru};
pub use lru::{Meta, ValueRef};
pub use types::{Effect, FetchOutcome, GroupSpec, MetaHit, Reply};
pub use write::{Arith, Delta, StoreCommand, StoreMode, Vivify, WriteOutcome};

struct GroupShard<W> {
    spec: GroupSpec,
    main: Lru,
    hot: Lru,
    /// Loads from the origin (this node owns the key, or its owner failed).
    local: InflightTable<W>,
    /// Fetches from the owner. Kept apart from `local` so that a peer's FETCH, which
    /// must load locally, never waits on a fetch of ours: two nodes whose rings
    /// disagree can then not wait on each other.
    remote: InflightTable<W>,
}

/// One core's part of every group.
pub struct Shard<W> {
    groups: Vec<GroupShard<W>>,
    load_timeout: Duration,
    stats: Arc<CoreStats>,
    /// Issues the CAS of every item written with metadata.
    cas: CasSource,
    /// Whether native SETs and loads give their items metadata too (flags 0 and a
    /// CAS), so that a memcached `gets` of any key has a CAS to return.
    meta_writes: bool,
}

impl<W: Clone> Shard<W> {
    /// A shard for `groups` (in configuration order), counting into `stats`.
    pub fn new(groups: Vec<GroupSpec>, load_timeout: Duration, stats: Arc<CoreStats>) -> Self {
        Shard {
            groups: groups
                .into_iter()
                .map(|spec| GroupShard {
                    spec,
                    main: Lru::new(),
                    hot: Lru::new(),
                    local: InflightTable::with_ids(1, 2),
                    remote: InflightTable::with_ids(2, 2),
                })
                .collect(),
            load_timeout,
            stats,
            cas: CasSource::default(),
            meta_writes: false,
        }
    }

    /// Turns on memcached metadata for every write of this shard: from now on a
    /// native SET and a load into the cache give their item flags 0 and a CAS, so
    /// that `gets` has one to return for every key. The memcached writes of
    /// [`mod@write`] carry metadata whether this is on or not; without it, a key
    /// written natively or loaded reports CAS 0, which no `cas` command matches.
    /// Called once, when the memcached front end is configured; its cost is 12
    /// bytes per inline item ([`crate::storage`]).
    ///
    /// `core` and `seed` make the CAS values unique and increasing:
    /// see [`CasSource::new`].
    pub fn enable_meta(&mut self, core: u16, seed: u64) {
        self.cas = CasSource::new(core, seed);
        self.meta_writes = true;
    }

    /// Answers a GET (or a peer's FETCH) from cache, or joins/starts the key's load:
    /// a fetch from the owner when `via_peer()` says so, else a load from the origin.
    /// `via_peer` is only asked on a miss, so a hit never pays for the ring lookup.
    pub fn get(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        waiter: W,
        via_peer: impl FnOnce() -> bool,
        out: &mut Vec<Effect<W>>,
    ) {
        let hit = self.lookup::<false, _>(now, g, key, |value, expires, _| {
            value_reply(value.to_view(), expires, now)
        });
        match hit {
            Some(reply) => out.push(Effect::Reply(waiter, reply)),
            None => self.miss(now, g, key, waiter, via_peer, out),
        }
    }

    /// The hash group `g`'s main cache files `key` under, for [`Shard::prefetch`].
    #[inline]
    pub fn main_hash(&self, g: usize, key: &[u8]) -> u64 {
        self.groups[g].main.hash(key)
    }

    /// Starts loading what a GET of the key of `hash` (from [`Shard::main_hash`]) in
    /// group `g`'s main cache will read into the CPU cache (see [`Lru::prefetch`]);
    /// changes nothing.
    #[inline]
    pub fn prefetch(&self, g: usize, hash: u64) {
        self.groups[g].main.prefetch(hash);
    }

    /// A GET's lookup alone, for a caller that answers a hit itself: on a hit
    /// `on_hit` sees the value where it lies and its remaining TTL in ms (0 = none),
    /// counted as [`Shard::get`] counts it, and its result is returned; on a miss
    /// nothing happens and the caller goes on with [`Shard::get_missed`]. Why: the
    /// hit's bytes go straight into the connection's output, with no copy into a
    /// `ByteView` and no trip through the effect queue.
    #[inline]
    pub fn get_hit<R>(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        mut on_hit: impl FnMut(ValueRef<'_>, u64) -> R,
    ) -> Option<R> {
        self.lookup::<false, _>(now, g, key, |value, expires, _| {
            on_hit(value, types::ttl_ms(expires, now))
        })
    }

    /// [`Shard::get_hit`] with the item's flags and CAS ([`Meta::NONE`] for an item
    /// stored without): a memcached read answered where the value lies. A miss is
    /// followed by [`Shard::get_missed`], as for `get_hit`.
    #[inline]
    pub fn get_meta_hit<R>(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        mut on_hit: impl FnMut(ValueRef<'_>, u64, Meta) -> R,
    ) -> Option<R> {
        self.lookup::<true, _>(now, g, key, |value, expires, meta| {
            on_hit(value, types::ttl_ms(expires, now), meta)
        })
    }

    /// The rest of a GET whose [`Shard::get_hit`] missed: joins or starts the key's
    /// load, as [`Shard::get`] does on a miss.
    pub fn get_missed(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        waiter: W,
        via_peer: impl FnOnce() -> bool,
        out: &mut Vec<Effect<W>>,
    ) {
        self.miss(now, g, key, waiter, via_peer, out);
    }

    /// A memcached GET/GETS/`mg`: as [`Shard::get`], but a hit is *returned*, with
    /// the item's flags and CAS ([`Reply`] has no room for them), instead of
    /// answered through an effect. A miss joins or starts the key's load exactly as
    /// `get` does and returns `None`: its waiters get a [`Reply::Value`] without
    /// metadata, and the caller may then ask [`Shard::peek_meta`] for the flags and
    /// CAS of the value just loaded (flags 0; a CAS if [`Shard::enable_meta`] is on).
    /// On a hit `waiter` is dropped.
    pub fn get_meta(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        waiter: W,
        via_peer: impl FnOnce() -> bool,
        out: &mut Vec<Effect<W>>,
    ) -> Option<MetaHit> {
        let hit = self.lookup::<true, _>(now, g, key, |value, expires, meta| {
            let value = value.to_view();
            MetaHit::new(Hit { value, expires }, meta, now)
        });
        if hit.is_some() {
            return hit;
        }
        self.miss(now, g, key, waiter, via_peer, out);
        None
    }

    /// The flags and CAS of `key` if group `g` holds it (main cache first, then hot),
    /// unexpired at `now`; without touching recency or counters.
    pub fn peek_meta(&self, now: Instant, g: usize, key: &[u8]) -> Option<Meta> {
        let gs = &self.groups[g];
        gs.main
            .peek_meta(key, now)
            .or_else(|| gs.hot.peek_meta(key, now))
    }

    /// A GET's cache lookup: main cache, then hot, counted as a GET; `f` sees a
    /// hit's value where it lies (see [`Lru::lookup`]). `WITH_META` is a constant
    /// so that the native GET never reads an item's metadata.
    #[inline(always)]
    fn lookup<const WITH_META: bool, R>(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        mut f: impl FnMut(ValueRef<'_>, Option<Instant>, Meta) -> R,
    ) -> Option<R> {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        if let Some(found) = gs.main.lookup::<WITH_META, _>(key, now, &mut f) {
            // A hit removed nothing: the cache's gauges stand. One counter: `gets`
            // and `cache_hits` are derived from it (crate::stats).
            stats.main.hits.inc();
            return Some(found);
        }
        stats.main.misses.inc();
        if let Some(found) = gs.hot.lookup::<WITH_META, _>(key, now, &mut f) {
            stats.hot.hits.inc();
            return Some(found);
        }
        stats.hot.misses.inc();
        // An expired entry may have been dropped by the lookups above.
        publish(&stats.main, &gs.main);
        publish(&stats.hot, &gs.hot);
        None
    }

    /// A GET's miss: joins or starts the key's fetch from its owner (if
    /// `via_peer()`) or its load from the origin.
    fn miss(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        waiter: W,
        via_peer: impl FnOnce() -> bool,
        out: &mut Vec<Effect<W>>,
    ) {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.loads.inc();
        let deadline = now + self.load_timeout;
        if via_peer() {
            if let Join::First(id) = gs.remote.join(key, waiter, deadline) {
                stats.loads_deduped.inc();
                out.push(Effect::Fetch {
                    group: g,
                    id,
                    key: key.into(),
                });
            }
            return;
        }
        if !gs.spec.has_origin {
            out.push(Effect::Reply(waiter, Reply::NotFound));
            return;
        }
        if let Join::First(id) = gs.local.join(key, waiter, deadline) {
            stats.loads_deduped.inc();
            out.push(Effect::Load {
                group: g,
                id,
                key: key.into(),
            });
        }
    }

    /// Drops every local trace of a key: hot copy, main copy, and running loads
    /// (superseded: their results answer their waiters but are not kept). Used for a
    /// write forwarded to the key's owner and for a peer's INVALIDATE.
    pub fn forget(&mut self, g: usize, key: &[u8]) {
        let gs = &mut self.groups[g];
        gs.local.supersede(key);
        gs.remote.supersede(key);
        gs.main.remove(key);
        gs.hot.remove(key);
        publish(&self.stats.groups[g].main, &gs.main);
        publish(&self.stats.groups[g].hot, &gs.hot);
    }

    /// Stores a value. `ttl` of `None` means the group default. The item has no
    /// flags, and a new CAS if [`Shard::enable_meta`] is on.
    pub fn set(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        value: ByteView,
        ttl: Option<Duration>,
    ) -> Reply {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.sets.inc();
        gs.local.supersede(key);
        gs.remote.supersede(key);
        gs.hot.remove(key);
        if !cacheable(&gs.spec, key.len(), value.len(), self.meta_writes) {
            gs.main.remove(key);
            publish(&stats.main, &gs.main);
            publish(&stats.hot, &gs.hot);
            return Reply::error(
                Status::TooLarge,
                format!(
                    "value of {} bytes is over this server's item limit of {} bytes",
                    value.len(),
                    largest_item(&gs.spec, key.len(), self.meta_writes)
                ),
            );
        }
        let meta = native_meta(self.meta_writes, &mut self.cas);
        gs.main
            .insert_with(key, value, expiry(now, ttl.or(gs.spec.ttl)), meta);
        enforce_budget(gs, stats);
        Reply::Stored
    }

    /// Removes a key from main and hot cache, and makes any running load of it
    /// unable to put an older value back.
    pub fn delete(&mut self, g: usize, key: &[u8]) -> Reply {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.deletes.inc();
        gs.local.supersede(key);
        gs.remote.supersede(key);
        let removed = gs.main.remove(key) | gs.hot.remove(key);
        publish(&stats.main, &gs.main);
        publish(&stats.hot, &gs.hot);
        Reply::Deleted(removed)
    }

    /// A peer's INVALIDATE: the key was written at its owner. Drops every copy this
    /// shard holds (hot, and main too: a main copy here means our ring disagrees with
    /// the writer's, and it may be older than the write) and supersedes the key's
    /// running fetches and loads, so an answer already on its way cannot plant the
    /// pre-write value after the write is acknowledged.
    pub fn invalidate(&mut self, g: usize, key: &[u8]) -> Reply {
        self.forget(g, key);
        Reply::Invalidated
    }

    /// The ring changed: every main-cache entry whose key `owns` no longer claims
    /// becomes a hot copy that expires within the group's hot TTL from `now` (or
    /// sooner, if it would have). Returns how many entries were demoted.
    pub fn demote_unowned(&mut self, now: Instant, owns: impl Fn(&[u8]) -> bool) -> usize {
        let mut demoted = 0;
        for (g, gs) in self.groups.iter_mut().enumerate() {
            let moved = gs.main.take_where(|key| !owns(key));
            demoted += moved.len();
            let latest = now + gs.spec.hot_ttl;
            for t in moved {
                let expires = t.expires.map_or(latest, |e| e.min(latest));
                if expires > now {
                    // A hot copy keeps the item's flags and CAS: a memcached GET
                    // answered from it must return the flags it was stored with.
                    match t.meta {
                        Some(m) => gs.hot.insert_meta(&t.key, t.value, Some(expires), m),
                        None => gs.hot.insert(&t.key, t.value, Some(expires)),
                    }
                }
            }
            enforce_budget(gs, &self.stats.groups[g]);
        }
        demoted
    }

    /// Bytes charged by the main and hot cache of group `g`.
    #[cfg(test)]
    pub fn cache_bytes(&self, g: usize) -> (usize, usize) {
        (self.groups[g].main.bytes(), self.groups[g].hot.bytes())
    }

    /// Main-cache keys of group `g` from the head of the eviction order (most
    /// recently written) to its tail.
    #[cfg(test)]
    pub fn main_keys(&self, g: usize) -> Vec<Vec<u8>> {
        self.groups[g].main.keys()
    }
}

/// Whether an item fits the group's limits: its value the item limit, its charge
/// (with metadata or without) the budget.
fn cacheable(spec: &GroupSpec, key_len: usize, value_len: usize, meta: bool) -> bool {
    value_len <= spec.max_item && item_charge(key_len, value_len, meta) <= spec.budget
}

/// The largest value the group keeps under a `key_len`-byte key, for error messages.
fn largest_item(spec: &GroupSpec, key_len: usize, meta: bool) -> usize {
    spec.max_item
        .min(lru::largest_value_with(key_len, spec.budget, meta))
}

/// Metadata for an item a native write or a load is about to store: flags 0 and a
/// new CAS if every write carries metadata (`on`), else none.
#[inline]
fn native_meta(on: bool, cas: &mut CasSource) -> Option<Meta> {
    on.then(|| Meta {
        flags: 0,
        cas: cas.issue(),
    })
}

/// The lookup of one cache, with the item's metadata or (`WITH_META` false)
/// without reading it.
#[inline(always)]
fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.filter(|t| !t.is_zero()).map(|t| now + t)
}

fn value_reply(value: ByteView, expires: Option<Instant>, now: Instant) -> Reply {
    Reply::Value {
        value,
        ttl_ms: types::ttl_ms(expires, now),
    }
}

fn origin_error_reply(e: &OriginError) -> Reply {
    Reply::error(e.status(), e.to_string())
}

fn answer_all<W: Clone>(waiters: Vec<W>, reply: Reply, out: &mut Vec<Effect<W>>) {
    out.extend(waiters.into_iter().map(|w| Effect::Reply(w, reply.clone())));
}

/// groupcache's rule: while over budget, evict the oldest hot entry if the hot cache
/// holds more than 1/8 of what the main cache holds, else the oldest main entry.
fn enforce_budget<W>(gs: &mut GroupShard<W>, stats: &GroupCounters) {
    while gs.main.bytes() + gs.hot.bytes() > gs.spec.budget {
        let from_hot = gs.hot.bytes() > gs.main.bytes() / 8;
        let (victim, counters) = if from_hot {
            (&mut gs.hot, &stats.hot)
        } else {
            (&mut gs.main, &stats.main)
        };
        if victim.pop_oldest().is_none() {
            break;
        }
        counters.evictions.inc();
    }
    publish(&stats.main, &gs.main);
    publish(&stats.hot, &gs.hot);
}

fn publish(c: &CacheCounters, lru: &Lru) {
    c.bytes.set(lru.bytes() as u64);
    c.items.set(lru.len() as u64);
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;
