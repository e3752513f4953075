//! The loader threads: each group with an origin has its own threads and its own
//! bounded queue, so a slow or hanging origin can only hold up its own group's loads.
//!
//! A load waits in its group's queue while all the group's threads are busy (counted
//! as a queue wait). One taken from the queue after its deadline (`--load-timeout`
//! after it was queued), or with less than a tenth of its time left (at most
//! [`MIN_LEFT_CAP`]), is answered TIMEOUT without being started; one that finds the
//! queue full is answered UNAVAILABLE at once. A value the group cannot cache is
//! answered TOO_LARGE and remembered for a while (see [`super::oversize`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::oversize::OversizeMemo;
use super::{LoadContext, LoadResult, Origin, OriginError};
use crate::stats::LoaderCounters;
use crate::storage::charge;

/// A queued load is started only if at least a tenth of its timeout, capped at this,
/// is left when a thread takes it; otherwise it is answered TIMEOUT unstarted.
pub const MIN_LEFT_CAP: Duration = Duration::from_secs(1);

/// One load for the pool to run; `done` is called with the result, on a loader
/// thread or (when the load is refused) on the submitting thread.
pub struct LoadJob {
    /// Index of the group, in configuration order: picks the queue and threads.
    pub group: usize,
    /// The origin to ask.
    pub origin: Arc<dyn Origin>,
    /// The key.
    pub key: Box<[u8]>,
    /// Limits; `timeout` is also the deadline of the wait in the queue.
    pub ctx: LoadContext,
    /// Delivers the result (posts it to the requesting core's mailbox).
    pub done: Box<dyn FnOnce(LoadResult) + Send>,
}

/// How one group's loads are run.
#[derive(Debug, Clone)]
pub struct GroupLoaderConfig {
    /// The group's name, for thread names and messages.
    pub name: String,
    /// Whether the group has an origin at all; without one no threads are started.
    pub has_origin: bool,
    /// Loads of this group that run at once.
    pub threads: usize,
    /// Loads that may wait for a thread; more are refused with UNAVAILABLE.
    pub queue: usize,
    /// Largest value the group caches (`--max-item-size`).
    pub max_item: usize,
    /// The group's budget on one core: an entry must fit it to be cached.
    pub shard_budget: usize,
    /// How long a key whose value was too large to cache is answered TOO_LARGE
    /// without asking the origin again; zero turns that memory off.
    pub too_large_ttl: Duration,
}

impl GroupLoaderConfig {
    /// The largest value of a `key_len`-byte key that the group can cache.
    fn item_limit(&self, key_len: usize) -> usize {
        let budget_room = self.shard_budget.saturating_sub(charge(key_len, 0));
        self.max_item.min(budget_room)
    }
}

/// What a group's threads and its submitters share.
struct GroupLoad {
    cfg: GroupLoaderConfig,
    stats: Arc<LoaderCounters>,
    /// Threads waiting for a job.
    idle: AtomicUsize,
    memo: OversizeMemo,
}

/// A queued job and when it was queued.
struct Queued {
    job: LoadJob,
    queued: Instant,
}

/// One group's queue, as a submitter sees it.
#[derive(Clone)]
struct GroupQueue {
    tx: Sender<Queued>,
    group: Arc<GroupLoad>,
}

/// Submits jobs to a [`LoaderPool`] from any thread.
#[derive(Clone)]
pub struct LoaderHandle {
    /// Per group in configuration order; `None` for a group without an origin.
    /// `None` as a whole once the pool is shut down.
    queues: Option<Arc<[Option<GroupQueue>]>>,
}

impl LoaderHandle {
    /// Queues a job on its group's queue; if the queue is full (or the pool stopped)
    /// the job's `done` is called at once with an error, so its waiters are answered
    /// rather than stranded.
    pub fn submit(&self, job: LoadJob) {
        let Some(queues) = &self.queues else {
            (job.done)(Err(OriginError::Overloaded("the server is shutting down")));
            return;
        };
        let Some(Some(q)) = queues.get(job.group) else {
            (job.done)(Err(OriginError::Failed(
                "this group has no origin loader".into(),
            )));
            return;
        };
        let stats = &q.group.stats;
        // Every idle thread will take one of the jobs already queued first.
        let waits = q.group.idle.load(Ordering::Relaxed) <= q.tx.len();
        let queued = Queued {
            job,
            queued: Instant::now(),
        };
        // Counted before the send, so a thread that takes the job at once cannot
        // decrement the gauge before it was raised.
        LoaderCounters::inc(&stats.queue_depth);
        match q.tx.try_send(queued) {
            Ok(()) => {
                if waits {
                    LoaderCounters::inc(&stats.queue_waits);
                }
            }
            Err(TrySendError::Full(queued)) => {
                LoaderCounters::dec(&stats.queue_depth);
                LoaderCounters::inc(&stats.queue_full);
                (queued.job.done)(Err(OriginError::Overloaded(
                    "too many origin loads of this group are queued",
                )))
            }
            Err(TrySendError::Disconnected(queued)) => {
                LoaderCounters::dec(&stats.queue_depth);
                (queued.job.done)(Err(OriginError::Overloaded("the server is shutting down")))
            }
        }
    }
}

/// The loader threads of every group.
pub struct LoaderPool {
    handle: LoaderHandle,
    threads: Vec<JoinHandle<()>>,
}

impl LoaderPool {
    /// Starts each group's threads; `stats` holds one counter block per group.
    pub fn start(
        groups: &[GroupLoaderConfig],
        stats: &[Arc<LoaderCounters>],
    ) -> std::io::Result<LoaderPool> {
        let mut queues = Vec::with_capacity(groups.len());
        let mut threads = Vec::new();
        for (gi, cfg) in groups.iter().enumerate() {
            if !cfg.has_origin {
                queues.push(None);
                continue;
            }
            let (tx, rx) = crossbeam_channel::bounded::<Queued>(cfg.queue.max(1));
            let group = Arc::new(GroupLoad {
                cfg: cfg.clone(),
                stats: stats.get(gi).cloned().unwrap_or_default(),
                idle: AtomicUsize::new(0),
                memo: OversizeMemo::new(cfg.too_large_ttl),
            });
            for i in 0..cfg.threads.max(1) {
                let rx: Receiver<Queued> = rx.clone();
                let group = group.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("gc-load-{gi}-{i}"))
                        .spawn(move || loader_thread(&group, &rx))?,
                );
            }
            queues.push(Some(GroupQueue { tx, group }));
        }
        Ok(LoaderPool {
            handle: LoaderHandle {
                queues: Some(queues.into()),
            },
            threads,
        })
    }

    /// A handle cores use to submit jobs.
    pub fn handle(&self) -> LoaderHandle {
        self.handle.clone()
    }

    /// Stops taking jobs. Loader threads exit once the jobs already queued are done
    /// and every core's handle is gone; they are not waited for, so a slow origin
    /// cannot hold up shutdown (its result has nobody left to go to).
    pub fn shutdown(&mut self) {
        self.handle.queues = None;
        self.threads.clear();
    }
}

fn loader_thread(group: &GroupLoad, rx: &Receiver<Queued>) {
    loop {
        group.idle.fetch_add(1, Ordering::Relaxed);
        let next = rx.recv();
        group.idle.fetch_sub(1, Ordering::Relaxed);
        let Ok(queued) = next else { return };
        LoaderCounters::dec(&group.stats.queue_depth);
        run(group, queued);
    }
}

/// Runs one job unless its deadline passed in the queue or its key is remembered as
/// too large; a panicking origin becomes an error for its waiters, not a dead thread.
fn run(group: &GroupLoad, queued: Queued) {
    let Queued { job, queued } = queued;
    let LoadJob {
        origin,
        key,
        ctx,
        done,
        ..
    } = job;
    let stats = &group.stats;
    let now = Instant::now();
    let waited = now.saturating_duration_since(queued);
    // A load with almost none of its time left would most likely time out anyway,
    // adding a request to an origin slow enough to have made it wait.
    let min_left = (ctx.timeout / 10).min(MIN_LEFT_CAP);
    let Some(left) = ctx
        .timeout
        .checked_sub(waited)
        .filter(|d| !d.is_zero() && *d >= min_left)
    else {
        LoaderCounters::inc(&stats.queue_timeouts);
        done(Err(OriginError::QueueTimeout {
            waited,
            threads: group.cfg.threads,
        }));
        return;
    };
    if let Some((size, limit, ttl)) = group.memo.get(&key, now) {
        LoaderCounters::inc(&stats.too_large_remembered);
        done(Err(OriginError::OverItemLimit {
            size,
            limit,
            remembered_for: ttl,
        }));
        return;
    }
    // The origin gets only what is left of the deadline, so a load that waited is
    // not given a full timeout on top of its wait; and it may stop reading as soon as
    // the value is larger than the group can cache.
    let limit = group.cfg.item_limit(key.len()).min(ctx.max_size);
    let run_ctx = LoadContext {
        timeout: left,
        max_size: limit,
    };
    LoaderCounters::inc(&stats.running);
    let result =
        catch_unwind(AssertUnwindSafe(|| origin.load(&key, &run_ctx))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(OriginError::Failed(format!("origin panicked: {msg}")))
        });
    LoaderCounters::dec(&stats.running);
    let too_large = match &result {
        Ok(Some(l)) if l.value.len() > limit => Some(l.value.len() as u64),
        Err(OriginError::TooLarge { size, .. }) => Some(*size),
        _ => None,
    };
    let result = match too_large {
        Some(size) => {
            LoaderCounters::inc(&stats.too_large);
            let ttl = group.memo.remember(&key, size, limit, Instant::now());
            Err(OriginError::OverItemLimit {
                size,
                limit,
                remembered_for: ttl,
            })
        }
        None => result,
    };
    done(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{Loaded, SyntheticOrigin};
    use groupcached_protocol::Status;
    use std::sync::Mutex;

    fn config(threads: usize, queue: usize) -> GroupLoaderConfig {
        GroupLoaderConfig {
            name: "g".into(),
            has_origin: true,
            threads,
            queue,
            max_item: 1000,
            shard_budget: 1 << 20,
            too_large_ttl: Duration::from_secs(60),
        }
    }

    /// Submits a job and returns a slot its result lands in.
    fn submit(
        h: &LoaderHandle,
        origin: Arc<dyn Origin>,
        key: &str,
        timeout: Duration,
    ) -> Arc<Mutex<Option<LoadResult>>> {
        let slot = Arc::new(Mutex::new(None));
        let sink = slot.clone();
        h.submit(LoadJob {
            group: 0,
            origin,
            key: key.as_bytes().into(),
            ctx: LoadContext {
                max_size: 1 << 20,
                timeout,
            },
            done: Box::new(move |r| *sink.lock().unwrap() = Some(r)),
        });
        slot
    }

    fn wait(slot: &Mutex<Option<LoadResult>>) -> LoadResult {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = slot.lock().unwrap().take() {
                return r;
            }
            assert!(Instant::now() < deadline, "no result");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_full_loader_queue_answers_unavailable_not_origin_error() {
        let (tx, _rx) = crossbeam_channel::bounded::<Queued>(0);
        let group = Arc::new(GroupLoad {
            cfg: config(1, 1),
            stats: Arc::default(),
            idle: AtomicUsize::new(0),
            memo: OversizeMemo::new(Duration::ZERO),
        });
        let handle = LoaderHandle {
            queues: Some(
                vec![Some(GroupQueue {
                    tx,
                    group: group.clone(),
                })]
                .into(),
            ),
        };
        let origin = Arc::new(SyntheticOrigin::new(1, Duration::ZERO));
        let got = submit(&handle, origin, "k", Duration::from_secs(1));
        let err = got.lock().unwrap().take().expect("answered at once");
        let err = err.expect_err("not loaded");
        assert_eq!(err.status(), Status::Unavailable);
        assert!(err.to_string().contains("queued"), "{err}");
        assert_eq!(group.stats.queue_full.load(Ordering::Relaxed), 1);
        assert_eq!(group.stats.queue_depth.load(Ordering::Relaxed), 0);
    }

    /// An origin that blocks until released, counting its loads.
    struct Blocking {
        release: crossbeam_channel::Receiver<()>,
        loads: AtomicUsize,
    }

    impl Origin for Blocking {
        fn load(&self, _: &[u8], _: &LoadContext) -> LoadResult {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let _ = self.release.recv_timeout(Duration::from_secs(10));
            Ok(Some(Loaded::new(b"v".to_vec())))
        }
    }

    #[test]
    fn a_load_that_waits_past_its_deadline_is_never_started() {
        let stats = Arc::new(LoaderCounters::default());
        let mut pool = LoaderPool::start(&[config(1, 8)], std::slice::from_ref(&stats)).unwrap();
        let h = pool.handle();
        let (release, rx) = crossbeam_channel::unbounded();
        let origin = Arc::new(Blocking {
            release: rx,
            loads: AtomicUsize::new(0),
        });
        let group = h.queues.as_ref().unwrap()[0]
            .as_ref()
            .unwrap()
            .group
            .clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while group.idle.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the loader thread never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        let first = submit(&h, origin.clone(), "a", Duration::from_secs(10));
        while origin.loads.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        // The only thread is busy: this one waits, and its short deadline passes.
        let second = submit(&h, origin.clone(), "b", Duration::from_millis(50));
        assert_eq!(stats.queue_waits.load(Ordering::Relaxed), 1);
        // Let its deadline pass while it is queued (the time passing is what is
        // tested, not a synchronisation), then free the thread.
        std::thread::sleep(Duration::from_millis(100));
        release.send(()).unwrap();
        assert_eq!(wait(&first).unwrap().unwrap().value, b"v");
        let err = wait(&second).unwrap_err();
        assert_eq!(err.status(), Status::Timeout, "{err}");
        assert_eq!(origin.loads.load(Ordering::SeqCst), 1, "second was started");
        assert_eq!(stats.queue_timeouts.load(Ordering::Relaxed), 1);
        pool.shutdown();
    }

    #[test]
    fn too_large_values_are_refused_and_remembered() {
        let stats = Arc::new(LoaderCounters::default());
        let mut pool = LoaderPool::start(&[config(2, 8)], std::slice::from_ref(&stats)).unwrap();
        let h = pool.handle();
        let big = Arc::new(SyntheticOrigin::new(1001, Duration::ZERO));
        for _ in 0..3 {
            let err = wait(&submit(&h, big.clone(), "k", Duration::from_secs(5))).unwrap_err();
            assert_eq!(err.status(), Status::TooLarge);
            assert!(err.to_string().contains("1001 bytes"), "{err}");
        }
        assert_eq!(big.loads(), 1, "the origin was asked again");
        assert_eq!(stats.too_large.load(Ordering::Relaxed), 1);
        assert_eq!(stats.too_large_remembered.load(Ordering::Relaxed), 2);
        // Another key is still loaded (and is too large in its own right).
        let _ = wait(&submit(&h, big.clone(), "other", Duration::from_secs(5)));
        assert_eq!(big.loads(), 2);
        pool.shutdown();
    }

    #[test]
    fn the_item_limit_counts_the_shard_budget_too() {
        let mut c = config(1, 1);
        assert_eq!(c.item_limit(10), 1000);
        c.shard_budget = 600;
        assert_eq!(c.item_limit(10), 600 - charge(10, 0));
        c.shard_budget = 10;
        assert_eq!(c.item_limit(10), 0);
    }
}
