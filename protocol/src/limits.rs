//! Size limits that are part of the protocol, and the configurable frame limit.

/// Longest group name, in bytes. Fixed by the protocol (its length travels as a `u8`).
pub const MAX_GROUP_LEN: usize = 64;

/// Longest key, in bytes. Fixed by the protocol so every node and client agree.
pub const MAX_KEY_LEN: usize = 4096;

/// Longest node id in HELLO, in bytes.
pub const MAX_NODE_ID_LEN: usize = 255;

/// Default largest frame (the value of its length prefix) a receiver accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The limits a decoder enforces. Only the frame size is configurable; key and group
/// limits are fixed by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted value of a frame's length prefix (header + body), in bytes.
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl Limits {
    /// Limits with the given largest frame size.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Limits { max_frame }
    }
}

/// Bytes of a CHALLENGE nonce (request and OK response), fixed by the protocol.
pub const NONCE_LEN: usize = 16;

/// Bytes of an AUTH proof (request and OK response): an HMAC-SHA256 output.
pub const PROOF_LEN: usize = 32;
