//! `groupcached-bench` against real servers: the `groupcached` binary of this
//! workspace (brought up to date once per test run with `cargo build`, so a stale
//! binary from an earlier build is never used) and `memcached`. Every server listens
//! on a free 127.0.0.1 port; every wait polls with a deadline.
//!
//! memcached: when it is not on PATH its test prints `SKIPPED` on the test output (it
//! cannot be captured away) and passes; with `GROUPCACHED_REQUIRE_MEMCACHED=1` (set
//! by .ci/run) or the `CI` variable set (CI installs memcached), a missing memcached
//! fails the test instead.
//!
//! One file of tests (about 500 lines) and its harness in `common/`.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{assert_clean, bench, fake_server, memcache_run, text, Proc};

#[test]
fn groupcached_get_only_after_prefill_hits_every_time() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    let (out, j) = bench(
        "get-only",
        &[
            "--server",
            &addr,
            "--prefill",
            "--keys",
            "2000",
            "--requests",
            "20000",
            "--ratio",
            "1:0",
            "--threads",
            "2",
            "--connections",
            "6",
            "--pipeline",
            "8",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["ops"], 20000);
    assert_eq!(j["found"], 20000);
    assert_eq!(j["found_ratio"], 1.0);
    assert_eq!(j["server_cache"]["gets"], 20000, "{j}");
    assert_eq!(
        j["server_cache"]["cache_hits"], 20000,
        "prefilled: all from cache"
    );
    assert_eq!(j["per_op"]["set"]["ops"], 0);
    assert_eq!(
        server.stat("group.default.sets"),
        2000,
        "prefill wrote each key once"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ops/s") && stdout.contains("p99.99"),
        "{stdout}"
    );
}

#[test]
fn groupcached_timed_zipf_mix_with_warmup_reports_each_second() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    let (out, j) = bench(
        "zipf-mix",
        &[
            "--server",
            &addr,
            "--prefill",
            "--keys",
            "1000",
            "--duration",
            "1s",
            "--warmup",
            "500ms",
            "--ratio",
            "9:1",
            "--key-dist",
            "zipf:0.99",
            "--value-size",
            "50-150",
            "--connections",
            "4",
            "--pipeline",
            "4",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["found_ratio"], 1.0, "every key was prefilled");
    assert!(j["per_op"]["set"]["ops"].as_u64().unwrap() > 0);
    let secs = j["secs"].as_f64().unwrap();
    assert!((0.99..1.2).contains(&secs), "measured {secs} s");
    let intervals = j["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 1, "{intervals:?}");
    assert_eq!(intervals[0]["ops"], j["ops"]);
}

#[test]
fn open_loop_holds_its_rate() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    let (out, j) = bench(
        "open-loop",
        &[
            "--server",
            &addr,
            "--prefill",
            "--keys",
            "500",
            "--duration",
            "1s",
            "--rate",
            "2000",
            "--connections",
            "4",
            "--pipeline",
            "4",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    let ops = j["ops"].as_u64().unwrap();
    // Due instants are fixed, so the count cannot exceed the schedule; a server that
    // kept up delivers nearly all of it.
    assert!((1000..=2001).contains(&ops), "{ops} ops at 2000/s for 1 s");
    assert_eq!(j["config"]["rate"], 2000.0);
}

#[test]
fn ring_aware_routing_sends_each_key_to_its_owner() {
    let a = Proc::groupcached(&["--cache-size", "64MiB"]);
    let b = Proc::groupcached(&["--cache-size", "64MiB"]);
    let peers = format!("{},{}", a.addr, b.addr);
    let (out, j) = bench(
        "ring",
        &[
            "--peers",
            &peers,
            "--prefill",
            "--keys",
            "2000",
            "--requests",
            "10000",
            "--ratio",
            "1:0",
            "--connections",
            "4",
            "--pipeline",
            "4",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    // The two servers are not a cluster: a GET that went anywhere but the node the
    // prefill wrote its key to would miss.
    assert_eq!(j["found_ratio"], 1.0);
    let (sa, sb) = (a.stat("group.default.sets"), b.stat("group.default.sets"));
    assert_eq!(sa + sb, 2000);
    assert!(sa > 600 && sb > 600, "keys split {sa}/{sb}");
}

/// Shard-aware (the default), every request goes on a connection the server moved to
/// its key's core: the server's `core_hops` does not move. Off, about half of the
/// requests to a two-core server hop.
#[test]
fn shard_aware_runs_make_no_request_hop_between_server_cores() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    for mode in ["on", "off"] {
        let handoffs = server.stat("shard_handoffs");
        let (out, j) = bench(
            &format!("shard-{mode}"),
            &[
                "--server",
                &addr,
                "--prefill",
                "--keys",
                "2000",
                "--requests",
                "20000",
                "--ratio",
                "9:1",
                "--threads",
                "2",
                "--connections",
                "4",
                "--pipeline",
                "8",
                "--shard-aware",
                mode,
            ],
        );
        let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
        assert_clean(&out, &j);
        assert_eq!(j["found_ratio"], 1.0, "{j}");
        let hops = j["core_hops"].as_u64().unwrap_or_else(|| panic!("{j}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if mode == "on" {
            assert_eq!(j["shard_aware"], true);
            assert_eq!(j["server_cores"][&addr], 2, "{j}");
            assert_eq!(hops, 0, "{j}");
            assert!(
                stdout.contains("shard-aware") && stdout.contains(" 0 requests hopped"),
                "{stdout}"
            );
        } else {
            assert_eq!(j["shard_aware"], false);
            assert!(hops > 1000, "about half of 20,000 requests hop: {j}");
            assert_eq!(server.stat("shard_handoffs"), handoffs, "nothing moved");
            assert!(stdout.contains("shards     off"), "{stdout}");
        }
    }
}

#[test]
fn cold_cache_loads_each_key_once() {
    let server = Proc::groupcached(&["--origin", "synthetic:size=100,delay_ms=5"]);
    let addr = server.addr.to_string();
    // 200 keys, 4000 uniform GETs: every key is asked for (the chance one is not is
    // about 200 * e^-20), many of them while its first load is still running.
    let (out, j) = bench(
        "cold",
        &[
            "--server",
            &addr,
            "--keys",
            "200",
            "--requests",
            "4000",
            "--ratio",
            "1:0",
            "--connections",
            "20",
            "--pipeline",
            "4",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["found"], 4000, "the origin has every key");
    assert_eq!(server.stat("group.default.local_loads"), 200);
    assert_eq!(server.stat("group.default.loads_deduped"), 200);
    // Issue 13: every GET found a value, but not every one came from the cache.
    // The 200 that started a load missed it, and so did those that joined one.
    let cache = &j["server_cache"];
    assert_eq!(cache["gets"], 4000, "{j}");
    let hits = cache["cache_hits"].as_u64().unwrap();
    assert_eq!(
        hits,
        server.stat("group.default.cache_hits"),
        "nothing before the run"
    );
    assert!(
        hits <= 3800,
        "{hits} cache hits, though 200 GETs started loads"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("4000 answered with a value")
            && stdout.contains(&format!("{hits} of 4000 GETs served from cache")),
        "{stdout}"
    );
}

/// Issue 13: after --prefill, the first measured requests went out only at the
/// generator's next 100 ms tick, so a short run's latencies were all ~100 ms. Each of
/// 20 connections sends one request here; with that bug every latency is at least
/// 100 ms, so a p50 under 100 ms in any of three runs shows it is gone (no run is
/// judged on how fast it was beyond that).
#[test]
fn first_requests_after_prefill_are_sent_at_once() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    let mut p50s = Vec::new();
    for attempt in 0..3 {
        let (out, j) = bench(
            &format!("first-requests-{attempt}"),
            &[
                "--server",
                &addr,
                "--prefill",
                "--keys",
                "500",
                "--requests",
                "20",
                "--connections",
                "20",
                "--ratio",
                "1:0",
            ],
        );
        let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
        assert_clean(&out, &j);
        let p50 = j["latency_us"]["p50"].as_f64().unwrap();
        if p50 < 100_000.0 {
            return;
        }
        p50s.push(p50);
    }
    panic!("every run's first requests waited 100 ms or more: p50 {p50s:?} µs");
}

/// `--duration` and `--warmup` take the server's durations plus fractions.
#[test]
fn fractional_durations_are_accepted() {
    let server = Proc::groupcached(&["--cache-size", "64MiB"]);
    let addr = server.addr.to_string();
    let (out, j) = bench(
        "fractional",
        &[
            "--server",
            &addr,
            "--duration",
            "0.5s",
            "--warmup",
            "0.1s",
            "--connections",
            "2",
            "--keys",
            "100",
            "--prefill",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["config"]["duration_secs"], 0.5);
    assert_eq!(j["config"]["warmup_secs"], 0.1);
}

#[test]
fn server_errors_fail_the_run_unless_tolerated() {
    let server = Proc::groupcached(&[]);
    let addr = server.addr.to_string();
    let args = [
        "--server",
        &addr,
        "--group",
        "nosuch",
        "--requests",
        "200",
        "--connections",
        "2",
    ];
    let (out, j) = bench("errors", &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let j = j.expect("JSON is written even when the run fails its error budget");
    assert_eq!(j["errors"], 200);
    assert_eq!(j["errors_by_kind"]["UNKNOWN_GROUP"], 200);
    assert_eq!(j["error_rate"], 1.0);

    let tolerant: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--max-error-rate", "1"])
        .collect();
    let (out, _) = bench("errors-tolerated", &tolerant);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn refused_connection_and_bad_flags_exit_non_zero() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (out, j) = bench("refused", &["--server", &addr, "--requests", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(j.is_none());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out)
    );

    let (out, _) = bench("bad-flag", &["--ratio", "0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn memcached_meta_and_text_protocols() {
    let Some(mc) = Proc::memcached("memcached_meta_and_text_protocols") else {
        return;
    };
    let addr = mc.addr.to_string();
    for protocol in ["memcache", "memcache-text"] {
        let j = memcache_run(protocol, &addr, protocol);
        assert_eq!(j["ops"], 10000, "{protocol}");
        assert_eq!(j["found_ratio"], 1.0, "{protocol}");
        assert_eq!(
            j["server_cache"], "all",
            "{protocol}: memcached has no origin"
        );
        assert!(j["per_op"]["set"]["ops"].as_u64().unwrap() > 0);
    }
}

#[test]
fn lost_connections_count_as_errors_and_are_reopened() {
    // Reads a little, then hangs up: every request in flight is lost.
    let addr = fake_server(|mut s| {
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut buf);
    })
    .to_string();
    let (out, j) = bench(
        "lost",
        &[
            "--server",
            &addr,
            "--requests",
            "20",
            "--connections",
            "2",
            "--ratio",
            "1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_eq!(j["ops"], 0);
    assert_eq!(j["errors"], 20, "{j}");
    assert!(
        j["errors_by_kind"]["connection_lost"].as_u64().unwrap() > 0,
        "{j}"
    );

    let (out, _) = bench(
        "lost-prefill",
        &[
            "--server",
            &addr,
            "--prefill",
            "--keys",
            "100",
            "--requests",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prefill SETs failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn unanswered_requests_time_out() {
    // Reads everything and never answers.
    let addr = fake_server(|mut s| {
        let mut buf = [0u8; 4096];
        while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
    })
    .to_string();
    let start = Instant::now();
    let (out, j) = bench(
        "timeout",
        &[
            "--server",
            &addr,
            "--requests",
            "4",
            "--connections",
            "2",
            "--timeout",
            "200ms",
            "--ratio",
            "1:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(10));
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_eq!(j["errors_by_kind"]["timeout"], 4, "{j}");
}
