//! `groupcached-bench --protocol memcache` and `memcache-text` against groupcached's
//! own memcached port (`--memcache-listen`, issue 12): the cell `bench/compare.sh`
//! measures, run small so that it only checks that every request is answered, every
//! prefilled key found and no error counted.
//!
//! The server binds the memcached port itself (`--memcache-listen 127.0.0.1:0`) and
//! the test reads the port from its log, as it does the native port: no port is
//! picked beforehand for another process to take in between.

mod common;

use common::{memcache_run, Proc};

#[test]
fn memcached_port_meta_and_text_protocols() {
    let mut server =
        Proc::groupcached(&["--memcache-listen", "127.0.0.1:0", "--cache-size", "64MiB"]);
    // Bound (and listening) before it is logged: connections to it queue until served.
    let listen = server.memcache_addr().to_string();
    for protocol in ["memcache", "memcache-text"] {
        let j = memcache_run(&format!("gc-{protocol}"), &listen, protocol);
        assert_eq!(j["ops"], 10000, "{protocol}");
        assert_eq!(
            j["found_ratio"], 1.0,
            "{protocol}: every prefilled key found"
        );
        assert!(j["per_op"]["set"]["ops"].as_u64().unwrap() > 0);
    }
    // The same items, in the default group, seen through the native port.
    assert!(server.stat("group.default.main.items") >= 4000);
}
