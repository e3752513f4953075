//! State every core reads and nobody mutates on the hot path: configuration turned
//! into lookup tables, the stats registry, the ring, and the shutdown flags.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use groupcached_protocol::Limits;

use crate::origin::{LoadContext, Origin};
use crate::peer::auth::ClusterSecret;
use crate::peer::health::PeerHealthMap;
use crate::stats::StatsRegistry;

/// A group as the cores see it.
pub struct GroupRuntime {
    /// Its name.
    pub name: String,
    /// Its origin; `None` for a pure cache.
    pub origin: Option<Arc<dyn Origin>>,
    /// Limits the log lines about its origin's errors, node-wide.
    pub origin_errors: LogLimiter,
}

/// How often at most one group's origin errors are logged.
pub const ORIGIN_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lets one log line through per interval, across threads, and counts the rest so
/// the next line can say how many were left out. Lock-free; meant for error paths.
#[derive(Debug)]
pub struct LogLimiter {
    interval_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval_ms: interval.as_millis().max(1) as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// At `now_ms` (milliseconds since any fixed start): `Some(n)` if a line may be
    /// logged, `n` being how many were suppressed since the last one; `None` if
    /// this one is suppressed (and counted).
    pub fn check(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Read-mostly state shared by all cores.
pub struct Shared {
    /// Number of cores (and shards).
    pub threads: usize,
    /// Groups in configuration order.
    pub groups: Vec<GroupRuntime>,
    group_index: HashMap<Vec<u8>, usize, ahash::RandomState>,
    /// Frame limits.
    pub limits: Limits,
    /// Limits handed to origin loads.
    pub load_ctx: LoadContext,
    /// Connection limit.
    pub max_connections: usize,
    /// Open connections on all cores.
    pub connections: AtomicUsize,
    /// Set once to make every core stop accepting and drain.
    pub shutdown: AtomicBool,
    /// Cores that finished draining.
    pub idle_cores: AtomicUsize,
    /// How long a draining core waits for in-flight work before it exits anyway.
    pub drain_timeout: Duration,
    /// Counters of every core.
    pub registry: Arc<StatsRegistry>,
    /// Limit on one request to a peer.
    pub peer_timeout: Duration,
    /// Share of peer-fetched values kept in the hot cache.
    pub hot_promote_ratio: f64,
    /// Node-wide reachability of each member, for logging transitions once.
    pub peer_health: PeerHealthMap,
    /// Limits the log lines about HELLOs from nodes with another member list (a
    /// client or node with a stale ring may reconnect in a loop).
    pub hello_mismatches: LogLimiter,
    /// Limits the log lines about HELLOs that speak as a member but are not one.
    pub hello_rejections: LogLimiter,
    /// Limits the log lines about members refusing our peer operations.
    pub peer_refusals: LogLimiter,
    /// The secret members prove before their peer operations are served; `None`:
    /// peer operations are not authenticated.
    pub cluster_secret: Option<ClusterSecret>,
    /// Consecutive timeouts that mark a member suspect; 0 = never.
    pub peer_suspect_after: u32,
    /// Limits the log lines about missing proofs of the cluster secret (peer
    /// operations before a proof, handshakes while we have no secret).
    pub peer_auth_failures: LogLimiter,
    /// Limits the log lines about wrong proofs of the cluster secret (a separate
    /// limit, so a differing secret is never hidden behind a missing one).
    pub peer_auth_wrong: LogLimiter,
}

impl Shared {
    /// Builds the shared state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        threads: usize,
        groups: Vec<GroupRuntime>,
        limits: Limits,
        load_ctx: LoadContext,
        max_connections: usize,
        drain_timeout: Duration,
        registry: Arc<StatsRegistry>,
        peer_timeout: Duration,
        hot_promote_ratio: f64,
    ) -> Shared {
        let group_index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.as_bytes().to_vec(), i))
            .collect();
        Shared {
            threads,
            groups,
            group_index,
            limits,
            load_ctx,
            max_connections,
            connections: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            idle_cores: AtomicUsize::new(0),
            drain_timeout,
            registry,
            peer_timeout,
            hot_promote_ratio,
            peer_health: PeerHealthMap::default(),
            hello_mismatches: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
            hello_rejections: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
            peer_refusals: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
            cluster_secret: None,
            peer_suspect_after: 0,
            peer_auth_failures: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
            peer_auth_wrong: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
        }
    }

    /// Sets how members are authenticated (`secret`) and when one is marked suspect
    /// (`suspect_after` consecutive timeouts; 0 = never). Called before the cores
    /// start.
    pub fn set_peer_security(&mut self, secret: Option<ClusterSecret>, suspect_after: u32) {
        self.cluster_secret = secret;
        self.peer_suspect_after = suspect_after;
    }

    /// The index of the group named `name`.
    #[inline]
    pub fn group(&self, name: &[u8]) -> Option<usize> {
        self.group_index.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_one_line_through_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.check(0), Some(0));
        assert_eq!(l.check(1), None);
        assert_eq!(l.check(9_999), None);
        assert_eq!(l.check(10_000), Some(2));
        assert_eq!(l.check(10_001), None);
        assert_eq!(l.check(25_000), Some(1));
        assert_eq!(l.check(25_000), None);
    }
}
