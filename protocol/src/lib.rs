//! The groupcached wire protocol and consistent-hash ring.
//!
//! This crate is pure: it never touches a socket, a clock or a thread, so everything
//! in it can be tested byte for byte. The server, the client and the load generator
//! all speak through it, which keeps the three in agreement by construction.
//!
//! - [`Request`] / [`Response`] are the frames, borrowing their byte fields from the
//!   buffer they were decoded from (a value is copied at most once, by the caller
//!   that decides to keep it).
//! - [`decode`] turns the front of a byte slice into a frame; [`FrameBuffer`] is an
//!   incremental read buffer that a connection feeds with whatever its socket returns.
//! - `encode` / `encode_head` on the frames write them; `encode_head` stops before a
//!   trailing value so a large value can go out with a vectored write, uncopied.
//! - [`Ring`] maps a key to the member that owns it, identically on every node and in
//!   every client; [`shard_of`] picks the core inside a node.
//!
//! The normative description of the bytes is `docs/protocol.md`; the tests of this
//! crate read the hex examples and ring vectors from that file, so the two cannot drift.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod buffer;
mod decode;
mod encode;
mod error;
mod frame;
mod hash;
mod header;
mod limits;
mod mutate;
mod opcode;
mod ring;

pub use buffer::FrameBuffer;
pub use decode::decode;
pub use error::{DecodeError, FrameError};
pub use frame::{
    Frame, HelloInfo, KeyRef, MemberList, Request, RequestKind, Response, ResponseBody, StatsList,
    SHARD_QUERY,
};
pub use hash::{key_hash, shard_hash, shard_of, SHARD_SEED};
pub use header::{Header, FLAG_RESPONSE, HEADER_LEN, LENGTH_PREFIX_LEN, PROTOCOL_VERSION};
pub use limits::{
    Limits, DEFAULT_MAX_FRAME, MAX_GROUP_LEN, MAX_KEY_LEN, MAX_NODE_ID_LEN, NONCE_LEN, PROOF_LEN,
};
pub use mutate::{MutateMode, KEEP_TTL, MUTATE_VIVIFY};
pub use opcode::{Opcode, Status};
pub use ring::{Ring, DEFAULT_VNODES};
