//! Counters. Each core writes only its own block (plain relaxed stores, no locked
//! instructions on the hot path); a reader sums the blocks of every core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A counter or gauge with a single writer (its core) and any number of readers.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning core may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. Only the owning core may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store suffice, and avoid a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets a gauge. Only the owning core may call this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Reads the value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one cache (main or hot) on one core.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Bytes charged (key + value + overhead).
    pub bytes: Counter,
    /// Entries.
    pub items: Counter,
    /// Lookups.
    pub gets: Counter,
    /// Lookups that found a live entry.
    pub hits: Counter,
    /// Entries evicted to stay within the budget.
    pub evictions: Counter,
}

/// One group's counters on one core, named as groupcache names them.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// GET and FETCH requests.
    pub gets: Counter,
    /// Requests answered from the main or hot cache.
    pub cache_hits: Counter,
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
    /// INVALIDATEs after a DELETE that could not be delivered.
    pub invalidate_errors: Counter,
    /// Members of the current ring (gauge, the same on every core).
    pub members: Counter,
}

/// Everything one core counts, padded so cores do not share cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub struct CoreStats {
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Per-group counters, in configuration order.
    pub groups: Vec<GroupCounters>,
}

/// The counters of every core, and what is needed to report them.
#[derive(Debug)]
pub struct StatsRegistry {
    /// One block per core.
    pub cores: Vec<Arc<CoreStats>>,
    /// Group names, in configuration order.
    pub group_names: Vec<String>,
    /// Group budgets in bytes.
    pub group_capacity: Vec<u64>,
    /// When the server started.
    pub started: Instant,
}

impl StatsRegistry {
    /// Counters for `threads` cores and the given groups.
    pub fn new(threads: usize, groups: &[(String, u64)]) -> StatsRegistry {
        StatsRegistry {
            cores: (0..threads)
                .map(|_| {
                    Arc::new(CoreStats {
                        node: NodeCounters::default(),
                        groups: groups.iter().map(|_| GroupCounters::default()).collect(),
                    })
                })
                .collect(),
            group_names: groups.iter().map(|g| g.0.clone()).collect(),
            group_capacity: groups.iter().map(|g| g.1).collect(),
            started: Instant::now(),
        }
    }

    /// Every counter summed over cores, with its STATS name: node counters plain
    /// (`curr_connections`), group counters as `group.<name>.<counter>` and cache
    /// counters as `group.<name>.main.<counter>` / `group.<name>.hot.<counter>`.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let sum = |f: &dyn Fn(&CoreStats) -> u64| self.cores.iter().map(|c| f(c)).sum::<u64>();
        let mut out = vec![
            ("uptime_secs".to_string(), self.started.elapsed().as_secs()),
            ("threads".to_string(), self.cores.len() as u64),
            (
                "curr_connections".to_string(),
                sum(&|c| c.node.curr_connections.get()),
            ),
            (
                "total_connections".to_string(),
                sum(&|c| c.node.total_connections.get()),
            ),
            (
                "rejected_connections".to_string(),
                sum(&|c| c.node.rejected_connections.get()),
            ),
            (
                "protocol_errors".to_string(),
                sum(&|c| c.node.protocol_errors.get()),
            ),
            ("requests".to_string(), sum(&|c| c.node.requests.get())),
            (
                "members".to_string(),
                self.cores.first().map_or(0, |c| c.node.members.get()),
            ),
            (
                "peer_connections".to_string(),
                sum(&|c| c.node.peer_connections.get()),
            ),
            (
                "ring_mismatches".to_string(),
                sum(&|c| c.node.ring_mismatches.get()),
            ),
            (
                "invalidate_errors".to_string(),
                sum(&|c| c.node.invalidate_errors.get()),
            ),
        ];
        for (gi, name) in self.group_names.iter().enumerate() {
            let g = |f: &dyn Fn(&GroupCounters) -> u64| sum(&|c| f(&c.groups[gi]));
            let p = format!("group.{name}.");
            out.push((format!("{p}capacity_bytes"), self.group_capacity[gi]));
            for (n, v) in [
                ("gets", g(&|x| x.gets.get())),
                ("cache_hits", g(&|x| x.cache_hits.get())),
                ("peer_loads", g(&|x| x.peer_loads.get())),
                ("peer_errors", g(&|x| x.peer_errors.get())),
                ("loads", g(&|x| x.loads.get())),
                ("loads_deduped", g(&|x| x.loads_deduped.get())),
                ("local_loads", g(&|x| x.local_loads.get())),
                ("local_load_errs", g(&|x| x.local_load_errs.get())),
                ("server_requests", g(&|x| x.server_requests.get())),
                ("sets", g(&|x| x.sets.get())),
                ("deletes", g(&|x| x.deletes.get())),
            ] {
                out.push((format!("{p}{n}"), v));
            }
            for (cache, pick) in [
                (
                    "main",
                    (|x: &GroupCounters| &x.main) as fn(&GroupCounters) -> &CacheCounters,
                ),
                ("hot", |x: &GroupCounters| &x.hot),
            ] {
                for (n, v) in [
                    ("bytes", g(&|x| pick(x).bytes.get())),
                    ("items", g(&|x| pick(x).items.get())),
                    ("gets", g(&|x| pick(x).gets.get())),
                    ("hits", g(&|x| pick(x).hits.get())),
                    ("evictions", g(&|x| pick(x).evictions.get())),
                ] {
                    out.push((format!("{p}{cache}.{n}"), v));
                }
            }
        }
        out
    }
}
