//! Decoding errors.

use std::fmt;

use crate::opcode::Status;

/// What is wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix is smaller than the fixed header; the stream cannot be resynchronised.
    FrameTooShort {
        /// The declared length.
        len: usize,
    },
    /// The length prefix is over the receiver's limit. Nothing was allocated for it.
    FrameTooLarge {
        /// The declared length.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The sender speaks another protocol version (or the stream is not this protocol).
    BadVersion(u8),
    /// The opcode byte names no known operation.
    UnknownOpcode(u8),
    /// A response carries a status byte that names no known status.
    UnknownStatus(u8),
    /// A group name is empty or longer than [`crate::MAX_GROUP_LEN`].
    BadGroupLength(usize),
    /// A key is empty or longer than [`crate::MAX_KEY_LEN`].
    BadKeyLength(usize),
    /// A MUTATE `mode` byte names no mode, sets a bit other than the low 4 and
    /// [`crate::MUTATE_VIVIFY`], or sets VIVIFY on a mode other than INCR/DECR. The
    /// frame is whole, so the stream goes on after it.
    UnknownMutateMode(u8),
    /// The body does not match the layout of its op.
    Malformed(&'static str),
}

impl DecodeError {
    /// Whether the byte stream can go on after this error (the bad frame is skipped),
    /// or the connection must be closed because framing is lost or untrustworthy.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::FrameTooShort { .. }
                | DecodeError::BadVersion(_)
                | DecodeError::Malformed(_)
        )
    }

    /// The status a server answers this error with.
    pub fn status(&self) -> Status {
        match self {
            DecodeError::FrameTooLarge { .. } => Status::TooLarge,
            DecodeError::BadVersion(_) => Status::BadVersion,
            DecodeError::UnknownOpcode(_) => Status::UnknownOp,
            _ => Status::BadRequest,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooShort { len } => {
                write!(f, "frame length {len} is shorter than the 8-byte header")
            }
            DecodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max} bytes")
            }
            DecodeError::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:02x}"),
            DecodeError::UnknownStatus(st) => write!(f, "unknown status 0x{st:02x}"),
            DecodeError::BadGroupLength(n) => write!(
                f,
                "group name of {n} bytes (must be 1..={} bytes)",
                crate::MAX_GROUP_LEN
            ),
            DecodeError::BadKeyLength(n) => {
                write!(
                    f,
                    "key of {n} bytes (must be 1..={} bytes)",
                    crate::MAX_KEY_LEN
                )
            }
            DecodeError::UnknownMutateMode(m) => write!(f, "unknown MUTATE mode 0x{m:02x}"),
            DecodeError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A [`DecodeError`] together with what the header said, so that the receiver can
/// answer the right request and know how many bytes to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// What is wrong.
    pub error: DecodeError,
    /// The request id from the header (0 if the header itself could not be trusted).
    pub request_id: u32,
    /// The raw opcode byte from the header (0 if unknown).
    pub opcode: u8,
    /// Length of the bad frame, prefix included, when the stream can go on after it.
    pub skip: Option<usize>,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (request id {})", self.error, self.request_id)
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
