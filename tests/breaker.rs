//! The circuit breaker on a hung member (SIGSTOPped, not dead): after
//! `--peer-suspect-after` timeouts in a row it is marked suspect, its keys load
//! locally without sending it anything, writes stop waiting for it, and after SIGCONT
//! it answers a probe and is used again. Asserted on counters, metrics and log lines,
//! never on a measured duration.

mod common;

use std::io::{Read, Write};

use common::cluster::TestCluster;
use common::{wait_until, TempDir, TestServer, DEADLINE};
use std::os::unix::fs::PermissionsExt;

fn key_owned_by(c: &TestCluster, owner: usize, tag: &str, n: usize) -> Vec<String> {
    (0..100_000)
        .map(|i| format!("{tag}-{i}"))
        .filter(|k| c.owner_of(k.as_bytes()) == owner)
        .take(n)
        .collect()
}

/// The value of the sample `name` (with its labels, as written) in a scrape.
fn scrape(node: &TestServer, name: &str) -> u64 {
    let line = node.wait_log("serving metrics on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .unwrap();
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

fn count_lines(node: &TestServer, needle: &str) -> usize {
    node.logs().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_hung_member_is_marked_suspect_skipped_probed_and_used_again() {
    hung_member(&[]);
}

/// The same with a cluster secret: the probe and the return work on connections
/// that must prove the secret (a reconnect runs the handshake again).
#[test]
fn the_breaker_works_on_authenticated_connections() {
    let dir = TempDir::new("breaker-secret");
    let path = dir.write("secret", b"breaker-test-secret-0123456789\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    hung_member(&["--cluster-secret-file", path.to_str().unwrap()]);
}

fn hung_member(extra: &[&str]) {
    let mut args = vec![
        "--threads",
        "2",
        "--origin",
        "synthetic:size=16",
        "--peer-timeout",
        "400ms",
        "--peer-suspect-after",
        "3",
        "--hot-promote-ratio",
        "0",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let c = TestCluster::start(3, &args);
    let (node, hung) = (c.node(0), c.node(2));
    let hung_name = c.addrs()[2].clone();
    let fetches = "groupcached_peer_fetch_seconds_count{group=\"default\"}";
    assert_eq!(scrape(node, "groupcached_peers_suspect"), 0);
    // Warm the connections: node 0 fetches from node 2 while it answers.
    let warm = key_owned_by(&c, 2, "warm", 4);
    node.client().get_many("default", &warm).unwrap();
    assert_eq!(node.stat("group.default.peer_loads"), 4);

    hung.signal("STOP");
    // A batch of cold GETs of its keys: every FETCH times out, and each is
    // answered by a local load (groupcache's fallback). That is more than
    // --peer-suspect-after timeouts in a row: the breaker opens.
    let cold = key_owned_by(&c, 2, "cold", 16);
    let got = node.client().get_many("default", &cold).unwrap();
    assert!(got.iter().all(Option::is_some), "fallback loads answer");
    node.wait_stat("peers_suspect", "== 1", |v| v == 1);
    assert_eq!(scrape(node, "groupcached_peers_suspect"), 1);
    node.wait_log(&format!("peer {hung_name} is suspect"));
    let errors = node.stat("group.default.peer_errors");
    assert!(
        errors >= 16,
        "every timed-out fetch is a peer error: {errors}"
    );

    // Now cold GETs of its keys do not go to it at all: no FETCH is sent (the FETCH
    // latency histogram, which records every sent FETCH once it is answered or
    // times out, does not move even though the GETs have all been answered), each is
    // a peer error answered by a local load.
    let sent_before = scrape(node, fetches);
    let loads_before = node.stat("group.default.local_loads");
    let fast = key_owned_by(&c, 2, "fast", 20);
    for k in &fast {
        assert!(node.client().get("default", k).unwrap().is_some());
    }
    assert_eq!(
        scrape(node, fetches),
        sent_before,
        "no FETCH went to the hung member"
    );
    assert_eq!(node.stat("group.default.local_loads"), loads_before + 20);
    assert_eq!(node.stat("group.default.peer_errors"), errors + 20);

    // Writes stop waiting for it too: node 0 owns the key, its INVALIDATE to the
    // hung member fails at once (counted), the write is acknowledged.
    let invalidate_errors = node.stat("invalidate_errors");
    let own = key_owned_by(&c, 0, "own", 1);
    node.client().set("default", &own[0], b"v", None).unwrap();
    assert_eq!(node.stat("invalidate_errors"), invalidate_errors + 1);
    assert_eq!(scrape(node, fetches), sent_before);

    // Logged once, however many requests skipped it.
    assert_eq!(count_lines(node, "is suspect"), 1, "{:#?}", node.logs());

    // SIGCONT: it answers a probe, the breaker closes, and its keys go to it again.
    hung.signal("CONT");
    node.wait_stat("peers_suspect", "== 0", |v| v == 0);
    node.wait_log(&format!("peer {hung_name} answers again"));
    assert_eq!(scrape(node, "groupcached_peers_suspect"), 0);
    let peer_loads = node.stat("group.default.peer_loads");
    let again = key_owned_by(&c, 2, "again", 3);
    let mut client = node.client();
    wait_until("node 0 fetches node 2's keys from it again", || {
        for k in &again {
            assert!(client.get("default", k).unwrap().is_some());
        }
        node.stat("group.default.peer_loads") > peer_loads
    });
    assert_eq!(count_lines(node, "is suspect"), 1);
    assert_eq!(count_lines(node, "answers again"), 1);
}

#[test]
fn the_breaker_can_be_turned_off() {
    let c = TestCluster::start(
        2,
        &[
            "--threads",
            "1",
            "--origin",
            "synthetic:size=16",
            "--peer-timeout",
            "200ms",
            "--peer-suspect-after",
            "0",
        ],
    );
    c.node(1).signal("STOP");
    let cold = key_owned_by(&c, 1, "cold", 8);
    let got = c.node(0).client().get_many("default", &cold).unwrap();
    assert!(got.iter().all(Option::is_some));
    // Every one of them waited for its FETCH to time out; none opened a breaker.
    assert_eq!(c.node(0).stat("group.default.peer_errors"), 8);
    assert_eq!(c.node(0).stat("peers_suspect"), 0);
    assert_eq!(count_lines(c.node(0), "is suspect"), 0);
    c.node(1).signal("CONT");
}
