//! Prometheus metrics: the text exposition format 0.0.4 rendered from the stats
//! registry, and the small HTTP endpoint (`--metrics-listen`) that serves it.
//!
//! Nothing here runs on a core: a scrape reads every core's single-writer counters
//! and histograms with relaxed loads and sums them, so the cores never stop or
//! take a lock for it. A scrape is therefore not one atomic instant: two counters
//! may be read a few microseconds apart, and a histogram's `_sum` may include an
//! observation its buckets do not yet (its `_count` always equals its `+Inf` bucket).

//!
//! Files: `exposition.rs` writes the text format, `catalog.rs` lists every metric
//! and the counter it reads, `http.rs` is the `--metrics-listen` connection loop and
//! `routes.rs` what it answers. Why these are written here rather than taken from
//! `prometheus-client` and an HTTP server crate: docs/architecture.md
//! ("Dependencies").

mod catalog;
mod exposition;
pub(crate) mod http;
mod routes;

use std::sync::atomic::Ordering;

use groupcached_protocol::PROTOCOL_VERSION;

use crate::stats::{GroupCounters, StatsRegistry};
use catalog::{CACHE, GROUP, HISTOGRAMS, LOADER, NODE};
pub use exposition::{Exposition, Kind};

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
            e.sample(name, &[("group", group)], group_sum(gi, pick));
        }
    }
    for (name, kind, help, pick) in CACHE {
        e.family(name, *kind, help);
        for (gi, group) in reg.group_names.iter().enumerate() {
            let main = group_sum(gi, &|g| pick(&g.main));
            let hot = group_sum(gi, &|g| pick(&g.hot));
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
    fn render_names_every_family_once_with_help_and_type() {
        let reg = StatsRegistry::new(2, &[("a".into(), 1 << 20), ("b\"q".into(), 2 << 20)]);
        reg.cores[0].groups[0].main.hits.add(3);
        reg.cores[1].groups[0].main.misses.add(4);
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
