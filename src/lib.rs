//! groupcached: groupcache as a standalone, thread-per-core cache server.
//!
//! ```text
//!             clients / peers (TCP, length-prefixed frames, see docs/protocol.md)
//!                  |   SO_REUSEPORT spreads connections over cores
//!    +-------------+-------------+---------------------+
//!    | core 0                    | core 1              |  one thread per core, each a
//!    |  mio Poll                 |  mio Poll           |  mio event loop that owns:
//!    |  connections (slab)       |  ...                |   - its connections
//!    |  shard 0: LRU + in-flight |  shard 1            |   - one shard of every group's
//!    |  mailbox + Waker <--------+--> mailbox + Waker  |     main/hot cache and
//!    +-------------+-------------+---------------------+     in-flight table
//!                  | origin I/O never runs on a core loop:
//!                  v
//!         loader threads (crossbeam channel in, result back through the mailbox)
//! ```
//!
//! A key's shard is `shard_of(key, threads)` (a stable hash). A request that arrives
//! on a core that does not hold the key's shard travels to the right core through
//! the cores' mailboxes and its answer comes back the same way; nothing on the
//! request path takes a lock. On a miss the shard's in-flight table makes sure one
//! load runs per key however many requests wait for it, and a SET or DELETE during
//! that load keeps its (possibly older) result out of the cache.
//!
//! # Layers
//!
//! Each module uses only modules below it (`tests/layering.rs` fails on a cycle):
//!
//! ```text
//!   server          start, stop, the membership thread (server::membership);
//!                   listener: binding one SO_REUSEPORT listener per core
//!   metrics         Prometheus text and the /metrics endpoint
//!   core            the event loop: mailbox, client connections, request routing,
//!                   the effect queue, the peer side of the loop, and the memcached
//!                   front end's connections (core::memcache)
//!   shared          read-mostly state every core sees
//!   config          settings, merged from defaults, file, environment and flags
//!   peer            peer connections: request encoding, handshake, health
//!   net             one way to do connection I/O: read step, output queue, Waiter
//!   topology, membership   the ring and its members; reading the member list
//!   shard           the pure cache state machine (now in, effects out)
//!   origin          where values come from, and the loader threads
//!   storage         one cache's item store
//!   frontend        the memcached text and meta codec (no I/O)
//!   value, units, error, stats   plain types, parsing, counters
//!   protocol crate  frames, encoding, the hashes (no I/O)
//! ```
//!
//! Embedding: build a [`Config`] (with [`OriginSpec::Custom`] for your own
//! [`Origin`]), then [`Server::bind`] and [`BoundServer::run`].

pub mod config;
mod core;
pub mod error;
// The memcached codec, served by `core::memcache` (issue 12).
mod frontend;
mod listener;
mod membership;
mod metrics;
mod net;
pub mod origin;
mod peer;
mod server;
mod shard;
mod shared;
mod stats;
mod storage;
mod topology;
mod units;
mod value;

pub use config::{Args, Config, GroupConfig, OriginSpec};
pub use error::{ConfigError, StartError};
pub use membership::PeerSource;
pub use origin::{LoadContext, Loaded, Origin, OriginError};
pub use peer::auth::{ClusterSecret, SecretError};
pub use server::{BoundServer, Server, ServerHandle, ShutdownTrigger};
pub use value::ByteView;

/// Not part of the API, and without any stability promise: the item store, for the
/// benchmarks (`benches/storage.rs`) and the memory test (`tests/storage_memory.rs`)
/// that measure it from outside the crate; and the listener binding, for the
/// loopback echo server of `groupcached-bench`, which must accept connections as
/// the server does to be its ceiling.
#[doc(hidden)]
pub mod internals {
    pub use crate::listener::bind_reuseport;
    pub use crate::shard::lru::{Hit, Lru, Meta};
}
