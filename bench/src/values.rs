//! The values of single flags (`--protocol`, `--key-dist`, `--value-size`,
//! `--ratio`, `--shard-aware`), parsed for clap, with a typed error saying why a
//! value was refused. Durations come from `groupcached-units`, as the server's.

use std::fmt;

use groupcached_units::{parse_size, ParseError};

use crate::proto::Protocol;
use crate::workload::{KeyDist, Ratio, ValueSize};

/// Why a flag's value was refused; clap prints it after the flag's name.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueError {
    /// `--shard-aware` takes `on` or `off`.
    OnOff(String),
    /// Not one of the wire protocols the bench speaks.
    Protocol(String),
    /// Not `uniform`, `sequential` or `zipf:S`.
    KeyDist(String),
    /// A zipf exponent that is not a number from 0 to 10.
    ZipfExponent(String),
    /// A value size that is not a byte size.
    Size(ParseError),
    /// `MIN-MAX` with `MIN` above `MAX`.
    SizeRange {
        /// The smaller end as written.
        min: usize,
        /// The larger end as written.
        max: usize,
    },
    /// A value size over what this machine can address.
    SizeTooLarge(u64),
    /// Not `GET:SET`.
    Ratio(String),
    /// A GET or SET weight that is not a whole number.
    Weight(String),
    /// Both weights zero: there would be nothing to send.
    ZeroRatio,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::OnOff(s) => write!(f, "expected on or off, not {s:?}"),
            ValueError::Protocol(s) => write!(
                f,
                "expected groupcached, memcache or memcache-text, not {s:?}"
            ),
            ValueError::KeyDist(s) => write!(
                f,
                "expected uniform, sequential or zipf:S (e.g. zipf:0.99), not {s:?}"
            ),
            ValueError::ZipfExponent(s) => {
                write!(f, "zipf exponent {s:?}: expected a number from 0 to 10")
            }
            ValueError::Size(e) => write!(f, "{e}"),
            ValueError::SizeRange { min, max } => {
                write!(f, "{min}-{max}: the minimum is above the maximum")
            }
            ValueError::SizeTooLarge(n) => write!(f, "{n} bytes is too large"),
            ValueError::Ratio(s) => write!(f, "expected GET:SET, e.g. 9:1, not {s:?}"),
            ValueError::Weight(s) => write!(f, "{s:?} is not a whole number"),
            ValueError::ZeroRatio => f.write_str("GET and SET weights cannot both be 0"),
        }
    }
}

impl std::error::Error for ValueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ValueError::Size(e) => Some(e),
            _ => None,
        }
    }
}

/// `on` or `off`.
pub fn parse_on_off(s: &str) -> Result<bool, ValueError> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ValueError::OnOff(other.to_string())),
    }
}

/// `groupcached`, `memcache` (meta commands) or `memcache-text`.
pub fn parse_protocol(s: &str) -> Result<Protocol, ValueError> {
    match s {
        "groupcached" => Ok(Protocol::Groupcached),
        "memcache" => Ok(Protocol::Memcache),
        "memcache-text" => Ok(Protocol::MemcacheText),
        other => Err(ValueError::Protocol(other.to_string())),
    }
}

/// `uniform`, `sequential` or `zipf:S` with `S` from 0 to 10.
pub fn parse_key_dist(s: &str) -> Result<KeyDist, ValueError> {
    match s {
        "uniform" => Ok(KeyDist::Uniform),
        "sequential" => Ok(KeyDist::Sequential),
        _ => {
            let exp = s
                .strip_prefix("zipf:")
                .ok_or_else(|| ValueError::KeyDist(s.to_string()))?;
            match exp.parse::<f64>() {
                Ok(e) if e.is_finite() && (0.0..=10.0).contains(&e) => Ok(KeyDist::Zipf(e)),
                _ => Err(ValueError::ZipfExponent(exp.to_string())),
            }
        }
    }
}

/// `N` or `MIN-MAX`, each a byte size as the server reads them (`100`, `4KiB`,
/// `1.5MB`), `MIN <= MAX`.
pub fn parse_value_size(s: &str) -> Result<ValueSize, ValueError> {
    let num = |t: &str| {
        let n = parse_size(t).map_err(ValueError::Size)?;
        usize::try_from(n).map_err(|_| ValueError::SizeTooLarge(n))
    };
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    if min > max {
        return Err(ValueError::SizeRange { min, max });
    }
    Ok(ValueSize { min, max })
}

/// `GET:SET` weights, not both zero.
pub fn parse_ratio(s: &str) -> Result<Ratio, ValueError> {
    let (g, st) = s
        .split_once(':')
        .ok_or_else(|| ValueError::Ratio(s.to_string()))?;
    let w = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| ValueError::Weight(t.to_string()))
    };
    let r = Ratio {
        get: w(g)?,
        set: w(st)?,
    };
    if r.get == 0 && r.set == 0 {
        return Err(ValueError::ZeroRatio);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_distributions_print_as_they_are_written() {
        for s in ["uniform", "zipf:0.99", "zipf:1", "sequential"] {
            assert_eq!(parse_key_dist(s).unwrap().to_string(), s);
        }
        assert_eq!(
            parse_key_dist("zipf:x"),
            Err(ValueError::ZipfExponent("x".into()))
        );
    }

    #[test]
    fn value_sizes_take_the_servers_size_grammar() {
        assert_eq!(
            parse_value_size("100"),
            Ok(ValueSize { min: 100, max: 100 })
        );
        assert_eq!(
            parse_value_size("1KiB-1.5KiB"),
            Ok(ValueSize {
                min: 1024,
                max: 1536
            })
        );
        assert_eq!(
            parse_value_size("20-10"),
            Err(ValueError::SizeRange { min: 20, max: 10 })
        );
        assert!(matches!(parse_value_size("big"), Err(ValueError::Size(_))));
    }

    #[test]
    fn ratios() {
        assert_eq!(parse_ratio("9:1"), Ok(Ratio { get: 9, set: 1 }));
        assert_eq!(parse_ratio("0:0"), Err(ValueError::ZeroRatio));
        assert_eq!(parse_ratio("9"), Err(ValueError::Ratio("9".into())));
        assert_eq!(parse_ratio("x:1"), Err(ValueError::Weight("x".into())));
    }
}
