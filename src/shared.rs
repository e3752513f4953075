//! State every core reads and nobody mutates on the hot path: configuration turned
//! into lookup tables, the stats registry, the ring, and the shutdown flags.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use groupcached_protocol::Limits;

use crate::origin::{LoadContext, Origin};
use crate::stats::StatsRegistry;

/// A group as the cores see it.
pub struct GroupRuntime {
    /// Its name.
    pub name: String,
    /// Its origin; `None` for a pure cache.
    pub origin: Option<Arc<dyn Origin>>,
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
    /// This node's advertised name.
    pub node_id: String,
    /// Limit on one request to a peer.
    pub peer_timeout: Duration,
    /// Share of peer-fetched values kept in the hot cache.
    pub hot_promote_ratio: f64,
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
        node_id: String,
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
            node_id,
            peer_timeout,
            hot_promote_ratio,
        }
    }

    /// The index of the group named `name`.
    #[inline]
    pub fn group(&self, name: &[u8]) -> Option<usize> {
        self.group_index.get(name).copied()
    }
}
