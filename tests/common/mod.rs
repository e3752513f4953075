//! Shared harness of the integration tests: the real `groupcached` binary on a free
//! loopback port, the real client, raw sockets for bad input, a local HTTP origin,
//! unique temp dirs and polling with deadlines (never bare sleeps).
//!
//! One file over 500 lines on purpose: every test binary includes it, and each piece
//! (server process, client helpers, origin) is small; the cluster harness lives in
//! `cluster.rs` beside it.
#![allow(dead_code)]

pub mod cluster;
pub mod logged_addr;
pub mod memcache;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use groupcached_client::protocol::{Frame, FrameBuffer, Limits, Request};
use groupcached_client::{Client, OwnedResponse, Stats};

/// How long any single wait in these tests may take before it is a failure. Generous:
/// the suite must pass on a slow, noisy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The server binary under test.
pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_groupcached")
}

/// A `groupcached` process on `127.0.0.1:<free port>`, killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    stats_client: Mutex<Option<Client>>,
    exit: Option<ExitStatus>,
    /// The thread draining stderr; it ends when the process closes stderr.
    drain: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts the server with `args` (plus `--listen 127.0.0.1:0`) and waits for the
    /// log line that names its port.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_on("127.0.0.1:0", args)
    }

    /// Starts the server listening on `listen` (a fixed port, to restart a node).
    pub fn start_on(listen: &str, args: &[&str]) -> TestServer {
        let mut cmd = Command::new(server_bin());
        cmd.args(["--listen", listen])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Settings must come from the test alone, never from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GROUPCACHED_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn groupcached");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        // Drains stderr for the whole life of the process, so it never blocks on a full pipe.
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        let mut server = TestServer {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            logs,
            stats_client: Mutex::new(None),
            exit: None,
            drain: Some(drain),
        };
        let start = Instant::now();
        loop {
            if let Some(addr) = server.logs().iter().find_map(|l| parse_listen_line(l)) {
                server.addr = addr;
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().expect("try_wait") {
                // The process is gone, so its stderr is closed: the drain thread
                // ends once it has every last line.
                if let Some(drain) = server.drain.take() {
                    let _ = drain.join();
                }
                panic!(
                    "groupcached {args:?} exited with {status} before listening:\n{}",
                    server.logs().join("\n")
                );
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "groupcached {args:?} did not log its port within {DEADLINE:?}:\n{}",
                    server.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// A new client connection with a generous timeout.
    pub fn client(&self) -> Client {
        self.client_with_timeout(Duration::from_secs(20))
    }

    /// A new client connection whose calls wait at most `timeout`.
    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        Client::builder(self.addr)
            .timeout(timeout)
            .connect_timeout(DEADLINE)
            .connect()
            .expect("connect to groupcached")
    }

    /// A raw socket speaking frames by hand.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// The server's counters, over one connection kept open for the purpose (so that
    /// `curr_connections` counts it exactly once).
    pub fn stats(&self) -> Stats {
        let mut slot = self.stats_client.lock().unwrap();
        let client = slot.get_or_insert_with(|| self.client());
        client.stats().expect("STATS")
    }

    /// One counter; panics if the server does not report it.
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name} in {stats:?}"))
    }

    /// Polls STATS until `pred` holds for counter `name`; returns its value.
    pub fn wait_stat(&self, name: &str, what: &str, pred: impl Fn(u64) -> bool) -> u64 {
        let start = Instant::now();
        loop {
            let v = self.stat(name);
            if pred(v) {
                return v;
            }
            if start.elapsed() > DEADLINE {
                panic!("timed out after {DEADLINE:?} waiting for {name} {what}; it is {v}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls the logs until a line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut found = None;
        wait_until(&format!("a log line containing `{needle}`"), || {
            found = self.logs().into_iter().find(|l| l.contains(needle));
            found.is_some()
        });
        found.unwrap()
    }

    /// Sends a signal with the `kill` command (the tests have no libc binding).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed: {status}");
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exit {
            return Some(s);
        }
        let start = Instant::now();
        let child = self.child.as_mut().expect("server running");
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                self.exit = Some(s);
                return Some(s);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drops the kept STATS connection (for tests that count connections exactly).
    pub fn forget_stats_client(&self) {
        self.stats_client.lock().unwrap().take();
    }

    /// Resident memory of the server process, from /proc, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.exit.is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- groupcached logs ({}) ---\n{}",
                self.addr,
                self.logs.lock().unwrap().join("\n")
            );
        }
    }
}

/// `... listening on 127.0.0.1:PORT (...` -> the address.
fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let addr = rest.split(" (").next()?;
    addr.trim().parse().ok()
}

/// Polls `cond` every 10 ms until it holds; panics after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A directory unique to this test process and call, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("groupcached-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file under the directory (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connection that writes hand-made bytes and decodes whatever comes back.
pub struct Raw {
    pub stream: TcpStream,
    buf: FrameBuffer,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("raw connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: FrameBuffer::new(Limits::default(), 16 * 1024),
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw write");
    }

    pub fn send(&mut self, req: &Request<'_>) {
        self.send_bytes(&encode(req));
    }

    /// The next response frame; `Ok(None)` if the server closed the connection
    /// cleanly between frames. A read timeout is an error.
    pub fn try_recv(&mut self) -> io::Result<Option<OwnedResponse>> {
        loop {
            match self.buf.next_frame() {
                Ok(Some(Frame::Response(r))) => return Ok(Some(OwnedResponse::from_response(&r))),
                Ok(Some(Frame::Request(r))) => panic!("server sent a request: {r:?}"),
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            let n = self.stream.read(self.buf.read_space())?;
            if n == 0 {
                if self.buf.buffered() > 0 {
                    panic!("server closed the connection in the middle of a frame");
                }
                return Ok(None);
            }
            self.buf.commit(n);
        }
    }

    /// The next response frame; panics on close or timeout.
    pub fn recv(&mut self) -> OwnedResponse {
        match self.try_recv() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("server closed the connection, expected a response"),
            Err(e) => panic!("reading a response: {e}"),
        }
    }

    /// Asserts that the server closes the connection without sending another frame.
    pub fn expect_closed(&mut self) {
        match self.try_recv() {
            Ok(None) => {}
            // A reset after the server closed with our bytes unread is a close too.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(Some(r)) => panic!("expected the connection to be closed, got {r:?}"),
            Err(e) => panic!("expected the connection to be closed, got error {e}"),
        }
    }
}

/// The wire bytes of a request.
pub fn encode(req: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    req.encode(&mut out);
    out
}

/// A gate test code opens to let a blocked origin answer.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Waits until opened (at most 30 s, so a failed test cannot hang a thread forever).
    pub fn wait(&self) {
        let (lock, cv) = &*self.0;
        let guard = lock.lock().unwrap();
        let _unused = cv
            .wait_timeout_while(guard, Duration::from_secs(30), |open| !*open)
            .unwrap();
    }
}

/// What the test HTTP origin answers: status and body.
pub type HttpReply = (u16, Vec<u8>);

/// A minimal HTTP/1.1 origin on a free loopback port, run by the test. It records the
/// path of every request and answers with `handler(path)` (which may block on a
/// [`Gate`]), one thread per connection, `Connection: close`.
pub struct HttpOrigin {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl HttpOrigin {
    pub fn start(handler: impl Fn(&str) -> HttpReply + Send + Sync + 'static) -> HttpOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (p, s) = (paths.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (p, h) = (p.clone(), handler.clone());
                std::thread::spawn(move || serve_http(conn, &p, &*h));
            }
        });
        HttpOrigin {
            addr,
            paths,
            stop,
            accept: Some(accept),
        }
    }

    /// The `--origin` spec for URL template `http://127.0.0.1:PORT{path_template}`.
    pub fn spec(&self, path_template: &str) -> String {
        format!("http://{}{path_template}", self.addr)
    }

    /// Paths requested so far, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.paths.lock().unwrap().len()
    }
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve_http(
    mut conn: TcpStream,
    paths: &Mutex<Vec<String>>,
    handler: &dyn Fn(&str) -> HttpReply,
) {
    let _ = conn.set_read_timeout(Some(DEADLINE));
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let Some(path) = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .map(str::to_string)
    else {
        return;
    };
    paths.lock().unwrap().push(path.clone());
    let (status, body) = handler(&path);
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Other",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let _ = conn.write_all(&resp);
    let _ = conn.flush();
}

/// xorshift64*: reproducible randomness for randomized tests, without a dependency.
/// Seed it with a non-zero value.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
