//! A run's results merged over threads ([`Summary`]), the servers' own view of the
//! cache ([`ServerCache`]), and the summary as text and as JSON.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::counters::{Counters, Interval, Latencies, ThreadResult};
use crate::args::{Config, Stop, Target};

/// A run's results, merged over threads.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Merged counters.
    pub counters: Counters,
    /// Merged latencies.
    pub latencies: Latencies,
    /// Measured wall time (for `--requests`, until the last thread finished).
    pub secs: f64,
    /// CPU time / wall time of each thread.
    pub busy: Vec<f64>,
    /// Open loop: the largest backlog of any thread.
    pub max_backlog: u64,
    /// The lines per second.
    pub intervals: Vec<Interval>,
    /// What the servers say about their cache over the measured part, when known.
    pub server_cache: ServerCache,
    /// Whether requests were routed to the servers' cores with SHARD.
    pub sharding: Sharding,
}

/// Whether the run was shard-aware (groupcached's SHARD, docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharding {
    /// Connections stayed on whatever core they landed on (`--shard-aware off`, or
    /// a memcached protocol).
    Off,
    /// Each connection asked for a core and each request went on a connection of
    /// its key's core. Per distinct server: its address and core count, `None` if it
    /// refused SHARD or could not be asked (its connections then stayed plain).
    On(Vec<(String, Option<usize>)>),
}

/// How many GETs the servers answered from their cache while the run was measured:
/// the difference of their STATS counters `group.<group>.gets` and `.cache_hits`
/// (summed over the servers) between the start and the end of the measured part.
/// The servers count every client's requests, and, in a cluster, the FETCHes nodes
/// send each other, so this is exact only when the generator is the only client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerCache {
    /// The counters were read at both ends.
    Measured {
        /// GETs the servers counted.
        gets: u64,
        /// Of them, answered from the main or hot cache.
        cache_hits: u64,
        /// Keyed requests that hopped between a server's cores (STATS `core_hops`),
        /// `None` from a server that does not count them.
        core_hops: Option<u64>,
    },
    /// memcached: every value it returns comes from its cache, there is no origin.
    AllCached,
    /// The counters could not be read (why).
    Unknown(String),
}

impl ServerCache {
    /// Cache hits over gets, when measured and there were gets.
    pub fn hit_ratio(&self) -> Option<f64> {
        match self {
            ServerCache::Measured {
                gets, cache_hits, ..
            } if *gets > 0 => Some(*cache_hits as f64 / *gets as f64),
            _ => None,
        }
    }
}

impl Summary {
    /// Merges the threads' results; `secs` is the measured wall time.
    pub fn new(
        results: &[ThreadResult],
        secs: f64,
        intervals: Vec<Interval>,
        server_cache: ServerCache,
    ) -> Self {
        let mut counters = Counters::default();
        let mut latencies = Latencies::default();
        for r in results {
            counters.merge(&r.counters);
            latencies.merge(&r.latencies);
        }
        Summary {
            counters,
            latencies,
            secs,
            busy: results
                .iter()
                .map(|r| {
                    let wall = r.wall.as_secs_f64();
                    if wall > 0.0 {
                        r.cpu.as_secs_f64() / wall
                    } else {
                        0.0
                    }
                })
                .collect(),
            max_backlog: results.iter().map(|r| r.max_backlog).max().unwrap_or(0),
            intervals,
            server_cache,
            sharding: Sharding::Off,
        }
    }

    /// Errors over requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        let errors = self.counters.error_count();
        let requests = self.counters.ops() + errors;
        if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        }
    }

    fn per_sec(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The human-readable summary.
    pub fn text(&self, config: &Config) -> String {
        let c = &self.counters;
        let mut s = String::new();
        let _ = writeln!(s, "== {} ({})", describe(config), config.protocol);
        let _ = writeln!(
            s,
            "ops/s      {:.0} total, {:.0} get, {:.0} set  ({} ops in {:.2} s)",
            self.per_sec(c.ops()),
            self.per_sec(c.gets),
            self.per_sec(c.sets),
            c.ops(),
            self.secs
        );
        let _ = writeln!(
            s,
            "gets       {} answered with a value, {} not found (found ratio {})",
            c.found,
            c.not_found,
            c.found_ratio().map_or("-".into(), |h| format!("{h:.4}"))
        );
        let cache = match &self.server_cache {
            ServerCache::Measured {
                gets, cache_hits, ..
            } => format!(
                "{cache_hits} of {gets} GETs served from cache (cache hit ratio {}; \
                 server STATS, every client)",
                self.server_cache
                    .hit_ratio()
                    .map_or("-".into(), |h| format!("{h:.4}"))
            ),
            ServerCache::AllCached => {
                "every value found was served from cache (memcached has no origin)".into()
            }
            ServerCache::Unknown(why) => format!("not known ({why})"),
        };
        let _ = writeln!(s, "cache      {cache}");
        let _ = writeln!(s, "shards     {}", self.sharding_text());
        let errors = if c.errors.is_empty() {
            "none".to_string()
        } else {
            c.errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "errors     {} ({:.4}%): {errors}",
            c.error_count(),
            self.error_rate() * 100.0
        );
        for (name, h) in [
            ("latency", self.latencies.all()),
            ("  get", self.latencies.get.clone()),
            ("  set", self.latencies.set.clone()),
        ] {
            if h.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "{name:<10} µs p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}",
                us(h.value_at_quantile(0.50)),
                us(h.value_at_quantile(0.90)),
                us(h.value_at_quantile(0.99)),
                us(h.value_at_quantile(0.999)),
                us(h.value_at_quantile(0.9999)),
                us(h.max()),
            );
        }
        let _ = writeln!(
            s,
            "bytes      in {} ({:.1} MB/s), out {} ({:.1} MB/s)",
            c.bytes_in,
            self.per_sec(c.bytes_in) / 1e6,
            c.bytes_out,
            self.per_sec(c.bytes_out) / 1e6
        );
        let busy: Vec<String> = self
            .busy
            .iter()
            .map(|b| format!("{:.0}%", b * 100.0))
            .collect();
        let _ = write!(
            s,
            "generator  threads busy (CPU time / wall time): {}",
            busy.join(" ")
        );
        if self.busy.iter().any(|&b| b > 0.9) {
            let _ = write!(
                s,
                "  -- a thread was over 90% busy: the generator may be the bottleneck"
            );
        }
        let _ = writeln!(s);
        if config.rate.is_some() {
            let _ = writeln!(
                s,
                "open loop  largest backlog of due-but-unsent requests in a thread: {}",
                self.max_backlog
            );
        }
        s
    }

    /// The `shards` line: shard-aware or not, and how many requests hopped between
    /// the servers' cores while measured.
    fn sharding_text(&self) -> String {
        let how = match &self.sharding {
            Sharding::Off => "off: connections stay on the core they landed on".to_string(),
            Sharding::On(servers) => {
                let cores: Vec<String> = servers
                    .iter()
                    .map(|(addr, t)| match t {
                        Some(t) => format!("{addr} {t} cores"),
                        None => format!("{addr} plain, no SHARD"),
                    })
                    .collect();
                format!(
                    "shard-aware: each request on a connection of its key's core ({})",
                    cores.join(", ")
                )
            }
        };
        let hops = match &self.server_cache {
            ServerCache::Measured {
                core_hops: Some(h), ..
            } => {
                format!("{h} requests hopped between server cores (STATS core_hops, every client)")
            }
            ServerCache::Measured {
                core_hops: None, ..
            } => "core hops not counted by the server".into(),
            ServerCache::AllCached => return how,
            ServerCache::Unknown(why) => format!("core hops not known ({why})"),
        };
        format!("{how}; {hops}")
    }

    /// The summary as JSON (the same figures as [`Summary::text`], plus the intervals).
    pub fn to_json(&self, config: &Config) -> Value {
        let c = &self.counters;
        let lat = |h: &Histogram<u64>| {
            json!({
                "count": h.len(),
                "p50": us(h.value_at_quantile(0.50)),
                "p90": us(h.value_at_quantile(0.90)),
                "p99": us(h.value_at_quantile(0.99)),
                "p99_9": us(h.value_at_quantile(0.999)),
                "p99_99": us(h.value_at_quantile(0.9999)),
                "max": us(h.max()),
                "mean": h.mean() / 1000.0,
            })
        };
        let (target_kind, addrs) = match &config.target {
            Target::Servers(a) => ("servers", a),
            Target::Ring(a) => ("ring", a),
        };
        let busy_mean = if self.busy.is_empty() {
            0.0
        } else {
            self.busy.iter().sum::<f64>() / self.busy.len() as f64
        };
        json!({
            "config": {
                "protocol": config.protocol.name(),
                "target": target_kind,
                "addresses": addrs,
                "threads": config.threads,
                "connections": config.connections,
                "pipeline": config.pipeline,
                "duration_secs": match config.stop { Stop::Duration(d) => Some(d.as_secs_f64()), Stop::Requests(_) => None },
                "requests": match config.stop { Stop::Requests(n) => Some(n), Stop::Duration(_) => None },
                "warmup_secs": config.warmup.as_secs_f64(),
                "keys": config.keys,
                "key_prefix": config.key_prefix,
                "key_dist": config.key_dist.to_string(),
                "value_size": [config.value_size.min, config.value_size.max],
                "ratio": [config.ratio.get, config.ratio.set],
                "group": config.group,
                "prefill": config.prefill,
                "rate": config.rate,
                "seed": config.seed,
            },
            "secs": self.secs,
            "ops": c.ops(),
            "ops_per_sec": self.per_sec(c.ops()),
            "per_op": {
                "get": { "ops": c.gets, "ops_per_sec": self.per_sec(c.gets), "latency_us": lat(&self.latencies.get) },
                "set": { "ops": c.sets, "ops_per_sec": self.per_sec(c.sets), "latency_us": lat(&self.latencies.set) },
            },
            "found": c.found,
            "not_found": c.not_found,
            "found_ratio": c.found_ratio(),
            "server_cache": match &self.server_cache {
                ServerCache::Measured { gets, cache_hits, .. } => json!({
                    "gets": gets,
                    "cache_hits": cache_hits,
                    "hit_ratio": self.server_cache.hit_ratio(),
                }),
                ServerCache::AllCached => json!("all"),
                ServerCache::Unknown(why) => json!({ "unknown": why }),
            },
            "shard_aware": matches!(self.sharding, Sharding::On(_)),
            "server_cores": match &self.sharding {
                Sharding::Off => Value::Null,
                Sharding::On(servers) => servers
                    .iter()
                    .map(|(a, t)| (a.clone(), json!(t)))
                    .collect::<serde_json::Map<String, Value>>()
                    .into(),
            },
            "core_hops": match &self.server_cache {
                ServerCache::Measured { core_hops, .. } => json!(core_hops),
                _ => Value::Null,
            },
            "errors": c.error_count(),
            "errors_by_kind": c.errors,
            "error_rate": self.error_rate(),
            "latency_us": lat(&self.latencies.all()),
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "generator": { "busy": self.busy, "busy_mean": busy_mean, "max_backlog": self.max_backlog },
            "intervals": self.intervals.iter().map(Interval::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Nanoseconds as microseconds.
pub fn us(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

fn describe(config: &Config) -> String {
    let stop = match config.stop {
        Stop::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
        Stop::Requests(n) => format!("{n} requests"),
    };
    let mode = match config.rate {
        Some(r) => format!("open loop at {r:.0}/s"),
        None => "closed loop".into(),
    };
    format!(
        "{stop}, {mode}, {} threads, {} connections, pipeline {}, {} keys {}, GET:SET {}:{}",
        config.threads,
        config.connections,
        config.pipeline,
        config.keys,
        config.key_dist,
        config.ratio.get,
        config.ratio.set
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Op;
    use std::time::Duration;

    #[test]
    fn merges_threads_and_computes_rates() {
        let mut a = ThreadResult::default();
        a.counters.gets = 90;
        a.counters.found = 80;
        a.counters.not_found = 10;
        a.counters.sets = 10;
        for i in 1..=100 {
            a.latencies
                .record(if i % 10 == 0 { Op::Set } else { Op::Get }, i * 1000);
        }
        a.cpu = Duration::from_millis(500);
        a.wall = Duration::from_secs(1);
        let mut b = a.clone();
        b.counters.error("timeout", 2);
        let s = Summary::new(&[a, b], 2.0, Vec::new(), ServerCache::AllCached);
        assert_eq!(s.counters.ops(), 200);
        assert_eq!(s.counters.error_count(), 2);
        assert!((s.error_rate() - 2.0 / 202.0).abs() < 1e-12);
        assert_eq!(s.counters.found_ratio(), Some(160.0 / 180.0));
        assert_eq!(s.busy, vec![0.5, 0.5]);
        let all = s.latencies.all();
        assert_eq!(all.len(), 200);
        let p50 = us(all.value_at_quantile(0.5));
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert!((99.9..=100.1).contains(&us(all.max())));
    }
}
