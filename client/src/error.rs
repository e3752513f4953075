//! The client's error type.

use std::fmt;
use std::io;

use groupcached_protocol::{FrameError, Status};

/// Everything a client call can fail with.
///
/// The variants split into two kinds, which matter for what comes next:
/// - [`Error::Io`], [`Error::Timeout`], [`Error::Decode`] and [`Error::Protocol`] leave
///   the byte stream in an unknown state (a frame may be half sent or half read, or
///   responses no longer line up with requests), so the connection is marked broken
///   and a [`crate::Client`] opens a new one on its next call
///   ([`Error::breaks_connection`]).
/// - [`Error::Server`] and [`Error::InvalidArgument`] concern one request only; the
///   connection stays usable.
#[derive(Debug)]
pub enum Error {
    /// The socket failed, or the server closed the connection.
    Io(io::Error),
    /// Connecting, reading or writing took longer than the configured timeout.
    Timeout,
    /// The server sent bytes that are not a valid frame (or one over the client's
    /// frame limit).
    Decode(FrameError),
    /// The server answered with an error status. `NOT_FOUND` is not an error: the
    /// calls that can miss return `Option` or `bool` for it.
    Server {
        /// The status the server answered with.
        status: Status,
        /// The server's message (lossily decoded as UTF-8).
        message: String,
    },
    /// The server sent a well-formed frame that does not answer what was asked (a
    /// request id nobody is waiting for, another opcode, a request instead of a
    /// response, a PING payload that is not the one sent).
    Protocol(String),
    /// The call was refused before anything was sent (empty or too long key or group,
    /// a frame over the client's size limit).
    InvalidArgument(String),
}

/// Result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether this error leaves the connection unusable, so that the next call must
    /// reconnect.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::Timeout | Error::Decode(_) | Error::Protocol(_)
        )
    }

    /// The server's status, for [`Error::Server`].
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps a socket error, turning the kinds a timed-out blocking socket reports
    /// (`WouldBlock` on Unix read/write timeouts, `TimedOut` for connect) into
    /// [`Error::Timeout`].
    pub(crate) fn from_io(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            _ => Error::Io(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Decode(e) => write!(f, "bad frame from server: {e}"),
            Error::Server { status, message } if message.is_empty() => {
                write!(f, "server error {status}")
            }
            Error::Server { status, message } => write!(f, "server error {status}: {message}"),
            Error::Protocol(what) => write!(f, "protocol violation: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::from_io(e)
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Decode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_map_to_timeout_and_others_to_io() {
        let e = Error::from(io::Error::new(io::ErrorKind::WouldBlock, "x"));
        assert!(matches!(e, Error::Timeout));
        let e = Error::from(io::Error::new(io::ErrorKind::TimedOut, "x"));
        assert!(matches!(e, Error::Timeout));
        let e = Error::from(io::Error::new(io::ErrorKind::ConnectionReset, "x"));
        assert!(matches!(e, Error::Io(_)));
        assert!(e.breaks_connection());
    }

    #[test]
    fn server_errors_keep_the_connection_and_display_their_message() {
        let e = Error::Server {
            status: Status::UnknownGroup,
            message: "no group \"x\"".into(),
        };
        assert!(!e.breaks_connection());
        assert_eq!(e.status(), Some(Status::UnknownGroup));
        assert_eq!(e.to_string(), "server error UNKNOWN_GROUP: no group \"x\"");
        assert!(!Error::InvalidArgument("k".into()).breaks_connection());
    }
}
