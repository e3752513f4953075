//! Graceful shutdown on a signal: stop accepting, finish what was already asked,
//! close, exit 0.

mod common;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

use common::{wait_until, Gate, HttpOrigin, TestServer, DEADLINE};

const G: &str = "default";

/// Polls until connecting to `s` is refused.
fn wait_refused(s: &TestServer) {
    wait_until(
        "new connections to be refused",
        || match TcpStream::connect_timeout(&s.addr(), Duration::from_secs(2)) {
            Ok(_) => false,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                true
            }
        },
    );
}

#[test]
fn sigterm_finishes_an_in_flight_load_refuses_new_connections_and_exits_zero() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"finished during shutdown".to_vec())
    });
    let spec = origin.spec("/{key}");
    let mut s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "30s"]);
    let mut c = s.client();
    let in_flight = std::thread::spawn(move || c.get(G, "slow"));
    s.wait_stat("group.default.gets", "== 1", |n| n == 1);
    wait_until("the load to reach the origin", || origin.requests() == 1);

    s.signal("TERM");
    s.wait_log("signal");
    // The load is still held at the origin, yet the listener is already closed.
    wait_refused(&s);
    assert!(
        s.wait_exit(Duration::ZERO).is_none(),
        "exited with a request unanswered"
    );

    gate.open();
    let v = in_flight
        .join()
        .unwrap()
        .expect("the in-flight GET is answered");
    assert_eq!(v.unwrap().as_bytes(), b"finished during shutdown");
    let status = s.wait_exit(DEADLINE).expect("exits after draining");
    assert!(status.success(), "exit status {status}");
    s.wait_log("stopped");
}

#[test]
fn sigterm_during_a_slow_synthetic_load_still_answers_it() {
    let mut s = TestServer::start(&["--origin", "synthetic:size=40,delay_ms=1000"]);
    let mut c = s.client();
    let in_flight = std::thread::spawn(move || c.get(G, "slow"));
    s.wait_stat("group.default.gets", "== 1", |n| n == 1);
    s.signal("TERM");
    let v = in_flight
        .join()
        .unwrap()
        .expect("the in-flight GET is answered");
    assert_eq!(v.unwrap().len(), 40);
    let status = s.wait_exit(DEADLINE).expect("exits after draining");
    assert!(status.success(), "exit status {status}");
    assert!(TcpStream::connect_timeout(&s.addr(), Duration::from_secs(2)).is_err());
}

#[test]
fn sigint_with_idle_connections_exits_promptly() {
    let mut s = TestServer::start(&["--threads", "2"]);
    let mut idle = s.client();
    idle.ping().unwrap();
    let mut raw = s.raw();
    s.stat("curr_connections");
    s.signal("INT");
    // Idle connections are closed rather than waited for.
    raw.expect_closed();
    let status = s.wait_exit(DEADLINE).expect("exits");
    assert!(status.success(), "exit status {status}");
    assert!(idle.ping().is_err(), "the server is gone");
}

#[test]
fn a_client_that_never_reads_cannot_hold_up_shutdown_forever() {
    // Drain time is bounded by the load timeout (plus a little).
    let mut s = TestServer::start(&["--origin", "none", "--load-timeout", "1s"]);
    let mut c = s.client();
    c.set(G, "big", &vec![7u8; 1 << 20], None).unwrap();
    let mut hog = s.raw();
    let get = common::encode(&groupcached_client::protocol::Request {
        id: 1,
        kind: groupcached_client::protocol::RequestKind::Get(
            groupcached_client::protocol::KeyRef::new(G.as_bytes(), b"big"),
        ),
    });
    for _ in 0..20 {
        hog.send_bytes(&get);
    }
    // Decoding stops past 4 MiB of unsent answers: at least four are queued.
    s.wait_stat("group.default.gets", ">= 4", |n| n >= 4);
    s.signal("TERM");
    let status = s
        .wait_exit(DEADLINE)
        .expect("exits despite the stuck client");
    assert!(status.success(), "exit status {status}");
    drop(hog);
}
