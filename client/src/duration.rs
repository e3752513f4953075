//! Human-written durations (`500ms`, `1.5s`, `5m`, `1d`), for command lines.
//!
//! The grammar is the server's (`--ttl`, `--load-timeout`, ... in `src/units.rs`),
//! so a duration that works in one place works in the other, plus two things the
//! server does not need: fractions (`1.5s`, `0.25h`) and microseconds (`250us`). It
//! is written out here rather than shared because the client must not depend on the
//! server crate.

use std::time::Duration;

use crate::error::{Error, Result};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a duration: a number, then a unit `us`, `ms`, `s`, `m` (or `min`), `h` or
/// `d`; `0` alone is zero. The number is whole or has a decimal fraction (`1.5s`,
/// `0.25h`; digits on both sides of the point); spaces around the text and between
/// number and unit are ignored. A unit is required, so `30` is refused rather than
/// guessed at; so are signs, exponents and units in another case (`5M`). Fractions
/// finer than a nanosecond are dropped.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |why: &str| Error::InvalidArgument(format!("duration {text:?}: {why}"));
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let whole_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, rest) = s.split_at(whole_len);
    if whole.is_empty() {
        return Err(bad(
            "expected a number then a unit, like 500ms, 1.5s, 30s, 5m, 1h or 1d",
        ));
    }
    let (fraction, unit) = match rest.strip_prefix('.') {
        Some(after) => {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return Err(bad("expected digits after the decimal point, like 1.5s"));
            }
            after.split_at(len)
        }
        None => ("", rest),
    };
    let nanos_per_unit: u128 = match unit.trim_start() {
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" | "min" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        "" => return Err(bad("missing unit (us, ms, s, m, h or d)")),
        _ => return Err(bad("unknown unit (use us, ms, s, m, h or d)")),
    };
    let too_long = || bad("too long");
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    // The fraction's digits beyond a nanosecond's worth cannot change the result
    // (at most 14 matter for a day); the rest are dropped before the arithmetic.
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos += u128::from(digit - b'0') * scale;
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("5min"), Duration::from_secs(300));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok(" 0s "), Duration::ZERO);
        assert_eq!(ok("0"), Duration::ZERO);
    }

    #[test]
    fn accepts_what_the_server_accepts() {
        // src/units.rs trims around the unit, and accepts `min` and `d`.
        assert_eq!(ok("5 m"), Duration::from_secs(300));
        assert_eq!(ok("10 s"), Duration::from_secs(10));
        assert_eq!(ok("10d"), Duration::from_secs(864_000));
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.25h"), Duration::from_secs(900));
        assert_eq!(ok("2.5ms"), Duration::from_micros(2500));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        assert_eq!(ok("0.5us"), Duration::from_nanos(500));
        assert_eq!(ok("1.5d"), Duration::from_secs(129_600));
        // Below a nanosecond is dropped.
        assert_eq!(ok("0.0000000019s"), Duration::from_nanos(1));
        assert_eq!(
            ok("1.0000000000000000000000000000001s"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for bad in [
            "",
            "30",
            "1.5",
            "s",
            "ms",
            ".5s",
            "1.s",
            "1..5s",
            "-1s",
            "+1s",
            "1e3s",
            "5M",
            "10y",
            "1,5s",
            "99999999999999999999999999999999999999999s",
            "999999999999999999999d",
        ] {
            match parse_duration(bad) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains("duration"), "{msg}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
