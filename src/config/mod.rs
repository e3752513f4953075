//! Server configuration: defaults, command-line flags, `GROUPCACHED_*` environment
//! variables, the TOML file, and validation.
//!
//! Precedence: flags > `GROUPCACHED_*` environment variables > `--config` file >
//! defaults.
//!
//! - `settings`: the one table of every setting (its [`Config`] field, default,
//!   flag, variable, file key, help and grammar), from which the `settings!` macro
//!   (`declare`) generates [`Config`] and [`Args`], a layer of optional values.
//! - `grammar`: how a kind of value (size, duration, address...) is read and printed.
//! - `layers`: reading the file and applying the layers over the defaults.
//! - `validate`: ranges, consistency and start-time checks, into a [`Config`].
//! - `print`: `--print-config` and the start-up summary.
//!
//! Adding a setting: see "Adding a setting" in docs/architecture.md.

mod declare;
mod grammar;
mod layers;
mod print;
mod settings;
mod validate;

use std::time::Duration;

pub use crate::origin::{OriginSpec, OriginSpecError};
pub use print::PrintError;
pub use settings::{Args, Config, GroupConfig, GroupSettings, SeedValue, SizeValue};
pub(crate) use validate::check_member;
pub use validate::MAX_LOADER_QUEUE;

/// Default listen address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";
/// Name of the group the quick-start flags configure.
pub const DEFAULT_GROUP: &str = "default";
/// Default cache budget of a group (main + hot cache, all cores together).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
/// Default limit on simultaneous client and peer connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a shared origin load may take before its waiters get TIMEOUT.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of origin loader threads (origins block, so they need their own threads).
pub const DEFAULT_LOADER_THREADS: usize = 32;
/// Default number of origin loads of one group that may wait for a loader thread.
pub const DEFAULT_LOADER_QUEUE: usize = 1024;
/// Default time a key whose origin value was too large to cache is answered
/// TOO_LARGE without asking the origin again.
pub const DEFAULT_TOO_LARGE_TTL: Duration = Duration::from_secs(10);
/// Default largest value that is cached; a larger SET or origin value is TOO_LARGE.
pub const DEFAULT_MAX_ITEM_SIZE: usize = 8 << 20;
/// Default interval for re-resolving `--peers-dns` and checking `--peers-file`.
pub const DEFAULT_PEERS_REFRESH: Duration = Duration::from_secs(5);
/// Default limit on one request to a peer before it counts as a peer error.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `--peer-suspect-after`: three timeouts in a row open a member's breaker.
pub const DEFAULT_PEER_SUSPECT_AFTER: u32 = 3;
/// Default share of values fetched from peers that go into the hot cache (groupcache: 1 in 10).
pub const DEFAULT_HOT_PROMOTE_RATIO: f64 = 0.1;
/// Default bound on how long a hot-cache copy is served (its staleness after a DELETE
/// whose INVALIDATE did not arrive).
pub const DEFAULT_HOT_TTL: Duration = Duration::from_secs(60);
/// Default limit on how long a partly received frame may take to complete.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Smallest default of `--max-buffer-memory` (it is at least 4 × `--max-frame`).
pub const DEFAULT_MAX_BUFFER_MEMORY: usize = 256 << 20;

impl Config {
    /// A small configuration on a free loopback port, for tests.
    pub fn for_test() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("valid"),
            threads: 2,
            loader_threads: 4,
            ..Config::new()
        }
    }

    /// Output queued on one connection past which it is closed: `--max-conn-output`,
    /// or by default 4 MiB (where reading pauses) + 2 × `--max-frame`, so a client
    /// that reads is never closed for one large answer arriving while it is paused.
    pub fn conn_output_limit(&self) -> usize {
        self.max_conn_output
            .unwrap_or((4 << 20) + 2 * self.max_frame)
    }

    /// Memory all client connections' buffers may hold: `--max-buffer-memory`, or by
    /// default the larger of 256 MiB and 4 × `--max-frame`.
    pub fn buffer_memory_limit(&self) -> usize {
        self.max_buffer_memory
            .unwrap_or(DEFAULT_MAX_BUFFER_MEMORY.max(4 * self.max_frame))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

// The tests drive the layers through clap, as the binary does.
#[cfg(all(test, feature = "cli"))]
mod tests;
