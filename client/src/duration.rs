//! Human-written durations (`500ms`, `30s`, `5m`), for command lines and config.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a whole number followed by a unit: `us`, `ms`, `s`, `m` or `h`
/// (`500ms`, `30s`, `5m`, `1h`). A unit is required, so `30` is refused rather than
/// guessed at; fractions are refused too (write `1500ms`, not `1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |why: &str| Error::InvalidArgument(format!("duration {text:?}: {why}"));
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(bad("expected a number then a unit, like 500ms, 30s or 5m"));
    }
    let n: u64 = number.parse().map_err(|_| bad("number is too large"))?;
    let per_unit = match unit {
        "us" => Duration::from_micros(1),
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "" => return Err(bad("missing unit (us, ms, s, m or h)")),
        _ => return Err(bad("unknown unit (use us, ms, s, m or h)")),
    };
    u32::try_from(n)
        .ok()
        .and_then(|n| per_unit.checked_mul(n))
        .ok_or_else(|| bad("too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(
            parse_duration("250us").ok(),
            Some(Duration::from_micros(250))
        );
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h").ok(), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 0s ").ok(), Some(Duration::ZERO));
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for bad in [
            "",
            "30",
            "s",
            "ms",
            "1.5s",
            "-1s",
            "5 m",
            "5M",
            "10d",
            "99999999999999999999s",
            "5000000000h",
        ] {
            match parse_duration(bad) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains("duration"), "{msg}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
