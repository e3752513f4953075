//! Messages between cores (and from loader threads to cores): a crossbeam channel
//! per core plus that core's mio `Waker`. A core drains its mailbox every loop turn;
//! a sender wakes a core only when that core is about to sleep (see [`Remote`]), and
//! at most once per destination per loop turn, however many messages went to it.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use super::conn::Conn;
use crate::origin::LoadResult;
use crate::shard::inflight::LoadId;
use crate::shard::Reply;
use crate::topology::Topology;
use crate::value::ByteView;

/// Who gets a reply; defined in `net` (below `peer`, which keeps waiters too).
pub use crate::net::Waiter;

/// An operation on one key, performed by the core whose shard holds the key.
#[derive(Debug)]
pub enum KeyOp {
    /// Client GET.
    Get,
    /// Peer FETCH.
    Fetch,
    /// Peer FETCH_ITEM: FETCH answered with the item's flags and CAS.
    FetchItem,
    /// SET with a TTL (`None` = group default).
    Set {
        /// The value, copied once out of the read buffer.
        value: ByteView,
        /// TTL.
        ttl: Option<Duration>,
    },
    /// DELETE.
    Delete,
    /// INVALIDATE (hot cache only).
    Invalidate,
    /// A peer's STORE: like SET, never forwarded.
    Store {
        /// The value.
        value: ByteView,
        /// TTL.
        ttl: Option<Duration>,
    },
    /// A peer's PURGE: like DELETE, never forwarded nor fanned out.
    Purge,
    /// A memcached front-end operation (see `core::memcache`).
    Mc(super::memcache::McOp),
}

/// Keyed requests for one core, gathered over one loop turn of the sender: the keys
/// share one byte buffer, so a hop between cores costs no allocation per request,
/// and one channel message carries the whole turn's requests.
#[derive(Debug, Default)]
pub struct KeyBatch {
    keys: Vec<u8>,
    ops: Vec<BatchedOp>,
}

#[derive(Debug)]
struct BatchedOp {
    group: u32,
    /// Where the key ends in `keys` (it starts where the previous one ended).
    end: usize,
    op: KeyOp,
    waiter: Waiter,
}

impl KeyBatch {
    /// Adds a request for `key` of `group`.
    pub fn push(&mut self, group: u32, key: &[u8], op: KeyOp, waiter: Waiter) {
        self.keys.extend_from_slice(key);
        self.ops.push(BatchedOp {
            group,
            end: self.keys.len(),
            op,
            waiter,
        });
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Takes the requests out, leaving an empty batch with room for as many.
    pub fn take(&mut self) -> KeyBatch {
        let keys = Vec::with_capacity(self.keys.len());
        let ops = Vec::with_capacity(self.ops.len());
        KeyBatch {
            keys: std::mem::replace(&mut self.keys, keys),
            ops: std::mem::replace(&mut self.ops, ops),
        }
    }

    /// Hands the group and key of each of the first `n` requests that read their
    /// item to `f`: what a receiver prefetches before [`KeyBatch::for_each`].
    pub fn peek_reads(&self, n: usize, mut f: impl FnMut(u32, &[u8])) {
        let mut start = 0;
        for b in self.ops.iter().take(n) {
            if b.reads() {
                f(b.group, &self.keys[start..b.end]);
            }
            start = b.end;
        }
    }

    /// Hands each request, in the order they were pushed, to
    /// `f(group, key, op, waiter, ahead)`, where `ahead` is the group and key of the
    /// request `lookahead` places further on if that one reads its item. A receiver
    /// prefetches it (having prefetched the first `lookahead` with
    /// [`KeyBatch::peek_reads`]), so the batch's cache misses overlap instead of
    /// stalling one lookup after another.
    pub fn for_each(
        self,
        lookahead: usize,
        mut f: impl FnMut(u32, &[u8], KeyOp, Waiter, Option<(u32, &[u8])>),
    ) {
        let keys = &self.keys;
        let mut ops = self.ops.into_iter();
        let mut start = 0;
        while let Some(b) = ops.next() {
            let ahead = lookahead.checked_sub(1).and_then(|k| {
                let rest = ops.as_slice();
                let a = rest.get(k).filter(|a| a.reads())?;
                let a_start = k.checked_sub(1).map_or(b.end, |p| rest[p].end);
                Some((a.group, &keys[a_start..a.end]))
            });
            f(b.group, &keys[start..b.end], b.op, b.waiter, ahead);
            start = b.end;
        }
    }
}

impl BatchedOp {
    /// Whether the request reads its key's item (a GET or FETCH of either
    /// protocol): the requests worth prefetching.
    fn reads(&self) -> bool {
        matches!(
            self.op,
            KeyOp::Get
                | KeyOp::Fetch
                | KeyOp::FetchItem
                | KeyOp::Mc(super::memcache::McOp::Get { .. })
        )
    }
}

/// Answers for one core's connections, gathered over one loop turn of the core that
/// produced them. A small GET hit travels as its whole response frame, encoded by
/// the sender into one byte buffer shared by the batch (no allocation per answer;
/// the receiver copies it into the connection's output as it would have copied
/// the value); everything else as a [`Reply`] (a large value by reference).
#[derive(Debug, Default)]
pub struct ReplyBatch {
    /// Answers to encode at the receiver.
    pub replies: Vec<(Waiter, Reply)>,
    frames: Vec<u8>,
    /// Who each frame is for, and where it ends in `frames` (it starts where the
    /// previous one ended).
    framed: Vec<(Waiter, usize)>,
}

impl ReplyBatch {
    /// Adds the response frame `encode` appends, for `waiter`.
    pub fn push_frame(&mut self, waiter: Waiter, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.frames);
        self.framed.push((waiter, self.frames.len()));
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.framed.is_empty()
    }

    /// Takes the answers out, leaving an empty batch with room for as many.
    pub fn take(&mut self) -> ReplyBatch {
        fn renew<T>(v: &mut Vec<T>) -> Vec<T> {
            let fresh = Vec::with_capacity(v.len());
            std::mem::replace(v, fresh)
        }
        ReplyBatch {
            replies: renew(&mut self.replies),
            frames: renew(&mut self.frames),
            framed: renew(&mut self.framed),
        }
    }

    /// Hands each encoded frame, in order, to `f(waiter, frame)`, and returns the
    /// other answers.
    pub fn split(self, mut f: impl FnMut(Waiter, &[u8])) -> Vec<(Waiter, Reply)> {
        let mut start = 0;
        for (w, end) in self.framed {
            f(w, &self.frames[start..end]);
            start = end;
        }
        self.replies
    }
}

/// A message to a core.
#[derive(Debug)]
pub enum Msg {
    /// Perform each operation in the receiver's shard and reply to its waiter.
    Keys(KeyBatch),
    /// Answers for the receiver's connections.
    Replies(ReplyBatch),
    /// A client connection that asked (SHARD) to be served by the receiver: register
    /// it, answer what it already sent, go on reading it.
    Adopt(Box<Conn>),
    /// The member list changed: use this topology from now on.
    Topology(Arc<Topology>),
    /// An origin load started by the receiver finished.
    LoadDone {
        /// Group index.
        group: u32,
        /// The load.
        id: LoadId,
        /// Its result.
        result: LoadResult,
        /// When the receiver handed it to the loader pool (its loop-turn time), for
        /// the origin load latency histogram.
        started: Instant,
    },
}

/// A way to reach a core from any thread.
///
/// A core drains its mailbox on every loop turn, so a message only needs a wake-up
/// (an eventfd write, and a context switch on the other side) when the core is about
/// to sleep in `poll`. The core raises `sleeping` and then checks its mailbox once
/// more; a sender queues its message and then checks `sleeping`. With a SeqCst fence
/// on both sides at least one of them sees the other, so a message is never left
/// unnoticed by a sleeping core, and a busy core is not woken for nothing.
#[derive(Clone)]
pub struct Remote {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
    sleeping: Arc<AtomicBool>,
}

impl Remote {
    /// A handle for the core behind `tx`, `waker` and its `sleeping` flag.
    pub fn new(tx: Sender<Msg>, waker: Arc<Waker>, sleeping: Arc<AtomicBool>) -> Self {
        Remote {
            tx,
            waker,
            sleeping,
        }
    }

    /// Sends, waking the core if it sleeps. A core that has exited drops the message.
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            self.wake_if_sleeping();
        }
    }

    /// Wakes the core whether or not it sleeps (shutdown).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Wakes the core if it is (about to be) asleep in `poll`.
    pub fn wake_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// A core's sending side towards one other core. Requests and replies are gathered
/// over a loop turn and sent as (at most) two messages by [`Outbox::flush`], with at
/// most one wake-up.
pub struct Outbox {
    remote: Remote,
    keys: KeyBatch,
    replies: ReplyBatch,
    /// Something was sent since the last flush without waking the destination.
    wake_due: bool,
}

impl Outbox {
    /// An outbox towards `remote`.
    pub fn new(remote: Remote) -> Self {
        Outbox {
            remote,
            keys: KeyBatch::default(),
            replies: ReplyBatch::default(),
            wake_due: false,
        }
    }

    /// Queues a keyed request; it leaves with the next [`Outbox::flush`].
    pub fn push_key(&mut self, group: u32, key: &[u8], op: KeyOp, waiter: Waiter) {
        self.keys.push(group, key, op, waiter);
    }

    /// Hands a connection over to the destination at once (it carries its own
    /// buffered bytes and answers); the wake-up comes with the next flush.
    pub fn push_conn(&mut self, conn: Box<Conn>) {
        self.wake_due |= self.remote.tx.send(Msg::Adopt(conn)).is_ok();
    }

    /// Queues a reply; it leaves with the next [`Outbox::flush`].
    pub fn push_reply(&mut self, waiter: Waiter, reply: Reply) {
        self.replies.replies.push((waiter, reply));
    }

    /// Queues a response frame for `waiter` (a native connection's request),
    /// encoded here by `encode`; it leaves with the next [`Outbox::flush`].
    pub fn push_frame(&mut self, waiter: Waiter, encode: impl FnOnce(&mut Vec<u8>)) {
        self.replies.push_frame(waiter, encode);
    }

    /// Sends what was queued since the last flush and wakes the destination if it
    /// sleeps. Called once per loop turn.
    pub fn flush(&mut self) {
        let mut sent = std::mem::take(&mut self.wake_due);
        if !self.keys.is_empty() {
            sent |= self.remote.tx.send(Msg::Keys(self.keys.take())).is_ok();
        }
        if !self.replies.is_empty() {
            sent |= self
                .remote
                .tx
                .send(Msg::Replies(self.replies.take()))
                .is_ok();
        }
        if sent {
            self.remote.wake_if_sleeping();
        }
    }
}

/// A core's receiving side.
pub type Inbox = Receiver<Msg>;

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(req_id: u32) -> Waiter {
        Waiter {
            core: 0,
            token: 0,
            conn_gen: 0,
            req_id,
            opcode: 1,
        }
    }

    #[test]
    fn a_reply_batch_hands_back_every_frame_in_order_and_the_other_replies() {
        let mut b = ReplyBatch::default();
        assert!(b.is_empty());
        b.push_frame(waiter(1), |out| out.extend_from_slice(b"first"));
        b.replies.push((waiter(2), Reply::NotFound));
        b.push_frame(waiter(3), |_| {}); // an empty frame is kept too
        b.push_frame(waiter(4), |out| out.extend_from_slice(b"last"));
        assert!(!b.is_empty());
        let taken = b.take();
        assert!(b.is_empty() && b.frames.capacity() >= 9 && b.framed.capacity() >= 3);
        let mut frames = Vec::new();
        let rest = taken.split(|w, f| frames.push((w.req_id, f.to_vec())));
        assert_eq!(
            frames,
            vec![
                (1, b"first".to_vec()),
                (3, Vec::new()),
                (4, b"last".to_vec())
            ]
        );
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0.req_id, 2);
    }

    #[test]
    fn a_batch_hands_back_every_key_in_order_and_keeps_its_capacity() {
        let mut b = KeyBatch::default();
        b.push(0, b"alpha", KeyOp::Get, waiter(1));
        b.push(1, b"", KeyOp::Delete, waiter(2));
        b.push(0, b"gamma-longer-key", KeyOp::Get, waiter(3));
        assert_eq!(b.ops.len(), 3);
        let taken = b.take();
        assert!(b.is_empty());
        assert!(b.keys.capacity() >= 21 && b.ops.capacity() >= 3);
        let mut seen = Vec::new();
        taken.for_each(0, |g, k, op, w, ahead| {
            assert!(ahead.is_none(), "no look-ahead asked for");
            seen.push((g, k.to_vec(), format!("{op:?}"), w.req_id));
        });
        assert_eq!(
            seen,
            vec![
                (0, b"alpha".to_vec(), "Get".to_string(), 1),
                (1, Vec::new(), "Delete".to_string(), 2),
                (0, b"gamma-longer-key".to_vec(), "Get".to_string(), 3),
            ]
        );
    }

    #[test]
    fn the_look_ahead_names_the_reads_further_on_and_nothing_else() {
        // Request i is for group i; the reads are 0, 2, 3 and 5.
        const KEYS: [&[u8]; 6] = [b"a", b"bb", b"", b"dddd", b"eeeee", b"ffffff"];
        const READS: [bool; 6] = [true, false, true, true, false, true];
        let batch = || {
            let mut b = KeyBatch::default();
            let ops = [
                KeyOp::Get,
                KeyOp::Delete,
                KeyOp::Fetch,
                KeyOp::FetchItem,
                KeyOp::Purge,
                KeyOp::Get,
            ];
            for (i, op) in ops.into_iter().enumerate() {
                b.push(i as u32, KEYS[i], op, waiter(i as u32));
            }
            b
        };
        let read = |i: usize| READS[i].then(|| (i as u32, KEYS[i].to_vec()));
        let mut first = Vec::new();
        batch().peek_reads(4, |g, k| first.push((g, k.to_vec())));
        assert_eq!(first, (0..4).filter_map(read).collect::<Vec<_>>());
        let mut all = Vec::new();
        batch().peek_reads(100, |g, _| all.push(g));
        assert_eq!(all, vec![0, 2, 3, 5]);
        for lookahead in 1..=7 {
            let mut seen = Vec::new();
            batch().for_each(lookahead, |g, k, _, w, ahead| {
                assert_eq!((w.req_id, k), (g, KEYS[g as usize]));
                seen.push(ahead.map(|(g, k)| (g, k.to_vec())));
            });
            let want: Vec<_> = (0..6)
                .map(|i| (i + lookahead < 6).then(|| read(i + lookahead)).flatten())
                .collect();
            assert_eq!(seen, want, "look-ahead {lookahead}");
        }
    }
}
