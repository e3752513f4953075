//! Blocking Rust client for groupcached.
//!
//! [`Client`] talks to one server and offers typed calls:
//!
//! ```no_run
//! use std::time::Duration;
//! use groupcached_client::Client;
//!
//! # fn main() -> Result<(), groupcached_client::Error> {
//! let mut client = Client::builder("127.0.0.1:7000")
//!     .timeout(Duration::from_secs(2))
//!     .connect()?;
//! client.set("thumbs", b"cat.jpg", b"...bytes...", Some(Duration::from_secs(60)))?;
//! if let Some(value) = client.get("thumbs", b"cat.jpg")? {
//!     println!("{} bytes, ttl {:?}", value.len(), value.ttl());
//! }
//! let values = client.get_many("thumbs", &["a", "b", "c"])?; // one pipelined batch
//! # let _ = values;
//! # Ok(())
//! # }
//! ```
//!
//! - **Shard-aware by default.** The server runs one thread per core, each holding
//!   one shard of the cache; a request that arrives on the wrong core hops to the
//!   right one inside the server. The client asks the server its core count (SHARD,
//!   docs/protocol.md), keeps one connection per core, each moved to its core, and
//!   sends each key on the connection of its core
//!   ([`protocol::shard_of`]`(key, threads)`), so nothing hops. Keyless calls (STATS,
//!   PING, HELLO) use any open connection. A server that does not take SHARD
//!   (`UNKNOWN_OP` from an older one, or `BAD_REQUEST`) gets one plain connection;
//!   [`ClientBuilder::shard_aware`]`(false)` (and [`ClusterBuilder::shard_aware`])
//!   keeps one plain connection always, as before.
//! - Everything is blocking `std::net`: no async runtime, no background thread. A
//!   client is used by one thread at a time (`&mut self`); use one per thread.
//! - Keys are arbitrary bytes (`impl AsRef<[u8]>`); keys and groups are validated
//!   against the protocol's limits before anything is sent ([`Error::InvalidArgument`]).
//! - After a fault that leaves the stream in an unknown state (I/O error, timeout,
//!   undecodable frame) that connection is dropped and the next call that needs it
//!   reconnects once (other per-core connections are kept).
//! - Batches ([`Client::get_many`], [`Pipeline`]) are pipelined in bounded windows,
//!   over every per-core connection they need at once, and matched by request id,
//!   since a server may answer out of order; results come back in the caller's order.
//! - [`ClusterClient`] knows the cluster's members (given, or learnt from a seed
//!   node by HELLO), computes the same ring as the servers and sends each key straight
//!   to its owner (and, shard-aware, to the owner's core for it) over pooled
//!   connections per member, falling back to the next member when the owner is down.
//! - [`Connection`] is the low-level layer (send / flush / recv of raw frames) for
//!   load generators and tests that drive pipelining themselves.
//!
//! The `groupcached-cli` binary of this crate is a command-line front end to [`Client`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod cluster;
mod conn;
mod error;
mod pipeline;
mod response;
mod stats;

pub use client::{Client, ClientBuilder};
pub use cluster::{ClusterBuilder, ClusterClient, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF};
pub use conn::{
    ConnectOptions, Connection, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, VECTORED_WRITE_MIN,
};
pub use error::{Error, Result};
/// Reads a duration as every groupcached binary does (`500ms`, `1.5s`, `5m`, `1d`);
/// the grammar is documented in [`units`].
pub use groupcached_units::parse_duration;
pub use pipeline::{Pipeline, Reply, MAX_BYTES_IN_FLIGHT, MAX_IN_FLIGHT};
pub use response::{Hello, OwnedBody, OwnedResponse, Value};
pub use stats::Stats;

/// The protocol crate, re-exported so users of [`Connection`] need not depend on it
/// separately (and cannot end up with a mismatched version).
pub use groupcached_protocol as protocol;

/// The duration and size grammar shared by the server, `groupcached-cli` and
/// `groupcached-bench`, re-exported for [`parse_duration`]'s error type.
pub use groupcached_units as units;
