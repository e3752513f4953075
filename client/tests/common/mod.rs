//! A fake groupcached server for the client's tests: a std::net listener on an
//! ephemeral port, in a thread, that decodes requests with the protocol crate and
//! answers what each test scripts. No sleeps: tests synchronise on the protocol itself
//! and on channels.
//!
//! One file (about 560 lines): the fake server, its in-memory store and the scripted
//! misbehaviours the tests ask of it are one thing, shared by every client test binary.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use groupcached_protocol::{
    Frame, FrameBuffer, HelloInfo, Limits, MemberList, Opcode, Request, RequestKind, Response,
    ResponseBody, StatsList, Status,
};

/// How long a fake server waits for a client before giving up, so a broken test
/// fails instead of hanging.
const SERVER_PATIENCE: Duration = Duration::from_secs(10);

/// A fake server thread and its address.
pub struct FakeServer {
    pub addr: SocketAddr,
    handle: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds 127.0.0.1:0 and runs `script` with the listener in a thread.
    pub fn start<F: FnOnce(TcpListener) + Send + 'static>(script: F) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let handle = std::thread::spawn(move || script(listener));
        FakeServer {
            addr,
            handle: Some(handle),
        }
    }

    /// A server that serves `conns` connections, one after the other, from an
    /// in-memory store (see [`serve_store`]), reporting every request to `seen`.
    pub fn store(conns: usize, seen: Option<Sender<Req>>) -> FakeServer {
        FakeServer::start(move |l| {
            let mut store = Store::default();
            for _ in 0..conns {
                let mut peer = Peer::accept(&l);
                serve_store(&mut peer, &mut store, seen.as_ref());
            }
        })
    }

    /// Waits for the server thread, re-raising its panic (a failed server-side assert).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A request as the server saw it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub id: u32,
    pub op: Opcode,
    pub group: Vec<u8>,
    pub key: Vec<u8>,
    pub ttl_ms: u64,
    /// SET value or PING payload.
    pub value: Vec<u8>,
}

impl Req {
    fn from_request(r: &Request<'_>) -> Req {
        let mut req = Req {
            id: r.id,
            op: r.kind.opcode(),
            group: Vec::new(),
            key: Vec::new(),
            ttl_ms: 0,
            value: Vec::new(),
        };
        match r.kind {
            RequestKind::Get(k)
            | RequestKind::Delete(k)
            | RequestKind::Fetch(k)
            | RequestKind::Invalidate(k)
            | RequestKind::Purge(k)
            | RequestKind::FetchItem(k) => {
                req.group = k.group.to_vec();
                req.key = k.key.to_vec();
            }
            RequestKind::Mutate {
                key, ttl_ms, value, ..
            } => {
                req.group = key.group.to_vec();
                req.key = key.key.to_vec();
                req.ttl_ms = ttl_ms;
                req.value = value.to_vec();
            }
            RequestKind::Flush { group } => req.group = group.to_vec(),
            RequestKind::Set { key, ttl_ms, value } | RequestKind::Store { key, ttl_ms, value } => {
                req.group = key.group.to_vec();
                req.key = key.key.to_vec();
                req.ttl_ms = ttl_ms;
                req.value = value.to_vec();
            }
            RequestKind::Ping(p) => req.value = p.to_vec(),
            RequestKind::Challenge { nonce: b } | RequestKind::Auth { proof: b } => {
                req.value = b.to_vec()
            }
            RequestKind::Shard { core } => req.value = core.to_be_bytes().to_vec(),
            RequestKind::Stats | RequestKind::Hello { .. } => {}
        }
        req
    }
}

/// One accepted connection, server side.
///
/// Like a server that predates SHARD (0x0d), it answers every SHARD request with
/// `UNKNOWN_OP` by itself (the client then falls back to one plain connection), so
/// scripts see the requests they expect; [`Peer::pass_shard`] hands SHARD requests
/// to the script instead.
pub struct Peer {
    pub stream: TcpStream,
    buf: FrameBuffer,
    /// Whether SHARD requests go to the script rather than being refused here.
    pass_shard: bool,
    /// SHARD requests refused so far.
    pub shards_refused: usize,
}

impl Peer {
    pub fn accept(l: &TcpListener) -> Peer {
        let (stream, _) = l.accept().expect("accept");
        Peer::new(stream)
    }

    pub fn new(stream: TcpStream) -> Peer {
        stream
            .set_read_timeout(Some(SERVER_PATIENCE))
            .expect("read timeout");
        Peer {
            stream,
            buf: FrameBuffer::new(Limits::default(), 0),
            pass_shard: false,
            shards_refused: 0,
        }
    }

    /// From now on SHARD requests are returned to the script like any other.
    pub fn pass_shard(&mut self) -> &mut Self {
        self.pass_shard = true;
        self
    }

    /// Answers a SHARD request with UNKNOWN_OP, as an older server does, unless the
    /// script takes SHARD itself; returns whether it did.
    fn refused_shard(&mut self, req: &Req) -> bool {
        if self.pass_shard || req.op != Opcode::Shard {
            return false;
        }
        self.shards_refused += 1;
        // As a server that does not know the opcode: UNKNOWN_OP, connection kept.
        let reply = error_response(
            req.id,
            Opcode::Shard,
            Status::UnknownOp,
            "unknown opcode 0x0d",
        );
        self.stream.write_all(&reply).is_ok()
    }

    /// The next request, or `None` when the client closed the connection.
    pub fn read_request(&mut self) -> Option<Req> {
        loop {
            match self.buf.next_frame() {
                Ok(Some(Frame::Request(r))) => {
                    let req = Req::from_request(&r);
                    if !self.refused_shard(&req) {
                        return Some(req);
                    }
                    continue;
                }
                Ok(Some(Frame::Response(r))) => panic!("client sent a response: {r:?}"),
                Err(e) => panic!("client sent a bad frame: {e}"),
                Ok(None) => {}
            }
            let n = self
                .stream
                .read(self.buf.read_space())
                .expect("fake server read");
            if n == 0 {
                assert_eq!(self.buf.buffered(), 0, "client closed mid-frame");
                return None;
            }
            self.buf.commit(n);
        }
    }

    /// Like [`Peer::read_request`], but a socket error (the connection was reset or
    /// shut down under it) also ends the connection instead of failing the test.
    pub fn try_read_request(&mut self) -> Option<Req> {
        loop {
            match self.buf.next_frame() {
                Ok(Some(Frame::Request(r))) => {
                    let req = Req::from_request(&r);
                    if !self.refused_shard(&req) {
                        return Some(req);
                    }
                    continue;
                }
                Ok(Some(Frame::Response(r))) => panic!("client sent a response: {r:?}"),
                Err(e) => panic!("client sent a bad frame: {e}"),
                Ok(None) => {}
            }
            match self.stream.read(self.buf.read_space()) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.commit(n),
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("fake server write");
    }
}

/// Encodes a response.
pub fn encode(r: &Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(&mut out);
    out
}

pub fn value_response(id: u32, value: &[u8], ttl_ms: u64) -> Vec<u8> {
    encode(&Response {
        id,
        opcode: Opcode::Get as u8,
        status: Status::Ok,
        body: ResponseBody::Value { ttl_ms, value },
    })
}

pub fn not_found(id: u32, op: Opcode) -> Vec<u8> {
    encode(&Response {
        id,
        opcode: op as u8,
        status: Status::NotFound,
        body: ResponseBody::Empty,
    })
}

pub fn error_response(id: u32, op: Opcode, status: Status, message: &str) -> Vec<u8> {
    encode(&Response::error(id, op as u8, status, message))
}

/// The counters the store server reports.
pub const STATS: &[(&str, u64)] = &[
    ("connections", 1),
    ("server_requests", 42),
    ("group.default.gets", 7),
    ("group.default.cache_hits", 5),
    ("group.default.main.bytes", 1234),
    ("group.default.main.items", 3),
    ("group.thumbs.gets", 2),
];

pub const NODE_ID: &str = "127.0.0.1:7000";
pub const MEMBERS: &[&str] = &["127.0.0.1:7000", "127.0.0.1:7001"];
pub const VNODES: u32 = 64;

/// (group, key) -> (value, ttl_ms)
type Items = HashMap<(Vec<u8>, Vec<u8>), (Vec<u8>, u64)>;

/// The store behind [`serve_store`].
#[derive(Default)]
pub struct Store {
    items: Items,
}

/// Serves one connection until the client closes it, answering in order:
/// - group `nogroup` gets UNKNOWN_GROUP;
/// - a GET of a key `status:NAME` gets that status with message `scripted NAME`;
/// - a GET of a key `gen:REST` gets the value `value-of-REST` (no SET needed);
/// - otherwise GET/SET/DELETE work on the store, STATS answers [`STATS`], PING
///   echoes, HELLO answers [`NODE_ID`] / [`MEMBERS`] / [`VNODES`].
pub fn serve_store(peer: &mut Peer, store: &mut Store, seen: Option<&Sender<Req>>) {
    while let Some(req) = peer.read_request() {
        if let Some(tx) = seen {
            let _ = tx.send(req.clone());
        }
        let reply = answer(store, &req);
        peer.send(&reply);
    }
}

/// The store server's answer to one request.
pub fn answer(store: &mut Store, req: &Req) -> Vec<u8> {
    let id = req.id;
    if req.group == b"nogroup" {
        return error_response(id, req.op, Status::UnknownGroup, "no group \"nogroup\"");
    }
    match req.op {
        Opcode::Get => {
            if let Some(name) = req.key.strip_prefix(b"status:") {
                let status = Status::ALL
                    .into_iter()
                    .find(|s| s.name().as_bytes() == name)
                    .expect("a status name");
                let msg = format!("scripted {}", status.name());
                return error_response(id, Opcode::Get, status, &msg);
            }
            if let Some(rest) = req.key.strip_prefix(b"gen:") {
                let mut v = b"value-of-".to_vec();
                v.extend_from_slice(rest);
                return value_response(id, &v, 0);
            }
            match store.items.get(&(req.group.clone(), req.key.clone())) {
                Some((v, ttl)) => value_response(id, v, *ttl),
                None => not_found(id, Opcode::Get),
            }
        }
        Opcode::Set => {
            store.items.insert(
                (req.group.clone(), req.key.clone()),
                (req.value.clone(), req.ttl_ms),
            );
            encode(&Response {
                id,
                opcode: Opcode::Set as u8,
                status: Status::Ok,
                body: ResponseBody::Empty,
            })
        }
        Opcode::Delete => {
            let removed = store
                .items
                .remove(&(req.group.clone(), req.key.clone()))
                .is_some();
            encode(&Response {
                id,
                opcode: Opcode::Delete as u8,
                status: Status::Ok,
                body: ResponseBody::Deleted(removed),
            })
        }
        Opcode::Stats => {
            let raw = StatsList::build(STATS.iter().copied());
            let list = StatsList::parse(&raw).expect("valid stats");
            encode(&Response {
                id,
                opcode: Opcode::Stats as u8,
                status: Status::Ok,
                body: ResponseBody::Stats(list),
            })
        }
        Opcode::Ping => encode(&Response {
            id,
            opcode: Opcode::Ping as u8,
            status: Status::Ok,
            body: ResponseBody::Pong(&req.value),
        }),
        Opcode::Hello => {
            let raw = MemberList::build(MEMBERS);
            let (members, _) = MemberList::parse_prefix(&raw).expect("valid members");
            let ring = groupcached_protocol::Ring::new(MEMBERS, VNODES);
            encode(&Response {
                id,
                opcode: Opcode::Hello as u8,
                status: Status::Ok,
                body: ResponseBody::Hello(HelloInfo {
                    node_id: NODE_ID.as_bytes(),
                    ring_fingerprint: ring.fingerprint(),
                    vnodes: VNODES,
                    members,
                }),
            })
        }
        other => error_response(id, other, Status::UnknownOp, "not a client op"),
    }
}

/// A fake cluster member: accepts any number of connections, serves each in its own
/// thread from one shared [`Store`] (so `gen:` keys work on every member, as any real
/// member can serve any key), records every request, answers HELLO with its own name
/// and a member list the test can change, and can be shut down like a crashed node
/// (listener closed, connections shut down).
pub struct FakeNode {
    pub addr: SocketAddr,
    /// `addr` as a member name (`127.0.0.1:PORT`).
    pub name: String,
    shared: Arc<NodeShared>,
    accept: Option<JoinHandle<()>>,
}

struct NodeShared {
    name: String,
    /// Whether requests are answered; a stalled node reads and records them only.
    answers: bool,
    seen: Mutex<Vec<Req>>,
    accepted: AtomicUsize,
    members: Mutex<(Vec<String>, u32)>,
    store: Mutex<Store>,
    conns: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
    /// While set, the node acts crashed but keeps its port: every new connection is
    /// closed at once and no request is answered.
    crashed: AtomicBool,
}

impl FakeNode {
    /// A member on a fresh port of 127.0.0.1 that answers like [`serve_store`].
    pub fn start() -> FakeNode {
        FakeNode::on(TcpListener::bind("127.0.0.1:0").expect("bind"), true)
    }

    /// A member that accepts connections and reads requests but never answers, as a
    /// hung node does: clients time out.
    pub fn stalled() -> FakeNode {
        FakeNode::on(TcpListener::bind("127.0.0.1:0").expect("bind"), false)
    }

    fn on(listener: TcpListener, answers: bool) -> FakeNode {
        let addr = listener.local_addr().expect("local addr");
        let name = addr.to_string();
        let shared = Arc::new(NodeShared {
            name: name.clone(),
            answers,
            seen: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            members: Mutex::new((vec![name.clone()], VNODES)),
            store: Mutex::new(Store::default()),
            conns: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if s.crashed.load(Ordering::SeqCst) {
                    continue; // dropped: the client reads end-of-stream
                }
                s.accepted.fetch_add(1, Ordering::SeqCst);
                s.conns
                    .lock()
                    .unwrap()
                    .push(stream.try_clone().expect("clone stream"));
                let s = Arc::clone(&s);
                std::thread::spawn(move || s.serve(Peer::new(stream)));
            }
        });
        FakeNode {
            addr,
            name,
            shared,
            accept: Some(accept),
        }
    }

    /// What HELLO answers from now on.
    pub fn set_members(&self, members: &[String], vnodes: u32) {
        *self.shared.members.lock().unwrap() = (members.to_vec(), vnodes);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Req> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The keys of the GET, SET and DELETE requests received so far.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.seen()
            .into_iter()
            .filter(|r| matches!(r.op, Opcode::Get | Opcode::Set | Opcode::Delete))
            .map(|r| r.key)
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Crashes without giving up the port (so a restart cannot lose it to another
    /// socket): open connections are shut down, new ones closed at once, until
    /// [`FakeNode::recover`].
    pub fn crash(&self) {
        self.shared.crashed.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Serves again after [`FakeNode::crash`], like a restarted process.
    pub fn recover(&self) {
        self.shared.crashed.store(false, Ordering::SeqCst);
    }

    /// Stops like a crashed node: the listener is closed (new connections are
    /// refused) and every open connection is shut down (clients read end-of-stream).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then sees `stopping` and drops the listener.
        drop(TcpStream::connect(self.addr));
        accept.join().expect("accept thread");
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop();
    }
}

impl NodeShared {
    fn serve(&self, mut peer: Peer) {
        while let Some(req) = peer.try_read_request() {
            if self.crashed.load(Ordering::SeqCst) {
                return;
            }
            self.seen.lock().unwrap().push(req.clone());
            if !self.answers {
                continue;
            }
            let reply = if req.op == Opcode::Hello {
                let (members, vnodes) = self.members.lock().unwrap().clone();
                hello_response(req.id, &self.name, &members, vnodes)
            } else {
                answer(&mut self.store.lock().unwrap(), &req)
            };
            if peer.stream.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

/// A HELLO answer from `node_id` with the ring of `members` and `vnodes`.
pub fn hello_response(id: u32, node_id: &str, members: &[String], vnodes: u32) -> Vec<u8> {
    let raw = MemberList::build(members);
    let (list, _) = MemberList::parse_prefix(&raw).expect("valid members");
    let ring = groupcached_protocol::Ring::new(members, vnodes);
    encode(&Response {
        id,
        opcode: Opcode::Hello as u8,
        status: Status::Ok,
        body: ResponseBody::Hello(HelloInfo {
            node_id: node_id.as_bytes(),
            ring_fingerprint: ring.fingerprint(),
            vnodes,
            members: list,
        }),
    })
}
