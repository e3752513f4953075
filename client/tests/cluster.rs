//! ClusterClient and `groupcached-cli --peers` / `owner` against several fake members
//! on 127.0.0.1: routing to the ring owner, failover, discovery and refresh.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::FakeNode;
use groupcached_client::protocol::{Opcode, Ring, Status};
use groupcached_client::{ClusterClient, ConnectOptions, Error};

const CLI: &str = env!("CARGO_BIN_EXE_groupcached-cli");
const VNODES: u32 = 64;

fn opts(timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Some(timeout),
        timeout: Some(timeout),
        ..ConnectOptions::default()
    }
}

fn nodes(n: usize) -> (Vec<FakeNode>, Vec<String>) {
    let nodes: Vec<FakeNode> = (0..n).map(|_| FakeNode::start()).collect();
    let names = nodes.iter().map(|n| n.name.clone()).collect();
    (nodes, names)
}

fn cluster(names: &[String]) -> ClusterClient {
    ClusterClient::builder()
        .vnodes(VNODES)
        .options(opts(Duration::from_secs(5)))
        .with_members(names)
        .expect("cluster client")
}

/// `gen:` keys are answered by every fake member with `value-of-REST`.
fn gen_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("gen:k{i}")).collect()
}

/// The keys each member should see: those the ring gives it, in request order.
fn by_owner(ring: &Ring, keys: &[String]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut want: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for m in ring.members() {
        want.insert(m.clone(), Vec::new());
    }
    for k in keys {
        let owner = ring.owner(k.as_bytes()).expect("owner");
        want.get_mut(owner)
            .expect("member")
            .push(k.clone().into_bytes());
    }
    want
}

fn node<'a>(nodes: &'a [FakeNode], name: &str) -> &'a FakeNode {
    nodes.iter().find(|n| n.name == name).expect("a node")
}

/// The member after `name` in sorted order, wrapping: where its keys fall back to.
fn next_member(ring: &Ring, name: &str) -> String {
    let m = ring.members();
    let i = m.iter().position(|x| x == name).expect("member");
    m[(i + 1) % m.len()].clone()
}

#[test]
fn every_request_reaches_exactly_the_rings_owner_over_one_connection_each() {
    let (nodes, names) = nodes(3);
    let ring = Ring::new(&names, VNODES);
    let mut c = cluster(&names);
    assert_eq!(c.ring().fingerprint(), ring.fingerprint());

    let keys: Vec<String> = (0..300).map(|i| format!("key {i}/+%")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.owner(k), ring.owner(k.as_bytes()).expect("owner"));
        c.set("g", k, format!("v{i}").as_bytes(), None)
            .expect("set");
    }
    for (i, k) in keys.iter().enumerate() {
        let v = c.get("g", k).expect("get").expect("a value");
        assert_eq!(&v[..], format!("v{i}").as_bytes());
    }
    // Each member saw each of its keys twice (SET then GET), and nobody else's.
    let want = by_owner(&ring, &keys);
    for n in &nodes {
        let mine = &want[&n.name];
        assert!(!mine.is_empty(), "{} owns no key", n.name);
        let twice: Vec<Vec<u8>> = mine.iter().chain(mine.iter()).cloned().collect();
        assert_eq!(n.keys(), twice, "keys seen by {}", n.name);
        assert_eq!(n.connections(), 1, "one pooled connection to {}", n.name);
    }

    // get_many: one batch per owner, values back in the caller's order.
    let before: Vec<usize> = nodes.iter().map(|n| n.keys().len()).collect();
    let mut batch: Vec<String> = keys.iter().rev().cloned().collect();
    batch.push("missing".into());
    let values = c.get_many("g", &batch).expect("get_many");
    assert_eq!(values.len(), batch.len());
    for (k, v) in batch.iter().zip(&values) {
        match keys.iter().position(|x| x == k) {
            Some(i) => assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()), "{k}"),
            None => assert_eq!(v, &None),
        }
    }
    let want = by_owner(&ring, &batch);
    for (n, before) in nodes.iter().zip(before) {
        assert_eq!(n.keys()[before..], want[&n.name][..], "batch at {}", n.name);
        assert_eq!(n.connections(), 1);
    }

    // DELETE goes to the owner too.
    assert!(c.delete("g", &keys[0]).expect("delete"));
    let owner = ring.owner(keys[0].as_bytes()).expect("owner");
    let last = node(&nodes, owner).seen().pop().expect("a request");
    assert_eq!(
        (last.op, last.key),
        (Opcode::Delete, keys[0].clone().into_bytes())
    );
}

#[test]
fn error_statuses_are_answers_not_outages() {
    let (nodes, names) = nodes(3);
    let ring = Ring::new(&names, VNODES);
    let mut c = cluster(&names);
    let key = "status:ORIGIN_ERROR";
    match c.get("g", key) {
        Err(e) => assert_eq!(e.status(), Some(Status::OriginError), "{e}"),
        Ok(v) => panic!("{v:?}"),
    }
    assert_eq!(c.get("g", "absent").expect("get"), None);
    assert!(matches!(c.get("g", ""), Err(Error::InvalidArgument(_))));
    for n in &nodes {
        let saw = n.keys().contains(&key.as_bytes().to_vec());
        assert_eq!(
            saw,
            ring.owner(key.as_bytes()) == Some(&n.name),
            "{}",
            n.name
        );
        assert!(!c.is_down(&n.name));
    }
    // An error in a batch: the whole batch is read, the first failing key's error wins.
    let err = c
        .get_many("g", &["gen:a", "status:UNKNOWN_GROUP", "gen:b", key])
        .expect_err("an error status");
    assert_eq!(err.status(), Some(Status::UnknownGroup));
}

#[test]
fn keys_of_a_dead_member_are_served_by_the_next_member_without_errors() {
    let (mut nodes, names) = nodes(3);
    let ring = Ring::new(&names, VNODES);
    let mut c = cluster(&names);
    let keys = gen_keys(200);
    // Warm every pooled connection.
    for k in &keys {
        c.get("g", k).expect("get").expect("value");
    }
    assert!(nodes.iter().all(|n| n.connections() == 1));

    let dead = nodes.remove(1);
    let dead_name = dead.name.clone();
    dead.shutdown();
    let fallback = next_member(&ring, &dead_name);
    let before: BTreeMap<String, usize> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.keys().len()))
        .collect();

    for k in &keys {
        let v = c
            .get("g", k)
            .expect("no client-visible error")
            .expect("value");
        assert_eq!(&v[..], format!("value-of-{}", &k[4..]).as_bytes());
    }
    assert!(c.is_down(&dead_name));
    let want = by_owner(&ring, &keys);
    for n in &nodes {
        let mut expect: Vec<Vec<u8>> = Vec::new();
        // In key order: its own keys, plus the dead member's if it is the fallback.
        for k in &keys {
            let owner = ring.owner(k.as_bytes()).expect("owner");
            if owner == n.name || (owner == dead_name && n.name == fallback) {
                expect.push(k.clone().into_bytes());
            }
        }
        assert_eq!(n.keys()[before[&n.name]..], expect[..], "at {}", n.name);
    }
    assert!(!want[&dead_name].is_empty());

    // Writes and batches fail over the same way.
    let dead_key = want[&dead_name][0].clone();
    c.set("g", &dead_key, b"x", None).expect("set");
    c.delete("g", &dead_key).expect("delete");
    let values = c.get_many("g", &keys).expect("get_many");
    assert!(values.iter().all(Option::is_some));
    let stats = c.stats_all();
    assert_eq!(stats.len(), 3);
    for (name, result) in &stats {
        assert_eq!(result.is_ok(), *name != dead_name, "{name}: {result:?}");
    }

    // With every member gone, the error is the caller's.
    for n in nodes.drain(..) {
        n.shutdown();
    }
    let err = c.get("g", "gen:x").expect_err("nobody is up");
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

#[test]
fn a_hung_member_is_skipped_while_marked_down() {
    let stalled = FakeNode::stalled();
    let (others, mut names) = nodes(2);
    names.push(stalled.name.clone());
    let ring = Ring::new(&names, VNODES);
    let mut c = ClusterClient::builder()
        .vnodes(VNODES)
        .options(opts(Duration::from_millis(300)))
        .with_members(&names)
        .expect("cluster");
    let hung_keys: Vec<String> = gen_keys(400)
        .into_iter()
        .filter(|k| ring.owner(k.as_bytes()) == Some(&stalled.name))
        .take(20)
        .collect();
    assert_eq!(hung_keys.len(), 20);
    for k in &hung_keys {
        assert!(c.get("g", k).expect("no error").is_some());
    }
    // Only the first request waited for the hung member; the rest skipped it.
    assert_eq!(stalled.seen().len(), 1);
    assert_eq!(stalled.connections(), 1);
    assert!(c.is_down(&stalled.name));
    let fallback = next_member(&ring, &stalled.name);
    assert_eq!(node(&others, &fallback).keys().len(), 20);
}

#[test]
fn a_restarted_member_gets_its_keys_back() {
    let (nodes, names) = nodes(3);
    let ring = Ring::new(&names, VNODES);
    let owner = &nodes[0];
    let mine: Vec<String> = gen_keys(300)
        .into_iter()
        .filter(|k| ring.owner(k.as_bytes()) == Some(&owner.name))
        .take(3)
        .collect();
    let mut c = cluster(&names);
    c.get("g", &mine[0]).expect("get");
    assert_eq!(owner.keys().len(), 1);

    // Restarted between two requests: the pooled connection is stale, a fresh one
    // reaches the new process, and the member is not marked down.
    owner.crash();
    owner.recover();
    c.get("g", &mine[1]).expect("get");
    assert_eq!(owner.keys()[1..], [mine[1].clone().into_bytes()]);
    assert_eq!(owner.connections(), 2);
    assert!(!c.is_down(&owner.name));

    // Down, then up again: with no backoff each request tries the owner first.
    let mut c = ClusterClient::builder()
        .vnodes(VNODES)
        .backoff(Duration::ZERO, Duration::ZERO)
        .with_members(&names)
        .expect("cluster");
    owner.crash();
    c.get("g", &mine[2]).expect("served by the fallback");
    let fallback = next_member(&ring, &owner.name);
    assert_eq!(
        node(&nodes, &fallback).keys(),
        vec![mine[2].clone().into_bytes()]
    );
    owner.recover();
    c.get("g", &mine[2]).expect("get");
    assert_eq!(owner.keys()[2..], [mine[2].clone().into_bytes()]);
}

#[test]
fn discover_builds_the_seeds_ring_from_hello() {
    let (nodes, names) = nodes(3);
    for n in &nodes {
        n.set_members(&names, VNODES);
    }
    // A seed that refuses connections comes first.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let seeds = [dead_addr, nodes[1].name.clone()];
    let mut c = ClusterClient::discover(&seeds, opts(Duration::from_secs(5))).expect("discover");
    let ring = Ring::new(&names, VNODES);
    assert_eq!(c.ring().fingerprint(), ring.fingerprint());
    assert_eq!(c.ring().vnodes(), VNODES);
    let seen: Vec<Opcode> = nodes[1].seen().iter().map(|r| r.op).collect();
    assert_eq!(seen, vec![Opcode::Hello]);

    let keys = gen_keys(100);
    for k in &keys {
        c.get("g", k).expect("get");
    }
    let want = by_owner(&ring, &keys);
    for n in &nodes {
        assert_eq!(n.keys(), want[&n.name], "{}", n.name);
        // The seed's HELLO connection is reused for its own keys.
        assert_eq!(n.connections(), 1, "{}", n.name);
    }

    let nobody = ["127.0.0.1:1"];
    assert!(ClusterClient::discover(&nobody, opts(Duration::from_secs(5))).is_err());
}

#[test]
fn refresh_picks_up_a_changed_member_list() {
    let (nodes, names) = nodes(4);
    let three = names[..3].to_vec();
    for n in &nodes {
        n.set_members(&three, VNODES);
    }
    let mut c = cluster(&three);
    assert!(!c.refresh().expect("refresh"), "same members: no change");

    // A fourth member joins.
    for n in &nodes {
        n.set_members(&names, VNODES);
    }
    assert!(c.refresh().expect("refresh"));
    let four = Ring::new(&names, VNODES);
    assert_eq!(c.ring().fingerprint(), four.fingerprint());
    let keys = gen_keys(200);
    let before: Vec<usize> = nodes.iter().map(|n| n.keys().len()).collect();
    for k in &keys {
        c.get("g", k).expect("get");
    }
    let want = by_owner(&four, &keys);
    for (n, before) in nodes.iter().zip(&before) {
        assert_eq!(n.keys()[*before..], want[&n.name][..], "{}", n.name);
    }
    assert!(!want[&names[3]].is_empty());

    // The first member leaves; it gets nothing more.
    let rest = names[1..].to_vec();
    for n in &nodes {
        n.set_members(&rest, VNODES);
    }
    assert!(c.refresh().expect("refresh"));
    assert_eq!(c.members().len(), 3);
    let first_before = nodes[0].keys().len();
    for k in &keys {
        c.get("g", k).expect("get");
    }
    assert_eq!(nodes[0].keys().len(), first_before);
    // Connections of members that stayed were kept.
    for n in &nodes[1..] {
        assert_eq!(n.connections(), 1, "{}", n.name);
    }
}

/// The `key` lines of every `ring-vectors` block of docs/protocol.md, with the
/// block's members and vnodes: (members, vnodes, key bytes, owner).
fn ring_vectors() -> Vec<(Vec<String>, u32, Vec<u8>, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("read docs/protocol.md");
    let mut out = Vec::new();
    let mut in_block = false;
    let (mut members, mut vnodes) = (Vec::new(), 0u32);
    let mut keys: Vec<(Vec<u8>, String)> = Vec::new();
    for line in doc.lines() {
        if line.trim() == "```ring-vectors" {
            in_block = true;
            members.clear();
            keys.clear();
            continue;
        }
        if !in_block {
            continue;
        }
        if line.trim() == "```" {
            in_block = false;
            for (k, o) in keys.drain(..) {
                out.push((members.clone(), vnodes, k, o));
            }
            continue;
        }
        let line = line.split(" #").next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("vnodes") => vnodes = fields.next().expect("n").parse().expect("vnodes"),
            Some("member") => members.push(fields.next().expect("member").to_owned()),
            Some("key") => {
                let (mut hex, mut owner) = (None, None);
                for f in fields {
                    if let Some(h) = f.strip_prefix("hex=") {
                        hex = Some(h);
                    } else if let Some(o) = f.strip_prefix("owner=") {
                        owner = Some(o.to_owned());
                    }
                }
                let hex = hex.expect("hex=");
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                keys.push((bytes, owner.expect("owner=")));
            }
            _ => {}
        }
    }
    out
}

#[cfg(unix)]
#[test]
fn cli_owner_matches_the_ring_vectors() {
    use std::os::unix::ffi::OsStrExt;
    let vectors = ring_vectors();
    assert!(vectors.len() >= 20, "{} vectors", vectors.len());
    assert!(vectors
        .iter()
        .any(|(m, _, _, _)| m.contains(&"10.0.0.1:7000".to_owned())));
    for (members, vnodes, key, owner) in vectors {
        let ring = Ring::new(&members, vnodes);
        assert_eq!(ring.owner(&key), Some(owner.as_str()));
        if key.contains(&0) {
            continue; // an argument cannot carry a NUL byte
        }
        let o = Command::new(CLI)
            .args(["owner", "thumbs"])
            .arg(std::ffi::OsStr::from_bytes(&key))
            .args([
                "--peers",
                &members.join(","),
                "--vnodes",
                &vnodes.to_string(),
            ])
            .output()
            .expect("run groupcached-cli");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{owner}\n"),
            "{key:?}"
        );
    }
    // Default vnodes are the servers' default; the group does not matter.
    let o = Command::new(CLI)
        .args(["--peers", "10.0.0.3:7000,10.0.0.1:7000,10.0.0.2:7000"])
        .args(["owner", "other-group", "thumbs/cat.jpg"])
        .output()
        .expect("run groupcached-cli");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "10.0.0.3:7000\n");
}

#[test]
fn cli_with_peers_sends_keys_to_their_owner() {
    let (nodes, names) = nodes(3);
    let ring = Ring::new(&names, VNODES);
    let peers = names.join(",");
    let cli = |args: &[&str]| {
        Command::new(CLI)
            .args(["--peers", &peers, "--vnodes", "64", "--timeout", "5s"])
            .args(args)
            .output()
            .expect("run groupcached-cli")
    };
    for k in ["a", "b", "c", "d", "e"] {
        let o = cli(&["set", "g", k, "value"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let owner = ring.owner(k.as_bytes()).expect("owner");
        assert_eq!(
            node(&nodes, owner).keys().last(),
            Some(&k.as_bytes().to_vec())
        );
    }
    let o = cli(&["get", "g", "gen:zz"]);
    assert_eq!(o.stdout, b"value-of-zz");
    let owner = ring.owner(b"gen:zz").expect("owner");
    assert_eq!(node(&nodes, owner).keys().last(), Some(&b"gen:zz".to_vec()));
    let o = cli(&["delete", "g", "a"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "deleted\n");
}
