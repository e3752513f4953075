//! Completing loads and fetches: delivering results to their waiters, filling the
//! caches with them, and timing out the ones that take too long.

use std::time::{Duration, Instant};

use groupcached_protocol::Status;

use super::inflight::{Join, LoadId};
use super::lru::Meta;
use super::{
    answer_all, cacheable, enforce_budget, expiry, native_meta, origin_error_reply, value_reply,
    Effect, FetchOutcome, Reply, Shard,
};
use crate::origin::LoadResult;
use crate::value::ByteView;

impl<W: Clone> Shard<W> {
    /// Delivers the owner's answer to fetch `id`; a value may be kept in the hot
    /// cache (`promote`, decided by the caller's sampling), expiring no later than
    /// the owner's copy and never after the group's hot TTL.
    #[cfg(test)]
    pub fn on_fetch_done(
        &mut self,
        now: Instant,
        g: usize,
        id: LoadId,
        outcome: FetchOutcome,
        promote: bool,
        out: &mut Vec<Effect<W>>,
    ) {
        self.on_fetch_done_meta(now, g, id, outcome, None, promote, out)
    }

    /// [`Shard::on_fetch_done`] for an owner that sent the item's flags and CAS
    /// along (`meta`): a hot copy keeps them, so that a memcached GET answered from
    /// it returns the flags the item was stored with.
    #[allow(clippy::too_many_arguments)] // on_fetch_done's arguments and the metadata.
    pub fn on_fetch_done_meta(
        &mut self,
        now: Instant,
        g: usize,
        id: LoadId,
        outcome: FetchOutcome,
        meta: Option<Meta>,
        promote: bool,
        out: &mut Vec<Effect<W>>,
    ) {
        let Some(load) = self.groups[g].remote.complete(id) else {
            return;
        };
        let reply = match outcome {
            FetchOutcome::Value { value, ttl_ms } => {
                if promote && load.current {
                    self.insert_hot_meta(now, g, &load.key, value.clone(), ttl_ms, meta);
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
                let with = self.meta_writes;
                if load.current && cacheable(&gs.spec, load.key.len(), value.len(), with) {
                    let meta = native_meta(with, &mut self.cas);
                    if owns(&load.key) {
                        gs.main.insert_with(&load.key, value.clone(), expires, meta);
                    } else {
                        let hot_expires =
                            now + ttl.map_or(gs.spec.hot_ttl, |t| t.min(gs.spec.hot_ttl));
                        expires = Some(hot_expires);
                        gs.hot.insert_with(&load.key, value.clone(), expires, meta);
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

    /// Puts a value fetched from its owner into the hot cache, expiring when the
    /// owner's copy would.
    #[cfg(test)]
    pub fn insert_hot(&mut self, now: Instant, g: usize, key: &[u8], value: ByteView, ttl_ms: u64) {
        self.insert_hot_meta(now, g, key, value, ttl_ms, None)
    }

    /// [`Shard::insert_hot`] keeping the owner's flags and CAS (`meta`) with the copy.
    pub fn insert_hot_meta(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        value: ByteView,
        ttl_ms: u64,
        meta: Option<Meta>,
    ) {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        if !cacheable(&gs.spec, key.len(), value.len(), meta.is_some()) {
            return;
        }
        let owner_left = Duration::from_millis(if ttl_ms == 0 { u64::MAX } else { ttl_ms });
        let expires = Some(now + owner_left.min(gs.spec.hot_ttl));
        gs.hot.insert_with(key, value, expires, meta);
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
    #[cfg(test)]
    pub fn loads_in_flight(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.local.len() + g.remote.len())
            .sum()
    }
}
