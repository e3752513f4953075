//! Validation: ranges and consistency of a layered [`Config`], and the start-time
//! checks of what it names outside itself (directories, a peers file). Every error
//! names the setting.

use std::fmt;
use std::io;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use groupcached_protocol::MAX_GROUP_LEN;

use super::Config;
use crate::error::ConfigError;
use crate::membership::PeerSource;
use crate::origin::{OriginSpec, OriginSpecError};

/// Largest `loader_queue` accepted.
pub const MAX_LOADER_QUEUE: usize = 1 << 20;

impl Config {
    /// Checks the connection limits (part of [`Config::validate`]).
    fn validate_conn_limits(&self) -> Result<(), ConfigError> {
        if let Some(d) = self.idle_timeout {
            if d < Duration::from_secs(1) {
                return Err(ConfigError::new(
                    "--idle-timeout",
                    "must be 0 (off) or at least 1s",
                ));
            }
        }
        if let Some(d) = self.frame_timeout {
            if d < Duration::from_millis(100) {
                return Err(ConfigError::new(
                    "--frame-timeout",
                    "must be 0 (off) or at least 100ms",
                ));
            }
        }
        let min_output = (4 << 20) + self.max_frame;
        if self.conn_output_limit() < min_output {
            return Err(ConfigError::new(
                "--max-conn-output",
                format!(
                    "must be at least 4MiB + --max-frame ({min_output} bytes), so one \
                     largest answer fits above the 4MiB backpressure mark"
                ),
            ));
        }
        let min_memory = 2 * self.max_frame;
        if self.buffer_memory_limit() < min_memory {
            return Err(ConfigError::new(
                "--max-buffer-memory",
                format!(
                    "must be at least 2 x --max-frame ({min_memory} bytes), so a largest \
                     frame can always be received"
                ),
            ));
        }
        Ok(())
    }

    /// Checks ranges and consistency; every message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peer_timeout.is_zero() {
            return Err(ConfigError::new("--peer-timeout", "must be more than 0"));
        }
        if self.peers_refresh < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "--peers-refresh",
                "must be at least 100ms",
            ));
        }
        if !(1..=1024).contains(&self.threads) {
            return Err(ConfigError::new(
                "--threads",
                format!("{} is not in 1..=1024", self.threads),
            ));
        }
        if self.groups.is_empty() {
            return Err(ConfigError::new("groups", "at least one group is needed"));
        }
        if let Some(name) = &self.memcache_group {
            if !self.groups.iter().any(|g| &g.name == name) {
                return Err(ConfigError::new(
                    "--memcache-group",
                    format!("no group named `{name}` is configured"),
                ));
            }
        }
        if !(1024..=1 << 30).contains(&self.max_frame) {
            return Err(ConfigError::new(
                "--max-frame",
                "must be between 1KiB and 1GiB",
            ));
        }
        if self.max_item_size == 0 || self.max_item_size > self.max_frame {
            return Err(ConfigError::new(
                "--max-item-size",
                format!(
                    "must be between 1 byte and --max-frame ({} bytes)",
                    self.max_frame
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be at least 1"));
        }
        if self.load_timeout.is_zero() {
            return Err(ConfigError::new("--load-timeout", "must be more than 0"));
        }
        if !(1..=4096).contains(&self.loader_threads) {
            return Err(ConfigError::new("--loader-threads", "must be in 1..=4096"));
        }
        if !(1..=MAX_LOADER_QUEUE).contains(&self.loader_queue) {
            return Err(ConfigError::new(
                "--loader-queue",
                format!("{} is not in 1..={MAX_LOADER_QUEUE}", self.loader_queue),
            ));
        }
        if let Some(a) = &self.advertise {
            check_member(a).map_err(|e| ConfigError::new("--advertise", e))?;
        }
        match &self.peers {
            PeerSource::Static(list) => {
                for m in list {
                    check_member(m).map_err(|e| ConfigError::new("--peers", e))?;
                }
            }
            PeerSource::File(_) | PeerSource::Dns { .. } => {}
        }
        for (i, g) in self.groups.iter().enumerate() {
            let valid = !g.name.is_empty()
                && g.name.len() <= MAX_GROUP_LEN
                && g.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "group name",
                    format!(
                        "`{}` must be 1..={MAX_GROUP_LEN} characters of A-Z a-z 0-9 _ -",
                        g.name
                    ),
                ));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(ConfigError::new(
                    "group name",
                    format!("`{}` is configured twice", g.name),
                ));
            }
            let setting = |field: &str| format!("group `{}` {field}", g.name);
            if let Some(n) = g.loader_threads {
                if !(1..=4096).contains(&n) {
                    return Err(ConfigError::new(
                        setting("loader_threads"),
                        format!("{n} is not in 1..=4096"),
                    ));
                }
            }
            if let Some(n) = g.loader_queue {
                if !(1..=MAX_LOADER_QUEUE).contains(&n) {
                    return Err(ConfigError::new(
                        setting("loader_queue"),
                        format!("{n} is not in 1..={MAX_LOADER_QUEUE}"),
                    ));
                }
            }
            if let OriginSpec::Http(t) = &g.origin {
                crate::origin::check_http_template(t).map_err(|e| {
                    ConfigError::new(
                        origin_setting(&g.name),
                        OriginSpecError::HttpTemplate(e.to_string()),
                    )
                })?;
            }
            if g.cache_bytes < self.threads as u64 * 1024 {
                return Err(ConfigError::new(
                    format!("group `{}` cache size", g.name),
                    format!(
                        "must be at least 1KiB per thread ({} bytes)",
                        self.threads * 1024
                    ),
                ));
            }
        }
        self.validate_conn_limits()?;
        Ok(())
    }

    /// Checks what the configuration names outside itself, at start (not for
    /// `--print-config`, which may run on another machine): every `dir:` origin's
    /// directory exists and can be read, and a readable `--peers-file` lists only
    /// `HOST:PORT` members. A peers file that cannot be read yet is allowed: the node
    /// starts alone and keeps reading it.
    pub fn check_environment(&self) -> Result<(), ConfigError> {
        for g in &self.groups {
            if let OriginSpec::Dir(path) = &g.origin {
                check_dir(path).map_err(|e| ConfigError::new(origin_setting(&g.name), e))?;
            }
        }
        if let PeerSource::File(path) = &self.peers {
            if let Ok(text) = std::fs::read_to_string(path) {
                for m in crate::membership::parse_member_lines(&text) {
                    check_member(&m).map_err(|e| {
                        ConfigError::new("--peers-file", format!("{}: {e}", path.display()))
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Why a member (or `--advertise`) is not `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberError {
    /// The member as given.
    pub member: String,
    /// What is wrong with it.
    pub problem: MemberProblem,
}

/// What is wrong with a member's `HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberProblem {
    /// No `:PORT`.
    NoPort,
    /// Port 0, which nobody can connect to.
    PortZero,
    /// The port is not a number in 1..=65535.
    BadPort,
    /// Nothing before the `:PORT`.
    NoHost,
    /// `[` without `]`.
    UnclosedBracket,
    /// Something in brackets that is not an IPv6 address.
    NotIpv6,
    /// An IPv6 address without brackets.
    Ipv6WithoutBrackets,
    /// A host with characters a host name cannot have.
    BadHostCharacters,
}

impl fmt::Display for MemberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.problem {
            MemberProblem::NoPort => "no port",
            MemberProblem::PortZero => "port 0",
            MemberProblem::BadPort => "the port is not a number in 1..=65535",
            MemberProblem::NoHost => "no host",
            MemberProblem::UnclosedBracket => "unclosed `[`",
            MemberProblem::NotIpv6 => "not an IPv6 address in brackets",
            MemberProblem::Ipv6WithoutBrackets => "an IPv6 address needs brackets, e.g. [::1]:7000",
            MemberProblem::BadHostCharacters => "the host has characters a host name cannot have",
        };
        write!(f, "`{}` is not HOST:PORT ({why})", self.member)
    }
}

impl std::error::Error for MemberError {}

/// Checks that a member (or `--advertise`) is `HOST:PORT` with a port in 1..=65535,
/// an IPv6 address in brackets (`[::1]:7000`). Names are not resolved here: a
/// member's name may not resolve yet when a cluster starts.
pub(crate) fn check_member(m: &str) -> Result<(), MemberError> {
    let bad = |problem| {
        Err(MemberError {
            member: m.to_string(),
            problem,
        })
    };
    let Some((host, port)) = m.rsplit_once(':') else {
        return bad(MemberProblem::NoPort);
    };
    match port.parse::<u16>() {
        Ok(0) => return bad(MemberProblem::PortZero),
        Ok(_) => {}
        Err(_) => return bad(MemberProblem::BadPort),
    }
    if host.is_empty() {
        return bad(MemberProblem::NoHost);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(v6) = inner.strip_suffix(']') else {
            return bad(MemberProblem::UnclosedBracket);
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return bad(MemberProblem::NotIpv6);
        }
    } else if host.contains(':') {
        return bad(MemberProblem::Ipv6WithoutBrackets);
    } else if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return bad(MemberProblem::BadHostCharacters);
    }
    Ok(())
}

/// How an error about a group's origin names the setting: the flag and the file
/// field, since either may have set it.
fn origin_setting(group: &str) -> String {
    format!("origin of group `{group}` (--origin or [[group]] origin)")
}

/// Why a `dir:` origin's directory cannot serve.
#[derive(Debug)]
pub(crate) enum DirError {
    /// It cannot be looked up (missing, no permission).
    Missing {
        /// The origin, as `dir:PATH`.
        spec: String,
        /// The OS error.
        source: io::Error,
    },
    /// It is a file or something else, not a directory.
    NotADirectory {
        /// The origin, as `dir:PATH`.
        spec: String,
    },
    /// It cannot be listed.
    Unreadable {
        /// The origin, as `dir:PATH`.
        spec: String,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::Missing { spec, source } => write!(f, "`{spec}`: {source}"),
            DirError::NotADirectory { spec } => write!(f, "`{spec}` is not a directory"),
            DirError::Unreadable { spec, source } => write!(f, "`{spec}` cannot be read: {source}"),
        }
    }
}

impl std::error::Error for DirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirError::Missing { source, .. } | DirError::Unreadable { source, .. } => Some(source),
            DirError::NotADirectory { .. } => None,
        }
    }
}

/// A `dir:` origin's directory must exist, be a directory and be readable, so a typo
/// is an error at start rather than NOT_FOUND for every key.
fn check_dir(path: &Path) -> Result<(), DirError> {
    let spec = format!("dir:{}", path.display());
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(source) => return Err(DirError::Missing { spec, source }),
    };
    if !meta.is_dir() {
        return Err(DirError::NotADirectory { spec });
    }
    std::fs::read_dir(path)
        .map(drop)
        .map_err(|source| DirError::Unreadable { spec, source })
}
