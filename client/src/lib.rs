//! Blocking Rust client for groupcached.
//!
//! [`Client`] holds one TCP connection to one server and offers typed calls:
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
//! - Everything is blocking `std::net`: no async runtime, no background thread. A
//!   client is used by one thread at a time (`&mut self`); use one per thread.
//! - Keys are arbitrary bytes (`impl AsRef<[u8]>`); keys and groups are validated
//!   against the protocol's limits before anything is sent ([`Error::InvalidArgument`]).
//! - After a fault that leaves the stream in an unknown state (I/O error, timeout,
//!   undecodable frame) the connection is dropped and the next call reconnects once.
//! - Batches ([`Client::get_many`], [`Pipeline`]) are pipelined in bounded windows
//!   and matched by request id, since a server may answer out of order.
//! - [`ClusterClient`] knows the cluster's members (given, or learnt from a seed
//!   node by HELLO), computes the same ring as the servers and sends each key straight
//!   to its owner over one pooled connection per member, falling back to the next
//!   member when the owner is down.
//! - [`Connection`] is the low-level layer (send / flush / recv of raw frames) for
//!   load generators and tests that drive pipelining themselves.
//!
//! The `groupcached-cli` binary of this crate is a command-line front end to [`Client`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod cluster;
mod conn;
mod duration;
mod error;
mod pipeline;
mod response;
mod stats;

pub use client::{Client, ClientBuilder};
pub use cluster::{ClusterBuilder, ClusterClient, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF};
pub use conn::{
    ConnectOptions, Connection, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, VECTORED_WRITE_MIN,
};
pub use duration::parse_duration;
pub use error::{Error, Result};
pub use pipeline::{Pipeline, Reply, MAX_BYTES_IN_FLIGHT, MAX_IN_FLIGHT};
pub use response::{Hello, OwnedBody, OwnedResponse, Value};
pub use stats::Stats;

/// The protocol crate, re-exported so users of [`Connection`] need not depend on it
/// separately (and cannot end up with a mismatched version).
pub use groupcached_protocol as protocol;
