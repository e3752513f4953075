//! The fixed 12-byte frame header.

use byteorder::{BigEndian, ByteOrder};

/// The protocol version this crate speaks. See "Versioning" in docs/protocol.md.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of the length prefix that starts every frame.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes of the whole fixed header, length prefix included.
pub const HEADER_LEN: usize = 12;

/// Flag bit set on every response frame.
pub const FLAG_RESPONSE: u8 = 0x01;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The length prefix: bytes that follow it (8 header bytes + body).
    pub len: u32,
    /// Protocol version of the sender.
    pub version: u8,
    /// Raw opcode byte (requests: what to do; responses: echoed from the request).
    pub opcode: u8,
    /// Flag bits; [`FLAG_RESPONSE`] marks a response.
    pub flags: u8,
    /// Raw status byte (0 in requests).
    pub status: u8,
    /// Chosen by the requester, echoed in the response.
    pub request_id: u32,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes, or `None` if fewer are given.
    /// No field is validated here.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(Header {
            len: BigEndian::read_u32(&buf[0..4]),
            version: buf[4],
            opcode: buf[5],
            flags: buf[6],
            status: buf[7],
            request_id: BigEndian::read_u32(&buf[8..12]),
        })
    }

    /// Whether this header belongs to a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Bytes of the body that follows the header.
    pub fn body_len(&self) -> usize {
        (self.len as usize).saturating_sub(HEADER_LEN - LENGTH_PREFIX_LEN)
    }

    /// Bytes of the whole frame, length prefix included.
    pub fn frame_len(&self) -> usize {
        self.len as usize + LENGTH_PREFIX_LEN
    }

    /// The header's wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        BigEndian::write_u32(&mut b[0..4], self.len);
        b[4] = self.version;
        b[5] = self.opcode;
        b[6] = self.flags;
        b[7] = self.status;
        BigEndian::write_u32(&mut b[8..12], self.request_id);
        b
    }
}
