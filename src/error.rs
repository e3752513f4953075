//! Errors of configuration and start-up.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// A configuration value is missing, malformed or out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, as named on the command line or in the file (e.g. `--cache-size`).
    pub setting: String,
    /// What is wrong and what form is accepted.
    pub message: String,
}

impl ConfigError {
    /// An error about `setting`; `problem` (a typed error or a text) says what is
    /// wrong and what form is accepted.
    pub fn new(setting: impl Into<String>, problem: impl fmt::Display) -> Self {
        ConfigError {
            setting: setting.into(),
            message: problem.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// Binding or listening on an address failed.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Binding the `--metrics-listen` address failed.
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Another OS resource (poll instance, thread, waker) could not be created.
    Io {
        /// What was being created.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::MetricsBind { addr, source } => {
                write!(
                    f,
                    "cannot serve metrics on {addr} (--metrics-listen): {source}"
                )
            }
            StartError::Io { what, source } => write!(f, "cannot create {what}: {source}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Bind { source, .. }
            | StartError::MetricsBind { source, .. }
            | StartError::Io { source, .. } => Some(source),
        }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}
