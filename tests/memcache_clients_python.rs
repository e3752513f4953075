//! Python's `pymemcache` (a real third-party client, run as `python3 -c SCRIPT PORT`)
//! against the real binary's `--memcache-listen` port: its serializers (which tag each
//! value's type in the item's flags), its default `noreply` stores, `gets`/`cas`,
//! counters, multi-key gets, expiry and a read-through from a `dir:` origin.
//!
//! Without a python3 that can import pymemcache the tests print `SKIPPED` and pass,
//! unless `GROUPCACHED_REQUIRE_MEMCACHED=1` or `CI` is set (.ci/run installs
//! python3-pymemcache): then they fail.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::memcache::{pymemcache, run, start, success, Text};
use common::TempDir;

/// Runs `script` with `sys.argv[1]` = the memcached port; returns its stdout.
fn python(py: &Path, what: &str, script: &str, mc: SocketAddr) -> String {
    let out = run(py, &["-c", script, &mc.port().to_string()]);
    success(what, &out)
}

/// Shared preamble: a client with pickle serialization and a deadline helper.
const PRELUDE: &str = r#"
import sys, time
from pymemcache.client.base import Client
from pymemcache import serde
PORT = int(sys.argv[1])
def client(**kw):
    return Client(("127.0.0.1", PORT), connect_timeout=10, timeout=10, **kw)
def until(what, cond, deadline=10.0):
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < deadline, "timed out waiting for " + what
        time.sleep(0.01)
"#;

#[test]
fn pymemcache_serializers_cas_counters_and_noreply() {
    let Some(py) = pymemcache("pymemcache_serializers_cas_counters_and_noreply") else {
        return;
    };
    let (_s, mc) = start(&[]);
    let script = format!(
        "{PRELUDE}{}",
        r#"
c = client(serde=serde.pickle_serde)
# Stores are noreply by default in pymemcache: the next answer on the connection
# must still be the get's.
c.set("dict", {"a": [1, 2]})
c.set("int", 41)
c.set("text", "héllo")
c.set("bytes", b"\x00\x01raw")
assert c.get("dict") == {"a": [1, 2]}, c.get("dict")
assert c.get("int") == 41
assert c.get("text") == "héllo"
assert c.get("bytes") == b"\x00\x01raw"
assert c.get("missing") is None
many = c.get_many(["dict", "int", "missing", "text"])
assert sorted(many) == ["dict", "int", "text"], many
# Counters on a serialized int (stored as decimal text).
assert c.incr("int", 1, noreply=False) == 42
assert c.decr("int", 50, noreply=False) == 0
assert c.incr("missing", 1, noreply=False) is None
# gets/cas: a stale token is refused (False = EXISTS), a missing item is None.
value, token = c.gets("text")
assert value == "héllo"
c.set("text", "changed")
assert c.cas("text", "mine", token, noreply=False) is False
assert c.cas("nobody", "x", b"1", noreply=False) is None
value, token = c.gets("text")
assert c.cas("text", "mine", token, noreply=False) is True
assert c.get("text") == "mine"
# add/replace/append/prepend/touch/delete with answers.
assert c.add("text", "x", noreply=False) is False
assert c.add("new", "x", noreply=False) is True
assert c.replace("absent", "x", noreply=False) is False
raw = client()
raw.set("log", b"b")
assert raw.append("log", b"c", noreply=False) is True
assert raw.prepend("log", b"a", noreply=False) is True
assert raw.get("log") == b"abc"
assert c.touch("new", 100, noreply=False) is True
assert c.touch("absent", 100, noreply=False) is False
assert c.delete("new", noreply=False) is True
assert c.delete("new", noreply=False) is False
# noreply deletes and counters, then a get proves they ran, in order.
raw.set("n", b"10")
raw.incr("n", 5)
raw.delete("log")
assert raw.get("n") == b"15"
assert raw.get("log") is None
assert raw.version()
stats = raw.stats()
for name in (b"curr_items", b"get_hits", b"get_misses", b"cmd_get", b"cmd_set"):
    assert name in stats, (name, stats)
print("ok")
"#
    );
    let out = python(&py, "the pymemcache script", &script, mc);
    assert_eq!(out.trim(), "ok");
    // The serializers' type tags are the items' flags, seen by another client:
    // pickle 1, int 2, text 16 (pymemcache's FLAG_* values), raw bytes 0.
    let mut t = Text::connect(mc);
    let items = t.get("get dict int text bytes\r\n");
    let flags: Vec<(String, u32)> = items.into_iter().map(|i| (i.key, i.flags)).collect();
    assert_eq!(
        flags,
        [
            ("dict".to_string(), 1),
            ("int".to_string(), 2),
            ("text".to_string(), 16),
            ("bytes".to_string(), 0)
        ]
    );
}

#[test]
fn pymemcache_reads_through_a_dir_origin_once() {
    let Some(py) = pymemcache("pymemcache_reads_through_a_dir_origin_once") else {
        return;
    };
    let dir = TempDir::new("mc-py-origin");
    dir.write("greeting.txt", b"hello from the origin\n");
    let spec = format!("dir:{}", dir.path().display());
    let (s, mc) = start(&["--origin", &spec, "--threads", "2"]);
    let script = format!(
        "{PRELUDE}{}",
        r#"
import threading
results = []
def reader():
    c = client()
    results.append(c.get("greeting.txt"))
threads = [threading.Thread(target=reader) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [b"hello from the origin\n"] * 8, results
# A key the origin does not have: a miss, not an error.
assert client().get("nowhere.txt") is None
print("ok")
"#
    );
    assert_eq!(
        python(&py, "the read-through script", &script, mc).trim(),
        "ok"
    );
    // However the 8 gets interleaved, the origin was read once for the file
    // (and once for the missing one: a NOT_FOUND load counts).
    assert_eq!(s.stat("group.default.local_loads"), 2);
    assert_eq!(s.stat("group.default.local_load_errs"), 0);
    assert!(s.stat("group.default.gets") >= 9);
}

#[test]
fn pymemcache_sees_items_expire() {
    let Some(py) = pymemcache("pymemcache_sees_items_expire") else {
        return;
    };
    let (_s, mc) = start(&[]);
    let script = format!(
        "{PRELUDE}{}",
        r#"
c = client()
c.set("forever", b"stays", expire=0, noreply=False)
c.set("brief", b"goes", expire=1, noreply=False)
until("the 1 s item to expire", lambda: c.get("brief") is None)
assert c.get("forever") == b"stays"
print("ok")
"#
    );
    assert_eq!(python(&py, "the expiry script", &script, mc).trim(), "ok");
}

#[test]
fn pymemcache_on_a_cluster_any_node_answers_any_key() {
    let Some(py) = pymemcache("pymemcache_on_a_cluster_any_node_answers_any_key") else {
        return;
    };
    let c = common::cluster::TestCluster::start(
        3,
        &["--memcache-listen", "127.0.0.1:0", "--threads", "1"],
    );
    let ports: Vec<String> = (0..3)
        .map(|i| common::memcache::mc_addr(c.node(i)).port().to_string())
        .collect();
    // A HashClient spreads keys over the three nodes by its own hashing (not the
    // cluster's ring, so most writes go through a node that does not own the key);
    // then every node, asked alone, must answer every key with the same value.
    let script = r#"
import sys
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache import serde
ports = [int(p) for p in sys.argv[1:]]
servers = [("127.0.0.1", p) for p in ports]
hashed = HashClient(servers, serde=serde.pickle_serde, connect_timeout=10, timeout=10)
keys = ["user:%d" % i for i in range(30)]
for i, k in enumerate(keys):
    assert hashed.set(k, {"id": i}, noreply=False), k
for p in ports:
    one = Client(("127.0.0.1", p), serde=serde.pickle_serde, connect_timeout=10, timeout=10)
    got = one.get_many(keys)
    assert sorted(got) == sorted(keys), (p, got)
    # user:0 is rewritten by the cas below, once per node.
    assert all(got[k] == {"id": i} for i, k in enumerate(keys) if i > 0), (p, got)
    # gets/cas through this node: the unique is the owner's, checked there.
    value, token = one.gets("user:0")
    assert one.cas("user:0", {"id": "x%d" % p}, token, noreply=False) is True
    assert one.cas("user:0", {"id": "stale"}, token, noreply=False) is False
first = Client(("127.0.0.1", ports[0]), connect_timeout=10, timeout=10)
first.flush_all(noreply=False)
for p in ports:
    one = Client(("127.0.0.1", p), connect_timeout=10, timeout=10)
    assert one.get_many(keys) == {}, ("flush_all reached every member", p)
print("ok")
"#;
    let mut args = vec!["-c", script];
    args.extend(ports.iter().map(String::as_str));
    let out = run(&py, &args);
    assert_eq!(success("the cluster script", &out).trim(), "ok");
}
