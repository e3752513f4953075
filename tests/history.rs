//! The coherence contract (docs/architecture.md) checked the way Jepsen checks a
//! register: clients record a history of GET / SET / DELETE against a real cluster
//! while a fault thread pauses (SIGSTOP), kills (SIGKILL, then restarts) and adds
//! members; then every GET is checked against the writes that were acknowledged
//! before it started.
//!
//! The rules checked, per key (values of SETs are unique, so a read names its write):
//! - a GET returns the origin's value or a value some SET wrote, never anything else;
//! - it returns a value whose write was not overwritten by another write that was
//!   acknowledged before the GET started — a DELETE counts as writing the origin's
//!   value back, and a restart of the key's owner or a move of the key to a new
//!   member counts as one too (SET values live in cache only);
//! - unless a fault touched the GET's node or the key's owner while that later write
//!   ran: then the GET may still see the older value for `--hot-ttl` (plus slack for
//!   reconnects) after the write's acknowledgement;
//! - while the key's owner is paused or down (and `--hot-ttl` after), other nodes
//!   serve fallback loads, i.e. the origin's value;
//! - a write that failed (error, timeout) may or may not have happened, for a bounded
//!   time after it was sent;
//! - when the faults are over and `--hot-ttl` has passed, every node answers every
//!   key exactly as its owner does.
//!
//! Default run: about 12 s of load with three faults (a pause, a kill, the growth 3 -> 4).
//! Longer: `GROUPCACHED_HISTORY_SECS=600 GROUPCACHED_HISTORY_SEED=7 cargo test
//! --release --test history -- --nocapture` (a fault every few seconds: a pause, a
//! kill, the growth, then random pauses and kills).
//!
//! One file (about 650 lines) on purpose: the recorder, the fault thread and the
//! checker share the history types, and the checker reads best next to what it checks.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::Rng;
use groupcached_client::Client;

const KEYS: usize = 8;
const CLIENTS: usize = 5;
const HOT_TTL: Duration = Duration::from_secs(2);
const PEER_TIMEOUT: Duration = Duration::from_millis(300);
/// Margin for what the contract bounds only loosely: reconnect backoff after a fault
/// (up to 2 s), the membership thread noticing a new peers file, scheduling noise.
const SLACK: Duration = Duration::from_secs(3);
/// How long after it was sent a write that got no acknowledgement may still take
/// effect (it can sit in a paused node's socket until the node resumes).
const AMBIGUOUS_FOR: Duration = Duration::from_secs(5);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a GET saw, or what a write wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    /// The origin's value for the key.
    Origin,
    /// A value written by a SET.
    Written(String),
}

#[derive(Debug, Clone)]
enum Kind {
    Get(Val),
    Set(String),
    Delete,
}

#[derive(Debug, Clone)]
struct Op {
    client: usize,
    node: usize,
    key: usize,
    kind: Kind,
    inv: Instant,
    /// When the answer arrived; `None` for a write that failed or timed out.
    done: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Pause,
    Kill,
    Grow,
}

#[derive(Debug, Clone)]
struct Fault {
    kind: FaultKind,
    /// The paused or killed node (the joining node for Grow).
    node: usize,
    start: Instant,
    end: Instant,
    /// Each key's owner when the fault began, and (Grow) after it.
    owner_before: Vec<usize>,
    owner_after: Vec<usize>,
}

impl Fault {
    /// Whether it can make a GET through `node` of `key` see an older value: it hit
    /// that node or the key's owner, or it changed the membership.
    fn touches(&self, node: usize, key: usize) -> bool {
        self.kind == FaultKind::Grow
            || self.node == node
            || self.owner_before[key] == self.node
            || self.owner_after[key] == self.node
    }

    /// Whether it may have dropped the key's written value: its owner restarted with
    /// an empty cache, or the key moved to a member that loads it afresh.
    fn resets(&self, key: usize) -> bool {
        match self.kind {
            FaultKind::Pause => false,
            FaultKind::Kill => self.owner_before[key] == self.node,
            FaultKind::Grow => self.owner_before[key] != self.owner_after[key],
        }
    }
}

fn key_name(k: usize) -> String {
    format!("reg-{k}")
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One client thread: random operations through random nodes until `stop`.
fn client_loop(
    id: usize,
    addrs: Vec<SocketAddr>,
    origin: Arc<Vec<Vec<u8>>>,
    grown: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Vec<Op> {
    let mut rng = Rng(seed | 1);
    let mut conns: Vec<Option<Client>> = (0..addrs.len()).map(|_| None).collect();
    let mut down_until: Vec<Option<Instant>> = vec![None; addrs.len()];
    let mut ops = Vec::new();
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let nodes = if grown.load(Ordering::Relaxed) { 4 } else { 3 };
        let node = rng.below(nodes);
        let key = rng.below(KEYS);
        let roll = rng.below(10);
        if down_until[node].is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if conns[node].is_none() {
            match Client::builder(addrs[node])
                .timeout(CLIENT_TIMEOUT)
                .connect_timeout(CLIENT_TIMEOUT)
                .connect()
            {
                Ok(c) => conns[node] = Some(c),
                Err(_) => {
                    // A killed node refuses at once: try it again a little later.
                    down_until[node] = Some(Instant::now() + Duration::from_millis(50));
                    continue;
                }
            }
        }
        let client = conns[node].as_mut().expect("connected above");
        let name = key_name(key);
        let inv = Instant::now();
        let (kind, ok) = match roll {
            0..=6 => match client.get("default", &name) {
                Ok(Some(v)) => {
                    let bytes = v.into_bytes();
                    let val = if bytes == origin[key] {
                        Val::Origin
                    } else {
                        Val::Written(String::from_utf8_lossy(&bytes).into_owned())
                    };
                    (Kind::Get(val), true)
                }
                Ok(None) => (Kind::Get(Val::Written("<NOT_FOUND>".into())), true),
                Err(_) => {
                    conns[node] = None;
                    continue; // A failed read tells nothing.
                }
            },
            7..=8 => {
                counter += 1;
                let v = format!("w{id}-{counter}");
                let ok = client.set("default", &name, v.as_bytes(), None).is_ok();
                (Kind::Set(v), ok)
            }
            _ => (Kind::Delete, client.delete("default", &name).is_ok()),
        };
        let done = ok.then(Instant::now);
        if !ok {
            conns[node] = None;
        }
        ops.push(Op {
            client: id,
            node,
            key,
            kind,
            inv,
            done,
        });
    }
    ops
}

/// A write as the checker sees it: real writes, the initial state and resets.
#[derive(Debug, Clone)]
struct Write {
    val: Val,
    inv: Instant,
    done: Option<Instant>,
    what: String,
}

impl Write {
    /// The latest moment it can have taken effect.
    fn settled(&self) -> Instant {
        self.done.unwrap_or(self.inv + AMBIGUOUS_FOR)
    }
}

struct Checker<'a> {
    t0: Instant,
    faults: &'a [Fault],
    /// Per key, writes sorted by invocation.
    writes: Vec<Vec<Write>>,
}

impl<'a> Checker<'a> {
    fn new(t0: Instant, ops: &[Op], faults: &'a [Fault]) -> Checker<'a> {
        let mut writes: Vec<Vec<Write>> = (0..KEYS)
            .map(|_| {
                vec![Write {
                    val: Val::Origin,
                    inv: t0,
                    done: Some(t0),
                    what: "the initial state".into(),
                }]
            })
            .collect();
        for op in ops {
            let (val, what) = match &op.kind {
                Kind::Get(_) => continue,
                Kind::Set(v) => (Val::Written(v.clone()), format!("SET {v}")),
                Kind::Delete => (Val::Origin, "DELETE".to_string()),
            };
            writes[op.key].push(Write {
                val,
                inv: op.inv,
                done: op.done,
                what: format!("{what} by client {} via node {}", op.client, op.node),
            });
        }
        for (i, f) in faults.iter().enumerate() {
            for (key, w) in writes.iter_mut().enumerate() {
                if f.resets(key) {
                    w.push(Write {
                        val: Val::Origin,
                        inv: f.start,
                        done: Some(f.end + SLACK),
                        what: format!("fault {i} ({:?} of node {})", f.kind, f.node),
                    });
                }
            }
        }
        for w in &mut writes {
            w.sort_by_key(|w| w.inv);
        }
        Checker { t0, faults, writes }
    }

    fn at(&self, t: Instant) -> String {
        format!("{:.3}s", t.saturating_duration_since(self.t0).as_secs_f64())
    }

    /// Whether the staleness `w2` could cause for a GET through `node` is excused:
    /// a fault touched the node or the key's owner while `w2` ran, and the GET began
    /// within the hot TTL (plus slack) of `w2`'s acknowledgement.
    fn excused(&self, w2: &Write, node: usize, key: usize, inv: Instant) -> bool {
        let Some(done) = w2.done else {
            return true;
        };
        inv <= done + HOT_TTL + SLACK
            && self
                .faults
                .iter()
                .any(|f| f.touches(node, key) && f.start <= done + SLACK && w2.inv <= f.end + SLACK)
    }

    /// Whether the origin's value is a legal fallback answer for a GET through `node`
    /// running over [inv, done]: the key's owner was paused or down (or the
    /// membership changing) then, or within the hot TTL before.
    fn fallback_window(&self, node: usize, key: usize, inv: Instant, done: Instant) -> bool {
        self.faults
            .iter()
            .any(|f| f.touches(node, key) && f.start <= done && inv <= f.end + HOT_TTL + SLACK)
    }

    /// The first write, if any, that overwrote candidate `c` before a GET began at
    /// `inv`, without excuse.
    fn overwriter(&self, c: &Write, node: usize, key: usize, inv: Instant) -> Option<&Write> {
        let ws = &self.writes[key];
        let from = ws.partition_point(|w| w.inv <= c.settled());
        ws[from..]
            .iter()
            .take_while(|w| w.inv < inv)
            .find(|w2| w2.done.is_some_and(|d| d < inv) && !self.excused(w2, node, key, inv))
    }

    /// Checks one GET; `Err` describes the violation.
    fn check_get(&self, op: &Op, val: &Val) -> Result<(), String> {
        let done = op.done.expect("recorded GETs were answered");
        if *val == Val::Origin && self.fallback_window(op.node, op.key, op.inv, done) {
            return Ok(());
        }
        let ws = &self.writes[op.key];
        let mut blocked = Vec::new();
        // The latest write overwriting a candidate, without excuse: it overwrites
        // every older candidate that had settled before it began, too, so those need
        // no scan of their own (this keeps long histories linear).
        let mut known: Option<&Write> = None;
        // Latest candidates first: the most recent write of the value is the one a
        // correct read almost always saw.
        let begun = ws.partition_point(|w| w.inv < done);
        for c in ws[..begun].iter().rev().filter(|c| &c.val == val) {
            let w2 = match known {
                Some(w2) if c.settled() < w2.inv => w2,
                _ => match self.overwriter(c, op.node, op.key, op.inv) {
                    None => return Ok(()),
                    Some(w2) => {
                        known = Some(w2);
                        w2
                    }
                },
            };
            if blocked.len() < 3 {
                blocked.push((c, w2));
            }
        }
        let mut why = format!(
            "client {} GET {} via node {} over [{}, {}] returned {:?}:",
            op.client,
            key_name(op.key),
            op.node,
            self.at(op.inv),
            self.at(done),
            val
        );
        if blocked.is_empty() {
            why.push_str(" no write of that value had begun by then");
        }
        for (c, w2) in blocked {
            why.push_str(&format!(
                "\n    written by {} over [{}, {}], but overwritten by {} over [{}, {}]",
                c.what,
                self.at(c.inv),
                c.done.map_or("never acked".into(), |d| self.at(d)),
                w2.what,
                self.at(w2.inv),
                w2.done.map_or("?".into(), |d| self.at(d)),
            ));
        }
        Err(why)
    }

    /// The operations on `key` around `t`, for a violation report.
    fn excerpt(&self, ops: &[Op], key: usize, t: Instant) -> String {
        let lo = t
            .checked_sub(Duration::from_millis(1500))
            .unwrap_or(self.t0);
        let hi = t + Duration::from_millis(200);
        let mut lines: Vec<String> = ops
            .iter()
            .filter(|o| o.key == key && o.inv >= lo && o.inv <= hi)
            .map(|o| {
                format!(
                    "      [{} .. {}] client {} node {} {:?}",
                    self.at(o.inv),
                    o.done.map_or("failed".into(), |d| self.at(d)),
                    o.client,
                    o.node,
                    o.kind
                )
            })
            .collect();
        lines.truncate(40);
        lines.join("\n")
    }
}

/// The owner of every key among the nodes at `members`.
fn owners(c: &TestCluster, members: &[usize]) -> Vec<usize> {
    let ring = c.ring_of(members);
    (0..KEYS)
        .map(|k| {
            let owner = ring.owner(key_name(k).as_bytes()).expect("a ring");
            c.addrs()
                .iter()
                .position(|a| a == owner)
                .expect("owner is a node")
        })
        .collect()
}

/// Waits (pacing the fault schedule; nothing is synchronised on this) until `t`.
fn pace_until(t: Instant) {
    while Instant::now() < t {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn inject(
    c: &mut TestCluster,
    kind: FaultKind,
    node: usize,
    rng: &mut Rng,
    grown: &AtomicBool,
    t0: Instant,
) -> Fault {
    let owner_before = owners(c, c.members());
    let start = Instant::now();
    match kind {
        FaultKind::Pause => {
            c.node(node).signal("STOP");
            pace_until(start + Duration::from_millis(500 + rng.below(1000) as u64));
            c.node(node).signal("CONT");
        }
        FaultKind::Kill => {
            c.kill(node);
            c.restart(node);
        }
        FaultKind::Grow => {
            grown.store(true, Ordering::Relaxed);
            c.set_members(&[0, 1, 2, 3]);
        }
    }
    let end = Instant::now();
    println!(
        "history: {kind:?} of node {node} over [{:.3}s, {:.3}s]",
        (start - t0).as_secs_f64(),
        (end - t0).as_secs_f64()
    );
    Fault {
        kind,
        node,
        start,
        end,
        owner_before,
        owner_after: owners(c, c.members()),
    }
}

#[test]
fn histories_under_pauses_kills_and_a_membership_change_obey_the_contract() {
    let secs = env_u64("GROUPCACHED_HISTORY_SECS").unwrap_or(12).max(10);
    let seed = env_u64("GROUPCACHED_HISTORY_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("history: seed {seed}, {secs} s (GROUPCACHED_HISTORY_SEED / _SECS to change)");
    let hot_ttl = format!("{}ms", HOT_TTL.as_millis());
    let peer_timeout = format!("{}ms", PEER_TIMEOUT.as_millis());
    let mut c = TestCluster::start(
        4,
        &[
            "--threads",
            "2",
            "--origin",
            "synthetic:size=16",
            "--hot-ttl",
            &hot_ttl,
            "--hot-promote-ratio",
            "0.5",
            "--peer-timeout",
            &peer_timeout,
        ],
    );
    // Node 3 joins after the first pause and kill.
    c.set_members(&[0, 1, 2]);
    let origin: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..KEYS)
            .map(|k| {
                c.node(0)
                    .client()
                    .get("default", key_name(k))
                    .expect("GET")
                    .expect("a synthetic value")
                    .into_bytes()
            })
            .collect(),
    );
    let addrs: Vec<SocketAddr> = (0..4).map(|i| c.node(i).addr()).collect();
    let grown = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut rng = Rng(seed | 1);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addrs, origin) = (addrs.clone(), origin.clone());
            let (grown, stop) = (grown.clone(), stop.clone());
            let s = rng.next();
            std::thread::spawn(move || client_loop(id, addrs, origin, grown, stop, s))
        })
        .collect();

    // The fault schedule: one fault every few seconds.
    let end = t0 + Duration::from_secs(secs);
    let mut faults = Vec::new();
    let mut next = t0 + Duration::from_secs(1);
    while next + Duration::from_secs(2) < end {
        pace_until(next);
        // Every run has each kind of fault: a pause, a kill, then the growth; random
        // pauses and kills after.
        let kind = if !grown.load(Ordering::Relaxed) && faults.len() >= 2 {
            FaultKind::Grow
        } else {
            match faults.len() {
                0 => FaultKind::Pause,
                1 => FaultKind::Kill,
                _ if rng.below(2) == 0 => FaultKind::Pause,
                _ => FaultKind::Kill,
            }
        };
        let members = c.members().to_vec();
        let node = if kind == FaultKind::Grow {
            3
        } else {
            members[rng.below(members.len())]
        };
        faults.push(inject(&mut c, kind, node, &mut rng, &grown, t0));
        next = Instant::now() + Duration::from_millis(2500 + rng.below(1500) as u64);
    }
    if !grown.load(Ordering::Relaxed) {
        faults.push(inject(&mut c, FaultKind::Grow, 3, &mut rng, &grown, t0));
    }
    let kills = faults.iter().filter(|f| f.kind == FaultKind::Kill).count();
    pace_until(end);
    stop.store(true, Ordering::Relaxed);
    let mut ops: Vec<Op> = clients
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();

    // Quiet: once the hot TTL (and the reconnect slack) has passed, every node
    // answers every key as its owner does. These reads join the history too.
    let last_fault = faults.iter().map(|f| f.end).max().unwrap_or(t0);
    pace_until(last_fault.max(Instant::now()) + HOT_TTL + SLACK);
    let final_owners = owners(&c, &[0, 1, 2, 3]);
    let mut divergent = Vec::new();
    for key in 0..KEYS {
        let read = |node: usize, ops: &mut Vec<Op>| {
            let inv = Instant::now();
            let v = c
                .node(node)
                .client()
                .get("default", key_name(key))
                .expect("GET when quiet")
                .expect("a value")
                .into_bytes();
            let val = if v == origin[key] {
                Val::Origin
            } else {
                Val::Written(String::from_utf8_lossy(&v).into_owned())
            };
            ops.push(Op {
                client: usize::MAX,
                node,
                key,
                kind: Kind::Get(val.clone()),
                inv,
                done: Some(Instant::now()),
            });
            val
        };
        let at_owner = read(final_owners[key], &mut ops);
        for node in 0..4 {
            let seen = read(node, &mut ops);
            if seen != at_owner {
                divergent.push(format!(
                    "{}: node {node} answers {seen:?}, its owner (node {}) {at_owner:?}",
                    key_name(key),
                    final_owners[key]
                ));
            }
        }
    }

    let checker = Checker::new(t0, &ops, &faults);
    let mut violations = Vec::new();
    let (mut gets, mut writes, mut failed) = (0, 0, 0);
    for op in &ops {
        match &op.kind {
            Kind::Get(val) => {
                gets += 1;
                if let Err(why) = checker.check_get(op, val) {
                    // Excerpts cost a pass over the history: only for the first few.
                    let why = if violations.len() < 10 {
                        format!(
                            "{why}\n    history of that key around it:\n{}",
                            checker.excerpt(&ops, op.key, op.inv)
                        )
                    } else {
                        why
                    };
                    violations.push(why);
                }
            }
            _ => {
                writes += 1;
                failed += usize::from(op.done.is_none());
            }
        }
    }
    let invalidate_errors = c.sum("invalidate_errors");
    println!(
        "history: {} operations checked ({gets} GETs, {writes} writes of which {failed} \
         unacknowledged), {} faults injected ({} kills), invalidate_errors {invalidate_errors}, \
         {} violations, {} divergent keys when quiet",
        ops.len(),
        faults.len(),
        kills,
        violations.len(),
        divergent.len()
    );
    let mut by_key: BTreeMap<usize, usize> = BTreeMap::new();
    for op in &ops {
        *by_key.entry(op.key).or_default() += 1;
    }
    assert!(
        by_key.len() == KEYS && gets > 100 && writes > 20,
        "too little load to check anything: {gets} GETs, {writes} writes, keys {by_key:?}"
    );
    assert!(
        violations.is_empty() && divergent.is_empty(),
        "seed {seed}: {} violations, {} divergent keys:\n{}\n{}",
        violations.len(),
        divergent.len(),
        violations
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        divergent.join("\n")
    );
}
