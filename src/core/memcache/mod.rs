//! The memcached front end on the core loop (`--memcache-listen`, issue 12): its
//! connections are accepted, read, written, timed out and limited like native ones
//! (`clients.rs`, `limits.rs`), with the codec of [`crate::frontend::memcache`] in
//! place of frames.
//!
//! - `buffer.rs`: the connection's read buffer (bytes, not frames).
//! - `handle.rs`: the read loop (parse, perform, in order) and each command's routing:
//!   keyed operations go to the core whose shard holds the key, exactly like native
//!   requests, as [`McOp`]s.
//! - `apply.rs`: an [`McOp`] on the shard's core, by the cluster's rules (reads
//!   through the owner, writes at the owner only, INVALIDATE before answering).
//! - `slots.rs`: answering strictly in request order although answers complete in
//!   any order.
//! - `encode.rs`: an answer into memcached's bytes.
//! - `stats.rs`: the `stats` command.
//!
//! # Memory per connection
//!
//! Besides the socket and the [`Conn`](super::conn::Conn) itself, one memcached
//! connection holds at most:
//!
//! - its read buffer: `max(1 MiB, max_item_size + 2048 + 2) + 8 KiB`
//!   while a request that long arrives, 16 KiB in steady state, none when idle;
//! - its output: reading stops above 4 MiB queued (answers in the output queue
//!   and answers parked in slots together), and the connection is closed above
//!   `--max-conn-output`;
//! - its slots: reading stops above [`MAX_SLOTS`] outstanding answers, but one
//!   request may open one per key of a `get` (at most [`MAX_GET_KEYS`]), so
//!   at most `(MAX_SLOTS + MAX_GET_KEYS) * SLOT_SIZE` bytes, about 7 MiB (`SLOT_SIZE` is
//!   at most 416 bytes: the reply target, 250-byte key included, kept inline).
//!
//! All of it counts towards `--max-buffer-memory` like a native connection's buffers.

mod apply;
mod buffer;
mod cluster;
mod encode;
mod handle;
mod slots;
mod stats;

use std::time::Duration;

use crate::frontend::memcache::{Limits, Ttl};
use crate::shard::{Arith, StoreCommand};
use crate::value::ByteView;
pub use buffer::LineBuffer;
pub use cluster::{mutate_failure, NON_NUMERIC_MESSAGE};
pub use handle::backpressured;
pub use slots::Slots;

/// What `version` (and `stats`' `version`) answers: a memcached version first,
/// because libmemcached (memcstat, pylibmc, PHP's memcached...) refuses a server
/// whose major version is 0, then groupcached's own.
pub const VERSION: &str = concat!("1.6.18-groupcached-", env!("CARGO_PKG_VERSION"));

/// Outstanding answers above which a memcached connection stops being read.
pub const MAX_SLOTS: usize = 1024;
/// Longest classic retrieval line (`get k1 k2 ...`): memcached sets no limit, and
/// clients send thousands of keys in one `get` (pymemcache's `get_many`).
pub const MAX_GET_LINE: usize = 1 << 20;
/// Most keys one `get` may name; more are answered `SERVER_ERROR` (each key may
/// hold a slot until answered, so this bounds a connection's slots).
pub const MAX_GET_KEYS: usize = 16 * 1024;
/// Longest other command line (memcached's 2048).
pub const MAX_LINE: usize = 2048;

/// A memcached connection's own state, beside the [`Conn`](super::conn::Conn)
/// fields every connection has.
#[derive(Default)]
pub struct McConn {
    /// Bytes read and not yet parsed.
    pub rbuf: LineBuffer,
    /// Bytes of a refused data block still to drop as they arrive.
    pub skip: u64,
    /// Answers not yet written, in request order.
    pub slots: Slots,
}

impl McConn {
    /// Memory held besides the output queue.
    pub fn mem(&self) -> usize {
        self.rbuf.capacity() + self.slots.mem()
    }

    /// Whether an unfinished request is buffered (the frame timeout's clock runs).
    pub fn in_request(&self) -> bool {
        self.rbuf.buffered() > 0 || self.skip > 0
    }
}

/// How this node serves memcached keys (from `--memcache-*`).
#[derive(Debug, Clone, Copy)]
pub struct McSettings {
    /// Index of `--memcache-group`.
    pub group: usize,
    /// `--memcache-group-prefix`.
    pub prefix: bool,
    /// The codec's limits.
    pub limits: Limits,
    /// The memcached port (`--memcache-listen`, with its real port), named by the
    /// binary port's hint to text clients.
    pub addr: Option<std::net::SocketAddr>,
}

impl McSettings {
    /// The settings of `cfg`.
    pub fn from_config(cfg: &crate::config::Config) -> McSettings {
        let group = cfg
            .memcache_group
            .as_ref()
            .and_then(|name| cfg.groups.iter().position(|g| &g.name == name))
            .unwrap_or(0);
        McSettings {
            group,
            prefix: cfg.memcache_group_prefix,
            limits: Limits {
                max_line: MAX_LINE,
                max_get_line: MAX_GET_LINE,
                max_item_size: cfg.max_item_size,
            },
            addr: cfg.memcache_listen,
        }
    }

    /// Whether the memcached front end is on (this node asks owners with FETCH_ITEM).
    pub fn on(&self) -> bool {
        self.addr.is_some()
    }
}

/// A memcached operation on one key, performed by the core whose shard holds the
/// key (it travels there in a [`KeyOp::Mc`](super::mailbox::KeyOp::Mc)).
#[derive(Debug)]
pub enum McOp {
    /// Read-through retrieval with the item's flags and CAS; with `touch`
    /// (`gat`/`gats`/`mg T`) the item's TTL is set first.
    Get {
        /// The new TTL of a get-and-touch.
        touch: Option<Ttl>,
    },
    /// A storage command.
    Store {
        /// The data block, copied once out of the read buffer.
        value: ByteView,
        /// Mode, flags, TTL, CAS.
        cmd: StoreCommand,
        /// The exptime was already past: the stored item becomes invisible at once.
        expired: bool,
    },
    /// `incr`/`decr`/`ma`; `touch` (`ma T`) sets the TTL after a success.
    Arith {
        /// The change.
        arith: Arith,
        /// `ma T`.
        touch: Option<Ttl>,
    },
    /// Classic `touch`.
    Touch {
        /// The new TTL.
        ttl: Ttl,
    },
    /// `delete`/`md`, optionally only at a CAS.
    Delete {
        /// `md C`.
        cas: Option<u64>,
    },
    /// A member's MUTATE TOUCH: set the TTL (`None` = the group's default) and
    /// answer with the item, or NOT_FOUND; `keep` changes nothing. Never a load.
    TouchItem {
        /// The new TTL.
        ttl: Option<Duration>,
        /// `KEEP_TTL`: answer with the item as it is.
        keep: bool,
    },
    /// `flush_all` of this core's part of the group, or of every group (`all`).
    Flush {
        /// Every group (group addressing on), not only the key's.
        all: bool,
    },
}

/// A memcached TTL as the shard takes it: `None` is the group default, which a
/// memcached exptime never means (0 is "never expires"), so never `None`.
pub fn shard_ttl(ttl: Ttl) -> Option<Duration> {
    match ttl {
        Ttl::Never | Ttl::Expired => Some(Duration::ZERO),
        Ttl::Secs(n) => Some(Duration::from_secs(u64::from(n))),
    }
}
