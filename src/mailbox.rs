//! Messages between cores (and from loader threads to cores): a crossbeam channel
//! per core plus that core's mio `Waker`. A core drains its mailbox every loop turn;
//! a sender wakes a core only when that core is about to sleep (see [`Remote`]), and
//! at most once per destination per loop turn, however many messages went to it.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use crate::origin::LoadResult;
use crate::shard::inflight::LoadId;
use crate::shard::Reply;
use crate::topology::Topology;
use crate::value::ByteView;

/// Who gets a reply: a request on a connection of some core. Plain data, so it can
/// sit in an in-flight table on another core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// Core that owns the connection.
    pub core: u16,
    /// The connection's slab key on that core.
    pub token: u32,
    /// The connection's generation, so a reply never reaches a later connection that
    /// reused the slot.
    pub conn_gen: u32,
    /// Request id to answer.
    pub req_id: u32,
    /// Opcode to echo.
    pub opcode: u8,
}

/// An operation on one key, performed by the core whose shard holds the key.
#[derive(Debug)]
pub enum KeyOp {
    /// Client GET.
    Get,
    /// Peer FETCH.
    Fetch,
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
}

/// A message to a core.
#[derive(Debug)]
pub enum Msg {
    /// Perform `op` on `key` of `group` in the receiver's shard; reply to `waiter`.
    Key {
        /// Group index.
        group: u32,
        /// The key.
        key: Box<[u8]>,
        /// The operation.
        op: KeyOp,
        /// Who to answer.
        waiter: Waiter,
    },
    /// An answer for one of the receiver's connections.
    Reply {
        /// The request answered.
        waiter: Waiter,
        /// The answer.
        reply: Reply,
    },
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

/// A core's sending side towards one other core, with batched wake-ups.
pub struct Outbox {
    remote: Remote,
    needs_wake: bool,
}

impl Outbox {
    /// An outbox towards `remote`.
    pub fn new(remote: Remote) -> Self {
        Outbox {
            remote,
            needs_wake: false,
        }
    }

    /// Queues a message; the destination is woken by [`Outbox::flush`].
    pub fn push(&mut self, msg: Msg) {
        if self.remote.tx.send(msg).is_ok() {
            self.needs_wake = true;
        }
    }

    /// Wakes the destination, if it sleeps, when anything was queued since the last flush.
    pub fn flush(&mut self) {
        if self.needs_wake {
            self.needs_wake = false;
            self.remote.wake_if_sleeping();
        }
    }
}

/// A core's receiving side.
pub type Inbox = Receiver<Msg>;
