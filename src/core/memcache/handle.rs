//! A memcached connection's read loop: parse each whole request, perform it, answer
//! in order (see `slots.rs`), and route each keyed operation to the core whose
//! shard holds the key, as native requests are routed.
//!
//! What cannot be done faithfully is answered `SERVER_ERROR <reason>` (and counted):
//! stale items (`ms I`, `md I`), `mg` vivify/recache (`N`, `R`) and the `h`/`l`
//! return flags, `ma t`, a delayed `flush_all`, `me`, and the `stats` sub-commands.

use std::time::{SystemTime, UNIX_EPOCH};

use super::encode::SlotKind;
use super::{McOp, Slots, MAX_GET_KEYS, MAX_SLOTS};
use crate::core::conn::HIGH_WATER_BYTES;
use crate::core::effects::Effect;
use crate::core::mailbox::{KeyOp, Waiter};
use crate::core::routing::Ctx;
use crate::core::Core;
use crate::frontend::memcache::{
    discard, parse, read_keys, reply, split_group, Command, ErrorReply, Get, Key, KeyList, Parsed,
    Reply, StoreMode, Target, Ttl,
};
use crate::net::{OutQueue, MEMCACHE_OPCODE};
use crate::shard::{self, Arith, Delta, StoreCommand, Vivify};
use crate::topology::Owner;
use crate::value::ByteView;

/// Below this many buffered bytes there is no batch to prefetch for.
const PREFETCH_MIN_BYTES: usize = 64;
/// Requests looked at ahead, at most.
const PREFETCH_COMMANDS: usize = 64;
/// Keys prefetched ahead, at most (as the native look-ahead).
const PREFETCH_KEYS: usize = 32;

/// The connection whose requests are being performed.
pub(in crate::core) struct McCur<'a> {
    token: usize,
    gen: u32,
    out: &'a mut OutQueue,
    slots: &'a mut Slots,
    /// Close once the answers so far are written (`quit`, a fatal error).
    closing: &'a mut bool,
}

impl McCur<'_> {
    /// The waiter of the slot numbered `seq`.
    fn waiter(&self, core: usize, seq: u32) -> Waiter {
        Waiter {
            core: core as u16,
            token: self.token as u32,
            conn_gen: self.gen,
            req_id: seq,
            opcode: MEMCACHE_OPCODE,
        }
    }

    /// Appends an answer that needs no slot.
    fn now(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        self.slots.immediate(self.out, f);
    }
}

/// Whether a memcached connection must stop reading and parsing until its client
/// takes answers: queued plus parked output over the high-water mark, or too many
/// outstanding answers.
pub fn backpressured(out: &OutQueue, slots: &Slots) -> bool {
    out.len() + slots.parked() > HIGH_WATER_BYTES || slots.len() > MAX_SLOTS
}

impl Core {
    /// Parses and performs every whole request buffered on memcached connection
    /// `token`, running the effect queue after each, until the buffer holds no
    /// whole request, the connection is backpressured, or it is closing.
    pub(in crate::core) fn handle_mc(&mut self, token: usize) {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(mc) = self.conns.get(token).and_then(|c| c.mc.as_deref()) {
            if mc.skip == 0 && mc.rbuf.buffered() >= PREFETCH_MIN_BYTES {
                self.ctx.mc_prefetch(mc.rbuf.data());
            }
        }
        loop {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            let gen = conn.gen;
            let (Some(mc), out, closing, pending) = (
                conn.mc.as_deref_mut(),
                &mut conn.out,
                &mut conn.closing,
                &mut conn.pending,
            ) else {
                return;
            };
            if *closing || backpressured(out, &mc.slots) {
                return;
            }
            let dropped = discard(&mut mc.skip, mc.rbuf.buffered());
            mc.rbuf.consume(dropped);
            if mc.skip > 0 || mc.rbuf.buffered() == 0 {
                return;
            }
            let limits = self.ctx.mc.limits;
            let (consumed, skip) = match parse(mc.rbuf.data(), &limits, now_unix) {
                Ok(Parsed::Incomplete { need }) => {
                    mc.rbuf.reserve_total(need);
                    return;
                }
                Err(fatal) => {
                    self.ctx.stats.node.protocol_errors.inc();
                    mc.slots
                        .immediate(out, |b| b.extend_from_slice(fatal.reply()));
                    *closing = true;
                    return;
                }
                Ok(Parsed::Request(ref req)) => {
                    self.ctx.stats.node.requests.inc();
                    let mut cur = McCur {
                        token,
                        gen,
                        out,
                        slots: &mut mc.slots,
                        closing,
                    };
                    self.ctx.perform_mc(&req.command, &mut cur);
                    *pending = mc.slots.len();
                    (req.consumed, req.skip)
                }
            };
            mc.rbuf.consume(consumed);
            mc.rbuf.took_request();
            mc.skip = skip;
            if !self.ctx.queue.is_empty() {
                self.run_effects(Some(token));
            }
        }
    }
}

impl Ctx {
    /// Performs one parsed request; answers go through `cur` in request order.
    fn perform_mc(&mut self, cmd: &Command<'_>, cur: &mut McCur<'_>) {
        match *cmd {
            Command::Get(ref get) => self.mc_get(get, cur),
            Command::Store(ref st) => {
                self.stats.memcache.cmd_set.inc();
                let t = st.target();
                if st.invalidate {
                    return self.unsupported(cur, &t.reply, "stale items (ms I) are not supported");
                }
                let mode = match st.mode {
                    StoreMode::Set => shard::StoreMode::Set,
                    StoreMode::Add => shard::StoreMode::Add,
                    StoreMode::Replace => shard::StoreMode::Replace,
                    StoreMode::Append => shard::StoreMode::Append,
                    StoreMode::Prepend => shard::StoreMode::Prepend,
                };
                let op = McOp::Store {
                    value: ByteView::copy_from_slice(st.value),
                    cmd: StoreCommand {
                        mode,
                        flags: st.flags,
                        ttl: super::shard_ttl(st.ttl),
                        cas: st.compare_cas,
                    },
                    expired: st.ttl == Ttl::Expired,
                };
                let kind = SlotKind::Store {
                    cas: st.compare_cas.is_some(),
                };
                self.mc_keyed(&st.key.bytes(), &t, kind, op, cur);
            }
            Command::Delete(ref d) => {
                let t = d.target();
                if d.invalidate {
                    return self.unsupported(cur, &t.reply, "stale items (md I) are not supported");
                }
                let op = McOp::Delete { cas: d.compare_cas };
                self.mc_keyed(&d.key.bytes(), &t, SlotKind::Delete, op, cur);
            }
            Command::Touch(ref tc) => {
                self.stats.memcache.cmd_touch.inc();
                let op = McOp::Touch { ttl: tc.ttl };
                self.mc_keyed(&tc.key.bytes(), &tc.target(), SlotKind::Touch, op, cur);
            }
            Command::Arith(ref a) => {
                let t = a.target();
                if let Reply::Meta(m) = &a.reply {
                    if m.wants(b't') {
                        return self.unsupported(
                            cur,
                            &t.reply,
                            "ma's t return flag is not supported",
                        );
                    }
                }
                let delta = match a.mode {
                    crate::frontend::memcache::ArithMode::Incr => Delta::Incr(a.delta),
                    crate::frontend::memcache::ArithMode::Decr => Delta::Decr(a.delta),
                };
                let arith = Arith {
                    delta,
                    vivify: a.vivify.map(|(ttl, initial)| Vivify {
                        initial,
                        ttl: super::shard_ttl(ttl),
                    }),
                    cas: a.compare_cas,
                };
                let kind = SlotKind::Arith {
                    incr: matches!(delta, Delta::Incr(_)),
                };
                let op = McOp::Arith {
                    arith,
                    touch: a.touch,
                };
                self.mc_keyed(&a.key.bytes(), &t, kind, op, cur);
            }
            Command::FlushAll { delay, noreply } => {
                self.stats.memcache.cmd_flush.inc();
                let r = Reply::Classic { noreply };
                if delay > 0 {
                    return self.unsupported(cur, &r, "flush_all with a delay is not supported");
                }
                self.mc_flush(noreply, cur);
            }
            Command::Version => cur.now(|b| reply::version(b, super::VERSION)),
            Command::Verbosity { noreply, .. } => cur.now(|b| reply::ok(b, noreply)),
            Command::Stats { mut args } => match args.next() {
                None => {
                    let mut lines = Vec::with_capacity(2048);
                    self.mc_stats(&mut lines);
                    cur.now(|b| b.extend_from_slice(&lines));
                }
                Some(
                    b"settings" | b"items" | b"slabs" | b"sizes" | b"conns" | b"reset" | b"detail"
                    | b"cachedump" | b"extstore",
                ) => {
                    let r = Reply::Classic { noreply: false };
                    self.unsupported(cur, &r, "this stats sub-command is not supported");
                }
                Some(_) => cur.now(|b| reply::error(b, &ErrorReply::UnknownCommand, false)),
            },
            Command::Quit => *cur.closing = true,
            Command::MetaNoop => cur.now(reply::meta_noop),
            Command::MetaDebug { .. } => {
                let r = Reply::Classic { noreply: false };
                self.unsupported(cur, &r, "me (meta debug) is not supported");
            }
            Command::TooLarge {
                ref key,
                unlink,
                reply,
            } => {
                self.stats.memcache.cmd_set.inc();
                if !unlink {
                    return cur.now(|b| reply::too_large(b, &reply));
                }
                // memcached drops the key's item when a plain set was too large.
                let t = Target {
                    key: key.wire(),
                    base64: key.is_base64(),
                    reply,
                    want_value: false,
                    want_cas: false,
                };
                let op = McOp::Delete { cas: None };
                self.mc_keyed(&key.bytes(), &t, SlotKind::TooLarge, op, cur);
            }
            Command::Error { error, noreply } => cur.now(|b| reply::error(b, &error, noreply)),
        }
    }

    /// `SERVER_ERROR <reason>` for a request this server cannot carry out faithfully
    /// (nothing after a classic `noreply`, as memcached).
    fn unsupported(&mut self, cur: &mut McCur<'_>, r: &Reply<'_>, reason: &'static str) {
        self.stats.memcache.unsupported.inc();
        let error = ErrorReply::Server(reason);
        cur.now(|b| reply::error(b, &error, r.silent()));
    }

    /// Looks ahead at the requests buffered in `data` (at most
    /// [`PREFETCH_COMMANDS`]) and prefetches what the reads among them will find
    /// on this core, up to [`PREFETCH_KEYS`] keys: as the native look-ahead
    /// (`Core::handle_frames`), so a pipelined batch's cache misses overlap. The
    /// requests are walked for their keys ([`read_keys`]), not parsed: they are
    /// parsed once, when performed.
    fn mc_prefetch(&self, data: &[u8]) {
        let limits = &self.mc.limits;
        let mut ahead = [(0usize, 0u64); PREFETCH_KEYS];
        let mut n = 0;
        let max_line = limits.max_get_line.max(limits.max_line);
        read_keys(data, PREFETCH_COMMANDS, max_line, |key| {
            let (g, k) = self.mc_group(key);
            if n < PREFETCH_KEYS && self.core_of(k) == self.id {
                ahead[n] = (g, self.shard.main_hash(g, k));
                n += 1;
            }
        });
        for &(g, hash) in &ahead[..n] {
            self.shard.prefetch(g, hash);
        }
    }

    /// The group and key a memcached key names (`--memcache-group`,
    /// `--memcache-group-prefix`).
    fn mc_group<'k>(&self, key: &'k [u8]) -> (usize, &'k [u8]) {
        let shared = &self.shared;
        let gk = split_group(key, self.mc.prefix, |name| shared.group(name).is_some());
        let g = gk
            .group
            .and_then(|name| shared.group(name))
            .unwrap_or(self.mc.group);
        (g, gk.key)
    }

    /// A retrieval: each key answered in order, then the end marker. A hit on this
    /// core with nothing outstanding goes straight to the output.
    fn mc_get(&mut self, get: &Get<'_>, cur: &mut McCur<'_>) {
        if let Reply::Meta(m) = &get.reply {
            if get.vivify.is_some() || get.recache.is_some() {
                let reason = "mg N and R (vivify, recache) are not supported";
                return self.unsupported(cur, &get.reply, reason);
            }
            if m.wants(b'h') || m.wants(b'l') {
                let reason = "mg's h and l return flags are not supported";
                return self.unsupported(cur, &get.reply, reason);
            }
        }
        let words = match &get.keys {
            // `mg`: its one key, by reference (a key is large: it can hold a
            // decoded base64 key inline).
            KeyList::One(key) => return self.mc_get_key(get, key, cur),
            KeyList::Words(words) => *words,
        };
        if words.clone().nth(MAX_GET_KEYS).is_some() {
            let reason = "a get of more than 16384 keys is not supported";
            return self.unsupported(cur, &get.reply, reason);
        }
        for word in words {
            self.mc_get_key(get, &Key::text(word), cur);
        }
        cur.now(|b| reply::get_end(b, &get.reply));
    }

    /// One key of a retrieval.
    fn mc_get_key(&mut self, get: &Get<'_>, key: &Key<'_>, cur: &mut McCur<'_>) {
        let c = &self.stats.memcache;
        c.cmd_get.inc();
        if get.touch.is_some() {
            c.cmd_touch.inc();
        }
        let t = get.target(key);
        let key_bytes = key.bytes();
        let (g, k) = self.mc_group(&key_bytes);
        if self.core_of(k) == self.id && get.touch.is_none() {
            // A hit is encoded from where the store keeps it (no copy of the value
            // into a buffer of its own).
            let (slots, out, c) = (&mut *cur.slots, &mut *cur.out, &self.stats.memcache);
            let hit = self
                .shard
                .get_meta_hit(self.now, g, k, |value, ttl_ms, meta| {
                    slots.answer_hit_now(&t, value, ttl_ms, meta, out, c);
                });
            if hit.is_none() {
                let w = cur.waiter(self.id, cur.slots.next_seq());
                let topology = &self.topology;
                let via_peer = || matches!(topology.owner(k), Owner::Remote(_));
                self.shard
                    .get_missed(self.now, g, k, w, via_peer, &mut self.shard_out);
                cur.slots.open(&t, SlotKind::Get, 1);
                self.take_shard_effects();
            }
            return;
        }
        let seq = cur.slots.open(&t, SlotKind::Get, 1);
        let op = McOp::Get { touch: get.touch };
        self.mc_route(g, k, op, cur.waiter(self.id, seq));
    }

    /// Sends `op` on its way under the next slot number. An operation this core
    /// answered at once (a write of a key whose shard is here, on a single node)
    /// is answered without a slot; any other gets its slot before the effect queue
    /// runs, so the answer finds it.
    fn mc_keyed(
        &mut self,
        key: &[u8],
        t: &Target<'_>,
        kind: SlotKind,
        op: McOp,
        cur: &mut McCur<'_>,
    ) {
        let (g, k) = self.mc_group(key);
        let w = cur.waiter(self.id, cur.slots.next_seq());
        self.mc_route(g, k, op, w);
        if let Some(Effect::Reply(rw, _)) = self.queue.back() {
            if *rw == w {
                if let Some(Effect::Reply(_, reply)) = self.queue.pop_back() {
                    let c = &self.stats.memcache;
                    return cur.slots.answer_now(kind, t, &reply, cur.out, c);
                }
            }
        }
        cur.slots.open(t, kind, 1);
    }

    /// Performs `op` here if this core holds the key's shard, else sends it there.
    fn mc_route(&mut self, g: usize, key: &[u8], op: McOp, w: Waiter) {
        let shard = self.core_of(key);
        if shard == self.id {
            self.apply_mc(g, key, op, w);
        } else {
            self.stats.node.core_hops.inc();
            self.outboxes[shard].push_key(g as u32, key, KeyOp::Mc(op), w);
        }
    }

    /// `flush_all`: every core empties its part of the default group (of every
    /// group with group addressing on); answered once all did.
    fn mc_flush(&mut self, noreply: bool, cur: &mut McCur<'_>) {
        let t = Target {
            key: b"",
            base64: false,
            reply: Reply::Classic { noreply },
            want_value: false,
            want_cas: false,
        };
        let kind = SlotKind::Flush {
            noreply,
            failed: false,
        };
        let threads = self.shared.threads;
        let (g, all) = (self.mc.group, self.mc.prefix);
        let groups: Vec<usize> = match all {
            true => (0..self.shared.groups.len()).collect(),
            false => vec![g],
        };
        let members: Vec<usize> = self.topology.others().collect();
        let answers = threads + members.len() * groups.len();
        let seq = cur.slots.open(&t, kind, answers as u32);
        let w = cur.waiter(self.id, seq);
        for core in 0..threads {
            if core == self.id {
                self.apply_mc(g, b"", McOp::Flush { all }, w);
            } else {
                self.outboxes[core].push_key(g as u32, b"", KeyOp::Mc(McOp::Flush { all }), w);
            }
        }
        // Every other member flushes the same groups; answered when all answered
        // (or failed: then SERVER_ERROR).
        for &member in &members {
            for &group in &groups {
                self.queue.push_back(crate::core::effects::Effect::Peer(
                    crate::peer::PeerRequest::Flush {
                        member,
                        group: group as u32,
                        waiter: w,
                    },
                ));
            }
        }
    }
}
