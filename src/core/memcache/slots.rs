//! Per-connection reply order: memcached answers strictly in request order, while
//! our answers complete in any order (a hit on this core at once, a hop to another
//! core, an origin load, a write at the owner).
//!
//! Every answer that cannot be written at once gets a *slot*, numbered by a
//! per-connection sequence number that travels in its [`Waiter`](crate::net::Waiter)'s
//! `req_id`. Slots complete in any order; the head slots are written to the output
//! queue as soon as they are complete, in order.
//!
//! - No slot outstanding: an answer goes straight to the output queue (the hit
//!   path: no slot, no allocation, the value queued by reference when large).
//! - Slots outstanding: an answer without a value, or with a small one (copied),
//!   is appended to the last slot's `after` bytes (written right after it); one
//!   with a large value takes a slot of its own, completed at once, and keeps the
//!   value by reference.
//! - A slot completed out of order keeps its encoded answer (its value by
//!   reference) until the slots before it are written.
//!
//! Slots live in a ring and are reused in place (their buffers keep up to 4 KiB of
//! capacity), so a connection in a steady pipeline does not allocate per request;
//! the ring grows by half when full, so it holds at most 1.5 times the connection's
//! peak of outstanding slots (plus 4), and is freed when the connection goes quiet. What
//! the parked answers hold counts as the connection's output for backpressure and
//! `--max-conn-output` ([`Slots::parked`]).

use super::encode::{self, encode, Sink, SlotKind};
use crate::frontend::memcache::{OwnedTarget, Target};
use crate::net::OutQueue;
use crate::shard::{Meta, MetaHit, Reply, ValueRef};
use crate::stats::McCounters;
use crate::value::ByteView;

/// A slot's buffer larger than this is not kept for reuse.
const MAX_KEPT_BUFFER: usize = 4096;

/// One answer that waits: its request's reply target, what it answers, and, once
/// complete, its encoded bytes.
pub struct Slot {
    target: OwnedTarget,
    kind: SlotKind,
    /// Answers still expected (a `flush_all` waits for every core and member).
    awaiting: u32,
    done: bool,
    /// The answer: `head`, then `value`, then `tail`.
    head: Vec<u8>,
    value: Option<ByteView>,
    tail: Vec<u8>,
    /// Answers of later requests that needed no slot, written right after this one.
    after: Vec<u8>,
}

/// Bytes of one slot besides its buffers' contents, for the memory bound.
const SLOT_SIZE: usize = std::mem::size_of::<Slot>();
// The memory bound in the module docs of `core::memcache` and docs/operations.md.
const _: () = assert!(SLOT_SIZE <= 416);

/// A connection's outstanding slots, oldest first, in a ring of slots reused in
/// place (a slot is about 400 bytes: moving it in and out of a queue per request
/// showed in profiles).
#[derive(Default)]
pub struct Slots {
    /// Every slot allocated; `len` of them, from `head` on (wrapping), are in use.
    ring: Vec<Slot>,
    /// Index in `ring` of the oldest outstanding slot.
    head: usize,
    /// Outstanding slots.
    len: usize,
    /// Sequence number of the oldest outstanding slot (or of the next slot).
    head_seq: u32,
    /// Bytes parked in slots (answers and `after` bytes not yet in the output queue).
    parked: usize,
}

impl Slot {
    /// A slot for an answer to `t`.
    fn new(t: &Target<'_>, kind: SlotKind, awaiting: u32) -> Slot {
        Slot {
            target: OwnedTarget::new(t),
            kind,
            awaiting,
            done: false,
            head: Vec::new(),
            value: None,
            tail: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Bytes of its answer.
    fn answer_len(&self) -> usize {
        self.head.len() + self.tail.len() + self.value.as_ref().map_or(0, |v| v.len())
    }
}

/// Writes to a connection's output queue.
struct OutSink<'a>(&'a mut OutQueue);

impl Sink for OutSink<'_> {
    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        self.0.push_with(f);
    }
    fn value(&mut self, v: &ByteView) {
        self.0.push_value(v);
    }
}

/// Values up to this size answered behind an outstanding slot are copied into its
/// `after` bytes (the output queue copies them too); larger ones take a slot and
/// are kept by reference.
const COPY_BEHIND: usize = 2048;

/// The size of the value an answer carries.
fn value_len(r: &Reply) -> usize {
    match r {
        Reply::Item(hit) => hit.value.len(),
        Reply::Value { value, .. } => value.len(),
        _ => 0,
    }
}

/// Copies everything, values included, into one buffer.
struct CopySink<'a>(&'a mut Vec<u8>);

impl Sink for CopySink<'_> {
    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(self.0)
    }
    fn value(&mut self, v: &ByteView) {
        self.0.extend_from_slice(v);
    }
}

/// Writes into a slot completed out of order.
struct SlotSink<'a> {
    head: &'a mut Vec<u8>,
    value: &'a mut Option<ByteView>,
    tail: &'a mut Vec<u8>,
}

impl Sink for SlotSink<'_> {
    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        if self.value.is_some() {
            f(self.tail)
        } else {
            f(self.head)
        }
    }
    fn value(&mut self, v: &ByteView) {
        *self.value = Some(v.clone());
    }
}

impl Slots {
    /// Outstanding slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes parked in slots, not yet in the output queue.
    #[inline]
    pub fn parked(&self) -> usize {
        self.parked
    }

    /// Memory the slots hold: every slot allocated and the parked bytes.
    pub fn mem(&self) -> usize {
        self.ring.capacity() * SLOT_SIZE + self.parked
    }

    /// The sequence number the next slot will get.
    #[inline]
    pub fn next_seq(&self) -> u32 {
        self.head_seq.wrapping_add(self.len as u32)
    }

    /// Index in `ring` of the `i`-th outstanding slot.
    #[inline]
    fn at(&self, i: usize) -> usize {
        (self.head + i) % self.ring.len()
    }

    /// Opens a slot for an answer to `t` that completes after `awaiting` answers
    /// arrive through [`Slots::complete`]; returns its sequence number.
    pub fn open(&mut self, t: &Target<'_>, kind: SlotKind, awaiting: u32) -> u32 {
        let seq = self.next_seq();
        if self.len == self.ring.len() {
            // Full: the outstanding slots move to the front, and the ring grows by
            // half (amortised: a connection's ring only grows to its peak).
            self.ring.rotate_left(self.head);
            self.head = 0;
            let grow = (self.ring.len() / 2).max(4);
            self.ring.push(Slot::new(t, kind, awaiting));
            for _ in 1..grow {
                self.ring.push(Slot::new(t, kind, 0));
            }
            self.len += 1;
            return seq;
        }
        let i = self.at(self.len);
        let slot = &mut self.ring[i];
        slot.target = OwnedTarget::new(t);
        slot.kind = kind;
        slot.awaiting = awaiting;
        slot.done = false;
        self.len += 1;
        seq
    }

    /// The newest outstanding slot.
    fn last(&mut self) -> Option<&mut Slot> {
        if self.len == 0 {
            return None;
        }
        let i = self.at(self.len - 1);
        self.ring.get_mut(i)
    }

    /// Appends an answer that needs no slot (no value): straight to `out` if nothing
    /// is outstanding, else after the last slot.
    pub fn immediate(&mut self, out: &mut OutQueue, f: impl FnOnce(&mut Vec<u8>)) {
        match self.last() {
            None => out.push_with(f),
            Some(last) => {
                let before = last.after.len();
                f(&mut last.after);
                let added = last.after.len() - before;
                self.parked += added;
            }
        }
    }

    /// Answers `t` with `reply` now: straight to `out` if nothing is outstanding,
    /// else behind the last slot (a small answer) or in a slot of its own,
    /// completed at once.
    pub fn answer_now(
        &mut self,
        kind: SlotKind,
        t: &Target<'_>,
        reply: &Reply,
        out: &mut OutQueue,
        c: &McCounters,
    ) {
        let mut kind = kind;
        let small = value_len(reply) <= COPY_BEHIND;
        match self.last() {
            None => encode(&mut kind, t, reply, &mut OutSink(out), c),
            // A small answer is copied behind the last slot: no slot of its own.
            Some(last) if small => {
                let before = last.after.len();
                encode(&mut kind, t, reply, &mut CopySink(&mut last.after), c);
                let added = last.after.len() - before;
                self.parked += added;
            }
            Some(_) => {
                let seq = self.open(t, kind, 1);
                self.complete(seq, reply, out, c);
            }
        }
    }

    /// A retrieval key's hit on this core, seen where the store keeps it (see
    /// [`encode::hit`]): answered as [`Slots::answer_now`] answers a
    /// [`Reply::Item`], without copying the value into one, except when it is
    /// large and must wait behind an outstanding slot.
    #[allow(clippy::too_many_arguments)] // answer_now's, with the hit's parts
    pub fn answer_hit_now(
        &mut self,
        t: &Target<'_>,
        value: ValueRef<'_>,
        ttl_ms: u64,
        meta: Meta,
        out: &mut OutQueue,
        c: &McCounters,
    ) {
        let (bytes, shared) = (value.bytes(), value.shared());
        match self.last() {
            None => encode::hit(t, bytes, shared, ttl_ms, meta, &mut OutSink(out), c),
            Some(last) if bytes.len() <= COPY_BEHIND => {
                let before = last.after.len();
                let sink = &mut CopySink(&mut last.after);
                encode::hit(t, bytes, shared, ttl_ms, meta, sink, c);
                let added = last.after.len() - before;
                self.parked += added;
            }
            Some(_) => {
                let hit = MetaHit {
                    value: value.to_view(),
                    ttl_ms,
                    flags: meta.flags,
                    cas: meta.cas,
                };
                self.answer_now(SlotKind::Get, t, &Reply::Item(hit), out, c);
            }
        }
    }

    /// One answer for slot `seq` arrived. When the slot has all it waits for, its
    /// answer is encoded; then every complete slot at the head is written to `out`,
    /// in order. An unknown `seq` (a stale answer) is ignored.
    pub fn complete(&mut self, seq: u32, reply: &Reply, out: &mut OutQueue, c: &McCounters) {
        let n = seq.wrapping_sub(self.head_seq) as usize;
        if n >= self.len {
            return;
        }
        let i = self.at(n);
        let slot = &mut self.ring[i];
        if slot.done {
            return;
        }
        if let SlotKind::Flush { failed, .. } = &mut slot.kind {
            *failed |= matches!(reply, Reply::Error { .. });
        }
        slot.awaiting = slot.awaiting.saturating_sub(1);
        if slot.awaiting > 0 {
            return;
        }
        let Slot {
            target,
            kind,
            head,
            value,
            tail,
            ..
        } = slot;
        if n == 0 {
            encode(kind, &target.target(), reply, &mut OutSink(out), c);
            self.pop_front(out);
            self.drain(out);
            return;
        }
        let mut sink = SlotSink { head, value, tail };
        encode(kind, &target.target(), reply, &mut sink, c);
        slot.done = true;
        self.parked += slot.answer_len();
    }

    /// Writes the complete slots at the head, in order.
    fn drain(&mut self, out: &mut OutQueue) {
        while self.len > 0 {
            let front = &mut self.ring[self.head];
            if !front.done {
                return;
            }
            self.parked -= front.answer_len();
            out.push_with(|b| b.extend_from_slice(&front.head));
            if let Some(v) = front.value.take() {
                out.push_value(&v);
            }
            out.push_with(|b| b.extend_from_slice(&front.tail));
            self.pop_front(out);
        }
    }

    /// Retires the head slot (written): writes its `after` bytes and clears it for
    /// reuse in place.
    fn pop_front(&mut self, out: &mut OutQueue) {
        if self.len == 0 {
            return;
        }
        let slot = &mut self.ring[self.head];
        if !slot.after.is_empty() {
            self.parked -= slot.after.len();
            out.push_with(|b| b.extend_from_slice(&slot.after));
        }
        for b in [&mut slot.head, &mut slot.tail, &mut slot.after] {
            b.clear();
            if b.capacity() > MAX_KEPT_BUFFER {
                *b = Vec::new();
            }
        }
        slot.value = None;
        slot.done = false;
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        self.head_seq = self.head_seq.wrapping_add(1);
    }

    /// Frees the slots of a connection with none outstanding (it went quiet).
    pub fn release_spare(&mut self) {
        if self.len == 0 {
            self.ring = Vec::new();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::memcache::Reply as Dialect;
    use crate::shard::MetaHit;

    fn target(key: &[u8]) -> Target<'_> {
        Target {
            key,
            base64: false,
            reply: Dialect::Classic { noreply: false },
            want_value: true,
            want_cas: false,
        }
    }

    fn hit(v: &str) -> Reply {
        Reply::Item(MetaHit {
            value: ByteView::copy_from_slice(v.as_bytes()),
            ttl_ms: 0,
            flags: 1,
            cas: 9,
        })
    }

    fn written(out: &mut OutQueue) -> String {
        let mut w = Vec::new();
        out.write_to(&mut w).unwrap();
        String::from_utf8(w).unwrap()
    }

    #[test]
    fn answers_completed_out_of_order_are_written_in_request_order() {
        let c = McCounters::default();
        let mut out = OutQueue::default();
        let mut s = Slots::default();
        let a = s.open(&target(b"a"), SlotKind::Get, 1);
        s.answer_now(SlotKind::Get, &target(b"b"), &hit("B"), &mut out, &c);
        s.immediate(&mut out, |b| b.extend_from_slice(b"END\r\n"));
        let d = s.open(&target(b"d"), SlotKind::Get, 1);
        s.complete(d, &Reply::NotFound, &mut out, &c);
        assert!(out.is_empty(), "nothing before the first answer");
        assert!(s.parked() > 0);
        s.complete(a, &hit("A"), &mut out, &c);
        assert_eq!(
            written(&mut out),
            "VALUE a 1 1\r\nA\r\nVALUE b 1 1\r\nB\r\nEND\r\n"
        );
        assert_eq!((s.len(), s.parked()), (0, 0));
        // A stale or repeated answer is ignored.
        s.complete(a, &hit("A"), &mut out, &c);
        assert!(out.is_empty());
        assert_eq!(c.get_hits.get(), 2);
        assert_eq!(c.get_misses.get(), 1);
    }

    #[test]
    fn a_hit_seen_in_place_is_answered_as_the_same_hit_as_a_reply() {
        let c = McCounters::default();
        let meta = Meta { flags: 1, cas: 9 };
        let big = ByteView::from_vec(vec![b'x'; COPY_BEHIND + 1]);
        let answer = |s: &mut Slots, out: &mut OutQueue, key: &'static [u8], v: ValueRef<'_>| {
            s.answer_hit_now(&target(key), v, 0, meta, out, &c)
        };
        // Nothing outstanding: straight to the output, as answer_now would.
        let (mut out, mut s) = (OutQueue::default(), Slots::default());
        answer(&mut s, &mut out, b"a", ValueRef::Inline(b"A"));
        let mut want = OutQueue::default();
        Slots::default().answer_now(SlotKind::Get, &target(b"a"), &hit("A"), &mut want, &c);
        assert_eq!(written(&mut out), written(&mut want));
        // Behind an outstanding slot: small ones parked behind it, a large one in a
        // slot of its own; all in request order once the first is answered.
        let first = s.open(&target(b"z"), SlotKind::Get, 1);
        answer(&mut s, &mut out, b"b", ValueRef::Inline(b"B"));
        answer(&mut s, &mut out, b"big", ValueRef::Shared(&big));
        answer(&mut s, &mut out, b"c", ValueRef::Inline(b"C"));
        assert!(out.is_empty() && s.parked() > 0);
        assert_eq!(s.len(), 2);
        s.complete(first, &Reply::NotFound, &mut out, &c);
        let big_line = format!("VALUE big 1 {}\r\n{}\r\n", big.len(), "x".repeat(big.len()));
        assert_eq!(
            written(&mut out),
            format!("VALUE b 1 1\r\nB\r\n{big_line}VALUE c 1 1\r\nC\r\n")
        );
        assert_eq!((s.len(), s.parked()), (0, 0));
        assert_eq!((c.get_hits.get(), c.get_misses.get()), (5, 1));
    }

    #[test]
    fn the_ring_wraps_and_grows_and_keeps_request_order() {
        let c = McCounters::default();
        let mut out = OutQueue::default();
        let mut s = Slots::default();
        let mut want = String::new();
        let mut open: Vec<u32> = Vec::new();
        let mut state = 7u64;
        for round in 0..200u32 {
            // Open a few, then complete a pseudo-random outstanding one (sometimes
            // the oldest, which writes it and every complete one after it).
            for _ in 0..1 + round % 3 {
                let seq = s.open(&target(b"k"), SlotKind::Get, 1);
                want.push_str(&format!("VALUE k 1 {}\r\n{seq:05}\r\n", 5));
                open.push(seq);
            }
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let pick = (state >> 33) as usize % open.len();
            let seq = open.swap_remove(pick);
            s.complete(seq, &hit(&format!("{seq:05}")), &mut out, &c);
        }
        for seq in open.drain(..) {
            s.complete(seq, &hit(&format!("{seq:05}")), &mut out, &c);
        }
        assert_eq!(written(&mut out), want);
        assert_eq!((s.len(), s.parked()), (0, 0));
        s.release_spare();
        assert_eq!(s.mem(), 0);
    }
}
