//! Durations (`250ms`, `1.5s`, `5m`, `1d`) and byte sizes (`64MiB`, `1.5GB`) as
//! people write them, in one grammar for every groupcached binary.
//!
//! The server (`--ttl`, `--load-timeout`, `cache_size = "64MiB"`, ...), the command
//! line client (`groupcached-cli set ... --ttl 1d`, `--timeout 1.5s`) and the load
//! generator (`groupcached-bench --duration 1.5s --value-size 4KiB`) all parse with
//! this crate, so a value that works in one works in the others.
//!
//! # Durations ([`parse_duration`], [`format_duration`])
//!
//! A number, then a unit: `ns`, `us`, `ms`, `s`, `m` (or `min`), `h`, `d`. The
//! number is whole or has a decimal fraction with digits on both sides of the point
//! (`1.5s`, `0.25h`); spaces around the text and between number and unit are
//! ignored; `0` alone is zero. A unit is required (`30` is refused rather than
//! guessed at), and so are signs, exponents and units in another case (`5M`: months
//! or minutes?). Fractions finer than a nanosecond are dropped.
//!
//! # Sizes ([`parse_size`], [`format_size`])
//!
//! A number, then an optional unit: `B` (or none) for bytes; `KiB`, `MiB`, `GiB`,
//! `TiB` (also `Ki`, `Mi`, `Gi`, `Ti`) for powers of 1024; `KB` (also `k`, `K`,
//! `kB`), `MB` (`M`), `GB` (`G`), `TB` (`T`) for powers of 1000. The number may have
//! a decimal fraction (`1.5GB`, `0.5MiB`); a fraction of a byte is dropped.
//!
//! # Why not `humantime` and `bytesize`
//!
//! `humantime` reads `M` as months and `m` as minutes, accepts compound forms we would
//! then have to write back, and prints `1h 30m` where a config file wants one token;
//! `bytesize` reads units case-insensitively (`mb` as megabytes) and prints rounded
//! figures (`1.5 MiB`) that do not read back to the same byte count. The server's
//! `--print-config` must round-trip exactly ([`format_duration`] and [`format_size`]
//! pick the largest unit that divides the value), and the grammar is a few dozen
//! lines, so it lives here, with no dependencies.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod duration;
mod error;
mod number;
mod size;

pub use duration::{format_duration, parse_duration};
pub use error::{ParseError, ParseErrorKind, Quantity};
pub use size::{format_size, parse_size};
