//! One blocking connection to a server: framed writes, framed reads, request ids.
//!
//! This is the low-level layer under [`crate::Client`], public for load generators
//! and tests that want to drive pipelining themselves.//!
//! `outgoing.rs` holds what is checked and computed about a request before it is
//! written (encoded length, limits, the vectored write).

mod outgoing;

pub(crate) use outgoing::{encoded_len, validate, write_all_vectored};

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use groupcached_protocol::{
    Frame, FrameBuffer, Limits, Opcode, Request, RequestKind, DEFAULT_MAX_FRAME, HEADER_LEN,
};

use crate::error::{Error, Result};
use crate::response::OwnedResponse;

/// Default time allowed to establish a TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for a response to arrive (and for each socket write).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A trailing value (SET value, PING payload) at least this long is written straight
/// from the caller's slice with a vectored write instead of being copied into the
/// write buffer. Below it a copy is cheaper than an extra system call.
pub const VECTORED_WRITE_MIN: usize = 16 * 1024;

/// The write buffer is written out by [`Connection::send`] once it holds this much,
/// so that a long batch of sends never buffers without bound.
const WRITE_BUF_HIGH_WATER: usize = 64 * 1024;

/// Initial size of the read buffer.
const READ_BUF_INITIAL: usize = 16 * 1024;

/// The deadline of a [`Connection::recv`] is enforced by re-arming the socket's read
/// timeout; it is re-armed only when off by more than this, so that a response that
/// arrives in one read costs no extra system call.
const REARM_SLACK: Duration = Duration::from_millis(10);

/// How a connection is opened and how long its operations may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Time allowed to establish the TCP connection, per resolved address; `None`
    /// leaves it to the operating system.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for each response to arrive once [`Connection::recv`] waits for
    /// it, and for each socket write to make progress; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Largest frame (the value of its length prefix) sent or accepted. Outgoing
    /// requests over it are refused with [`Error::InvalidArgument`]; an incoming frame
    /// over it is an [`Error::Decode`].
    pub max_frame: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            timeout: Some(DEFAULT_TIMEOUT),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl ConnectOptions {
    pub(crate) fn check(&self) -> Result<()> {
        if self.connect_timeout == Some(Duration::ZERO) || self.timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "a timeout of zero is not allowed (use None to wait forever)".into(),
            ));
        }
        if self.max_frame < HEADER_LEN {
            return Err(Error::InvalidArgument(format!(
                "max_frame of {} bytes is smaller than a frame header",
                self.max_frame
            )));
        }
        Ok(())
    }
}

/// A blocking, framed connection to one server.
///
/// # Contract
/// - [`Connection::send`] validates a request (key and group lengths, frame size)
///   and appends it to the write buffer. It may write to the socket — when the buffer
///   passes 64 KiB, or at once for a trailing value of [`VECTORED_WRITE_MIN`] bytes or
///   more, which goes out by a vectored write straight from the caller's slice — but
///   nothing is guaranteed to reach the server until [`Connection::flush`].
/// - [`Connection::recv`] returns the next response frame, in the order the server
///   sent it. The server may answer pipelined requests **out of order**: match them
///   by [`OwnedResponse::id`]. Error statuses are returned as responses, not as
///   `Err`; [`OwnedResponse::into_result`] converts them.
/// - Request ids are the caller's: [`Connection::next_id`] hands out distinct
///   non-zero ids (0 is what a server uses when it could not read a request's id).
/// - The caller bounds what is in flight. A server that stops reading while its
///   answers go unread, and a client that keeps writing, block each other; the write
///   timeout then turns the stall into [`Error::Timeout`]. Reading responses before
///   about 1,000 requests (or a few hundred KiB) are outstanding avoids it.
/// - After an error that [breaks the connection](Error::breaks_connection), or a
///   frame that is not a response, the connection is [broken](Connection::is_broken)
///   and every later call fails; open a new one.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    read_buf: FrameBuffer,
    write_buf: Vec<u8>,
    next_id: u32,
    broken: bool,
    timeout: Option<Duration>,
    /// The read timeout currently set on the socket.
    armed: Option<Duration>,
    max_frame: usize,
}

impl Connection {
    /// Connects to the first address of `addr` that accepts, with TCP_NODELAY set
    /// (requests are small and latency-bound; writes are already batched by flush).
    pub fn connect(addr: impl ToSocketAddrs, opts: &ConnectOptions) -> Result<Connection> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(Error::Io)?.collect();
        Connection::connect_addrs(&addrs, opts)
    }

    /// Connects to the first of `addrs` that accepts.
    pub(crate) fn connect_addrs(addrs: &[SocketAddr], opts: &ConnectOptions) -> Result<Connection> {
        opts.check()?;
        let mut last = None;
        for addr in addrs {
            let attempt = match opts.connect_timeout {
                Some(t) => TcpStream::connect_timeout(addr, t),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => return Connection::from_stream(stream, opts),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => Error::from_io(e),
            None => Error::InvalidArgument("the server address resolved to nothing".into()),
        })
    }

    /// Wraps an already connected stream, setting TCP_NODELAY and the timeouts.
    pub fn from_stream(stream: TcpStream, opts: &ConnectOptions) -> Result<Connection> {
        opts.check()?;
        stream.set_nodelay(true).map_err(Error::Io)?;
        stream.set_read_timeout(opts.timeout).map_err(Error::Io)?;
        stream.set_write_timeout(opts.timeout).map_err(Error::Io)?;
        Ok(Connection {
            stream,
            read_buf: FrameBuffer::new(Limits::with_max_frame(opts.max_frame), READ_BUF_INITIAL),
            write_buf: Vec::with_capacity(4096),
            next_id: 1,
            broken: false,
            timeout: opts.timeout,
            armed: opts.timeout,
            max_frame: opts.max_frame,
        })
    }

    /// A fresh request id: sequential, wrapping, never 0.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Whether an earlier error left this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.stream.peer_addr().map_err(Error::Io)
    }

    /// The largest frame this connection sends or accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes sent but not yet written to the socket.
    pub fn pending_write(&self) -> usize {
        self.write_buf.len()
    }

    /// Validates `request` and queues it (see the [contract](Connection)). An invalid
    /// request is refused with [`Error::InvalidArgument`] and nothing is queued.
    pub fn send(&mut self, request: &Request<'_>) -> Result<()> {
        self.check_usable()?;
        validate(&request.kind, self.max_frame)?;
        let tail = request.encode_head(&mut self.write_buf);
        if tail.len() >= VECTORED_WRITE_MIN {
            let result = write_all_vectored(&mut self.stream, &[&self.write_buf, tail]);
            self.write_buf.clear();
            return result.map_err(|e| self.fail(Error::from_io(e)));
        }
        self.write_buf.extend_from_slice(tail);
        if self.write_buf.len() >= WRITE_BUF_HIGH_WATER {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything queued by [`Connection::send`] to the socket.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let result = write_all_vectored(&mut self.stream, &[&self.write_buf]);
        self.write_buf.clear();
        result.map_err(|e| self.fail(Error::from_io(e)))
    }

    /// Reads until one whole response frame has arrived and returns it, waiting at most
    /// the configured timeout in total ([`Error::Timeout`] after that). Does not flush.
    pub fn recv(&mut self) -> Result<OwnedResponse> {
        self.check_usable()?;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            match self.read_buf.next_frame() {
                Ok(Some(Frame::Response(r))) => return Ok(OwnedResponse::from_response(&r)),
                Ok(Some(Frame::Request(r))) => {
                    let msg = format!("server sent a request (id {}) instead of a response", r.id);
                    return Err(self.fail(Error::Protocol(msg)));
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(Error::Decode(e))),
            }
            self.fill(deadline)?;
        }
    }

    /// One round trip: sends `kind` under a fresh id, flushes, and returns the
    /// response after checking that it answers this request. Only for a connection
    /// with nothing else in flight.
    pub fn call(&mut self, kind: RequestKind<'_>) -> Result<OwnedResponse> {
        let id = self.next_id();
        self.send(&Request { id, kind })?;
        self.flush()?;
        let response = self.recv()?;
        self.check_answer(&response, id, kind.opcode())?;
        Ok(response)
    }

    /// Checks that `response` answers request `id` with opcode `op`. If not, the
    /// stream no longer lines up with the requests: the connection is broken, and the
    /// error is the server's own if it sent one (a connection-level error frame, e.g.
    /// with id 0, before closing), else [`Error::Protocol`].
    pub(crate) fn check_answer(
        &mut self,
        response: &OwnedResponse,
        id: u32,
        op: Opcode,
    ) -> Result<()> {
        if response.id == id && response.opcode == op as u8 {
            return Ok(());
        }
        let expected = format!("a {op} response to request {id}");
        Err(self.unmatched(response, &expected))
    }

    /// Breaks the connection over a response that answers nothing the caller is
    /// waiting for (`expected` says what was); see [`Connection::check_answer`].
    pub(crate) fn unmatched(&mut self, response: &OwnedResponse, expected: &str) -> Error {
        let err = if response.status.carries_message() {
            response.clone().into_server_error()
        } else {
            Error::Protocol(format!(
                "expected {expected}, got opcode 0x{:02x} for request {}",
                response.opcode, response.id
            ))
        };
        self.fail(err)
    }

    /// Marks the connection broken and returns `err`.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        self.broken = true;
        err
    }

    fn check_usable(&self) -> Result<()> {
        if self.broken {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection is unusable after an earlier error",
            )));
        }
        Ok(())
    }

    /// One read into the frame buffer, bounded by `deadline`.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.fail(Error::Timeout));
            }
            let off_by = match self.armed {
                Some(armed) => armed.abs_diff(remaining),
                None => Duration::MAX,
            };
            if off_by > REARM_SLACK {
                if let Err(e) = self.stream.set_read_timeout(Some(remaining)) {
                    return Err(self.fail(Error::Io(e)));
                }
                self.armed = Some(remaining);
            }
        }
        loop {
            match self.stream.read(self.read_buf.read_space()) {
                Ok(0) => {
                    let what = if self.read_buf.buffered() > 0 {
                        "server closed the connection in the middle of a frame"
                    } else {
                        "server closed the connection"
                    };
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, what);
                    return Err(self.fail(Error::Io(e)));
                }
                Ok(n) => {
                    self.read_buf.commit(n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail(Error::from_io(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sequential_and_skip_zero() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut c = Connection::connect(addr, &ConnectOptions::default()).expect("connect");
        assert_eq!(c.next_id(), 1);
        assert_eq!(c.next_id(), 2);
        c.next_id = u32::MAX;
        assert_eq!(c.next_id(), u32::MAX);
        assert_eq!(c.next_id(), 1);
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let opts = ConnectOptions {
            timeout: Some(Duration::ZERO),
            ..ConnectOptions::default()
        };
        assert!(matches!(
            Connection::connect("127.0.0.1:1", &opts),
            Err(Error::InvalidArgument(_))
        ));
    }
}
