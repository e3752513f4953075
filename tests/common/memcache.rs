//! The memcached front end of the real binary (`--memcache-listen`, issue 12), for the
//! tests that drive it with third-party clients: finding the port it bound, a raw text
//! connection (what `nc` does), and finding the external clients (pymemcache,
//! libmemcached's tools) or skipping visibly when they cannot be had.
//!
//! Missing tools: a test prints `SKIPPED <test>: <reason>` on the real stderr (libtest
//! does not capture it) and passes, unless `GROUPCACHED_REQUIRE_MEMCACHED=1` (set by
//! .ci/run, which installs them) or `CI` is set: then a missing tool fails the test.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use super::logged_addr::memcache_listen_addr;
use super::{TestServer, DEADLINE};

/// `--memcache-listen 127.0.0.1:0` and `args`: a server and the memcached port it bound.
pub fn start(args: &[&str]) -> (TestServer, SocketAddr) {
    let mut all = vec!["--memcache-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let s = TestServer::start(&all);
    let mc = mc_addr(&s);
    (s, mc)
}

/// The memcached port of a server started with `--memcache-listen 127.0.0.1:0`: from
/// the log line that names it (a line mentioning "memcache" with an address other
/// than the native port's), or else from the process's listening sockets in /proc
/// (the one that is not the native port), whichever shows first.
pub fn mc_addr(s: &TestServer) -> SocketAddr {
    let start = Instant::now();
    loop {
        if let Some(a) = s
            .logs()
            .iter()
            .find_map(|l| memcache_listen_addr(l, s.addr()))
        {
            return a;
        }
        let ports = listening_ports(s.pid());
        let others: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|&p| p != s.addr().port())
            .collect();
        if let [p] = others[..] {
            return SocketAddr::new(s.addr().ip(), p);
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "no memcached port found within {DEADLINE:?}: no log line names it, and the \
                 process listens on {ports:?}. Logs:\n{}",
                s.logs().join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// TCP ports process `pid` listens on (IPv4 and IPv6), from /proc.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            // sl local_address rem_address st ... inode (field 9); 0A = LISTEN.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok());
                if let Some(p) = port {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
        }
    }
    ports
}

/// A text-protocol connection written by hand, as `nc` would.
pub struct Text {
    reader: BufReader<TcpStream>,
}

impl Text {
    pub fn connect(addr: SocketAddr) -> Text {
        let stream =
            TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to the memcached port");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Text {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.reader
            .get_mut()
            .write_all(bytes.as_ref())
            .expect("write to the memcached port");
    }

    /// One answer line without its `\r\n`; panics on close, timeout or a line that
    /// does not end in `\r\n`.
    pub fn line(&mut self) -> String {
        let mut raw = Vec::new();
        match self.reader.read_until(b'\n', &mut raw) {
            Ok(0) => panic!("the server closed the connection; expected a line"),
            Ok(_) => {}
            Err(e) => panic!(
                "reading a line: {e} (got {:?} so far)",
                String::from_utf8_lossy(&raw)
            ),
        }
        assert!(
            raw.ends_with(b"\r\n"),
            "an answer line must end in \\r\\n: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.truncate(raw.len() - 2);
        String::from_utf8(raw).expect("a UTF-8 answer line")
    }

    /// Sends `request` and returns the first answer line.
    pub fn ask(&mut self, request: impl AsRef<[u8]>) -> String {
        self.send(request);
        self.line()
    }

    /// Exactly `n` bytes of data plus the `\r\n` after them.
    pub fn data(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n + 2];
        self.reader.read_exact(&mut v).expect("read a data block");
        assert_eq!(&v[n..], b"\r\n", "a data block ends in \\r\\n");
        v.truncate(n);
        v
    }

    /// The items of a retrieval answer (`VALUE ...` blocks up to `END`).
    pub fn items(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        loop {
            let line = self.line();
            if line == "END" {
                return out;
            }
            let f: Vec<&str> = line.split(' ').collect();
            assert!(
                f[0] == "VALUE" && (f.len() == 4 || f.len() == 5),
                "expected VALUE or END, got {line:?}"
            );
            let n: usize = f[3].parse().expect("VALUE length");
            let key = f[1].to_string();
            let flags = f[2].parse().expect("VALUE flags");
            let cas = f.get(4).map(|c| c.parse().expect("VALUE cas"));
            let data = self.data(n);
            out.push(Item {
                key,
                flags,
                data,
                cas,
            });
        }
    }

    /// Sends a retrieval command and returns its items.
    pub fn get(&mut self, request: impl AsRef<[u8]>) -> Vec<Item> {
        self.send(request);
        self.items()
    }

    /// Asserts that the server closes the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => {}
            // A reset after the server closed with our bytes unread is a close too.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "expected the connection to be closed, got {e} after {:?}",
                String::from_utf8_lossy(&rest)
            ),
        }
        assert!(
            rest.is_empty(),
            "expected a close, got more: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Everything the server sends until it closes the connection.
    pub fn until_closed(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "expected the connection to be closed, got {e} after {:?}",
                String::from_utf8_lossy(&rest)
            ),
        }
        rest
    }
}

/// One `VALUE` block of a retrieval answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub flags: u32,
    pub data: Vec<u8>,
    pub cas: Option<u64>,
}

/// The server's answer to memcached's `stats`, as (name, value) pairs.
pub fn mc_stats(addr: SocketAddr) -> Vec<(String, String)> {
    let mut c = Text::connect(addr);
    c.send("stats\r\n");
    let mut out = Vec::new();
    loop {
        let line = c.line();
        if line == "END" {
            return out;
        }
        let mut f = line.splitn(3, ' ');
        assert_eq!(f.next(), Some("STAT"), "a stats line: {line:?}");
        let name = f.next().expect("a STAT name").to_string();
        out.push((name, f.next().unwrap_or("").to_string()));
    }
}

/// Whether a missing external tool fails the test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var_os("GROUPCACHED_REQUIRE_MEMCACHED").is_some_and(|v| v == "1")
        || std::env::var_os("CI").is_some()
}

/// Skips `test` visibly (or fails it when tools are required) for `reason`.
fn skip(test: &str, reason: &str) {
    assert!(
        !tools_required(),
        "{test}: {reason}, and GROUPCACHED_REQUIRE_MEMCACHED=1 or CI is set: install it \
         (.ci/run does)"
    );
    let _ = writeln!(io::stderr().lock(), "SKIPPED {test}: {reason}");
}

/// The path of executable `name` on PATH, or `None` (after a visible skip message).
pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    });
    if found.is_none() {
        skip(
            test,
            &format!("`{name}` is not on PATH (Debian: apt-get install libmemcached-tools)"),
        );
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A Python interpreter that can `import pymemcache`: `python3` on PATH, else
/// Debian's `/usr/bin/python3` (where `python3-pymemcache` installs). `None` after a
/// visible skip message.
pub fn pymemcache(test: &str) -> Option<PathBuf> {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import pymemcache"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(PathBuf::from(py));
        }
    }
    skip(
        test,
        "no python3 can import pymemcache (apt-get install python3-pymemcache, or pip install pymemcache)",
    );
    None
}

/// Runs `program args`, with stdin closed, and returns its output.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

/// Asserts that `out` is a success and returns its stdout as text.
pub fn success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A raw memcached text connection for byte-exact checks of answers.
pub struct Mc(pub TcpStream);

impl Mc {
    pub fn connect(addr: SocketAddr) -> Mc {
        let s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_nodelay(true).unwrap();
        Mc(s)
    }

    /// A connection to the memcached port of `s` (started with `--memcache-listen`),
    /// e.g. one node of a cluster.
    pub fn to(s: &TestServer) -> Mc {
        Mc::connect(mc_addr(s))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write");
    }

    /// Reads exactly as many bytes as `want` and compares.
    pub fn expect(&mut self, want: &[u8]) {
        let mut got = vec![0; want.len()];
        if let Err(e) = self.0.read_exact(&mut got) {
            panic!("reading {:?}: {e}", String::from_utf8_lossy(want));
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "answer differs"
        );
    }

    /// Sends `req` and expects exactly `want` back (a failure names `req`).
    pub fn ask(&mut self, req: &str, want: &str) {
        self.send(req.as_bytes());
        let mut got = vec![0; want.len()];
        if let Err(e) = self.0.read_exact(&mut got) {
            panic!("{req:?}: reading {want:?}: {e}");
        }
        assert_eq!(String::from_utf8_lossy(&got), want, "answer to {req:?}");
    }

    /// Reads one line (without `\r\n`).
    pub fn line(&mut self) -> String {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            self.0.read_exact(&mut b).expect("read a line");
            out.push(b[0]);
        }
        out.truncate(out.len() - 2);
        String::from_utf8(out).unwrap()
    }

    /// `gets key` for a one-line value: (flags, cas, value), or `None` on a miss.
    pub fn gets(&mut self, key: &str) -> Option<(u32, u64, String)> {
        self.send(format!("gets {key}\r\n").as_bytes());
        let head = self.line();
        if head == "END" {
            return None;
        }
        let f: Vec<&str> = head.split(' ').collect();
        assert_eq!((f[0], f[1]), ("VALUE", key), "{head}");
        let value = self.line();
        assert_eq!(self.line(), "END");
        Some((f[2].parse().unwrap(), f[4].parse().unwrap(), value))
    }

    /// Asserts that nothing has been answered yet (a non-blocking read).
    pub fn expect_nothing_yet(&mut self) {
        self.0.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match self.0.read(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("expected no answer yet, got {other:?} {:?}", &b[..8]),
        }
        self.0.set_nonblocking(false).unwrap();
    }

    /// Reads until the server closes the connection.
    pub fn rest(&mut self) -> String {
        let mut s = Vec::new();
        let _ = self.0.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    }
}
