//! Prometheus metrics: the text exposition format 0.0.4 rendered from the stats
//! registry, and the small HTTP endpoint (`--metrics-listen`) that serves it.
//!
//! Nothing here runs on a core: a scrape reads every core's single-writer counters
//! and histograms with relaxed loads and sums them, so the cores never stop or
//! take a lock for it. A scrape is therefore not one atomic instant: two counters
//! may be read a few microseconds apart, and a histogram's `_sum` may include an
//! observation its buckets do not yet (its `_count` always equals its `+Inf` bucket).

pub(crate) mod http;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use groupcached_protocol::PROTOCOL_VERSION;

use crate::stats::{
    CacheCounters, Counter, GroupCounters, Histogram, HistogramSnapshot, LoaderCounters,
    NodeCounters, StatsRegistry, LATENCY_BUCKETS,
};

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the text exposition format: `# HELP` and `# TYPE` once per family, then
/// its samples, with label values and help text escaped as the format requires.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Starts a family. Every sample of it must follow before the next family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample with an integer value.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a floating-point value.
    pub fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {}", format_f64(value));
    }

    /// The samples of one histogram: cumulative `_bucket`s with `le`, `+Inf` last,
    /// then `_sum` (seconds) and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let cumulative = h.cumulative();
        let bucket = format!("{name}_bucket");
        for (i, count) in cumulative.iter().enumerate() {
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_f64(*b));
            self.name_and_labels(&bucket, labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample_f64(&format!("{name}_sum"), labels, h.sum_seconds());
        self.sample(&format!("{name}_count"), labels, h.count());
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)], le: Option<&str>) {
        self.out.push_str(name);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
        }
        self.out.push('}');
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes help text: backslash and line feed.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest
/// round-tripping form).
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

type NodePick = fn(&NodeCounters) -> &Counter;
type GroupPick = fn(&GroupCounters) -> &Counter;
type CachePick = fn(&CacheCounters) -> &Counter;

/// Node-wide counters summed over cores: (name, kind, help, STATS name, counter).
const NODE: &[(&str, Kind, &str, NodePick)] = &[
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
const GROUP: &[(&str, &str, GroupPick)] = &[
    (
        "groupcached_gets_total",
        "GET requests from clients plus FETCH requests from peers (STATS gets).",
        |g| &g.gets,
    ),
    (
        "groupcached_cache_hits_total",
        "Gets answered from the main or hot cache (STATS cache_hits).",
        |g| &g.cache_hits,
    ),
    (
        "groupcached_peer_loads_total",
        "Values (or not-found answers) fetched from the key's owner (STATS peer_loads).",
        |g| &g.peer_loads,
    ),
    (
        "groupcached_peer_errors_total",
        "Fetches from the owner that failed or timed out, then loaded locally (STATS peer_errors).",
        |g| &g.peer_errors,
    ),
    (
        "groupcached_loads_total",
        "Gets that missed the cache (gets - cache_hits) (STATS loads).",
        |g| &g.loads,
    ),
    (
        "groupcached_loads_deduped_total",
        "Loads or fetches actually started after in-flight de-duplication (STATS loads_deduped).",
        |g| &g.loads_deduped,
    ),
    (
        "groupcached_local_loads_total",
        "Successful origin loads, including not-found answers (STATS local_loads).",
        |g| &g.local_loads,
    ),
    (
        "groupcached_local_load_errors_total",
        "Failed origin loads: errors, timeouts, panics (STATS local_load_errs).",
        |g| &g.local_load_errs,
    ),
    (
        "groupcached_server_requests_total",
        "FETCH requests received from peers (STATS server_requests).",
        |g| &g.server_requests,
    ),
    (
        "groupcached_sets_total",
        "SET requests and peers' STOREs (STATS sets).",
        |g| &g.sets,
    ),
    (
        "groupcached_deletes_total",
        "DELETE requests and peers' PURGEs (STATS deletes).",
        |g| &g.deletes,
    ),
];

/// Per-cache counters, labelled `group` and `cache` (`main`|`hot`).
const CACHE: &[(&str, Kind, &str, CachePick)] = &[
    (
        "groupcached_cache_bytes",
        Kind::Gauge,
        "Bytes charged to the cache: key + value + per-entry overhead (STATS <cache>.bytes).",
        |c| &c.bytes,
    ),
    (
        "groupcached_cache_items",
        Kind::Gauge,
        "Entries in the cache (STATS <cache>.items).",
        |c| &c.items,
    ),
    (
        "groupcached_cache_lookups_total",
        Kind::Counter,
        "Lookups in the cache (STATS <cache>.gets).",
        |c| &c.gets,
    ),
    (
        "groupcached_cache_lookup_hits_total",
        Kind::Counter,
        "Lookups that found a live entry (STATS <cache>.hits).",
        |c| &c.hits,
    ),
    (
        "groupcached_cache_evictions_total",
        Kind::Counter,
        "Entries evicted to stay within the group's budget (STATS <cache>.evictions).",
        |c| &c.evictions,
    ),
];

type LoaderPick = fn(&LoaderCounters) -> &AtomicU64;

/// Per-group origin-loader counters and gauges.
const LOADER: &[(&str, Kind, &str, LoaderPick)] = &[
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

type HistPick = fn(&GroupCounters) -> &Histogram;

/// Per-group latency histograms.
const HISTOGRAMS: &[(&str, &str, HistPick)] = &[
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

/// Renders every metric of `reg` in the text exposition format.
pub fn render(reg: &StatsRegistry) -> String {
    let mut e = Exposition::new();
    e.family(
        "groupcached_build_info",
        Kind::Gauge,
        "Always 1; the labels name the server version and protocol version.",
    );
    e.sample(
        "groupcached_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("protocol", &PROTOCOL_VERSION.to_string()),
        ],
        1,
    );
    e.family(
        "groupcached_uptime_seconds",
        Kind::Gauge,
        "Seconds since the server started (STATS uptime_secs).",
    );
    e.sample_f64(
        "groupcached_uptime_seconds",
        &[],
        reg.started.elapsed().as_secs_f64(),
    );
    e.family(
        "groupcached_threads",
        Kind::Gauge,
        "Worker threads (cores), each with its own event loop and cache shard (STATS threads).",
    );
    e.sample("groupcached_threads", &[], reg.cores.len() as u64);
    let core0 = reg.cores.first();
    e.family(
        "groupcached_members",
        Kind::Gauge,
        "Members of the current ring, this node included (STATS members).",
    );
    e.sample(
        "groupcached_members",
        &[],
        core0.map_or(0, |c| c.node.members.get()),
    );
    e.family(
        "groupcached_ring_info",
        Kind::Gauge,
        "Always 1; the label is the current ring fingerprint, equal on every node that has the same members.",
    );
    let fingerprint = format!(
        "{:016x}",
        core0.map_or(0, |c| c.node.ring_fingerprint.get())
    );
    e.sample("groupcached_ring_info", &[("fingerprint", &fingerprint)], 1);
    e.family(
        "groupcached_peers_suspect",
        Kind::Gauge,
        "Members whose circuit breaker is open: requests to them timed out in a row, so their keys load locally until they answer a probe (STATS peers_suspect).",
    );
    e.sample(
        "groupcached_peers_suspect",
        &[],
        reg.peers_suspect.load(std::sync::atomic::Ordering::Relaxed),
    );
    for (name, kind, help, pick) in NODE {
        e.family(name, *kind, help);
        e.sample(name, &[], reg.sum(|c| pick(&c.node).get()));
    }

    let group_sum =
        |gi: usize, f: &dyn Fn(&GroupCounters) -> u64| reg.sum(|c| c.groups.get(gi).map_or(0, f));
    e.family(
        "groupcached_capacity_bytes",
        Kind::Gauge,
        "The group's cache budget on this node, main + hot cache (STATS capacity_bytes).",
    );
    for (gi, group) in reg.group_names.iter().enumerate() {
        e.sample(
            "groupcached_capacity_bytes",
            &[("group", group)],
            reg.group_capacity[gi],
        );
    }
    for (name, help, pick) in GROUP {
        e.family(name, Kind::Counter, help);
        for (gi, group) in reg.group_names.iter().enumerate() {
            e.sample(name, &[("group", group)], group_sum(gi, &|g| pick(g).get()));
        }
    }
    for (name, kind, help, pick) in CACHE {
        e.family(name, *kind, help);
        for (gi, group) in reg.group_names.iter().enumerate() {
            let main = group_sum(gi, &|g| pick(&g.main).get());
            let hot = group_sum(gi, &|g| pick(&g.hot).get());
            e.sample(name, &[("group", group), ("cache", "main")], main);
            e.sample(name, &[("group", group), ("cache", "hot")], hot);
        }
    }
    for (name, kind, help, pick) in LOADER {
        e.family(name, *kind, help);
        for (gi, group) in reg.group_names.iter().enumerate() {
            let v = reg
                .loaders
                .get(gi)
                .map_or(0, |l| pick(l).load(Ordering::Relaxed));
            e.sample(name, &[("group", group)], v);
        }
    }
    for (name, help, pick) in HISTOGRAMS {
        e.family(name, Kind::Histogram, help);
        for gi in 0..reg.group_names.len() {
            let h = reg.histogram(gi, *pick);
            e.histogram(name, &[("group", &reg.group_names[gi])], &h);
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn samples_and_labels_are_written_and_escaped() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Line one\nwith \\ backslash.");
        e.sample("x_total", &[], 7);
        e.sample("x_total", &[("group", "a\"b\\c\nd"), ("cache", "main")], 3);
        e.family("y", Kind::Gauge, "A float.");
        e.sample_f64("y", &[], 0.25);
        e.sample_f64("y", &[("k", "inf")], f64::INFINITY);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total Line one\\nwith \\\\ backslash.\n\
             # TYPE x_total counter\n\
             x_total 7\n\
             x_total{group=\"a\\\"b\\\\c\\nd\",cache=\"main\"} 3\n\
             # HELP y A float.\n\
             # TYPE y gauge\n\
             y 0.25\n\
             y{k=\"inf\"} +Inf\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_inf_last_and_count_equal_to_it() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(200));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(30));
        let mut snap = HistogramSnapshot::default();
        snap.add(&h);
        let mut e = Exposition::new();
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        e.histogram("lat_seconds", &[("group", "g")], &snap);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "lat_seconds_bucket{group=\"g\",le=\"0.0005\"} 1");
        assert_eq!(lines[5], "lat_seconds_bucket{group=\"g\",le=\"0.005\"} 1");
        assert_eq!(lines[6], "lat_seconds_bucket{group=\"g\",le=\"0.01\"} 2");
        assert_eq!(lines[15], "lat_seconds_bucket{group=\"g\",le=\"10\"} 2");
        assert_eq!(lines[16], "lat_seconds_bucket{group=\"g\",le=\"+Inf\"} 3");
        assert!(lines[17].starts_with("lat_seconds_sum{group=\"g\"} 30.0072"));
        assert_eq!(lines[18], "lat_seconds_count{group=\"g\"} 3");
        assert_eq!(lines.len(), 19);
    }

    #[test]
    fn render_names_every_family_once_with_help_and_type() {
        let reg = StatsRegistry::new(2, &[("a".into(), 1 << 20), ("b\"q".into(), 2 << 20)]);
        reg.cores[0].groups[0].gets.add(3);
        reg.cores[1].groups[0].gets.add(4);
        reg.cores[1].groups[1].main.bytes.set(99);
        reg.cores[0].node.members.set(3);
        reg.loaders[0]
            .queue_waits
            .fetch_add(5, std::sync::atomic::Ordering::Relaxed);
        reg.cores[0].groups[0]
            .origin_load
            .observe(Duration::from_millis(1));
        let text = render(&reg);
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(families.insert(name.to_string()), "{name} twice");
                let kind = rest.rsplit(' ').next().unwrap();
                assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
            }
        }
        for (line, _) in [
            ("groupcached_gets_total{group=\"a\"} 7", 0),
            ("groupcached_gets_total{group=\"b\\\"q\"} 0", 0),
            (
                "groupcached_cache_bytes{group=\"b\\\"q\",cache=\"main\"} 99",
                0,
            ),
            ("groupcached_capacity_bytes{group=\"a\"} 1048576", 0),
            ("groupcached_members 3", 0),
            ("groupcached_threads 2", 0),
            ("groupcached_origin_load_seconds_count{group=\"a\"} 1", 0),
            ("groupcached_peer_fetch_seconds_count{group=\"a\"} 0", 0),
            ("groupcached_load_queue_waits_total{group=\"a\"} 5", 0),
            ("groupcached_loads_running{group=\"a\"} 0", 0),
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.contains(&format!(
            "groupcached_build_info{{version=\"{}\",protocol=\"{PROTOCOL_VERSION}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        // Every sample line belongs to the family announced last.
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    name == current
                        || name
                            .strip_prefix(current.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)),
                    "{line} after family {current}"
                );
            }
        }
    }
}
