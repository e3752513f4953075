//! The command line, parsed with clap and checked into a [`Config`] the engine can
//! trust (every count positive, every combination meaningful).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use groupcached_protocol::{MAX_GROUP_LEN, MAX_KEY_LEN};
use groupcached_units::parse_duration;

use crate::proto::{Protocol, MAX_VALUE};
use crate::values::{parse_key_dist, parse_on_off, parse_protocol, parse_ratio, parse_value_size};
use crate::workload::{KeyDist, Ratio, ValueSize};

/// A load generator for groupcached (and memcached, for side-by-side figures).
///
/// Closed loop by default: every connection keeps --pipeline requests in flight.
/// With --rate, an open loop: requests are due at a fixed rate and latency counts
/// from when each was due, so a slow server cannot hide its queueing
/// (no coordinated omission).
#[derive(Debug, Parser)]
#[command(name = "groupcached-bench", version)]
#[command(
    after_help = "Example: groupcached-bench --server 127.0.0.1:7000 --connections 50 \
--pipeline 16 --keys 100000 --prefill --ratio 9:1 --duration 10s --json out.json"
)]
pub struct Args {
    /// Servers to load, comma-separated; connections are spread over them in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7000",
        conflicts_with = "peers"
    )]
    pub server: Vec<String>,

    /// Cluster members, comma-separated: every request goes straight to its key's
    /// owner on the consistent-hash ring (each connection holds one socket per member).
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Wire protocol: groupcached, memcache (meta commands mg/ms) or memcache-text (get/set).
    #[arg(long, default_value = "groupcached", value_parser = parse_protocol)]
    pub protocol: Protocol,

    /// Generator threads, each with its own event loop.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Connections in total, spread over the threads.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,

    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// How long to measure (after the warm-up), e.g. 10s or 1.5s (units: ns, us, ms,
    /// s, m, h, d; the grammar of groupcached's --ttl).
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Measure this many requests (after the warm-up) instead of a duration.
    #[arg(long)]
    pub requests: Option<u64>,

    /// Load before measuring, not counted, e.g. 2s. Without it the first measured
    /// requests meet a cold server and cold connections.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,

    /// Prefix of every key (keys are the prefix and an 8-digit index).
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,

    /// Key popularity: uniform, zipf:S (e.g. zipf:0.99) or sequential.
    #[arg(long, default_value = "uniform", value_parser = parse_key_dist)]
    pub key_dist: KeyDist,

    /// Value size of SETs: N or MIN-MAX (uniform in the range), in bytes or with a
    /// unit as the server reads sizes (4KiB, 1.5MB).
    #[arg(long, default_value = "100", value_parser = parse_value_size)]
    pub value_size: ValueSize,

    /// GET:SET weights, e.g. 9:1, or 1:0 for GETs only.
    #[arg(long, default_value = "9:1", value_parser = parse_ratio)]
    pub ratio: Ratio,

    /// Group of the keys (groupcached protocol only).
    #[arg(long, default_value = "default")]
    pub group: String,

    /// Write every key once before the run (with a progress bar on a terminal).
    #[arg(long)]
    pub prefill: bool,

    /// Open loop at this many requests per second in total.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Exit with status 1 if errors / requests is above this fraction.
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,

    /// A request unanswered for this long counts as an error and its connection is reopened.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Seed of the key, value and operation choices (the same seed gives the same requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// No line per second, only the summary.
    #[arg(long)]
    pub quiet: bool,

    /// groupcached only: `on` moves each connection with SHARD to one of the
    /// server's cores (connection i to core i mod threads) and sends each request on
    /// a connection of its key's core, so nothing hops between the server's cores;
    /// `off` leaves connections where they land, as a client that does not ask.
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub shard_aware: bool,
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long of measurement.
    Duration(Duration),
    /// After this many measured requests, spread over the threads.
    Requests(u64),
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Connections spread round-robin over these servers.
    Servers(Vec<String>),
    /// Ring-aware: each request to its key's owner among these members.
    Ring(Vec<String>),
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go.
    pub target: Target,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Generator threads (never more than connections).
    pub threads: usize,
    /// Connections in total.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// When to stop.
    pub stop: Stop,
    /// Unmeasured load first.
    pub warmup: Duration,
    /// Number of keys.
    pub keys: u64,
    /// Key prefix.
    pub key_prefix: String,
    /// Key popularity.
    pub key_dist: KeyDist,
    /// SET value sizes.
    pub value_size: ValueSize,
    /// GET:SET mix.
    pub ratio: Ratio,
    /// Group (groupcached only).
    pub group: String,
    /// Write every key first.
    pub prefill: bool,
    /// Open-loop rate in requests per second, total.
    pub rate: Option<f64>,
    /// JSON summary file.
    pub json: Option<PathBuf>,
    /// Largest tolerated error fraction.
    pub max_error_rate: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Random seed.
    pub seed: u64,
    /// Suppress per-second lines.
    pub quiet: bool,
    /// Route by the server's cores with SHARD (groupcached only; `false` for the
    /// memcached protocols whatever the flag said).
    pub shard_aware: bool,
}

/// A combination of flags that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Args {
    /// Checks the flags together and produces the run's configuration.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let target = if self.peers.is_empty() {
            Target::Servers(self.server)
        } else {
            Target::Ring(self.peers)
        };
        let addrs = match &target {
            Target::Servers(a) | Target::Ring(a) => a,
        };
        if addrs.is_empty() || addrs.iter().any(|a| a.trim().is_empty()) {
            return bad("--server/--peers: give at least one non-empty host:port".into());
        }
        if self.threads == 0 || self.connections == 0 || self.pipeline == 0 || self.keys == 0 {
            return bad(
                "--threads, --connections, --pipeline and --keys must be at least 1".into(),
            );
        }
        if self.pipeline > 65_536 {
            return bad("--pipeline is at most 65536".into());
        }
        let stop = match (self.duration, self.requests) {
            (_, Some(0)) => return bad("--requests must be at least 1".into()),
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) if d.is_zero() => return bad("--duration must be above 0".into()),
            (Some(d), None) => Stop::Duration(d),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        };
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad(format!(
                    "--rate {r}: must be a positive number of requests per second"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return bad("--max-error-rate is a fraction between 0 and 1".into());
        }
        if self.value_size.max > MAX_VALUE {
            return bad(format!("--value-size: at most {MAX_VALUE} bytes"));
        }
        let key_len = self.key_prefix.len() + self.keys.to_string().len().max(8);
        match self.protocol {
            Protocol::Groupcached => {
                if self.group.is_empty() || self.group.len() > MAX_GROUP_LEN {
                    return bad(format!("--group: 1 to {MAX_GROUP_LEN} bytes"));
                }
                if key_len > MAX_KEY_LEN {
                    return bad(format!(
                        "keys would be {key_len} bytes; the limit is {MAX_KEY_LEN}"
                    ));
                }
            }
            Protocol::Memcache | Protocol::MemcacheText => {
                if key_len > 250 {
                    return bad(format!(
                        "keys would be {key_len} bytes; memcached's limit is 250"
                    ));
                }
                if self.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return bad(
                        "--key-prefix: memcached keys cannot hold spaces or control characters"
                            .into(),
                    );
                }
            }
        }
        Ok(Config {
            threads: self.threads.min(self.connections),
            target,
            protocol: self.protocol,
            connections: self.connections,
            pipeline: self.pipeline,
            stop,
            warmup: self.warmup,
            keys: self.keys,
            key_prefix: self.key_prefix,
            key_dist: self.key_dist,
            value_size: self.value_size,
            ratio: self.ratio,
            group: self.group,
            prefill: self.prefill,
            rate: self.rate,
            json: self.json,
            max_error_rate: self.max_error_rate,
            timeout: self.timeout,
            seed: self.seed,
            quiet: self.quiet,
            shard_aware: self.shard_aware && self.protocol == Protocol::Groupcached,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let args =
            Args::try_parse_from(std::iter::once("groupcached-bench").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        args.into_config().map_err(|e| e.0)
    }

    #[test]
    fn defaults_are_a_ten_second_closed_loop() {
        let c = config(&[]).unwrap();
        assert_eq!(c.stop, Stop::Duration(Duration::from_secs(10)));
        assert_eq!(c.target, Target::Servers(vec!["127.0.0.1:7000".into()]));
        assert_eq!((c.threads, c.connections, c.pipeline), (1, 50, 1));
        assert_eq!(c.rate, None);
    }

    #[test]
    fn shard_awareness_is_on_by_default_and_only_for_groupcached() {
        assert!(config(&[]).unwrap().shard_aware);
        assert!(!config(&["--shard-aware", "off"]).unwrap().shard_aware);
        assert!(config(&["--shard-aware", "on"]).unwrap().shard_aware);
        assert!(config(&["--shard-aware", "yes"]).is_err());
        assert!(
            !config(&["--protocol", "memcache"]).unwrap().shard_aware,
            "memcached has no SHARD"
        );
    }

    #[test]
    fn parses_the_load_model() {
        let c = config(&[
            "--peers",
            "a:1,b:2",
            "--threads",
            "4",
            "--connections",
            "2",
            "--pipeline",
            "16",
            "--requests",
            "1000",
            "--key-dist",
            "zipf:0.99",
            "--value-size",
            "10-20",
            "--ratio",
            "1:0",
            "--protocol",
            "memcache-text",
            "--rate",
            "5000",
        ])
        .unwrap();
        assert_eq!(c.target, Target::Ring(vec!["a:1".into(), "b:2".into()]));
        assert_eq!(c.threads, 2, "never more threads than connections");
        assert_eq!(c.stop, Stop::Requests(1000));
        assert_eq!(c.key_dist, KeyDist::Zipf(0.99));
        assert_eq!(c.value_size, ValueSize { min: 10, max: 20 });
        assert_eq!(c.ratio, Ratio { get: 1, set: 0 });
        assert_eq!(c.protocol, Protocol::MemcacheText);
        assert_eq!(c.rate, Some(5000.0));
    }

    #[test]
    fn durations_take_the_servers_grammar_and_fractions() {
        let c = config(&["--duration", "1.5s", "--warmup", "0.25s"]).unwrap();
        assert_eq!(c.stop, Stop::Duration(Duration::from_millis(1500)));
        assert_eq!(c.warmup, Duration::from_millis(250));
        let c = config(&["--duration", "2min", "--timeout", "1d"]).unwrap();
        assert_eq!(c.stop, Stop::Duration(Duration::from_secs(120)));
        assert_eq!(c.timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn refuses_meaningless_combinations() {
        for bad in [
            &["--server", "a:1", "--peers", "b:1"][..],
            &["--duration", "1s", "--requests", "5"],
            &["--pipeline", "0"],
            &["--ratio", "0:0"],
            &["--ratio", "9"],
            &["--value-size", "20-10"],
            &["--key-dist", "zipf:x"],
            &["--key-dist", "pareto"],
            &["--protocol", "redis"],
            &["--rate", "-5"],
            &["--max-error-rate", "2"],
            &["--duration", "10"],
            &["--protocol", "memcache", "--key-prefix", "a b"],
        ] {
            assert!(config(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
