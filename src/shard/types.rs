//! The shard's vocabulary: replies, effects, group settings and fetch outcomes.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use groupcached_protocol::Status;

use crate::shard::inflight::LoadId;
use crate::shard::lru::{Hit, Meta};
use crate::value::ByteView;

/// The answer to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A value and its remaining TTL in milliseconds (0 = no expiry).
    Value {
        /// The value.
        value: ByteView,
        /// Remaining time to live in ms; 0 = none.
        ttl_ms: u64,
    },
    /// No such key.
    NotFound,
    /// SET done.
    Stored,
    /// DELETE done; whether an entry was removed.
    Deleted(bool),
    /// INVALIDATE done.
    Invalidated,
    /// A memcached retrieval's value with the item's flags and CAS (a hit, or a
    /// value just loaded or fetched; flags 0 and CAS 0 when it carries none).
    Item(MetaHit),
    /// What a memcached write did at the key's owner.
    Write(crate::shard::WriteOutcome),
    /// A memcached `flush_all` emptied this core's part of the group.
    Flushed,
    /// Failure, with the status and a message for the client.
    Error {
        /// The status.
        status: Status,
        /// Human-readable detail.
        message: Cow<'static, str>,
    },
}

impl Reply {
    /// An error reply.
    pub fn error(status: Status, message: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error {
            status,
            message: message.into(),
        }
    }
}

/// What the shard asks its core to do.
#[derive(Debug)]
pub enum Effect<W> {
    /// Send `reply` to `waiter`.
    Reply(W, Reply),
    /// Fetch `key` of group `group` from its owner; report back with `id` through
    /// [`Shard::on_fetch_done_meta`](crate::shard::Shard::on_fetch_done_meta) or
    /// [`Shard::fallback_local`](crate::shard::Shard::fallback_local).
    Fetch {
        /// Group index.
        group: usize,
        /// Load id to report the result under.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
    /// Start loading `key` of group `group` from its origin; report back with `id`.
    Load {
        /// Group index.
        group: usize,
        /// Load id to report the result under.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
}

/// Per-group settings a shard needs.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// This shard's share of the group's budget (main + hot), in bytes.
    pub budget: usize,
    /// Largest value kept.
    pub max_item: usize,
    /// TTL of loaded values and of SETs without one.
    pub ttl: Option<Duration>,
    /// Whether misses can be loaded (false for `none`: a miss is NOT_FOUND).
    pub has_origin: bool,
    /// Longest a hot-cache copy of another node's value is kept.
    pub hot_ttl: Duration,
}

/// What the owner answered to a FETCH.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// The value and its remaining TTL at the owner (0 = none).
    Value {
        /// The value.
        value: ByteView,
        /// Remaining TTL in milliseconds.
        ttl_ms: u64,
    },
    /// The owner (and its origin) has no value: final, not retried locally.
    NotFound,
    /// The owner answered an error (e.g. its origin failed): passed on as is.
    Error {
        /// The owner's status.
        status: Status,
        /// The owner's message.
        message: String,
    },
}

/// A hit with the item's memcached metadata ([`crate::shard::Shard::get_meta`],
/// [`crate::shard::Shard::get_and_touch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaHit {
    /// The value.
    pub value: ByteView,
    /// Remaining time to live in ms, rounded up; 0 = no expiry.
    pub ttl_ms: u64,
    /// The client's flags (0 for an item stored without).
    pub flags: u32,
    /// The item's CAS unique (0 for an item stored without metadata).
    pub cas: u64,
}

impl MetaHit {
    /// The hit `hit` of an item with metadata `meta`, seen at `now`.
    pub(crate) fn new(hit: Hit, meta: Meta, now: Instant) -> MetaHit {
        MetaHit {
            value: hit.value,
            ttl_ms: ttl_ms(hit.expires, now),
            flags: meta.flags,
            cas: meta.cas,
        }
    }
}

/// Remaining TTL in ms of an item expiring at `expires`, rounded up and never 0
/// for an item that expires (0 means "no expiry").
pub(crate) fn ttl_ms(expires: Option<Instant>, now: Instant) -> u64 {
    match expires {
        Some(e) => (e.saturating_duration_since(now).as_micros().div_ceil(1000) as u64).max(1),
        None => 0,
    }
}
