//! Owned responses and the owned result types built from them.
//!
//! The protocol crate's frames borrow from the read buffer, which the next read
//! overwrites; everything a caller keeps is copied here, once.

use std::ops::Deref;
use std::time::Duration;

use groupcached_protocol::{Opcode, Response, ResponseBody, Ring, Status};

use crate::error::{Error, Result};
use crate::stats::Stats;

/// A value read from the cache, with the time it may still be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    data: Vec<u8>,
    ttl: Option<Duration>,
}

impl Value {
    /// A value and its remaining time to live (`None`: no expiry).
    pub fn new(data: Vec<u8>, ttl: Option<Duration>) -> Self {
        Value { data, ttl }
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// How much longer the server may serve this value, or `None` if it never expires.
    /// (A snapshot taken when the server answered.)
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The value's bytes, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl From<Value> for Vec<u8> {
    fn from(v: Value) -> Vec<u8> {
        v.data
    }
}

/// What a server says about itself in answer to HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The server's node id (its advertised `host:port`), lossily decoded as UTF-8.
    pub node_id: String,
    /// Fingerprint of the server's ring; equal fingerprints mean equal rings.
    pub ring_fingerprint: u64,
    /// Virtual nodes per member in the server's ring.
    pub vnodes: u32,
    /// The server's members, from which [`Hello::ring`] rebuilds its ring.
    pub members: Vec<String>,
}

impl Hello {
    /// The server's ring, rebuilt from its member list, so a client can send each key
    /// straight to its owner. Its fingerprint equals [`Hello::ring_fingerprint`]
    /// unless a member's name was not UTF-8.
    pub fn ring(&self) -> Ring {
        Ring::new(&self.members, self.vnodes)
    }
}

/// The body of an [`OwnedResponse`]; which variant comes with which opcode and status
/// is fixed by the protocol (see [`ResponseBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedBody {
    /// No body: SET / INVALIDATE success, and NOT_FOUND.
    Empty,
    /// GET / FETCH success.
    Value(Value),
    /// DELETE success: whether an entry was removed.
    Deleted(bool),
    /// STATS success.
    Stats(Stats),
    /// PING success: the echoed payload.
    Pong(Vec<u8>),
    /// HELLO success.
    Hello(Hello),
    /// CHALLENGE success (peer handshake): the receiver's nonce.
    Nonce(Vec<u8>),
    /// AUTH success (peer handshake): the receiver's proof of the cluster secret.
    Proof(Vec<u8>),
    /// SHARD success: the node's core count and the core now serving the connection.
    Shard {
        /// Cores the node runs (the shard rule's `threads`).
        threads: u16,
        /// The core serving the connection.
        core: u16,
    },
    /// MUTATE success (peer-internal; clients never send MUTATE): the item's flags
    /// and CAS, and the INCR/DECR number or TOUCH value.
    Mutated {
        /// The item's client flags.
        flags: u32,
        /// The item's CAS after the write.
        cas: u64,
        /// INCR/DECR: the new number as decimal text; TOUCH: the value; else empty.
        value: Vec<u8>,
    },
    /// FETCH_ITEM success (peer-internal): the value with the item's flags and CAS.
    Item {
        /// The value and its remaining time to live.
        value: Value,
        /// The item's client flags.
        flags: u32,
        /// The item's CAS at its owner.
        cas: u64,
    },
    /// Any error status: the server's message, lossily decoded as UTF-8.
    Message(String),
}

/// One response frame, copied out of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedResponse {
    /// The id of the request this answers.
    pub id: u32,
    /// The request's opcode, echoed as a raw byte (an `UNKNOWN_OP` answer may echo a
    /// byte that names no [`Opcode`]).
    pub opcode: u8,
    /// The outcome.
    pub status: Status,
    /// The result or the error message.
    pub body: OwnedBody,
}

impl OwnedResponse {
    /// Copies a decoded response.
    pub fn from_response(r: &Response<'_>) -> Self {
        let body = match r.body {
            ResponseBody::Empty => OwnedBody::Empty,
            ResponseBody::Value { ttl_ms, value } => {
                OwnedBody::Value(Value::new(value.to_vec(), ttl_from_ms(ttl_ms)))
            }
            ResponseBody::Deleted(removed) => OwnedBody::Deleted(removed),
            ResponseBody::Stats(list) => OwnedBody::Stats(Stats::from_list(&list)),
            ResponseBody::Pong(p) => OwnedBody::Pong(p.to_vec()),
            ResponseBody::Hello(info) => OwnedBody::Hello(Hello {
                node_id: String::from_utf8_lossy(info.node_id).into_owned(),
                ring_fingerprint: info.ring_fingerprint,
                vnodes: info.vnodes,
                members: info
                    .members
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect(),
            }),
            ResponseBody::Nonce(n) => OwnedBody::Nonce(n.to_vec()),
            ResponseBody::Proof(p) => OwnedBody::Proof(p.to_vec()),
            ResponseBody::Shard { threads, core } => OwnedBody::Shard { threads, core },
            ResponseBody::Mutated { flags, cas, value } => OwnedBody::Mutated {
                flags,
                cas,
                value: value.to_vec(),
            },
            ResponseBody::Item {
                ttl_ms,
                flags,
                cas,
                value,
            } => OwnedBody::Item {
                value: Value::new(value.to_vec(), ttl_from_ms(ttl_ms)),
                flags,
                cas,
            },
            ResponseBody::Message(m) => OwnedBody::Message(String::from_utf8_lossy(m).into_owned()),
        };
        OwnedResponse {
            id: r.id,
            opcode: r.opcode,
            status: r.status,
            body,
        }
    }

    /// The echoed opcode, if it names one.
    pub fn op(&self) -> Option<Opcode> {
        Opcode::try_from(self.opcode).ok()
    }

    /// `Err(Error::Server)` for a status that carries a message (every status but
    /// `OK` and `NOT_FOUND`), the response itself otherwise.
    pub fn into_result(self) -> Result<OwnedResponse> {
        if self.status.carries_message() {
            Err(self.into_server_error())
        } else {
            Ok(self)
        }
    }

    /// The [`Error::Server`] describing this response's status and message.
    pub(crate) fn into_server_error(self) -> Error {
        let message = match self.body {
            OwnedBody::Message(m) => m,
            _ => String::new(),
        };
        Error::Server {
            status: self.status,
            message,
        }
    }

    /// The error for a body that does not fit the opcode and status. The decoder
    /// makes this unreachable for a response whose opcode was checked, but the
    /// server's bytes are never trusted with a panic.
    pub(crate) fn unexpected(&self, what: &str) -> Error {
        Error::Protocol(format!(
            "{what}: unexpected {} response body {:?}",
            self.status, self.body
        ))
    }
}

/// The wire's `ttl_ms` (0 = no expiry) as an optional duration.
pub(crate) fn ttl_from_ms(ttl_ms: u64) -> Option<Duration> {
    (ttl_ms != 0).then(|| Duration::from_millis(ttl_ms))
}

/// A caller's TTL as the wire's `ttl_ms`: `None` is 0 (the group's default), and any
/// given duration is at least 1 ms so that it cannot be mistaken for the default.
pub(crate) fn ttl_to_ms(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::{HelloInfo, MemberList};

    #[test]
    fn ttls_round_trip_with_zero_meaning_default_or_never() {
        assert_eq!(ttl_to_ms(None), 0);
        assert_eq!(ttl_to_ms(Some(Duration::ZERO)), 1);
        assert_eq!(ttl_to_ms(Some(Duration::from_micros(10))), 1);
        assert_eq!(ttl_to_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(ttl_to_ms(Some(Duration::MAX)), u64::MAX);
        assert_eq!(ttl_from_ms(0), None);
        assert_eq!(ttl_from_ms(5), Some(Duration::from_millis(5)));
    }

    #[test]
    fn value_derefs_to_its_bytes() {
        let v = Value::new(b"abc".to_vec(), None);
        assert_eq!(&v[..], b"abc");
        assert_eq!(v.len(), 3);
        assert_eq!(v.as_bytes(), b"abc");
        assert_eq!(v.into_bytes(), b"abc".to_vec());
    }

    #[test]
    fn error_statuses_become_server_errors() {
        let r = OwnedResponse::from_response(&Response::error(
            9,
            Opcode::Get as u8,
            Status::OriginError,
            "origin said 500",
        ));
        match r.into_result() {
            Err(Error::Server { status, message }) => {
                assert_eq!(status, Status::OriginError);
                assert_eq!(message, "origin said 500");
            }
            other => panic!("{other:?}"),
        }
        let nf = OwnedResponse {
            id: 1,
            opcode: Opcode::Get as u8,
            status: Status::NotFound,
            body: OwnedBody::Empty,
        };
        assert!(nf.into_result().is_ok());
    }

    #[test]
    fn hello_is_copied_and_rebuilds_the_ring() {
        let members = MemberList::build(&["a:1", "b:2"]);
        let (list, _) = MemberList::parse_prefix(&members).expect("valid list");
        let ring = Ring::new(&["a:1", "b:2"], 16);
        let r = Response {
            id: 1,
            opcode: Opcode::Hello as u8,
            status: Status::Ok,
            body: ResponseBody::Hello(HelloInfo {
                node_id: b"a:1",
                ring_fingerprint: ring.fingerprint(),
                vnodes: 16,
                members: list,
            }),
        };
        let OwnedBody::Hello(h) = OwnedResponse::from_response(&r).body else {
            panic!("not a hello body");
        };
        assert_eq!(h.node_id, "a:1");
        assert_eq!(h.members, vec!["a:1", "b:2"]);
        assert_eq!(h.ring().fingerprint(), h.ring_fingerprint);
    }
}
