//! The bench tests' harness: the freshly built server binary, server processes
//! on free ports (killed when dropped), the generator run with a JSON summary, and
//! polling with a deadline.
#![allow(dead_code)] // not every helper is used by every test

#[path = "../../../tests/common/fresh_bin.rs"]
mod fresh_bin;
#[path = "../../../tests/common/logged_addr.rs"]
mod logged_addr;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fresh_bin::fresh_bin;
use groupcached_client::Client;
pub use logged_addr::memcache_listen_addr;
use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// The server binary, freshly built once per test process (see `fresh_bin`).
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| fresh_bin("groupcached", "groupcached"))
        .clone()
}

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `groupcached --listen 127.0.0.1:0 <args>`, once it has logged its port.
    pub fn groupcached(args: &[&str]) -> Proc {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GROUPCACHED_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn groupcached");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        drain(stderr, &logs);
        let mut p = Proc {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            logs,
        };
        let addr = poll_until("groupcached to log its port", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "groupcached exited with {status}: {:?}",
                    p.logs.lock().unwrap()
                );
            }
            p.logs.lock().unwrap().iter().find_map(|l| listen_addr(l))
        });
        p.addr = addr;
        p
    }

    /// `groupcached-echo --listen 127.0.0.1:0 <args>` (this package's loopback echo
    /// server), once it has printed the address it got on stdout.
    pub fn echo(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_groupcached-echo"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn groupcached-echo");
        let logs = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().expect("piped stdout"), &logs);
        drain(child.stderr.take().expect("piped stderr"), &logs);
        let mut p = Proc {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            logs,
        };
        p.addr = poll_until("groupcached-echo to print its address", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "groupcached-echo exited with {status}: {:?}",
                    p.logs.lock().unwrap()
                );
            }
            p.logs.lock().unwrap().iter().find_map(|l| listen_addr(l))
        });
        p
    }

    /// Whether the process is still running (it has not crashed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `memcached` on a free port, or `None` if it is not installed: then `test`
    /// says SKIPPED on the real stderr (libtest captures `eprintln!`, not this), or
    /// fails when memcached is required: `GROUPCACHED_REQUIRE_MEMCACHED=1` (set by
    /// .ci/run) or `CI` set, since CI installs memcached and must run the test.
    pub fn memcached(test: &str) -> Option<Proc> {
        if let Err(e) = Command::new("memcached").arg("-V").output() {
            let required = std::env::var_os("GROUPCACHED_REQUIRE_MEMCACHED")
                .is_some_and(|v| v == "1")
                || std::env::var_os("CI").is_some();
            assert!(
                !required,
                "{test}: memcached is not runnable ({e}), and GROUPCACHED_REQUIRE_MEMCACHED=1 \
                 or CI is set: install memcached (.ci/run does)"
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {test}: memcached is not on PATH ({e}); install it to run this test"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("memcached")
            .args([
                "-u",
                "nobody",
                "-U",
                "0",
                "-t",
                "1",
                "-m",
                "64",
                "-l",
                "127.0.0.1",
            ])
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn memcached");
        let mut p = Proc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            logs: Arc::default(),
        };
        poll_until("memcached to accept connections", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("memcached exited with {status}");
            }
            TcpStream::connect(p.addr).ok().map(|_| ())
        });
        Some(p)
    }

    /// The memcached port of a groupcached started with `--memcache-listen 127.0.0.1:0`,
    /// from the log line that names it. The server binds it before it logs the native
    /// port but names it a moment later, so this polls.
    pub fn memcache_addr(&mut self) -> SocketAddr {
        let native = self.addr;
        poll_until("groupcached to log its memcached port", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "groupcached exited with {status}: {:?}",
                    self.logs.lock().unwrap()
                );
            }
            let logs = self.logs.lock().unwrap();
            logs.iter().find_map(|l| memcache_listen_addr(l, native))
        })
    }

    pub fn stat(&self, name: &str) -> u64 {
        let mut c = Client::builder(self.addr)
            .timeout(Duration::from_secs(10))
            .connect()
            .expect("connect for STATS");
        let stats = c.stats().expect("STATS");
        stats
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name}: {stats:?}"))
    }
}

/// Reads a child's pipe into `logs`, a line at a time, for the life of the process,
/// so that the child never blocks on a full pipe.
fn drain(pipe: impl std::io::Read + Send + 'static, logs: &Arc<Mutex<Vec<String>>>) {
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
}

pub fn listen_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    rest.split(" (").next()?.trim().parse().ok()
}

pub fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh path for a JSON summary.
pub fn json_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("groupcached-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{name}.json"))
}

/// Runs the generator; returns its output and parsed JSON summary (if it wrote one).
pub fn bench(name: &str, args: &[&str]) -> (Output, Option<Value>) {
    let json = json_path(name);
    let _ = std::fs::remove_file(&json);
    let out = Command::new(env!("CARGO_BIN_EXE_groupcached-bench"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run groupcached-bench");
    let value = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("valid JSON summary"));
    (out, value)
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The checks every clean run must pass: ops, no errors, ordered percentiles.
pub fn assert_clean(out: &Output, j: &Value) {
    assert!(out.status.success(), "{}", text(out));
    assert!(j["ops"].as_u64().unwrap() > 0, "{j}");
    assert!(j["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(j["errors"], 0, "{j}");
    assert!(j["bytes_in"].as_u64().unwrap() > 0 && j["bytes_out"].as_u64().unwrap() > 0);
    let lat = &j["latency_us"];
    let ps: Vec<f64> = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]
        .iter()
        .map(|k| lat[k].as_f64().unwrap())
        .collect();
    assert!(ps[0] > 0.0, "{lat}");
    assert!(
        ps.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {lat}"
    );
    assert_eq!(lat["count"].as_u64(), j["ops"].as_u64());
    let busy = j["generator"]["busy"].as_array().unwrap();
    assert!(
        busy.iter()
            .all(|b| (0.0..=1.5).contains(&b.as_f64().unwrap())),
        "{busy:?}"
    );
}

/// A fake server on a free port: every connection gets `serve(stream)` on its own thread.
pub fn fake_server(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// The memcached-protocol run both memcached and groupcached's memcached port get in
/// the tests: 10,000 requests (9 GETs : 1 SET) of 2,000 prefilled keys prefixed by
/// `protocol`, 2 threads x 4 connections, pipeline 8, and its clean JSON summary.
pub fn memcache_run(name: &str, addr: &str, protocol: &str) -> Value {
    let (out, j) = bench(
        name,
        &[
            "--server",
            addr,
            "--protocol",
            protocol,
            "--prefill",
            "--keys",
            "2000",
            "--requests",
            "10000",
            "--ratio",
            "9:1",
            "--connections",
            "4",
            "--pipeline",
            "8",
            "--threads",
            "2",
            "--key-prefix",
            protocol,
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    j
}
