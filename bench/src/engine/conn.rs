//! One logical connection: its sockets (one, or one per ring member), what each has
//! to write, and the requests in flight on each, matched to replies by id
//! (groupcached) or in order (memcached).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};

use super::CONNECT_TIMEOUT;
use crate::proto::{groupcached, Parser, Protocol};
use crate::workload::Op;

/// A request on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) op: Op,
    /// Latency is measured from here: when it was sent (closed loop) or due (open loop).
    pub(super) origin: Instant,
    /// When it was written, for the timeout.
    pub(super) sent: Instant,
    /// Whether it counts (sent after the warm-up).
    pub(super) measured: bool,
}

/// Requests in flight on one socket.
#[derive(Debug)]
pub(super) enum Inflight {
    /// In-order protocols: replies answer the oldest request.
    Fifo(VecDeque<Pending>),
    /// groupcached: the request id is the slot index.
    ById {
        slots: Vec<Option<Pending>>,
        free: Vec<u32>,
        len: usize,
    },
}

impl Inflight {
    pub(super) fn new(protocol: Protocol) -> Self {
        if protocol.in_order() {
            Inflight::Fifo(VecDeque::new())
        } else {
            Inflight::ById {
                slots: Vec::new(),
                free: Vec::new(),
                len: 0,
            }
        }
    }

    /// Stores a request; returns its id.
    pub(super) fn insert(&mut self, p: Pending) -> u32 {
        match self {
            Inflight::Fifo(q) => {
                q.push_back(p);
                0
            }
            Inflight::ById { slots, free, len } => {
                *len += 1;
                match free.pop() {
                    Some(id) => {
                        slots[id as usize] = Some(p);
                        id
                    }
                    None => {
                        slots.push(Some(p));
                        (slots.len() - 1) as u32
                    }
                }
            }
        }
    }

    /// Takes the request a reply answers, `None` if it answers nothing in flight.
    pub(super) fn take(&mut self, id: Option<u32>) -> Option<Pending> {
        match self {
            Inflight::Fifo(q) => q.pop_front(),
            Inflight::ById { slots, free, len } => {
                let id = id?;
                let p = slots.get_mut(id as usize)?.take()?;
                free.push(id);
                *len -= 1;
                Some(p)
            }
        }
    }

    /// Removes every request.
    pub(super) fn drain(&mut self) -> Vec<Pending> {
        match self {
            Inflight::Fifo(q) => q.drain(..).collect(),
            Inflight::ById { slots, free, len } => {
                free.clear();
                *len = 0;
                slots.drain(..).flatten().collect()
            }
        }
    }

    /// When the oldest request was sent.
    pub(super) fn oldest(&self) -> Option<Instant> {
        match self {
            Inflight::Fifo(q) => q.front().map(|p| p.sent),
            Inflight::ById { slots, len, .. } if *len > 0 => {
                slots.iter().flatten().map(|p| p.sent).min()
            }
            Inflight::ById { .. } => None,
        }
    }
}

/// One TCP connection to one server.
#[derive(Debug)]
pub(super) struct Sock {
    pub(super) stream: Option<TcpStream>,
    pub(super) addr: SocketAddr,
    /// Index of `addr` in [`Shared::addrs`](super::Shared::addrs).
    pub(super) addr_idx: usize,
    /// Shard-aware: the server core this socket asks for (again at each reconnect).
    pub(super) core: Option<u16>,
    pub(super) token: Token,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) parser: Parser,
    pub(super) inflight: Inflight,
    pub(super) reconnect_at: Option<Instant>,
}

/// One logical connection: one socket, or one per ring member when routing by owner.
/// The pipeline depth bounds the requests in flight over all its sockets.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) socks: Vec<Sock>,
    pub(super) outstanding: usize,
}

/// Opens a connection (blocking, bounded by [`CONNECT_TIMEOUT`]), moves it to server
/// core `core` with SHARD if given (a refusal leaves it where it landed), then makes
/// it non-blocking and registers it.
pub(super) fn open(
    poll: &Poll,
    addr: SocketAddr,
    token: Token,
    core: Option<u16>,
) -> io::Result<TcpStream> {
    let mut std_stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    std_stream.set_nodelay(true)?;
    if let Some(core) = core {
        std_stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        std_stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        groupcached::shard_handshake(&mut std_stream, core)?;
    }
    std_stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pending(t: Instant) -> Pending {
        Pending {
            op: Op::Get,
            origin: t,
            sent: t,
            measured: true,
        }
    }

    #[test]
    fn ids_are_reused_and_unknown_ids_match_nothing() {
        let t = Instant::now();
        let mut f = Inflight::new(Protocol::Groupcached);
        let a = f.insert(pending(t));
        let b = f.insert(pending(t + Duration::from_millis(1)));
        assert_ne!(a, b);
        assert!(f.take(Some(a)).is_some());
        assert!(f.take(Some(a)).is_none(), "answered twice");
        assert!(f.take(Some(99)).is_none());
        assert!(f.take(None).is_none());
        let c = f.insert(pending(t));
        assert_eq!(c, a, "slot reused");
        assert_eq!(f.oldest(), Some(t));
        assert_eq!(f.drain().len(), 2);
        assert_eq!(f.oldest(), None);
    }

    #[test]
    fn in_order_protocols_match_the_oldest() {
        let t = Instant::now();
        let mut f = Inflight::new(Protocol::Memcache);
        f.insert(pending(t));
        f.insert(pending(t + Duration::from_millis(1)));
        assert_eq!(f.take(None).map(|p| p.sent), Some(t));
        assert_eq!(f.oldest(), Some(t + Duration::from_millis(1)));
    }
}
