//! What each core counts: node-wide, per-group, per-cache and per-loader blocks.

use std::sync::atomic::{AtomicU64, Ordering};

use super::cell::{Counter, Histogram};

/// Counters of one cache (main or hot) on one core.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Bytes charged (key + value + overhead).
    pub bytes: Counter,
    /// Entries.
    pub items: Counter,
    /// Lookups that found a live entry.
    pub hits: Counter,
    /// Lookups that found none (lookups are `hits + misses`: see [`CacheCounters::gets`]).
    pub misses: Counter,
    /// Entries evicted to stay within the budget.
    pub evictions: Counter,
}

impl CacheCounters {
    /// Lookups. Derived (`hits + misses`) rather than counted, so that a hit
    /// writes one counter.
    pub fn gets(&self) -> u64 {
        self.hits.get().wrapping_add(self.misses.get())
    }
}

/// One group's counters on one core, named as groupcache names them. A GET hit
/// writes one of them (`main.hits`): STATS' `gets` and `cache_hits` are derived
/// from the caches' counters when read ([`GroupCounters::gets`],
/// [`GroupCounters::cache_hits`]).
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// Values fetched from the owning peer.
    pub peer_loads: Counter,
    /// Failed fetches from a peer (then loaded locally).
    pub peer_errors: Counter,
    /// Requests that missed the cache (`gets - cache_hits`).
    pub loads: Counter,
    /// Loads actually started after de-duplication by the in-flight table.
    pub loads_deduped: Counter,
    /// Successful origin loads (including "not found" answers).
    pub local_loads: Counter,
    /// Failed origin loads (errors, timeouts, panics).
    pub local_load_errs: Counter,
    /// FETCH requests received from peers.
    pub server_requests: Counter,
    /// SET requests.
    pub sets: Counter,
    /// DELETE requests.
    pub deletes: Counter,
    /// Main cache.
    pub main: CacheCounters,
    /// Hot cache.
    pub hot: CacheCounters,
    /// Time from handing a load to the origin loader to its result on the core.
    pub origin_load: Histogram,
    /// Time from sending a FETCH to the key's owner to its answer or failure.
    pub peer_fetch: Histogram,
}

impl GroupCounters {
    /// GET and FETCH requests (and memcached gets): every one looks in the main
    /// cache first, so these are the main cache's lookups.
    pub fn gets(&self) -> u64 {
        self.main.gets()
    }

    /// Requests answered from the main or hot cache.
    pub fn cache_hits(&self) -> u64 {
        self.main.hits.get().wrapping_add(self.hot.hits.get())
    }
}

/// One group's origin-loader counters. Unlike the per-core blocks these have many
/// writers (the group's loader threads and every core that submits a load), so they
/// use atomic adds; a load is not the hot path.
#[derive(Debug, Default)]
pub struct LoaderCounters {
    /// Loads that had to wait in the queue because every one of the group's loader
    /// threads was busy when they were submitted (approximate under races).
    pub queue_waits: AtomicU64,
    /// Loads answered TIMEOUT because they waited in the queue past their deadline;
    /// they were never started.
    pub queue_timeouts: AtomicU64,
    /// Loads refused (UNAVAILABLE) because the group's queue was full.
    pub queue_full: AtomicU64,
    /// Loads waiting in the queue now (gauge).
    pub queue_depth: AtomicU64,
    /// Loads running on the group's loader threads now (gauge).
    pub running: AtomicU64,
    /// Origin values larger than the group can cache (item limit or shard budget),
    /// answered TOO_LARGE and remembered for a while.
    pub too_large: AtomicU64,
    /// Loads answered TOO_LARGE from that memory, without asking the origin.
    pub too_large_remembered: AtomicU64,
}

impl LoaderCounters {
    /// Adds one to `c`.
    #[inline]
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from gauge `c`, never below zero.
    #[inline]
    pub fn dec(c: &AtomicU64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}

/// Node-wide counters of one core.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Open connections.
    pub curr_connections: Counter,
    /// Connections accepted since start.
    pub total_connections: Counter,
    /// Connections refused because of `--max-connections`.
    pub rejected_connections: Counter,
    /// Frames that could not be decoded (each answered with an error).
    pub protocol_errors: Counter,
    /// Requests of every op.
    pub requests: Counter,
    /// Peer connections currently up.
    pub peer_connections: Counter,
    /// Peers that answered HELLO with another ring fingerprint than ours.
    pub ring_mismatches: Counter,
    /// INVALIDATEs after a write that were not acknowledged (member down, hung past
    /// `--peer-timeout`, or refusing us): that member's copies are bounded by
    /// `--hot-ttl` instead of being dropped at once.
    pub invalidate_errors: Counter,
    /// HELLOs that spoke as a member (non-zero ring fingerprint) with a node id that
    /// is not one of ours: the connection stays a client connection.
    pub hello_rejected: Counter,
    /// Peer operations (FETCH, STORE, PURGE, INVALIDATE) refused with FORBIDDEN on a
    /// connection not identified as a member, or with NOT_OWNER for a key we do not own.
    pub peer_ops_refused: Counter,
    /// Main-cache entries demoted to hot copies because a ring change moved their key
    /// to another member.
    pub demoted: Counter,
    /// Connections this core handed to another core that a SHARD request asked for.
    pub shard_handoffs: Counter,
    /// Keyed requests that arrived on a core not holding the key's shard and hopped
    /// to the one that does (a shard-aware client makes none).
    pub core_hops: Counter,
    /// Failed proofs of the cluster secret, both ways: a member's AUTH we rejected,
    /// a CHALLENGE or AUTH while we have no secret, peer operations from a member that
    /// did not prove it, and handshakes of ours that a member refused or answered
    /// with a wrong proof.
    pub peer_auth_failures: Counter,
    /// Members of the current ring (gauge, the same on every core).
    pub members: Counter,
    /// Fingerprint of the current ring (gauge, the same on every core).
    pub ring_fingerprint: Counter,
    /// Bytes held in client connections' read buffers and output queues (gauge).
    pub conn_buffer_bytes: Counter,
    /// Connections closed by `--idle-timeout`.
    pub idle_timeouts: Counter,
    /// Connections closed by `--frame-timeout` (a frame that did not complete in time).
    pub frame_timeouts: Counter,
    /// Connections closed because their unsent output passed `--max-conn-output`.
    pub output_overflows: Counter,
    /// Times a connection stopped being read because connection buffers reached
    /// `--max-buffer-memory`.
    pub buffer_memory_pauses: Counter,
}

/// The memcached front end's command counters of one core, under memcached's
/// `stats` names (counted on the core of the connection that sent the command).
#[derive(Debug, Default)]
pub struct McCounters {
    /// Retrieval keys (`get`, `gets`, `gat`, `gats`, `mg`): memcached's `cmd_get`.
    pub cmd_get: Counter,
    /// Storage commands (`set`...`cas`, `ms`): `cmd_set`.
    pub cmd_set: Counter,
    /// `flush_all`: `cmd_flush`.
    pub cmd_flush: Counter,
    /// `touch`, `gat`, `gats`, `mg T`: `cmd_touch`.
    pub cmd_touch: Counter,
    /// Retrieval keys found: `get_hits`.
    pub get_hits: Counter,
    /// Retrieval keys not found (after the read-through load): `get_misses`.
    pub get_misses: Counter,
    /// `delete_hits`.
    pub delete_hits: Counter,
    /// `delete_misses`.
    pub delete_misses: Counter,
    /// `incr_hits`.
    pub incr_hits: Counter,
    /// `incr_misses`.
    pub incr_misses: Counter,
    /// `decr_hits`.
    pub decr_hits: Counter,
    /// `decr_misses`.
    pub decr_misses: Counter,
    /// `cas_hits`.
    pub cas_hits: Counter,
    /// `cas_misses`.
    pub cas_misses: Counter,
    /// `cas_badval`.
    pub cas_badval: Counter,
    /// `touch_hits`.
    pub touch_hits: Counter,
    /// `touch_misses`.
    pub touch_misses: Counter,
    /// Requests answered `SERVER_ERROR` because they cannot be served faithfully.
    pub unsupported: Counter,
}

/// Everything one core counts, padded so cores do not share cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub struct CoreStats {
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Per-group counters, in configuration order.
    pub groups: Vec<GroupCounters>,
    /// The memcached front end's command counters.
    pub memcache: McCounters,
}
