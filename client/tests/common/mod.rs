//! A fake groupcached server for the client's tests: a std::net listener on an
//! ephemeral port, in a thread, that decodes requests with the protocol crate and
//! answers what each test scripts. No sleeps: tests synchronise on the protocol itself
//! and on channels.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::Sender;
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
            | RequestKind::Purge(k) => {
                req.group = k.group.to_vec();
                req.key = k.key.to_vec();
            }
            RequestKind::Set { key, ttl_ms, value } | RequestKind::Store { key, ttl_ms, value } => {
                req.group = key.group.to_vec();
                req.key = key.key.to_vec();
                req.ttl_ms = ttl_ms;
                req.value = value.to_vec();
            }
            RequestKind::Ping(p) => req.value = p.to_vec(),
            RequestKind::Stats | RequestKind::Hello { .. } => {}
        }
        req
    }
}

/// One accepted connection, server side.
pub struct Peer {
    pub stream: TcpStream,
    buf: FrameBuffer,
}

impl Peer {
    pub fn accept(l: &TcpListener) -> Peer {
        let (stream, _) = l.accept().expect("accept");
        stream
            .set_read_timeout(Some(SERVER_PATIENCE))
            .expect("read timeout");
        Peer {
            stream,
            buf: FrameBuffer::new(Limits::default(), 0),
        }
    }

    /// The next request, or `None` when the client closed the connection.
    pub fn read_request(&mut self) -> Option<Req> {
        loop {
            match self.buf.next_frame() {
                Ok(Some(Frame::Request(r))) => return Some(Req::from_request(&r)),
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
