//! The declaration of every setting: its flag, environment variable, file key, help
//! text and value grammar, in one place.
//!
//! [`Args`] is one configuration *layer*: every field is optional (absent = "this
//! layer does not say"). The same struct is what clap fills from the command line and
//! the `GROUPCACHED_*` environment, what serde reads from the `--config` file, and
//! what `--print-config` writes, so a setting's flag (`--max-frame`), variable
//! (`GROUPCACHED_MAX_FRAME`) and file key (`max_frame`) cannot drift apart.
//!
//! The `settings!` macro below turns each line of its `scalars` section into a field
//! of [`Args`] and into the code that sets the [`Config`] field of the same name
//! ([`Args::apply_scalars`]) and prints it back ([`Args::print_scalars`]) through the
//! line's [`Grammar`]. Settings that are not one value for one field (the quick-start
//! group flags, `[[group]]` tables, the member source, the cluster secret) are
//! declared here too, in the `flags` and `rest` sections, and resolved by hand in
//! [`super::layers`].

use std::convert::Infallible;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use serde::{Deserialize, Deserializer, Serialize};

use super::grammar::{
    ratio_in_range, vnodes_in_range, Address, AddressOrOff, Dur, Grammar, OptionalText, Plain,
    Seed, Size, SizeOrAuto, Timeout,
};
use super::layers::Layer;
use super::Config;
use crate::error::ConfigError;

/// Declares [`Args`]: see the module documentation. A `scalars` line is
/// `/// help` then `field: Raw as Grammar, "VALUE_NAME", "GROUPCACHED_FIELD"`,
/// optionally followed by `, check function` (a range check that names the setting
/// as the layer spelled it).
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $Args:ident {
            flags { $($flags:tt)* }
            scalars {
                $(
                    $(#[$doc:meta])*
                    $field:ident: $Raw:ty as $G:ty, $value_name:literal, $env:literal
                    $(, check $check:path)?;
                )*
            }
            rest { $($rest:tt)* }
        }
    ) => {
        $(#[$meta])*
        pub struct $Args {
            $($flags)*
            $(
                $(#[$doc])*
                #[arg(long, env = $env, value_name = $value_name)]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$Raw>,
            )*
            $($rest)*
        }

        impl $Args {
            /// Sets on `cfg` every single-valued setting this layer gives; an error
            /// names the setting as `layer` spells it.
            pub(super) fn apply_scalars(
                &self,
                cfg: &mut Config,
                layer: Layer,
            ) -> Result<(), ConfigError> {
                $(
                    if let Some(raw) = &self.$field {
                        let named = |e| ConfigError::new(layer.name(stringify!($field)), e);
                        let value = <$G as Grammar>::parse(raw).map_err(named)?;
                        $( $check(&value).map_err(named)?; )?
                        cfg.$field = value;
                    }
                )*
                Ok(())
            }

            /// Fills every single-valued setting from `cfg`, in the form
            /// `apply_scalars` reads back.
            pub(super) fn print_scalars(&mut self, cfg: &Config) {
                $( self.$field = <$G as Grammar>::print(&cfg.$field); )*
            }
        }
    };
}

settings! {
    /// One configuration layer: command-line flags (each also readable from its
    /// `GROUPCACHED_*` variable), or the TOML file (also what `--print-config`
    /// writes). Every setting is optional: an absent one leaves the layer below in
    /// force (flags > environment > file > defaults).
    #[derive(Debug, Default, Clone, Parser, Deserialize, Serialize)]
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
    #[serde(deny_unknown_fields)]
    pub struct Args {
        flags {
            /// TOML configuration file (see docs/operations.md); flags override it.
            #[arg(long, env = "GROUPCACHED_CONFIG", value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            /// The quick-start flags of one group (`--group`, `--cache-size`,
            /// `--origin`, `--ttl`); the file has `[[group]]` tables instead.
            #[command(flatten)]
            #[serde(skip)]
            pub quick_group: GroupSettings,
        }
        scalars {
            /// Address to listen on [default: 127.0.0.1:7000].
            listen: String as Address, "ADDR", "GROUPCACHED_LISTEN";
            /// Address peers and clients use for this node [default: the listen address].
            advertise: String as OptionalText, "HOST:PORT", "GROUPCACHED_ADVERTISE";
            /// Worker threads [default: number of CPUs].
            threads: usize as Plain<usize>, "N", "GROUPCACHED_THREADS";
            /// Largest frame accepted [default: 16MiB].
            max_frame: SizeValue as Size, "SIZE", "GROUPCACHED_MAX_FRAME";
            /// Largest value kept in cache [default: 8MiB].
            max_item_size: SizeValue as Size, "SIZE", "GROUPCACHED_MAX_ITEM_SIZE";
            /// Simultaneous connections [default: 10000].
            max_connections: usize as Plain<usize>, "N", "GROUPCACHED_MAX_CONNECTIONS";
            /// Limit on one origin load [default: 10s].
            load_timeout: String as Dur, "DURATION", "GROUPCACHED_LOAD_TIMEOUT";
            /// Origin loader threads of each group [default: 32].
            loader_threads: usize as Plain<usize>, "N", "GROUPCACHED_LOADER_THREADS";
            /// Origin loads of each group that may wait for a loader thread [default: 1024].
            loader_queue: usize as Plain<usize>, "N", "GROUPCACHED_LOADER_QUEUE";
            /// How long a key whose origin value was too large to cache is answered
            /// TOO_LARGE without asking the origin again; 0 turns it off [default: 10s].
            too_large_ttl: String as Dur, "DURATION", "GROUPCACHED_TOO_LARGE_TTL";
            /// How often --peers-dns is re-resolved and --peers-file checked [default: 5s].
            peers_refresh: String as Dur, "DURATION", "GROUPCACHED_PEERS_REFRESH";
            /// Limit on one request to a peer [default: 2s].
            peer_timeout: String as Dur, "DURATION", "GROUPCACHED_PEER_TIMEOUT";
            /// Consecutive timed-out peer requests that mark a member suspect (its keys
            /// then load locally at once until it answers a probe); 0 = never [default: 3].
            peer_suspect_after: u32 as Plain<u32>, "N", "GROUPCACHED_PEER_SUSPECT_AFTER";
            /// Share of values fetched from peers kept in the hot cache [default: 0.1].
            hot_promote_ratio: f64 as Plain<f64>, "RATIO", "GROUPCACHED_HOT_PROMOTE_RATIO",
                check ratio_in_range;
            /// Seed of the hot-cache sampling, for reproducible tests [default: random].
            hot_promote_seed: SeedValue as Seed, "N", "GROUPCACHED_HOT_PROMOTE_SEED";
            /// Longest a hot-cache copy is served [default: 60s].
            hot_ttl: String as Dur, "DURATION", "GROUPCACHED_HOT_TTL";
            /// Virtual nodes per member; must be the same on every node [default: 512].
            vnodes: u32 as Plain<u32>, "N", "GROUPCACHED_VNODES", check vnodes_in_range;
            /// Serve Prometheus metrics (GET /metrics) and GET /healthz over HTTP on this
            /// address [default: off].
            metrics_listen: String as AddressOrOff, "ADDR", "GROUPCACHED_METRICS_LISTEN";
            /// Close a connection that completes no request for this long; 0 = never [default: 0].
            idle_timeout: String as Timeout, "DURATION", "GROUPCACHED_IDLE_TIMEOUT";
            /// Close a connection whose frame is not complete this long after its first
            /// bytes; 0 = never [default: 30s].
            frame_timeout: String as Timeout, "DURATION", "GROUPCACHED_FRAME_TIMEOUT";
            /// Close a connection with more unsent output than this [default: auto =
            /// 4MiB + 2 x --max-frame].
            max_conn_output: SizeValue as SizeOrAuto, "SIZE", "GROUPCACHED_MAX_CONN_OUTPUT";
            /// Memory all connection buffers together may hold; past it the biggest
            /// connections stop being read [default: auto = max(256MiB, 4 x --max-frame)].
            max_buffer_memory: SizeValue as SizeOrAuto, "SIZE", "GROUPCACHED_MAX_BUFFER_MEMORY";
        }
        rest {
            /// Cluster members, comma-separated host:port (this node included or added).
            #[arg(long, env = "GROUPCACHED_PEERS", value_name = "A,B,C", value_delimiter = ',')]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peers: Option<Vec<String>>,
            /// File with one member per line; re-read when it changes and on SIGHUP.
            #[arg(long, env = "GROUPCACHED_PEERS_FILE", value_name = "PATH")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peers_file: Option<PathBuf>,
            /// DNS name whose every A/AAAA record is a member, with the members' port.
            #[arg(long, env = "GROUPCACHED_PEERS_DNS", value_name = "NAME:PORT")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peers_dns: Option<String>,
            /// File holding the cluster's shared secret; members prove it in their
            /// handshake, and peer operations from connections that did not are refused
            /// [default: none, peer operations unauthenticated].
            #[arg(long, env = "GROUPCACHED_CLUSTER_SECRET_FILE", value_name = "PATH")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cluster_secret_file: Option<PathBuf>,
            /// The file's groups (`[[group]]` tables); not a flag.
            #[arg(skip)]
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub group: Vec<GroupSettings>,
            /// Print the effective configuration (flags, environment, file and defaults
            /// combined) as a TOML file for --config, then exit.
            #[arg(long)]
            #[serde(skip)]
            pub print_config: bool,
        }
    }
}

/// One group's settings: a `[[group]]` table in the file, or the quick-start flags
/// (`--group`, `--cache-size`, `--origin`, `--ttl`) that configure one group from
/// the command line. Resolved into a [`GroupConfig`](super::GroupConfig).
#[derive(Debug, Default, Clone, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Group the --cache-size/--origin/--ttl flags configure [default: default].
    #[arg(long = "group", env = "GROUPCACHED_GROUP", value_name = "NAME")]
    #[serde(deserialize_with = "required")]
    pub name: Option<String>,
    /// Cache budget of the group [default: 64MiB].
    #[arg(long, env = "GROUPCACHED_CACHE_SIZE", value_name = "SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<SizeValue>,
    /// Origin of the group [default: none].
    #[arg(long, env = "GROUPCACHED_ORIGIN", value_name = "SPEC")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Default TTL of the group's items [default: never expire].
    #[arg(long, env = "GROUPCACHED_TTL", value_name = "DURATION")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// This group's own loader threads (file only; the flag is server-wide).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader_threads: Option<usize>,
    /// Loads of this group that may wait for its loader threads (file only).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader_queue: Option<usize>,
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
