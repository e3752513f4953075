//! Server configuration: defaults, command-line flags, the TOML file, and validation.
//!
//! Precedence: flags > `GROUPCACHED_*` environment variables > `--config` file > defaults.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use groupcached_protocol::{DEFAULT_VNODES, MAX_GROUP_LEN, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::membership::PeerSource;
pub use crate::origin::OriginSpec;
use crate::peer::auth::ClusterSecret;
use crate::units::{format_duration, format_size, parse_duration, parse_size};

/// Default listen address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";
/// Name of the group the quick-start flags configure.
pub const DEFAULT_GROUP: &str = "default";
/// Default cache budget of a group (main + hot cache, all cores together).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
/// Default limit on simultaneous client and peer connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a shared origin load may take before its waiters get TIMEOUT.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of origin loader threads (origins block, so they need their own threads).
pub const DEFAULT_LOADER_THREADS: usize = 32;
/// Default number of origin loads of one group that may wait for a loader thread.
pub const DEFAULT_LOADER_QUEUE: usize = 1024;
/// Default time a key whose origin value was too large to cache is answered
/// TOO_LARGE without asking the origin again.
pub const DEFAULT_TOO_LARGE_TTL: Duration = Duration::from_secs(10);
/// Default largest value that is cached; a larger SET or origin value is TOO_LARGE.
pub const DEFAULT_MAX_ITEM_SIZE: usize = 8 << 20;
/// Default interval for re-resolving `--peers-dns` and checking `--peers-file`.
pub const DEFAULT_PEERS_REFRESH: Duration = Duration::from_secs(5);
/// Default limit on one request to a peer before it counts as a peer error.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `--peer-suspect-after`: three timeouts in a row open a member's breaker.
pub const DEFAULT_PEER_SUSPECT_AFTER: u32 = 3;
/// Default share of values fetched from peers that go into the hot cache (groupcache: 1 in 10).
pub const DEFAULT_HOT_PROMOTE_RATIO: f64 = 0.1;
/// Default bound on how long a hot-cache copy is served (its staleness after a DELETE
/// whose INVALIDATE did not arrive).
pub const DEFAULT_HOT_TTL: Duration = Duration::from_secs(60);
/// Default limit on how long a partly received frame may take to complete.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Smallest default of `--max-buffer-memory` (it is at least 4 × `--max-frame`).
pub const DEFAULT_MAX_BUFFER_MEMORY: usize = 256 << 20;

/// One group: a named namespace with its own budget, origin and default TTL.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Name clients use; `[A-Za-z0-9_-]`, 1..=64 bytes.
    pub name: String,
    /// Budget of the group's main + hot cache on this node, split evenly over cores.
    pub cache_bytes: u64,
    /// Where misses are loaded from.
    pub origin: OriginSpec,
    /// TTL for loaded values and for SETs that give none; `None` = never expire.
    pub ttl: Option<Duration>,
    /// This group's own origin loader threads; `None` = the server's `loader_threads`.
    pub loader_threads: Option<usize>,
    /// Loads of this group that may wait for one of its loader threads; `None` = the
    /// server's `loader_queue`.
    pub loader_queue: Option<usize>,
}

impl GroupConfig {
    /// A group with default budget, no origin and no TTL.
    pub fn new(name: impl Into<String>) -> Self {
        GroupConfig {
            name: name.into(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            origin: OriginSpec::None,
            ttl: None,
            loader_threads: None,
            loader_queue: None,
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every core listens on (SO_REUSEPORT); port 0 picks a free port.
    pub listen: SocketAddr,
    /// How this node names itself to peers and clients; default: the bound address.
    pub advertise: Option<String>,
    /// Worker threads (cores), each with its own event loop and cache shards.
    pub threads: usize,
    /// Groups served.
    pub groups: Vec<GroupConfig>,
    /// Largest frame accepted or sent (length prefix value).
    pub max_frame: usize,
    /// Largest value kept in a cache.
    pub max_item_size: usize,
    /// Simultaneous connections; more are answered UNAVAILABLE and closed.
    pub max_connections: usize,
    /// Limit on one shared origin load.
    pub load_timeout: Duration,
    /// Threads that run origin loads, per group (each group with an origin has its
    /// own, so a slow origin cannot starve another group's loads).
    pub loader_threads: usize,
    /// Loads per group that may wait for a loader thread; more are UNAVAILABLE.
    pub loader_queue: usize,
    /// How long a key whose origin value was too large to cache is answered
    /// TOO_LARGE without asking the origin; zero turns this off.
    pub too_large_ttl: Duration,
    /// Where the cluster's member list comes from.
    pub peers: PeerSource,
    /// Interval of `--peers-file` checks and `--peers-dns` lookups.
    pub peers_refresh: Duration,
    /// Limit on one request to a peer.
    pub peer_timeout: Duration,
    /// Consecutive peer requests timed out (with no answer in between) after which a
    /// member is marked suspect: its keys are loaded locally and writes skip it until
    /// it answers a PING probe. 0 turns the breaker off.
    pub peer_suspect_after: u32,
    /// The secret members prove in their handshake (`--cluster-secret-file`); peer
    /// operations are unauthenticated without one.
    pub cluster_secret: Option<ClusterSecret>,
    /// Share of peer-fetched values kept in the hot cache, 0.0..=1.0.
    pub hot_promote_ratio: f64,
    /// Seed of the hot-cache sampling (for reproducible tests); random when `None`.
    pub hot_promote_seed: Option<u64>,
    /// Longest a hot-cache copy is served.
    pub hot_ttl: Duration,
    /// Virtual nodes per member in the ring (every node must use the same value).
    pub vnodes: u32,
    /// Address of the HTTP endpoint serving `/metrics` and `/healthz`; off when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// A connection that completes no request (and takes none of its output) for this
    /// long is closed; off when `None` (the default).
    pub idle_timeout: Option<Duration>,
    /// A frame must arrive whole within this long of its first bytes, or its
    /// connection is closed; off when `None`.
    pub frame_timeout: Option<Duration>,
    /// Output queued on one connection past which it is closed; `None` derives it
    /// from `max_frame` (see [`Config::conn_output_limit`]).
    pub max_conn_output: Option<usize>,
    /// Memory all client connections' buffers may hold before the biggest stop
    /// being read; `None` derives it (see [`Config::buffer_memory_limit`]).
    pub max_buffer_memory: Option<usize>,
}

/// Command-line flags (each also readable from a `GROUPCACHED_*` variable).
#[derive(Debug, Parser)]
#[command(
    name = "groupcached",
    version,
    about = "A distributed cache-filling server: groupcache as a standalone, thread-per-core server.",
    after_help = "Origins: none | dir:PATH | http://host:port/prefix{key} | synthetic:size=N,delay_ms=D\n\
                  Sizes take units (64MiB, 1GiB); durations too (250ms, 10s, 5m).\n\
                  Metrics: --metrics-listen 127.0.0.1:9100 serves GET /metrics (Prometheus) and GET /healthz.\n\
                  --print-config shows the effective settings as a file for --config.\n\
                  Example: groupcached --origin dir:/srv/files --cache-size 256MiB"
)]
pub struct Args {
    /// TOML configuration file (see docs/operations.md); flags override it.
    #[arg(long, env = "GROUPCACHED_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7000].
    #[arg(long, env = "GROUPCACHED_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address peers and clients use for this node [default: the listen address].
    #[arg(long, env = "GROUPCACHED_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Worker threads [default: number of CPUs].
    #[arg(long, env = "GROUPCACHED_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Group the --cache-size/--origin/--ttl flags configure [default: default].
    #[arg(long, env = "GROUPCACHED_GROUP", value_name = "NAME")]
    pub group: Option<String>,
    /// Cache budget of the group [default: 64MiB].
    #[arg(long, env = "GROUPCACHED_CACHE_SIZE", value_name = "SIZE")]
    pub cache_size: Option<String>,
    /// Origin of the group [default: none].
    #[arg(long, env = "GROUPCACHED_ORIGIN", value_name = "SPEC")]
    pub origin: Option<String>,
    /// Default TTL of the group's items [default: never expire].
    #[arg(long, env = "GROUPCACHED_TTL", value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Largest frame accepted [default: 16MiB].
    #[arg(long, env = "GROUPCACHED_MAX_FRAME", value_name = "SIZE")]
    pub max_frame: Option<String>,
    /// Largest value kept in cache [default: 8MiB].
    #[arg(long, env = "GROUPCACHED_MAX_ITEM_SIZE", value_name = "SIZE")]
    pub max_item_size: Option<String>,
    /// Simultaneous connections [default: 10000].
    #[arg(long, env = "GROUPCACHED_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Limit on one origin load [default: 10s].
    #[arg(long, env = "GROUPCACHED_LOAD_TIMEOUT", value_name = "DURATION")]
    pub load_timeout: Option<String>,
    /// Origin loader threads of each group [default: 32].
    #[arg(long, env = "GROUPCACHED_LOADER_THREADS", value_name = "N")]
    pub loader_threads: Option<usize>,
    /// Origin loads of each group that may wait for a loader thread [default: 1024].
    #[arg(long, env = "GROUPCACHED_LOADER_QUEUE", value_name = "N")]
    pub loader_queue: Option<usize>,
    /// How long a key whose origin value was too large to cache is answered
    /// TOO_LARGE without asking the origin again; 0 turns it off [default: 10s].
    #[arg(long, env = "GROUPCACHED_TOO_LARGE_TTL", value_name = "DURATION")]
    pub too_large_ttl: Option<String>,
    /// Cluster members, comma-separated host:port (this node included or added).
    #[arg(
        long,
        env = "GROUPCACHED_PEERS",
        value_name = "A,B,C",
        value_delimiter = ','
    )]
    pub peers: Option<Vec<String>>,
    /// File with one member per line; re-read when it changes and on SIGHUP.
    #[arg(long, env = "GROUPCACHED_PEERS_FILE", value_name = "PATH")]
    pub peers_file: Option<PathBuf>,
    /// DNS name whose every A/AAAA record is a member, with the members' port.
    #[arg(long, env = "GROUPCACHED_PEERS_DNS", value_name = "NAME:PORT")]
    pub peers_dns: Option<String>,
    /// How often --peers-dns is re-resolved and --peers-file checked [default: 5s].
    #[arg(long, env = "GROUPCACHED_PEERS_REFRESH", value_name = "DURATION")]
    pub peers_refresh: Option<String>,
    /// Limit on one request to a peer [default: 2s].
    #[arg(long, env = "GROUPCACHED_PEER_TIMEOUT", value_name = "DURATION")]
    pub peer_timeout: Option<String>,
    /// Consecutive timed-out peer requests that mark a member suspect (its keys
    /// then load locally at once until it answers a probe); 0 = never [default: 3].
    #[arg(long, env = "GROUPCACHED_PEER_SUSPECT_AFTER", value_name = "N")]
    pub peer_suspect_after: Option<u32>,
    /// File holding the cluster's shared secret; members prove it in their
    /// handshake, and peer operations from connections that did not are refused
    /// [default: none, peer operations unauthenticated].
    #[arg(long, env = "GROUPCACHED_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Share of values fetched from peers kept in the hot cache [default: 0.1].
    #[arg(long, env = "GROUPCACHED_HOT_PROMOTE_RATIO", value_name = "RATIO")]
    pub hot_promote_ratio: Option<f64>,
    /// Seed of the hot-cache sampling, for reproducible tests [default: random].
    #[arg(long, env = "GROUPCACHED_HOT_PROMOTE_SEED", value_name = "N")]
    pub hot_promote_seed: Option<u64>,
    /// Longest a hot-cache copy is served [default: 60s].
    #[arg(long, env = "GROUPCACHED_HOT_TTL", value_name = "DURATION")]
    pub hot_ttl: Option<String>,
    /// Virtual nodes per member; must be the same on every node [default: 512].
    #[arg(long, env = "GROUPCACHED_VNODES", value_name = "N")]
    pub vnodes: Option<u32>,
    /// Serve Prometheus metrics (GET /metrics) and GET /healthz over HTTP on this
    /// address [default: off].
    #[arg(long, env = "GROUPCACHED_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Close a connection that completes no request for this long; 0 = never [default: 0].
    #[arg(long, env = "GROUPCACHED_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Close a connection whose frame is not complete this long after its first
    /// bytes; 0 = never [default: 30s].
    #[arg(long, env = "GROUPCACHED_FRAME_TIMEOUT", value_name = "DURATION")]
    pub frame_timeout: Option<String>,
    /// Close a connection with more unsent output than this [default: auto =
    /// 4MiB + 2 x --max-frame].
    #[arg(long, env = "GROUPCACHED_MAX_CONN_OUTPUT", value_name = "SIZE")]
    pub max_conn_output: Option<String>,
    /// Memory all connection buffers together may hold; past it the biggest
    /// connections stop being read [default: auto = max(256MiB, 4 x --max-frame)].
    #[arg(long, env = "GROUPCACHED_MAX_BUFFER_MEMORY", value_name = "SIZE")]
    pub max_buffer_memory: Option<String>,
    /// Print the effective configuration (flags, environment, file and defaults
    /// combined) as a TOML file for --config, then exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The TOML file's layout (also what `--print-config` writes).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_frame: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_item_size: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loader_threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loader_queue: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    too_large_ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers_dns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers_refresh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_suspect_after: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hot_promote_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hot_promote_seed: Option<SeedValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hot_ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vnodes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frame_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_conn_output: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_buffer_memory: Option<SizeValue>,
    #[serde(default)]
    group: Vec<FileGroup>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_size: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loader_threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loader_queue: Option<usize>,
}

/// A size in the file: a number of bytes or a string with a unit.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// A seed in the file: a TOML integer, or a string for values over 2^63 - 1 (which
/// TOML integers cannot hold).
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum SeedValue {
    Int(u64),
    Text(String),
}

impl SeedValue {
    fn value(&self) -> Result<u64, ConfigError> {
        match self {
            SeedValue::Int(n) => Ok(*n),
            SeedValue::Text(s) => s.trim().parse().map_err(|_| {
                ConfigError::new(
                    "hot_promote_seed",
                    format!("`{s}` is not a whole number in 0..=18446744073709551615"),
                )
            }),
        }
    }
}

impl SizeValue {
    fn bytes(&self, setting: &str) -> Result<u64, ConfigError> {
        match self {
            SizeValue::Bytes(n) => Ok(*n),
            SizeValue::Text(s) => parse_size(s).map_err(|m| ConfigError::new(setting, m)),
        }
    }
}

impl Config {
    /// Defaults: one group `default`, no origin, loopback port 7000.
    pub fn new() -> Config {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address is valid"),
            advertise: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            groups: vec![GroupConfig::new(DEFAULT_GROUP)],
            max_frame: groupcached_protocol::DEFAULT_MAX_FRAME,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            loader_threads: DEFAULT_LOADER_THREADS,
            loader_queue: DEFAULT_LOADER_QUEUE,
            too_large_ttl: DEFAULT_TOO_LARGE_TTL,
            peers: PeerSource::Static(Vec::new()),
            peers_refresh: DEFAULT_PEERS_REFRESH,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            peer_suspect_after: DEFAULT_PEER_SUSPECT_AFTER,
            cluster_secret: None,
            hot_promote_ratio: DEFAULT_HOT_PROMOTE_RATIO,
            hot_promote_seed: None,
            hot_ttl: DEFAULT_HOT_TTL,
            vnodes: DEFAULT_VNODES,
            metrics_listen: None,
            idle_timeout: None,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            max_conn_output: None,
            max_buffer_memory: None,
        }
    }

    /// A small configuration on a free loopback port, for tests.
    pub fn for_test() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid"),
            threads: 2,
            loader_threads: 4,
            ..Config::new()
        }
    }

    /// Builds the configuration from command-line arguments (the first is the program
    /// name), the environment and the file they name. `--help`/`--version` and usage
    /// errors come back as clap errors for the caller to print.
    pub fn from_args<I, T>(args: I) -> Result<Result<Config, ConfigError>, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(args)?;
        Ok(Config::from_parsed(&args))
    }

    /// Applies parsed flags (and the file they name) over the defaults, then validates.
    pub fn from_parsed(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::new("--config", file_error(path, &text, &e)))?
            }
            None => FileConfig::default(),
        };
        let mut cfg = Config::new();

        // The file.
        if let Some(v) = &file.listen {
            cfg.listen = parse_addr("listen", v)?;
        }
        cfg.advertise = file.advertise.clone();
        if let Some(v) = file.threads {
            cfg.threads = v;
        }
        if let Some(v) = &file.max_frame {
            cfg.max_frame = v.bytes("max_frame")? as usize;
        }
        if let Some(v) = &file.max_item_size {
            cfg.max_item_size = v.bytes("max_item_size")? as usize;
        }
        if let Some(v) = file.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = &file.load_timeout {
            cfg.load_timeout =
                parse_duration(v).map_err(|m| ConfigError::new("load_timeout", m))?;
        }
        if let Some(v) = file.loader_threads {
            cfg.loader_threads = v;
        }
        if let Some(v) = file.loader_queue {
            cfg.loader_queue = v;
        }
        if let Some(v) = &file.too_large_ttl {
            cfg.too_large_ttl =
                parse_duration(v).map_err(|m| ConfigError::new("too_large_ttl", m))?;
        }
        if let Some(v) = &file.metrics_listen {
            cfg.metrics_listen = parse_metrics_listen("metrics_listen", v)?;
        }
        cfg.apply_conn_limits(
            "",
            file.idle_timeout.as_deref(),
            file.frame_timeout.as_deref(),
            file.max_conn_output.as_ref(),
            file.max_buffer_memory.as_ref(),
        )?;
        let file_seed = file
            .hot_promote_seed
            .as_ref()
            .map(SeedValue::value)
            .transpose()?;
        cfg.apply_cluster(
            "",
            ClusterSettings {
                peers: file.peers.as_deref(),
                peers_file: file.peers_file.as_deref(),
                peers_dns: file.peers_dns.as_deref(),
                peers_refresh: file.peers_refresh.as_deref(),
                peer_timeout: file.peer_timeout.as_deref(),
                hot_promote_ratio: file.hot_promote_ratio,
                hot_promote_seed: file_seed,
                hot_ttl: file.hot_ttl.as_deref(),
                vnodes: file.vnodes,
            },
        )?;
        if !file.group.is_empty() {
            cfg.groups.clear();
            for g in &file.group {
                let setting = |field: &str| format!("group `{}` {field}", g.name);
                let mut gc = GroupConfig::new(&g.name);
                if let Some(v) = &g.cache_size {
                    gc.cache_bytes = v.bytes(&setting("cache_size"))?;
                }
                if let Some(v) = &g.origin {
                    gc.origin =
                        OriginSpec::parse(v).map_err(|m| ConfigError::new(setting("origin"), m))?;
                }
                if let Some(v) = &g.ttl {
                    gc.ttl = parse_ttl(v).map_err(|m| ConfigError::new(setting("ttl"), m))?;
                }
                gc.loader_threads = g.loader_threads;
                gc.loader_queue = g.loader_queue;
                cfg.groups.push(gc);
            }
        }

        // Flags and environment.
        if let Some(v) = &args.listen {
            cfg.listen = parse_addr("--listen", v)?;
        }
        if let Some(v) = &args.advertise {
            cfg.advertise = Some(v.clone());
        }
        if let Some(v) = args.threads {
            cfg.threads = v;
        }
        if let Some(v) = &args.max_frame {
            cfg.max_frame = parse_size(v).map_err(|m| ConfigError::new("--max-frame", m))? as usize;
        }
        if let Some(v) = &args.max_item_size {
            cfg.max_item_size =
                parse_size(v).map_err(|m| ConfigError::new("--max-item-size", m))? as usize;
        }
        if let Some(v) = args.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = &args.load_timeout {
            cfg.load_timeout =
                parse_duration(v).map_err(|m| ConfigError::new("--load-timeout", m))?;
        }
        if let Some(v) = args.loader_threads {
            cfg.loader_threads = v;
        }
        if let Some(v) = args.loader_queue {
            cfg.loader_queue = v;
        }
        if let Some(v) = &args.too_large_ttl {
            cfg.too_large_ttl =
                parse_duration(v).map_err(|m| ConfigError::new("--too-large-ttl", m))?;
        }
        if let Some(v) = &args.metrics_listen {
            cfg.metrics_listen = parse_metrics_listen("--metrics-listen", v)?;
        }
        let conn_size = |v: &Option<String>| v.as_ref().map(|t| SizeValue::Text(t.clone()));
        cfg.apply_conn_limits(
            "--",
            args.idle_timeout.as_deref(),
            args.frame_timeout.as_deref(),
            conn_size(&args.max_conn_output).as_ref(),
            conn_size(&args.max_buffer_memory).as_ref(),
        )?;
        cfg.apply_cluster(
            "--",
            ClusterSettings {
                peers: args.peers.as_deref(),
                peers_file: args.peers_file.as_deref(),
                peers_dns: args.peers_dns.as_deref(),
                peers_refresh: args.peers_refresh.as_deref(),
                peer_timeout: args.peer_timeout.as_deref(),
                hot_promote_ratio: args.hot_promote_ratio,
                hot_promote_seed: args.hot_promote_seed,
                hot_ttl: args.hot_ttl.as_deref(),
                vnodes: args.vnodes,
            },
        )?;
        if file.max_item_size.is_none() && args.max_item_size.is_none() {
            // The default follows a smaller --max-frame instead of contradicting it.
            cfg.max_item_size = cfg.max_item_size.min(cfg.max_frame.saturating_sub(64));
        }
        let group_flags = args.cache_size.is_some() || args.origin.is_some() || args.ttl.is_some();
        if args.group.is_some() || group_flags {
            let name = args
                .group
                .clone()
                .unwrap_or_else(|| DEFAULT_GROUP.to_string());
            let idx = match cfg.groups.iter().position(|g| g.name == name) {
                Some(i) => i,
                None if file.group.is_empty() && cfg.groups.len() == 1 => {
                    // Renaming the quick-start group rather than adding a second one.
                    cfg.groups[0].name = name;
                    0
                }
                None => {
                    cfg.groups.push(GroupConfig::new(name));
                    cfg.groups.len() - 1
                }
            };
            let g = &mut cfg.groups[idx];
            if let Some(v) = &args.cache_size {
                g.cache_bytes = parse_size(v).map_err(|m| ConfigError::new("--cache-size", m))?;
            }
            if let Some(v) = &args.origin {
                g.origin = OriginSpec::parse(v).map_err(|m| ConfigError::new("--origin", m))?;
            }
            if let Some(v) = &args.ttl {
                g.ttl = parse_ttl(v).map_err(|m| ConfigError::new("--ttl", m))?;
            }
        }
        // Peer security: flags over the file. The secret file is read now, so a
        // missing or empty one stops the start with an error naming the setting.
        if let Some(v) = file.peer_suspect_after {
            cfg.peer_suspect_after = v;
        }
        if let Some(v) = args.peer_suspect_after {
            cfg.peer_suspect_after = v;
        }
        let secret_file = match (&args.cluster_secret_file, &file.cluster_secret_file) {
            (Some(p), _) => Some(("--cluster-secret-file", p)),
            (None, Some(p)) => Some(("cluster_secret_file", p)),
            (None, None) => None,
        };
        if let Some((setting, path)) = secret_file {
            // An empty value (e.g. GROUPCACHED_CLUSTER_SECRET_FILE="") means none.
            if !path.as_os_str().is_empty() {
                cfg.cluster_secret =
                    Some(ClusterSecret::from_file(path).map_err(|m| ConfigError::new(setting, m))?);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies the cluster settings of one layer (file or flags). `prefix` is how
    /// that layer spells a setting (`--` for flags, nothing for the file), so
    /// errors name the setting as the operator wrote it.
    fn apply_cluster(&mut self, prefix: &str, c: ClusterSettings<'_>) -> Result<(), ConfigError> {
        let name = |flag: &str| {
            if prefix.is_empty() {
                flag.replace('-', "_")
            } else {
                format!("{prefix}{flag}")
            }
        };
        let sources = [
            c.peers.is_some(),
            c.peers_file.is_some(),
            c.peers_dns.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(ConfigError::new(
                name("peers"),
                "give only one of peers, peers-file and peers-dns",
            ));
        }
        if let Some(list) = c.peers {
            let members: Vec<String> = list
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            for m in &members {
                check_member(m).map_err(|e| ConfigError::new(name("peers"), e))?;
            }
            self.peers = PeerSource::Static(members);
        }
        if let Some(path) = c.peers_file {
            self.peers = PeerSource::File(path.to_path_buf());
        }
        if let Some(dns) = c.peers_dns {
            let (host, port) = dns
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(name("peers-dns"), format!("`{dns}` is not NAME:PORT"))
                })?;
            self.peers = PeerSource::Dns { host, port };
        }
        let dur =
            |flag: &str, v: &str| parse_duration(v).map_err(|m| ConfigError::new(name(flag), m));
        if let Some(v) = c.peers_refresh {
            self.peers_refresh = dur("peers-refresh", v)?;
        }
        if let Some(v) = c.peer_timeout {
            self.peer_timeout = dur("peer-timeout", v)?;
        }
        if let Some(v) = c.hot_ttl {
            self.hot_ttl = dur("hot-ttl", v)?;
        }
        if let Some(v) = c.hot_promote_ratio {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::new(
                    name("hot-promote-ratio"),
                    format!("{v} is not between 0 and 1"),
                ));
            }
            self.hot_promote_ratio = v;
        }
        if let Some(v) = c.hot_promote_seed {
            self.hot_promote_seed = Some(v);
        }
        if let Some(v) = c.vnodes {
            if !(1..=65_536).contains(&v) {
                return Err(ConfigError::new(name("vnodes"), "must be in 1..=65536"));
            }
            self.vnodes = v;
        }
        Ok(())
    }

    /// Applies one layer's connection limits (`prefix` as in `apply_cluster`). A
    /// duration of `0` turns a timeout off; a size of `auto` derives it.
    fn apply_conn_limits(
        &mut self,
        prefix: &str,
        idle_timeout: Option<&str>,
        frame_timeout: Option<&str>,
        max_conn_output: Option<&SizeValue>,
        max_buffer_memory: Option<&SizeValue>,
    ) -> Result<(), ConfigError> {
        let name = |flag: &str| {
            if prefix.is_empty() {
                flag.replace('-', "_")
            } else {
                format!("{prefix}{flag}")
            }
        };
        let timeout = |flag: &str, v: &str| {
            parse_duration(v)
                .map(|d| (!d.is_zero()).then_some(d))
                .map_err(|m| ConfigError::new(name(flag), m))
        };
        let size = |flag: &str, v: &SizeValue| match v {
            SizeValue::Text(t) if t.trim() == "auto" => Ok(None),
            _ => v.bytes(&name(flag)).map(|n| Some(n as usize)),
        };
        if let Some(v) = idle_timeout {
            self.idle_timeout = timeout("idle-timeout", v)?;
        }
        if let Some(v) = frame_timeout {
            self.frame_timeout = timeout("frame-timeout", v)?;
        }
        if let Some(v) = max_conn_output {
            self.max_conn_output = size("max-conn-output", v)?;
        }
        if let Some(v) = max_buffer_memory {
            self.max_buffer_memory = size("max-buffer-memory", v)?;
        }
        Ok(())
    }

    /// Output queued on one connection past which it is closed: `--max-conn-output`,
    /// or by default 4 MiB (where reading pauses) + 2 × `--max-frame`, so a client
    /// that reads is never closed for one large answer arriving while it is paused.
    pub fn conn_output_limit(&self) -> usize {
        self.max_conn_output
            .unwrap_or((4 << 20) + 2 * self.max_frame)
    }

    /// Memory all client connections' buffers may hold: `--max-buffer-memory`, or by
    /// default the larger of 256 MiB and 4 × `--max-frame`.
    pub fn buffer_memory_limit(&self) -> usize {
        self.max_buffer_memory
            .unwrap_or(DEFAULT_MAX_BUFFER_MEMORY.max(4 * self.max_frame))
    }

    /// Checks the connection limits (part of [`Config::validate`]).
    fn validate_conn_limits(&self) -> Result<(), ConfigError> {
        if let Some(d) = self.idle_timeout {
            if d < Duration::from_secs(1) {
                return Err(ConfigError::new(
                    "--idle-timeout",
                    "must be 0 (off) or at least 1s",
                ));
            }
        }
        if let Some(d) = self.frame_timeout {
            if d < Duration::from_millis(100) {
                return Err(ConfigError::new(
                    "--frame-timeout",
                    "must be 0 (off) or at least 100ms",
                ));
            }
        }
        let min_output = (4 << 20) + self.max_frame;
        if self.conn_output_limit() < min_output {
            return Err(ConfigError::new(
                "--max-conn-output",
                format!(
                    "must be at least 4MiB + --max-frame ({min_output} bytes), so one \
                     largest answer fits above the 4MiB backpressure mark"
                ),
            ));
        }
        let min_memory = 2 * self.max_frame;
        if self.buffer_memory_limit() < min_memory {
            return Err(ConfigError::new(
                "--max-buffer-memory",
                format!(
                    "must be at least 2 x --max-frame ({min_memory} bytes), so a largest \
                     frame can always be received"
                ),
            ));
        }
        Ok(())
    }

    /// Checks ranges and consistency; every message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peer_timeout.is_zero() {
            return Err(ConfigError::new("--peer-timeout", "must be more than 0"));
        }
        if self.peers_refresh < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "--peers-refresh",
                "must be at least 100ms",
            ));
        }
        if !(1..=1024).contains(&self.threads) {
            return Err(ConfigError::new(
                "--threads",
                format!("{} is not in 1..=1024", self.threads),
            ));
        }
        if self.groups.is_empty() {
            return Err(ConfigError::new("groups", "at least one group is needed"));
        }
        if !(1024..=1 << 30).contains(&self.max_frame) {
            return Err(ConfigError::new(
                "--max-frame",
                "must be between 1KiB and 1GiB",
            ));
        }
        if self.max_item_size == 0 || self.max_item_size > self.max_frame {
            return Err(ConfigError::new(
                "--max-item-size",
                format!(
                    "must be between 1 byte and --max-frame ({} bytes)",
                    self.max_frame
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be at least 1"));
        }
        if self.load_timeout.is_zero() {
            return Err(ConfigError::new("--load-timeout", "must be more than 0"));
        }
        if !(1..=4096).contains(&self.loader_threads) {
            return Err(ConfigError::new("--loader-threads", "must be in 1..=4096"));
        }
        if !(1..=MAX_LOADER_QUEUE).contains(&self.loader_queue) {
            return Err(ConfigError::new(
                "--loader-queue",
                format!("{} is not in 1..={MAX_LOADER_QUEUE}", self.loader_queue),
            ));
        }
        if let Some(a) = &self.advertise {
            check_member(a).map_err(|e| ConfigError::new("--advertise", e))?;
        }
        match &self.peers {
            PeerSource::Static(list) => {
                for m in list {
                    check_member(m).map_err(|e| ConfigError::new("--peers", e))?;
                }
            }
            PeerSource::File(_) | PeerSource::Dns { .. } => {}
        }
        for (i, g) in self.groups.iter().enumerate() {
            let valid = !g.name.is_empty()
                && g.name.len() <= MAX_GROUP_LEN
                && g.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "group name",
                    format!(
                        "`{}` must be 1..={MAX_GROUP_LEN} characters of A-Z a-z 0-9 _ -",
                        g.name
                    ),
                ));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(ConfigError::new(
                    "group name",
                    format!("`{}` is configured twice", g.name),
                ));
            }
            let setting = |field: &str| format!("group `{}` {field}", g.name);
            if let Some(n) = g.loader_threads {
                if !(1..=4096).contains(&n) {
                    return Err(ConfigError::new(
                        setting("loader_threads"),
                        format!("{n} is not in 1..=4096"),
                    ));
                }
            }
            if let Some(n) = g.loader_queue {
                if !(1..=MAX_LOADER_QUEUE).contains(&n) {
                    return Err(ConfigError::new(
                        setting("loader_queue"),
                        format!("{n} is not in 1..={MAX_LOADER_QUEUE}"),
                    ));
                }
            }
            if let OriginSpec::Http(t) = &g.origin {
                crate::origin::check_http_template(t)
                    .map_err(|e| ConfigError::new(origin_setting(&g.name), e))?;
            }
            if g.cache_bytes < self.threads as u64 * 1024 {
                return Err(ConfigError::new(
                    format!("group `{}` cache size", g.name),
                    format!(
                        "must be at least 1KiB per thread ({} bytes)",
                        self.threads * 1024
                    ),
                ));
            }
        }
        self.validate_conn_limits()?;
        Ok(())
    }

    /// Checks what the configuration names outside itself, at start (not for
    /// `--print-config`, which may run on another machine): every `dir:` origin's
    /// directory exists and can be read, and a readable `--peers-file` lists only
    /// `HOST:PORT` members. A peers file that cannot be read yet is allowed: the node
    /// starts alone and keeps reading it.
    pub fn check_environment(&self) -> Result<(), ConfigError> {
        for g in &self.groups {
            if let OriginSpec::Dir(path) = &g.origin {
                check_dir(path).map_err(|e| ConfigError::new(origin_setting(&g.name), e))?;
            }
        }
        if let PeerSource::File(path) = &self.peers {
            if let Ok(text) = std::fs::read_to_string(path) {
                for m in crate::membership::parse_member_lines(&text) {
                    check_member(&m).map_err(|e| {
                        ConfigError::new("--peers-file", format!("{}: {e}", path.display()))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The configuration as a TOML file that `--config` accepts, with every setting
    /// spelled out (what `--print-config` prints). Loading it back gives the same
    /// configuration. Fails only for what a file cannot name: an embedded origin.
    pub fn to_toml(&self) -> Result<String, String> {
        let (peers, peers_file, peers_dns) = match &self.peers {
            PeerSource::Static(list) => (Some(list.clone()), None, None),
            PeerSource::File(path) => (None, Some(path.clone()), None),
            PeerSource::Dns { host, port } => (None, None, Some(format!("{host}:{port}"))),
        };
        if matches!(&self.cluster_secret, Some(secret) if secret.path().is_none()) {
            return Err(
                "the cluster secret was given directly (not from a file), which a file cannot name"
                    .into(),
            );
        }
        let mut group = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            if let OriginSpec::Custom(_) = g.origin {
                return Err(format!(
                    "group `{}` has an embedded (custom) origin, which a file cannot name",
                    g.name
                ));
            }
            group.push(FileGroup {
                name: g.name.clone(),
                cache_size: Some(SizeValue::Text(format_size(g.cache_bytes))),
                origin: Some(g.origin.to_string()),
                ttl: g.ttl.map(format_duration),
                loader_threads: g.loader_threads,
                loader_queue: g.loader_queue,
            });
        }
        let file = FileConfig {
            listen: Some(self.listen.to_string()),
            advertise: self.advertise.clone(),
            threads: Some(self.threads),
            max_frame: Some(SizeValue::Text(format_size(self.max_frame as u64))),
            max_item_size: Some(SizeValue::Text(format_size(self.max_item_size as u64))),
            max_connections: Some(self.max_connections),
            load_timeout: Some(format_duration(self.load_timeout)),
            loader_threads: Some(self.loader_threads),
            loader_queue: Some(self.loader_queue),
            too_large_ttl: Some(format_duration(self.too_large_ttl)),
            peers,
            peers_file,
            peers_dns,
            peers_refresh: Some(format_duration(self.peers_refresh)),
            peer_timeout: Some(format_duration(self.peer_timeout)),
            peer_suspect_after: Some(self.peer_suspect_after),
            // The path only: the secret itself is never printed. Spelled out as ""
            // (none) when there is no secret, which loads back as none.
            cluster_secret_file: Some(
                self.cluster_secret
                    .as_ref()
                    .and_then(|s| s.path().map(PathBuf::from))
                    .unwrap_or_default(),
            ),
            hot_promote_ratio: Some(self.hot_promote_ratio),
            hot_promote_seed: self.hot_promote_seed.map(|s| {
                if i64::try_from(s).is_ok() {
                    SeedValue::Int(s)
                } else {
                    SeedValue::Text(s.to_string())
                }
            }),
            hot_ttl: Some(format_duration(self.hot_ttl)),
            vnodes: Some(self.vnodes),
            metrics_listen: Some(
                self.metrics_listen
                    .map_or_else(|| "off".to_string(), |a| a.to_string()),
            ),
            idle_timeout: Some(format_duration(self.idle_timeout.unwrap_or_default())),
            frame_timeout: Some(format_duration(self.frame_timeout.unwrap_or_default())),
            max_conn_output: Some(SizeValue::Text(
                self.max_conn_output
                    .map_or_else(|| "auto".to_string(), |n| format_size(n as u64)),
            )),
            max_buffer_memory: Some(SizeValue::Text(
                self.max_buffer_memory
                    .map_or_else(|| "auto".to_string(), |n| format_size(n as u64)),
            )),
            group,
        };
        let body = toml::to_string(&file).map_err(|e| e.to_string())?;
        Ok(format!(
            "# groupcached {} effective configuration: flags > GROUPCACHED_* environment >\n\
             # --config file > defaults. Load it with `groupcached --config FILE`.\n{body}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// The settings an operator checks first, for the start-up log line.
    pub fn summary(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                let ttl = g.ttl.map_or("none".to_string(), format_duration);
                format!(
                    "{} (budget {}, origin {}, ttl {}, {} loader threads, queue {})",
                    g.name,
                    format_size(g.cache_bytes),
                    g.origin,
                    ttl,
                    g.loader_threads.unwrap_or(self.loader_threads),
                    g.loader_queue.unwrap_or(self.loader_queue)
                )
            })
            .collect();
        let members = match &self.peers {
            PeerSource::Static(list) if list.is_empty() => "single node".to_string(),
            PeerSource::Static(list) => format!("peers {}", list.join(",")),
            PeerSource::File(p) => format!(
                "peers from file {} (every {})",
                p.display(),
                format_duration(self.peers_refresh)
            ),
            PeerSource::Dns { host, port } => format!(
                "peers from DNS {host}:{port} (every {})",
                format_duration(self.peers_refresh)
            ),
        };
        format!(
            "protocol v{PROTOCOL_VERSION}, {} threads, {} loader threads per group, max {} connections, \
             max frame {}, {members}, peer auth {}, metrics {}, groups: {}",
            self.threads,
            self.loader_threads,
            self.max_connections,
            format_size(self.max_frame as u64),
            if self.cluster_secret.is_some() {
                "on (cluster secret)"
            } else {
                "off"
            },
            self.metrics_listen
                .map_or_else(|| "off".to_string(), |a| a.to_string()),
            groups.join("; ")
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// One configuration layer's cluster settings, as given.
struct ClusterSettings<'a> {
    peers: Option<&'a [String]>,
    peers_file: Option<&'a std::path::Path>,
    peers_dns: Option<&'a str>,
    peers_refresh: Option<&'a str>,
    peer_timeout: Option<&'a str>,
    hot_promote_ratio: Option<f64>,
    hot_promote_seed: Option<u64>,
    hot_ttl: Option<&'a str>,
    vnodes: Option<u32>,
}

/// Largest `loader_queue` accepted.
pub const MAX_LOADER_QUEUE: usize = 1 << 20;

/// Checks that a member (or `--advertise`) is `HOST:PORT` with a port in 1..=65535,
/// an IPv6 address in brackets (`[::1]:7000`). Names are not resolved here: a
/// member's name may not resolve yet when a cluster starts.
pub fn check_member(m: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{m}` is not HOST:PORT ({why})"));
    let Some((host, port)) = m.rsplit_once(':') else {
        return bad("no port");
    };
    match port.parse::<u16>() {
        Ok(0) => return bad("port 0"),
        Ok(_) => {}
        Err(_) => return bad("the port is not a number in 1..=65535"),
    }
    if host.is_empty() {
        return bad("no host");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(v6) = inner.strip_suffix(']') else {
            return bad("unclosed `[`");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("not an IPv6 address in brackets");
        }
    } else if host.contains(':') {
        return bad("an IPv6 address needs brackets, e.g. [::1]:7000");
    } else if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return bad("the host has characters a host name cannot have");
    }
    Ok(())
}

/// How an error about a group's origin names the setting: the flag and the file
/// field, since either may have set it.
fn origin_setting(group: &str) -> String {
    format!("origin of group `{group}` (--origin or [[group]] origin)")
}

/// A `dir:` origin's directory must exist, be a directory and be readable, so a typo
/// is an error at start rather than NOT_FOUND for every key.
fn check_dir(path: &std::path::Path) -> Result<(), String> {
    let shown = format!("dir:{}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| format!("`{shown}`: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("`{shown}` is not a directory"));
    }
    std::fs::read_dir(path)
        .map(drop)
        .map_err(|e| format!("`{shown}` cannot be read: {e}"))
}

fn parse_addr(setting: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.to_socket_addrs()
        .map_err(|e| ConfigError::new(setting, format!("`{s}` is not a host:port address ({e})")))?
        .next()
        .ok_or_else(|| ConfigError::new(setting, format!("`{s}` resolves to no address")))
}

/// `ADDR` turns the endpoint on; `off` (or an empty value) leaves it off, so a file
/// can be overridden back to off from the environment or a flag.
fn parse_metrics_listen(setting: &str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_addr(setting, t).map(Some).map_err(|e| {
        ConfigError::new(
            e.setting,
            format!("{}; give HOST:PORT (e.g. 0.0.0.0:9100) or off", e.message),
        )
    })
}

/// A TOML error as `FILE line N: `the line`: what is wrong`.
fn file_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!(
                "{} line {line_no} (`{line}`): {}",
                path.display(),
                e.message()
            )
        }
        None => format!("{}: {}", path.display(), e.message()),
    }
}

fn parse_ttl(s: &str) -> Result<Option<Duration>, String> {
    let d = parse_duration(s)?;
    Ok((!d.is_zero()).then_some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["groupcached"];
        all.extend_from_slice(args);
        Config::from_args(all).expect("flags parse")
    }

    #[test]
    fn quick_start_flags_configure_one_group() {
        let c = parse(&[
            "--group",
            "thumbs",
            "--cache-size",
            "1GiB",
            "--origin",
            "dir:/srv",
            "--ttl",
            "5m",
        ])
        .unwrap();
        assert_eq!(c.groups.len(), 1);
        assert_eq!(c.groups[0].name, "thumbs");
        assert_eq!(c.groups[0].cache_bytes, 1 << 30);
        assert!(matches!(c.groups[0].origin, OriginSpec::Dir(_)));
        assert_eq!(c.groups[0].ttl, Some(Duration::from_secs(300)));
    }

    #[test]
    fn file_groups_and_flag_overrides() {
        let dir = std::env::temp_dir().join(format!("gc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "threads = 3\nmax_frame = \"2MiB\"\n[[group]]\nname = \"a\"\ncache_size = 4194304\n\
             [[group]]\nname = \"b\"\norigin = \"synthetic:size=10\"\nttl = \"10s\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = parse(&["--config", p, "--group", "b", "--cache-size", "8MiB"]).unwrap();
        assert_eq!(c.threads, 3);
        assert_eq!(c.max_frame, 2 << 20);
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.groups[0].cache_bytes, 4 << 20);
        assert_eq!(c.groups[1].cache_bytes, 8 << 20);
        assert!(matches!(
            c.groups[1].origin,
            OriginSpec::Synthetic { size: 10, .. }
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert_eq!(
            parse(&["--cache-size", "lots"]).unwrap_err().setting,
            "--cache-size"
        );
        assert_eq!(
            parse(&["--origin", "ftp://x"]).unwrap_err().setting,
            "--origin"
        );
        assert_eq!(
            parse(&["--group", "a.b"]).unwrap_err().setting,
            "group name"
        );
        assert_eq!(parse(&["--threads", "0"]).unwrap_err().setting, "--threads");
        assert!(parse(&["--origin", "http://x/noplaceholder"]).is_err());
    }

    #[test]
    fn connection_limits_parse_derive_and_validate() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.idle_timeout, None, "idle timeout is off by default");
        assert_eq!(c.frame_timeout, Some(DEFAULT_FRAME_TIMEOUT));
        assert_eq!(c.conn_output_limit(), (4 << 20) + 2 * (16 << 20));
        assert_eq!(c.buffer_memory_limit(), 256 << 20);

        let c = parse(&[
            "--idle-timeout",
            "5m",
            "--frame-timeout",
            "0",
            "--max-frame",
            "128MiB",
        ])
        .unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.frame_timeout, None, "0 turns it off");
        assert_eq!(c.conn_output_limit(), (4 << 20) + (256 << 20));
        assert_eq!(c.buffer_memory_limit(), 512 << 20, "auto follows the frame");

        let c = parse(&["--max-conn-output", "64MiB", "--max-buffer-memory", "1GiB"]).unwrap();
        assert_eq!(c.conn_output_limit(), 64 << 20);
        assert_eq!(c.buffer_memory_limit(), 1 << 30);
        let back = c.to_toml().unwrap();
        assert!(back.contains("max_conn_output = \"64MiB\""), "{back}");
        assert!(back.contains("idle_timeout = \"0\""), "{back}");

        for (args, setting) in [
            (&["--max-conn-output", "8MiB"][..], "--max-conn-output"),
            (&["--max-buffer-memory", "16MiB"][..], "--max-buffer-memory"),
            (&["--idle-timeout", "10ms"][..], "--idle-timeout"),
            (&["--frame-timeout", "1ms"][..], "--frame-timeout"),
            (&["--max-conn-output", "lots"][..], "--max-conn-output"),
        ] {
            let e = parse(args).expect_err("invalid");
            assert!(e.to_string().contains(setting), "{args:?}: {e}");
        }
    }
}
