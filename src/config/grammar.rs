//! Value grammars: how one setting's text (a flag, an environment variable, a file
//! value) becomes the typed value [`Config`](super::Config) holds, and how that value
//! is written back for `--print-config`. One grammar per kind of value, so every
//! size, duration or address setting reads and prints the same way.

use std::fmt;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::origin::{OriginSpec, OriginSpecError};
use crate::units::{format_duration, format_size, parse_duration, parse_size};

use super::settings::{SeedValue, SizeValue};

/// A kind of setting value. `Raw` is what a configuration layer holds (what clap
/// and serde produce); `Value` is the field of [`Config`](super::Config) it sets.
/// `print` gives the raw form that `parse` reads back to the same value; `None`
/// leaves the setting out of the printed file (it then stays at its default).
pub(crate) trait Grammar {
    /// The setting as a layer gives it.
    type Raw;
    /// The setting as the server uses it.
    type Value;
    /// Reads a layer's value.
    fn parse(raw: &Self::Raw) -> Result<Self::Value, ValueError>;
    /// Writes a value back in the form `parse` reads.
    fn print(value: &Self::Value) -> Option<Self::Raw>;
}

/// Why a setting's value could not be read. The caller adds which setting it was
/// (see [`ConfigError`](crate::error::ConfigError)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueError {
    /// Not a size (the size grammar's reason).
    Size(String),
    /// Not a duration (the duration grammar's reason).
    Duration(String),
    /// Not a `host:port` address, or one that does not resolve.
    Address {
        /// The value as given.
        text: String,
        /// What the resolver said.
        reason: String,
    },
    /// A `host:port` that resolves to no address.
    NoAddress(String),
    /// A `--metrics-listen` value that is neither an address nor `off`.
    ListenOrOff(Box<ValueError>),
    /// Not an origin.
    Origin(OriginSpecError),
    /// A seed that is not a 64-bit whole number.
    Seed(String),
    /// A ratio outside 0..=1.
    Ratio(f64),
    /// A number outside the range the setting accepts.
    NotIn(&'static str),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Size(why) | ValueError::Duration(why) => f.write_str(why),
            ValueError::Address { text, reason } => {
                write!(f, "`{text}` is not a host:port address ({reason})")
            }
            ValueError::NoAddress(text) => write!(f, "`{text}` resolves to no address"),
            ValueError::ListenOrOff(inner) => {
                write!(f, "{inner}; give HOST:PORT (e.g. 0.0.0.0:9100) or off")
            }
            ValueError::Origin(e) => e.fmt(f),
            ValueError::Seed(text) => {
                write!(f, "`{text}` is not a whole number in 0..={}", u64::MAX)
            }
            ValueError::Ratio(v) => write!(f, "{v} is not between 0 and 1"),
            ValueError::NotIn(range) => write!(f, "must be in {range}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A size with a unit (`64MiB`) or a number of bytes.
pub(crate) fn size_of(raw: &SizeValue) -> Result<u64, ValueError> {
    match raw {
        SizeValue::Bytes(n) => Ok(*n),
        SizeValue::Text(s) => parse_size(s).map_err(|e| ValueError::Size(e.to_string())),
    }
}

/// A duration with a unit (`250ms`, `5m`).
pub(crate) fn duration_of(raw: &str) -> Result<Duration, ValueError> {
    parse_duration(raw).map_err(|e| ValueError::Duration(e.to_string()))
}

/// A duration where `0` means none (off, never expire).
pub(crate) fn optional_duration_of(raw: &str) -> Result<Option<Duration>, ValueError> {
    duration_of(raw).map(|d| (!d.is_zero()).then_some(d))
}

/// A `host:port` resolved to its first address.
pub(crate) fn address_of(raw: &str) -> Result<SocketAddr, ValueError> {
    raw.to_socket_addrs()
        .map_err(|e| ValueError::Address {
            text: raw.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ValueError::NoAddress(raw.to_string()))
}

/// A value taken as given (counts, ratios: clap and serde already typed them).
pub(crate) struct Plain<T>(PhantomData<T>);

impl<T: Clone> Grammar for Plain<T> {
    type Raw = T;
    type Value = T;
    fn parse(raw: &T) -> Result<T, ValueError> {
        Ok(raw.clone())
    }
    fn print(value: &T) -> Option<T> {
        Some(value.clone())
    }
}

/// A value that may be absent from the configuration (`--advertise`, a group's own
/// loader threads): absent stays `None`, and `None` is left out when printed.
pub(crate) struct Optional<T>(PhantomData<T>);

impl<T: Clone> Grammar for Optional<T> {
    type Raw = T;
    type Value = Option<T>;
    fn parse(raw: &T) -> Result<Option<T>, ValueError> {
        Ok(Some(raw.clone()))
    }
    fn print(value: &Option<T>) -> Option<T> {
        value.clone()
    }
}

/// `host:port`, resolved at start.
pub(crate) struct Address;

impl Grammar for Address {
    type Raw = String;
    type Value = SocketAddr;
    fn parse(raw: &String) -> Result<SocketAddr, ValueError> {
        address_of(raw)
    }
    fn print(value: &SocketAddr) -> Option<String> {
        Some(value.to_string())
    }
}

/// `host:port`, or `off` (or empty) for none, so a layer can turn off what a lower
/// one turned on.
pub(crate) struct AddressOrOff;

impl Grammar for AddressOrOff {
    type Raw = String;
    type Value = Option<SocketAddr>;
    fn parse(raw: &String) -> Result<Option<SocketAddr>, ValueError> {
        let t = raw.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        address_of(t)
            .map(Some)
            .map_err(|e| ValueError::ListenOrOff(Box::new(e)))
    }
    fn print(value: &Option<SocketAddr>) -> Option<String> {
        Some(value.map_or_else(|| "off".to_string(), |a| a.to_string()))
    }
}

/// A size in bytes (`16MiB`, or a file's integer).
pub(crate) struct Size;

impl Grammar for Size {
    type Raw = SizeValue;
    type Value = usize;
    fn parse(raw: &SizeValue) -> Result<usize, ValueError> {
        size_of(raw).map(|n| n as usize)
    }
    fn print(value: &usize) -> Option<SizeValue> {
        Some(SizeValue::Text(format_size(*value as u64)))
    }
}

/// A size, or `auto` for the value the server derives from other settings.
pub(crate) struct SizeOrAuto;

impl Grammar for SizeOrAuto {
    type Raw = SizeValue;
    type Value = Option<usize>;
    fn parse(raw: &SizeValue) -> Result<Option<usize>, ValueError> {
        match raw {
            SizeValue::Text(t) if t.trim() == "auto" => Ok(None),
            _ => size_of(raw).map(|n| Some(n as usize)),
        }
    }
    fn print(value: &Option<usize>) -> Option<SizeValue> {
        Some(SizeValue::Text(value.map_or_else(
            || "auto".to_string(),
            |n| format_size(n as u64),
        )))
    }
}

/// A size in bytes, as a 64-bit count (a group's budget).
pub(crate) struct Bytes;

impl Grammar for Bytes {
    type Raw = SizeValue;
    type Value = u64;
    fn parse(raw: &SizeValue) -> Result<u64, ValueError> {
        size_of(raw)
    }
    fn print(value: &u64) -> Option<SizeValue> {
        Some(SizeValue::Text(format_size(*value)))
    }
}

/// A duration with a unit.
pub(crate) struct Dur;

impl Grammar for Dur {
    type Raw = String;
    type Value = Duration;
    fn parse(raw: &String) -> Result<Duration, ValueError> {
        duration_of(raw)
    }
    fn print(value: &Duration) -> Option<String> {
        Some(format_duration(*value))
    }
}

/// A duration where `0` turns the limit off.
pub(crate) struct Timeout;

impl Grammar for Timeout {
    type Raw = String;
    type Value = Option<Duration>;
    fn parse(raw: &String) -> Result<Option<Duration>, ValueError> {
        optional_duration_of(raw)
    }
    fn print(value: &Option<Duration>) -> Option<String> {
        Some(format_duration(value.unwrap_or_default()))
    }
}

/// A TTL: a duration, `0` for never expire; never expiring is left out when printed.
pub(crate) struct Ttl;

impl Grammar for Ttl {
    type Raw = String;
    type Value = Option<Duration>;
    fn parse(raw: &String) -> Result<Option<Duration>, ValueError> {
        optional_duration_of(raw)
    }
    fn print(value: &Option<Duration>) -> Option<String> {
        value.map(format_duration)
    }
}

/// An origin: `none`, `dir:PATH`, `http://host:port/prefix{key}` or `synthetic:...`.
/// (An embedded origin prints as `custom`, which does not parse: `Config::to_layer`
/// refuses it first.)
pub(crate) struct Origin;

impl Grammar for Origin {
    type Raw = String;
    type Value = OriginSpec;
    fn parse(raw: &String) -> Result<OriginSpec, ValueError> {
        OriginSpec::parse(raw).map_err(ValueError::Origin)
    }
    fn print(value: &OriginSpec) -> Option<String> {
        Some(value.to_string())
    }
}

/// A 64-bit seed: a number, or (in the file) a string for values TOML integers
/// cannot hold. Absent means random.
pub(crate) struct Seed;

impl Grammar for Seed {
    type Raw = SeedValue;
    type Value = Option<u64>;
    fn parse(raw: &SeedValue) -> Result<Option<u64>, ValueError> {
        match raw {
            SeedValue::Int(n) => Ok(Some(*n)),
            SeedValue::Text(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ValueError::Seed(s.clone())),
        }
    }
    fn print(value: &Option<u64>) -> Option<SeedValue> {
        value.map(|s| {
            if i64::try_from(s).is_ok() {
                SeedValue::Int(s)
            } else {
                SeedValue::Text(s.to_string())
            }
        })
    }
}

/// `--hot-promote-ratio`: a share, 0..=1.
pub(crate) fn ratio_in_range(v: &f64) -> Result<(), ValueError> {
    if (0.0..=1.0).contains(v) {
        Ok(())
    } else {
        Err(ValueError::Ratio(*v))
    }
}

/// `--vnodes`: 1..=65536 virtual nodes per member.
pub(crate) fn vnodes_in_range(v: &u32) -> Result<(), ValueError> {
    if (1..=65_536).contains(v) {
        Ok(())
    } else {
        Err(ValueError::NotIn("1..=65536"))
    }
}
