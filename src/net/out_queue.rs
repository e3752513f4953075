//! A connection's output: bytes waiting to be written, in order, sent with vectored
//! writes. Large values are queued by reference (a `ByteView` clone) and written
//! straight from the cache's buffer, never copied. Used by client connections (the
//! core) and peer connections (`crate::peer`) alike.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use groupcached_protocol::{Request, Response};

use crate::value::ByteView;

/// Values up to this size are copied into the output buffer; larger ones are queued
/// by reference and written straight from the cache's buffer.
const COPY_THRESHOLD: usize = 2048;
/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// A buffer chunk is closed at this size so written chunks can be freed early.
const CHUNK_SIZE: usize = 64 * 1024;
/// Spare output buffers a connection keeps for reuse, and their largest size.
const MAX_SPARE: usize = 2;
const MAX_SPARE_BYTES: usize = 2 * CHUNK_SIZE;
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
    /// Memory the queued chunks hold: buffer capacities plus referenced values.
    held: usize,
    spare: Vec<Vec<u8>>,
    /// Capacity of the spare buffers.
    spare_bytes: usize,
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

    /// Appends what `encode` writes to the tail buffer: the memcached front end's
    /// text replies, which are not frames.
    pub fn push_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let buf = self.tail_buf();
        let (start, cap) = (buf.len(), buf.capacity());
        encode(buf);
        let (len, grown) = (buf.len() - start, buf.capacity() - cap);
        self.bytes += len;
        self.held += grown;
    }

    /// Queues a value's bytes: copied when small, else by reference (no copy).
    pub fn push_value(&mut self, v: &ByteView) {
        if v.len() > COPY_THRESHOLD {
            self.bytes += v.len();
            self.held += v.len();
            self.chunks.push_back(Chunk::Val(v.clone()));
        } else {
            self.push_with(|b| b.extend_from_slice(v));
        }
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
        let cap = buf.capacity();
        let tail = encode_head(buf);
        match value {
            Some(v) if tail.len() > COPY_THRESHOLD => {
                let head = buf.len() - start;
                let grown = buf.capacity() - cap;
                self.bytes += head + v.len();
                self.held += grown + v.len();
                self.chunks.push_back(Chunk::Val(v.clone()));
            }
            _ => {
                buf.extend_from_slice(tail);
                let (len, grown) = (buf.len() - start, buf.capacity() - cap);
                self.bytes += len;
                self.held += grown;
            }
        }
    }

    /// Bytes of memory the queue holds: its buffers' capacity, the values it
    /// references (counted in full, although a cached value is shared with the
    /// cache) and its spare buffers.
    pub fn mem(&self) -> usize {
        self.held + self.spare_bytes
    }

    /// Frees the spare buffers (for a connection that went quiet).
    pub fn release_spare(&mut self) {
        self.spare = Vec::new();
        self.spare_bytes = 0;
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
            match self.chunks.pop_front() {
                Some(Chunk::Buf(mut b)) => {
                    self.held -= b.capacity();
                    if self.spare.len() < MAX_SPARE && b.capacity() <= MAX_SPARE_BYTES {
                        b.clear();
                        self.spare_bytes += b.capacity();
                        self.spare.push(b);
                    }
                }
                Some(Chunk::Val(v)) => self.held -= v.len(),
                None => {}
            }
        }
    }

    fn tail_buf(&mut self) -> &mut Vec<u8> {
        let need_new = !matches!(self.chunks.back(), Some(Chunk::Buf(b)) if b.len() < CHUNK_SIZE);
        if need_new {
            let b = match self.spare.pop() {
                Some(b) => {
                    self.spare_bytes -= b.capacity();
                    b
                }
                None => Vec::with_capacity(4096),
            };
            self.held += b.capacity();
            self.chunks.push_back(Chunk::Buf(b));
        }
        match self.chunks.back_mut() {
            Some(Chunk::Buf(b)) => b,
            _ => unreachable!("a buffer chunk was just ensured at the back"),
        }
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

    #[test]
    fn memory_counts_buffers_and_referenced_values_and_returns_to_spares() {
        let mut q = OutQueue::default();
        assert_eq!(q.mem(), 0);
        let big = ByteView::from_vec(vec![1; 1 << 20]);
        let resp = Response {
            id: 1,
            opcode: 1,
            status: Status::Ok,
            body: ResponseBody::Value {
                ttl_ms: 0,
                value: &big,
            },
        };
        q.push_response(&resp, Some(&big));
        assert!(
            q.mem() >= (1 << 20) && q.mem() <= (1 << 20) + 8192,
            "{}",
            q.mem()
        );
        let pong = vec![2u8; 100_000];
        q.push_response(
            &Response {
                id: 2,
                opcode: 5,
                status: Status::Ok,
                body: ResponseBody::Pong(&pong),
            },
            None,
        );
        assert!(q.mem() >= (1 << 20) + 100_000, "{}", q.mem());
        let mut w = Trickle {
            data: Vec::new(),
            cap: 1 << 30,
            block_next: false,
        };
        while q.write_to(&mut w).unwrap() == Flushed::Blocked {}
        // Only two spare buffers of at most 128 KiB each are kept.
        assert!(q.mem() <= 2 * MAX_SPARE_BYTES, "{}", q.mem());
        q.release_spare();
        assert_eq!(q.mem(), 0);
    }
}
