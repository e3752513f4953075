//! The `--metrics-listen` endpoint of the real binary: Prometheus text format,
//! values that move with traffic, histograms that add up, health, errors, and the
//! peer fetch histogram and once-per-node peer logs in a 3-node cluster.
//!
//! One file (about 590 lines): the tests share a scrape parser and one server
//! set-up, and each is short.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;

use common::cluster::TestCluster;
use common::{wait_until, TestServer, DEADLINE};

/// The metrics address a node logged.
fn metrics_addr(s: &TestServer) -> SocketAddr {
    let line = s.wait_log("serving metrics on http://");
    let rest = line.split("serving metrics on http://").nth(1).unwrap();
    rest.split("/metrics")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("bad metrics address in `{line}`: {e}"))
}

/// One HTTP request; (status, headers, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to metrics");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, head.to_string(), body.to_string())
}

/// A scrape: `name{labels}` -> value, plus each family's `# TYPE`.
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
    text: String,
}

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }

    /// Every histogram series of `name`: checks the buckets are cumulative, end in
    /// `+Inf` and that `_count` equals it.
    fn check_histogram(&self, name: &str, labels: &str) {
        let prefix = format!("{name}_bucket{{{labels},le=\"");
        let buckets: Vec<(String, f64)> = self
            .text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                let (le, value) = rest.split_once("\"} ").unwrap();
                (le.to_string(), value.parse().unwrap())
            })
            .collect();
        assert!(buckets.len() >= 2, "no buckets for {name}{{{labels}}}");
        assert_eq!(buckets.last().unwrap().0, "+Inf", "{buckets:?}");
        let bounds: Vec<f64> = buckets[..buckets.len() - 1]
            .iter()
            .map(|(le, _)| le.parse().unwrap())
            .collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "buckets are not cumulative: {buckets:?}"
        );
        let count = self.get(&format!("{name}_count{{{labels}}}"));
        assert_eq!(buckets.last().unwrap().1, count, "{name}: +Inf == _count");
        let sum = self.get(&format!("{name}_sum{{{labels}}}"));
        assert!(sum >= 0.0 && (count > 0.0 || sum == 0.0), "sum {sum}");
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, head, text) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}\n{text}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} has two TYPE lines"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in `{line}`")),
        };
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    Scrape {
        samples,
        types,
        text,
    }
}

/// Scrapes until `series` satisfies `pred`; returns the last scrape.
fn wait_metric(addr: SocketAddr, series: &str, what: &str, pred: impl Fn(f64) -> bool) -> Scrape {
    let mut last = None;
    wait_until(&format!("{series} {what}"), || {
        let s = scrape(addr);
        let ok = s.samples.get(series).is_some_and(|v| pred(*v));
        last = Some(s);
        ok
    });
    last.unwrap()
}

const G: &str = "group=\"default\"";

#[test]
fn metrics_are_prometheus_text_and_move_with_traffic() {
    let s = TestServer::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--origin",
        "synthetic:size=8",
        "--threads",
        "2",
    ]);
    let m = metrics_addr(&s);
    let before = scrape(m);
    for (name, kind) in [
        ("groupcached_build_info", "gauge"),
        ("groupcached_uptime_seconds", "gauge"),
        ("groupcached_threads", "gauge"),
        ("groupcached_members", "gauge"),
        ("groupcached_connections", "gauge"),
        ("groupcached_connections_total", "counter"),
        ("groupcached_rejected_connections_total", "counter"),
        ("groupcached_protocol_errors_total", "counter"),
        ("groupcached_requests_total", "counter"),
        ("groupcached_peer_connections", "gauge"),
        ("groupcached_ring_mismatches_total", "counter"),
        ("groupcached_invalidate_errors_total", "counter"),
        ("groupcached_capacity_bytes", "gauge"),
        ("groupcached_gets_total", "counter"),
        ("groupcached_cache_hits_total", "counter"),
        ("groupcached_peer_loads_total", "counter"),
        ("groupcached_peer_errors_total", "counter"),
        ("groupcached_loads_total", "counter"),
        ("groupcached_loads_deduped_total", "counter"),
        ("groupcached_local_loads_total", "counter"),
        ("groupcached_local_load_errors_total", "counter"),
        ("groupcached_server_requests_total", "counter"),
        ("groupcached_sets_total", "counter"),
        ("groupcached_deletes_total", "counter"),
        ("groupcached_cache_bytes", "gauge"),
        ("groupcached_cache_items", "gauge"),
        ("groupcached_cache_lookups_total", "counter"),
        ("groupcached_cache_lookup_hits_total", "counter"),
        ("groupcached_cache_evictions_total", "counter"),
        ("groupcached_origin_load_seconds", "histogram"),
        ("groupcached_peer_fetch_seconds", "histogram"),
    ] {
        assert_eq!(
            before.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}:\n{}",
            before.text
        );
        assert!(
            before.text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
    // Every counter is named *_total, and every *_total is a counter.
    for (name, kind) in &before.types {
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name} {kind}");
    }
    assert_eq!(before.get("groupcached_threads"), 2.0);
    assert_eq!(before.get("groupcached_members"), 1.0);
    assert_eq!(before.get(&format!("groupcached_gets_total{{{G}}}")), 0.0);
    assert_eq!(
        before.get(&format!("groupcached_capacity_bytes{{{G}}}")),
        (64u64 << 20) as f64
    );
    assert!(before
        .text
        .lines()
        .any(|l| l.starts_with("groupcached_build_info{version=\"")
            && l.contains(env!("CARGO_PKG_VERSION"))
            && l.ends_with("} 1")));
    before.check_histogram("groupcached_origin_load_seconds", G);

    // A miss (one origin load), then a hit; a SET and a DELETE.
    let mut c = s.client();
    assert!(c.get("default", "k1").unwrap().is_some());
    assert!(c.get("default", "k1").unwrap().is_some());
    c.set("default", "k2", b"v", None).unwrap();
    c.delete("default", "k2").unwrap();
    let after = wait_metric(
        m,
        &format!("groupcached_origin_load_seconds_count{{{G}}}"),
        "== 1",
        |v| v == 1.0,
    );
    assert_eq!(after.get(&format!("groupcached_gets_total{{{G}}}")), 2.0);
    assert_eq!(
        after.get(&format!("groupcached_cache_hits_total{{{G}}}")),
        1.0
    );
    assert_eq!(
        after.get(&format!("groupcached_local_loads_total{{{G}}}")),
        1.0
    );
    assert_eq!(after.get(&format!("groupcached_sets_total{{{G}}}")), 1.0);
    assert_eq!(after.get(&format!("groupcached_deletes_total{{{G}}}")), 1.0);
    assert_eq!(
        after.get(&format!("groupcached_cache_items{{{G},cache=\"main\"}}")),
        1.0
    );
    assert!(after.get(&format!("groupcached_cache_bytes{{{G},cache=\"main\"}}")) > 0.0);
    assert_eq!(
        after.get(&format!(
            "groupcached_cache_lookup_hits_total{{{G},cache=\"main\"}}"
        )),
        1.0
    );
    assert!(after.get("groupcached_requests_total") >= 4.0);
    assert!(after.get("groupcached_connections") >= 1.0);
    assert!(after.get("groupcached_connections_total") >= 1.0);
    assert!(after.get("groupcached_uptime_seconds") >= before.get("groupcached_uptime_seconds"));
    after.check_histogram("groupcached_origin_load_seconds", G);
    after.check_histogram("groupcached_peer_fetch_seconds", G);
    // A synthetic load without delay takes well under 10 s: it is in a finite bucket.
    assert_eq!(
        after.get(&format!(
            "groupcached_origin_load_seconds_bucket{{{G},le=\"10\"}}"
        )),
        1.0
    );
    // The STATS op and the scrape agree.
    assert_eq!(s.stat("group.default.gets"), 2);
}

#[test]
fn health_and_http_errors() {
    let s = TestServer::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--origin",
        "synthetic:size=8,delay_ms=1500",
    ]);
    let m = metrics_addr(&s);
    let (status, _, body) = http(m, "GET", "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, _) = http(m, "GET", "/nope");
    assert_eq!(status, 404);
    let (status, head, _) = http(m, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    let (status, _, _) = http(m, "DELETE", "/healthz");
    assert_eq!(status, 405);
    // Garbage and an oversized head get an answer, and the endpoint keeps serving.
    {
        let mut raw = TcpStream::connect(m).unwrap();
        raw.set_read_timeout(Some(DEADLINE)).unwrap();
        raw.write_all(b"hello\r\n\r\n").unwrap();
        let mut out = String::new();
        raw.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }
    {
        let mut raw = TcpStream::connect(m).unwrap();
        raw.set_read_timeout(Some(DEADLINE)).unwrap();
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let _ = raw.write_all(big.as_bytes());
        let mut out = Vec::new();
        let _ = raw.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    }
    assert_eq!(http(m, "GET", "/healthz?probe=1").0, 200);

    // While shutting down (draining a slow load), /healthz says 503.
    let addr = s.addr();
    let slow = thread::spawn(move || {
        let mut c = groupcached_client::Client::connect(addr).unwrap();
        c.get("default", "slow")
            .unwrap()
            .map(|v| v.into_bytes().len())
    });
    wait_metric(
        m,
        &format!("groupcached_loads_deduped_total{{{G}}}"),
        "== 1",
        |v| v == 1.0,
    );
    s.signal("TERM");
    let mut seen = 0;
    wait_until("/healthz to answer 503 during the drain", || {
        seen = http(m, "GET", "/healthz").0;
        seen == 503
    });
    assert_eq!(
        slow.join().unwrap(),
        Some(8),
        "the in-flight load was answered"
    );
}

#[test]
fn cluster_peer_fetches_are_timed_and_peer_transitions_logged_once_per_node() {
    let mut cluster = TestCluster::start(
        3,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--origin",
            "synthetic:size=8",
            "--threads",
            "2",
        ],
    );
    let m0 = metrics_addr(cluster.node(0));
    // Keys owned by node 1, read through node 0: each is a FETCH from 0 to 1. Many
    // keys, so both of node 0's cores open their own connection to node 1.
    let keys: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| cluster.owner_of(k.as_bytes()) == 1)
        .take(24)
        .collect();
    let mut c = cluster.node(0).client();
    for k in &keys {
        assert!(c.get("default", k).unwrap().is_some());
    }
    let n = keys.len() as f64;
    let s0 = wait_metric(
        m0,
        &format!("groupcached_peer_fetch_seconds_count{{{G}}}"),
        ">= all keys",
        |v| v >= n,
    );
    assert!(s0.get(&format!("groupcached_peer_loads_total{{{G}}}")) >= n);
    assert_eq!(
        s0.get(&format!("groupcached_peer_errors_total{{{G}}}")),
        0.0
    );
    assert_eq!(s0.get("groupcached_members"), 3.0);
    assert!(s0.get("groupcached_peer_connections") >= 1.0);
    s0.check_histogram("groupcached_peer_fetch_seconds", G);
    let m1 = metrics_addr(cluster.node(1));
    let s1 = scrape(m1);
    assert!(s1.get(&format!("groupcached_server_requests_total{{{G}}}")) >= n);
    assert!(s1.get(&format!("groupcached_origin_load_seconds_count{{{G}}}")) >= n);
    // Every node has the same ring.
    let fp = |s: &Scrape| {
        s.text
            .lines()
            .find(|l| l.starts_with("groupcached_ring_info{"))
            .unwrap()
            .to_string()
    };
    assert_eq!(fp(&s0), fp(&s1));

    // Node 0 logged node 1 as up once, however many of its cores connected.
    let peer1 = cluster.addrs()[1].clone();
    let up = format!("peer {peer1} is up");
    let count = |cluster: &TestCluster, needle: &str| {
        cluster
            .node(0)
            .logs()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    };
    assert_eq!(count(&cluster, &up), 1, "{:#?}", cluster.node(0).logs());

    // Node 1 dies: node 0's connections to it all fail; "down" is logged once.
    // Node 0 only ever talked to node 1 (reads of node 1's keys, no writes), so
    // its peer connection gauge falls to 0 once every core noticed.
    cluster.kill(1);
    let ring = cluster.ring_of(&[0, 1, 2]);
    let peer1_key = |j: usize| {
        (j * 1000..)
            .map(|i| format!("down{i}"))
            .find(|k| ring.owner(k.as_bytes()) == Some(peer1.as_str()))
            .unwrap()
    };
    let mut j = 0;
    wait_until("node 0 to notice node 1 is down", || {
        // Fresh keys of node 1: every core tries node 1 (each key's shard is a core).
        j += 1;
        let _ = c.get("default", peer1_key(j));
        count(&cluster, &format!("peer {peer1} is down")) >= 1
    });
    wait_metric(m0, "groupcached_peer_connections", "== 0", |v| v == 0.0);
    for _ in 0..8 {
        j += 1;
        let _ = c.get("default", peer1_key(j));
    }
    assert_eq!(
        count(&cluster, &format!("peer {peer1} is down")),
        1,
        "{:#?}",
        cluster.node(0).logs()
    );
    assert_eq!(count(&cluster, &up), 1);
}

#[test]
fn origin_errors_are_counted_timed_and_logged_at_most_once_per_interval() {
    let origin = common::HttpOrigin::start(|_| (500, b"broken".to_vec()));
    let spec = origin.spec("/v/{key}");
    let s = TestServer::start(&["--metrics-listen", "127.0.0.1:0", "--origin", &spec]);
    let m = metrics_addr(&s);
    let mut c = s.client();
    for i in 0..5 {
        assert!(c.get("default", format!("bad{i}")).is_err());
    }
    let after = wait_metric(
        m,
        &format!("groupcached_local_load_errors_total{{{G}}}"),
        "== 5",
        |v| v == 5.0,
    );
    assert_eq!(
        after.get(&format!("groupcached_origin_load_seconds_count{{{G}}}")),
        5.0
    );
    let line = s.wait_log("origin load of key");
    assert!(
        line.contains("group default") && line.contains("bad0"),
        "{line}"
    );
    // The other four fell within the same 10 s: not logged, to be counted in the next line.
    let lines = s
        .logs()
        .iter()
        .filter(|l| l.contains("origin load of key"))
        .count();
    assert_eq!(lines, 1, "{:#?}", s.logs());
}

/// Keeps `slow` connections to `addr` sending a request head one byte per round (a
/// slowloris) and `silent` connections that never send anything, reopening each as
/// soon as the server closes it, until `stop`. Counts the connections it opened.
fn flood(
    addr: SocketAddr,
    slow: usize,
    silent: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    thread::spawn(move || {
        let mut conns: Vec<Option<TcpStream>> = (0..slow + silent).map(|_| None).collect();
        while !stop.load(Ordering::Acquire) {
            for (i, slot) in conns.iter_mut().enumerate() {
                if slot.is_none() {
                    let Ok(mut s) = TcpStream::connect_timeout(&addr, DEADLINE) else {
                        continue;
                    };
                    if i < slow && s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").is_err() {
                        continue;
                    }
                    let _ = s.set_nonblocking(true);
                    opened.fetch_add(1, Ordering::AcqRel);
                    *slot = Some(s);
                }
                let Some(s) = slot else { continue };
                let mut buf = [0u8; 512];
                let closed = match s.read(&mut buf) {
                    Ok(_) => true, // an answer (or EOF): the server is done with it
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                if closed || (i < slow && s.write_all(b"a").is_err()) {
                    *slot = None;
                }
            }
            // Pacing of the load, not synchronisation: one byte per slow connection
            // every 50 ms.
            thread::sleep(std::time::Duration::from_millis(50));
        }
    })
}

/// Issue 10 item 11: slow and silent connections to the metrics port must not keep
/// `/healthz` from answering (a liveness probe would restart a healthy pod). 100
/// slowloris connections and 200 silent ones (300 > the endpoint's 256-connection
/// bound, so it must close idle ones to make room) are kept open while 50 probes
/// are made, one after the other; every probe must get 200 `ok`.
///
/// With `--nocapture` it prints the probes' latencies: docs/operations.md quotes
/// `cargo test --release --test metrics healthz_answers_during_a_slow_client_flood -- --nocapture`.
#[test]
fn healthz_answers_during_a_slow_client_flood() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const SLOW: usize = 100;
    const SILENT: usize = 200;
    const PROBES: usize = 50;
    let s = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    let m = metrics_addr(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flooder = flood(m, SLOW, SILENT, stop.clone(), opened.clone());
    wait_until("the flood to open its connections", || {
        opened.load(Ordering::Acquire) >= SLOW + SILENT
    });

    let mut latencies = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let start = Instant::now();
        let (status, _, body) = http(m, "GET", "/healthz");
        latencies.push(start.elapsed());
        assert_eq!(
            (status, body.as_str()),
            (200, "ok\n"),
            "a probe was refused"
        );
    }
    // The flood was still on after the last probe: it kept reopening what the
    // endpoint closed.
    let during = opened.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    flooder.join().unwrap();
    assert!(
        scrape(m).get("groupcached_threads") >= 1.0,
        "/metrics still served"
    );

    latencies.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "/healthz during a flood of {SLOW} slow + {SILENT} silent connections \
         ({during} opened in all): {PROBES} probes, all 200; \
         p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(latencies[PROBES / 2]),
        ms(latencies[PROBES * 9 / 10]),
        ms(latencies[PROBES - 1]),
    );
    assert!(
        s.logs()
            .iter()
            .any(|l| l.contains("closed the oldest idle one")),
        "300 connections exceed the bound of 256, so idle ones were closed and logged"
    );
}
