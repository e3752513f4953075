//! `synthetic:size=N,delay_ms=D`: deterministic values derived from the key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{LoadContext, Loaded, Origin, OriginError};

/// Makes up a value for any key: the same key always gives the same bytes (lowercase
/// letters, so demos print nicely), after an optional delay that stands in for a slow
/// backend. For demos, tests and benchmarks.
#[derive(Debug)]
pub struct SyntheticOrigin {
    size: usize,
    delay: Duration,
    loads: AtomicU64,
}

impl SyntheticOrigin {
    /// Values of `size` bytes, each load taking `delay`.
    pub fn new(size: usize, delay: Duration) -> Self {
        SyntheticOrigin {
            size,
            delay,
            loads: AtomicU64::new(0),
        }
    }

    /// Loads served so far.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// The value this origin produces for `key`.
    pub fn value_for(key: &[u8], size: usize) -> Vec<u8> {
        let mut state = groupcached_protocol::key_hash(key);
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            for b in z.to_le_bytes() {
                if out.len() < size {
                    out.push(b'a' + b % 26);
                }
            }
        }
        out
    }
}

impl Origin for SyntheticOrigin {
    fn load(&self, key: &[u8], ctx: &LoadContext) -> Result<Option<Loaded>, OriginError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        if self.delay > ctx.timeout {
            // A backend slower than the server will wait for: behave like one that
            // never answered in time, without holding a loader thread any longer.
            std::thread::sleep(ctx.timeout);
            return Err(OriginError::Timeout);
        }
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.size > ctx.max_size {
            return Err(OriginError::TooLarge {
                size: self.size as u64,
                max: ctx.max_size,
            });
        }
        Ok(Some(Loaded::new(Self::value_for(key, self.size))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_key() {
        let a = SyntheticOrigin::value_for(b"k1", 37);
        assert_eq!(a.len(), 37);
        assert_eq!(a, SyntheticOrigin::value_for(b"k1", 37));
        assert_ne!(a, SyntheticOrigin::value_for(b"k2", 37));
        assert!(a.iter().all(|b| b.is_ascii_lowercase()));
    }
}
