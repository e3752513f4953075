//! Frame types. Byte fields borrow from the buffer a frame was decoded from.

use byteorder::{BigEndian, ByteOrder};

use crate::mutate::MutateMode;
use crate::opcode::{Opcode, Status};

/// A group name and a key: the address of a cached item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRef<'a> {
    /// Group name, 1..=[`crate::MAX_GROUP_LEN`] bytes.
    pub group: &'a [u8],
    /// Key, 1..=[`crate::MAX_KEY_LEN`] bytes; any bytes, not necessarily UTF-8.
    pub key: &'a [u8],
}

impl<'a> KeyRef<'a> {
    /// A key in a group.
    pub fn new(group: &'a [u8], key: &'a [u8]) -> Self {
        KeyRef { group, key }
    }
}

/// What a request asks for, with its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind<'a> {
    /// Read a key.
    Get(KeyRef<'a>),
    /// Store `value` under a key. `ttl_ms == 0` means the group's default TTL
    /// (which may be "never expires").
    Set {
        /// Where to store it.
        key: KeyRef<'a>,
        /// Time to live in milliseconds; 0 = the group's default.
        ttl_ms: u64,
        /// The value.
        value: &'a [u8],
    },
    /// Remove a key.
    Delete(KeyRef<'a>),
    /// Read the server's counters.
    Stats,
    /// Liveness check; `payload` is echoed back.
    Ping(&'a [u8]),
    /// Introduce the sender.
    Hello {
        /// The sender's node id (its advertised address, or a client name).
        node_id: &'a [u8],
        /// The sender's ring fingerprint (0 for a client without a ring).
        ring_fingerprint: u64,
    },
    /// Peer-internal read; never forwarded again.
    Fetch(KeyRef<'a>),
    /// Peer-internal hot-cache drop.
    Invalidate(KeyRef<'a>),
    /// Peer-internal SET, never forwarded; same fields as [`RequestKind::Set`].
    Store {
        /// Where to store it.
        key: KeyRef<'a>,
        /// Time to live in milliseconds; 0 = the group's default.
        ttl_ms: u64,
        /// The value.
        value: &'a [u8],
    },
    /// Peer-internal DELETE, never forwarded.
    Purge(KeyRef<'a>),
    /// Peer handshake: the sender's nonce, exactly [`crate::NONCE_LEN`] bytes.
    Challenge {
        /// The sender's fresh random nonce.
        nonce: &'a [u8],
    },
    /// Peer handshake: the sender's proof of the cluster secret, exactly
    /// [`crate::PROOF_LEN`] bytes.
    Auth {
        /// HMAC-SHA256 over the handshake (docs/protocol.md says over what).
        proof: &'a [u8],
    },
    /// Serve this connection on core `core` from now on ([`SHARD_QUERY`]: stay, and
    /// just say how many cores there are).
    Shard {
        /// The wanted core, `0..threads`, or [`SHARD_QUERY`].
        core: u16,
    },
    /// Peer-internal owner-side write (memcached `set` with flags, `add`, `replace`,
    /// `append`, `prepend`, `cas`, `incr`, `decr`, `touch`), never forwarded: the
    /// owner applies it alone, so its condition and its write are atomic.
    Mutate {
        /// The item written.
        key: KeyRef<'a>,
        /// Which write.
        mode: MutateMode,
        /// Client flags to store (SET, ADD, REPLACE, CAS, and an item VIVIFY
        /// creates); the other modes keep the item's.
        flags: u32,
        /// Milliseconds to live; 0 = the group's default; [`crate::KEEP_TTL`] = keep
        /// the item's current expiry.
        ttl_ms: u64,
        /// The CAS the item must still have (CAS mode); 0 otherwise.
        cas: u64,
        /// The INCR/DECR amount; 0 otherwise.
        delta: u64,
        /// The value (SET, ADD, REPLACE, CAS), the bytes to add (APPEND, PREPEND) or
        /// the initial decimal number (INCR/DECR with VIVIFY); empty otherwise.
        value: &'a [u8],
    },
    /// Peer-internal FETCH answered with the item's flags and CAS as well, so that
    /// hot copies keep the owner's metadata; never forwarded.
    FetchItem(KeyRef<'a>),
    /// Peer-internal: drop every item of `group` on the receiver.
    Flush {
        /// The group name, 1..=[`crate::MAX_GROUP_LEN`] bytes.
        group: &'a [u8],
    },
}

/// The SHARD request's `core` that moves nothing: the answer only tells the node's
/// core count and the core serving the connection.
pub const SHARD_QUERY: u16 = u16::MAX;

impl<'a> RequestKind<'a> {
    /// The key reference of a keyed request (GET, SET, DELETE and the peer-internal
    /// FETCH, INVALIDATE, STORE, PURGE, MUTATE, FETCH_ITEM); `None` for STATS, PING,
    /// HELLO, FLUSH (a whole group) and the rest.
    pub fn key_ref(&self) -> Option<KeyRef<'a>> {
        match *self {
            RequestKind::Get(k)
            | RequestKind::Delete(k)
            | RequestKind::Fetch(k)
            | RequestKind::Invalidate(k)
            | RequestKind::Purge(k)
            | RequestKind::FetchItem(k)
            | RequestKind::Set { key: k, .. }
            | RequestKind::Store { key: k, .. }
            | RequestKind::Mutate { key: k, .. } => Some(k),
            _ => None,
        }
    }

    /// The opcode of this request.
    pub fn opcode(&self) -> Opcode {
        match self {
            RequestKind::Get(_) => Opcode::Get,
            RequestKind::Set { .. } => Opcode::Set,
            RequestKind::Delete(_) => Opcode::Delete,
            RequestKind::Stats => Opcode::Stats,
            RequestKind::Ping(_) => Opcode::Ping,
            RequestKind::Hello { .. } => Opcode::Hello,
            RequestKind::Fetch(_) => Opcode::Fetch,
            RequestKind::Invalidate(_) => Opcode::Invalidate,
            RequestKind::Store { .. } => Opcode::Store,
            RequestKind::Purge(_) => Opcode::Purge,
            RequestKind::Challenge { .. } => Opcode::Challenge,
            RequestKind::Auth { .. } => Opcode::Auth,
            RequestKind::Shard { .. } => Opcode::Shard,
            RequestKind::Mutate { .. } => Opcode::Mutate,
            RequestKind::FetchItem(_) => Opcode::FetchItem,
            RequestKind::Flush { .. } => Opcode::Flush,
        }
    }
}

/// A request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Chosen by the sender; the response carries the same id.
    pub id: u32,
    /// The operation and its fields.
    pub kind: RequestKind<'a>,
}

/// The body of a response; which variant is legal depends on opcode and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody<'a> {
    /// No body (SET, STORE, INVALIDATE and FLUSH success, NOT_FOUND).
    Empty,
    /// GET / FETCH success: the value and its remaining time to live.
    Value {
        /// Milliseconds the value may still be served; 0 = no expiry.
        ttl_ms: u64,
        /// The value.
        value: &'a [u8],
    },
    /// DELETE / PURGE success: whether an entry was actually removed at the owner.
    Deleted(bool),
    /// STATS success.
    Stats(StatsList<'a>),
    /// PING success: the echoed payload.
    Pong(&'a [u8]),
    /// SHARD success: the node's cores and the one now serving the connection.
    Shard {
        /// Cores (event-loop threads) the node runs: the `threads` of the shard rule.
        threads: u16,
        /// The core serving this connection from the frame after the SHARD on.
        core: u16,
    },
    /// HELLO success.
    Hello(HelloInfo<'a>),
    /// MUTATE success: the item's flags and CAS after the write, and for INCR/DECR
    /// the new number as decimal text, for TOUCH the item's value (empty otherwise).
    Mutated {
        /// The item's client flags.
        flags: u32,
        /// The item's CAS after the write (what a later CAS mode must send).
        cas: u64,
        /// INCR/DECR: the new number; TOUCH: the value; other modes: empty.
        value: &'a [u8],
    },
    /// FETCH_ITEM success: a FETCH answer with the item's flags and CAS.
    Item {
        /// Milliseconds the value may still be served; 0 = no expiry.
        ttl_ms: u64,
        /// The item's client flags.
        flags: u32,
        /// The item's CAS at its owner.
        cas: u64,
        /// The value.
        value: &'a [u8],
    },
    /// CHALLENGE success: the receiver's nonce, exactly [`crate::NONCE_LEN`] bytes.
    Nonce(&'a [u8]),
    /// AUTH success: the receiver's proof, exactly [`crate::PROOF_LEN`] bytes.
    Proof(&'a [u8]),
    /// Any status that carries a message (see [`Status::carries_message`]).
    Message(&'a [u8]),
}

/// A response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// The id of the request this answers.
    pub id: u32,
    /// The opcode of the request, echoed as a raw byte (an UNKNOWN_OP answer echoes
    /// an opcode this crate has no name for).
    pub opcode: u8,
    /// The outcome.
    pub status: Status,
    /// The result or the error message.
    pub body: ResponseBody<'a>,
}

impl<'a> Response<'a> {
    /// An error response with a message. `status` must carry a message.
    pub fn error(id: u32, opcode: u8, status: Status, message: &'a str) -> Self {
        debug_assert!(status.carries_message());
        Response {
            id,
            opcode,
            status,
            body: ResponseBody::Message(message.as_bytes()),
        }
    }

    /// The error message, if this response carries one.
    pub fn message(&self) -> Option<&'a [u8]> {
        match self.body {
            ResponseBody::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// Any frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A request (flag bit 0 clear).
    Request(Request<'a>),
    /// A response (flag bit 0 set).
    Response(Response<'a>),
}

impl Frame<'_> {
    /// The request id of the frame.
    pub fn id(&self) -> u32 {
        match self {
            Frame::Request(r) => r.id,
            Frame::Response(r) => r.id,
        }
    }
}

/// The body of a STATS response: named `u64` counters, validated at decode time.
///
/// Wire layout: `count: u32`, then `count` times `name_len: u8, name, value: u64`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatsList<'a> {
    raw: &'a [u8],
}

impl<'a> StatsList<'a> {
    /// Encodes counters into the wire layout. Names longer than 255 bytes are cut.
    pub fn build<'n, I>(entries: I) -> Vec<u8>
    where
        I: IntoIterator<Item = (&'n str, u64)>,
    {
        let mut out = vec![0u8; 4];
        let mut count = 0u32;
        for (name, value) in entries {
            let name = &name.as_bytes()[..name.len().min(255)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&value.to_be_bytes());
            count += 1;
        }
        BigEndian::write_u32(&mut out[0..4], count);
        out
    }

    /// Wraps and validates bytes in the wire layout.
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        if raw.len() < 4 {
            return None;
        }
        let count = BigEndian::read_u32(&raw[0..4]) as usize;
        let mut pos = 4;
        for _ in 0..count {
            let n = *raw.get(pos)? as usize;
            pos += 1 + n + 8;
            if pos > raw.len() {
                return None;
            }
        }
        (pos == raw.len()).then_some(StatsList { raw })
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of counters.
    pub fn len(&self) -> usize {
        BigEndian::read_u32(&self.raw[0..4]) as usize
    }

    /// Whether there are no counters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters in wire order. Names are bytes as sent (UTF-8 from this server).
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], u64)> + 'a {
        let raw = self.raw;
        let mut pos = 4;
        (0..self.len()).map(move |_| {
            let n = raw[pos] as usize;
            let name = &raw[pos + 1..pos + 1 + n];
            let value = BigEndian::read_u64(&raw[pos + 1 + n..pos + 9 + n]);
            pos += 9 + n;
            (name, value)
        })
    }
}

impl std::fmt::Debug for StatsList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

/// A list of members (`host:port` strings), validated at decode time.
///
/// Wire layout: `count: u16`, then `count` times `len: u16, bytes`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MemberList<'a> {
    raw: &'a [u8],
}

impl<'a> MemberList<'a> {
    /// Encodes members into the wire layout. Lists and names over `u16::MAX` are cut.
    pub fn build<S: AsRef<str>>(members: &[S]) -> Vec<u8> {
        let mut out = Vec::new();
        let count = members.len().min(u16::MAX as usize);
        out.extend_from_slice(&(count as u16).to_be_bytes());
        for m in &members[..count] {
            let m = m.as_ref().as_bytes();
            let m = &m[..m.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    /// Wraps and validates bytes in the wire layout; returns the list and the bytes it used.
    pub fn parse_prefix(raw: &'a [u8]) -> Option<(Self, usize)> {
        if raw.len() < 2 {
            return None;
        }
        let count = BigEndian::read_u16(&raw[0..2]) as usize;
        let mut pos = 2;
        for _ in 0..count {
            if pos + 2 > raw.len() {
                return None;
            }
            let n = BigEndian::read_u16(&raw[pos..pos + 2]) as usize;
            pos += 2 + n;
            if pos > raw.len() {
                return None;
            }
        }
        Some((MemberList { raw: &raw[..pos] }, pos))
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        BigEndian::read_u16(&self.raw[0..2]) as usize
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let raw = self.raw;
        let mut pos = 2;
        (0..self.len()).map(move |_| {
            let n = BigEndian::read_u16(&raw[pos..pos + 2]) as usize;
            let m = &raw[pos + 2..pos + 2 + n];
            pos += 2 + n;
            m
        })
    }
}

impl std::fmt::Debug for MemberList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// The body of a HELLO response: who the server is and how it computes its ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloInfo<'a> {
    /// The server's node id (its advertised `host:port`).
    pub node_id: &'a [u8],
    /// Fingerprint of the server's ring (see [`crate::Ring::fingerprint`]).
    pub ring_fingerprint: u64,
    /// Virtual nodes per member in the server's ring.
    pub vnodes: u32,
    /// The server's current members, from which a client can build the same ring.
    pub members: MemberList<'a>,
}
