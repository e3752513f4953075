//! groupcached's binary protocol, through the protocol crate's encoder and
//! [`FrameBuffer`], so the generator cannot disagree with the server about a byte.

use groupcached_protocol::{
    Frame, FrameBuffer, KeyRef, Limits, Opcode, Request, RequestKind, ResponseBody, Status,
};

use std::io::{self, Read, Write};

use super::{Outcome, ProtoError, Reply, MAX_VALUE};
use crate::workload::Op;

/// Asks the server to serve `stream` on core `core` (SHARD, docs/protocol.md), on a
/// blocking stream with nothing else in flight, and waits for the answer. `Ok(true)`:
/// moved; `Ok(false)`: the server refused (`UNKNOWN_OP` from a server that predates
/// SHARD, `BAD_REQUEST` from one that runs fewer cores now), and the connection goes
/// on where it is. Nothing but the answer is read, so the stream is ready for the
/// load afterwards.
pub fn shard_handshake(stream: &mut std::net::TcpStream, core: u16) -> io::Result<bool> {
    let mut out = Vec::with_capacity(16);
    Request {
        id: 1,
        kind: RequestKind::Shard { core },
    }
    .encode(&mut out);
    stream.write_all(&out)?;
    let mut frames = FrameBuffer::new(Limits::default(), 256);
    loop {
        match frames.next_frame() {
            Ok(Some(Frame::Response(r))) => {
                return match (r.status, r.body) {
                    (Status::Ok, ResponseBody::Shard { core: now, .. }) if now == core => Ok(true),
                    (Status::UnknownOp | Status::BadRequest, _) => Ok(false),
                    (status, body) => Err(io::Error::other(format!(
                        "SHARD to core {core} answered {status} {body:?}"
                    ))),
                };
            }
            Ok(Some(Frame::Request(_))) => {
                return Err(io::Error::other("the server sent a request frame"))
            }
            Ok(None) => {}
            Err(e) => return Err(io::Error::other(format!("SHARD answer: {e}"))),
        }
        let n = stream.read(frames.read_space())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering SHARD",
            ));
        }
        frames.commit(n);
    }
}

/// Appends a GET or SET frame with request id `id` (SETs keep the group's default TTL).
pub fn encode(out: &mut Vec<u8>, op: Op, id: u32, group: &[u8], key: &[u8], value: &[u8]) {
    let key = KeyRef::new(group, key);
    let kind = match op {
        Op::Get => RequestKind::Get(key),
        Op::Set => RequestKind::Set {
            key,
            ttl_ms: 0,
            value,
        },
    };
    Request { id, kind }.encode(out);
}

/// Incremental parser of response frames.
#[derive(Debug)]
pub struct Parser {
    frames: FrameBuffer,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// An empty parser accepting frames up to [`MAX_VALUE`] plus headers.
    pub fn new() -> Self {
        Parser {
            frames: FrameBuffer::new(Limits::with_max_frame(MAX_VALUE + 64 * 1024), 64 * 1024),
        }
    }

    /// Free space to read into.
    pub fn read_space(&mut self) -> &mut [u8] {
        self.frames.read_space()
    }

    /// Records `n` bytes read.
    pub fn commit(&mut self, n: usize) {
        self.frames.commit(n)
    }

    /// The next response, `Ok(None)` if more bytes are needed. A frame the decoder
    /// refuses but can skip (over the size limit, unknown status) becomes a failed
    /// reply for its request id; one it cannot skip ends the stream.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtoError> {
        match self.frames.next_frame() {
            Ok(None) => Ok(None),
            Ok(Some(Frame::Request(_))) => Err(ProtoError::UnexpectedRequest),
            Ok(Some(Frame::Response(r))) => {
                let op = match Opcode::try_from(r.opcode) {
                    Ok(Opcode::Get) => Some(Op::Get),
                    Ok(Opcode::Set) => Some(Op::Set),
                    _ => None,
                };
                let outcome = match (r.status, r.body) {
                    (Status::Ok, ResponseBody::Value { value, .. }) => Outcome::Hit(value.len()),
                    (Status::Ok, _) => Outcome::Stored,
                    (Status::NotFound, _) => Outcome::Miss,
                    (status, _) => Outcome::Failed(status.name()),
                };
                Ok(Some(Reply {
                    id: Some(r.id),
                    op,
                    outcome,
                }))
            }
            Err(e) if e.skip.is_some() && !e.error.is_fatal() => Ok(Some(Reply {
                id: Some(e.request_id),
                op: None,
                outcome: Outcome::Failed("undecodable_response"),
            })),
            Err(e) => Err(ProtoError::Frame(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::check_every_split;
    use super::super::Protocol;
    use super::*;
    use groupcached_protocol::Response;

    fn response(id: u32, opcode: Opcode, status: Status, body: ResponseBody<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        Response {
            id,
            opcode: opcode as u8,
            status,
            body,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn encodes_what_the_protocol_crate_decodes() {
        let mut out = Vec::new();
        encode(&mut out, Op::Get, 7, b"g", b"key:1", b"");
        encode(&mut out, Op::Set, 8, b"g", b"key:2", b"value");
        let mut fb = FrameBuffer::new(Limits::default(), 0);
        fb.extend_from_slice(&out);
        match fb.next_frame() {
            Ok(Some(Frame::Request(r))) => {
                assert_eq!(r.id, 7);
                assert_eq!(r.kind, RequestKind::Get(KeyRef::new(b"g", b"key:1")));
            }
            other => panic!("{other:?}"),
        }
        match fb.next_frame() {
            Ok(Some(Frame::Request(r))) => {
                assert_eq!(r.id, 8);
                assert_eq!(
                    r.kind,
                    RequestKind::Set {
                        key: KeyRef::new(b"g", b"key:2"),
                        ttl_ms: 0,
                        value: b"value"
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_hits_misses_stores_and_errors_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend(response(
            3,
            Opcode::Get,
            Status::Ok,
            ResponseBody::Value {
                ttl_ms: 0,
                value: &[b'v'; 100],
            },
        ));
        stream.extend(response(
            1,
            Opcode::Get,
            Status::NotFound,
            ResponseBody::Empty,
        ));
        stream.extend(response(2, Opcode::Set, Status::Ok, ResponseBody::Empty));
        stream.extend(response(
            9,
            Opcode::Get,
            Status::Timeout,
            ResponseBody::Message(b"load timed out"),
        ));
        let want = [
            Reply {
                id: Some(3),
                op: Some(Op::Get),
                outcome: Outcome::Hit(100),
            },
            Reply {
                id: Some(1),
                op: Some(Op::Get),
                outcome: Outcome::Miss,
            },
            Reply {
                id: Some(2),
                op: Some(Op::Set),
                outcome: Outcome::Stored,
            },
            Reply {
                id: Some(9),
                op: Some(Op::Get),
                outcome: Outcome::Failed("TIMEOUT"),
            },
        ];
        check_every_split(Protocol::Groupcached, &stream, &want);
    }

    #[test]
    fn a_request_frame_or_garbage_ends_the_stream() {
        let mut p = Parser::new();
        let mut req = Vec::new();
        encode(&mut req, Op::Get, 1, b"g", b"k", b"");
        let space = p.read_space();
        space[..req.len()].copy_from_slice(&req);
        p.commit(req.len());
        assert_eq!(p.next_reply(), Err(ProtoError::UnexpectedRequest));

        let mut p = Parser::new();
        // A plausible length, then protocol version 9: framing cannot be trusted.
        let garbage = [0u8, 0, 0, 8, 9, 1, 1, 0, 0, 0, 0, 1];
        p.read_space()[..garbage.len()].copy_from_slice(&garbage);
        p.commit(garbage.len());
        assert!(matches!(p.next_reply(), Err(ProtoError::Frame(_))));
    }
}
