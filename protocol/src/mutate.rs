//! The `mode` byte of MUTATE and the `ttl_ms` value that keeps an item's expiry.
//!
//! MUTATE is the owner-side write the memcached front end needs: `add`, `replace`,
//! `append`, `prepend`, `cas`, `incr`, `decr`, `touch` and flags-carrying `set` must
//! be applied at the key's owner (the only writer of its shard), so a node forwards
//! them there as one opcode whose `mode` says which write it is.

use std::fmt;

/// The MUTATE `ttl_ms` that keeps the item's current expiry (APPEND, PREPEND, INCR,
/// DECR; with TOUCH it changes nothing). Where no item exists to keep an expiry from
/// (a SET or ADD that creates one, an INCR/DECR with [`MUTATE_VIVIFY`] that creates
/// one), it means the group's default TTL, like 0.
///
/// Only MUTATE gives `u64::MAX` this meaning: in SET and STORE it stays an ordinary
/// (very long) TTL, as version 1 always defined it.
pub const KEEP_TTL: u64 = u64::MAX;

/// The bit of the MUTATE `mode` byte that lets INCR and DECR create an absent item
/// with the request's value (decimal text) as its initial number.
pub const MUTATE_VIVIFY: u8 = 0x40;

/// Which write a MUTATE applies at the key's owner (the low 4 bits of its `mode`
/// byte, plus [`MUTATE_VIVIFY`] for INCR and DECR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutateMode {
    /// Store the value with the request's flags, present or not (memcached `set`).
    Set,
    /// Store only if the key is absent; a present key answers `NOT_STORED`.
    Add,
    /// Store only if the key is present; an absent key answers `NOT_FOUND`.
    Replace,
    /// Add the value's bytes after the item's; keeps its flags and expiry.
    Append,
    /// Add the value's bytes before the item's; keeps its flags and expiry.
    Prepend,
    /// Store only if the item's CAS equals the request's `cas`; otherwise `EXISTS`.
    Cas,
    /// Add `delta` to the item's decimal u64 value (wrapping at 2^64, as memcached).
    Incr {
        /// Create an absent item with the request's value as its initial number.
        vivify: bool,
    },
    /// Subtract `delta` from the item's decimal u64 value (stopping at 0, as memcached).
    Decr {
        /// Create an absent item with the request's value as its initial number.
        vivify: bool,
    },
    /// Give the item a new expiry and answer with it.
    Touch,
}

impl MutateMode {
    /// Every mode without [`MUTATE_VIVIFY`], in numeric order of their low 4 bits.
    pub const ALL: [MutateMode; 9] = [
        MutateMode::Set,
        MutateMode::Add,
        MutateMode::Replace,
        MutateMode::Append,
        MutateMode::Prepend,
        MutateMode::Cas,
        MutateMode::Incr { vivify: false },
        MutateMode::Decr { vivify: false },
        MutateMode::Touch,
    ];

    /// The wire byte: the mode number in the low 4 bits, [`MUTATE_VIVIFY`] if set.
    pub fn to_byte(self) -> u8 {
        match self {
            MutateMode::Set => 0,
            MutateMode::Add => 1,
            MutateMode::Replace => 2,
            MutateMode::Append => 3,
            MutateMode::Prepend => 4,
            MutateMode::Cas => 5,
            MutateMode::Incr { vivify } => 6 | if vivify { MUTATE_VIVIFY } else { 0 },
            MutateMode::Decr { vivify } => 7 | if vivify { MUTATE_VIVIFY } else { 0 },
            MutateMode::Touch => 8,
        }
    }

    /// The mode's name as written in docs/protocol.md (without the VIVIFY bit).
    pub fn name(self) -> &'static str {
        match self {
            MutateMode::Set => "SET",
            MutateMode::Add => "ADD",
            MutateMode::Replace => "REPLACE",
            MutateMode::Append => "APPEND",
            MutateMode::Prepend => "PREPEND",
            MutateMode::Cas => "CAS",
            MutateMode::Incr { .. } => "INCR",
            MutateMode::Decr { .. } => "DECR",
            MutateMode::Touch => "TOUCH",
        }
    }

    /// Whether the request's value means something in this mode (SET, ADD, REPLACE,
    /// CAS: the value; APPEND, PREPEND: the bytes to add; INCR/DECR with VIVIFY: the
    /// initial number). The others send it empty and a receiver ignores it.
    pub fn takes_value(self) -> bool {
        !matches!(
            self,
            MutateMode::Incr { vivify: false }
                | MutateMode::Decr { vivify: false }
                | MutateMode::Touch
        )
    }
}

/// Reads a `mode` byte; the error is the byte itself: a mode number above 8, any bit
/// other than the low 4 and [`MUTATE_VIVIFY`], or VIVIFY on a mode other than INCR
/// and DECR.
impl TryFrom<u8> for MutateMode {
    type Error = u8;
    fn try_from(b: u8) -> Result<Self, u8> {
        let vivify = b & MUTATE_VIVIFY != 0;
        let mode = match (b & !MUTATE_VIVIFY, vivify) {
            (6, _) => MutateMode::Incr { vivify },
            (7, _) => MutateMode::Decr { vivify },
            (_, true) => return Err(b),
            (0, false) => MutateMode::Set,
            (1, false) => MutateMode::Add,
            (2, false) => MutateMode::Replace,
            (3, false) => MutateMode::Append,
            (4, false) => MutateMode::Prepend,
            (5, false) => MutateMode::Cas,
            (8, false) => MutateMode::Touch,
            _ => return Err(b),
        };
        Ok(mode)
    }
}

impl fmt::Display for MutateMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            MutateMode::Incr { vivify: true } | MutateMode::Decr { vivify: true } => {
                f.write_str("|VIVIFY")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_round_trips_through_its_byte() {
        for mode in MutateMode::ALL {
            assert_eq!(MutateMode::try_from(mode.to_byte()), Ok(mode), "{mode}");
        }
        for vivify in [false, true] {
            for mode in [MutateMode::Incr { vivify }, MutateMode::Decr { vivify }] {
                assert_eq!(MutateMode::try_from(mode.to_byte()), Ok(mode), "{mode}");
            }
        }
        assert_eq!(MutateMode::Incr { vivify: true }.to_byte(), 0x46);
        assert_eq!(MutateMode::Decr { vivify: true }.to_string(), "DECR|VIVIFY");
    }

    #[test]
    fn unknown_modes_and_stray_bits_are_refused() {
        // Mode numbers 9..=15, VIVIFY on a mode that cannot create, any other bit.
        for b in 9u8..=15 {
            assert_eq!(MutateMode::try_from(b), Err(b));
        }
        for b in [0x40u8, 0x41, 0x45, 0x48, 0x4f] {
            assert_eq!(MutateMode::try_from(b), Err(b));
        }
        for bit in [0x10u8, 0x20, 0x80] {
            for mode in MutateMode::ALL {
                let b = mode.to_byte() | bit;
                assert_eq!(MutateMode::try_from(b), Err(b));
            }
        }
        // Exactly 9 + 2 bytes of the 256 are modes.
        let valid = (0..=255u8)
            .filter(|&b| MutateMode::try_from(b).is_ok())
            .count();
        assert_eq!(valid, 11);
    }
}
