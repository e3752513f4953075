//! The in-flight table (groupcache's singleflight): one load per key, many waiters.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// Identifies one load; results come back tagged with it.
pub type LoadId = u64;

/// How a waiter joined a key's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// No load was running: the caller must start load `LoadId`.
    First(LoadId),
    /// A load was already running; the waiter will get its result.
    Joined(LoadId),
}

/// One load and the requests waiting for it.
#[derive(Debug)]
pub struct Load<W> {
    /// The key being loaded.
    pub key: Box<[u8]>,
    /// Everyone waiting for the result, in arrival order.
    pub waiters: Vec<W>,
    /// False once a SET or DELETE of the key has happened since the load began: its
    /// result still answers the waiters but must not be cached (it may be older).
    pub current: bool,
}

/// Loads in progress, by key and by id.
#[derive(Debug)]
pub struct InflightTable<W> {
    by_key: HashMap<Box<[u8]>, LoadId, ahash::RandomState>,
    loads: HashMap<LoadId, Load<W>, ahash::RandomState>,
    deadlines: BinaryHeap<Reverse<(Instant, LoadId)>>,
    next_id: LoadId,
    id_step: LoadId,
}

impl<W> Default for InflightTable<W> {
    fn default() -> Self {
        InflightTable::with_ids(1, 1)
    }
}

impl<W> InflightTable<W> {
    /// A table whose load ids are `first`, `first + step`, ...: two tables with the
    /// same step and different `first` never share an id.
    pub fn with_ids(first: LoadId, step: LoadId) -> Self {
        InflightTable {
            by_key: HashMap::default(),
            loads: HashMap::default(),
            deadlines: BinaryHeap::new(),
            next_id: first,
            id_step: step.max(1),
        }
    }

    /// Adds `waiter` to the load of `key`, creating the load (due by `deadline`) if
    /// none is running.
    pub fn join(&mut self, key: &[u8], waiter: W, deadline: Instant) -> Join {
        if let Some(&id) = self.by_key.get(key) {
            if let Some(load) = self.loads.get_mut(&id) {
                load.waiters.push(waiter);
                return Join::Joined(id);
            }
        }
        let id = self.next_id;
        self.next_id += self.id_step;
        self.by_key.insert(key.into(), id);
        self.loads.insert(
            id,
            Load {
                key: key.into(),
                waiters: vec![waiter],
                current: true,
            },
        );
        self.deadlines.push(Reverse((deadline, id)));
        Join::First(id)
    }

    /// A write (SET/DELETE) happened to `key`: its running load, if any, no longer
    /// speaks for the key. Later GETs start a new load; the old one's result is
    /// delivered to its waiters but not cached. Returns whether a load was detached.
    pub fn supersede(&mut self, key: &[u8]) -> bool {
        match self.by_key.remove(key) {
            Some(id) => {
                if let Some(load) = self.loads.get_mut(&id) {
                    load.current = false;
                }
                true
            }
            None => false,
        }
    }

    /// Every key was written (`flush_all`): [`InflightTable::supersede`] of every
    /// running load.
    pub fn supersede_all(&mut self) {
        for load in self.loads.values_mut() {
            load.current = false;
        }
        self.by_key.clear();
    }

    /// The key of running load `id`.
    pub fn key_of(&self, id: LoadId) -> Option<&[u8]> {
        self.loads.get(&id).map(|l| &l.key[..])
    }

    /// Ends load `id` and hands back its waiters (None if it already timed out).
    pub fn complete(&mut self, id: LoadId) -> Option<Load<W>> {
        let load = self.loads.remove(&id)?;
        if load.current {
            self.by_key.remove(&load.key[..]);
        }
        Some(load)
    }

    /// Ends every load whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant, mut on_expired: impl FnMut(Load<W>)) {
        while let Some(Reverse((deadline, id))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if let Some(load) = self.complete(id) {
                on_expired(load);
            }
        }
    }

    /// The earliest deadline of a running load.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        // Drop heap entries of loads that already completed.
        while let Some(Reverse((deadline, id))) = self.deadlines.peek().copied() {
            if self.loads.contains_key(&id) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Number of loads running.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.loads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn concurrent_waiters_share_one_load() {
        let now = Instant::now();
        let mut t = InflightTable::default();
        let id = match t.join(b"k", 1, now) {
            Join::First(id) => id,
            j => panic!("{j:?}"),
        };
        assert_eq!(t.join(b"k", 2, now), Join::Joined(id));
        assert_eq!(t.join(b"k", 3, now), Join::Joined(id));
        assert!(matches!(t.join(b"other", 4, now), Join::First(_)));
        let load = t.complete(id).unwrap();
        assert_eq!(load.waiters, vec![1, 2, 3]);
        assert!(load.current);
        // Completed: the next miss starts a new load.
        assert!(matches!(t.join(b"k", 5, now), Join::First(_)));
        assert!(t.complete(id).is_none());
    }

    #[test]
    fn superseded_load_is_not_current_and_next_get_starts_fresh() {
        let now = Instant::now();
        let mut t = InflightTable::default();
        let Join::First(old) = t.join(b"k", 1, now) else {
            panic!()
        };
        assert!(t.supersede(b"k"));
        let Join::First(new) = t.join(b"k", 2, now) else {
            panic!()
        };
        assert_ne!(old, new);
        let old_load = t.complete(old).unwrap();
        assert!(!old_load.current);
        assert_eq!(old_load.waiters, vec![1]);
        // Completing the old load must not have detached the new one.
        assert_eq!(t.join(b"k", 3, now), Join::Joined(new));
    }

    #[test]
    fn expiry_answers_due_loads_only() {
        let now = Instant::now();
        let mut t = InflightTable::default();
        t.join(b"a", 1, now + Duration::from_secs(1));
        t.join(b"b", 2, now + Duration::from_secs(5));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        let mut expired = Vec::new();
        t.expire(now + Duration::from_secs(2), |l| expired.push(l.waiters));
        assert_eq!(expired, vec![vec![1]]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(5)));
        // The expired key is loadable again.
        assert!(matches!(t.join(b"a", 3, now), Join::First(_)));
    }
}
