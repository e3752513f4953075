//! [`OriginSpec`]: an origin as an operator names it (`--origin`, a `[[group]]`'s
//! `origin`), parsed and printed back in the same grammar.
//!
//! It lives with the origins rather than with the configuration so that origin code
//! never needs the configuration module: `config` depends on `origin`, not the
//! other way round.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Origin;
use crate::units::{parse_duration, parse_size};

/// Where a group's values come from on a miss.
#[derive(Clone)]
pub enum OriginSpec {
    /// Pure cache: misses are NOT_FOUND; SET fills.
    None,
    /// Files under a directory; the key is a relative path.
    Dir(PathBuf),
    /// An HTTP service; `{key}` in the template is replaced by the percent-encoded key.
    Http(String),
    /// Deterministic values derived from the key, for demos and benchmarks.
    Synthetic {
        /// Bytes per value.
        size: usize,
        /// Simulated load latency.
        delay: Duration,
    },
    /// A loader supplied by a program that embeds the server.
    Custom(Arc<dyn Origin>),
}

/// Why a text is not an origin. The message says what form is accepted; the caller
/// adds which setting held the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginSpecError {
    /// `dir:` with nothing after it.
    NoDirectory,
    /// `https://`, which the HTTP origin does not speak.
    Https,
    /// An `http://` template that cannot work (the reason from the HTTP origin's
    /// template check).
    HttpTemplate(String),
    /// A synthetic parameter without `=`.
    NotKeyValue {
        /// The parameter as given.
        param: String,
        /// The whole spec.
        spec: String,
    },
    /// A synthetic `size=` that is not a size (the reason from the size grammar).
    Size(String),
    /// A synthetic `delay=` that is not a duration (the reason from the duration
    /// grammar).
    Delay(String),
    /// A synthetic `delay_ms=` that is not a whole number.
    DelayMs(String),
    /// A synthetic parameter other than `size`, `delay_ms` and `delay`.
    UnknownParameter(String),
    /// None of the origin kinds.
    Unknown(String),
}

impl fmt::Display for OriginSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginSpecError::NoDirectory => {
                f.write_str("`dir:` needs a directory, e.g. dir:/srv/files")
            }
            OriginSpecError::Https => f.write_str(
                "https origins are not supported; put a local TLS-terminating proxy in front \
                 and use http://",
            ),
            OriginSpecError::HttpTemplate(why)
            | OriginSpecError::Size(why)
            | OriginSpecError::Delay(why) => f.write_str(why),
            OriginSpecError::NotKeyValue { param, spec } => {
                write!(f, "`{param}` is not key=value in `{spec}`")
            }
            OriginSpecError::DelayMs(v) => write!(f, "delay_ms `{v}` is not a number"),
            OriginSpecError::UnknownParameter(p) => {
                write!(f, "unknown synthetic parameter `{p}` (size, delay_ms)")
            }
            OriginSpecError::Unknown(s) => write!(
                f,
                "`{s}` is not an origin (none, dir:PATH, http://host:port/prefix{{key}}, \
                 synthetic:size=N,delay_ms=D)"
            ),
        }
    }
}

impl std::error::Error for OriginSpecError {}

impl OriginSpec {
    /// Parses `none`, `dir:PATH`, `http://host:port/prefix{key}` or
    /// `synthetic:size=N,delay_ms=D` (both parameters optional).
    pub fn parse(s: &str) -> Result<OriginSpec, OriginSpecError> {
        let s = s.trim();
        if s == "none" {
            return Ok(OriginSpec::None);
        }
        if let Some(path) = s.strip_prefix("dir:") {
            if path.is_empty() {
                return Err(OriginSpecError::NoDirectory);
            }
            return Ok(OriginSpec::Dir(PathBuf::from(path)));
        }
        if s.starts_with("http://") {
            super::check_http_template(s)
                .map_err(|why| OriginSpecError::HttpTemplate(why.to_string()))?;
            return Ok(OriginSpec::Http(s.to_string()));
        }
        if s.starts_with("https://") {
            return Err(OriginSpecError::Https);
        }
        if let Some(params) = s.strip_prefix("synthetic") {
            return parse_synthetic(s, params.strip_prefix(':').unwrap_or(params));
        }
        Err(OriginSpecError::Unknown(s.to_string()))
    }
}

/// The parameters of `synthetic:`; `spec` is the whole text, for messages.
fn parse_synthetic(spec: &str, params: &str) -> Result<OriginSpec, OriginSpecError> {
    let (mut size, mut delay) = (100usize, Duration::ZERO);
    for kv in params.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| OriginSpecError::NotKeyValue {
                param: kv.to_string(),
                spec: spec.to_string(),
            })?;
        match k.trim() {
            "size" => {
                size = parse_size(v).map_err(|e| OriginSpecError::Size(e.to_string()))? as usize
            }
            "delay_ms" => {
                let ms = v
                    .trim()
                    .parse()
                    .map_err(|_| OriginSpecError::DelayMs(v.to_string()))?;
                delay = Duration::from_millis(ms);
            }
            "delay" => {
                delay = parse_duration(v).map_err(|e| OriginSpecError::Delay(e.to_string()))?
            }
            other => return Err(OriginSpecError::UnknownParameter(other.to_string())),
        }
    }
    Ok(OriginSpec::Synthetic { size, delay })
}

impl fmt::Debug for OriginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The form [`OriginSpec::parse`] reads back (`custom` for an embedded origin,
/// which has no text form).
impl fmt::Display for OriginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginSpec::None => f.write_str("none"),
            OriginSpec::Dir(p) => write!(f, "dir:{}", p.display()),
            OriginSpec::Http(t) => f.write_str(t),
            OriginSpec::Synthetic { size, delay } => {
                write!(f, "synthetic:size={size},delay_ms={}", delay.as_millis())
            }
            OriginSpec::Custom(_) => f.write_str("custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_specs_parse() {
        assert!(matches!(OriginSpec::parse("none"), Ok(OriginSpec::None)));
        match OriginSpec::parse("synthetic:size=1KiB,delay_ms=5").unwrap() {
            OriginSpec::Synthetic { size, delay } => {
                assert_eq!(size, 1024);
                assert_eq!(delay, Duration::from_millis(5));
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            OriginSpec::parse("synthetic:colour=red").unwrap_err(),
            OriginSpecError::UnknownParameter("colour".into())
        );
        assert_eq!(
            OriginSpec::parse("https://x/{key}").unwrap_err(),
            OriginSpecError::Https
        );
        assert_eq!(
            OriginSpec::parse("dir:").unwrap_err(),
            OriginSpecError::NoDirectory
        );
    }

    #[test]
    fn printed_specs_parse_back() {
        for text in [
            "none",
            "dir:/srv/files",
            "http://127.0.0.1:8080/t/{key}",
            "synthetic:size=10,delay_ms=5",
        ] {
            let spec = OriginSpec::parse(text).unwrap();
            assert_eq!(spec.to_string(), text);
        }
    }
}
