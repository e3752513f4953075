//! Tests of the codec: parsing, byte-exact replies through a toy server, and
//! split-invariance under random input.
//!
//! Expected transcripts are memcached 1.6.18's answers to the same bytes (recorded
//! against a local `memcached`), except where a test says it checks a documented
//! difference.

mod fuzz;
mod live;
mod meta;
mod replies;
mod text;
mod toy;

use super::{parse, Command, Limits, Parsed, Request};

/// Parses exactly one complete request from `buf`.
fn one(buf: &[u8]) -> Request<'_> {
    match parse(buf, &Limits::default(), NOW) {
        Ok(Parsed::Request(r)) => r,
        other => panic!(
            "expected a request from {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// The command of the one request in `buf`.
fn cmd(buf: &[u8]) -> Command<'_> {
    one(buf).command
}

/// The clock the tests parse with.
const NOW: u64 = 1_700_000_000;

/// Asserts that the toy answers `input` with exactly `expected`.
#[track_caller]
fn transcript(input: &[u8], expected: &[u8]) {
    let got = toy::run(input);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
}
