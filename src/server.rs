//! Starting and stopping a server: bind first (so tests and clusters learn real
//! ports), run second, shut down gracefully.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use groupcached_protocol::{Limits, HEADER_LEN, LENGTH_PREFIX_LEN};
use mio::{Poll, Waker};

use crate::config::Config;
use crate::core::mailbox::Remote;
use crate::core::{Core, CoreParts, WAKER_TOKEN};
use crate::error::StartError;
use crate::membership::PeerSource;
use crate::origin::{self, GroupLoaderConfig, LoadContext, LoaderPool};
use crate::shard::GroupSpec;
use crate::shared::{GroupRuntime, LogLimiter, Shared, ORIGIN_ERROR_LOG_INTERVAL};
use crate::stats::StatsRegistry;
use membership::{Control, Membership};

mod membership;

/// Entry point of the server library.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Validates `cfg` and binds one listener per core on its address. Nothing is
    /// served until [`BoundServer::run`].
    pub fn bind(cfg: Config) -> Result<BoundServer, StartError> {
        cfg.validate()?;
        cfg.check_environment()?;
        let listeners =
            crate::listener::bind_reuseport(cfg.listen, cfg.threads).map_err(|source| {
                StartError::Bind {
                    addr: cfg.listen,
                    source,
                }
            })?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let metrics = match cfg.metrics_listen {
            Some(addr) => Some(
                crate::metrics::http::bind(addr)
                    .map_err(|source| StartError::MetricsBind { addr, source })?,
            ),
            None => None,
        };
        let memcache = match cfg.memcache_listen {
            Some(addr) => {
                let bind_err = |source| StartError::Bind { addr, source };
                let ls = crate::listener::bind_reuseport(addr, cfg.threads).map_err(bind_err)?;
                let bound = ls[0].local_addr().map_err(bind_err)?;
                Some((ls, bound))
            }
            None => None,
        };
        Ok(BoundServer {
            cfg,
            listeners,
            local_addr,
            metrics,
            memcache,
        })
    }
}

/// A server whose listeners are bound but whose cores are not running yet.
#[derive(Debug)]
pub struct BoundServer {
    cfg: Config,
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    metrics: Option<std::net::TcpListener>,
    /// The memcached front end's listeners (one per core) and their address.
    memcache: Option<(Vec<std::net::TcpListener>, SocketAddr)>,
}

impl BoundServer {
    /// The memcached front end's address, if `--memcache-listen` is set (with the
    /// real port when 0 was asked for).
    pub fn memcache_addr(&self) -> Option<SocketAddr> {
        self.memcache.as_ref().map(|(_, a)| *a)
    }

    /// The address clients can connect to (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint, if `--metrics-listen` is set (with the
    /// real port when 0 was asked for).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The configuration being served.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Starts the loader pool and one thread per core.
    pub fn run(self) -> Result<ServerHandle, StartError> {
        let cfg = self.cfg;
        let threads = cfg.threads;
        let io_err = |what| move |source| StartError::Io { what, source };

        let registry = Arc::new(StatsRegistry::new(
            threads,
            &cfg.groups
                .iter()
                .map(|g| (g.name.clone(), g.cache_bytes))
                .collect::<Vec<_>>(),
        ));
        let groups = cfg
            .groups
            .iter()
            .map(|g| GroupRuntime {
                name: g.name.clone(),
                origin: origin::build(&g.origin, cfg.load_timeout),
                origin_errors: LogLimiter::new(ORIGIN_ERROR_LOG_INTERVAL),
            })
            .collect::<Vec<_>>();
        let node_id = cfg
            .advertise
            .clone()
            .unwrap_or_else(|| self.local_addr.to_string());
        let membership = Membership {
            source: cfg.peers.clone(),
            node_id: node_id.clone(),
            local_addr: self.local_addr,
            vnodes: cfg.vnodes,
            refresh: cfg.peers_refresh,
        };
        let members = match cfg.peers.read() {
            Ok(m) => m,
            Err(e) => {
                log::warn!("membership: {e}; starting as a single node until it can be read");
                Vec::new()
            }
        };
        let topology = Arc::new(membership.topology(&members));
        log::info!(
            "this node is {}; {} member{} (ring fingerprint {:016x}, {} vnodes): {}",
            topology.self_name(),
            topology.ring.len(),
            if topology.ring.len() == 1 { "" } else { "s" },
            topology.ring.fingerprint(),
            cfg.vnodes,
            topology.ring.members().join(", ")
        );
        // A GET response carries 8 header bytes after the prefix plus an 8-byte TTL.
        let max_value = cfg.max_frame - (HEADER_LEN - LENGTH_PREFIX_LEN) - 8;
        let mut shared = Arc::new(Shared::new(
            threads,
            groups,
            Limits::with_max_frame(cfg.max_frame),
            LoadContext {
                max_size: max_value,
                timeout: cfg.load_timeout,
            },
            cfg.max_connections,
            cfg.load_timeout + Duration::from_secs(1),
            registry.clone(),
            cfg.peer_timeout,
            cfg.hot_promote_ratio,
        ));
        if let Some(s) = Arc::get_mut(&mut shared) {
            // Not shared with anyone yet: the peer settings go in before the cores start.
            s.set_peer_security(cfg.cluster_secret.clone(), cfg.peer_suspect_after);
        }
        log_peer_security(&cfg);
        let seed = cfg.hot_promote_seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
        });

        // Each group gets its own loader threads and queue, so a slow origin can only
        // hold up its own group's loads.
        let loader_groups = cfg
            .groups
            .iter()
            .zip(&shared.groups)
            .map(|(g, rt)| GroupLoaderConfig {
                name: g.name.clone(),
                has_origin: rt.origin.is_some(),
                threads: g.loader_threads.unwrap_or(cfg.loader_threads),
                queue: g.loader_queue.unwrap_or(cfg.loader_queue),
                max_item: cfg.max_item_size,
                shard_budget: (g.cache_bytes / threads as u64) as usize,
                too_large_ttl: cfg.too_large_ttl,
            })
            .collect::<Vec<_>>();
        let loader = LoaderPool::start(&loader_groups, &registry.loaders)
            .map_err(io_err("loader threads"))?;
        let metrics = match self.metrics {
            Some(listener) => {
                let m = crate::metrics::http::MetricsServer::start(listener, shared.clone())
                    .map_err(io_err("metrics thread"))?;
                log::info!(
                    "serving metrics on http://{}/metrics (health: /healthz)",
                    m.local_addr()
                );
                Some(m)
            }
            None => None,
        };

        let mut mc = crate::core::memcache::McSettings::from_config(&cfg);
        let mut mc_listeners: Vec<Option<std::net::TcpListener>> = match self.memcache {
            Some((ls, addr)) => {
                log::info!("serving the memcached text and meta protocols on {addr}");
                mc.addr = Some(addr);
                ls.into_iter().map(Some).collect()
            }
            None => (0..threads).map(|_| None).collect(),
        };
        let mut polls = Vec::with_capacity(threads);
        let mut remotes = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        let mut sleeping = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(io_err("poll instance"))?;
            let waker =
                Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).map_err(io_err("waker"))?);
            let (tx, rx) = crossbeam_channel::unbounded();
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            remotes.push(Remote::new(tx, waker, flag.clone()));
            sleeping.push(flag);
            inboxes.push(rx);
            polls.push(poll);
        }

        let (control, control_rx) = crossbeam_channel::unbounded();
        let mut handles = Vec::with_capacity(threads);
        let parts = polls
            .into_iter()
            .zip(inboxes)
            .zip(self.listeners)
            .enumerate();
        for (id, ((poll, inbox), listener)) in parts {
            let specs = cfg
                .groups
                .iter()
                .zip(&shared.groups)
                .map(|(g, rt)| GroupSpec {
                    budget: (g.cache_bytes / threads as u64) as usize,
                    max_item: cfg.max_item_size,
                    ttl: g.ttl,
                    has_origin: rt.origin.is_some(),
                    hot_ttl: cfg.hot_ttl,
                })
                .collect();
            let stats = registry.cores[id].clone();
            // Published before the core's thread runs, so that STATS and /metrics
            // never show an empty ring between "listening" and the core's start.
            stats.node.members.set(topology.ring.len() as u64);
            stats.node.ring_fingerprint.set(topology.ring.fingerprint());
            let parts = CoreParts {
                id,
                poll,
                listener: mio::net::TcpListener::from_std(listener),
                mc_listener: mc_listeners[id].take().map(mio::net::TcpListener::from_std),
                mc,
                shared: shared.clone(),
                groups: specs,
                load_timeout: cfg.load_timeout,
                inbox,
                me: remotes[id].clone(),
                remotes: remotes.clone(),
                loader: loader.handle(),
                stats,
                topology: topology.clone(),
                seed: seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                sleeping: sleeping[id].clone(),
                conn_limits: crate::core::conn::ConnLimits::from_config(&cfg),
            };
            let trigger = ShutdownTrigger {
                shared: shared.clone(),
                remotes: remotes.clone(),
                control: control.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("gc-core-{id}"))
                .spawn(move || match Core::new(parts) {
                    Ok(core) => core.run(),
                    Err(e) => {
                        log::error!("core {id} cannot start: {e}; shutting down");
                        trigger.shutdown();
                    }
                })
                .map_err(io_err("core thread"))?;
            handles.push(handle);
        }
        if !matches!(cfg.peers, PeerSource::Static(_)) {
            let cores = remotes.clone();
            std::thread::Builder::new()
                .name("gc-membership".into())
                .spawn(move || membership.run(members, cores, control_rx))
                .map_err(io_err("membership thread"))?;
        }
        Ok(ServerHandle {
            trigger: ShutdownTrigger {
                shared,
                remotes,
                control,
            },
            threads: handles,
            loader,
            local_addr: self.local_addr,
            metrics,
        })
    }
}

/// Starts a graceful shutdown from any thread (a signal handler thread, a test).
#[derive(Clone)]
pub struct ShutdownTrigger {
    shared: Arc<Shared>,
    remotes: Vec<Remote>,
    control: Sender<Control>,
}

impl ShutdownTrigger {
    /// Stops accepting, answers requests already read, closes connections, and lets
    /// the cores exit. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        let _ = self.control.send(Control::Stop);
        for r in &self.remotes {
            r.wake();
        }
    }

    /// Re-reads the member list now (what SIGHUP does); a no-op for `--peers`.
    pub fn reload_members(&self) {
        let _ = self.control.send(Control::Reload);
    }
}

/// A running server.
pub struct ServerHandle {
    trigger: ShutdownTrigger,
    threads: Vec<JoinHandle<()>>,
    loader: LoaderPool,
    local_addr: SocketAddr,
    metrics: Option<crate::metrics::http::MetricsServer>,
}

impl ServerHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that can start shutdown from another thread.
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Starts a graceful shutdown (see [`ShutdownTrigger::shutdown`]).
    pub fn shutdown(&self) {
        self.trigger.shutdown();
    }

    /// The address of the metrics endpoint, if one runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// Every metric in the Prometheus text format, as `GET /metrics` serves it
    /// (available whether or not the endpoint runs).
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.trigger.shared.registry)
    }

    /// Every counter, summed over cores, under its STATS name.
    pub fn stats(&self) -> Vec<(String, u64)> {
        self.trigger.shared.registry.snapshot()
    }

    /// Waits for every core to stop (after a shutdown).
    pub fn join(mut self) {
        self.join_threads();
    }

    fn join_threads(&mut self) {
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                log::error!("a core thread panicked");
            }
        }
        self.loader.shutdown();
        if let Some(mut m) = self.metrics.take() {
            m.stop();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.trigger.shutdown();
            self.join_threads();
        }
    }
}

/// Tells the operator at start how members are authenticated (once), with the
/// secret file's warnings; never the secret.
fn log_peer_security(cfg: &Config) {
    match &cfg.cluster_secret {
        Some(secret) => {
            for w in secret.warnings() {
                log::warn!("--cluster-secret-file: {w}");
            }
            let from = secret.path().map_or_else(
                || "the embedding program".to_string(),
                |p| p.display().to_string(),
            );
            log::info!("peer operations need a proof of the cluster secret (from {from})");
        }
        // A node that can never have other members has no peer operations to protect
        // (every one is refused).
        None if matches!(&cfg.peers, crate::membership::PeerSource::Static(l) if l.is_empty()) => {}
        None => log::warn!(
            "no --cluster-secret-file: peer operations are unauthenticated; anyone who can \
             reach this port can act as a member named in the member list"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupConfig, OriginSpec};
    use crate::origin::{LoadContext, Loaded, Origin, OriginError};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Barrier;

    /// A Rust origin that counts its loads and takes a while, so concurrent misses overlap.
    struct Counting {
        loads: AtomicUsize,
    }

    impl Origin for Counting {
        fn load(&self, key: &[u8], _: &LoadContext) -> Result<Option<Loaded>, OriginError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            if key == b"missing" {
                return Ok(None);
            }
            if key == b"panic" {
                panic!("embedded origin bug");
            }
            Ok(Some(Loaded::new([b"v:", key].concat())))
        }
    }

    #[test]
    fn embedded_origin_loads_each_key_once_under_concurrency() {
        let origin = Arc::new(Counting {
            loads: AtomicUsize::new(0),
        });
        let mut cfg = Config::for_test();
        cfg.groups = vec![GroupConfig {
            origin: OriginSpec::Custom(origin.clone()),
            ..GroupConfig::new("emb")
        }];
        let handle = Server::bind(cfg).unwrap().run().unwrap();
        let addr = handle.local_addr();
        let barrier = Arc::new(Barrier::new(40));
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut c = groupcached_client::Client::connect(addr).unwrap();
                    barrier.wait();
                    c.get("emb", "k").unwrap().map(|v| v.into_bytes())
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Some(b"v:k".to_vec()));
        }
        assert_eq!(origin.loads.load(Ordering::SeqCst), 1);

        let mut c = groupcached_client::Client::connect(addr).unwrap();
        assert_eq!(c.get("emb", "missing").unwrap(), None);
        // A panicking origin answers an error and the server keeps serving.
        let err = c.get("emb", "panic").unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(
            c.get("emb", "k").unwrap().map(|v| v.into_bytes()),
            Some(b"v:k".to_vec())
        );
        let stats: std::collections::HashMap<_, _> = handle.stats().into_iter().collect();
        assert_eq!(stats["group.emb.local_loads"], 2);
        assert_eq!(stats["group.emb.local_load_errs"], 1);
        handle.shutdown();
        handle.join();
    }
}
