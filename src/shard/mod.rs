//! One core's shard of every group: main and hot cache plus in-flight table.
//!
//! A pure state machine in the style of quinn-proto: requests go in with an explicit
//! `now`, [`Effect`]s come out (answer this waiter, start that load). No sockets, no
//! threads, no clock, so every rule here is unit-tested directly.

pub mod inflight;
pub mod lru;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::Status;

use crate::origin::{LoadResult, OriginError};
use crate::stats::{CacheCounters, CoreStats, GroupCounters};
use crate::value::ByteView;
use inflight::{InflightTable, Join, LoadId};
use lru::{charge, Lru};

/// The answer to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A value and its remaining TTL in milliseconds (0 = no expiry).
    Value {
        /// The value.
        value: ByteView,
        /// Remaining time to live in ms; 0 = none.
        ttl_ms: u64,
    },
    /// No such key.
    NotFound,
    /// SET done.
    Stored,
    /// DELETE done; whether an entry was removed.
    Deleted(bool),
    /// INVALIDATE done.
    Invalidated,
    /// Failure, with the status and a message for the client.
    Error {
        /// The status.
        status: Status,
        /// Human-readable detail.
        message: Cow<'static, str>,
    },
}

impl Reply {
    /// An error reply.
    pub fn error(status: Status, message: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error {
            status,
            message: message.into(),
        }
    }
}

/// What the shard asks its core to do.
#[derive(Debug)]
pub enum Effect<W> {
    /// Send `reply` to `waiter`.
    Reply(W, Reply),
    /// Fetch `key` of group `group` from its owner; report back with `id` through
    /// [`Shard::on_fetch_done`] or [`Shard::fallback_local`].
    Fetch {
        /// Group index.
        group: usize,
        /// Load id to report the result under.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
    /// Start loading `key` of group `group` from its origin; report back with `id`.
    Load {
        /// Group index.
        group: usize,
        /// Load id to report the result under.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
}

/// Per-group settings a shard needs.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// This shard's share of the group's budget (main + hot), in bytes.
    pub budget: usize,
    /// Largest value kept.
    pub max_item: usize,
    /// TTL of loaded values and of SETs without one.
    pub ttl: Option<Duration>,
    /// Whether misses can be loaded (false for `none`: a miss is NOT_FOUND).
    pub has_origin: bool,
    /// Longest a hot-cache copy of another node's value is kept.
    pub hot_ttl: Duration,
}

/// What the owner answered to a FETCH.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// The value and its remaining TTL at the owner (0 = none).
    Value {
        /// The value.
        value: ByteView,
        /// Remaining TTL in milliseconds.
        ttl_ms: u64,
    },
    /// The owner (and its origin) has no value: final, not retried locally.
    NotFound,
    /// The owner answered an error (e.g. its origin failed): passed on as is.
    Error {
        /// The owner's status.
        status: Status,
        /// The owner's message.
        message: String,
    },
}

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
        }
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
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.gets.inc();
        stats.main.gets.inc();
        if let Some(hit) = gs.main.get(key, now) {
            stats.main.hits.inc();
            stats.cache_hits.inc();
            publish(&stats.main, &gs.main);
            out.push(Effect::Reply(
                waiter,
                value_reply(hit.value, hit.expires, now),
            ));
            return;
        }
        stats.hot.gets.inc();
        if let Some(hit) = gs.hot.get(key, now) {
            stats.hot.hits.inc();
            stats.cache_hits.inc();
            out.push(Effect::Reply(
                waiter,
                value_reply(hit.value, hit.expires, now),
            ));
            return;
        }
        // An expired entry may have been dropped by the lookups above.
        publish(&stats.main, &gs.main);
        publish(&stats.hot, &gs.hot);
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

    /// Delivers the owner's answer to fetch `id`; a value may be kept in the hot
    /// cache (`promote`, decided by the caller's sampling), expiring no later than
    /// the owner's copy and never after the group's hot TTL.
    pub fn on_fetch_done(
        &mut self,
        now: Instant,
        g: usize,
        id: LoadId,
        outcome: FetchOutcome,
        promote: bool,
        out: &mut Vec<Effect<W>>,
    ) {
        let Some(load) = self.groups[g].remote.complete(id) else {
            return;
        };
        let reply = match outcome {
            FetchOutcome::Value { value, ttl_ms } => {
                if promote && load.current {
                    self.insert_hot(now, g, &load.key, value.clone(), ttl_ms);
                }
                Reply::Value { value, ttl_ms }
            }
            FetchOutcome::NotFound => Reply::NotFound,
            FetchOutcome::Error { status, message } => Reply::error(status, message),
        };
        answer_all(load.waiters, reply, out);
    }

    /// The owner could not be reached for fetch `id`: load the key here instead
    /// (groupcache's fallback), joining a local load of the key if one is running.
    pub fn fallback_local(&mut self, now: Instant, g: usize, id: LoadId, out: &mut Vec<Effect<W>>) {
        let gs = &mut self.groups[g];
        let Some(load) = gs.remote.complete(id) else {
            return;
        };
        if !gs.spec.has_origin {
            let reply = Reply::error(
                Status::Unavailable,
                "the key's owner is unreachable and this group has no origin to load from",
            );
            answer_all(load.waiters, reply, out);
            return;
        }
        for w in load.waiters {
            if let Join::First(id) = gs.local.join(&load.key, w, now + self.load_timeout) {
                out.push(Effect::Load {
                    group: g,
                    id,
                    key: load.key.clone(),
                });
            }
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

    /// Delivers the result of load `id` to its waiters, caching a value if the load
    /// is still current (no SET/DELETE/INVALIDATE of the key since it began).
    ///
    /// Where the value goes is decided now, under the ring of this moment: into the
    /// main cache only if `owns(key)`, else (a fallback load while the owner was
    /// unreachable, a peer's FETCH of a key we do not own, a key that moved while it
    /// loaded) into the hot cache, where it lives at most the group's hot TTL.
    pub fn on_load_done(
        &mut self,
        now: Instant,
        g: usize,
        id: LoadId,
        result: LoadResult,
        owns: impl FnOnce(&[u8]) -> bool,
        out: &mut Vec<Effect<W>>,
    ) {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        let Some(load) = gs.local.complete(id) else {
            return; // Timed out already; its waiters were answered.
        };
        let reply = match result {
            Ok(Some(loaded)) => {
                stats.local_loads.inc();
                let value = ByteView::from_vec(loaded.value);
                let ttl = loaded.ttl.or(gs.spec.ttl).filter(|t| !t.is_zero());
                let mut expires = expiry(now, ttl);
                if load.current && cacheable(&gs.spec, load.key.len(), value.len()) {
                    if owns(&load.key) {
                        gs.main.insert(&load.key, value.clone(), expires);
                    } else {
                        let hot_expires =
                            now + ttl.map_or(gs.spec.hot_ttl, |t| t.min(gs.spec.hot_ttl));
                        expires = Some(hot_expires);
                        gs.hot.insert(&load.key, value.clone(), expires);
                    }
                    enforce_budget(gs, stats);
                }
                value_reply(value, expires, now)
            }
            Ok(None) => {
                stats.local_loads.inc();
                Reply::NotFound
            }
            Err(e) => {
                stats.local_load_errs.inc();
                origin_error_reply(&e)
            }
        };
        answer_all(load.waiters, reply, out);
    }

    /// The key of origin load `id` of group `g`, while it runs (for log lines).
    pub fn loading_key(&self, g: usize, id: LoadId) -> Option<&[u8]> {
        self.groups.get(g)?.local.key_of(id)
    }

    /// Stores a value. `ttl` of `None` means the group default.
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
        if value.len() > gs.spec.max_item || charge(key.len(), value.len()) > gs.spec.budget {
            gs.main.remove(key);
            publish(&stats.main, &gs.main);
            publish(&stats.hot, &gs.hot);
            return Reply::error(
                Status::TooLarge,
                format!(
                    "value of {} bytes is over this server's item limit of {} bytes",
                    value.len(),
                    gs.spec
                        .max_item
                        .min(lru::largest_value(key.len(), gs.spec.budget))
                ),
            );
        }
        gs.main.insert(key, value, expiry(now, ttl.or(gs.spec.ttl)));
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

    /// Puts a value fetched from its owner into the hot cache, expiring when the
    /// owner's copy would.
    pub fn insert_hot(&mut self, now: Instant, g: usize, key: &[u8], value: ByteView, ttl_ms: u64) {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        if !cacheable(&gs.spec, key.len(), value.len()) {
            return;
        }
        let owner_left = Duration::from_millis(if ttl_ms == 0 { u64::MAX } else { ttl_ms });
        gs.hot
            .insert(key, value, Some(now + owner_left.min(gs.spec.hot_ttl)));
        enforce_budget(gs, stats);
    }

    /// Answers the waiters of loads that passed their deadline with TIMEOUT.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Effect<W>>) {
        for (g, gs) in self.groups.iter_mut().enumerate() {
            let stats = &self.stats.groups[g];
            gs.local.expire(now, |load| {
                stats.local_load_errs.inc();
                answer_all(
                    load.waiters,
                    Reply::error(Status::Timeout, "origin load timed out"),
                    out,
                );
            });
            gs.remote.expire(now, |load| {
                answer_all(
                    load.waiters,
                    Reply::error(Status::Timeout, "load through the key's owner timed out"),
                    out,
                );
            });
        }
    }

    /// The earliest moment [`Shard::expire`] has work to do.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.groups
            .iter_mut()
            .flat_map(|g| [g.local.next_deadline(), g.remote.next_deadline()])
            .flatten()
            .min()
    }

    /// Number of loads running in all groups.
    pub fn loads_in_flight(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.local.len() + g.remote.len())
            .sum()
    }

    /// Bytes charged by the main and hot cache of group `g`.
    pub fn cache_bytes(&self, g: usize) -> (usize, usize) {
        (self.groups[g].main.bytes(), self.groups[g].hot.bytes())
    }

    /// Main-cache keys of group `g` from most to least recently used.
    pub fn main_keys(&self, g: usize) -> Vec<Vec<u8>> {
        self.groups[g].main.keys()
    }
}

fn cacheable(spec: &GroupSpec, key_len: usize, value_len: usize) -> bool {
    value_len <= spec.max_item && charge(key_len, value_len) <= spec.budget
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.filter(|t| !t.is_zero()).map(|t| now + t)
}

fn value_reply(value: ByteView, expires: Option<Instant>, now: Instant) -> Reply {
    let ttl_ms = match expires {
        // Round up and never send 0, which would mean "no expiry".
        Some(e) => (e.saturating_duration_since(now).as_micros().div_ceil(1000) as u64).max(1),
        None => 0,
    };
    Reply::Value { value, ttl_ms }
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
