//! Expiry in five bytes: milliseconds since a per-store epoch.
//!
//! An `Option<Instant>` takes 16 bytes; an item header has room for 40 bits. The
//! epoch is set 2^28 s (8.5 years) before the store is created, so every instant a
//! caller can pass (its `now`, taken before or after) lies after it, and 40 bits of
//! milliseconds reach 26 years past creation. Expiries are rounded **down** to the
//! millisecond (an item may leave up to 1 ms early, never late). An expiry further
//! away has no code: TTLs are never clamped (docs/protocol.md, "TTL semantics"), so
//! the store keeps such an item out of line, with its exact `Instant`.

use std::time::{Duration, Instant};

/// Largest code: 2^40 - 1.
const MAX_CODE: u64 = (1 << 40) - 1;

/// Converts between `Instant`s and 40-bit expiry codes.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose epoch lies well before now.
    pub fn new() -> Clock {
        let now = Instant::now();
        let epoch = [1u64 << 28, 1 << 20, 1 << 10]
            .into_iter()
            .find_map(|s| now.checked_sub(Duration::from_secs(s)))
            .unwrap_or(now);
        Clock { epoch }
    }

    /// Whole milliseconds from the epoch to `t`, plus one (so 0 can mean "never");
    /// saturates at `u64::MAX`.
    #[inline]
    fn code_of(&self, t: Instant) -> u64 {
        let ms = t.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// The code of an expiry (0 = never), or `None` if it lies too far ahead for 40
    /// bits.
    #[inline]
    pub fn encode(&self, expires: Option<Instant>) -> Option<u64> {
        match expires {
            None => Some(0),
            Some(t) => Some(self.code_of(t)).filter(|&c| c <= MAX_CODE),
        }
    }

    /// The expiry a code stands for: `t` rounded down to the millisecond.
    #[inline]
    pub fn decode(&self, code: u64) -> Option<Instant> {
        (code != 0).then(|| self.epoch + Duration::from_millis(code - 1))
    }

    /// Whether an item with expiry `code` is expired at `now`: exactly when its
    /// decoded expiry is at or before `now`.
    #[inline]
    pub fn expired(&self, code: u64, now: Instant) -> bool {
        code != 0 && code <= self.code_of(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_rounded_down_to_the_millisecond_and_checked_consistently() {
        let now = Instant::now();
        let c = Clock::new();
        assert_eq!(c.encode(None), Some(0));
        assert_eq!(c.decode(0), None);
        assert!(!c.expired(0, now + Duration::from_secs(1 << 30)));
        for off in [0u64, 1, 999, 1_000, 1_000_001, 59_999_999, 3_600_000_123] {
            let e = now + Duration::from_micros(off);
            let code = c.encode(Some(e)).unwrap();
            let d = c.decode(code).unwrap();
            assert!(d <= e && e - d < Duration::from_millis(1), "offset {off}us");
            assert!(c.expired(code, e));
            assert!(c.expired(code, d));
            assert!(!c.expired(code, d - Duration::from_nanos(1)));
        }
    }

    #[test]
    fn instants_taken_before_the_clock_are_after_its_epoch() {
        let before = Instant::now();
        let c = Clock::new();
        let e = before + Duration::from_millis(5);
        let code = c.encode(Some(e)).unwrap();
        assert!(c.decode(code).unwrap() <= e);
        assert!(!c.expired(code, before));
        assert!(c.expired(code, e));
    }

    #[test]
    fn far_expiries_have_no_code() {
        let now = Instant::now();
        let c = Clock::new();
        let year = Duration::from_secs(365 * 86_400);
        let near = c.encode(Some(now + 25 * year)).unwrap();
        assert!(c.decode(near).unwrap() > now + 25 * year - Duration::from_millis(1));
        assert_eq!(c.encode(Some(now + 27 * year)), None);
        // 2^64 - 1 ms: its millisecond count does not fit in a u64 past the epoch.
        assert_eq!(c.encode(Some(now + Duration::from_millis(u64::MAX))), None);
    }
}
