//! Durations: `250ms`, `1.5s`, `5m`, `1d` (grammar in the crate docs).

use std::time::Duration;

use crate::error::{ParseError, ParseErrorKind, Quantity};
use crate::number;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Units from the largest, with their length in nanoseconds; [`format_duration`]
/// writes the first that divides the value.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration: a number (whole or with a decimal fraction), then a unit `ns`,
/// `us`, `ms`, `s`, `m` (or `min`), `h` or `d`; `0` alone is zero. See the crate
/// docs for what is refused and why.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let err = |kind| ParseError::new(Quantity::Duration, text, kind);
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let n = number::split(Quantity::Duration, text, t)?;
    let per_unit = match n.unit {
        "min" => 60 * NANOS_PER_SEC,
        "" => return Err(err(ParseErrorKind::MissingUnit)),
        unit => match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, nanos)) => nanos,
            None => return Err(err(ParseErrorKind::UnknownUnit(unit.to_string()))),
        },
    };
    let nanos = n
        .scale(per_unit)
        .ok_or_else(|| err(ParseErrorKind::TooLarge))?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| err(ParseErrorKind::TooLarge))?;
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// Writes a duration in the largest unit that divides it exactly (`250ms`, `10s`,
/// `5m`, `1500us`), so [`parse_duration`] reads back the same value; zero is `0`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0".into();
    }
    let nanos = d.as_nanos();
    for (unit, per_unit) in UNITS {
        if nanos % per_unit == 0 {
            return format!("{}{unit}", nanos / per_unit);
        }
    }
    unreachable!("every duration is a whole number of nanoseconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("5min"), Duration::from_secs(300));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok(" 0s "), Duration::ZERO);
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("5 m"), Duration::from_secs(300));
        assert_eq!(ok(" 10 s "), Duration::from_secs(10));
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.25h"), Duration::from_secs(900));
        assert_eq!(ok("2.5ms"), Duration::from_micros(2500));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        assert_eq!(ok("0.5us"), Duration::from_nanos(500));
        assert_eq!(ok("1.5d"), Duration::from_secs(129_600));
        assert_eq!(ok("0.1d"), Duration::from_secs(8640));
        // Below a nanosecond is dropped.
        assert_eq!(ok("0.0000000019s"), Duration::from_nanos(1));
        assert_eq!(
            ok("1.0000000000000000000000000000001s"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for (bad, kind) in [
            ("", ParseErrorKind::NotANumber),
            ("soon", ParseErrorKind::NotANumber),
            (".5s", ParseErrorKind::NotANumber),
            ("-1s", ParseErrorKind::NotANumber),
            ("+1s", ParseErrorKind::NotANumber),
            ("s", ParseErrorKind::NotANumber),
            ("30", ParseErrorKind::MissingUnit),
            ("1.5", ParseErrorKind::MissingUnit),
            ("1.s", ParseErrorKind::NoFractionDigits),
            ("1..5s", ParseErrorKind::NoFractionDigits),
            ("1e3s", ParseErrorKind::UnknownUnit("e3s".into())),
            ("5M", ParseErrorKind::UnknownUnit("M".into())),
            ("10y", ParseErrorKind::UnknownUnit("y".into())),
            ("1,5s", ParseErrorKind::UnknownUnit(",5s".into())),
            (
                "99999999999999999999999999999999999999999s",
                ParseErrorKind::TooLarge,
            ),
            ("999999999999999999999d", ParseErrorKind::TooLarge),
        ] {
            match parse_duration(bad) {
                Err(e) => {
                    assert_eq!(e.kind(), &kind, "{bad:?}: {e}");
                    assert!(e.to_string().contains(bad), "{e}");
                }
                Ok(d) => panic!("{bad:?} gave {d:?}"),
            }
        }
        let msg = parse_duration("10").unwrap_err().to_string();
        assert!(msg.contains("needs a unit"), "{msg}");
    }

    #[test]
    fn formatted_values_read_back() {
        for d in [
            Duration::from_nanos(1),
            Duration::from_micros(10),
            Duration::from_millis(1),
            Duration::from_millis(250),
            Duration::from_millis(1500),
            Duration::from_secs(60),
            Duration::from_secs(90),
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
            Duration::from_millis(172_800_001),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_micros(10)), "10us");
        assert_eq!(format_duration(Duration::ZERO), "0");
    }
}
