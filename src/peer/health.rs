//! Whether this node, as a whole, can reach a member: the state behind the "peer X
//! is up / is down" log lines.
//!
//! Every core has its own connection to each member it talks to, so "up" and "down"
//! happen per core, and a member that restarts takes every core's connection down
//! with it. The node logs a transition once: a member is up while at least one core
//! has a working connection to it, and down once none has and a connection attempt
//! or connection failed. Count and last announced state live in one atomic word,
//! updated with compare-and-swap, so concurrent transitions on several cores are
//! linearised and each node-level transition is reported by exactly one core. This is
//! touched only when a connection comes up or fails, never per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const UNKNOWN: u64 = 0;
const UP: u64 = 1;
const DOWN: u64 = 2;

/// One member's reachability from this node: the number of cores with a working
/// connection to it (high 32 bits) and the state last announced (low bits); whether
/// it is suspect (its circuit breaker is open: requests to it timed out in a row, so
/// cores stop sending it work until it answers a probe); and whether a failed
/// cluster-secret handshake with it was announced.
#[derive(Debug, Default)]
pub struct PeerHealth {
    word: AtomicU64,
    suspect: AtomicBool,
    auth_failed: AtomicBool,
}

impl PeerHealth {
    fn update(&self, f: impl Fn(u64, u64) -> (u64, u64)) -> (u64, u64) {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let (count, state) = (cur >> 32, cur & 0xff);
            let (n, s) = f(count, state);
            match self.word.compare_exchange_weak(
                cur,
                (n << 32) | s,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (count, state),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A core's connection came up; true if the member is now up for the node and
    /// was not announced so (the caller logs "up").
    pub fn connected(&self) -> bool {
        let (_, old) = self.update(|count, _| (count + 1, UP));
        old != UP
    }

    /// A core's connection failed, or could not be opened (`was_up` false); true if
    /// no core has a connection any more and "down" was not announced yet (the
    /// caller logs "down").
    pub fn disconnected(&self, was_up: bool) -> bool {
        let (count, old) = self.update(|count, state| {
            let n = count.saturating_sub(u64::from(was_up));
            (n, if n == 0 { DOWN } else { state })
        });
        count.saturating_sub(u64::from(was_up)) == 0 && old != DOWN
    }

    /// A core closed its connection because the member left the ring: no log; if it
    /// joins again, its next transition is announced afresh.
    pub fn removed(&self, was_up: bool) {
        self.update(|count, state| {
            let n = count.saturating_sub(u64::from(was_up));
            (n, if n == 0 { UNKNOWN } else { state })
        });
    }

    /// Whether some core of this node has a working connection to the member: then
    /// a core whose own connection is waiting out its reconnect backoff need not wait
    /// (the member is back), and its keys stop going to fallback loads at once.
    pub fn is_up(&self) -> bool {
        self.connections() > 0
    }

    /// Cores with a working connection.
    pub fn connections(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> 32
    }

    /// Opens the member's breaker; true if it was closed (the caller logs it once and
    /// raises the `peers_suspect` gauge).
    pub fn mark_suspect(&self) -> bool {
        !self.suspect.swap(true, Ordering::AcqRel)
    }

    /// Closes the breaker (the member answered); true if it was open (the caller logs
    /// it once and lowers the gauge).
    pub fn clear_suspect(&self) -> bool {
        self.suspect.swap(false, Ordering::AcqRel)
    }

    /// Whether the breaker is open. A load of a word written only on transitions;
    /// each core reads it once per loop turn, not per request.
    pub fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Acquire)
    }

    /// A cluster-secret handshake with the member failed; true if that is news (the
    /// caller logs it once, until a handshake succeeds again).
    pub fn auth_failed(&self) -> bool {
        !self.auth_failed.swap(true, Ordering::AcqRel)
    }

    /// A handshake succeeded; true if a failure had been announced before.
    pub fn auth_succeeded(&self) -> bool {
        self.auth_failed.swap(false, Ordering::AcqRel)
    }
}

/// Every member's [`PeerHealth`], by member name. The lock is taken only when a core
/// opens its first connection to a member.
#[derive(Debug, Default)]
pub struct PeerHealthMap(Mutex<HashMap<String, Arc<PeerHealth>>>);

impl PeerHealthMap {
    /// The record of member `name`, created if new.
    pub fn get(&self, name: &str) -> Arc<PeerHealth> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_level_transition_is_reported_once() {
        let h = PeerHealth::default();
        // A member that was never reached: the first failure says "down", the rest do not.
        assert!(h.disconnected(false));
        assert!(!h.disconnected(false));
        // Three cores connect: only the first says "up".
        assert!(h.connected());
        assert!(!h.connected());
        assert!(!h.connected());
        assert_eq!(h.connections(), 3);
        // One core's connect attempt fails while others are up: nothing to say.
        assert!(!h.disconnected(false));
        // The member restarts: every core loses its connection; only the last says "down".
        assert!(!h.disconnected(true));
        assert!(!h.disconnected(true));
        assert!(h.disconnected(true));
        assert_eq!(h.connections(), 0);
        assert!(!h.disconnected(false));
        assert!(h.connected());
    }

    #[test]
    fn a_member_that_left_is_announced_afresh_when_it_returns() {
        let h = PeerHealth::default();
        assert!(h.connected());
        h.removed(true);
        assert_eq!(h.connections(), 0);
        assert!(h.connected());
        h.removed(true);
        assert!(h.disconnected(false));
    }

    #[test]
    fn concurrent_cores_report_one_up_and_one_down() {
        let h = Arc::new(PeerHealth::default());
        let ups: usize = (0..8)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || h.connected())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(ups, 1);
        let downs: usize = (0..8)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || h.disconnected(true))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(downs, 1);
    }

    #[test]
    fn breaker_and_auth_transitions_are_reported_once() {
        let h = PeerHealth::default();
        assert!(!h.is_suspect());
        assert!(h.mark_suspect());
        assert!(!h.mark_suspect());
        assert!(h.is_suspect());
        assert!(h.clear_suspect());
        assert!(!h.clear_suspect());
        assert!(!h.is_suspect());
        assert!(!h.auth_succeeded());
        assert!(h.auth_failed());
        assert!(!h.auth_failed());
        assert!(h.auth_succeeded());
        assert!(!h.auth_succeeded());
    }

    #[test]
    fn the_map_hands_out_one_record_per_member() {
        let m = PeerHealthMap::default();
        assert!(Arc::ptr_eq(&m.get("a:1"), &m.get("a:1")));
        assert!(!Arc::ptr_eq(&m.get("a:1"), &m.get("b:1")));
    }
}
