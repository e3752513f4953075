//! `groupcached-bench --protocol memcache` and `memcache-text` against groupcached's
//! own memcached port (`--memcache-listen`, issue 12): the cell `bench/compare.sh`
//! measures, run small so that it only checks that every request is answered, every
//! prefilled key found and no error counted.
//!
//! The port is chosen by binding port 0 and passing the port it got (the harness reads
//! only the native port from the log); then the test polls until it accepts.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{memcache_run, poll_until, Proc};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn memcached_port_meta_and_text_protocols() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Proc::groupcached(&["--memcache-listen", &listen, "--cache-size", "64MiB"]);
    let mc: SocketAddr = listen.parse().unwrap();
    poll_until("the memcached port to accept connections", || {
        TcpStream::connect(mc).ok().map(|_| ())
    });
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
