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
//! Slots are recycled (their buffers keep their capacity) through a small spare
//! list, so a connection in a steady pipeline does not allocate per request. What
//! the parked answers hold counts as the connection's output for backpressure and
//! `--max-conn-output` ([`Slots::parked`]).

use std::collections::VecDeque;

use super::encode::{encode, Sink, SlotKind};
use crate::frontend::memcache::{OwnedTarget, Target};
use crate::net::OutQueue;
use crate::shard::Reply;
use crate::stats::McCounters;
use crate::value::ByteView;

/// Spare slots a connection keeps for reuse.
const MAX_SPARE: usize = 16;
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

/// A connection's outstanding slots, oldest first.
#[derive(Default)]
pub struct Slots {
    ring: VecDeque<Slot>,
    spare: Vec<Slot>,
    /// Sequence number of `ring[0]` (or of the next slot, when empty).
    head_seq: u32,
    /// Bytes parked in slots (answers and `after` bytes not yet in the output queue).
    parked: usize,
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
        self.ring.len()
    }

    /// Bytes parked in slots, not yet in the output queue.
    #[inline]
    pub fn parked(&self) -> usize {
        self.parked
    }

    /// Memory the slots hold: the slot structures (outstanding and spare) and the
    /// parked bytes.
    pub fn mem(&self) -> usize {
        (self.ring.capacity() + self.spare.len()) * SLOT_SIZE + self.parked
    }

    /// The sequence number the next slot will get.
    #[inline]
    pub fn next_seq(&self) -> u32 {
        self.head_seq.wrapping_add(self.ring.len() as u32)
    }

    /// Opens a slot for an answer to `t` that completes after `awaiting` answers
    /// arrive through [`Slots::complete`]; returns its sequence number.
    pub fn open(&mut self, t: &Target<'_>, kind: SlotKind, awaiting: u32) -> u32 {
        let seq = self.next_seq();
        let target = OwnedTarget::new(t);
        let slot = match self.spare.pop() {
            Some(mut s) => {
                s.target = target;
                s.kind = kind;
                s.awaiting = awaiting;
                s.done = false;
                s
            }
            None => Slot {
                target,
                kind,
                awaiting,
                done: false,
                head: Vec::new(),
                value: None,
                tail: Vec::new(),
                after: Vec::new(),
            },
        };
        self.ring.push_back(slot);
        seq
    }

    /// Appends an answer that needs no slot (no value): straight to `out` if nothing
    /// is outstanding, else after the last slot.
    pub fn immediate(&mut self, out: &mut OutQueue, f: impl FnOnce(&mut Vec<u8>)) {
        match self.ring.back_mut() {
            None => out.push_with(f),
            Some(last) => {
                let before = last.after.len();
                f(&mut last.after);
                self.parked += last.after.len() - before;
            }
        }
    }

    /// Answers `t` with `reply` now: straight to `out` if nothing is outstanding,
    /// else in a slot of its own, completed at once.
    pub fn answer_now(
        &mut self,
        kind: SlotKind,
        t: &Target<'_>,
        reply: &Reply,
        out: &mut OutQueue,
        c: &McCounters,
    ) {
        let mut kind = kind;
        match self.ring.back_mut() {
            None => encode(&mut kind, t, reply, &mut OutSink(out), c),
            // A small answer is copied behind the last slot: no slot of its own.
            Some(last) if value_len(reply) <= COPY_BEHIND => {
                let before = last.after.len();
                encode(&mut kind, t, reply, &mut CopySink(&mut last.after), c);
                self.parked += last.after.len() - before;
            }
            Some(_) => {
                let seq = self.open(t, kind, 1);
                self.complete(seq, reply, out, c);
            }
        }
    }

    /// One answer for slot `seq` arrived. When the slot has all it waits for, its
    /// answer is encoded; then every complete slot at the head is written to `out`,
    /// in order. An unknown `seq` (a stale answer) is ignored.
    pub fn complete(&mut self, seq: u32, reply: &Reply, out: &mut OutQueue, c: &McCounters) {
        let idx = seq.wrapping_sub(self.head_seq) as usize;
        let Some(slot) = self.ring.get_mut(idx) else {
            return;
        };
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
        let t = slot.target;
        if idx == 0 {
            encode(&mut slot.kind, &t.target(), reply, &mut OutSink(out), c);
            self.pop_front(out);
            self.drain(out);
            return;
        }
        let mut sink = SlotSink {
            head: &mut slot.head,
            value: &mut slot.value,
            tail: &mut slot.tail,
        };
        encode(&mut slot.kind, &t.target(), reply, &mut sink, c);
        slot.done = true;
        self.parked +=
            slot.head.len() + slot.tail.len() + slot.value.as_ref().map_or(0, |v| v.len());
    }

    /// Writes the complete slots at the head, in order.
    fn drain(&mut self, out: &mut OutQueue) {
        while let Some(front) = self.ring.front_mut() {
            if !front.done {
                return;
            }
            let n =
                front.head.len() + front.tail.len() + front.value.as_ref().map_or(0, |v| v.len());
            self.parked -= n;
            out.push_with(|b| b.extend_from_slice(&front.head));
            if let Some(v) = front.value.take() {
                out.push_value(&v);
            }
            out.push_with(|b| b.extend_from_slice(&front.tail));
            self.pop_front(out);
        }
    }

    /// Removes the head slot (written), writes its `after` bytes and recycles it.
    fn pop_front(&mut self, out: &mut OutQueue) {
        let Some(mut slot) = self.ring.pop_front() else {
            return;
        };
        self.head_seq = self.head_seq.wrapping_add(1);
        if !slot.after.is_empty() {
            self.parked -= slot.after.len();
            out.push_with(|b| b.extend_from_slice(&slot.after));
        }
        if self.spare.len() < MAX_SPARE {
            for b in [&mut slot.head, &mut slot.tail, &mut slot.after] {
                b.clear();
                if b.capacity() > MAX_KEPT_BUFFER {
                    *b = Vec::new();
                }
            }
            slot.value = None;
            self.spare.push(slot);
        }
    }

    /// Frees the spare slots (a connection that went quiet).
    pub fn release_spare(&mut self) {
        self.spare = Vec::new();
        if self.ring.is_empty() {
            self.ring = VecDeque::new();
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
}
