//! Encoding frames. `encode_head` writes everything but a trailing value, so that the
//! value can follow in a vectored write without being copied into the buffer.

use crate::frame::{KeyRef, Request, RequestKind, Response, ResponseBody};
use crate::header::{Header, FLAG_RESPONSE, HEADER_LEN, LENGTH_PREFIX_LEN, PROTOCOL_VERSION};

impl<'a> Request<'a> {
    /// Appends the frame up to (not including) its trailing value, and returns that
    /// value (`SET`, `STORE` and `MUTATE` value, `PING` payload; empty for other ops). Sending the returned
    /// bytes right after what was written completes the frame.
    ///
    /// # Panics
    /// If the frame would be 4 GiB or larger; callers check values against their limit first.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> &'a [u8] {
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        let tail: &'a [u8] = match self.kind {
            RequestKind::Get(k)
            | RequestKind::Delete(k)
            | RequestKind::Fetch(k)
            | RequestKind::Invalidate(k)
            | RequestKind::Purge(k)
            | RequestKind::FetchItem(k) => {
                put_key_ref(out, k);
                &[]
            }
            RequestKind::Mutate {
                key,
                mode,
                flags,
                ttl_ms,
                cas,
                delta,
                value,
            } => {
                put_key_ref(out, key);
                out.push(mode.to_byte());
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&ttl_ms.to_be_bytes());
                out.extend_from_slice(&cas.to_be_bytes());
                out.extend_from_slice(&delta.to_be_bytes());
                value
            }
            RequestKind::Flush { group } => {
                // Length validated by callers, as in put_key_ref.
                out.push(group.len() as u8);
                out.extend_from_slice(group);
                &[]
            }
            RequestKind::Set { key, ttl_ms, value } | RequestKind::Store { key, ttl_ms, value } => {
                put_key_ref(out, key);
                out.extend_from_slice(&ttl_ms.to_be_bytes());
                value
            }
            RequestKind::Stats => &[],
            RequestKind::Ping(payload) => payload,
            RequestKind::Hello {
                node_id,
                ring_fingerprint,
            } => {
                let id = &node_id[..node_id.len().min(u8::MAX as usize)];
                out.push(id.len() as u8);
                out.extend_from_slice(id);
                out.extend_from_slice(&ring_fingerprint.to_be_bytes());
                &[]
            }
            // Fixed-size fields: callers pass exactly NONCE_LEN / PROOF_LEN bytes (a
            // receiver refuses any other size as malformed).
            RequestKind::Challenge { nonce: field } | RequestKind::Auth { proof: field } => {
                out.extend_from_slice(field);
                &[]
            }
            RequestKind::Shard { core } => {
                out.extend_from_slice(&core.to_be_bytes());
                &[]
            }
        };
        let header = Header {
            len: frame_len(out.len() - start, tail.len()),
            version: PROTOCOL_VERSION,
            opcode: self.kind.opcode() as u8,
            flags: 0,
            status: 0,
            request_id: self.id,
        };
        write_header_at(out, start, &header);
        tail
    }

    /// Appends the whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let tail = self.encode_head(out);
        out.extend_from_slice(tail);
    }
}

impl<'a> Response<'a> {
    /// Appends the frame up to (not including) its trailing value, and returns that
    /// value (the GET/FETCH/FETCH_ITEM value, MUTATE result, PING payload or error
    /// message; empty otherwise).
    ///
    /// # Panics
    /// If the frame would be 4 GiB or larger; callers check values against their limit first.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> &'a [u8] {
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        let tail: &'a [u8] = match self.body {
            ResponseBody::Empty => &[],
            ResponseBody::Value { ttl_ms, value } => {
                out.extend_from_slice(&ttl_ms.to_be_bytes());
                value
            }
            ResponseBody::Deleted(removed) => {
                out.push(removed as u8);
                &[]
            }
            ResponseBody::Stats(list) => list.as_bytes(),
            ResponseBody::Pong(payload) => payload,
            ResponseBody::Hello(info) => {
                let id = &info.node_id[..info.node_id.len().min(u8::MAX as usize)];
                out.push(id.len() as u8);
                out.extend_from_slice(id);
                out.extend_from_slice(&info.ring_fingerprint.to_be_bytes());
                out.extend_from_slice(&info.vnodes.to_be_bytes());
                out.extend_from_slice(info.members.as_bytes());
                &[]
            }
            ResponseBody::Nonce(field) | ResponseBody::Proof(field) => {
                out.extend_from_slice(field);
                &[]
            }
            ResponseBody::Shard { threads, core } => {
                out.extend_from_slice(&threads.to_be_bytes());
                out.extend_from_slice(&core.to_be_bytes());
                &[]
            }
            ResponseBody::Mutated { flags, cas, value } => {
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&cas.to_be_bytes());
                value
            }
            ResponseBody::Item {
                ttl_ms,
                flags,
                cas,
                value,
            } => {
                out.extend_from_slice(&ttl_ms.to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&cas.to_be_bytes());
                value
            }
            ResponseBody::Message(m) => m,
        };
        let header = Header {
            len: frame_len(out.len() - start, tail.len()),
            version: PROTOCOL_VERSION,
            opcode: self.opcode,
            flags: FLAG_RESPONSE,
            status: self.status as u8,
            request_id: self.id,
        };
        write_header_at(out, start, &header);
        tail
    }

    /// Appends the whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let tail = self.encode_head(out);
        out.extend_from_slice(tail);
    }
}

fn put_key_ref(out: &mut Vec<u8>, k: KeyRef<'_>) {
    // Lengths are validated by callers (the decoder refuses anything longer), so the
    // casts below only truncate for a caller that ignored the documented limits.
    out.push(k.group.len() as u8);
    out.extend_from_slice(k.group);
    out.extend_from_slice(&(k.key.len() as u16).to_be_bytes());
    out.extend_from_slice(k.key);
}

fn frame_len(head_written: usize, tail: usize) -> u32 {
    let len = head_written - LENGTH_PREFIX_LEN + tail;
    u32::try_from(len).expect("groupcached frames are smaller than 4 GiB")
}

fn write_header_at(out: &mut [u8], start: usize, header: &Header) {
    out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
}
