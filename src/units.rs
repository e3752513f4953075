//! Sizes (`64MiB`) and durations (`250ms`, `1.5s`, `1d`) as operators write them.
//!
//! The grammar lives in the `groupcached-units` crate, shared with `groupcached-cli`
//! and `groupcached-bench` so that `--ttl 1d` means the same to all three; this module
//! keeps the names the server has always used. Errors are
//! [`groupcached_units::ParseError`], which converts into `String` for callers that
//! collect messages as text.

pub use groupcached_units::{format_duration, format_size, parse_duration, parse_size};
