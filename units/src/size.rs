//! Byte sizes: `1048576`, `64MiB`, `1.5GB` (grammar in the crate docs).

use crate::error::{ParseError, ParseErrorKind, Quantity};
use crate::number;

/// Parses a byte size: a number (whole or with a decimal fraction) and an optional
/// unit `B`, `KiB`/`Ki`, `MiB`/`Mi`, `GiB`/`Gi`, `TiB`/`Ti` (powers of 1024) or
/// `KB`/`kB`/`k`/`K`, `MB`/`M`, `GB`/`G`, `TB`/`T` (powers of 1000). A fraction of a
/// byte is dropped.
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    let err = |kind| ParseError::new(Quantity::Size, text, kind);
    let n = number::split(Quantity::Size, text, text.trim())?;
    let per_unit: u128 = match n.unit.trim_end() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KB" | "kB" => 1_000,
        "KiB" | "Ki" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" | "Mi" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" | "Gi" => 1 << 30,
        "T" | "TB" => 1_000_000_000_000,
        "TiB" | "Ti" => 1 << 40,
        other => return Err(err(ParseErrorKind::UnknownUnit(other.to_string()))),
    };
    n.scale(per_unit)
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or_else(|| err(ParseErrorKind::TooLarge))
}

/// Writes a byte size in the largest binary unit that divides it exactly (`64MiB`,
/// `1536`), so [`parse_size`] reads back the same value.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("4k"), Ok(4_000));
        assert_eq!(parse_size(" 4 KiB "), Ok(4096));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5MiB"), Ok(512 << 10));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        // A fraction of a byte is dropped.
        assert_eq!(parse_size("0.1KiB"), Ok(102));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        for (bad, kind) in [
            ("MiB", ParseErrorKind::NotANumber),
            ("lots", ParseErrorKind::NotANumber),
            ("-1", ParseErrorKind::NotANumber),
            ("1.MiB", ParseErrorKind::NoFractionDigits),
            ("12XB", ParseErrorKind::UnknownUnit("XB".into())),
            ("64mb", ParseErrorKind::UnknownUnit("mb".into())),
            ("99999999999TiB", ParseErrorKind::TooLarge),
            ("18446744073709551616", ParseErrorKind::TooLarge),
        ] {
            match parse_size(bad) {
                Err(e) => assert_eq!(e.kind(), &kind, "{bad:?}: {e}"),
                Ok(n) => panic!("{bad:?} gave {n}"),
            }
        }
        let msg = parse_size("12XB").unwrap_err().to_string();
        assert!(msg.contains("unknown size unit"), "{msg}");
    }

    #[test]
    fn formatted_values_read_back() {
        for n in [
            0,
            1,
            1000,
            1024,
            1536,
            64 << 20,
            3 << 30,
            5 << 40,
            123_456_789,
            u64::MAX,
        ] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{}", format_size(n));
        }
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1536), "1536");
    }
}
