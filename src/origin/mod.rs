//! Origins: where a group's values come from on a miss, and the loader threads that
//! run them. Origin I/O blocks, so it never runs on a core's event loop: a core hands
//! a [`LoadJob`] to the [`LoaderPool`] and gets the result back through its mailbox.
//! Each group has its own loader threads and queue (see [`loader`]).

mod dir;
mod http;
pub mod loader;
pub mod oversize;
mod spec;
mod synthetic;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use groupcached_protocol::Status;

pub use dir::DirOrigin;
pub use http::{check_key as check_http_key, check_template as check_http_template, HttpOrigin};
pub use loader::{GroupLoaderConfig, LoadJob, LoaderHandle, LoaderPool};
pub use spec::{OriginSpec, OriginSpecError};
pub use synthetic::SyntheticOrigin;

/// A source of values for a group: groupcache's `Getter`. Implement it to embed the
/// server with your own loader. Called on loader threads, possibly concurrently for
/// different keys, never twice at once for the same key on one node.
pub trait Origin: Send + Sync + 'static {
    /// Loads `key`. `Ok(None)` means the origin has no such key (answered NOT_FOUND
    /// and not cached); an error is answered to every waiter and not cached either.
    fn load(&self, key: &[u8], ctx: &LoadContext) -> Result<Option<Loaded>, OriginError>;
}

/// Limits a load should respect.
#[derive(Debug, Clone, Copy)]
pub struct LoadContext {
    /// Largest value this load may produce: the smaller of what can be sent to a
    /// client and what the group can cache. Anything larger is
    /// [`OriginError::TooLarge`]; an origin should stop reading once past it.
    pub max_size: usize,
    /// How long the server waits for this load before answering TIMEOUT.
    pub timeout: Duration,
}

/// A loaded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The bytes.
    pub value: Vec<u8>,
    /// A TTL chosen by the origin; `None` = the group's default.
    pub ttl: Option<Duration>,
}

impl Loaded {
    /// A value with the group's default TTL.
    pub fn new(value: Vec<u8>) -> Self {
        Loaded { value, ttl: None }
    }
}

/// Why a load failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// The key cannot name anything in this origin (e.g. `..` in a `dir:` key).
    InvalidKey(String),
    /// The value is larger than can be served.
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The value is larger than the group can cache (`--max-item-size`, or the
    /// group's budget on one core); the key is answered TOO_LARGE without asking the
    /// origin for `remembered_for`.
    OverItemLimit {
        /// The value's size (at least this much, if the origin stopped early).
        size: u64,
        /// The largest value of this key the group can cache.
        limit: usize,
        /// How long the key is answered TOO_LARGE without asking the origin.
        remembered_for: Duration,
    },
    /// The origin did not answer in time.
    Timeout,
    /// The load waited in its group's queue until its deadline passed, all the
    /// group's loader threads being busy; it was never started.
    QueueTimeout {
        /// How long it waited.
        waited: Duration,
        /// The group's loader threads.
        threads: usize,
    },
    /// Anything else: I/O error, bad HTTP status, panic in an embedded origin.
    Failed(String),
    /// The load was never started: the loader queue is full or the server is
    /// stopping. Answered UNAVAILABLE, so a client knows to back off and retry
    /// rather than blame the origin.
    Overloaded(&'static str),
}

impl OriginError {
    /// The status this error is answered with.
    pub fn status(&self) -> Status {
        match self {
            OriginError::InvalidKey(_) => Status::BadRequest,
            OriginError::TooLarge { .. } | OriginError::OverItemLimit { .. } => Status::TooLarge,
            OriginError::Timeout | OriginError::QueueTimeout { .. } => Status::Timeout,
            OriginError::Failed(_) => Status::OriginError,
            OriginError::Overloaded(_) => Status::Unavailable,
        }
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::InvalidKey(m) => write!(f, "invalid key for this origin: {m}"),
            OriginError::TooLarge { size, max } => {
                write!(
                    f,
                    "origin value of {size} bytes is over the limit of {max} bytes"
                )
            }
            OriginError::OverItemLimit {
                size,
                limit,
                remembered_for,
            } => {
                write!(
                    f,
                    "origin value of {size} bytes is over this group's item limit of {limit} \
                     bytes (--max-item-size, or the group's cache size per thread)"
                )?;
                if remembered_for.is_zero() {
                    Ok(())
                } else {
                    write!(
                        f,
                        "; the key is answered TOO_LARGE without asking the origin for {}",
                        crate::units::format_duration(*remembered_for)
                    )
                }
            }
            OriginError::Timeout => f.write_str("origin timed out"),
            OriginError::QueueTimeout { waited, threads } => write!(
                f,
                "load not started: it waited {} ms for one of the group's {threads} loader \
                 threads, all busy, until its deadline passed",
                waited.as_millis()
            ),
            OriginError::Failed(m) => write!(f, "origin failed: {m}"),
            OriginError::Overloaded(why) => write!(f, "load not started: {why}"),
        }
    }
}

impl std::error::Error for OriginError {}

/// What a load produces.
pub type LoadResult = Result<Option<Loaded>, OriginError>;

/// Builds the origin a spec describes; `None` for the `none` origin (no loads at all).
pub fn build(spec: &OriginSpec, timeout: Duration) -> Option<Arc<dyn Origin>> {
    match spec {
        OriginSpec::None => None,
        OriginSpec::Dir(path) => Some(Arc::new(DirOrigin::new(path.clone()))),
        OriginSpec::Http(template) => Some(Arc::new(HttpOrigin::new(template.clone(), timeout))),
        OriginSpec::Synthetic { size, delay } => {
            Some(Arc::new(SyntheticOrigin::new(*size, *delay)))
        }
        OriginSpec::Custom(o) => Some(o.clone()),
    }
}
