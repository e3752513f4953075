//! Every metric the endpoint exports, as tables: name, type, help text (naming the
//! STATS counter it mirrors) and which counter of the registry it reads. Adding a
//! metric is adding a row here; `render` in `mod.rs` walks the tables.

use std::sync::atomic::AtomicU64;

use super::exposition::Kind;
use crate::stats::{
    CacheCounters, Counter, GroupCounters, Histogram, LoaderCounters, NodeCounters,
};

pub(super) type NodePick = fn(&NodeCounters) -> &Counter;
pub(super) type GroupPick = fn(&GroupCounters) -> u64;
pub(super) type CachePick = fn(&CacheCounters) -> u64;

/// Node-wide counters summed over cores: (name, kind, help, STATS name, counter).
pub(super) const NODE: &[(&str, Kind, &str, NodePick)] = &[
    (
        "groupcached_connections",
        Kind::Gauge,
        "Open client and peer connections (STATS curr_connections).",
        |n| &n.curr_connections,
    ),
    (
        "groupcached_connections_total",
        Kind::Counter,
        "Connections accepted since start (STATS total_connections).",
        |n| &n.total_connections,
    ),
    (
        "groupcached_rejected_connections_total",
        Kind::Counter,
        "Connections refused because of --max-connections (STATS rejected_connections).",
        |n| &n.rejected_connections,
    ),
    (
        "groupcached_protocol_errors_total",
        Kind::Counter,
        "Frames that could not be decoded, each answered with an error (STATS protocol_errors).",
        |n| &n.protocol_errors,
    ),
    (
        "groupcached_requests_total",
        Kind::Counter,
        "Requests of every op received from clients and peers (STATS requests).",
        |n| &n.requests,
    ),
    (
        "groupcached_peer_connections",
        Kind::Gauge,
        "Outgoing peer connections currently up, over all cores (STATS peer_connections).",
        |n| &n.peer_connections,
    ),
    (
        "groupcached_ring_mismatches_total",
        Kind::Counter,
        "HELLOs from or to peers whose ring fingerprint differs from ours (STATS ring_mismatches).",
        |n| &n.ring_mismatches,
    ),
    (
        "groupcached_invalidate_errors_total",
        Kind::Counter,
        "INVALIDATEs after a write that were not acknowledged (STATS invalidate_errors).",
        |n| &n.invalidate_errors,
    ),
    (
        "groupcached_hello_rejected_total",
        Kind::Counter,
        "HELLOs that spoke as a member with a node id not in our member list (STATS hello_rejected).",
        |n| &n.hello_rejected,
    ),
    (
        "groupcached_peer_ops_refused_total",
        Kind::Counter,
        "Peer operations refused with FORBIDDEN or NOT_OWNER (STATS peer_ops_refused).",
        |n| &n.peer_ops_refused,
    ),
    (
        "groupcached_peer_auth_failures_total",
        Kind::Counter,
        "Failed or missing proofs of the cluster secret, in either direction (STATS peer_auth_failures).",
        |n| &n.peer_auth_failures,
    ),
    (
        "groupcached_demoted_total",
        Kind::Counter,
        "Main-cache entries demoted to hot copies by a ring change (STATS demoted).",
        |n| &n.demoted,
    ),
    (
        "groupcached_shard_handoffs_total",
        Kind::Counter,
        "Connections moved to the core a SHARD request asked for (STATS shard_handoffs).",
        |n| &n.shard_handoffs,
    ),
    (
        "groupcached_core_hops_total",
        Kind::Counter,
        "Keyed requests that hopped to the core holding their key's shard (STATS core_hops).",
        |n| &n.core_hops,
    ),
    (
        "groupcached_connection_buffer_bytes",
        Kind::Gauge,
        "Bytes held in client connections' read buffers and output queues (STATS conn_buffer_bytes).",
        |n| &n.conn_buffer_bytes,
    ),
    (
        "groupcached_idle_timeouts_total",
        Kind::Counter,
        "Connections closed by --idle-timeout (STATS idle_timeouts).",
        |n| &n.idle_timeouts,
    ),
    (
        "groupcached_frame_timeouts_total",
        Kind::Counter,
        "Connections closed because a frame did not complete within --frame-timeout (STATS frame_timeouts).",
        |n| &n.frame_timeouts,
    ),
    (
        "groupcached_output_overflows_total",
        Kind::Counter,
        "Connections closed because their unsent output passed --max-conn-output (STATS output_overflows).",
        |n| &n.output_overflows,
    ),
    (
        "groupcached_buffer_memory_pauses_total",
        Kind::Counter,
        "Times a connection stopped being read because connection buffers reached --max-buffer-memory (STATS buffer_memory_pauses).",
        |n| &n.buffer_memory_pauses,
    ),
];

/// Per-group counters: (name, help, counter); all counters.
pub(super) const GROUP: &[(&str, &str, GroupPick)] = &[
    (
        "groupcached_gets_total",
        "GET requests from clients plus FETCH requests from peers (STATS gets).",
        |g| g.gets(),
    ),
    (
        "groupcached_cache_hits_total",
        "Gets answered from the main or hot cache (STATS cache_hits).",
        |g| g.cache_hits(),
    ),
    (
        "groupcached_peer_loads_total",
        "Values (or not-found answers) fetched from the key's owner (STATS peer_loads).",
        |g| g.peer_loads.get(),
    ),
    (
        "groupcached_peer_errors_total",
        "Fetches from the owner that failed or timed out, then loaded locally (STATS peer_errors).",
        |g| g.peer_errors.get(),
    ),
    (
        "groupcached_loads_total",
        "Gets that missed the cache (gets - cache_hits) (STATS loads).",
        |g| g.loads.get(),
    ),
    (
        "groupcached_loads_deduped_total",
        "Loads or fetches actually started after in-flight de-duplication (STATS loads_deduped).",
        |g| g.loads_deduped.get(),
    ),
    (
        "groupcached_local_loads_total",
        "Successful origin loads, including not-found answers (STATS local_loads).",
        |g| g.local_loads.get(),
    ),
    (
        "groupcached_local_load_errors_total",
        "Failed origin loads: errors, timeouts, panics (STATS local_load_errs).",
        |g| g.local_load_errs.get(),
    ),
    (
        "groupcached_server_requests_total",
        "FETCH requests received from peers (STATS server_requests).",
        |g| g.server_requests.get(),
    ),
    (
        "groupcached_sets_total",
        "SET requests and peers' STOREs (STATS sets).",
        |g| g.sets.get(),
    ),
    (
        "groupcached_deletes_total",
        "DELETE requests and peers' PURGEs (STATS deletes).",
        |g| g.deletes.get(),
    ),
];

/// Per-cache counters, labelled `group` and `cache` (`main`|`hot`).
pub(super) const CACHE: &[(&str, Kind, &str, CachePick)] = &[
    (
        "groupcached_cache_bytes",
        Kind::Gauge,
        "Bytes charged to the cache: key + value + per-entry overhead (STATS <cache>.bytes).",
        |c| c.bytes.get(),
    ),
    (
        "groupcached_cache_items",
        Kind::Gauge,
        "Entries in the cache (STATS <cache>.items).",
        |c| c.items.get(),
    ),
    (
        "groupcached_cache_lookups_total",
        Kind::Counter,
        "Lookups in the cache (STATS <cache>.gets).",
        |c| c.gets(),
    ),
    (
        "groupcached_cache_lookup_hits_total",
        Kind::Counter,
        "Lookups that found a live entry (STATS <cache>.hits).",
        |c| c.hits.get(),
    ),
    (
        "groupcached_cache_evictions_total",
        Kind::Counter,
        "Entries evicted to stay within the group's budget (STATS <cache>.evictions).",
        |c| c.evictions.get(),
    ),
];

pub(super) type LoaderPick = fn(&LoaderCounters) -> &AtomicU64;

/// Per-group origin-loader counters and gauges.
pub(super) const LOADER: &[(&str, Kind, &str, LoaderPick)] = &[
    (
        "groupcached_load_queue_waits_total",
        Kind::Counter,
        "Origin loads that waited in the group's queue because all its loader threads \
         were busy (STATS load_queue_waits).",
        |l| &l.queue_waits,
    ),
    (
        "groupcached_load_queue_timeouts_total",
        Kind::Counter,
        "Origin loads answered TIMEOUT after waiting in the queue past their deadline, \
         never started (STATS load_queue_timeouts).",
        |l| &l.queue_timeouts,
    ),
    (
        "groupcached_load_queue_rejections_total",
        Kind::Counter,
        "Origin loads refused with UNAVAILABLE because the group's queue was full \
         (STATS load_queue_full).",
        |l| &l.queue_full,
    ),
    (
        "groupcached_load_queue_depth",
        Kind::Gauge,
        "Origin loads waiting in the group's queue (STATS load_queue_depth).",
        |l| &l.queue_depth,
    ),
    (
        "groupcached_loads_running",
        Kind::Gauge,
        "Origin loads running on the group's loader threads (STATS loads_running).",
        |l| &l.running,
    ),
    (
        "groupcached_origin_too_large_total",
        Kind::Counter,
        "Origin values too large for the group to cache, answered TOO_LARGE \
         (STATS origin_too_large).",
        |l| &l.too_large,
    ),
    (
        "groupcached_too_large_remembered_total",
        Kind::Counter,
        "Loads answered TOO_LARGE from the memory of an earlier too-large value, \
         without asking the origin (STATS too_large_remembered).",
        |l| &l.too_large_remembered,
    ),
];

pub(super) type HistPick = fn(&GroupCounters) -> &Histogram;

/// Per-group latency histograms.
pub(super) const HISTOGRAMS: &[(&str, &str, HistPick)] = &[
    (
        "groupcached_origin_load_seconds",
        "Time from starting an origin load to its result reaching the core, in seconds \
         (every outcome, including errors and loads that finished after their waiters timed out).",
        |g| &g.origin_load,
    ),
    (
        "groupcached_peer_fetch_seconds",
        "Time from sending a FETCH to the key's owner to its answer or failure (error, \
         timeout, lost connection), in seconds.",
        |g| &g.peer_fetch,
    ),
];
