//! Origins under bad keys, bad files, slow backends and oversized values: the real
//! server binary on a free loopback port, driven by the real client, with origins
//! run by the test (a tiny HTTP server on 127.0.0.1, a temp dir).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{wait_until, Gate, TempDir, TestServer, DEADLINE};
use groupcached_client::protocol::Status;
use groupcached_client::{Client, Error as ClientError};

/// What the test origin answers a request path with.
enum Answer {
    /// Status, extra headers, body.
    Reply(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Nothing until the gate opens (a backend that hangs).
    Hang,
}

/// An HTTP/1.1 origin on 127.0.0.1 that behaves like a stock Go `net/http` server
/// behind `ServeMux`: a request path with `.` or `..` segments is answered with a
/// redirect to the cleaned path. It records every raw request path.
struct Origin {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    gate: Gate,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Origin {
    fn start(handler: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Gate::new();
        let handler = Arc::new(handler);
        let (p, s, g) = (paths.clone(), stop.clone(), gate.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (p, h, g) = (p.clone(), handler.clone(), g.clone());
                std::thread::spawn(move || serve(conn, &p, &*h, &g));
            }
        });
        Origin {
            addr,
            paths,
            gate,
            stop,
            accept: Some(accept),
        }
    }

    fn spec(&self, path_template: &str) -> String {
        format!("http://{}{path_template}", self.addr)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.paths()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.gate.open();
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Go's `path.Clean` for the dot segments, as `ServeMux` applies it.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn serve(mut conn: TcpStream, paths: &Mutex<Vec<String>>, h: &dyn Fn(&str) -> Answer, gate: &Gate) {
    let _ = conn.set_read_timeout(Some(DEADLINE));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let Some(path) = text.lines().next().and_then(|l| l.split(' ').nth(1)) else {
        return;
    };
    paths.lock().unwrap().push(path.to_string());
    let raw = path.split('?').next().unwrap_or("");
    let cleaned = clean(raw);
    let answer = if cleaned != raw {
        Answer::Reply(301, vec![("Location", cleaned)], Vec::new())
    } else {
        h(path)
    };
    let (status, headers, body) = match answer {
        Answer::Reply(s, h, b) => (s, h, b),
        Answer::Hang => {
            gate.wait();
            return;
        }
    };
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    let mut resp = resp.into_bytes();
    resp.extend_from_slice(&body);
    let _ = conn.write_all(&resp);
}

fn status(e: &ClientError) -> Option<Status> {
    match e {
        ClientError::Server { status, .. } => Some(*status),
        _ => None,
    }
}

const G: &str = "default";

/// Issue 10 item 1: a key must not reach outside the template's prefix, by dot
/// segments (plain, percent-encoded, with backslashes), empty segments, redirects, or
/// by adding to the query.
#[test]
fn http_keys_cannot_leave_the_prefix() {
    let origin = Origin::start(|path| match path.split('?').next().unwrap_or("") {
        "/internal/secret" => Answer::Reply(200, vec![], b"SECRET".to_vec()),
        "/items/moved" => Answer::Reply(
            302,
            vec![("Location", "/internal/secret".into())],
            Vec::new(),
        ),
        p if p.starts_with("/items/") => Answer::Reply(200, vec![], path.as_bytes().to_vec()),
        _ => Answer::Reply(404, vec![], Vec::new()),
    });
    let spec = origin.spec("/items/{key}?v=1");
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();

    for bad in [
        "../internal/secret",
        "a/../../internal/secret",
        "./x",
        "x/.",
        "/internal/secret",
        "a//b",
        "a/",
        "..\\internal\\secret",
        "%2e%2e/internal/secret",
        "%252E%252E/internal/secret",
        "..%2finternal%2fsecret",
    ] {
        let err = c.get(G, bad).unwrap_err();
        assert_eq!(status(&err), Some(Status::BadRequest), "{bad}: {err}");
    }
    assert_eq!(
        origin.paths(),
        Vec::<String>::new(),
        "refused keys were sent"
    );

    // A redirect is not followed, so its target is neither fetched nor cached.
    let err = c.get(G, "moved").unwrap_err();
    assert_eq!(status(&err), Some(Status::OriginError), "{err}");
    assert!(err.to_string().contains("not followed"), "{err}");
    assert_eq!(origin.paths(), vec!["/items/moved?v=1".to_string()]);

    // Query and fragment characters arrive encoded, inside the path.
    let v = c.get(G, "x?v=2&admin=1#f").unwrap().unwrap();
    assert_eq!(v.as_bytes(), b"/items/x%3Fv%3D2%26admin%3D1%23f?v=1");
    // Ordinary path-like keys and dotted names still work.
    let v = c.get(G, "a/b/.c..d...").unwrap().unwrap();
    assert_eq!(v.as_bytes(), b"/items/a/b/.c..d...?v=1");
    assert!(
        origin.count("/internal") == 0,
        "the origin was led outside the prefix: {:?}",
        origin.paths()
    );
}

/// Issue 10 item 7: a FIFO in a `dir:` origin is refused at once instead of pinning
/// a loader thread in open() forever.
#[test]
fn a_fifo_in_a_dir_origin_does_not_pin_a_loader_thread() {
    let dir = TempDir::new("fifo");
    dir.write("file.txt", b"regular");
    let fifo = dir.path().join("pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo does not keep the pointer.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let spec = format!("dir:{}", dir.path().display());
    let s = TestServer::start(&[
        "--origin",
        &spec,
        "--loader-threads",
        "1",
        "--load-timeout",
        "5s",
    ]);
    let mut c = s.client_with_timeout(Duration::from_secs(30));
    // With one loader thread, one GET pinned in open() would make every later
    // load time out.
    for _ in 0..3 {
        let err = c.get(G, "pipe").unwrap_err();
        assert_eq!(status(&err), Some(Status::BadRequest), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
    assert_eq!(
        c.get(G, "file.txt").unwrap().unwrap().as_bytes(),
        b"regular"
    );
    let line = s.wait_log("FIFO");
    assert!(line.contains("pipe"), "{line}");
}

/// Issue 10 item 8: a hanging origin holds up only its own group; loads that wait in
/// its queue past their deadline are answered TIMEOUT without being started; a full
/// queue answers UNAVAILABLE; all of it is counted.
#[test]
fn a_hanging_origin_starves_only_its_own_group() {
    let origin = Origin::start(|path| {
        if path.starts_with("/slow/") {
            Answer::Hang
        } else {
            Answer::Reply(200, vec![], b"fast".to_vec())
        }
    });
    let dir = TempDir::new("groups");
    let cfg = dir.write(
        "groups.toml",
        format!(
            "loader_threads = 2\n\
             [[group]]\nname = \"slow\"\norigin = \"{}\"\nloader_threads = 2\nloader_queue = 4\n\
             [[group]]\nname = \"fast\"\norigin = \"{}\"\n",
            origin.spec("/slow/{key}"),
            origin.spec("/fast/{key}"),
        )
        .as_bytes(),
    );
    let s = TestServer::start(&["--config", cfg.to_str().unwrap(), "--load-timeout", "3s"]);
    let addr = s.addr();
    let slow_get = move |key: String| {
        std::thread::spawn(move || {
            let mut c = Client::builder(addr)
                .timeout(Duration::from_secs(30))
                .connect()
                .unwrap();
            c.get("slow", key).map(|v| v.map(|v| v.into_bytes()))
        })
    };
    // Two loads occupy both of the slow group's threads...
    let running: Vec<_> = (0..2).map(|i| slow_get(format!("r{i}"))).collect();
    wait_until("both slow loads reach the origin", || {
        origin.count("/slow/") == 2
    });
    // ...four more wait in its queue, and two find it full.
    let queued: Vec<_> = (0..4).map(|i| slow_get(format!("q{i}"))).collect();
    s.wait_stat("group.slow.load_queue_waits", "4 queued loads", |v| v == 4);
    let refused: Vec<_> = (0..2).map(|i| slow_get(format!("x{i}"))).collect();
    for t in refused {
        let err = t.join().unwrap().unwrap_err();
        assert_eq!(status(&err), Some(Status::Unavailable), "{err}");
    }
    assert_eq!(s.stat("group.slow.load_queue_full"), 2);

    // Meanwhile the other group's loads are served at once by its own threads.
    let mut c = s.client();
    for i in 0..20 {
        let v = c.get("fast", format!("k{i}")).unwrap().unwrap();
        assert_eq!(v.as_bytes(), b"fast");
    }

    for t in running.into_iter().chain(queued) {
        let err = t.join().unwrap().unwrap_err();
        assert_eq!(status(&err), Some(Status::Timeout), "{err}");
    }
    // The queued loads were dequeued past their deadline and never sent.
    s.wait_stat("group.slow.load_queue_timeouts", "4 expired loads", |v| {
        v == 4
    });
    assert_eq!(origin.count("/slow/"), 2, "{:?}", origin.paths());
    assert_eq!(s.stat("group.slow.load_queue_depth"), 0);
    assert_eq!(s.stat("group.fast.load_queue_timeouts"), 0);
    assert_eq!(s.stat("group.fast.load_queue_full"), 0);
}

/// Issue 10 item 9: a value too large to cache is answered TOO_LARGE, logged,
/// counted, and not asked for again for `--too-large-ttl`.
#[test]
fn too_large_origin_values_are_counted_logged_and_not_refetched() {
    let origin = Origin::start(|path| {
        let size = if path.starts_with("/v/big") {
            20_000
        } else {
            10
        };
        Answer::Reply(200, vec![], vec![b'x'; size])
    });
    let spec = origin.spec("/v/{key}");
    let s = TestServer::start(&["--origin", &spec, "--max-item-size", "10KiB"]);
    let mut c = s.client();
    for _ in 0..5 {
        let err = c.get(G, "big").unwrap_err();
        assert_eq!(status(&err), Some(Status::TooLarge), "{err}");
        assert!(
            err.to_string().contains("item limit of 10240 bytes"),
            "{err}"
        );
        assert!(err.to_string().contains("of 20000 bytes"), "{err}");
    }
    assert_eq!(origin.count("/v/big"), 1, "the origin was asked again");
    assert_eq!(s.stat("group.default.origin_too_large"), 1);
    assert_eq!(s.stat("group.default.too_large_remembered"), 4);
    let line = s.wait_log("item limit");
    assert!(line.contains("big"), "{line}");
    // A value that fits is cached as usual.
    assert_eq!(c.get(G, "small").unwrap().unwrap().len(), 10);
    assert_eq!(c.get(G, "small").unwrap().unwrap().len(), 10);
    assert_eq!(origin.count("/v/small"), 1);

    // With the memory off, every GET asks the origin (and is still refused).
    let s = TestServer::start(&[
        "--origin",
        &spec,
        "--max-item-size",
        "10KiB",
        "--too-large-ttl",
        "0s",
    ]);
    let mut c = s.client();
    let before = origin.count("/v/big");
    for _ in 0..3 {
        let err = c.get(G, "big").unwrap_err();
        assert_eq!(status(&err), Some(Status::TooLarge), "{err}");
    }
    assert_eq!(origin.count("/v/big") - before, 3);
    assert_eq!(s.stat("group.default.origin_too_large"), 3);
}
