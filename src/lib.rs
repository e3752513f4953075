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
//! on a core that does not hold the key's shard travels to the right core as a
//! [`mailbox::Msg`] and its answer comes back the same way; nothing on the request
//! path takes a lock. On a miss the shard's in-flight table makes sure one load runs
//! per key however many requests wait for it, and a SET or DELETE during that load
//! keeps its (possibly older) result out of the cache.
//!
//! Embedding: build a [`Config`] (with [`OriginSpec::Custom`] for your own
//! [`Origin`]), then [`Server::bind`] and [`BoundServer::run`].

pub mod config;
mod core;
pub mod error;
// The memcached codec; the listener step wires it into the core loops (issue 12).
#[cfg_attr(not(test), allow(dead_code))]
mod frontend;
mod listener;
pub mod mailbox;
pub mod membership;
pub mod metrics;
pub mod origin;
mod peer;
mod server;
pub mod shard;
mod shared;
pub mod stats;
pub mod storage;
pub mod topology;
pub mod units;
pub mod value;

pub use config::{Args, Config, GroupConfig, OriginSpec};
pub use error::{ConfigError, StartError};
pub use origin::{LoadContext, Loaded, Origin, OriginError};
pub use peer::auth::ClusterSecret;
pub use server::{BoundServer, Server, ServerHandle, ShutdownTrigger};
pub use value::ByteView;
