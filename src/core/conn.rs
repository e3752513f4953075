//! A client connection's state (read buffer, output queue, pending-request count,
//! membership claim, timers), plus the limits that bound what one connection may
//! cost in memory and in time. Its I/O is `crate::net`'s, shared with peer
//! connections.

use std::time::{Duration, Instant};

use groupcached_protocol::{FrameBuffer, Limits};
use mio::net::TcpStream;

use crate::config::Config;
use crate::net::OutQueue;

/// Above this many queued output bytes the connection stops reading requests until
/// the client reads: a client that never reads costs bounded memory.
pub const HIGH_WATER_BYTES: usize = 4 << 20;
/// Above this many unanswered requests the connection stops reading too.
pub const MAX_PENDING: usize = 4096;
/// How long a connection's output may wait for the answers of its requests that
/// went to another core (see [`Conn::hops`]) before it is written without them:
/// once per episode of outstanding hops, and in effect up to 2 ms when the core has
/// nothing else to do, as its poll waits in whole milliseconds. It must outlast a
/// hop's round trip under load (up to two loop turns of the other core, a few
/// hundred µs each): with 200 µs about one batch in five was written in two parts.
pub const HOP_HOLD: Duration = Duration::from_millis(1);
/// Initial (and steady) size of a client connection's read buffer.
pub const READ_BUFFER: usize = 16 * 1024;
/// A connection that completed nothing for this long gives its empty buffers back,
/// so an idle connection costs no buffer memory.
pub const RELEASE_IDLE_BUFFERS_AFTER: Duration = Duration::from_secs(1);

/// What one client connection may cost, and how long it may take (per core copy of
/// the `--idle-timeout`, `--frame-timeout`, `--max-conn-output` and
/// `--max-buffer-memory` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Close a connection that completes no request and takes none of its output
    /// for this long (and has no request being answered).
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose frame is still incomplete this long after its first
    /// bytes arrived (the clock stops while the connection is paused because its
    /// client does not read its answers).
    pub frame_timeout: Option<Duration>,
    /// Close a connection whose unsent output exceeds this many bytes.
    pub max_output: usize,
    /// Bytes all client connections of the node may hold in buffers before the
    /// biggest ones stop being read.
    pub max_buffer_memory: usize,
}

impl ConnLimits {
    /// The limits a configuration asks for.
    pub fn from_config(cfg: &Config) -> ConnLimits {
        ConnLimits {
            idle_timeout: cfg.idle_timeout,
            frame_timeout: cfg.frame_timeout,
            max_output: cfg.conn_output_limit(),
            max_buffer_memory: cfg.buffer_memory_limit(),
        }
    }

    /// How often a core sweeps its connections for these timeouts: an eighth of the
    /// shortest one, between 50 ms and 1 s. A timeout therefore fires between its
    /// value and its value plus an eighth.
    pub fn sweep_interval(&self) -> Duration {
        [self.idle_timeout, self.frame_timeout]
            .into_iter()
            .flatten()
            .map(|d| d / 8)
            .min()
            .unwrap_or(RELEASE_IDLE_BUFFERS_AFTER)
            .clamp(Duration::from_millis(50), RELEASE_IDLE_BUFFERS_AFTER)
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits::from_config(&Config::new())
    }
}

/// Whether a connection with `queued` bytes of unsent output and `pending`
/// unanswered requests must stop reading, and stop decoding what it has already
/// read: so the answers one read can queue at once are bounded too, not only the
/// reads.
pub fn backpressured(queued: usize, pending: usize) -> bool {
    queued > HIGH_WATER_BYTES || pending > MAX_PENDING
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
    /// Requests sent to another core (their key's) and not answered yet. While
    /// there are some, the answers already queued wait for theirs (up to
    /// [`HOP_HOLD`], once until `hops` is back to 0), so that a pipelined batch is
    /// answered in one write rather than one per core: each write is a syscall
    /// here and a wake-up and a read in the client. Native connections only
    /// (memcached ones keep their order anyway).
    pub hops: u32,
    /// Since when queued answers have waited for `hops` in this episode (reset
    /// when `hops` is back to 0).
    pub held_since: Option<Instant>,
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
    /// Reading is paused because connection buffers reached `--max-buffer-memory`
    /// (then `read_paused` is set too); resumed by the core when memory frees up.
    pub mem_paused: bool,
    /// When a frame was last completed or output last taken by the client.
    pub last_active: Instant,
    /// When the incomplete frame now buffered began to arrive.
    pub frame_started: Option<Instant>,
    /// `rbuf.frames()` when last looked at.
    frames_seen: u64,
    /// Buffer memory of this connection as last added to its core's total.
    pub accounted: usize,
    /// A SHARD request asked for this connection to move to that core: no more frames
    /// are decoded here, and the core hands it over after this read.
    pub handoff: Option<usize>,
    /// A memcached front-end connection's own state (`None`: a native connection,
    /// whose input is `rbuf`).
    pub mc: Option<Box<super::memcache::McConn>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.stream.peer_addr().ok())
            .field("gen", &self.gen)
            .field("pending", &self.pending)
            .field("buffered", &self.rbuf.buffered())
            .field("output", &self.out.len())
            .finish_non_exhaustive()
    }
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
    /// A new connection decoding under `limits`, accepted at `now`.
    pub fn new(stream: TcpStream, limits: Limits, gen: u32, now: Instant) -> Self {
        Conn {
            stream,
            rbuf: FrameBuffer::new(limits, READ_BUFFER),
            out: OutQueue::default(),
            gen,
            pending: 0,
            hops: 0,
            held_since: None,
            read_closed: false,
            member: MemberClaim::default(),
            closing: false,
            read_paused: false,
            dirty: false,
            mem_paused: false,
            last_active: now,
            frame_started: None,
            frames_seen: 0,
            accounted: 0,
            handoff: None,
            mc: None,
        }
    }

    /// The same connection speaking memcached's protocols.
    pub fn memcache(mut self) -> Self {
        self.mc = Some(Box::default());
        self
    }

    /// Bytes read and not yet decoded or parsed.
    pub fn input_buffered(&self) -> usize {
        match &self.mc {
            Some(mc) => mc.rbuf.buffered(),
            None => self.rbuf.buffered(),
        }
    }

    /// Whether the next read would enlarge the read buffer.
    pub fn input_needs_growth(&self) -> bool {
        match &self.mc {
            Some(mc) => mc.rbuf.needs_growth(),
            None => self.rbuf.needs_growth(),
        }
    }

    /// Requests (frames, memcached commands) taken from the input so far.
    pub fn inputs(&self) -> u64 {
        match &self.mc {
            Some(mc) => mc.rbuf.requests(),
            None => self.rbuf.frames(),
        }
    }

    /// Whether an unfinished request is buffered.
    pub fn in_input(&self) -> bool {
        match &self.mc {
            Some(mc) => mc.in_request(),
            None => self.rbuf.in_frame(),
        }
    }

    /// Shrinks a read buffer that holds much less than its size.
    pub fn trim_input(&mut self) {
        match &mut self.mc {
            Some(mc) => mc.rbuf.trim(),
            None => self.rbuf.trim(),
        }
    }

    /// Frees idle buffers (read buffer, spare slots).
    pub fn release_idle(&mut self) {
        match &mut self.mc {
            Some(mc) => {
                mc.rbuf.release_if_empty();
                mc.slots.release_spare();
            }
            None => self.rbuf.release_if_empty(),
        }
        self.out.release_spare();
    }

    /// Bytes of memory held in this connection's buffers (read buffer and output).
    pub fn mem(&self) -> usize {
        self.rbuf.capacity() + self.out.mem() + self.mc.as_ref().map_or(0, |mc| mc.mem())
    }

    /// Updates the timers after bytes were read and frames decoded at `now`: a
    /// completed frame is activity, and restarts the frame clock if a next frame has
    /// begun; a frame that has begun starts the clock.
    pub fn after_input(&mut self, now: Instant) {
        let frames = self.inputs();
        if frames != self.frames_seen {
            self.frames_seen = frames;
            self.last_active = now;
            self.frame_started = self.in_input().then_some(now);
        } else if !self.in_input() {
            self.frame_started = None;
        } else if self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
    }

    /// Bytes of answers not yet written: the output queue, and for a memcached
    /// connection the answers parked until earlier ones complete.
    pub fn output_len(&self) -> usize {
        self.out.len() + self.mc.as_ref().map_or(0, |mc| mc.slots.parked())
    }

    /// Whether reading should pause until the client catches up.
    pub fn backpressured(&self) -> bool {
        match &self.mc {
            Some(mc) => super::memcache::backpressured(&self.out, &mc.slots),
            None => backpressured(self.out.len(), self.pending),
        }
    }

    /// Whether the connection has nothing left to do and can be closed.
    pub fn finished(&self) -> bool {
        (self.read_closed || self.closing) && self.pending == 0 && self.out.is_empty()
    }
}
