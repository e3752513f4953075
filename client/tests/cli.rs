//! The groupcached-cli binary against a fake server.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use common::{FakeServer, Req};

const CLI: &str = env!("CARGO_BIN_EXE_groupcached-cli");

/// Runs the CLI against `server` with `args`, feeding `stdin`.
fn cli(server: &FakeServer, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(CLI)
        .arg("--server")
        .arg(server.addr.to_string())
        .args(["--timeout", "5s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run groupcached-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for groupcached-cli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn set_then_get_prints_the_raw_bytes() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(4, Some(tx));
    let raw = b"line one\n\x00\xff\xfe binary\n";
    let o = cli(&server, &["set", "g", "k", "-", "--ttl", "30s"], raw);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let o = cli(&server, &["get", "g", "k"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, raw, "value written to stdout byte for byte");

    let o = cli(&server, &["set", "g", "k2", "plain value"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&server, &["get", "g", "k2"], b"");
    assert_eq!(o.stdout, b"plain value");

    server.join();
    let seen: Vec<Req> = rx.iter().collect();
    assert_eq!(seen[0].ttl_ms, 30_000);
    assert_eq!(seen[0].value, raw);
    assert_eq!(seen[2].ttl_ms, 0, "no --ttl: the group's default");
}

#[test]
fn get_of_a_missing_key_exits_1() {
    let server = FakeServer::store(1, None);
    let o = cli(&server, &["get", "g", "missing"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    server.join();
}

#[test]
fn server_errors_exit_4_with_the_message() {
    let server = FakeServer::store(1, None);
    let o = cli(&server, &["get", "nogroup", "k"], b"");
    assert_eq!(o.status.code(), Some(4));
    let err = stderr(&o);
    assert!(
        err.contains("UNKNOWN_GROUP") && err.contains("nogroup"),
        "{err}"
    );
    server.join();
}

#[test]
fn delete_prints_what_happened() {
    let server = FakeServer::store(3, None);
    assert!(cli(&server, &["set", "g", "k", "v"], b"").status.success());
    let o = cli(&server, &["delete", "g", "k"], b"");
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "deleted\n".into()));
    let o = cli(&server, &["delete", "g", "k"], b"");
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(0), "not found\n".into())
    );
    server.join();
}

#[test]
fn stats_plain_and_json() {
    let server = FakeServer::store(2, None);
    let o = cli(&server, &["stats"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    let want: Vec<String> = common::STATS
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    assert_eq!(lines, want);

    let o = cli(&server, &["stats", "--json"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let json = json::parse(text.trim_end()).expect("valid JSON");
    assert_eq!(json.at(&["server_requests"]), Some(42));
    assert_eq!(json.at(&["connections"]), Some(1));
    assert_eq!(json.at(&["groups", "default", "gets"]), Some(7));
    assert_eq!(json.at(&["groups", "default", "main", "bytes"]), Some(1234));
    assert_eq!(json.at(&["groups", "default", "main", "items"]), Some(3));
    assert_eq!(json.at(&["groups", "thumbs", "gets"]), Some(2));
    server.join();
}

#[test]
fn ping_and_hello() {
    let server = FakeServer::store(2, None);
    let o = cli(&server, &["ping"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("pong in "), "{}", stdout(&o));
    let o = cli(&server, &["hello"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("node_id {}\n", common::NODE_ID)),
        "{out}"
    );
    assert!(
        out.contains(&format!("vnodes {}\n", common::VNODES)),
        "{out}"
    );
    for m in common::MEMBERS {
        assert!(out.contains(&format!("member {m}\n")), "{out}");
    }
    server.join();
}

/// A usage error is exit 2 with one usage line and a `--help` hint, not the help.
#[test]
fn usage_errors_exit_2_with_a_short_usage_line() {
    for args in [
        &["get", "only-group"][..],
        &["frobnicate"],
        &["--timeout", "5", "ping"],
        &["set", "g", "k", "v", "--ttl", "0"],
        &["set", "g", "k", "v", "--ttl", "1y"],
        &[],
    ] {
        let o = Command::new(CLI).args(args).output().expect("run");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("groupcached-cli: "), "{args:?}: {err}");
        assert!(
            err.contains("Usage: groupcached-cli ") && err.contains("--help"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("Commands:") && err.lines().count() <= 4,
            "{args:?}: the whole help was printed: {err}"
        );
        assert!(o.stdout.is_empty());
    }

    let o = Command::new(CLI).arg("--help").output().expect("run");
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("Usage: groupcached-cli"));
    for line in [
        "0  ok",
        "1  not found",
        "2  usage error",
        "3  cannot connect",
        "4  the server answered an error",
    ] {
        assert!(help.contains(line), "--help lacks `{line}`:\n{help}");
    }
}

/// A closed port: the address it names, for a connection that is refused.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[test]
fn connection_failures_exit_3_naming_the_address_and_how_to_start_a_server() {
    let addr = closed_port();
    for cmd in [&["ping"][..], &["get", "g", "k"], &["stats"]] {
        let o = Command::new(CLI)
            .args(["--server", &addr])
            .args(cmd)
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(3), "{cmd:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
        assert!(
            err.contains(&format!("groupcached --listen {addr}")),
            "no hint on how to start a server there: {err}"
        );
        assert!(!err.contains("Usage:"), "{err}");
    }

    // The default address is the one named when --server is not given.
    let o = Command::new(CLI)
        .args(["--timeout", "2s", "ping"])
        .output()
        .expect("run");
    if o.status.code() == Some(3) {
        assert!(stderr(&o).contains("127.0.0.1:7000"), "{}", stderr(&o));
    }

    // Ring-aware: every member down.
    let (a, b) = (closed_port(), closed_port());
    let peers = format!("{a},{b}");
    let o = Command::new(CLI)
        .args(["--peers", &peers, "get", "g", "k"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&peers) && err.contains("groupcached --listen"),
        "{err}"
    );
}

#[test]
fn a_lost_connection_or_a_silent_server_exits_3() {
    // Reads the request, then hangs up without an answer.
    let server = FakeServer::start(|l| {
        let mut peer = common::Peer::accept(&l);
        assert!(peer.read_request().is_some());
    });
    let o = cli(&server, &["get", "g", "k"], b"");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("lost the connection to {}", server.addr)),
        "{}",
        stderr(&o)
    );
    server.join();

    // Reads the request and never answers.
    let server = FakeServer::start(|l| {
        let mut peer = common::Peer::accept(&l);
        assert!(peer.read_request().is_some());
        assert!(peer.try_read_request().is_none(), "the client gave up");
    });
    let o = Command::new(CLI)
        .args(["--server", &server.addr.to_string(), "--timeout", "300ms"])
        .args(["get", "g", "k"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did not answer in time"),
        "{}",
        stderr(&o)
    );
    server.join();
}

/// `--ttl` reads the server's duration grammar (`1d`, `5min`) plus fractions.
#[test]
fn ttl_takes_the_servers_durations_and_fractions() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(4, Some(tx));
    for ttl in ["1d", "1.5s", "5min", "0.5ms"] {
        let o = cli(&server, &["set", "g", "k", "v", "--ttl", ttl], b"");
        assert!(o.status.success(), "--ttl {ttl}: {}", stderr(&o));
    }
    server.join();
    let ttls: Vec<u64> = rx.iter().map(|r| r.ttl_ms).collect();
    assert_eq!(
        ttls,
        [86_400_000, 1_500, 300_000, 1],
        "0.5ms rounds up to 1 ms"
    );
}

/// `stats` lines are `name value`, one counter per line, for grep and awk.
#[test]
fn stats_lines_are_greppable() {
    let server = FakeServer::store(1, None);
    let o = cli(&server, &["stats"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.is_empty());
    for line in out.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 2, "`{line}`");
        assert!(
            !fields[0].is_empty() && fields[1].parse::<u64>().is_ok(),
            "`{line}`"
        );
    }
    server.join();
}

/// On a terminal, `get` ends the output with a newline (unless the value has one);
/// piped, it writes the bytes as they are (`set_then_get_prints_the_raw_bytes`).
#[cfg(target_os = "linux")]
#[test]
fn get_on_a_terminal_adds_a_newline() {
    let server = FakeServer::store(4, None);
    assert!(cli(&server, &["set", "g", "plain", "no newline"], b"")
        .status
        .success());
    assert!(cli(&server, &["set", "g", "line", "has one\n"], b"")
        .status
        .success());
    for (key, want) in [
        ("plain", &b"no newline\r\n"[..]),
        ("line", &b"has one\r\n"[..]),
    ] {
        let (status, out) = pty::run(
            Command::new(CLI)
                .args(["--server", &server.addr.to_string(), "get", "g", key])
                .stdin(Stdio::null())
                .stderr(Stdio::piped()),
        );
        // The terminal turns "\n" into "\r\n".
        assert_eq!(status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(want),
            "{key}"
        );
    }
    server.join();
}

/// A pseudo-terminal for the child's stdout (posix_openpt, in libc proper).
#[cfg(target_os = "linux")]
#[path = "cli/pty.rs"]
mod pty;

/// A minimal JSON reader for the stats output (see the file).
#[path = "cli/json.rs"]
mod json;
