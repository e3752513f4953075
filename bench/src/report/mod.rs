//! Counting and reporting: the counters and HDR histograms each generator thread
//! keeps, their merge, the line per second, the final summary and its JSON form.
//!
//! Definitions used everywhere: an **op** is a request answered successfully (a GET
//! that found a value or found none, a stored SET); an **error** is a request answered
//! with an error or never answered (connection lost, timed out); **requests** = ops +
//! errors. A GET that **found** a value was answered with one, whether the server had
//! it cached or loaded it from its origin for this request; how many GETs the server
//! answered **from its cache** is a different figure, which only the server knows
//! (see [`ServerCache`]). Latency
//! covers every answered request, measured from when it was sent (closed loop) or
//! was due (open loop) to when the read that completed it returned.
//!
//! Files: `counters.rs` is what each thread counts (and the line per second),
//! `summary.rs` the merged result, its text and its JSON.

mod counters;
mod summary;

pub use counters::{Counters, Interval, Latencies, ThreadResult};
pub use summary::{ServerCache, Sharding, Summary};
