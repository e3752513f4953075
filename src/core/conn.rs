//! A client or peer connection: read buffer, pending-request count and an output
//! queue that sends large values by reference with vectored writes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use groupcached_protocol::{FrameBuffer, Limits, Request, Response};
use mio::net::TcpStream;

use crate::value::ByteView;

/// Values up to this size are copied into the output buffer; larger ones are queued
/// by reference and written straight from the cache's buffer.
const COPY_THRESHOLD: usize = 2048;
/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// A buffer chunk is closed at this size so written chunks can be freed early.
const CHUNK_SIZE: usize = 64 * 1024;
/// Above this many queued output bytes the connection stops reading requests until
/// the client reads: a client that never reads costs bounded memory.
pub const HIGH_WATER_BYTES: usize = 4 << 20;
/// Above this many unanswered requests the connection stops reading too.
pub const MAX_PENDING: usize = 4096;

enum Chunk {
    Buf(Vec<u8>),
    Val(ByteView),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Buf(b) => b,
            Chunk::Val(v) => v,
        }
    }
}

/// Bytes waiting to be written, in order.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_pos: usize,
    bytes: usize,
    spare: Vec<Vec<u8>>,
}

/// What a write attempt left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything was written.
    All,
    /// The socket is full; wait for a writable event.
    Blocked,
}

impl OutQueue {
    /// Queues a response. `value` is the `ByteView` behind a GET/FETCH response's
    /// value, so a large one is sent without copying.
    pub fn push_response(&mut self, resp: &Response<'_>, value: Option<&ByteView>) {
        self.push_frame(|buf| resp.encode_head(buf), value);
    }

    /// Queues a request. `value` is the `ByteView` behind a STORE's value, so a large
    /// one is forwarded without copying.
    pub fn push_request(&mut self, req: &Request<'_>, value: Option<&ByteView>) {
        self.push_frame(|buf| req.encode_head(buf), value);
    }

    /// Encodes a frame's head into the tail buffer; its trailing bytes are copied
    /// when small, or queued by reference when they are `value` and large.
    fn push_frame<'a>(
        &mut self,
        encode_head: impl FnOnce(&mut Vec<u8>) -> &'a [u8],
        value: Option<&ByteView>,
    ) {
        let buf = self.tail_buf();
        let start = buf.len();
        let tail = encode_head(buf);
        match value {
            Some(v) if tail.len() > COPY_THRESHOLD => {
                let head = buf.len() - start;
                self.bytes += head + v.len();
                self.chunks.push_back(Chunk::Val(v.clone()));
            }
            _ => {
                buf.extend_from_slice(tail);
                self.bytes += buf.len() - start;
            }
        }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Writes until done or the socket would block.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        while self.bytes > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            for (i, c) in self.chunks.iter().enumerate().take(MAX_IOVECS) {
                let b = c.bytes();
                let b = if i == 0 { &b[self.front_pos..] } else { b };
                if !b.is_empty() {
                    slices[n] = IoSlice::new(b);
                    n += 1;
                }
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_pos;
            if n < left {
                self.front_pos += n;
                return;
            }
            n -= left;
            self.front_pos = 0;
            if let Some(Chunk::Buf(mut b)) = self.chunks.pop_front() {
                if self.spare.len() < 4 && b.capacity() <= 4 * CHUNK_SIZE {
                    b.clear();
                    self.spare.push(b);
                }
            }
        }
    }

    fn tail_buf(&mut self) -> &mut Vec<u8> {
        let need_new = !matches!(self.chunks.back(), Some(Chunk::Buf(b)) if b.len() < CHUNK_SIZE);
        if need_new {
            let b = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(4096));
            self.chunks.push_back(Chunk::Buf(b));
        }
        match self.chunks.back_mut() {
            Some(Chunk::Buf(b)) => b,
            _ => unreachable!("a buffer chunk was just ensured at the back"),
        }
    }
}

/// One accepted connection.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet decoded.
    pub rbuf: FrameBuffer,
    /// Responses not yet written.
    pub out: OutQueue,
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub gen: u32,
    /// Requests read and not yet answered.
    pub pending: usize,
    /// The client closed its sending side (or we stopped reading for good).
    pub read_closed: bool,
    /// Close once the output queue is written (after a fatal protocol error).
    pub closing: bool,
    /// Reading is paused by backpressure; resume when the output drains.
    pub read_paused: bool,
    /// Queued in the core's list of connections to flush this turn.
    pub dirty: bool,
    /// Whether the other end may use peer operations (FETCH, STORE, PURGE,
    /// INVALIDATE): the node id its HELLO claimed, and the ring under which that id
    /// was last found among our members.
    pub member: MemberClaim,
}

/// The membership a connection claimed in HELLO. Checked again whenever the ring has
/// changed since, so a member that said HELLO before we knew it is accepted once our
/// list has it, and one that left loses its peer rights.
#[derive(Debug, Default)]
pub struct MemberClaim {
    /// The node id of a HELLO that spoke as a member (sent a ring fingerprint).
    pub id: Option<Box<[u8]>>,
    /// Fingerprint of the ring that has `id` among its members; 0 = not confirmed.
    pub confirmed_under: u64,
    /// The cluster-secret handshake for `id` (see `peer::auth`).
    pub auth: crate::peer::auth::AuthState,
}

impl Conn {
    /// A new connection decoding under `limits`.
    pub fn new(stream: TcpStream, limits: Limits, gen: u32) -> Self {
        Conn {
            stream,
            rbuf: FrameBuffer::new(limits, 16 * 1024),
            out: OutQueue::default(),
            gen,
            pending: 0,
            read_closed: false,
            member: MemberClaim::default(),
            closing: false,
            read_paused: false,
            dirty: false,
        }
    }

    /// Whether reading should pause until the client catches up.
    pub fn backpressured(&self) -> bool {
        self.out.len() > HIGH_WATER_BYTES || self.pending > MAX_PENDING
    }

    /// Whether the connection has nothing left to do and can be closed.
    pub fn finished(&self) -> bool {
        (self.read_closed || self.closing) && self.pending == 0 && self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::{decode, Frame, ResponseBody, Status};

    /// A writer that accepts at most `cap` bytes per call and then blocks once.
    struct Trickle {
        data: Vec<u8>,
        cap: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let mut left = self.cap;
            for b in bufs {
                let n = left.min(b.len());
                self.data.extend_from_slice(&b[..n]);
                left -= n;
            }
            Ok(self.cap - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn mixed_small_and_large_values_arrive_intact_through_partial_writes() {
        let mut q = OutQueue::default();
        let big = ByteView::from_vec((0..100_000u32).map(|i| i as u8).collect());
        let small = ByteView::from_vec(b"tiny".to_vec());
        for (i, v) in [&small, &big, &small, &big].into_iter().enumerate() {
            let resp = Response {
                id: i as u32,
                opcode: 1,
                status: Status::Ok,
                body: ResponseBody::Value {
                    ttl_ms: 0,
                    value: v,
                },
            };
            q.push_response(&resp, Some(v));
        }
        let total = q.len();
        let mut w = Trickle {
            data: Vec::new(),
            cap: 7777,
            block_next: false,
        };
        while q.write_to(&mut w).unwrap() == Flushed::Blocked {}
        assert!(q.is_empty());
        assert_eq!(w.data.len(), total);
        let mut pos = 0;
        for i in 0..4u32 {
            let (f, used) = decode(&w.data[pos..], &Default::default())
                .unwrap()
                .unwrap();
            match f {
                Frame::Response(r) => {
                    assert_eq!(r.id, i);
                    let want: &[u8] = if i % 2 == 0 { &small } else { &big };
                    assert_eq!(
                        r.body,
                        ResponseBody::Value {
                            ttl_ms: 0,
                            value: want
                        }
                    );
                }
                other => panic!("{other:?}"),
            }
            pos += used;
        }
    }
}
