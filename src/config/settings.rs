//! The declaration of every setting, in one table: its [`Config`] field (type,
//! default, documentation), its flag, environment variable, file key and `--help`
//! text, and the grammar its value is written in.
//!
//! [`Args`] is one configuration *layer*: every field is optional (absent = "this
//! layer does not say"). The same struct is what clap fills from the command line and
//! the `GROUPCACHED_*` environment, what serde reads from the `--config` file, and
//! what `--print-config` writes, so a setting's flag (`--max-frame`), variable
//! (`GROUPCACHED_MAX_FRAME`) and file key (`max_frame`) cannot drift apart.
//!
//! The `settings!` and `group_settings!` macros ([`super::declare`]) generate the
//! structs from the tables below ([`Config`] and [`Args`]; [`GroupConfig`] and
//! [`GroupSettings`]), and the code that reads each line into its field and prints
//! it back. A setting's doc comment is both its field's documentation and its
//! `--help` line, so it is one paragraph of plain text that ends with its default.
//! The few settings that are not one value for one field (the member source, the
//! cluster secret, the flag naming the quick-start group) are declared here by hand
//! and resolved in [`super::layers`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "cli")]
use clap::Parser;
use groupcached_protocol::{DEFAULT_MAX_FRAME, DEFAULT_VNODES};
use serde::{Deserialize, Deserializer, Serialize};

use super::declare::{group_settings, settings};
use super::grammar::{
    ratio_in_range, vnodes_in_range, Address, AddressOrOff, Bytes, Dur, Optional, Origin, Plain,
    Seed, Size, SizeOrAuto, Timeout, Ttl,
};
use super::{
    DEFAULT_CACHE_BYTES, DEFAULT_FRAME_TIMEOUT, DEFAULT_GROUP, DEFAULT_HOT_PROMOTE_RATIO,
    DEFAULT_HOT_TTL, DEFAULT_LISTEN, DEFAULT_LOADER_QUEUE, DEFAULT_LOADER_THREADS,
    DEFAULT_LOAD_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_ITEM_SIZE, DEFAULT_PEERS_REFRESH,
    DEFAULT_PEER_SUSPECT_AFTER, DEFAULT_PEER_TIMEOUT, DEFAULT_TOO_LARGE_TTL,
};
use crate::membership::PeerSource;
use crate::origin::OriginSpec;
use crate::peer::auth::ClusterSecret;

settings! {
    config {
        /// The whole server configuration: what [`Config::from_args`] builds from
        /// flags, environment and file, or what an embedding program fills in
        /// (start from [`Config::new`]).
        #[derive(Debug, Clone)]
        pub struct Config {
            /// Groups served (`[[group]]` tables, or the quick-start flags
            /// `--group`, `--cache-size`, `--origin`, `--ttl`).
            pub groups: Vec<GroupConfig> = vec![GroupConfig::new(DEFAULT_GROUP)],
            /// Where the cluster's member list comes from (`--peers`, `--peers-file`
            /// or `--peers-dns`); a single node by default.
            pub peers: PeerSource = PeerSource::Static(Vec::new()),
            /// The secret members prove in their handshake (`--cluster-secret-file`);
            /// peer operations are unauthenticated without one.
            pub cluster_secret: Option<ClusterSecret> = None,
        }
    }
    args {
        /// One configuration layer: command-line flags (each also readable from its
        /// `GROUPCACHED_*` variable), or the TOML file (also what `--print-config`
        /// writes). Every setting is optional: an absent one leaves the layer below in
        /// force (flags > environment > file > defaults).
        #[derive(Debug, Default, Clone, Deserialize, Serialize)]
        #[cfg_attr(feature = "cli", derive(Parser))]
        #[cfg_attr(feature = "cli", command(
            name = "groupcached",
            version,
            about = "A distributed cache-filling server: groupcache as a standalone, thread-per-core server.",
            after_help = "Origins: none | dir:PATH | http://host:port/prefix{key} | synthetic:size=N,delay_ms=D\n\
                          Sizes take units (64MiB, 1GiB); durations too (250ms, 10s, 5m).\n\
                          Metrics: --metrics-listen 127.0.0.1:9100 serves GET /metrics (Prometheus) and GET /healthz.\n\
                          --print-config shows the effective settings as a file for --config.\n\
                          Example: groupcached --origin dir:/srv/files --cache-size 256MiB"
        ))]
        #[serde(deny_unknown_fields)]
        pub struct Args {
            before {
                /// TOML configuration file (see docs/operations.md); flags override it.
                #[cfg_attr(feature = "cli", arg(long, env = "GROUPCACHED_CONFIG", value_name = "FILE"))]
                #[serde(skip)]
                pub config: Option<PathBuf>,
                /// The quick-start flags of one group (`--group`, `--cache-size`,
                /// `--origin`, `--ttl`); the file has `[[group]]` tables instead.
                #[cfg_attr(feature = "cli", command(flatten))]
                #[serde(skip)]
                pub quick_group: GroupSettings,
            }
            after {
                /// Cluster members, comma-separated host:port (this node included or added).
                #[cfg_attr(feature = "cli", arg(long, env = "GROUPCACHED_PEERS", value_name = "A,B,C", value_delimiter = ','))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub peers: Option<Vec<String>>,
                /// File with one member per line; re-read when it changes and on SIGHUP.
                #[cfg_attr(feature = "cli", arg(long, env = "GROUPCACHED_PEERS_FILE", value_name = "PATH"))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub peers_file: Option<PathBuf>,
                /// DNS name whose every A/AAAA record is a member, with the members' port.
                #[cfg_attr(feature = "cli", arg(long, env = "GROUPCACHED_PEERS_DNS", value_name = "NAME:PORT"))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub peers_dns: Option<String>,
                /// File holding the cluster's shared secret; members prove it in their
                /// handshake, and peer operations from connections that did not are refused
                /// [default: none, peer operations unauthenticated].
                #[cfg_attr(feature = "cli", arg(long, env = "GROUPCACHED_CLUSTER_SECRET_FILE", value_name = "PATH"))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub cluster_secret_file: Option<PathBuf>,
                /// The file's groups (`[[group]]` tables); not a flag.
                #[cfg_attr(feature = "cli", arg(skip))]
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                pub group: Vec<GroupSettings>,
                /// Print the effective configuration (flags, environment, file and defaults
                /// combined) as a TOML file for --config, then exit.
                #[cfg_attr(feature = "cli", arg(long))]
                #[serde(skip)]
                pub print_config: bool,
            }
        }
    }
    scalars {
        /// Address to listen on, by every core (SO_REUSEPORT); port 0 picks a free
        /// port [default: 127.0.0.1:7000].
        listen: SocketAddr = default_listen()
            => String as Address, "ADDR", "GROUPCACHED_LISTEN";
        /// Address peers and clients use for this node [default: the listen address].
        advertise: Option<String> = None
            => String as Optional<String>, "HOST:PORT", "GROUPCACHED_ADVERTISE";
        /// Worker threads (cores), each with its own event loop and cache shards
        /// [default: number of CPUs].
        threads: usize = std::thread::available_parallelism().map_or(1, |n| n.get())
            => usize as Plain<usize>, "N", "GROUPCACHED_THREADS";
        /// Largest frame accepted or sent (length prefix value) [default: 16MiB].
        max_frame: usize = DEFAULT_MAX_FRAME
            => SizeValue as Size, "SIZE", "GROUPCACHED_MAX_FRAME";
        /// Largest value kept in cache; a larger SET or origin value is TOO_LARGE
        /// [default: 8MiB, or less to fit --max-frame].
        max_item_size: usize = DEFAULT_MAX_ITEM_SIZE
            => SizeValue as Size, "SIZE", "GROUPCACHED_MAX_ITEM_SIZE";
        /// Simultaneous connections; more are answered UNAVAILABLE and closed
        /// [default: 10000].
        max_connections: usize = DEFAULT_MAX_CONNECTIONS
            => usize as Plain<usize>, "N", "GROUPCACHED_MAX_CONNECTIONS";
        /// Limit on one shared origin load [default: 10s].
        load_timeout: Duration = DEFAULT_LOAD_TIMEOUT
            => String as Dur, "DURATION", "GROUPCACHED_LOAD_TIMEOUT";
        /// Origin loader threads of each group; each group with an origin has its
        /// own, so a slow origin cannot starve another group's loads [default: 32].
        loader_threads: usize = DEFAULT_LOADER_THREADS
            => usize as Plain<usize>, "N", "GROUPCACHED_LOADER_THREADS";
        /// Origin loads of each group that may wait for a loader thread; more are
        /// UNAVAILABLE [default: 1024].
        loader_queue: usize = DEFAULT_LOADER_QUEUE
            => usize as Plain<usize>, "N", "GROUPCACHED_LOADER_QUEUE";
        /// How long a key whose origin value was too large to cache is answered
        /// TOO_LARGE without asking the origin again; 0 turns it off [default: 10s].
        too_large_ttl: Duration = DEFAULT_TOO_LARGE_TTL
            => String as Dur, "DURATION", "GROUPCACHED_TOO_LARGE_TTL";
        /// How often --peers-dns is re-resolved and --peers-file checked [default: 5s].
        peers_refresh: Duration = DEFAULT_PEERS_REFRESH
            => String as Dur, "DURATION", "GROUPCACHED_PEERS_REFRESH";
        /// Limit on one request to a peer [default: 2s].
        peer_timeout: Duration = DEFAULT_PEER_TIMEOUT
            => String as Dur, "DURATION", "GROUPCACHED_PEER_TIMEOUT";
        /// Consecutive timed-out peer requests (with no answer in between) that mark
        /// a member suspect: its keys then load locally at once, and writes skip it,
        /// until it answers a probe; 0 = never [default: 3].
        peer_suspect_after: u32 = DEFAULT_PEER_SUSPECT_AFTER
            => u32 as Plain<u32>, "N", "GROUPCACHED_PEER_SUSPECT_AFTER";
        /// Share of values fetched from peers kept in the hot cache, 0 to 1
        /// [default: 0.1].
        hot_promote_ratio: f64 = DEFAULT_HOT_PROMOTE_RATIO
            => f64 as Plain<f64>, "RATIO", "GROUPCACHED_HOT_PROMOTE_RATIO", check ratio_in_range;
        /// Seed of the hot-cache sampling, for reproducible tests [default: random].
        hot_promote_seed: Option<u64> = None
            => SeedValue as Seed, "N", "GROUPCACHED_HOT_PROMOTE_SEED";
        /// Longest a hot-cache copy is served [default: 60s].
        hot_ttl: Duration = DEFAULT_HOT_TTL
            => String as Dur, "DURATION", "GROUPCACHED_HOT_TTL";
        /// Virtual nodes per member in the ring; must be the same on every node
        /// [default: 512].
        vnodes: u32 = DEFAULT_VNODES
            => u32 as Plain<u32>, "N", "GROUPCACHED_VNODES", check vnodes_in_range;
        /// Serve Prometheus metrics (GET /metrics) and GET /healthz over HTTP on this
        /// address [default: off].
        metrics_listen: Option<SocketAddr> = None
            => String as AddressOrOff, "ADDR", "GROUPCACHED_METRICS_LISTEN";
        /// Also speak the memcached text and meta protocols on this address, by every
        /// core (SO_REUSEPORT); port 0 picks a free port [default: off].
        memcache_listen: Option<SocketAddr> = None
            => String as AddressOrOff, "ADDR", "GROUPCACHED_MEMCACHE_LISTEN";
        /// Group that memcached keys belong to [default: the first group].
        memcache_group: Option<String> = None
            => String as Optional<String>, "NAME", "GROUPCACHED_MEMCACHE_GROUP";
        /// Read a memcached key `group:key` as key `key` of group `group` when `group`
        /// is a configured group (true or false) [default: false].
        memcache_group_prefix: bool = false
            => bool as Plain<bool>, "BOOL", "GROUPCACHED_MEMCACHE_GROUP_PREFIX";
        /// Close a connection that completes no request (and takes none of its
        /// output) for this long; 0 = never [default: 0].
        idle_timeout: Option<Duration> = None
            => String as Timeout, "DURATION", "GROUPCACHED_IDLE_TIMEOUT";
        /// Close a connection whose frame is not complete this long after its first
        /// bytes; 0 = never [default: 30s].
        frame_timeout: Option<Duration> = Some(DEFAULT_FRAME_TIMEOUT)
            => String as Timeout, "DURATION", "GROUPCACHED_FRAME_TIMEOUT";
        /// Close a connection with more unsent output than this [default: auto =
        /// 4MiB + 2 x --max-frame].
        max_conn_output: Option<usize> = None
            => SizeValue as SizeOrAuto, "SIZE", "GROUPCACHED_MAX_CONN_OUTPUT";
        /// Memory all connection buffers together may hold; past it the biggest
        /// connections stop being read [default: auto = max(256MiB, 4 x --max-frame)].
        max_buffer_memory: Option<usize> = None
            => SizeValue as SizeOrAuto, "SIZE", "GROUPCACHED_MAX_BUFFER_MEMORY";
    }
}

/// The default listen address, [`DEFAULT_LISTEN`].
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address is an address")
}

group_settings! {
    config {
        /// One group: a named namespace with its own budget, origin and default TTL.
        #[derive(Debug, Clone)]
        pub struct GroupConfig {
            /// Name clients use; `[A-Za-z0-9_-]`, 1..=64 bytes.
            pub name: String,
        }
    }
    layer {
        /// One group's settings as a layer gives them: a `[[group]]` table in the
        /// file, or the quick-start flags (`--group`, `--cache-size`, `--origin`,
        /// `--ttl`) that configure one group from the command line.
        #[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields)]
        pub struct GroupSettings {
            /// Group the --cache-size/--origin/--ttl flags configure [default: default].
            #[cfg_attr(feature = "cli", arg(long = "group", env = "GROUPCACHED_GROUP", value_name = "NAME"))]
            #[serde(deserialize_with = "required")]
            pub name: Option<String>,
        }
    }
    settings {
        /// Cache budget of the group: its main + hot cache on this node, split evenly
        /// over cores [default: 64MiB].
        cache_bytes(cache_size): u64 = DEFAULT_CACHE_BYTES
            => SizeValue as Bytes,
            arg(long, env = "GROUPCACHED_CACHE_SIZE", value_name = "SIZE");
        /// Origin of the group: where misses are loaded from [default: none].
        origin(origin): OriginSpec = OriginSpec::None
            => String as Origin,
            arg(long, env = "GROUPCACHED_ORIGIN", value_name = "SPEC");
        /// Default TTL of the group's items: of loaded values and of SETs that give
        /// none; 0 = never expire [default: never expire].
        ttl(ttl): Option<Duration> = None
            => String as Ttl,
            arg(long, env = "GROUPCACHED_TTL", value_name = "DURATION");
        /// This group's own origin loader threads (file only) [default: the
        /// server's loader_threads].
        loader_threads(loader_threads): Option<usize> = None
            => usize as Optional<usize>, arg(skip);
        /// Loads of this group that may wait for one of its loader threads (file
        /// only) [default: the server's loader_queue].
        loader_queue(loader_queue): Option<usize> = None
            => usize as Optional<usize>, arg(skip);
    }
}

/// A `[[group]]` must name its group: `name` is required in the file although the
/// quick-start flag (`--group`) may be left out.
fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// A size as a layer gives it: a number of bytes (a TOML integer) or a text with a
/// unit (`64MiB`; always text on the command line).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// A number of bytes.
    Bytes(u64),
    /// A size with an optional unit, or a word such as `auto`.
    Text(String),
}

impl FromStr for SizeValue {
    type Err = Infallible;
    /// Keeps the text: it is read (and any error named) when the layer is applied.
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(SizeValue::Text(s.to_string()))
    }
}

/// A seed as a layer gives it: a TOML integer, or a string for values over
/// 2^63 - 1 (which TOML integers cannot hold).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SeedValue {
    /// A number.
    Int(u64),
    /// A number as text.
    Text(String),
}

impl FromStr for SeedValue {
    type Err = Infallible;
    /// A number when it is one; otherwise the text, refused (naming the setting)
    /// when the layer is applied.
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(s.trim()
            .parse()
            .map_or_else(|_| SeedValue::Text(s.to_string()), SeedValue::Int))
    }
}
