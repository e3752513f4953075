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
fn server_errors_exit_2_with_the_message() {
    let server = FakeServer::store(1, None);
    let o = cli(&server, &["get", "nogroup", "k"], b"");
    assert_eq!(o.status.code(), Some(2));
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

#[test]
fn usage_and_connection_errors_exit_2() {
    let o = Command::new(CLI)
        .args(["get", "only-group"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("usage"), "{}", stderr(&o));

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let o = Command::new(CLI)
        .args(["--server", &closed.to_string(), "ping"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));

    let o = Command::new(CLI).arg("--help").output().expect("run");
    assert!(o.status.success());
    assert!(stdout(&o).contains("Usage: groupcached-cli"));
}

/// A minimal JSON reader, enough to check the CLI's output independently of the code
/// that wrote it: objects (keys with escapes) and non-negative integers, the only values
/// the stats output has.
mod json {
    #[derive(Debug)]
    pub enum Json {
        Num(u64),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        /// The number at `path` through nested objects.
        pub fn at(&self, path: &[&str]) -> Option<u64> {
            match (self, path.split_first()) {
                (Json::Num(n), None) => Some(*n),
                (Json::Obj(members), Some((first, rest))) => members
                    .iter()
                    .find(|(k, _)| k == first)
                    .and_then(|(_, v)| v.at(rest)),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
        };
        let v = p.value()?;
        if p.pos != p.s.len() {
            return Err(format!("trailing bytes at {}", p.pos));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.pos).copied()
        }

        fn expect(&mut self, b: u8) -> Result<(), String> {
            if self.peek() == Some(b) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", b as char, self.pos))
            }
        }

        fn value(&mut self) -> Result<Json, String> {
            match self.peek() {
                Some(b'{') => self.object(),
                Some(b'0'..=b'9') => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.pos += 1;
                    }
                    let digits =
                        std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
                    digits.parse().map(Json::Num).map_err(|e| e.to_string())
                }
                other => Err(format!("unexpected {other:?} at {}", self.pos)),
            }
        }

        fn object(&mut self) -> Result<Json, String> {
            self.expect(b'{')?;
            let mut members = Vec::new();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Json::Obj(members));
            }
            loop {
                let k = self.string()?;
                self.expect(b':')?;
                let v = self.value()?;
                if members.iter().any(|(m, _)| *m == k) {
                    return Err(format!("duplicate key {k:?}"));
                }
                members.push((k, v));
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Json::Obj(members));
                    }
                    other => return Err(format!("unexpected {other:?} at {}", self.pos)),
                }
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = Vec::new();
            loop {
                let b = self.peek().ok_or("unterminated string")?;
                self.pos += 1;
                match b {
                    b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                    b'\\' => {
                        let e = self.peek().ok_or("unterminated escape")?;
                        self.pos += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e),
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'u' => {
                                let hex = self.s.get(self.pos..self.pos + 4).ok_or("short \\u")?;
                                let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                                let c = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                let c = char::from_u32(c).ok_or("surrogate \\u")?;
                                out.extend_from_slice(c.to_string().as_bytes());
                                self.pos += 4;
                            }
                            _ => return Err(format!("bad escape at {}", self.pos)),
                        }
                    }
                    0..=0x1f => return Err(format!("raw control byte at {}", self.pos)),
                    _ => out.push(b),
                }
            }
        }
    }
}
