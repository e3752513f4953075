//! Connections from one core to other members: at most one per member, opened on
//! first use, HELLO first, many requests multiplexed by id, reconnect with backoff.
//! This module keeps their state and speaks their protocol: it encodes requests
//! ([`PeerRequest`]), runs the initiator's side of the cluster-secret handshake
//! (`handshake.rs`), remembers what waits for an answer (`pending.rs`) and says what
//! went wrong ([`PeerError`], [`NoAnswer`]). The core drives the connections (it
//! owns the poll and decides what an answer means); their I/O is `crate::net`'s.

pub mod auth;
mod error;
mod handshake;
pub mod health;
pub mod pending;
mod request;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{FrameBuffer, Limits, Request, RequestKind};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::net::{read_into, Flushed, OutQueue, ReadStep};
pub use error::{HandshakeError, NoAnswer, PeerError};
pub use handshake::{Handshake, HandshakeAnswer, HandshakeStep};
use health::PeerHealth;
use pending::{Pending, PendingOp};
pub use request::PeerRequest;

/// First wait before reconnecting to a peer that failed.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where a peer connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// No socket; connect again on first use at or after `retry_at`.
    Down {
        /// Earliest reconnect.
        retry_at: Instant,
    },
    /// Connecting; requests are queued until the socket is writable.
    Connecting,
    /// Connected.
    Up,
}

/// How often a suspect member is probed: every `--peer-timeout`, within 100 ms..1 s.
pub fn probe_interval(peer_timeout: Duration) -> Duration {
    peer_timeout.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// One core's connection to one member.
pub struct PeerConn {
    /// The member's name (as in the ring).
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Connection state.
    pub state: PeerState,
    /// Requests not yet written.
    pub out: OutQueue,
    /// Bytes read and not yet decoded.
    pub rbuf: FrameBuffer,
    /// Requests written and not yet answered.
    pub pending: Pending,
    backoff: Duration,
    /// Queued in the core's list of peers to flush this turn.
    pub dirty: bool,
    /// Whether this connection counts as up in [`PeerConn::health`].
    pub reported_up: bool,
    /// The node-wide reachability of this member, shared by every core's connection.
    pub health: Arc<PeerHealth>,
    /// Whether a ring mismatch with this peer was already logged.
    pub mismatch_logged: bool,
    /// The cluster-secret handshake on the current connection.
    pub handshake: Handshake,
    /// The node id our HELLO on the current connection named (what proofs bind).
    pub hello_id: Box<[u8]>,
    /// Peer requests encoded while the handshake runs; written once it succeeded.
    /// Their deadlines run meanwhile (they are in [`PeerConn::pending`]).
    pub held: OutQueue,
    /// Requests on this core's connection that timed out since the member last
    /// answered anything: the circuit breaker's count.
    pub timeouts_in_row: u32,
    /// This core's view of the member's breaker ([`PeerHealth::is_suspect`]), taken
    /// once per loop turn, so requests check a plain field.
    pub suspect: bool,
    /// The request id of the probe (PING) in flight while suspect.
    pub probe: Option<u32>,
    /// When to send the next probe while suspect.
    pub next_probe: Instant,
}

/// What reading from a peer produced.
pub enum ReadOutcome {
    /// Frames may be buffered in [`PeerConn::rbuf`].
    Data,
    /// Nothing more to read now.
    Idle,
    /// The connection is gone.
    Failed(PeerError),
}

impl PeerConn {
    /// A connection to `addr`, not opened yet.
    pub fn new(
        name: String,
        addr: SocketAddr,
        limits: Limits,
        now: Instant,
        health: Arc<PeerHealth>,
    ) -> Self {
        PeerConn {
            name,
            addr,
            stream: None,
            state: PeerState::Down { retry_at: now },
            out: OutQueue::default(),
            rbuf: FrameBuffer::new(limits, 64 * 1024),
            pending: Pending::default(),
            backoff: MIN_BACKOFF,
            dirty: false,
            reported_up: false,
            health: health.clone(),
            mismatch_logged: false,
            handshake: Handshake::Open,
            hello_id: Box::default(),
            held: OutQueue::default(),
            timeouts_in_row: 0,
            // A core that opens its first connection to a member other cores
            // already found hung does not wait a peer timeout to learn it.
            suspect: health.is_suspect(),
            probe: None,
            next_probe: now,
        }
    }

    /// Opens the socket if the connection is down and its backoff has passed.
    /// Returns `Ok(true)` when a new connection was started (the caller queues HELLO
    /// first), `Ok(false)` when it was already open, and `Err` while it is down.
    pub fn ensure_open(
        &mut self,
        now: Instant,
        registry: &Registry,
        token: Token,
    ) -> Result<bool, PeerError> {
        match self.state {
            PeerState::Up | PeerState::Connecting => Ok(false),
            PeerState::Down { retry_at } if now < retry_at && !self.health.is_up() => {
                Err(PeerError::Backoff)
            }
            PeerState::Down { .. } => {
                let addr = self.addr;
                let mut stream = TcpStream::connect(addr)
                    .map_err(|source| PeerError::Connect { addr, source })?;
                let _ = stream.set_nodelay(true);
                registry
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(PeerError::Register)?;
                self.stream = Some(stream);
                self.state = PeerState::Connecting;
                Ok(true)
            }
        }
    }

    /// On a writable event while connecting: whether the connection is now up.
    pub fn check_connected(&mut self) -> Result<bool, PeerError> {
        if self.state != PeerState::Connecting {
            return Ok(self.state == PeerState::Up);
        }
        let Some(stream) = &self.stream else {
            return Err(PeerError::Closed);
        };
        let addr = self.addr;
        if let Ok(Some(source)) | Err(source) = stream.take_error() {
            return Err(PeerError::ConnectFailed { addr, source });
        }
        match stream.peer_addr() {
            Ok(_) => {
                self.state = PeerState::Up;
                self.backoff = MIN_BACKOFF;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(source) => Err(PeerError::ConnectFailed { addr, source }),
        }
    }

    /// Writes queued requests (only once connected); once the handshake succeeded,
    /// the requests held back for it follow what was queued before.
    pub fn flush(&mut self) -> Result<(), PeerError> {
        if self.state != PeerState::Up {
            return Ok(());
        }
        let Some(stream) = &mut self.stream else {
            return Ok(());
        };
        loop {
            match self.out.write_to(stream) {
                Ok(Flushed::All) => {
                    if self.handshake == Handshake::Open && !self.held.is_empty() {
                        std::mem::swap(&mut self.out, &mut self.held);
                        continue;
                    }
                    return Ok(());
                }
                Ok(Flushed::Blocked) => return Ok(()),
                Err(e) => return Err(PeerError::Write(e)),
            }
        }
    }

    /// Reads once into the frame buffer.
    pub fn read(&mut self) -> ReadOutcome {
        let Some(stream) = &mut self.stream else {
            return ReadOutcome::Idle;
        };
        match read_into(stream, &mut self.rbuf) {
            ReadStep::Closed => ReadOutcome::Failed(PeerError::Closed),
            ReadStep::Data { .. } => ReadOutcome::Data,
            ReadStep::WouldBlock => ReadOutcome::Idle,
            ReadStep::Failed(e) => ReadOutcome::Failed(PeerError::Read(e)),
        }
    }

    /// Queues `req` under a fresh request id, due by `due`: on the wire queue once
    /// the member proved the cluster secret (or none is needed), held back until
    /// then, its deadline running meanwhile.
    pub fn enqueue(&mut self, req: PeerRequest, group_name: &[u8], now: Instant, due: Instant) {
        let id = self.pending.reserve_id();
        let out = if self.handshake == Handshake::Open {
            &mut self.out
        } else {
            &mut self.held
        };
        let op = req.encode(id, group_name, out, now);
        self.pending.insert_at(id, op, due);
    }

    /// Queues a PING probing a suspect member, due by `deadline`.
    pub fn send_probe(&mut self, deadline: Instant) {
        let id = self.pending.insert(PendingOp::Probe, deadline);
        self.out.push_request(
            &Request {
                id,
                kind: RequestKind::Ping(b"probe"),
            },
            None,
        );
        self.probe = Some(id);
    }

    /// Closes the socket, schedules a reconnect with backoff, and hands back every
    /// unanswered request for the caller to fail.
    pub fn fail(&mut self, now: Instant, registry: &Registry, failed: &mut Vec<PendingOp>) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.state = PeerState::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.out = OutQueue::default();
        self.held = OutQueue::default();
        self.handshake = Handshake::Open;
        self.probe = None;
        self.rbuf = FrameBuffer::new(*self.rbuf.limits(), 64 * 1024);
        self.pending.drain(failed);
    }

    /// Closes for good (the member left the ring).
    pub fn close(&mut self, registry: &Registry, failed: &mut Vec<PendingOp>) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.pending.drain(failed);
    }
}
