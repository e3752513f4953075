//! Decoding a frame from the front of a byte slice.

use byteorder::{BigEndian, ByteOrder};

use crate::error::{DecodeError, FrameError};
use crate::frame::{
    Frame, HelloInfo, KeyRef, MemberList, Request, RequestKind, Response, ResponseBody, StatsList,
};
use crate::header::{Header, HEADER_LEN, LENGTH_PREFIX_LEN, PROTOCOL_VERSION};
use crate::limits::{Limits, MAX_GROUP_LEN, MAX_KEY_LEN, NONCE_LEN, PROOF_LEN};
use crate::mutate::MutateMode;
use crate::opcode::{Opcode, Status};

/// Decodes the frame at the front of `buf`.
///
/// Returns `Ok(None)` while `buf` holds less than a whole frame (no error, just read
/// more), `Ok(Some((frame, consumed)))` with the number of bytes the frame used, or an
/// error. The size limit is checked on the 12-byte header, before the body is needed,
/// so a caller that buffers never grows its buffer for an oversized frame.
pub fn decode<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
    let Some(header) = Header::peek(buf) else {
        // A length prefix alone can already prove the frame bad.
        if buf.len() >= LENGTH_PREFIX_LEN {
            let len = BigEndian::read_u32(&buf[0..4]) as usize;
            if len < HEADER_LEN - LENGTH_PREFIX_LEN {
                return Err(fatal(DecodeError::FrameTooShort { len }));
            }
        }
        return Ok(None);
    };
    let len = header.len as usize;
    if len < HEADER_LEN - LENGTH_PREFIX_LEN {
        return Err(fatal(DecodeError::FrameTooShort { len }));
    }
    if header.version != PROTOCOL_VERSION {
        return Err(FrameError {
            error: DecodeError::BadVersion(header.version),
            request_id: header.request_id,
            opcode: header.opcode,
            skip: None,
        });
    }
    let fail = |error: DecodeError| FrameError {
        error,
        request_id: header.request_id,
        opcode: header.opcode,
        skip: (!error.is_fatal()).then_some(header.frame_len()),
    };
    if len > limits.max_frame {
        return Err(fail(DecodeError::FrameTooLarge {
            len,
            max: limits.max_frame,
        }));
    }
    let total = header.frame_len();
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..total];
    let frame = if header.is_response() {
        Frame::Response(decode_response(&header, body).map_err(fail)?)
    } else {
        Frame::Request(decode_request(&header, body).map_err(fail)?)
    };
    Ok(Some((frame, total)))
}

fn fatal(error: DecodeError) -> FrameError {
    FrameError {
        error,
        request_id: 0,
        opcode: 0,
        skip: None,
    }
}

#[inline(always)]
fn decode_request<'a>(h: &Header, body: &'a [u8]) -> Result<Request<'a>, DecodeError> {
    let op = Opcode::try_from(h.opcode).map_err(DecodeError::UnknownOpcode)?;
    let mut c = Cursor { buf: body, pos: 0 };
    let kind = match op {
        Opcode::Get => RequestKind::Get(c.key_ref()?),
        Opcode::Delete => RequestKind::Delete(c.key_ref()?),
        Opcode::Fetch => RequestKind::Fetch(c.key_ref()?),
        Opcode::Invalidate => RequestKind::Invalidate(c.key_ref()?),
        Opcode::Set | Opcode::Store => {
            let key = c.key_ref()?;
            let ttl_ms = c.u64("SET ttl")?;
            let value = c.rest();
            if op == Opcode::Set {
                RequestKind::Set { key, ttl_ms, value }
            } else {
                RequestKind::Store { key, ttl_ms, value }
            }
        }
        Opcode::Purge => RequestKind::Purge(c.key_ref()?),
        Opcode::Stats => RequestKind::Stats,
        Opcode::Ping => RequestKind::Ping(c.rest()),
        Opcode::Hello => {
            let n = c.u8("HELLO node id length")? as usize;
            let node_id = c.bytes(n, "HELLO node id")?;
            let ring_fingerprint = c.u64("HELLO ring fingerprint")?;
            RequestKind::Hello {
                node_id,
                ring_fingerprint,
            }
        }
        Opcode::Challenge => RequestKind::Challenge {
            nonce: c.bytes(NONCE_LEN, "CHALLENGE nonce is shorter than 16 bytes")?,
        },
        Opcode::Auth => RequestKind::Auth {
            proof: c.bytes(PROOF_LEN, "AUTH proof is shorter than 32 bytes")?,
        },
        Opcode::Shard => RequestKind::Shard {
            core: c.u16("SHARD core")?,
        },
        Opcode::Mutate => {
            let key = c.key_ref()?;
            // Checked as soon as it is read, like a length field: the frame is whole,
            // so an unknown mode skips it and keeps the connection.
            let mode = MutateMode::try_from(c.u8("MUTATE mode")?)
                .map_err(DecodeError::UnknownMutateMode)?;
            RequestKind::Mutate {
                key,
                mode,
                flags: c.u32("MUTATE flags")?,
                ttl_ms: c.u64("MUTATE ttl")?,
                cas: c.u64("MUTATE cas")?,
                delta: c.u64("MUTATE delta")?,
                value: c.rest(),
            }
        }
        Opcode::FetchItem => RequestKind::FetchItem(c.key_ref()?),
        Opcode::Flush => RequestKind::Flush { group: c.group()? },
    };
    c.finish()?;
    Ok(Request {
        id: h.request_id,
        kind,
    })
}

#[inline(always)]
fn decode_response<'a>(h: &Header, body: &'a [u8]) -> Result<Response<'a>, DecodeError> {
    let status = Status::try_from(h.status).map_err(DecodeError::UnknownStatus)?;
    let mut c = Cursor { buf: body, pos: 0 };
    let body = if status.carries_message() {
        ResponseBody::Message(c.rest())
    } else if status == Status::NotFound {
        ResponseBody::Empty
    } else {
        let op = Opcode::try_from(h.opcode).map_err(DecodeError::UnknownOpcode)?;
        match op {
            Opcode::Get | Opcode::Fetch => {
                let ttl_ms = c.u64("value ttl")?;
                ResponseBody::Value {
                    ttl_ms,
                    value: c.rest(),
                }
            }
            Opcode::Set | Opcode::Store | Opcode::Invalidate | Opcode::Flush => ResponseBody::Empty,
            Opcode::Mutate => ResponseBody::Mutated {
                flags: c.u32("MUTATE flags")?,
                cas: c.u64("MUTATE cas")?,
                value: c.rest(),
            },
            Opcode::FetchItem => ResponseBody::Item {
                ttl_ms: c.u64("value ttl")?,
                flags: c.u32("FETCH_ITEM flags")?,
                cas: c.u64("FETCH_ITEM cas")?,
                value: c.rest(),
            },
            Opcode::Delete | Opcode::Purge => match c.u8("DELETE result")? {
                0 => ResponseBody::Deleted(false),
                1 => ResponseBody::Deleted(true),
                _ => return Err(DecodeError::Malformed("DELETE result is not 0 or 1")),
            },
            Opcode::Stats => ResponseBody::Stats(StatsList::parse(c.rest()).ok_or(
                DecodeError::Malformed("STATS list does not match its count"),
            )?),
            Opcode::Ping => ResponseBody::Pong(c.rest()),
            Opcode::Hello => {
                let n = c.u8("HELLO node id length")? as usize;
                let node_id = c.bytes(n, "HELLO node id")?;
                let ring_fingerprint = c.u64("HELLO ring fingerprint")?;
                let vnodes = c.u32("HELLO vnodes")?;
                let (members, used) = MemberList::parse_prefix(&c.buf[c.pos..])
                    .ok_or(DecodeError::Malformed("HELLO member list is truncated"))?;
                c.pos += used;
                ResponseBody::Hello(HelloInfo {
                    node_id,
                    ring_fingerprint,
                    vnodes,
                    members,
                })
            }
            Opcode::Challenge => {
                ResponseBody::Nonce(c.bytes(NONCE_LEN, "CHALLENGE nonce is shorter than 16 bytes")?)
            }
            Opcode::Auth => {
                ResponseBody::Proof(c.bytes(PROOF_LEN, "AUTH proof is shorter than 32 bytes")?)
            }
            Opcode::Shard => ResponseBody::Shard {
                threads: c.u16("SHARD threads")?,
                core: c.u16("SHARD core")?,
            },
        }
    };
    c.finish()?;
    Ok(Response {
        id: h.request_id,
        opcode: h.opcode,
        status,
        body,
    })
}

/// Reads fields off a frame body, turning a short body into `Malformed`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Malformed(what))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(BigEndian::read_u16(self.bytes(2, what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(BigEndian::read_u32(self.bytes(4, what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(BigEndian::read_u64(self.bytes(8, what)?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let b = &self.buf[self.pos..];
        self.pos = self.buf.len();
        b
    }

    /// `group_len` u8 (1..=64, checked before the bytes are looked for), group.
    fn group(&mut self) -> Result<&'a [u8], DecodeError> {
        let glen = self.u8("group length")? as usize;
        if glen == 0 || glen > MAX_GROUP_LEN {
            return Err(DecodeError::BadGroupLength(glen));
        }
        self.bytes(glen, "group is truncated")
    }

    fn key_ref(&mut self) -> Result<KeyRef<'a>, DecodeError> {
        let group = self.group()?;
        let klen = self.u16("key length")? as usize;
        if klen == 0 || klen > MAX_KEY_LEN {
            return Err(DecodeError::BadKeyLength(klen));
        }
        let key = self.bytes(klen, "key is truncated")?;
        Ok(KeyRef { group, key })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "trailing bytes after the last field",
            ))
        }
    }
}
