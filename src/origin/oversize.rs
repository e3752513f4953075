//! Memory of keys whose origin value was too large to cache, so the origin is not
//! asked for them on every GET: for a while (`--too-large-ttl`) such a key is
//! answered TOO_LARGE by the loader without a request to the origin.
//!
//! Bounded: at most [`MEMO_CAPACITY`] keys per group; when full, expired entries are
//! dropped, and if none has expired the new key is not remembered (the origin is
//! then asked again, as without the memo). Used only on loader threads, so its lock
//! is never taken on a core.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys remembered per group.
pub const MEMO_CAPACITY: usize = 4096;

/// What is remembered of one key.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    until: Instant,
    size: u64,
    limit: usize,
}

/// One group's memory of too-large keys.
#[derive(Debug)]
pub struct OversizeMemo {
    ttl: Duration,
    entries: Mutex<HashMap<Box<[u8]>, Remembered, ahash::RandomState>>,
}

impl OversizeMemo {
    /// Remembers keys for `ttl`; zero remembers nothing.
    pub fn new(ttl: Duration) -> OversizeMemo {
        OversizeMemo {
            ttl,
            entries: Mutex::new(HashMap::default()),
        }
    }

    /// If `key` is remembered at `now`: its value size, the limit and how long it is
    /// remembered in all.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<(u64, usize, Duration)> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(r) if now < r.until => Some((r.size, r.limit, self.ttl)),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `key`'s value of `size` bytes was over `limit`; returns how
    /// long it is remembered (zero if it is not).
    pub fn remember(&self, key: &[u8], size: u64, limit: usize, now: Instant) -> Duration {
        if self.ttl.is_zero() {
            return Duration::ZERO;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MEMO_CAPACITY && !map.contains_key(key) {
            map.retain(|_, r| now < r.until);
            if map.len() >= MEMO_CAPACITY {
                return Duration::ZERO;
            }
        }
        map.insert(
            key.into(),
            Remembered {
                until: now + self.ttl,
                size,
                limit,
            },
        );
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_its_ttl_and_stays_bounded() {
        let m = OversizeMemo::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(m.get(b"k", t0), None);
        assert_eq!(m.remember(b"k", 99, 10, t0), Duration::from_secs(10));
        assert_eq!(
            m.get(b"k", t0 + Duration::from_secs(9)),
            Some((99, 10, Duration::from_secs(10)))
        );
        assert_eq!(m.get(b"k", t0 + Duration::from_secs(10)), None);
        for i in 0..MEMO_CAPACITY {
            m.remember(format!("k{i}").as_bytes(), 1, 0, t0);
        }
        assert_eq!(m.remember(b"one-too-many", 1, 0, t0), Duration::ZERO);
        assert_eq!(m.get(b"one-too-many", t0), None);
        // Once the others expire there is room again.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            m.remember(b"one-too-many", 1, 0, later),
            Duration::from_secs(10)
        );
        assert!(m.get(b"one-too-many", later).is_some());
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let m = OversizeMemo::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(m.remember(b"k", 99, 10, t0), Duration::ZERO);
        assert_eq!(m.get(b"k", t0), None);
    }
}
