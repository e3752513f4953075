//! What the echo answers: a pure function of one decoded frame (no socket, no
//! state), so every answer is checked byte for byte by the unit tests below.

use groupcached_protocol::{
    EncodedStats, FrameError, Request, RequestKind, Response, ResponseBody, StatsList, Status,
    SHARD_QUERY,
};

/// The answers of one event-loop thread: the fixed GET value, the (empty) STATS
/// body, and which core of how many this thread is, for SHARD.
#[derive(Debug, Clone)]
pub struct Answers {
    value: Vec<u8>,
    stats: EncodedStats,
    threads: u16,
    core: u16,
}

impl Answers {
    /// Answers with a `value_size`-byte GET value, for thread `core` of `threads`.
    pub fn new(value_size: usize, threads: u16, core: u16) -> Self {
        Answers {
            // Not all one byte, so a value that got shifted in a stream would show.
            value: (0..value_size).map(|i| b'a' + (i % 26) as u8).collect(),
            // No counters: the echo has no cache, so it claims no cache hits. The
            // generator then reports its served-from-cache ratio as not known.
            stats: StatsList::encode(std::iter::empty()),
            threads,
            core,
        }
    }

    /// Appends the answer to `req`: GET a fixed value (ttl 0), SET OK, SHARD this
    /// thread's place, STATS an empty counter list, anything else `UNKNOWN_OP`.
    pub fn request(&self, req: &Request<'_>, out: &mut Vec<u8>) {
        let opcode = req.kind.opcode() as u8;
        let ok = |body| Response {
            id: req.id,
            opcode,
            status: Status::Ok,
            body,
        };
        match req.kind {
            RequestKind::Get(_) => ok(ResponseBody::Value {
                ttl_ms: 0,
                value: &self.value,
            })
            .encode(out),
            RequestKind::Set { .. } => ok(ResponseBody::Empty).encode(out),
            RequestKind::Stats => ok(ResponseBody::Stats(self.stats.list())).encode(out),
            RequestKind::Shard { core } if core == SHARD_QUERY || core == self.core => {
                ok(ResponseBody::Shard {
                    threads: self.threads,
                    core: self.core,
                })
                .encode(out)
            }
            RequestKind::Shard { core } => {
                // Connections stay on the thread that accepted them: a client asking
                // for another core keeps its connection where it is (the generator
                // and the client read BAD_REQUEST so).
                let message = format!(
                    "SHARD to core {core}: groupcached-echo does not move connections \
                     (this one stays on core {} of {})",
                    self.core, self.threads
                );
                Response::error(req.id, opcode, Status::BadRequest, &message).encode(out)
            }
            _ => {
                let message = format!(
                    "groupcached-echo answers GET, SET, SHARD and STATS only, not {}",
                    req.kind.opcode()
                );
                Response::error(req.id, opcode, Status::UnknownOp, &message).encode(out)
            }
        }
    }

    /// Appends the answer to a frame the decoder refused (the status the protocol
    /// prescribes for its error, with the request id and opcode its header gave).
    pub fn refuse(&self, e: &FrameError, out: &mut Vec<u8>) {
        let message = e.error.to_string();
        Response::error(e.request_id, e.opcode, e.error.status(), &message).encode(out)
    }

    /// Appends the answer to a response frame sent as if it were a request.
    pub fn not_a_request(&self, resp: &Response<'_>, out: &mut Vec<u8>) {
        Response::error(
            resp.id,
            resp.opcode,
            Status::BadRequest,
            "expected a request frame, got a response",
        )
        .encode(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::{decode, Frame, KeyRef, Limits};

    fn answer(a: &Answers, kind: RequestKind<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        a.request(&Request { id: 42, kind }, &mut out);
        out
    }

    fn response(bytes: &[u8]) -> Response<'_> {
        match decode(bytes, &Limits::default()) {
            Ok(Some((Frame::Response(r), used))) => {
                assert_eq!(used, bytes.len(), "one whole frame");
                r
            }
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn get_is_a_fixed_value_with_ttl_0_and_the_request_id() {
        let a = Answers::new(100, 1, 0);
        let key = KeyRef::new(b"default", b"key:00000001");
        let out = answer(&a, RequestKind::Get(key));
        let r = response(&out);
        assert_eq!((r.id, r.opcode, r.status), (42, 0x01, Status::Ok));
        match r.body {
            ResponseBody::Value { ttl_ms, value } => {
                assert_eq!(ttl_ms, 0);
                assert_eq!(value.len(), 100);
                assert_eq!(&value[..3], b"abc");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.len(), 12 + 8 + 100);
        let empty = Answers::new(0, 1, 0);
        let out = answer(&empty, RequestKind::Get(key));
        assert!(matches!(
            response(&out).body,
            ResponseBody::Value { value, .. } if value.is_empty()
        ));
    }

    #[test]
    fn set_is_ok_and_stats_an_empty_list() {
        let a = Answers::new(10, 1, 0);
        let key = KeyRef::new(b"g", b"k");
        let out = answer(
            &a,
            RequestKind::Set {
                key,
                ttl_ms: 5,
                value: b"v",
            },
        );
        let r = response(&out);
        assert_eq!((r.id, r.opcode, r.status), (42, 0x02, Status::Ok));
        assert_eq!(r.body, ResponseBody::Empty);

        let out = answer(&a, RequestKind::Stats);
        let r = response(&out);
        assert_eq!((r.opcode, r.status), (0x04, Status::Ok));
        match r.body {
            ResponseBody::Stats(list) => assert!(list.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shard_tells_the_thread_and_moves_nothing() {
        let a = Answers::new(10, 3, 1);
        for core in [SHARD_QUERY, 1] {
            let out = answer(&a, RequestKind::Shard { core });
            let r = response(&out);
            assert_eq!(r.status, Status::Ok, "core {core}");
            assert_eq!(
                r.body,
                ResponseBody::Shard {
                    threads: 3,
                    core: 1
                }
            );
        }
        let out = answer(&a, RequestKind::Shard { core: 2 });
        let r = response(&out);
        assert_eq!((r.opcode, r.status), (0x0d, Status::BadRequest));
    }

    #[test]
    fn anything_else_is_unknown_op() {
        let a = Answers::new(10, 1, 0);
        let key = KeyRef::new(b"g", b"k");
        for kind in [RequestKind::Delete(key), RequestKind::Ping(b"x")] {
            let out = answer(&a, kind);
            let r = response(&out);
            assert_eq!(r.id, 42);
            assert_eq!(r.opcode, kind.opcode() as u8);
            assert_eq!(r.status, Status::UnknownOp);
            assert!(r.message().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn refused_frames_get_the_status_of_their_error() {
        let a = Answers::new(10, 1, 0);
        // A GET header declaring 2 MiB, over a 1 MiB limit.
        let mut bytes = (2u32 << 20).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 0x01, 0, 0, 0, 0, 0, 7]);
        let e = match decode(&bytes, &Limits::with_max_frame(1 << 20)) {
            Err(e) => e,
            other => panic!("{other:?}"),
        };
        let mut out = Vec::new();
        a.refuse(&e, &mut out);
        let r = response(&out);
        assert_eq!((r.id, r.opcode, r.status), (7, 0x01, Status::TooLarge));
    }
}
