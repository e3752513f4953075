//! What can go wrong with a member: why its connection failed ([`PeerError`], logged
//! with the member's name) and why one request to it got no answer ([`NoAnswer`],
//! which also decides the message a client whose write was forwarded gets). Both are
//! plain values: a request to a down member costs no allocation to fail.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use groupcached_protocol::{FrameError, Status};

/// Why a connection to a member failed, could not be opened, or was given up.
/// `Display` says what happened without the member's name (the log line adds it).
#[derive(Debug)]
pub enum PeerError {
    /// The connection is down and its reconnect backoff has not passed.
    Backoff,
    /// Opening the socket failed.
    Connect {
        /// The member's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The socket could not be registered with the core's poll.
    Register(io::Error),
    /// The non-blocking connect completed with an error.
    ConnectFailed {
        /// The member's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Reading failed.
    Read(io::Error),
    /// Writing failed.
    Write(io::Error),
    /// The member closed the connection.
    Closed,
    /// The member sent a request on our connection (only answers come back on it).
    UnexpectedRequest,
    /// The member sent a frame that ends the stream.
    BadFrame(FrameError),
    /// The cluster-secret handshake failed (see [`HandshakeError`]).
    Handshake(HandshakeError),
    /// No randomness for the nonce of a CHALLENGE.
    NoRandomness(NonceError),
}

impl PeerError {
    /// What the requests that were waiting on the connection are failed with.
    pub fn no_answer(&self) -> NoAnswer {
        match self {
            PeerError::Backoff | PeerError::Connect { .. } | PeerError::ConnectFailed { .. } => {
                NoAnswer::Down
            }
            PeerError::Handshake(_) | PeerError::NoRandomness(_) => NoAnswer::Unproven,
            PeerError::Register(_)
            | PeerError::Read(_)
            | PeerError::Write(_)
            | PeerError::Closed
            | PeerError::UnexpectedRequest
            | PeerError::BadFrame(_) => NoAnswer::ConnectionLost,
        }
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Backoff => f.write_str("down (retrying shortly)"),
            PeerError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            PeerError::Register(e) => write!(f, "cannot register its socket: {e}"),
            PeerError::ConnectFailed { addr, source } => {
                write!(f, "connect to {addr} failed: {source}")
            }
            PeerError::Read(e) => write!(f, "read failed: {e}"),
            PeerError::Write(e) => write!(f, "write failed: {e}"),
            PeerError::Closed => f.write_str("it closed the connection"),
            PeerError::UnexpectedRequest => f.write_str("it sent a request on our connection"),
            PeerError::BadFrame(e) => write!(f, "it sent a bad frame: {e}"),
            PeerError::Handshake(e) => e.fmt(f),
            PeerError::NoRandomness(e) => write!(f, "cannot start the handshake: {e}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// How the cluster-secret handshake with a member failed (docs/protocol.md,
/// "Proving the cluster secret"). `Display` reads after the member's name.
#[derive(Debug)]
pub enum HandshakeError {
    /// It answered a handshake this node (which has no secret) did not start.
    Unrequested,
    /// It refused our CHALLENGE: it has no secret, or an older version.
    Refused(Refusal),
    /// It rejected our proof: its secret differs.
    ProofRejected(Refusal),
    /// It accepted our proof but its own proof is wrong.
    WrongProof {
        /// Its address, which may be something else than a member.
        addr: SocketAddr,
    },
    /// It answered out of order.
    OutOfOrder,
    /// It did not answer within `--peer-timeout`.
    TimedOut,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Unrequested => f.write_str("answered a handshake we did not start"),
            HandshakeError::Refused(r) => write!(
                f,
                "refused our cluster-secret handshake ({r}): it has no --cluster-secret-file, \
                 or runs a version without one"
            ),
            HandshakeError::ProofRejected(r) => write!(
                f,
                "rejected our proof of the cluster secret ({r}): its --cluster-secret-file \
                 differs from ours"
            ),
            HandshakeError::WrongProof { addr } => write!(
                f,
                "accepted our proof but its own proof of the cluster secret is wrong (is \
                 something else listening at {addr}?)"
            ),
            HandshakeError::OutOfOrder => f.write_str("answered the handshake out of order"),
            HandshakeError::TimedOut => {
                f.write_str("did not answer the cluster-secret handshake in time")
            }
        }
    }
}

/// A member's refusal of a handshake step: its status and message (copied out of
/// the read buffer; this happens once per connection, not per request).
#[derive(Debug)]
pub struct Refusal {
    /// The status it answered.
    pub status: Status,
    /// Its message, if the answer carried one.
    pub message: Option<Box<str>>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {m}", self.status),
            None => write!(f, "{} with an unexpected body", self.status),
        }
    }
}

/// The operating system gave no randomness for a nonce.
#[derive(Debug, Clone, Copy)]
pub struct NonceError(pub getrandom::Error);

impl fmt::Display for NonceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no randomness for a nonce: {}", self.0)
    }
}

impl std::error::Error for NonceError {}

/// Why a request to a member got no answer. Each has a fixed message, so failing a
/// request allocates nothing however many requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The connection is down (connect failed, or its reconnect backoff runs).
    Down,
    /// The member is suspect (its circuit breaker is open).
    Suspect,
    /// Its address did not resolve.
    NoAddress,
    /// No answer within `--peer-timeout`.
    TimedOut,
    /// The connection failed while the request waited.
    ConnectionLost,
    /// It did not prove the cluster secret (or the handshake could not start).
    Unproven,
    /// It left the member list.
    Left,
    /// It answered UNAVAILABLE or FORBIDDEN.
    Refused,
}

impl NoAnswer {
    /// What a client whose write was forwarded to this member is told.
    pub fn message(self) -> &'static str {
        match self {
            NoAnswer::Down => "the key's owner did not answer: it is down (retrying shortly)",
            NoAnswer::Suspect => {
                "the key's owner did not answer: it is suspect (not answering); not waiting for it"
            }
            NoAnswer::NoAddress => "the key's owner did not answer: its address did not resolve",
            NoAnswer::TimedOut => "the key's owner did not answer in time",
            NoAnswer::ConnectionLost => {
                "the key's owner did not answer: the connection to it failed"
            }
            NoAnswer::Unproven => {
                "the key's owner did not answer: it did not prove the cluster secret"
            }
            NoAnswer::Left => "the key's owner did not answer: it left the member list",
            NoAnswer::Refused => "the key's owner did not answer: it refused the request",
        }
    }
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_map_to_what_waiting_requests_are_told() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(PeerError::Backoff.no_answer(), NoAnswer::Down);
        let e = PeerError::Connect {
            addr,
            source: refused(),
        };
        assert_eq!(e.no_answer(), NoAnswer::Down);
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        assert_eq!(PeerError::Closed.no_answer(), NoAnswer::ConnectionLost);
        let e = PeerError::Handshake(HandshakeError::TimedOut);
        assert_eq!(e.no_answer(), NoAnswer::Unproven);
        assert!(e
            .to_string()
            .contains("did not answer the cluster-secret handshake"));
        for why in [
            NoAnswer::Down,
            NoAnswer::Suspect,
            NoAnswer::NoAddress,
            NoAnswer::TimedOut,
            NoAnswer::ConnectionLost,
            NoAnswer::Unproven,
            NoAnswer::Left,
            NoAnswer::Refused,
        ] {
            assert!(why.message().starts_with("the key's owner did not answer"));
        }
    }
}
