//! Origins: where a group's values come from on a miss, and the loader threads that
//! run them. Origin I/O blocks, so it never runs on a core's event loop: a core hands
//! a [`LoadJob`] to the [`LoaderPool`] and gets the result back through its mailbox.

mod dir;
mod http;
mod synthetic;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use groupcached_protocol::Status;

pub use dir::DirOrigin;
pub use http::HttpOrigin;
pub use synthetic::SyntheticOrigin;

use crate::config::OriginSpec;

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
    /// Largest value that can be sent to a client; anything larger is an error.
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
    /// The origin did not answer in time.
    Timeout,
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
            OriginError::TooLarge { .. } => Status::TooLarge,
            OriginError::Timeout => Status::Timeout,
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
            OriginError::Timeout => f.write_str("origin timed out"),
            OriginError::Failed(m) => write!(f, "origin failed: {m}"),
            OriginError::Overloaded(why) => write!(f, "load not started: {why}"),
        }
    }
}

impl std::error::Error for OriginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_loader_queue_answers_unavailable_not_origin_error() {
        let (tx, _rx) = crossbeam_channel::bounded::<LoadJob>(0);
        let handle = LoaderHandle { tx: Some(tx) };
        let got = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sink = got.clone();
        handle.submit(LoadJob {
            origin: std::sync::Arc::new(SyntheticOrigin::new(1, Duration::ZERO)),
            key: b"k"[..].into(),
            ctx: LoadContext {
                max_size: 10,
                timeout: Duration::from_secs(1),
            },
            done: Box::new(move |r| *sink.lock().unwrap() = Some(r)),
        });
        let result = got.lock().unwrap().take().expect("answered at once");
        let err = result.expect_err("not loaded");
        assert_eq!(err.status(), Status::Unavailable);
        assert!(err.to_string().contains("queued"), "{err}");
    }
}

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

/// One load for the pool to run; `done` is called on the loader thread with the result.
pub struct LoadJob {
    /// The origin to ask.
    pub origin: Arc<dyn Origin>,
    /// The key.
    pub key: Box<[u8]>,
    /// Limits.
    pub ctx: LoadContext,
    /// Delivers the result (posts it to the requesting core's mailbox).
    pub done: Box<dyn FnOnce(LoadResult) + Send>,
}

/// Threads that run origin loads.
pub struct LoaderPool {
    tx: Option<Sender<LoadJob>>,
    threads: Vec<JoinHandle<()>>,
}

/// Submits jobs to a [`LoaderPool`] from any thread.
#[derive(Clone)]
pub struct LoaderHandle {
    tx: Option<Sender<LoadJob>>,
}

impl LoaderHandle {
    /// Queues a job; if the queue is full (or the pool stopped) the job's `done` is
    /// called at once with an error, so its waiters are answered rather than stranded.
    pub fn submit(&self, job: LoadJob) {
        let Some(tx) = &self.tx else {
            (job.done)(Err(OriginError::Overloaded("the server is shutting down")));
            return;
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => (job.done)(Err(OriginError::Overloaded(
                "too many origin loads are queued",
            ))),
            Err(TrySendError::Disconnected(job)) => {
                (job.done)(Err(OriginError::Overloaded("the server is shutting down")))
            }
        }
    }
}

/// Most loads queued before new ones are refused (answered UNAVAILABLE).
const QUEUE_LIMIT: usize = 65_536;

impl LoaderPool {
    /// Starts `n` loader threads.
    pub fn start(n: usize) -> std::io::Result<LoaderPool> {
        let (tx, rx) = crossbeam_channel::bounded::<LoadJob>(QUEUE_LIMIT);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rx: Receiver<LoadJob> = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("gc-loader-{i}"))
                    .spawn(move || {
                        for job in rx {
                            run(job);
                        }
                    })?,
            );
        }
        Ok(LoaderPool {
            tx: Some(tx),
            threads,
        })
    }

    /// A handle cores use to submit jobs.
    pub fn handle(&self) -> LoaderHandle {
        LoaderHandle {
            tx: self.tx.clone(),
        }
    }

    /// Stops taking jobs. Loader threads exit once the jobs already queued are done
    /// and every core's handle is gone; they are not waited for, so a slow origin
    /// cannot hold up shutdown (its result has nobody left to go to).
    pub fn shutdown(&mut self) {
        self.tx = None;
        self.threads.clear();
    }
}

/// Runs one job; a panicking origin becomes an error for its waiters, not a dead thread.
fn run(job: LoadJob) {
    let LoadJob {
        origin,
        key,
        ctx,
        done,
    } = job;
    let result = catch_unwind(AssertUnwindSafe(|| origin.load(&key, &ctx))).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(OriginError::Failed(format!("origin panicked: {msg}")))
    });
    let result = match result {
        Ok(Some(l)) if l.value.len() > ctx.max_size => Err(OriginError::TooLarge {
            size: l.value.len() as u64,
            max: ctx.max_size,
        }),
        other => other,
    };
    done(result);
}
